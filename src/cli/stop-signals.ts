// Ctrl-C (SIGINT) and SIGTERM during a long command (`fuzz`, `shrink`): the first one asks the
// work to stop at the next execution and keep what it has, as libFuzzer and AFL++ do; a second
// one quits at once. Both commands share this, so they stop, report and end alike.
import { removeLiveTemps } from '../shared/output-file.js';

/** The signals that stop a command with its work saved, and the exit status each ends with (128 + its number). */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

export interface StopSignals {
  /** The first stop signal received, if any. */
  signal(): StopSignal | undefined;
  /** Puts the default handling back. */
  stop(): void;
}

/**
 * Until `stop()`: the first SIGINT or SIGTERM aborts `controller` after `onFirst` (which says on
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
