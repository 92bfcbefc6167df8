// The only source of randomness of the fuzzer, the vCPU scheduler and the CPU's RDRAND: a seeded PRNG (SplitMix64, Steele et al. 2014, the
// seeding generator of java.util.SplittableRandom and xoshiro). Hand-written rather than taken
// from npm on purpose: findings are replayed from their seed, so the stream must stay bit-for-bit
// the same across dependency upgrades, and it is a few lines.
//
// The 64-bit state and arithmetic are kept as two unsigned 32-bit halves in numbers: the same
// values as the BigInt form of the algorithm (test/unit/prng.test.ts checks both against each
// other and against SplitMix64's published first outputs), without a BigInt allocated at every
// step, which showed in every fuzz mutation (issue 10). Only next64() builds a BigInt, of its result.
import { MASK64 } from './u64.js';

const TWO32 = 0x1_0000_0000;
/** The golden-ratio increment 0x9e3779b97f4a7c15 and the two mixing multipliers, as halves. */
const GOLDEN_HI = 0x9e3779b9, GOLDEN_LO = 0x7f4a7c15;
const MIX1_HI = 0xbf58476d, MIX1_LO = 0x1ce4e5b9;
const MIX2_HI = 0x94d049bb, MIX2_LO = 0x133111eb;

/** multiply64()'s second result: the high half of the product. */
let productHi = 0;
/**
 * `a * b` mod 2^64 of two 64-bit values given as halves: returns the low half and leaves the high
 * half in `productHi`. The low halves' full product is taken in 16-bit limbs (exact in doubles);
 * the cross terms only reach the high half, modulo 2^32 (Math.imul).
 */
function multiply64(aHi: number, aLo: number, bHi: number, bLo: number): number {
  const a0 = aLo & 0xffff, a1 = aLo >>> 16, b0 = bLo & 0xffff, b1 = bLo >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const middle = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const lo = (((middle & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const loProductHi = p11 + (p01 >>> 16) + (p10 >>> 16) + (middle >>> 16);
  productHi = (loProductHi + Math.imul(aHi, bLo) + Math.imul(aLo, bHi)) >>> 0;
  return lo;
}

export class Prng {
  #hi: number;
  #lo: number;
  /** The last output's halves (next() leaves them here). */
  #outHi = 0;
  #outLo = 0;

  constructor(seed: bigint) {
    const state = BigInt.asUintN(64, seed);
    this.#hi = Number(state >> 32n);
    this.#lo = Number(state & 0xffffffffn);
  }

  /** The generator's position, for snapshots: loadState(saveState()) replays the same stream. */
  saveState(): bigint {
    return (BigInt(this.#hi) << 32n) | BigInt(this.#lo);
  }

  loadState(state: bigint): void {
    this.#hi = Number((state >> 32n) & 0xffffffffn);
    this.#lo = Number(state & 0xffffffffn);
  }

  /** One SplitMix64 step: state += golden; z = state; z = (z ^ z >> 30) * M1; z = (z ^ z >> 27) * M2; z ^= z >> 31. */
  #next(): void {
    const lo = this.#lo + GOLDEN_LO;
    this.#lo = lo >>> 0;
    this.#hi = (this.#hi + GOLDEN_HI + (lo >= TWO32 ? 1 : 0)) >>> 0;
    let hi = this.#hi, zLo = this.#lo;
    // z ^= z >> 30
    zLo = (zLo ^ ((zLo >>> 30) | (hi << 2))) >>> 0;
    hi = (hi ^ (hi >>> 30)) >>> 0;
    zLo = multiply64(hi, zLo, MIX1_HI, MIX1_LO);
    hi = productHi;
    // z ^= z >> 27
    zLo = (zLo ^ ((zLo >>> 27) | (hi << 5))) >>> 0;
    hi = (hi ^ (hi >>> 27)) >>> 0;
    zLo = multiply64(hi, zLo, MIX2_HI, MIX2_LO);
    hi = productHi;
    // z ^= z >> 31
    this.#outLo = (zLo ^ ((zLo >>> 31) | (hi << 1))) >>> 0;
    this.#outHi = (hi ^ (hi >>> 31)) >>> 0;
  }

  /** The next 64-bit value. */
  next64(): bigint {
    this.#next();
    return (BigInt(this.#outHi) << 32n) | BigInt(this.#outLo);
  }

  /** Uniform integer in [0, n) (n ≥ 1, up to 2^32): the next value's high 32 bits modulo n. */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`below(${n})`);
    this.#next();
    return this.#outHi % n;
  }

  /** Uniform bigint in [0, n). */
  belowBig(n: bigint): bigint {
    if (n <= 0n) throw new RangeError(`belowBig(${n})`);
    return n <= MASK64 + 1n ? this.next64() % n : (this.next64() << 64n | this.next64()) % n;
  }

  chance(numerator: number, denominator: number): boolean {
    return this.below(denominator) < numerator;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.below(items.length)]!;
  }

  /** An independent generator for sub-task `index` (a job, a shard, one mutation round). */
  derive(index: number | bigint): Prng {
    return new Prng(deriveSeed(this.saveState(), index));
  }
}

/** A seed for sub-task `index` of a campaign seeded with `seed`: stable and well mixed. */
export function deriveSeed(seed: bigint, index: number | bigint): bigint {
  const mix = new Prng(BigInt.asUintN(64, seed) ^ BigInt.asUintN(64, BigInt(index) * 0xd1b54a32d192ed03n));
  mix.next64();
  return mix.next64();
}
