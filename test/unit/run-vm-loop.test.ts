// The run loop both platforms share (src/vmm/run-vm.ts), driven by a scripted platform and VMM:
// the exit budget, the no-progress guard, how errors become outcomes, and the end of a run.
import { describe, expect, it } from 'vitest';
import type { Platform } from '../../src/platform/platform.js';
import type { RunOutcome } from '../../src/shared/outcome.js';
import { Trace } from '../../src/shared/trace.js';
import { Console } from '../../src/vmm/console.js';
import { Vm, type VmmDriver } from '../../src/vmm/run-vm.js';

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
