// The campaign's fixed cost model and what it makes the mutator do: fresh launches get a bounded
// share of the cost, and over it mutants keep their parent's launch part (so they start from that
// launch's snapshot).
import { describe, expect, it } from 'vitest';
import { launchKey, type AttackProgram } from '../../../src/fuzz/attack-program.js';
import { CostAccount, EXECUTION_OVERHEAD, executionCost, LAUNCH_OVERHEAD, MAX_LAUNCH_COST_SHARE } from '../../../src/fuzz/execution-cost.js';
import { mutate, type ExecutionProfile } from '../../../src/fuzz/mutate.js';
import { Prng } from '../../../src/shared/prng.js';

describe('execution cost', () => {
  it('charges a fresh launch far more than an execution from a snapshot, and never the wall clock', () => {
    const fromSnapshot = executionCost({ instructions: 43_000n });
    const launched = executionCost({ instructions: 43_000n, launchInstructions: 580_000n });
    expect(fromSnapshot.launch).toBe(0n);
    expect(fromSnapshot.total).toBeGreaterThanOrEqual(EXECUTION_OVERHEAD);
    expect(launched.launch).toBeGreaterThanOrEqual(LAUNCH_OVERHEAD);
    expect(launched.total).toBe(fromSnapshot.total + launched.launch);
    expect(executionCost({ instructions: 43_000n })).toEqual(fromSnapshot);
  });

  it('is over the launch budget after a launch until enough executions from snapshots have followed', () => {
    const account = new CostAccount();
    account.add({ instructions: 43_000n });
    expect(account.overLaunchBudget()).toBe(false);
    account.add({ instructions: 43_000n, launchInstructions: 580_000n });
    expect(account.overLaunchBudget()).toBe(true);
    let executions = 0;
    while (account.overLaunchBudget()) {
      account.add({ instructions: 43_000n });
      executions++;
    }
    // The launch is now at most its share of all the cost.
    expect(account.launch * MAX_LAUNCH_COST_SHARE.denominator).toBeLessThanOrEqual(account.total * MAX_LAUNCH_COST_SHARE.numerator);
    expect(executions).toBeGreaterThan(10);
    expect(account.launches).toBe(1);
  });
});

describe('mutation that keeps the launch', () => {
  const parent: AttackProgram = {
    platform: 'tdx',
    decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n } }],
    launch: [{ kind: 'tdx.page-add', gpa: 0x600000n, fill: 0 }],
    memoryDescription: { memoryBytes: 64n << 20n },
  };
  const profile: ExecutionProfile = {
    callCounts: new Map([['tdx.mapGpa', 3], ['tdx.instructionIo', 20], ['tdx.onAcceptViolation', 2]]), vmmExits: 25,
    gpas: [0x100000n, 0x4000000n], memoryBytes: 128n << 20n,
  };

  it('never changes the launch part with keepLaunch, and does change it sometimes without', () => {
    const rng = new Prng(7n);
    let kept = 0;
    let changedWithout = 0;
    for (let i = 0; i < 400; i++) {
      const mutant = mutate(rng, parent, profile, undefined, { keepLaunch: true });
      if (launchKey(mutant) === launchKey(parent)) kept++;
      if (launchKey(mutate(rng, parent, profile)) !== launchKey(parent)) changedWithout++;
    }
    expect(kept).toBe(400);
    expect(changedWithout).toBeGreaterThan(0);
  });
});
