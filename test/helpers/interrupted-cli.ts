// A CLI run interrupted as a user interrupts it: `minivisor ARGS` spawned from the checkout, sent
// the given signals the first time its stderr so far matches a pattern (the moment the test waits
// for: a status line, a progress report), then awaited to its end.
import { spawn } from 'node:child_process';

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
