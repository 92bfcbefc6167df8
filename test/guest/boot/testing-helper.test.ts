// minivisor/testing: what a user's suite does with its own stub, in a few lines.
import { describe, expect, it } from 'vitest';
import { assertCleanBoot, bootStub } from '../../../src/testing/index.js';

describe('minivisor/testing', () => {
  it('boots a stub on both platforms and finds it clean', () => {
    for (const platform of ['tdx', 'snp'] as const) assertCleanBoot(bootStub({ platform, memory: '512M' }));
  });

  it('fails with the outcome and every verify mismatch in the message', () => {
    const run = bootStub({ platform: 'tdx', memory: '512M', variant: 'reaccept-skipped' });
    expect(() => assertCleanBoot(run)).toThrow(/^TDX boot is not clean:\n {2}outcome guest-fatal: unexpected_ve[^\n]*\n {2}verify: \[0x[0-9a-f]+, 0x[0-9a-f]+\): guest says accepted, hardware has PENDING/);
  });

  it('rejects a bad option with the CLI message', () => {
    expect(() => bootStub({ memory: 'lots' })).toThrow(/--memory "lots" is not a size/);
  });

  it('takes a size or count as a number of bytes or a bigint, the same boot as its text', () => {
    const text = bootStub({ platform: 'snp', memory: '512M', workload: '1M', seed: '7' });
    const numbers = bootStub({ platform: 'snp', memory: 512 << 20, workload: 1n << 20n, seed: 7 });
    expect(numbers.result.traceSha256).toBe(text.result.traceSha256);
    expect(numbers.result.memoryBytes).toBe(512 * 2 ** 20);
  });

  it('names a JavaScript caller\'s unknown option or wrong type instead of failing inside the parser', () => {
    const call = (options: Record<string, unknown>) => () => bootStub(options as never);
    expect(call({ platfrom: 'snp' })).toThrow(/^bootStub has no option "platfrom" \(options: platform, memory, /);
    expect(call({ platform: 5 })).toThrow(/^bootStub option platform must be a string, got number$/);
    expect(call({ vcpus: [2] })).toThrow(/^bootStub option vcpus must be a string or an integer, got object$/);
    expect(call({ memory: 1.5 })).toThrow(/^bootStub option memory must be a string or an integer, got number$/);
    expect(call({ fast: 'no' })).toThrow(/^bootStub option fast must be true or false, got string$/);
    expect(call({ seed: -1 })).toThrow(/--seed "-1" is not a non-negative integer/);
  });
});
