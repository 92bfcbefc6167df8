// The snapshot executor: one honest boot to the stage's first decision point, then every execution
// restores the whole VM from there.
import { afterAll, describe, expect, it } from 'vitest';
import type { AttackProgram } from '../../../src/fuzz/attack-program.js';
import { BootExecutor, type FuzzTarget } from '../../../src/fuzz/executor.js';
import { SnapshotExecutor } from '../../../src/fuzz/snapshot-executor.js';

const target = (platform: 'tdx' | 'snp', stage: FuzzTarget['stage']): FuzzTarget => ({
  platform, stage, memoryBytes: 128n << 20n, workloadBytes: 1n << 20n, preAccept: 64n << 20n, accept: 'lazy',
  unitBytes: 0x200000n, guestSeed: 1n, maxInstructions: 50_000_000n,
});
const honest = (platform: 'tdx' | 'snp'): AttackProgram => ({ platform, decisions: [] });
const stall: AttackProgram = {
  platform: 'tdx',
  decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1_000_000, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n, resumeDelta: 0n } }],
};

describe('snapshot executor', () => {
  const executors: SnapshotExecutor[] = [];
  afterAll(() => executors.forEach((e) => e.close()));

  it.each(['tdx', 'snp'] as const)('%s: from the kernel stage, an honest execution is the honest boot, again and again', (platform) => {
    const executor = new SnapshotExecutor(target(platform, 'kernel'));
    executors.push(executor);
    const first = executor.execute(honest(platform));
    const firstEdges = [...first.edgeSlots!.slice(1, first.edgeSlots![0]! + 1)].map((slot) => [slot, first.edges![slot]]);
    // Decisions the run never consults (a call far past the last, an exit past the last) repeat it,
    // known without running (execution-memo.ts): the same counts, edges and trace hash.
    const unreached: AttackProgram = {
      platform, decisions: [
        { at: 'call', point: platform === 'tdx' ? 'tdx.mapGpa' : 'snp.ghcb.psc', occurrence: 100_000, answer: { kind: 'stop' } },
        { at: 'exit', exitIndex: 100_000, action: { kind: 'inject', vector: 40 } },
      ],
    };
    const repeat = executor.execute(unreached);
    expect(repeat).toMatchObject({ instructions: first.instructions, vmmExits: first.vmmExits, judgement: first.judgement, gpas: first.gpas });
    // Marked as not run (benchmarks count what ran), unlike the run it repeats.
    expect([first.recalled, repeat.recalled]).toEqual([undefined, true]);
    expect([...repeat.edgeSlots!.slice(1, repeat.edgeSlots![0]! + 1)].map((slot) => [slot, repeat.edges![slot]])).toEqual(firstEdges);
    expect(repeat.traceSha256).toBe(executor.execute(unreached, { keepTrace: true }).traceSha256);
    const hostile = platform === 'tdx' ? executor.execute(stall) : undefined;
    const second = executor.execute(honest(platform));
    // One that runs (a kept trace is never recalled) after others counts its own edges only.
    const ranAgain = executor.execute(honest(platform), { keepTrace: true });
    expect([...ranAgain.edgeSlots!.slice(1, ranAgain.edgeSlots![0]! + 1)].map((slot) => [slot, ranAgain.edges![slot]])).toEqual(firstEdges);
    expect(first.judgement).toMatchObject({ verdict: 'benign', outcome: { outcome: 'done' } });
    expect(second.traceSha256).toBe(first.traceSha256);
    // Restoring leaves nothing of the hostile run behind, and the whole boot's trace is the same.
    if (hostile) expect(hostile.judgement.outcome.reason).toMatch(/^tdx_map_gpa_no_progress/);
    const boot = new BootExecutor(target(platform, 'all')).execute(honest(platform));
    expect(first.traceSha256).toBe(boot.traceSha256);
    // Only the kernel stage ran: fewer instructions than the whole boot, and guest edges were counted.
    expect(first.instructions).toBeLessThan(boot.instructions);
    expect(first.edges!.some((v) => v > 0)).toBe(true);
    // Executions keep no trace: a hash read after later executions is the one a kept trace gives.
    if (hostile) expect(hostile.traceSha256).toBe(executor.execute(stall, { keepTrace: true }).traceSha256);
    expect(executor.execute(honest(platform), { keepTrace: true }).traceSha256).toBe(first.traceSha256);
    // Read after the executor is closed, it is what a new executor gives.
    if (hostile) {
      const another = executor.execute(stall);
      const hash = executor.execute(stall, { keepTrace: true }).traceSha256;
      executor.close();
      expect(another.traceSha256).toBe(hash);
    }
  }, 120_000);
});
