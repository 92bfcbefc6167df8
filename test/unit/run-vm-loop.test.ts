// The run loop both platforms share (src/vmm/run-vm.ts), driven by a scripted platform and VMM:
// the exit budget, the no-progress guard, how errors become outcomes, and the end of a run.
import { describe, expect, it } from 'vitest';
import type { Platform } from '../../src/platform/platform.js';
import type { RunOutcome } from '../../src/shared/outcome.js';
import { Trace } from '../../src/shared/trace.js';
import { Console } from '../../src/vmm/console.js';
import { HostAccessRefused } from '../../src/platform/host-memory.js';
import { Vm, runToEnd, savePolicy, type VmmDriver } from '../../src/vmm/run-vm.js';

type Exit = { fault: string };

/** A VM whose platform makes the exits `script` lists (then ends `done`), and whose VMM resumes each (or does `onExit`). */
function scriptedVm(script: readonly string[] | 'forever', onExit?: (exit: Exit) => 'resume' | RunOutcome) {
  let next = 0;
  const platform = {
    step: () => (script === 'forever' || next < script.length
      ? { kind: 'exit', exit: { fault: script === 'forever' ? 'A' : script[next++]! } }
      : { kind: 'outcome', outcome: { outcome: 'done', reason: 'script ended' } }),
    saveState: () => next,
    loadState: (state: unknown) => { next = state as number; },
  } as unknown as Platform<Exit, unknown>;
  const handled: string[] = [];
  const finished: RunOutcome[] = [];
  const vmm: VmmDriver<Exit> = {
    handleExit: (exit) => { handled.push(exit.fault); return onExit?.(exit) ?? 'resume'; },
    sameFault: (previous, exit) => previous.fault === exit.fault,
    describeFault: (exit) => exit.fault,
    finish: (outcome) => { finished.push(outcome); },
    saveState: () => null,
    loadState: () => {},
  };
  const vm = new Vm<Exit>({ platform, vmm, trace: new Trace(), console: new Console() });
  return { vm, handled, finished };
}

describe('the run loop', () => {
  it('stops after maxExits exits, having handled exactly that many', () => {
    const { vm, handled } = scriptedVm('forever');
    expect(vm.run({ maxExits: 3 })).toEqual({ kind: 'ended', outcome: { outcome: 'vmm-error', reason: 'more than 3 exits' } });
    expect(handled).toHaveLength(3);
  });

  it('counts only back-to-back repeats: another exit in between starts the count again', () => {
    const { vm } = scriptedVm(['A', 'A', 'B', 'A', 'A']);
    expect(vm.run({ maxRepeats: 2 })).toMatchObject({ kind: 'ended', outcome: { outcome: 'done' } });
  });

  it('by default, the same exit 65 times in a row is no progress: the VMM has handled 64 of them', () => {
    const { vm, handled } = scriptedVm('forever');
    expect(vm.run()).toMatchObject({ kind: 'ended', outcome: { outcome: 'vmm-error', reason: 'no progress: the same exit 65 times in a row (A)' } });
    expect(handled).toHaveLength(64);
  });

  it('a VMM that throws RangeError (guest-controlled data out of range) ends as a VMM error; another error is an internal one', () => {
    const range = scriptedVm(['A'], () => { throw new RangeError('offset out of range'); });
    expect(range.vm.run()).toEqual({ kind: 'ended', outcome: { outcome: 'vmm-error', reason: 'VMM: offset out of range' } });
    const other = scriptedVm(['A'], () => { throw new TypeError('bug'); });
    expect(other.vm.run()).toEqual({ kind: 'ended', outcome: { outcome: 'vmm-error', reason: 'internal error: bug' } });
  });

  it('tells the VMM the outcome once when the run ends (it flushes its console then)', () => {
    const { vm, finished } = scriptedVm(['A']);
    vm.run();
    expect(finished).toEqual([{ outcome: 'done', reason: 'script ended' }]);
  });

  it('refuses to restore a snapshot of another VM', () => {
    const a = scriptedVm(['A']);
    const b = scriptedVm(['A']);
    expect(() => a.vm.restore(b.vm.snapshot())).toThrow(/another VM/);
  });
});

