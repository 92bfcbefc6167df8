// The PRNG's stream is part of every finding's identity (replays start from a seed), so its
// 32-bit-halves arithmetic must give exactly SplitMix64: checked against the algorithm written
// with BigInts (Steele, Lea, Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014;
// the reference C of xoshiro's authors, prng.di.unimi.it/splitmix64.c) and its published first output.
import { describe, expect, it } from 'vitest';
import { Prng, deriveSeed } from '../../src/shared/prng.js';

const MASK64 = (1n << 64n) - 1n;

/** splitmix64.c, line by line, in BigInts. */
function* splitmix64(seed: bigint): Generator<bigint> {
  let x = BigInt.asUintN(64, seed);
  for (;;) {
    x = (x + 0x9e3779b97f4a7c15n) & MASK64;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    yield z ^ (z >> 31n);
  }
}

describe('Prng (SplitMix64)', () => {
  it('starts from seed 0 with 0xe220a8397b1dcdaf, as splitmix64.c does', () => {
    expect(new Prng(0n).next64()).toBe(0xe220a8397b1dcdafn);
  });

  it('gives the BigInt algorithm\'s stream for seeds across the 64-bit range, through next64, below and saved states', () => {
    const seeds = [0n, 1n, -1n, MASK64, 1n << 63n, 0x9e3779b97f4a7c15n, 1n << 70n];
    const source = splitmix64(42n);
    for (let i = 0; i < 300; i++) seeds.push(source.next().value);
    for (const seed of seeds) {
      const prng = new Prng(seed);
      const reference = splitmix64(seed);
      for (let i = 0; i < 40; i++) {
        const want = reference.next().value;
        if (i % 3 === 0) expect(prng.next64()).toBe(want);
        else if (i % 3 === 1) expect(prng.below(1000 + i)).toBe(Number((want >> 32n) % BigInt(1000 + i)));
        else expect(prng.below(2 ** 32)).toBe(Number(want >> 32n));
      }
      const copy = new Prng(0n);
      copy.loadState(prng.saveState());
      expect(copy.next64()).toBe(reference.next().value);
    }
  });

  it('derives sub-seeds from the state and the index alone', () => {
    const a = new Prng(9n), b = new Prng(9n);
    expect(a.derive(3).next64()).toBe(b.derive(3n).next64());
    expect(deriveSeed(9n, 1)).not.toBe(deriveSeed(9n, 2));
    const mixed = splitmix64(BigInt.asUintN(64, 9n ^ BigInt.asUintN(64, 5n * 0xd1b54a32d192ed03n)));
    mixed.next();
    expect(deriveSeed(9n, 5)).toBe(mixed.next().value);
  });
});
