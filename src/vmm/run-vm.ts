// The one run loop for both platforms, KVM_RUN-style: the platform runs the vCPU until an exit
// the VMM must handle (`Platform.step`), the VMM answers through its handle, repeat until an
// outcome. Nothing the guest or the VMM does escapes as an exception: errors become outcomes.
import { HostAccessRefused } from '../platform/host-memory.js';
import type { Platform } from '../platform/platform.js';
import type { RunOutcome } from '../shared/outcome.js';

/** The VMM side of the loop for one platform's exits. */
export interface VmmDriver<Exit> {
  /** Handles one exit through the VMM's handle: resume the guest or end the run. */
  handleExit(exit: Exit): 'resume' | RunOutcome;
  /**
   * Identifies an exit that, repeated back to back, means the VMM is not resolving it (the same
   * fault at the same RIP and GPA). undefined: not a fault exit.
   */
  repeatKey(exit: Exit): string | undefined;
  /** Called once with the final outcome (flush the console, …). */
  finish?(outcome: RunOutcome): void;
}

export interface RunVmOptions {
  /** The same fault exit this many times in a row is a livelock (vmm-error). Default 64. */
  maxRepeats?: number;
  /** Give up after this many VMM exits (a guard, not a budget). Default: no limit. */
  maxExits?: number;
}

export function runVm<Exit>(platform: Platform<Exit, unknown>, vmm: VmmDriver<Exit>, options: RunVmOptions = {}): RunOutcome {
  const maxRepeats = options.maxRepeats ?? 64;
  const maxExits = options.maxExits ?? Number.POSITIVE_INFINITY;
  const finish = (source: 'hw' | 'vmm', outcome: RunOutcome): RunOutcome => {
    platform.trace.record(source, 'outcome', { outcome: outcome.outcome, reason: outcome.reason });
    vmm.finish?.(outcome);
    return outcome;
  };
  let lastKey: string | undefined;
  let repeats = 0;
  try {
    for (let exits = 0; ; exits++) {
      if (exits >= maxExits) return finish('vmm', { outcome: 'vmm-error', reason: `more than ${maxExits} exits` });
      const step = platform.step();
      if (step.kind === 'outcome') return finish('hw', step.outcome);
      const key = vmm.repeatKey(step.exit);
      repeats = key !== undefined && key === lastKey ? repeats + 1 : 0;
      lastKey = key;
      if (repeats >= maxRepeats) return finish('vmm', { outcome: 'vmm-error', reason: `no progress: the same exit ${repeats + 1} times in a row (${key})` });
      const answer = vmm.handleExit(step.exit);
      if (answer !== 'resume') return finish('vmm', answer);
    }
  } catch (err) {
    // Guest-controlled data must never crash the host: a VMM reading a bad GHCB, a refused host
    // access, or a bug in minivisor itself all end the run here, named as such.
    const vmmFault = err instanceof HostAccessRefused || err instanceof RangeError;
    const message = err instanceof Error ? err.message : String(err);
    return finish('vmm', { outcome: 'vmm-error', reason: vmmFault ? `VMM: ${message}` : `internal error: ${message}` });
  }
}