describe('the end of a run', () => {
  // docs/trace-schema.md: source hw is the trusted hardware model, vmm the untrusted VMM (and the loop on its behalf).
  it('a VMM outcome ends the run at once, recorded as the VMM\'s; a platform outcome as the hardware\'s', () => {
    const byVmm = scriptedVm(['A', 'B'], (exit) => (exit.fault === 'A' ? { outcome: 'fault', reason: 'gave up' } : 'resume'));
    expect(byVmm.vm.run()).toEqual({ kind: 'ended', outcome: { outcome: 'fault', reason: 'gave up' } });
    expect(byVmm.handled).toEqual(['A']);
    expect(byVmm.vm.trace.events.at(-1)).toMatchObject({ source: 'vmm', type: 'outcome', outcome: 'fault', reason: 'gave up' });
    const byPlatform = scriptedVm([]);
    expect(runToEnd(byPlatform.vm)).toEqual({ outcome: 'done', reason: 'script ended' });
    expect(byPlatform.vm.trace.events.at(-1)).toMatchObject({ source: 'hw', type: 'outcome', outcome: 'done', reason: 'script ended' });
    const thrown = scriptedVm(['A'], () => { throw new RangeError('out of range'); });
    thrown.vm.run();
    expect(thrown.vm.trace.events.at(-1)).toMatchObject({ source: 'vmm', type: 'outcome', outcome: 'vmm-error' });
  });
});

describe('pausing and snapshots of the run loop', () => {
  it('stopBefore pauses before the VMM handles the exit it picks; the next run hands that exit to the VMM first, counted once', () => {
    // (A VMM that ends the run after 5 exits: a loop handing B over again and again stops.)
    const { vm, handled } = scriptedVm(['A', 'B', 'C'], () => (handled.length > 5 ? { outcome: 'vmm-error', reason: 'looping' } : 'resume'));
    const asked: string[] = [];
    expect(vm.run({ stopBefore: (exit) => { asked.push(exit.fault); return exit.fault === 'B'; } })).toEqual({ kind: 'paused', exit: { fault: 'B' } });
    expect(handled).toEqual(['A']);
    expect(vm.exits).toBe(2);
    // Not asked again about B: the run goes on from it.
    expect(vm.run({ stopBefore: (exit) => { asked.push(exit.fault); return exit.fault === 'B'; } })).toMatchObject({ kind: 'ended', outcome: { outcome: 'done' } });
    expect(handled).toEqual(['A', 'B', 'C']);
    expect(asked).toEqual(['A', 'B', 'C']);
    expect(vm.exits).toBe(3);
  });

  it('stopBefore can pause before the very first exit: the VMM has handled nothing yet', () => {
    const { vm, handled } = scriptedVm(['A', 'B']);
    expect(vm.run({ stopBefore: (exit) => exit.fault === 'A' })).toEqual({ kind: 'paused', exit: { fault: 'A' } });
    expect([handled, vm.exits]).toEqual([[], 1]);
  });

  it('a snapshot holds the loop as it was (the paused exit, the exit count, the repeats): later runs do not change it', () => {
    const { vm, handled } = scriptedVm(['A', 'A', 'B', 'C']);
    vm.run({ stopBefore: (exit) => exit.fault === 'B' });
    const snap = vm.snapshot();
    expect(vm.run({ maxRepeats: 2 })).toMatchObject({ kind: 'ended', outcome: { outcome: 'done' } });
    expect(vm.exits).toBe(4);
    vm.restore(snap);
    expect(vm.exits).toBe(3);
    handled.length = 0;
    // B is the paused exit again, handed to the VMM first.
    expect(vm.run({ maxRepeats: 2 })).toMatchObject({ kind: 'ended', outcome: { outcome: 'done' } });
    expect(handled).toEqual(['B', 'C']);
    expect(vm.exits).toBe(4);
  });

  it('a budget of 0 exits ends the run before the first exit; maxRepeats 1 ends it at the first repeat', () => {
    const none = scriptedVm('forever');
    expect(none.vm.run({ maxExits: 0 })).toEqual({ kind: 'ended', outcome: { outcome: 'vmm-error', reason: 'more than 0 exits' } });
    expect(none.handled).toEqual([]);
    const once = scriptedVm('forever');
    expect(once.vm.run({ maxRepeats: 1 })).toMatchObject({ kind: 'ended', outcome: { outcome: 'vmm-error', reason: 'no progress: the same exit 2 times in a row (A)' } });
    expect(once.handled).toEqual(['A']);
  });

  it('a host access the platform refuses (HostAccessRefused) ends the run as a VMM error naming it', () => {
    const { vm, finished } = scriptedVm(['A'], () => { throw new HostAccessRefused(0x5000n, 'a private page'); });
    const result = vm.run();
    expect(result).toMatchObject({ kind: 'ended', outcome: { outcome: 'vmm-error' } });
    expect(result.kind === 'ended' && result.outcome.reason).toMatch(/^VMM: .*0x5000/);
    expect(finished).toHaveLength(1);
  });
});

describe('savePolicy', () => {
  it('keeps the policy object and what its own saveState returned', () => {
    const policy = { saveState: () => ({ registered: 0x7000n }) };
    expect(savePolicy(policy)).toEqual({ policy, state: { registered: 0x7000n } });
    expect(savePolicy({})).toEqual({ policy: {}, state: undefined });
  });
});
