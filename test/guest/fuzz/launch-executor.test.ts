// Programs that change the launch start from a VM launched with their launch part and snapshotted
// at the stage, cached by launch part: each execution must be exactly what a fresh launch gives
// (trace hash, verdict, findings), whether the launch part was just launched or restored, and
// whatever ran on the executor in between.
import { afterAll, describe, expect, it } from 'vitest';
import { launchKey, type AttackProgram } from '../../../src/fuzz/attack-program.js';
import { ABI, guestPhysicalBytes } from '../../../src/boot/layout.js';
import { Machine } from '../../../src/cpu/machine.js';
import { createExecutor } from '../../../src/fuzz/create-executor.js';
import type { Execution, Executor, FuzzTarget } from '../../../src/fuzz/executor.js';
import { executeFromLaunch, LAUNCH_CACHE_ENTRIES } from '../../../src/fuzz/launch-executor.js';
import { plantedBugTarget } from '../../../src/fuzz/planted-bugs.js';

const TWO_MB = 0x200000n;

/**
 * executeFromLaunch on a machine never used before: a closed machine is kept and handed to the
 * next one of its size (native/src/machine_pool.cc), so one of that size is held open meanwhile.
 */
function launchOnNewMachine(target: FuzzTarget, program: AttackProgram): Execution {
  const occupant = new Machine({ memoryBytes: guestPhysicalBytes(target.memoryBytes) });
  try {
    return executeFromLaunch(target, program);
  } finally {
    occupant.close();
  }
}
/** RAM described both as accepted and as unaccepted (the tactic's shape, fixed): e820-unchecked records accepted memory as unaccepted. */
const overlapping = (platform: 'tdx' | 'snp', split: bigint): AttackProgram => ({
  platform,
  decisions: [],
  memoryDescription: {
    ranges: [
      { addr: 0n, size: ABI.MV_FIRMWARE_RESERVED_GPA, type: 1 },
      { addr: ABI.MV_FIRMWARE_RESERVED_GPA, size: ABI.MV_FIRMWARE_RESERVED_END - ABI.MV_FIRMWARE_RESERVED_GPA, type: 2 },
      { addr: ABI.MV_FIRMWARE_RESERVED_END, size: split - ABI.MV_FIRMWARE_RESERVED_END, type: 1 },
      { addr: split - TWO_MB, size: (128n << 20n) - (split - TWO_MB), type: 15 },
    ],
  },
});

