// A CLI run interrupted as a user interrupts it: `minivisor ARGS` spawned from the checkout, sent
// the given signals the first time its stderr so far matches a pattern (the moment the test waits
// for: a status line, a progress report), or once it has temporary output files open, then
// awaited to its end.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

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

/** Runs `minivisor ARGS`, sends `signals` once `when` matches its stderr, and waits for the end (SIGKILL after 60 s). */
export function runInterrupted(args: string[], when: RegExp, signals: NodeJS.Signals[]): Promise<InterruptedRun> {
  const child = spawn(process.execPath, ['bin/minivisor.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let trigger: RegExpExecArray | undefined;
  let sentAt = 0;
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => {
    stderr += d;
    if (trigger !== undefined) return;
    trigger = when.exec(stderr) ?? undefined;
    if (trigger === undefined) return;
    sentAt = performance.now();
    for (const s of signals) child.kill(s);
  });
  return new Promise((done) => child.on('close', (status, signal) => {
    clearTimeout(killer);
    done({ status, signal, stdout, stderr, trigger, afterSignalMs: performance.now() - sentAt });
  }));
}

/** The temporary files (`.NAME.tmp-PID-SEQ`) anywhere under `dir`. */
export function tempsUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).filter((n) => /(^|\/)\.[^/]+\.tmp-\d+-\d+$/.test(n));
}

/**
 * Spawns `minivisor ARGS`, sends `signal` once `expected` temporary files show under `dir` (looked
 * for every millisecond: one may exist only while a large file is written), and waits for the
 * end. `sawTemp`: the temporary files seen then (fewer: the process ended first).
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
    sawTemp = existsSync(dir) ? tempsUnder(dir) : [];
    if (sawTemp.length >= expected) {
      child.kill(signal);
      break;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  if (sawTemp.length < expected) child.kill('SIGKILL');
  return { ...(await ended), stderr, sawTemp };
}
