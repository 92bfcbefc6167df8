// An output file is written under a hidden temporary name, renamed into place when complete. A
// process that a signal ends mid-run (Ctrl-C during a long boot: the boot is synchronous, so the
// signal ends it at once) leaves that temporary file behind; the next run writing the same output
// removes those of processes that no longer exist, and keeps those of running ones.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SMALL = ['--memory', '256M', '--workload', '16M'];

/** The pid of a process that has exited (and whose pid no process has taken since, for the test's few seconds). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('temporary output files', () => {
  it('a boot interrupted by SIGINT leaves its temporary trace file, and the next boot writing that trace removes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-temp-'));
    const trace = join(dir, 'run.jsonl');
    const child = spawn(process.execPath, ['bin/minivisor.js', 'boot', '--memory', '64G', '--accept', 'eager', '--trace', trace], { stdio: 'ignore' });
    // Wait for the temporary file, then interrupt.
    for (let i = 0; i < 200 && !readdirSync(dir).some((n) => n.startsWith('.run.jsonl.tmp-')); i++) await new Promise((r) => setTimeout(r, 25));
    child.kill('SIGINT');
    const signal = await new Promise((done) => child.on('exit', (_code, s) => done(s)));
    expect(signal).toBe('SIGINT');
    const left = readdirSync(dir);
    expect(left).toEqual([expect.stringMatching(/^\.run\.jsonl\.tmp-\d+-0$/)]);
    // A live process's temporary file for the same output stays: it is still being written.
    const live = `.run.jsonl.tmp-${process.pid}-7`;
    writeFileSync(join(dir, live), 'in progress');
    expect(spawnSync(process.execPath, ['bin/minivisor.js', 'boot', ...SMALL, '--trace', trace], { encoding: 'utf8' }).status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([live, 'run.jsonl']);
  }, 60_000);

  it('only the temporary files of that output, and of dead processes, are removed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-temp-'));
    const dead = deadPid();
    const others = [`.other.jsonl.tmp-${dead}-0`, `.run.jsonl.tmp-${dead}-x`, `run.jsonl.tmp-${dead}-0`, '.run.jsonl.partial'];
    for (const name of [...others, `.run.jsonl.tmp-${dead}-0`, `.run.jsonl.tmp-${dead}-12`]) writeFileSync(join(dir, name), '');
    expect(spawnSync(process.execPath, ['bin/minivisor.js', 'boot', ...SMALL, '--trace', join(dir, 'run.jsonl')], { encoding: 'utf8' }).status).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([...others, 'run.jsonl'].sort());
    expect(existsSync(join(dir, `.run.jsonl.tmp-${dead}-0`))).toBe(false);
  }, 60_000);

  it('a fuzz output directory loses the temporary files of dead processes when a campaign next writes it, and keeps a running one\'s', () => {
    const out = mkdtempSync(join(tmpdir(), 'minivisor-temp-fuzz-'));
    const finding = join(out, 'findings', 'double-acceptance-000000000000');
    mkdirSync(join(out, 'corpus'), { recursive: true });
    mkdirSync(finding, { recursive: true });
    const dead = deadPid();
    const stale = [join(out, `.stats.json.tmp-${dead}-0`), join(out, 'corpus', `.0123abcd.json.tmp-${dead}-4`), join(finding, `.finding.json.tmp-${dead}-2`)];
    const kept = [join(out, 'corpus', `.4567cdef.json.tmp-${process.pid}-0`), join(out, 'corpus', `notes.tmp-${dead}`), join(finding, 'finding.json.partial')];
    for (const path of [...stale, ...kept]) writeFileSync(path, '');
    const r = spawnSync(process.execPath, ['bin/minivisor.js', 'fuzz', '--runs', '1', '--out', out], { encoding: 'utf8' });
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.status).toBe(0);
    for (const path of stale) expect(existsSync(path), path).toBe(false);
    for (const path of kept) expect(existsSync(path), path).toBe(true);
  }, 60_000);
});
