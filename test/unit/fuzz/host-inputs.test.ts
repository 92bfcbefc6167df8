// The guest code the host-robustness fuzzer runs (src/fuzz/host-inputs.ts), in process: its size
// bounds and the platform each execution runs on. test/fuzz/host-fuzz.test.ts runs the inputs.
import { describe, expect, it } from 'vitest';
import { MAX_CODE_BYTES } from '../../../src/fuzz/host-guest.js';
import { hostFuzzInput, platformOf } from '../../../src/fuzz/host-inputs.js';

const INDICES = Array.from({ length: 200 }, (_, i) => i);

describe('hostFuzzInput', () => {
  it('is never empty and never longer than the guest takes, whatever splicing added', () => {
    for (const maxBytes of [1, 2, 8, MAX_CODE_BYTES]) {
      for (const i of INDICES) {
        const { code } = hostFuzzInput(5n, i, maxBytes);
        expect(code.length).toBeGreaterThanOrEqual(1);
        expect(code.length).toBeLessThanOrEqual(maxBytes);
      }
    }
  });

  it('keeps random code to at most 256 bytes, and reaches that length, when the guest takes more', () => {
    const random = INDICES.map((i) => hostFuzzInput(5n, i, MAX_CODE_BYTES)).filter((x) => x.kind === 'random');
    expect(random.length).toBeGreaterThan(20);
    expect(Math.max(...random.map((x) => x.code.length))).toBeLessThanOrEqual(256);
    expect(Math.max(...random.map((x) => x.code.length))).toBeGreaterThan(200);
  });
});

describe('platformOf', () => {
  it('alternates TDX and SNP, so each sees half of every campaign', () => {
    expect([0, 1, 2, 3].map(platformOf)).toEqual(['tdx', 'snp', 'tdx', 'snp']);
  });
});
