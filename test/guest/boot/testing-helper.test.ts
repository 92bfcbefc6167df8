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
});
