// Closing the terminal a command runs in (SIGHUP, and a terminal that no longer takes writes)
// stops it as Ctrl-C does, as AFL++ treats SIGHUP, SIGINT and SIGTERM alike: `fuzz` saves the
// campaign and the process ends by SIGHUP (the shell's 129), never with a stack trace from writing
// its summary to the terminal that is gone. Each case runs the CLI on a real pseudo-terminal.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempsUnder } from '../helpers/interrupted-cli.js';
import { HAS_PYTHON3, runThenCloseTerminal } from '../helpers/terminal.js';
import { attackProgramFromJson } from '../../src/fuzz/attack-program.js';

describe.skipIf(!HAS_PYTHON3)('a command whose terminal is closed', () => {
  it('fuzz: the campaign is saved (stats.json says SIGHUP) and the process ends by SIGHUP', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'minivisor-hangup-')), 'out');
    // The first status line: on a terminal it is redrawn in place, after a carriage return.
    const r = await runThenCloseTerminal(['fuzz', '--time', '10m', '--out', out], 'fuzz: [0-9]+ execs');
    expect(r.matched).toBe(true);
    expect([r.status, r.signal]).toEqual([null, 'SIGHUP']);
    const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'));
    expect(stats.interrupted).toBe('SIGHUP');
    expect(stats.execs).toBeGreaterThan(0);
    const corpus = readdirSync(join(out, 'corpus'));
    expect(corpus.length).toBeGreaterThan(0);
    for (const name of corpus) attackProgramFromJson(readFileSync(join(out, 'corpus', name), 'utf8'), name);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    expect(tempsUnder(out)).toEqual([]);
  }, 60_000);
});
