// The vCPU scheduler (src/cpu/vcpu-scheduler.ts) against its documented contract (the file's
// header and README "Several vCPUs accepting at once"): round-robin takes the next vCPU in index order; a vCPU that
// PAUSEs is left out until every vCPU has paused or one stops for another reason; a vCPU that is
// not runnable is never chosen; random turns are 1..quantum instructions; PCT runs the highest
// priority and drops the running vCPU below every initial priority at a change point (Burckhardt
// et al., ASPLOS 2010); the turns are a function of the seed alone. A machine stand-in records
// which vCPU the scheduler makes the running one: the scheduler reads and writes nothing else.
import { describe, expect, it } from 'vitest';
import type { VmExit } from '../../src/cpu/exits.js';
import type { Machine } from '../../src/cpu/machine.js';
import { DEFAULT_QUANTUM, VcpuScheduler, type ScheduleOptions, type SwitchReason } from '../../src/cpu/vcpu-scheduler.js';

interface FakeVcpu { instructions: bigint; budgetCharged: bigint; budgetLimit: bigint; instructionLimit: bigint; completed: number; complete(): void }

type FakeMachine = Omit<Machine, 'vcpu' | 'vcpuIndex'> & { vcpu: FakeVcpu; vcpuIndex: number };

function fakeMachine(vcpuCount: number): FakeMachine {
  const vcpu: FakeVcpu = {
    instructions: 0n, budgetCharged: 0n, budgetLimit: 1n << 40n, instructionLimit: 0n, completed: 0,
    complete() { this.completed++; },
  };
  const machine = {
    vcpuCount, vcpuIndex: 0, vcpu,
    switchVcpu(index: number) {
      if (index < 0 || index >= vcpuCount) throw new RangeError(`no vCPU ${index}`);
      machine.vcpuIndex = index;
    },
  };
  return machine as unknown as FakeMachine;
}

const asMachine = (m: FakeMachine): Machine => m as unknown as Machine;

/** The running vCPU after each of `reasons`, as switch points. */
function turns(s: VcpuScheduler, reasons: readonly SwitchReason[]): number[] {
  return reasons.map((r) => { s.switchPoint(r); return s.machine.vcpuIndex; });
}

const exits = (n: number): SwitchReason[] => Array.from({ length: n }, () => 'exit');

describe('vCPU scheduler: options', () => {
  it('the quantum must be a positive integer; 1 is one', () => {
    for (const quantum of [0, -1, 1.5, Number.NaN]) {
      expect(() => new VcpuScheduler(asMachine(fakeMachine(2)), { policy: 'round-robin', seed: 1n, quantum })).toThrow(RangeError);
    }
    expect(() => new VcpuScheduler(asMachine(fakeMachine(2)), { policy: 'round-robin', seed: 1n, quantum: 1 })).not.toThrow();
  });

  it('the default quantum is the README\'s (`--quantum K`: 2000)', () => {
    expect(DEFAULT_QUANTUM).toBe(2000);
  });

  it('pct defaults to depth 3 and a horizon of 20000 switch points', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(2)), { policy: 'pct', seed: 1n, quantum: 10 });
    expect(s.options).toMatchObject({ depth: 3, horizon: 20_000 });
  });
});

