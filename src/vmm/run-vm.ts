// The one run loop for both platforms, KVM_RUN-style: the platform runs the vCPU until an exit
// the VMM must handle (`Platform.step`), the VMM answers through its handle, repeat until an
// outcome. Nothing the guest or the VMM does escapes as an exception: errors become outcomes.
//
// A `Vm` is that loop plus its parts (platform, VMM, trace, console, the loop's own position),
// and takes whole-VM snapshots: `snapshot()` saves every part, `restore()` puts every part back
// (cheap: the machine copies back only the pages written since, nothing is rebuilt). A run can
// pause before the VMM handles an exit (`stopBefore`), which is where snapshots for fuzzing are
// taken: the paused exit is part of the snapshot, and the next run hands it to the VMM's policy
// as it is then (policies can be swapped between restore and run).
import { HostAccessRefused } from '../platform/host-memory.js';
import type { Platform } from '../platform/platform.js';
import type { RunOutcome } from '../shared/outcome.js';
import { loadParts, partList, saveParts, type PartList, type PartStates, type SnapshotParts, type Snapshottable } from '../shared/snapshottable.js';
import type { Trace } from '../shared/trace.js';
import type { Console } from './console.js';

/** The VMM side of the loop for one platform's exits. Its state (policy and bookkeeping) is snapshottable. */
export interface VmmDriver<Exit, State = unknown> extends Snapshottable<State> {
  /** Handles one exit through the VMM's handle: resume the guest or end the run. */
  handleExit(exit: Exit): 'resume' | RunOutcome;
  /**
   * Whether `exit`, right after `previous`, is the same fault again: repeated back to back, it
   * means the VMM is not resolving it (the same fault at the same RIP and GPA). False for an exit
   * that is not a fault. A comparison of fields, so the loop builds no text on every exit.
   */
  sameFault(previous: Exit, exit: Exit): boolean;
  /** Names a fault exit for the no-progress outcome (built only when the repeat limit is hit). */
  describeFault(exit: Exit): string;
  /** Called once with the final outcome (flush the console, …). */
  finish?(outcome: RunOutcome): void;
}

/**
 * Optional snapshot hook of a VMM policy object: a policy with state of its own (the honest SNP
 * VMM's registered GHCB, an adversary's counters) implements it and is saved with the VM.
 */
export interface PolicyStateHook {
  saveState?(): unknown;
  loadState?(state: unknown): void;
}

/** A policy as a snapshot holds it: which object was in charge, and its own state. */
export interface SavedPolicy<P extends PolicyStateHook> {
  policy: P;
  state: unknown;
}

export function savePolicy<P extends PolicyStateHook>(policy: P): SavedPolicy<P> {
  return { policy, state: policy.saveState?.() };
}

export interface RunVmOptions {
  /** The same fault exit this many times in a row is a livelock (vmm-error). Default 64. */
  maxRepeats?: number;
  /** Give up after this many VMM exits in total (a guard, not a budget). Default: no limit. */
  maxExits?: number;
}

export interface RunOptions<Exit> extends RunVmOptions {
  /** Pause before the VMM handles an exit for which this returns true (not asked again for that exit). */
  stopBefore?(exit: Exit): boolean;
}

export type RunResult<Exit> = { kind: 'ended'; outcome: RunOutcome } | { kind: 'paused'; exit: Exit };

/** Everything a Vm consists of; each part must be snapshottable, so none can be left out of a snapshot. */
export interface VmParts<Exit> extends SnapshotParts {
  platform: Platform<Exit, unknown>;
  vmm: VmmDriver<Exit>;
  trace: Trace;
  console: Console;
}

/** Where the loop is: the exit it paused before, the repeat detector, the exit count. */
interface LoopState<Exit> {
  pending: Exit | undefined;
  /** The exit before this one (exits are never changed after the platform makes them). */
  lastExit: Exit | undefined;
  repeats: number;
  exits: number;
}

/** A whole-VM snapshot: one saved state per part of its Vm. */
export interface VmSnapshot {
  readonly vm: object;
  readonly states: PartStates<SnapshotParts>;
}

