// Unsigned 64-bit values held in bigint, as x86 registers and the TDX and SEV-SNP ABIs carry them.

/** 2^64 - 1, the largest unsigned 64-bit value; `x & MASK64` wraps x to 64 bits as a register does. */
export const MASK64 = (1n << 64n) - 1n;

/** 2^64, the exclusive upper limit: `0n <= x && x < U64_LIMIT` says x fits in an unsigned 64-bit value. */
export const U64_LIMIT = 1n << 64n;

const scratch = new BigUint64Array(1);
const scratchWords = new Uint32Array(scratch.buffer);
/** Which word of `scratch` holds the low 32 bits (the host's byte order). */
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

/**
 * Writes u64 `v` (0 <= v < 2^64, the caller's check) little-endian at `at` in `view`, as its two
 * 32-bit words: DataView.setBigUint64 is a builtin call (~120 instructions in optimised code),
 * the BigUint64Array store and the two word writes are inlined (issue 11). The same bytes.
 */
export function setU64LE(view: DataView, at: number, v: bigint): void {
  scratch[0] = v;
  view.setUint32(at, scratchWords[LOW]!, true);
  view.setUint32(at + 4, scratchWords[1 - LOW]!, true);
}

/**
 * Number(v), for every bigint. Number(bigint) is a runtime call (~140 instructions in optimised
 * code) and the PVALIDATE and PAGE.ACCEPT paths made several per exit (issue 11); for a u64,
 * BigInt.asUintN(64) and a BigUint64Array store are inlined. high * 2^32 is exact and adding the
 * low word rounds once, to nearest-even as Number does, so the result is the same.
 */
export function u64ToNumber(v: bigint): number {
  if (BigInt.asUintN(64, v) !== v) return Number(v);
  scratch[0] = v;
  return scratchWords[1 - LOW]! * 0x100000000 + scratchWords[LOW]!;
}

/** The u64 `hi` * 2^32 + `lo` (two u32 numbers), through the BigUint64Array: no BigInt arithmetic, one BigInt made. */
export function u64FromWords(lo: number, hi: number): bigint {
  scratchWords[LOW] = lo;
  scratchWords[1 - LOW] = hi;
  return scratch[0]!;
}