describe('vCPU scheduler: round-robin', () => {
  it('each switch point runs the next vCPU in index order, for a quantum of instructions', () => {
    const m = fakeMachine(3);
    const s = new VcpuScheduler(asMachine(m), { policy: 'round-robin', seed: 1n, quantum: 100 });
    expect(turns(s, exits(4))).toEqual([1, 2, 0, 1]);
    expect(s.switches).toBe(4);
    m.vcpu.instructions = 5000n;
    s.switchPoint('quantum');
    expect(m.vcpu.instructionLimit).toBe(5100n);
  });

  it('one vCPU: every switch point keeps it, and no switch is counted', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(1)), { policy: 'round-robin', seed: 1n, quantum: 100 });
    expect(turns(s, ['exit', 'pause', 'quantum'])).toEqual([0, 0, 0]);
    expect(s.switches).toBe(0);
  });

  it('a vCPU that is not runnable is skipped', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'round-robin', seed: 1n, quantum: 100 });
    s.isRunnable = (i) => i !== 1;
    expect(turns(s, exits(3))).toEqual([2, 0, 2]);
  });

  it('with only the running vCPU runnable, it keeps running', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'round-robin', seed: 1n, quantum: 100 });
    s.isRunnable = (i) => i === 0;
    expect(turns(s, ['exit', 'pause', 'pause'])).toEqual([0, 0, 0]);
    expect(s.switches).toBe(0);
  });

  it('a vCPU that PAUSEd is left out until every vCPU has paused, or one stops for another reason', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'round-robin', seed: 1n, quantum: 100 });
    // 0 pauses → 1; 1 pauses → 2; 2 exits (not a pause): every vCPU eligible again → 0.
    expect(turns(s, ['pause', 'pause', 'exit'])).toEqual([1, 2, 0]);
    // 0 pauses → 1; 1 pauses → 2; 2 pauses: all paused, so all eligible → 0 (index order from 2).
    expect(turns(s, ['pause', 'pause', 'pause'])).toEqual([1, 2, 0]);
  });

  it('a paused vCPU is skipped where index order would give it the next turn', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'round-robin', seed: 1n, quantum: 100 });
    s.switchPoint('exit'); // 0 → 1
    s.switchPoint('pause'); // 1 paused → 2
    s.switchPoint('exit'); // clears the pauses → 0
    s.switchPoint('pause'); // 0 paused → 1
    s.switchPoint('pause'); // 1 paused → 2
    // 2 PAUSEs too, with 0 and 1 paused: all have paused, so all are eligible again.
    expect(turns(s, ['pause'])).toEqual([0]);
    // Not runnable vCPUs do not count as "not yet paused": with 1 unrunnable, 0 and 2 pausing in
    // turn is everyone runnable pausing.
    s.isRunnable = (i) => i !== 1;
    expect(turns(s, ['pause', 'pause', 'pause'])).toEqual([2, 0, 2]);
  });

  it('a long instruction is split once, halfway', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(2)), { policy: 'round-robin', seed: 1n, quantum: 100 });
    expect(s.splitLongInstruction(0, 512)).toBe(256);
    expect(s.splitLongInstruction(255, 512)).toBe(256);
    expect(s.splitLongInstruction(256, 512)).toBeUndefined();
    expect(s.splitLongInstruction(0, 3)).toBe(1);
    // Fewer than two chunks left: nowhere inside (done, total) to split.
    expect(s.splitLongInstruction(0, 1)).toBeUndefined();
    expect(s.splitLongInstruction(0, 2)).toBe(1);
    expect(s.splitLongInstruction(1, 2)).toBeUndefined();
  });
});

describe('vCPU scheduler: exits it takes', () => {
  it('a PAUSE is completed and is a switch point; the end of a quantum is a switch point; the run\'s own budget and other exits are not', () => {
    const m = fakeMachine(2);
    const s = new VcpuScheduler(asMachine(m), { policy: 'round-robin', seed: 1n, quantum: 100 });
    expect(s.takesExit({ kind: 'pause', rip: 0n, length: 2 } as VmExit)).toBe(true);
    expect(m.vcpu.completed).toBe(1);
    expect(m.vcpuIndex).toBe(1);
    // The scheduler's limit reached, the run's budget not: a quantum end.
    m.vcpu.instructions = 100n;
    m.vcpu.budgetLimit = 1000n;
    expect(s.takesExit({ kind: 'budget', rip: 0n, instructions: 100n } as VmExit)).toBe(true);
    expect(m.vcpuIndex).toBe(0);
    // The run's budget reached (instructions plus the charge for exits): the run's, not the scheduler's.
    m.vcpu.budgetCharged = 900n;
    expect(s.takesExit({ kind: 'budget', rip: 0n, instructions: 100n } as VmExit)).toBe(false);
    m.vcpu.budgetCharged = 899n;
    expect(s.takesExit({ kind: 'budget', rip: 0n, instructions: 100n } as VmExit)).toBe(true);
    expect(s.takesExit({ kind: 'hlt', rip: 0n, length: 1 } as VmExit)).toBe(false);
    expect(m.vcpu.completed).toBe(1);
  });
});

