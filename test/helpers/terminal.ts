// A CLI run on a terminal that is then closed or sent Ctrl-C: test/helpers/run-in-terminal.py
// starts the command on a new pseudo-terminal and, once the output matches a pattern, closes it
// as closing the terminal window does (the command gets SIGHUP and its writes to the terminal fail
// with EIO), or types Ctrl-C (SIGINT to the command and every process it started). Python's pty
// module opens the terminal; node has none. Skipped where there is no python3.
import { spawn, spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** python3 runs here (node-gyp needs it for a build from source, so a development machine has it). */
export const HAS_PYTHON3 = spawnSync('python3', ['--version']).status === 0;

export interface TerminalRun {
  /** The output matched the pattern and the terminal was closed or sent Ctrl-C then (false: the run ended or timed out first, and was killed). */
  matched: boolean;
  /** What the command wrote on the terminal (stdout and stderr both): before it was closed, or to its end after Ctrl-C. */
  output: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

/** Runs `minivisor ARGS` on a terminal, closes the terminal once its output matches `when` (a Python regex), and waits for the end. */
export function runThenCloseTerminal(args: string[], when: string, timeoutS = 30): Promise<TerminalRun> {
  return runInTerminal('hangup', [process.execPath, 'bin/minivisor.js', ...args], when, timeoutS);
}

/**
 * Runs `argv` (a shell running minivisor, say) on a terminal, types Ctrl-C once its output
 * matches `when` (a Python regex), and reads its output to the end.
 */
export function runThenCtrlC(argv: string[], when: string, timeoutS = 30): Promise<TerminalRun> {
  return runInTerminal('ctrl-c', argv, when, timeoutS);
}

function runInTerminal(action: 'hangup' | 'ctrl-c', argv: string[], when: string, timeoutS: number): Promise<TerminalRun> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'run-in-terminal.py');
  const child = spawn('python3', [script, action, JSON.stringify(argv), when, String(timeoutS)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; });
  return new Promise((done, fail) => child.on('close', (code) => {
    if (code !== 0) return fail(new Error(`run-in-terminal.py exited ${code}: ${stdout}`));
    const r = JSON.parse(stdout) as { matched: boolean; output: string; status: number | null; signal: number | null };
    const name = r.signal === null ? null : (Object.entries(constants.signals).find(([, n]) => n === r.signal)?.[0] ?? null) as NodeJS.Signals | null;
    done({ matched: r.matched, output: r.output, status: r.status, signal: name });
  }));
}
