// The VMM's vCPU schedule as a fuzz decision: with several vCPUs an attack program may carry a
// `schedule` (policy, seed, quantum) that the executor hands to the seeded vCPU scheduler where
// the program's decisions start. The same program gives the same execution; another schedule
// another interleaving. On the variant without the accepting list, schedules alone find the
// double validation; the honest stubs survive the same schedules.
import { afterAll, describe, expect, it } from 'vitest';
import { attackProgramFromJson, attackProgramToJson, type AttackProgram, type VcpuSchedule } from '../../../src/fuzz/attack-program.js';
import type { FuzzTarget } from '../../../src/fuzz/executor.js';
import { SnapshotExecutor } from '../../../src/fuzz/snapshot-executor.js';
import { mutate } from '../../../src/fuzz/mutate.js';
import { Prng } from '../../../src/shared/prng.js';
import { parseFuzzOptions } from '../../../src/cli/fuzz-options.js';
import { findingFromJson, findingToJson, type StoredFinding } from '../../../src/fuzz/finding-file.js';

const target = (variant?: 'accepting-list-missing'): FuzzTarget => ({
  platform: 'snp', stage: 'kernel', memoryBytes: 512n << 20n, workloadBytes: 16n << 20n, preAccept: 16n << 20n, accept: 'lazy',
  unitBytes: 0x200000n, guestSeed: 1n, maxInstructions: 50_000_000n, vcpus: 4, ...(variant ? { variant } : {}),
});
const withSchedule = (schedule?: VcpuSchedule): AttackProgram => ({ platform: 'snp', decisions: [], ...(schedule ? { schedule } : {}) });

describe('the vCPU schedule as an attack-program decision', () => {
  const executors: SnapshotExecutor[] = [];
  afterAll(() => executors.forEach((e) => e.close()));

  it('round-trips through the attack-program format and refuses a bad one', () => {
    const program = withSchedule({ policy: 'pct', seed: 0x1234n, quantum: 50 });
    expect(attackProgramFromJson(attackProgramToJson(program))).toEqual(program);
    expect(() => attackProgramFromJson(attackProgramToJson(program).replace('"pct"', '"fifo"'))).toThrow(/schedule\.policy/);
    expect(() => attackProgramFromJson(attackProgramToJson(program).replace('"quantum": 50', '"quantum": 0'))).toThrow(/schedule\.quantum/);
  });

  it('fuzz --vcpus N reaches the target, and a finding file keeps the vCPUs and the schedule for replay', () => {
    const { target: t } = parseFuzzOptions({ platform: 'snp', vcpus: '4', runs: '1' });
    expect(t.vcpus).toBe(4);
    const program = withSchedule({ policy: 'round-robin', seed: 0x3458a32ebdefa907n, quantum: 500 });
    const finding: StoredFinding = {
      id: 'double-acceptance-000000000001', category: 'double-acceptance', severity: 'high', summary: 's', detail: 'd', target: t, seed: 1n, job: 0,
      execIndex: 13, outcome: { outcome: 'guest-fatal', reason: 'r' }, traceSha256: '0'.repeat(64), program, unshrunk: program,
    };
    const back = findingFromJson(findingToJson(finding, 'minivisor replay x'), 'finding.json');
    expect(back.target.vcpus).toBe(4);
    expect(back.program.schedule).toEqual(program.schedule);
    expect(() => parseFuzzOptions({ platform: 'snp', vcpus: '65', runs: '1' })).toThrow(/--vcpus/);
  });

  it('the mutator chooses schedules only for targets with several vCPUs', () => {
    const profile = { callCounts: new Map(), vmmExits: 10, gpas: [], memoryBytes: 512n << 20n };
    const one = mutate(new Prng(1n), withSchedule(), profile);
    expect(one.schedule).toBeUndefined();
    const several = mutate(new Prng(1n), withSchedule(), { ...profile, vcpus: 4 });
    expect(several.schedule).toBeDefined();
  });

  it('same schedule, same execution; another schedule, another interleaving; schedules alone find the planted race, the honest stubs survive them', () => {
    const planted = new SnapshotExecutor(target('accepting-list-missing'));
    const honest = new SnapshotExecutor(target());
    executors.push(planted, honest);
    const a = planted.execute(withSchedule({ policy: 'random', seed: 5n, quantum: 500 }));
    const again = planted.execute(withSchedule({ policy: 'random', seed: 5n, quantum: 500 }));
    expect(again.traceSha256).toBe(a.traceSha256);
    let found: bigint | undefined;
    const hashes = new Set<string>();
    for (const seed of [1n, 2n, 3n, 4n, 5n, 6n]) {
      const schedule: VcpuSchedule = { policy: 'random', seed, quantum: 50 };
      const survivor = honest.execute(withSchedule(schedule));
      expect(survivor.judgement.outcome.outcome, `seed ${seed}: ${survivor.judgement.outcome.reason}`).toBe('done');
      hashes.add(survivor.traceSha256);
      const run = planted.execute(withSchedule(schedule));
      if (found === undefined && run.judgement.outcome.outcome === 'guest-fatal') {
        expect(run.judgement.outcome.reason).toMatch(/^snp_pvalidate_unchanged/);
        found = seed;
      }
    }
    expect(hashes.size).toBeGreaterThan(1);
    expect(found).toBeDefined();
  }, 240_000);
});