describe('vCPU scheduler: random', () => {
  it('a turn is 1..quantum instructions, and not always the same length', () => {
    const lengths = new Set<bigint>();
    for (let seed = 1n; seed <= 10n; seed++) {
      const m = fakeMachine(2);
      const s = new VcpuScheduler(asMachine(m), { policy: 'random', seed, quantum: 4 });
      for (let i = 0; i < 20; i++) {
        s.switchPoint('exit');
        const turn = m.vcpu.instructionLimit - m.vcpu.instructions;
        expect(turn >= 1n && turn <= 4n).toBe(true);
        lengths.add(turn);
      }
    }
    expect([...lengths].sort()).toEqual([1n, 2n, 3n, 4n]);
  });

  it('chooses among the vCPUs that have not paused: a PAUSE with two vCPUs always hands over', () => {
    for (let seed = 1n; seed <= 20n; seed++) {
      const m = fakeMachine(2);
      const s = new VcpuScheduler(asMachine(m), { policy: 'random', seed, quantum: 10 });
      for (let i = 0; i < 10; i++) {
        s.switchPoint('exit'); // no vCPU has paused now
        const before = m.vcpuIndex;
        s.switchPoint('pause');
        expect(m.vcpuIndex).toBe(1 - before);
      }
    }
  });

  it('a PAUSE at the first switch point hands over too: no vCPU starts out paused', () => {
    for (let seed = 1n; seed <= 20n; seed++) {
      const m = fakeMachine(3);
      const s = new VcpuScheduler(asMachine(m), { policy: 'random', seed, quantum: 10 });
      s.switchPoint('pause');
      expect(m.vcpuIndex).not.toBe(0);
    }
  });

  it('with no vCPU runnable, the running one goes on (random and pct as round-robin)', () => {
    for (const policy of ['round-robin', 'random', 'pct'] as const) {
      const m = fakeMachine(3);
      const s = new VcpuScheduler(asMachine(m), { policy, seed: 2n, quantum: 10 });
      s.isRunnable = () => false;
      expect(turns(s, ['exit', 'pause', 'quantum'])).toEqual([0, 0, 0]);
    }
  });

  it('never chooses a vCPU that is not runnable, and chooses each runnable one', () => {
    const chosen = new Set<number>();
    const m = fakeMachine(4);
    const s = new VcpuScheduler(asMachine(m), { policy: 'random', seed: 3n, quantum: 10 });
    s.isRunnable = (i) => i !== 2;
    for (let i = 0; i < 100; i++) { s.switchPoint('exit'); chosen.add(m.vcpuIndex); }
    expect([...chosen].sort()).toEqual([0, 1, 3]);
  });

  it('splits a long instruction inside (done, total) or not at all, both happening', () => {
    const s = new VcpuScheduler(asMachine(fakeMachine(2)), { policy: 'random', seed: 5n, quantum: 10 });
    const splits = Array.from({ length: 200 }, () => s.splitLongInstruction(10, 20));
    for (const at of splits) if (at !== undefined) expect(at > 10 && at < 20).toBe(true);
    expect(splits.some((at) => at === undefined)).toBe(true);
    expect(new Set(splits.filter((at) => at !== undefined))).toEqual(new Set([11, 12, 13, 14, 15, 16, 17, 18, 19]));
    for (let i = 0; i < 20; i++) expect(s.splitLongInstruction(19, 20)).toBeUndefined();
  });

  it('splits a long instruction with probability 1/2 (the header: random and pct split with probability 1/2)', () => {
    for (const policy of ['random', 'pct'] as const) {
      const s = new VcpuScheduler(asMachine(fakeMachine(2)), { policy, seed: 11n, quantum: 10 });
      const splits = Array.from({ length: 2000 }, () => s.splitLongInstruction(0, 512)).filter((at) => at !== undefined).length;
      expect(splits).toBeGreaterThan(850);
      expect(splits).toBeLessThan(1150);
    }
  });
});

