// The host-robustness fuzzer in CI: a few hundred random and mutated guests on TDX and SNP, in
// child processes, must give no signal death, hang, exception or non-deterministic trace. The
// long campaign is `npm run fuzz:host -- --executions 1000000` (README).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HostFuzzGuest, MAX_CODE_BYTES } from '../../src/fuzz/host-guest.js';
import { runHostFuzz, replayHostFinding } from '../../src/fuzz/host-campaign.js';
import { hostFuzzInput } from '../../src/fuzz/host-inputs.js';

describe('host-robustness fuzzer', () => {
  it('inputs are a pure function of the campaign seed and the execution index', () => {
    const a = hostFuzzInput(7n, 42, MAX_CODE_BYTES);
    expect(hostFuzzInput(7n, 42, MAX_CODE_BYTES)).toEqual(a);
    expect(hostFuzzInput(8n, 42, MAX_CODE_BYTES).code).not.toEqual(a.code);
    const kinds = new Set(Array.from({ length: 50 }, (_, i) => hostFuzzInput(7n, i, MAX_CODE_BYTES).kind));
    expect(kinds).toEqual(new Set(['random', 'mutated']));
  });

  it('restoring the snapshot per execution gives the same trace as a fresh VM', () => {
    for (const platform of ['tdx', 'snp'] as const) {
      const warm = new HostFuzzGuest(platform, 20_000n);
      for (let i = 0; i < 20; i++) warm.exec(hostFuzzInput(3n, i, MAX_CODE_BYTES).code);
      for (const i of [20, 21, 22]) {
        const { code } = hostFuzzInput(3n, i, MAX_CODE_BYTES);
        const fresh = new HostFuzzGuest(platform, 20_000n);
        expect(warm.exec(code).traceSha256).toBe(fresh.exec(code).traceSha256);
        fresh.close();
      }
      warm.close();
    }
  });

  it('an execution that makes the emulator abort does not turn later executions into the same fault', () => {
    for (const platform of ['tdx', 'snp'] as const) {
      const guest = new HostFuzzGuest(platform, 20_000n);
      const benign = hostFuzzInput(3n, 20, MAX_CODE_BYTES).code;
      const expected = guest.exec(benign);
      // LOCK BTR with a register destination: Unicorn 2.1.4 aborts while translating it.
      expect(guest.exec(Uint8Array.of(0xf0, 0x0f, 0xb3, 0xc0)).outcome.reason).toMatch(/emulator aborted/);
      const after = guest.exec(benign);
      expect(after.outcome).toEqual(expected.outcome);
      expect(after.traceSha256).toBe(expected.traceSha256);
      guest.close();
    }
  });

  it('300 executions on both platforms in two child processes: no host failure', async () => {
    const report = await runHostFuzz({ seed: 20261201n, executions: 300, children: 2, budget: 20_000n, batchSize: 50, outDir: mkdtempSync(join(tmpdir(), 'minivisor-hostfuzz-')) });
    expect(report.findings).toEqual([]);
    expect(Object.values(report.outcomes).reduce((a, b) => a + b, 0)).toBe(300);
    // Random code mostly loops or faults until the budget; some of it halts cleanly.
    expect(report.outcomes.budget).toBeGreaterThan(100);
  }, 120_000);

  it('replays an input in a fresh child and names how it ends', async () => {
    expect(await replayHostFinding('snp', 'f4', 20_000n)).toMatch(/^ok: done/);
    expect(await replayHostFinding('tdx', '0f0b', 20_000n)).toMatch(/^ok: budget/);
  }, 60_000);
});
