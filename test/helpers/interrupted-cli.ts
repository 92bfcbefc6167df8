// A CLI run interrupted as a user interrupts it: `minivisor ARGS` spawned from the checkout, sent
// the given signals the first time its stderr so far matches a pattern (the moment the test waits
// for: a status line, a progress report), or once it has temporary output files open, then
// awaited to its end.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';

export interface InterruptedRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The match that triggered the signals (undefined: the run ended before it). */
  trigger: RegExpExecArray | undefined;
  /** Wall time from sending the signals to the end. */
  afterSignalMs: number;
}

/**
 * Runs `minivisor ARGS`, sends `signals` once `when` matches its stderr (or its stdout, `on`), and
 * waits for the end (SIGKILL after 60 s).
 */
export function runInterrupted(args: string[], when: RegExp, signals: NodeJS.Signals[], on: 'stderr' | 'stdout' = 'stderr'): Promise<InterruptedRun> {
  const child = spawn(process.execPath, ['bin/minivisor.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let trigger: RegExpExecArray | undefined;
  let sentAt = 0;
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const watch = () => {
    if (trigger !== undefined) return;
    trigger = when.exec(on === 'stderr' ? stderr : stdout) ?? undefined;
    if (trigger === undefined) return;
    sentAt = performance.now();
    for (const s of signals) child.kill(s);
  };
  child.stdout.on('data', (d) => { stdout += d; watch(); });
  child.stderr.on('data', (d) => { stderr += d; watch(); });
  return new Promise((done) => child.on('close', (status, signal) => {
    clearTimeout(killer);
    done({ status, signal, stdout, stderr, trigger, afterSignalMs: performance.now() - sentAt });
  }));
}

/** The temporary files (`.NAME.tmp-PID-SEQ`) anywhere under `dir`. */
export function tempsUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).filter((n) => /(^|\/)\.[^/]+\.tmp-\d+-\d+$/.test(n));
}

/** Resolves once every thread of process `pid` is stopped (state T in /proc/PID/task/TID/stat), or it is gone. */
async function stopped(pid: number): Promise<void> {
  const state = (tid: string) => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return 'gone';
    }
  };
  for (;;) {
    let tasks: string[];
    try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return; }
    if (tasks.every((tid) => ['T', 'Z', 'X', 'gone'].includes(state(tid)))) return;
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * Spawns `minivisor ARGS`, sends `signal` once `expected` temporary files show under `dir` (looked
 * for every millisecond: one may exist only while a large file is written), and waits for the
 * end. `sawTemp`: the temporary files seen then (fewer: the process ended first). The process is
 * stopped (SIGSTOP) while the files are looked at again, so the signal is sent only while they
 * still exist: it cannot land just after the rename that made the file seen a moment ago whole.
 */
export async function interruptWhileWriting(args: string[], dir: string, signal: NodeJS.Signals, expected = 1): Promise<{ signal: NodeJS.Signals | null; status: number | null; stderr: string; sawTemp: string[] }> {
  const child = spawn(process.execPath, ['bin/minivisor.js', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const ended = new Promise<{ signal: NodeJS.Signals | null; status: number | null }>((done) => child.on('close', (status, s) => done({ status, signal: s })));
  let running = true;
  void ended.then(() => { running = false; });
  let sawTemp: string[] = [];
  const giveUp = performance.now() + 30_000;
  while (running && performance.now() < giveUp) {
    const temps = () => (existsSync(dir) ? tempsUnder(dir) : []);
    sawTemp = temps();
    if (sawTemp.length >= expected) {
      child.kill('SIGSTOP');
      await stopped(child.pid!);
      sawTemp = temps();
      if (sawTemp.length >= expected) {
        // Pending while stopped; delivered, before anything else runs, when it continues.
        child.kill(signal);
        child.kill('SIGCONT');
        break;
      }
      child.kill('SIGCONT');
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  if (sawTemp.length < expected) child.kill('SIGKILL');
  return { ...(await ended), stderr, sawTemp };
}