describe('vCPU scheduler: PCT (Burckhardt et al., ASPLOS 2010)', () => {
  it('depth 1 (no change point): the highest-priority vCPU runs at every switch point', () => {
    for (let seed = 1n; seed <= 8n; seed++) {
      const s = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'pct', seed, quantum: 10, depth: 1, horizon: 1 });
      const order = turns(s, exits(6));
      expect(new Set(order).size).toBe(1);
    }
  });

  it('the initial priorities are random: over seeds, each vCPU is sometimes the highest', () => {
    const highest = new Set<number>();
    for (let seed = 1n; seed <= 16n; seed++) {
      // depth 1: no change point (with one, the first would drop vCPU 0 at switch point 1).
      const s = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'pct', seed, quantum: 10, depth: 1, horizon: 1 });
      highest.add(turns(s, exits(1))[0]!);
    }
    expect([...highest].sort()).toEqual([0, 1, 2]);
  });

  it('depth 2: one change point, drawn from switch points 1..horizon: the running vCPU hands over once, by then', () => {
    const changedAt = new Set<number>();
    for (let seed = 1n; seed <= 24n; seed++) {
      const m = fakeMachine(2);
      const s = new VcpuScheduler(asMachine(m), { policy: 'pct', seed, quantum: 10, depth: 2, horizon: 3 });
      // order[i] runs after switch point i + 1; the first turn goes to the highest priority.
      const order = turns(s, exits(10));
      const changes = order.flatMap((v, i) => (i > 0 && v !== order[i - 1] ? [i + 1] : []));
      expect(changes.length, `seed ${seed}: ${order}`).toBeLessThanOrEqual(1);
      if (changes.length === 1) { expect(changes[0]).toBeLessThanOrEqual(3); changedAt.add(changes[0]!); }
    }
    // A change point after the first switch point drops a vCPU that had run: seen for some seed.
    expect([...changedAt].some((at) => at >= 2)).toBe(true);
  });

  it('a change point drops the running vCPU below every initial priority: with depth 2 and horizon 1, the first switch point hands over for good', () => {
    for (let seed = 1n; seed <= 8n; seed++) {
      const m = fakeMachine(2);
      const s = new VcpuScheduler(asMachine(m), { policy: 'pct', seed, quantum: 10, depth: 2, horizon: 1 });
      // vCPU 0 runs first (the machine starts there), so at the change point it is the one that drops.
      expect(turns(s, exits(5))).toEqual([1, 1, 1, 1, 1]);
    }
  });

  it('with depth d, d - 1 change points: both change points on the first switch point drop vCPU 0 alone, and the highest of the others runs from then on', () => {
    for (let seed = 1n; seed <= 8n; seed++) {
      const m = fakeMachine(3);
      const s = new VcpuScheduler(asMachine(m), { policy: 'pct', seed, quantum: 10, depth: 3, horizon: 1 });
      // Both change points fall on switch point 1 (indexOf finds the first: priority 1): vCPU 0 drops.
      const order = turns(s, exits(4));
      expect(order[0]).not.toBe(0);
      expect(new Set(order).size).toBe(1);
    }
  });

  it('the initial priorities are a random permutation of d..d+n-1: over seeds, every order of three vCPUs occurs', () => {
    // Burckhardt et al. §3 (Algorithm 1): "assign the n priority values d, d+1, ..., d+n-1 to the
    // threads at random". Each vCPU being sometimes the highest is not enough: a shuffle that never
    // swaps the first two gives three of the six orders.
    const orders = new Set<string>();
    for (let seed = 1n; seed <= 48n; seed++) {
      const s = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'pct', seed, quantum: 10, depth: 3 });
      const priorities = s.saveState().priorities;
      expect([...priorities].sort()).toEqual([3, 4, 5]);
      orders.add(priorities.join(','));
    }
    expect([...orders].sort()).toEqual(['3,4,5', '3,5,4', '4,3,5', '4,5,3', '5,3,4', '5,4,3']);
  });

  it('at the i-th change point the running vCPU\'s priority becomes i (Burckhardt et al., Algorithm 1: priority change point k_i lowers it to i)', () => {
    const seen = new Set<number>();
    for (let seed = 1n; seed <= 24n; seed++) {
      const m = fakeMachine(3);
      const s = new VcpuScheduler(asMachine(m), { policy: 'pct', seed, quantum: 10, depth: 3, horizon: 6 });
      const points = s.saveState().changePoints;
      for (let k = 1; k <= 6; k++) {
        const running = m.vcpuIndex;
        s.switchPoint('exit');
        const i = points.indexOf(k) + 1;
        if (i === 0 || points.lastIndexOf(k) + 1 !== i) continue;  // none here, or two change points on one switch point
        expect(s.saveState().priorities[running], `seed ${seed}, switch point ${k}`).toBe(i);
        seen.add(i);
      }
    }
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it('a PAUSEd vCPU yields even when its priority is the highest', () => {
    for (let seed = 1n; seed <= 8n; seed++) {
      const m = fakeMachine(2);
      const s = new VcpuScheduler(asMachine(m), { policy: 'pct', seed, quantum: 10, depth: 1 });
      s.switchPoint('exit');
      const high = m.vcpuIndex;
      expect(turns(s, ['pause', 'exit'])).toEqual([1 - high, high]);
    }
  });
});

