// Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal closed) during a long command (`fuzz`,
// `shrink`): the first one asks the work to stop at the next execution and keep what it has, as
// libFuzzer and AFL++ do (AFL++'s setup_signal_handlers, src/afl-fuzz-init.c, treats SIGHUP,
// SIGINT and SIGTERM alike: "various ways of saying stop"); a second one quits at once. Both
// commands share this, so they stop, report and end alike.
import { addon } from '../native/binding.js';
import { removeLiveTemps, watchLiveTemps } from '../shared/output-file.js';

/**
 * The signals that stop a command with its work saved, and the exit status each ends with (128 +
 * its number). Node resets every signal to its default at start, so even under nohup(1) a SIGHUP
 * reaches it: the work is saved then too, rather than lost.
 */
export const STOP_SIGNALS = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * The signal's number: its exit status less 128. Not read from node:os: loading that module was
 * ~0.5 ms of every command that imports this one, a default boot included (issue 11).
 */
export function stopSignalNumber(name: StopSignal): number {
  return STOP_SIGNALS[name] - 128;
}

export interface StopSignals {
  /** The first stop signal received, if any. */
  signal(): StopSignal | undefined;
  /** Puts the default handling back. */
  stop(): void;
}

/**
 * Until `stop()`: the first SIGINT, SIGTERM or SIGHUP aborts `controller` after `onFirst` (which says on
 * stderr what happens now); a second one removes the temporary files being written (never a
 * half-written output) and ends the process at once, by that signal. A handler only runs
 * between executions: each execution is synchronous, so the work checks `controller` before the next.
 */
export function catchStopSignals(controller: AbortController, onFirst: (signal: StopSignal) => void): StopSignals {
  let received: StopSignal | undefined;
  const handlers = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((name) => {
    const handler = () => {
      if (received !== undefined) {
        removeLiveTemps();
        stop();
        process.kill(process.pid, name);
        return;
      }
      received = name;
      onFirst(name);
      controller.abort();
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  const stop = () => {
    for (const [name, handler] of handlers) process.removeListener(name, handler);
  };
  return { signal: () => received, stop };
}

/**
 * For a command that writes its output files while it runs synchronously (boot, replay, fuzz
 * merge, trace export, test): no JavaScript runs until the work ends, so SIGINT, SIGTERM or SIGHUP
 * ends the process at once, by node's handler, the shell's 130, 143 or 129 as after `fuzz`. While a
 * temporary file is being written, a native handler removes it first
 * (native/src/stop_signal_cleanup.h); its output stays as it was. A signal with a JavaScript
 * listener (catchStopSignals) is left to it. The addon loads at the first temporary file.
 */
export function removeTempsOnStopSignals(): void {
  let guard: ((paths: readonly string[], signals: readonly number[]) => void) | undefined;
  let guarding = false;
  watchLiveTemps((paths) => {
    if (paths.length === 0 && !guarding) return;
    guard ??= addon().removeOnStopSignal?.bind(addon()) ?? (() => {});  // an older addon: the next run's sweep removes them
    const signals = paths.length === 0 ? [] : (Object.keys(STOP_SIGNALS) as StopSignal[]).filter((name) => process.listenerCount(name) === 0).map(stopSignalNumber);
    try {
      guard(paths, signals);
    } catch (err) {
      // An addon built before SIGHUP was one of them refuses its number: guard the others.
      if (!(err instanceof TypeError)) throw err;
      guard(paths, signals.filter((s) => s !== stopSignalNumber('SIGHUP')));
    }
    guarding = signals.length > 0;
  });
}
