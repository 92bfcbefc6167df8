// Where a benchmark thread's wall time went: on a CPU, or waiting for one. On the shared 2-core
// machines this runs on, a sample's wall time was 2-5x its CPU time (issue 11), and the gap was
// all time spent runnable but not running, i.e. other processes' load, not anything the code
// does. Linux reports both per thread in /proc/thread-self/schedstat (Documentation/scheduler/
// sched-stats.rst: "time spent on the cpu", "time spent waiting on a runqueue", in ns).
import { readFileSync } from 'node:fs';

export interface ThreadTime {
  /** Nanoseconds this thread ran on a CPU. */
  runNs: number;
  /** Nanoseconds it was runnable but waited for a CPU. */
  waitNs: number;
}

/** This thread's totals so far, or undefined where the kernel does not report them. */
export function threadTime(): ThreadTime | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/thread-self/schedstat', 'utf8');
  } catch {
    return undefined;
  }
  const [run, wait] = text.split(' ').map(Number);
  if (!Number.isFinite(run) || !Number.isFinite(wait)) return undefined;
  return { runNs: run!, waitNs: wait! };
}

/** Sums what the calling thread spent inside `fn` (on a CPU, and waiting for one) over many calls. */
export class ThreadTimeMeter {
  runNs = 0;
  waitNs = 0;
  #supported = threadTime() !== undefined;

  get supported(): boolean {
    return this.#supported;
  }

  measure<T>(fn: () => T): T {
    const before = this.#supported ? threadTime() : undefined;
    const result = fn();
    const after = before && threadTime();
    if (before && after) {
      this.runNs += after.runNs - before.runNs;
      this.waitNs += after.waitNs - before.waitNs;
    }
    return result;
  }
}
