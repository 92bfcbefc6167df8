// How a physical address carries "private" or "shared" on each platform. The page gate strips
// the marker before it looks up the page state.
import type { NativeMarker } from '../native/binding.js';

/** Which side of the marker an access is on. */
export type Space = 'private' | 'shared';

export type AddressMarker =
  /** Every access is private; no marker bit. */
  | { kind: 'none' }
  /** TDX: the shared bit is GPA bit GPAW-1 (47 for GPAW 48, 51 for GPAW 52); set = shared. */
  | { kind: 'tdx-shared-bit'; gpaWidth: 48 | 52 }
  /** SEV-SNP: the C-bit in the page-table entry (CPUID 0x8000001F EBX[5:0]); set = private. */
  | { kind: 'snp-c-bit'; position: number };

/** The shared bit of each GPA width, built once: callers ask for it on every exit. */
const TDX_SHARED_BIT: Readonly<Record<48 | 52, bigint>> = { 48: 1n << 47n, 52: 1n << 51n };

export function tdxSharedBit(gpaWidth: 48 | 52): bigint {
  return TDX_SHARED_BIT[gpaWidth];
}

export function toNativeMarker(marker: AddressMarker): NativeMarker {
  switch (marker.kind) {
    case 'none':
      return { bit: -1, setMeansPrivate: false, privateWhenPagingOff: false, fetchAlwaysPrivate: false, maxPhysBits: 52 };
    case 'tdx-shared-bit':
      // With GPAW 48, GPA bits 51:48 are reserved in guest paging entries (#PF with RSVD;
      // tdx-snp-architecture.md A6).
      return { bit: marker.gpaWidth - 1, setMeansPrivate: false, privateWhenPagingOff: false, fetchAlwaysPrivate: false, maxPhysBits: marker.gpaWidth };
    case 'snp-c-bit':
      if (!Number.isInteger(marker.position) || marker.position < 32 || marker.position > 51) {
        throw new RangeError(`C-bit position must be 32..51, got ${marker.position}`);
      }
      // APM Vol. 2 §15.34: instruction fetches and, with paging off, all accesses are private.
      return { bit: marker.position, setMeansPrivate: true, privateWhenPagingOff: true, fetchAlwaysPrivate: true, maxPhysBits: 52 };
  }
}
