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
    // 0x80b583eb: the low half whose sum with the increment's is exactly 2^32 (a carry at the bound).
    const seeds = [0n, 1n, -1n, MASK64, 1n << 63n, 0x9e3779b97f4a7c15n, 1n << 70n, 0x80b583ebn];
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
    // derive() seeds from the generator's current position: the published seed of that state.
    const moved = new Prng(9n);
    moved.next64();
    expect(moved.derive(5).next64()).toBe(splitmix64(deriveSeed(moved.saveState(), 5)).next().value);
  });

  it('draws bigints below n from one output up to 2^64 and from two past it, as next64() % n', () => {
    for (const n of [1n, 7n, 1n << 63n, (1n << 64n) - 1n, 1n << 64n, (1n << 64n) + 1n, (1n << 100n) + 3n]) {
      const prng = new Prng(5n);
      const reference = splitmix64(5n);
      for (let i = 0; i < 20; i++) {
        const first = reference.next().value;
        const want = n <= 1n << 64n ? first % n : ((first << 64n) | reference.next().value) % n;
        expect(prng.belowBig(n)).toBe(want);
      }
    }
    expect(() => new Prng(5n).belowBig(0n)).toThrow(new RangeError('belowBig(0)'));
    expect(() => new Prng(5n).belowBig(-1n)).toThrow(RangeError);
  });

  it('refuses a bound below() cannot draw from: 0, a fraction, past 2^32', () => {
    for (const n of [0, -1, 1.5, Number.NaN, 2 ** 32 + 1]) expect(() => new Prng(5n).below(n)).toThrow(RangeError);
    expect(new Prng(5n).below(1)).toBe(0);
  });

  it('says yes to chance(k, n) when below(n) is under k, and picks the item below() names', () => {
    const reference = splitmix64(11n);
    const prng = new Prng(11n);
    for (let i = 0; i < 200; i++) {
      const draw = Number((reference.next().value >> 32n) % 4n);
      expect(prng.chance(2, 4)).toBe(draw < 2);
    }
    const never = new Prng(11n), always = new Prng(11n);
    for (let i = 0; i < 50; i++) {
      expect(never.chance(0, 3)).toBe(false);
      expect(always.chance(3, 3)).toBe(true);
    }
    const items = ['a', 'b', 'c', 'd', 'e'] as const;
    const picker = new Prng(12n);
    const picks = splitmix64(12n);
    for (let i = 0; i < 50; i++) expect(picker.pick(items)).toBe(items[Number((picks.next().value >> 32n) % 5n)]);
    expect(() => new Prng(12n).pick([])).toThrow(/empty/);
  });
});