describe('vCPU scheduler: determinism and snapshots', () => {
  const options: ScheduleOptions = { policy: 'random', seed: 42n, quantum: 50 };
  const run = (s: VcpuScheduler) => Array.from({ length: 30 }, (_, i) => {
    s.switchPoint(i % 3 === 0 ? 'pause' : 'exit');
    return [s.machine.vcpuIndex, s.machine.vcpu.instructionLimit];
  });

  it('the same seed gives the same turns; another seed other turns', () => {
    const a = run(new VcpuScheduler(asMachine(fakeMachine(4)), options));
    expect(run(new VcpuScheduler(asMachine(fakeMachine(4)), options))).toEqual(a);
    expect(run(new VcpuScheduler(asMachine(fakeMachine(4)), { ...options, seed: 43n }))).not.toEqual(a);
  });

  it('a restored scheduler gives the turns it gave after the save', () => {
    for (const policy of ['random', 'pct'] as const) {
      const m = fakeMachine(3);
      const s = new VcpuScheduler(asMachine(m), { ...options, policy, horizon: 40 });
      run(s);
      const saved = s.saveState();
      const vcpu = m.vcpuIndex;
      const after = run(s);
      const switches = s.switches;
      m.vcpuIndex = vcpu;
      s.loadState(saved);
      expect(run(s)).toEqual(after);
      expect(s.switches).toBe(switches);
    }
  });

  it('a restore brings back the options, change points, priorities, pauses and switch-point count of the save', () => {
    for (let seed = 1n; seed <= 8n; seed++) restoreUndoesAll(seed);
  });

  function restoreUndoesAll(seed: bigint): void {
    const m = fakeMachine(3);
    const s = new VcpuScheduler(asMachine(m), { policy: 'pct', seed, quantum: 10, depth: 3, horizon: 12 });
    turns(s, ['exit', 'pause']);
    const saved = s.saveState();
    const vcpu = m.vcpuIndex;
    const reasons: SwitchReason[] = ['pause', 'exit', 'exit', 'pause', 'exit', 'exit', 'exit', 'exit', 'exit', 'exit', 'exit', 'exit', 'exit', 'exit'];
    const after = turns(s, reasons);
    const limit = m.vcpu.instructionLimit;
    // Another schedule in between: a restore must undo all of it.
    s.reschedule({ policy: 'pct', seed: seed + 77n, quantum: 3, depth: 1 });
    turns(s, exits(5));
    m.vcpuIndex = vcpu;
    s.loadState(saved);
    expect(turns(s, reasons)).toEqual(after);
    expect(m.vcpu.instructionLimit).toBe(limit);
  }

  it('reschedule draws pct priorities from the new seed, as a fresh scheduler of that seed', () => {
    for (let seed = 1n; seed <= 8n; seed++) {
      const fresh = new VcpuScheduler(asMachine(fakeMachine(3)), { policy: 'pct', seed, quantum: 10, depth: 1 });
      const m = fakeMachine(3);
      const s = new VcpuScheduler(asMachine(m), { policy: 'pct', seed: 100n + seed, quantum: 10, depth: 1 });
      s.reschedule({ policy: 'pct', seed, quantum: 10, depth: 1 });
      expect(turns(s, exits(2))).toEqual(turns(fresh, exits(2)));
    }
  });

  it('reschedule: turns from the new seed, the same as a fresh scheduler of that seed at the same switch point count (pct change points move past the points already taken)', () => {
    const m = fakeMachine(2);
    const s = new VcpuScheduler(asMachine(m), { policy: 'round-robin', seed: 1n, quantum: 10 });
    turns(s, exits(7));
    // depth 2, horizon 1: the change point falls on the first switch point after the reschedule.
    s.reschedule({ policy: 'pct', seed: 9n, quantum: 10, depth: 2, horizon: 1 });
    const running = m.vcpuIndex;
    expect(turns(s, exits(3))).toEqual([1 - running, 1 - running, 1 - running]);
  });
});