describe('launch-changing programs from a cached launch snapshot', () => {
  const executors: Executor[] = [];
  afterAll(() => executors.forEach((e) => e.close()));

  it.each(['tdx', 'snp'] as const)('%s: a cached launch gives what a fresh launch gives, before and after other programs', (platform) => {
    const target = plantedBugTarget(platform, 'e820-unchecked');
    const executor = createExecutor(target);
    executors.push(executor);
    const a = overlapping(platform, 32n << 20n);
    // The same launch part with a runtime lie on top (a mutant that keeps its parent's launch).
    const aLie: AttackProgram = platform === 'tdx'
      ? { ...a, decisions: [{ at: 'call', point: 'tdx.instructionHlt', occurrence: 0, answer: { kind: 'resume' } }] }
      : { ...a, decisions: [{ at: 'call', point: 'snp.onHlt', occurrence: 0, answer: { kind: 'resume' } }] };
    const b = overlapping(platform, 48n << 20n);
    expect(launchKey(aLie)).toBe(launchKey(a));
    expect(launchKey(b)).not.toBe(launchKey(a));
    expect(executor.startsFromSnapshot!(a)).toBe(false);

    const first = executor.execute(a);
    expect(first.launchInstructions).toBeGreaterThan(0n);
    expect(executor.startsFromSnapshot!(a)).toBe(true);
    executor.execute({ platform, decisions: [] });
    const other = executor.execute(b);
    const lie = executor.execute(aLie);
    const again = executor.execute(a);
    expect(lie.launchInstructions).toBe(0n);
    expect(again.launchInstructions).toBe(0n);

    for (const [cached, program] of [[first, a], [again, a], [other, b], [lie, aLie]] as const) {
      const fresh = executeFromLaunch(target, program);
      expect(cached.traceSha256).toBe(fresh.traceSha256);
      expect(cached.judgement).toEqual(fresh.judgement);
      expect(cached.gpas).toEqual(fresh.gpas);
    }
    // The planted bug is what the memory description exposes, from the cache as from a launch.
    expect(again.judgement.findings.map((f) => f.category)).toContain('latent-double-acceptance');
    expect(again.traceSha256).toBe(first.traceSha256);
  }, 180_000);

  it.each(['tdx', 'snp'] as const)('%s: launches after evictions, on the machines earlier launches left, give what launches on new machines give', (platform) => {
    const target = plantedBugTarget(platform, 'e820-unchecked');
    const executor = createExecutor(target);
    executors.push(executor);
    // More launch parts than the cache holds, so that later ones launch on the machines (and the
    // translated code) of evicted ones: memory maps (the planted bug's finding), pre-accepted sizes, a memory size lie (ends
    // before the stage), pages added at launch and, on SNP, the CPUID page as a ZERO page (the guest terminates before the stage).
    const programs: AttackProgram[] = [
      ...Array.from({ length: LAUNCH_CACHE_ENTRIES + 1 }, (_, i) => overlapping(platform, BigInt(20 + 2 * i) << 20n)),
      { platform, decisions: [], memoryDescription: { memoryBytes: 1n << 40n } },
      { platform, decisions: [], memoryDescription: { preAcceptBytes: 8n << 20n } },
      platform === 'tdx'
        ? { platform, decisions: [], launch: [{ kind: 'tdx.page-add', gpa: 0x5000000n, fill: 0xcc }] }
        : { platform, decisions: [], launch: [{ kind: 'snp.launch-page', gpa: 0x5000000n, fill: 0xcc }] },
      ...(platform === 'snp' ? [{ platform, decisions: [], launch: [{ kind: 'snp.cpuid-page' as const, type: 'ZERO' as const }] }] : []),
      { platform, decisions: [], memoryDescription: { preAcceptBytes: 16n << 20n } },
    ];
    let endedBeforeStage = 0;
    for (const program of programs) {
      expect(executor.startsFromSnapshot!(program)).toBe(false);
      const reused = executor.execute(program);
      const fresh = launchOnNewMachine(target, program);
      expect(reused.launchInstructions).toBeGreaterThan(0n);
      expect(reused.launchInstructions).toBe(fresh.launchInstructions);
      expect(reused.traceSha256).toBe(fresh.traceSha256);
      expect(reused.judgement).toEqual(fresh.judgement);
      expect(reused.instructions).toBe(fresh.instructions);
      expect(reused.vmmExits).toBe(fresh.vmmExits);
      expect(reused.gpas).toEqual(fresh.gpas);
      if (reused.instructions === 0n) endedBeforeStage++;
    }
    // Both kinds of launch hand their machine on: those that ended before the stage and those kept paused there.
    expect(endedBeforeStage).toBeGreaterThan(0);
    expect(endedBeforeStage).toBeLessThan(programs.length);
  }, 180_000);

  it('keeps at most LAUNCH_CACHE_ENTRIES launched VMs, evicting the least recently used', () => {
    const executor = createExecutor(plantedBugTarget('tdx', 'e820-unchecked'));
    executors.push(executor);
    const programs = Array.from({ length: LAUNCH_CACHE_ENTRIES + 1 }, (_, i) => overlapping('tdx', BigInt(24 + 2 * i) << 20n));
    const executions = programs.slice(0, LAUNCH_CACHE_ENTRIES).map((p) => executor.execute(p));
    // The first launched is used again, so the second is now the least recently used.
    expect(executor.execute(programs[0]!).launchInstructions).toBe(0n);
    executor.execute(programs[LAUNCH_CACHE_ENTRIES]!);
    expect(executor.startsFromSnapshot!(programs[1]!)).toBe(false);
    expect(programs.filter((_, i) => i !== 1).every((p) => executor.startsFromSnapshot!(p))).toBe(true);
    // The evicted launch cannot run its execution again for the trace hash: launched again, it gives it.
    expect(executions[1]!.traceSha256).toBe(executeFromLaunch(plantedBugTarget('tdx', 'e820-unchecked'), programs[1]!).traceSha256);
  }, 180_000);

  it('the execution of an evicted launch reads the trace hash replay gives, for a program with decisions too', () => {
    // Host actions right after the stage: running on from the launch's pause (executeFromLaunch)
    // and restoring its snapshot take them into different guests here, so only a relaunch and
    // restore give the execution's own hash (a campaign reads hashes after shrinking evicted it).
    const target = plantedBugTarget('snp', 'e820-unchecked');
    const program: AttackProgram = {
      ...overlapping('snp', 64n << 20n),
      decisions: [
        { at: 'exit', exitIndex: 0, action: { kind: 'snp.rmpupdate', spa: 0x207000n, assigned: true, pageSize: '4k', gpa: 0x207000n } },
        { at: 'exit', exitIndex: 6, action: { kind: 'snp.unvalidate', spa: 0x1001000n } },
      ],
      launch: [{ kind: 'snp.rmpupdate', spa: 0x2f20000n, assigned: true, pageSize: '4k', gpa: 0x2f20000n }],
    };
    const executor = createExecutor(target);
    executors.push(executor);
    const execution = executor.execute(program);
    for (let i = 0; i < LAUNCH_CACHE_ENTRIES; i++) executor.execute(overlapping('snp', BigInt(24 + 2 * i) << 20n));
    expect(executor.startsFromSnapshot!(program)).toBe(false);
    const replay = createExecutor(target);
    try {
      expect(execution.traceSha256).toBe(replay.execute(program, { keepTrace: true }).traceSha256);
    } finally {
      replay.close();
    }
  }, 180_000);
});
