import { describe, expect, it } from 'vitest';
import { u64ToNumber } from '../../src/shared/u64.js';

describe('u64ToNumber', () => {
  it('is Number(v) for every bigint: exact below 2^53, rounded to nearest-even above, and outside u64 too', () => {
    const values = [0n, 1n, 0xfffn, 0x1000n, 0xffffffffn, 1n << 32n, (1n << 53n) - 1n, 1n << 53n, (1n << 53n) + 1n, (1n << 53n) + 3n,
      (1n << 54n) + 2n, (1n << 54n) + 6n, 0x8000000000000000n, 0x8000000000000400n, 0x8000000000000401n, 0x8000000000000c00n,
      (1n << 64n) - 1n, (1n << 64n) - 0x800n, (1n << 64n) - 0x801n, 1n << 64n, (1n << 64n) + 5n, 1n << 80n, -1n, -0x1000n, -(1n << 64n)];
    let x = 0x9e3779b97f4a7c15n;
    for (let i = 0; i < 2000; i++) {
      x = (x * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
      values.push(x, x >> BigInt(i % 64));
    }
    for (const v of values) expect(u64ToNumber(v)).toBe(Number(v));
  });
});
