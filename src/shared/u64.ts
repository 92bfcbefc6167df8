// Unsigned 64-bit values held in bigint, as x86 registers and the TDX and SEV-SNP ABIs carry them.

/** 2^64 - 1, the largest unsigned 64-bit value; `x & MASK64` wraps x to 64 bits as a register does. */
export const MASK64 = (1n << 64n) - 1n;

/** 2^64, the exclusive upper limit: `0n <= x && x < U64_LIMIT` says x fits in an unsigned 64-bit value. */
export const U64_LIMIT = 1n << 64n;
