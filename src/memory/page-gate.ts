// The page gate: which guest-physical pages an access may reach, separately for private and
// shared accesses. The platform model (TDX SEPT, SNP RMP) owns it; the native TLB-fill hook
// enforces it. Setting a range is a bitmap update plus one TLB flush, whatever its size.
import type { NativeMachine } from '../native/binding.js';
import type { Space } from './address-marker.js';
import { PAGE_SIZE } from './guest-memory.js';
import { u64ToNumber } from '../shared/u64.js';

/**
 * 'ciphertext' (shared space): reads are allowed and see the page's ciphertext, which the
 * platform model puts in a native shadow page when the first such read exits (writeShadow).
 */
export type GateAccess = 'none' | 'read' | 'readwrite' | 'ciphertext';
const ACCESS_CODE: Record<GateAccess, number> = { none: 0, read: 1, readwrite: 2, ciphertext: 3 };
const ACCESS_NAME: readonly GateAccess[] = ['none', 'read', 'readwrite', 'ciphertext'];
/**
 * Which CPLs may fetch instructions from a page: 'supervisor' CPL 0-2, 'user' CPL 3. Apart from
 * the read permission, because an SEV-SNP VMPL's Execute-Supervisor and Execute-User permissions
 * are (AMD APM Vol. 2 §15.36.7). By default a page is fetchable at every CPL exactly when it is
 * readable (TDX, and an SNP VMPL that holds both executes).
 */
export type GateFetch = 'none' | 'supervisor' | 'user' | 'any';
const FETCH_CODE: Record<GateFetch, number> = { none: 0, supervisor: 1, user: 2, any: 3 };
const FETCH_NAME: readonly GateFetch[] = ['none', 'supervisor', 'user', 'any'];
const SPACE_CODE: Record<Space, number> = { private: 0, shared: 1 };
const PAGE_BYTES = Number(PAGE_SIZE);

export class PageGate {
  readonly #native: NativeMachine;
  readonly #sizeNumber: number;

  constructor(native: NativeMachine, size: bigint) {
    this.#native = native;
    this.#sizeNumber = Number(size);
  }

  #check(gpa: bigint, length: bigint): void {
    // On numbers: BigInt arithmetic allocated on every gate change, one per exit (issue 11). Exact
    // for every value below 2^53, and anything larger is outside RAM (at most 2^46) either way.
    const g = u64ToNumber(gpa), l = u64ToNumber(length);
    if (g % PAGE_BYTES !== 0 || l % PAGE_BYTES !== 0) {
      throw new RangeError(`page-gate ranges must be 4 KiB aligned (gpa 0x${gpa.toString(16)}, length 0x${length.toString(16)})`);
    }
    if (g < 0 || l < 0 || g + l > this.#sizeNumber) {
      throw new RangeError(`page-gate range 0x${gpa.toString(16)}+0x${length.toString(16)} is outside guest RAM`);
    }
  }

  set(space: Space, gpa: bigint, length: bigint, access: GateAccess, fetch: GateFetch = access === 'none' ? 'none' : 'any'): void {
    this.#check(gpa, length);
    this.#native.setGate(SPACE_CODE[space], gpa, length, ACCESS_CODE[access], FETCH_CODE[fetch]);
  }

  get(space: Space, gpa: bigint): GateAccess {
    const page = gpa - (gpa % PAGE_SIZE);
    this.#check(page, PAGE_SIZE);
    return ACCESS_NAME[this.#native.getGate(SPACE_CODE[space], page)]!;
  }

  /** Which CPLs may fetch instructions from the page at `gpa`. */
  fetch(space: Space, gpa: bigint): GateFetch {
    const page = gpa - (gpa % PAGE_SIZE);
    this.#check(page, PAGE_SIZE);
    return FETCH_NAME[this.#native.getGateFetch(SPACE_CODE[space], page)]!;
  }

  /** Stores the ciphertext shared reads of the 'ciphertext' page at `gpa` see (4096 bytes). */
  writeShadow(gpa: bigint, ciphertext: Uint8Array): void {
    this.#check(gpa, PAGE_SIZE);
    this.#native.writeShadow(gpa, ciphertext);
  }

  /** How many pages of [gpa, gpa+length) allow at least `atLeast` ('ciphertext': are ciphertext). */
  count(space: Space, gpa: bigint, length: bigint, atLeast: Exclude<GateAccess, 'none'> = 'read'): bigint {
    this.#check(gpa, length);
    return this.#native.countGate(SPACE_CODE[space], gpa, length, ACCESS_CODE[atLeast]);
  }
}
