import { describe, expect, it } from 'vitest';
import { groupThousands } from '../../src/shared/thousands.js';

describe('groupThousands', () => {
  it('writes integers as toLocaleString("en-US") does', () => {
    const samples: Array<number | bigint> = [0, 7, 999, 1000, -1000, 12345, 1234567, -987654321, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
    // Every length of digits, both signs, as numbers and as BigInts (up to 2^80).
    for (let digits = 1; digits <= 25; digits++) {
      const n = 10n ** BigInt(digits - 1) * 7n + 3n;
      samples.push(n, -n);
      if (n <= BigInt(Number.MAX_SAFE_INTEGER)) samples.push(Number(n), -Number(n));
    }
    for (const n of samples) expect(groupThousands(n), String(n)).toBe(n.toLocaleString('en-US'));
  });

  it('leaves numbers beyond safe integers to toLocaleString', () => {
    expect(groupThousands(1.5)).toBe('1.5');
    expect(groupThousands(1e21)).toBe((1e21).toLocaleString('en-US'));
  });
});
