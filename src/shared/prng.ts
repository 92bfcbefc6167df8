// The only source of randomness of the fuzzer, the vCPU scheduler and the CPU's RDRAND: a seeded PRNG (SplitMix64, Steele et al. 2014, the
// seeding generator of java.util.SplittableRandom and xoshiro). Hand-written rather than taken
// from npm on purpose: findings are replayed from their seed, so the stream must stay bit-for-bit
// the same across dependency upgrades, and it is ten lines.
const MASK64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;

export class Prng {
  #state: bigint;

  constructor(seed: bigint) {
    this.#state = BigInt.asUintN(64, seed);
  }

  /** The generator's position, for snapshots: loadState(saveState()) replays the same stream. */
  saveState(): bigint {
    return this.#state;
  }

  loadState(state: bigint): void {
    this.#state = state;
  }

  /** The next 64-bit value. */
  next64(): bigint {
    this.#state = (this.#state + GOLDEN) & MASK64;
    let z = this.#state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }

  /** Uniform integer in [0, n) (n ≥ 1, up to 2^32). */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`below(${n})`);
    return Number((this.next64() >> 32n) % BigInt(n));
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
    return new Prng(deriveSeed(this.#state, index));
  }
}

/** A seed for sub-task `index` of a campaign seeded with `seed`: stable and well mixed. */
export function deriveSeed(seed: bigint, index: number | bigint): bigint {
  const mix = new Prng(BigInt.asUintN(64, seed) ^ BigInt.asUintN(64, BigInt(index) * 0xd1b54a32d192ed03n));
  mix.next64();
  return mix.next64();
}
