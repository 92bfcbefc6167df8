// Whole 4 KiB pages given by the ones that are not all zero. A launch's staged image is a few dozen
// KiB of stubs in 2 MiB of zeros; handed over as one buffer, the VMM read ~500 zero pages of fresh
// host memory, each a page fault (~14 us on a paravirtualised host), in every TDX boot (issue 11).
// A source given this way is not read, nor even held, where it is zero.

export const SPARSE_PAGE_BYTES = 0x1000;

export interface SparsePages {
  /** The bytes the pages span, back to back: a multiple of 4096. */
  readonly byteLength: number;
  /** Page by byte offset (a multiple of 4096) -> its 4096 bytes; a page not here is all zeros. */
  readonly pages: ReadonlyMap<number, Uint8Array>;
}

/** Whether `source` is given by its non-zero pages rather than as bytes. */
export function isSparsePages(source: Uint8Array | SparsePages): source is SparsePages {
  return !(source instanceof Uint8Array);
}

/** The 4 KiB page at byte `offset` of `source`; undefined for a page a SparsePages leaves out (zeros). */
export function pageAt(source: Uint8Array | SparsePages, offset: number): Uint8Array | undefined {
  return isSparsePages(source) ? source.pages.get(offset) : source.subarray(offset, offset + SPARSE_PAGE_BYTES);
}

/** `source` as bytes back to back. */
export function denseBytes(source: Uint8Array | SparsePages): Uint8Array {
  if (!isSparsePages(source)) return source;
  const out = new Uint8Array(source.byteLength);
  for (const [offset, page] of source.pages) out.set(page, offset);
  return out;
}