export class Vm<Exit> {
  readonly platform: Platform<Exit, unknown>;
  readonly vmm: VmmDriver<Exit>;
  readonly trace: Trace;
  readonly console: Console;
  /** Every part, in restore order: the hardware first, then what sits on it. */
  readonly #parts: SnapshotParts;
  /** The same, listed once (a restore per fuzz execution listed them again every time). */
  readonly #partList: PartList;
  #loop: LoopState<Exit> = { pending: undefined, lastExit: undefined, repeats: 0, exits: 0 };

  /** `extra`: further snapshottable state that lives above the VMM (e.g. the boot's console parser). */
  constructor(parts: VmParts<Exit>, extra: SnapshotParts = {}) {
    this.platform = parts.platform;
    this.vmm = parts.vmm;
    this.trace = parts.trace;
    this.console = parts.console;
    const loop: Snapshottable<LoopState<Exit>> = {
      saveState: () => ({ ...this.#loop }),
      loadState: (state) => { Object.assign(this.#loop, state); },
    };
    this.#parts = { ...parts, ...extra, loop };
    this.#partList = partList(this.#parts);
  }

  /** VMM exits handled or pending since the VM was created (restored with snapshots). */
  get exits(): number {
    return this.#loop.exits;
  }

  snapshot(): VmSnapshot {
    return { vm: this, states: saveParts(this.#parts) };
  }

  restore(snapshot: VmSnapshot): void {
    if (snapshot.vm !== this) throw new Error('that snapshot belongs to another VM');
    loadParts(this.#partList, snapshot.states);
  }

  /**
   * Runs until an outcome, or until `stopBefore` pauses it before the VMM handles an exit. After
   * an outcome the guest stays where it stopped; running again continues from there (e.g. after
   * raising an exhausted instruction budget).
   */
  run(options: RunOptions<Exit> = {}): RunResult<Exit> {
    const loop = this.#loop;
    const maxRepeats = options.maxRepeats ?? 64;
    const maxExits = options.maxExits ?? Number.POSITIVE_INFINITY;
    try {
      for (;;) {
        let exit = loop.pending;
        loop.pending = undefined;
        if (exit === undefined) {
          if (loop.exits >= maxExits) return this.#end('vmm', { outcome: 'vmm-error', reason: `more than ${maxExits} exits` });
          const step = this.platform.step();
          if (step.kind === 'outcome') return this.#end('hw', step.outcome);
          exit = step.exit;
          loop.exits++;
          loop.repeats = loop.lastExit !== undefined && this.vmm.sameFault(loop.lastExit, exit) ? loop.repeats + 1 : 0;
          loop.lastExit = exit;
          if (loop.repeats >= maxRepeats) {
            return this.#end('vmm', { outcome: 'vmm-error', reason: `no progress: the same exit ${loop.repeats + 1} times in a row (${this.vmm.describeFault(exit)})` });
          }
          if (options.stopBefore?.(exit)) {
            loop.pending = exit;
            return { kind: 'paused', exit };
          }
        }
        const answer = this.vmm.handleExit(exit);
        if (answer !== 'resume') return this.#end('vmm', answer);
      }
    } catch (err) {
      // Guest-controlled data must never crash the host: a VMM reading a bad GHCB or making a
      // refused host access ends the run as a VMM error; anything else is a bug in minivisor.
      const vmmFault = err instanceof HostAccessRefused || err instanceof RangeError;
      const message = err instanceof Error ? err.message : String(err);
      return this.#end('vmm', { outcome: 'vmm-error', reason: vmmFault ? `VMM: ${message}` : `internal error: ${message}` });
    }
  }

  #end(source: 'hw' | 'vmm', outcome: RunOutcome): RunResult<Exit> {
    this.trace.record(source, 'outcome', { outcome: outcome.outcome, reason: outcome.reason });
    this.vmm.finish?.(outcome);
    return { kind: 'ended', outcome };
  }
}

/** Runs `vm` to its outcome (no pause). */
export function runToEnd<Exit>(vm: Vm<Exit>, options: RunVmOptions = {}): RunOutcome {
  const result = vm.run(options);
  if (result.kind !== 'ended') throw new Error('unreachable: a run without stopBefore never pauses');
  return result.outcome;
}
