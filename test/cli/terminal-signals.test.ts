// What a user at a terminal does to a running command: closing the terminal (SIGHUP, and a
// terminal that no longer takes writes) stops it as Ctrl-C does, as AFL++ treats SIGHUP, SIGINT and
// SIGTERM alike; Ctrl-C (SIGINT to the whole foreground process group, the shell included) ends the
// command by SIGINT, so a shell loop running it stops too (bash waits for the command and, when it
// died of SIGINT, ends itself by SIGINT; an ordinary exit 130 would let the loop go on). Each case
// runs on a real pseudo-terminal, never with a stack trace from writing to a terminal that is gone.
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempsUnder } from '../helpers/interrupted-cli.js';
import { HAS_PYTHON3, runThenCloseTerminal, runThenCtrlC } from '../helpers/terminal.js';
import { attackProgramFromJson } from '../../src/fuzz/attack-program.js';

/** The campaign in `out` was saved when `signal` stopped it: stats.json, the corpus, the report, no temporary file. */
function expectSavedCampaign(out: string, signal: 'SIGHUP' | 'SIGINT'): void {
  const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'));
  expect(stats.interrupted).toBe(signal);
  expect(stats.execs).toBeGreaterThan(0);
  const corpus = readdirSync(join(out, 'corpus'));
  expect(corpus.length).toBeGreaterThan(0);
  for (const name of corpus) attackProgramFromJson(readFileSync(join(out, 'corpus', name), 'utf8'), name);
  expect(existsSync(join(out, 'report.html'))).toBe(true);
  expect(tempsUnder(out)).toEqual([]);
}

/** `bash -c` running `minivisor ARGS` twice in a loop, saying after each run that the loop went on. */
function shellLoop(args: string[]): string[] {
  return ['bash', '-c', 'for i in 1 2; do "$@"; echo "the loop went on after exit $?"; done', 'loop', process.execPath, 'bin/minivisor.js', ...args];
}

describe.skipIf(!HAS_PYTHON3)('a command on a terminal', () => {
  it('closing the terminal of a fuzz campaign: it is saved (stats.json says SIGHUP) and the process ends by SIGHUP', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'minivisor-hangup-')), 'out');
    // The first status line: on a terminal it is redrawn in place, after a carriage return.
    const r = await runThenCloseTerminal(['fuzz', '--time', '10m', '--out', out], 'fuzz: [0-9]+ execs');
    expect(r.matched).toBe(true);
    expect([r.status, r.signal]).toEqual([null, 'SIGHUP']);
    expectSavedCampaign(out, 'SIGHUP');
  }, 60_000);

  it('Ctrl-C on a shell loop running fuzz: the campaign is saved and the loop stops', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'minivisor-ctrl-c-fuzz-')), 'out');
    const r = await runThenCtrlC(shellLoop(['fuzz', '--time', '10m', '--out', out]), 'fuzz: [0-9]+ execs');
    expect(r.matched).toBe(true);
    expect(r.output).toMatch(/minivisor fuzz: SIGINT: stopping after the current execution/);
    expect(r.output).toMatch(/minivisor fuzz: interrupted \(SIGINT\) after \d+ executions/);
    expect(r.output).not.toMatch(/the loop went on|\n\s+at /);
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expectSavedCampaign(out, 'SIGINT');
  }, 60_000);

  it('Ctrl-C on a shell loop running a boot with --trace: the earlier trace stays, no temporary file, and the loop stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-ctrl-c-boot-'));
    const trace = join(dir, 'run.jsonl');
    writeFileSync(trace, 'the earlier trace\n');
    // The kernel stage of a 256 GiB eager boot: seconds of accepting, with the trace's temporary file open.
    const r = await runThenCtrlC(shellLoop(['boot', '--memory', '256G', '--accept', 'eager', '--trace', trace]), '== stage kernel ==');
    expect(r.matched).toBe(true);
    expect(r.output).not.toMatch(/the loop went on|\n\s+at /);
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expect(readdirSync(dir)).toEqual(['run.jsonl']);
    expect(readFileSync(trace, 'utf8')).toBe('the earlier trace\n');
  }, 60_000);
});
