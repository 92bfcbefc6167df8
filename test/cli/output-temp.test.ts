// An output file is written under a hidden temporary name, renamed into place when complete. A
// command that writes while it runs synchronously (a boot, `fuzz merge`) cannot handle a signal in
// JavaScript before its work ends; SIGINT, SIGTERM and SIGHUP end it at once, and a native handler
// removes the temporary files first (src/cli/stop-signals.ts). SIGKILL leaves them: the next run
// writing the same output removes those of processes that no longer exist, and keeps those of
// running ones.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { handMadeFinding } from '../helpers/hand-made-finding.js';
import { interruptWhileWriting, tempsUnder } from '../helpers/interrupted-cli.js';

const SMALL = ['--memory', '256M', '--workload', '16M'];

/** The pid of a process that has exited (and whose pid no process has taken since, for the test's few seconds). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}


describe('temporary output files', () => {
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('a boot ended by %s removes its temporary trace and map files and leaves the earlier ones as they were', async (signal) => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-temp-'));
    const trace = join(dir, 'run.jsonl');
    const map = join(dir, 'run.svg');
    writeFileSync(trace, 'the earlier trace\n');
    writeFileSync(map, '<svg/>\n');
    const r = await interruptWhileWriting(['boot', '--memory', '64G', '--accept', 'eager', '--trace', trace, '--map', map], dir, signal, 2);
    expect(r.sawTemp.sort()).toEqual([expect.stringMatching(/^\.run\.jsonl\.tmp-\d+-\d+$/), expect.stringMatching(/^\.run\.svg\.tmp-\d+-\d+$/)]);
    // Ended by the signal, as with no handler: the shell's 130 or 143.
    expect([r.status, r.signal]).toEqual([null, signal]);
    expect(r.stderr).toBe('');
    expect(readdirSync(dir).sort()).toEqual(['run.jsonl', 'run.svg']);
    expect(readFileSync(trace, 'utf8')).toBe('the earlier trace\n');
    expect(readFileSync(map, 'utf8')).toBe('<svg/>\n');
  }, 60_000);

  it('a fuzz merge ended by SIGINT while it writes a finding removes the temporary file; what it wrote before stays whole', async () => {
    const source = mkdtempSync(join(tmpdir(), 'minivisor-temp-merge-src-'));
    const finding = handMadeFinding(source);
    // A trace large enough that writing its copy takes a while (~100 MiB of JSON lines).
    const line = `${JSON.stringify({ i: 0, src: 'hw', type: 'exit', pad: 'x'.repeat(1000) })}\n`;
    const trace = line.repeat(100_000);
    writeFileSync(join(dirname(finding), 'trace.jsonl'), trace);
    const into = join(mkdtempSync(join(tmpdir(), 'minivisor-temp-merge-')), 'into');
    const r = await interruptWhileWriting(['fuzz', 'merge', '--out', into, source], into, 'SIGINT');
    expect(r.sawTemp).toEqual([expect.stringMatching(/^findings\/double-acceptance-000000000000\/\.trace\.jsonl\.tmp-\d+-\d+$/)]);
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(tempsUnder(into)).toEqual([]);
    // The finding's trace was being written: no trace.jsonl, rather than a part of one; or, when
    // the signal came as the write ended, the one rename that finished first put it there whole.
    const copy = join(into, 'findings', 'double-acceptance-000000000000', 'trace.jsonl');
    if (existsSync(copy)) expect(readFileSync(copy, 'utf8') === trace).toBe(true);
  }, 60_000);

  it('a replay ended by SIGTERM while it runs removes its temporary trace file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-temp-replay-'));
    const finding = handMadeFinding(dir);
    // 16 GiB accepted by the firmware before the kernel stage where the execution starts: seconds with --trace open.
    const f = JSON.parse(readFileSync(finding, 'utf8'));
    f.target = { ...f.target, stage: 'kernel', memoryBytes: '0x800000000', preAccept: '0x400000000' };
    writeFileSync(finding, JSON.stringify(f));
    const out = join(mkdtempSync(join(tmpdir(), 'minivisor-temp-replay-out-')), 'replay.jsonl');
    const r = await interruptWhileWriting(['replay', finding, '--trace', out], dirname(out), 'SIGTERM');
    expect(r.sawTemp).toEqual([expect.stringMatching(/^\.replay\.jsonl\.tmp-\d+-\d+$/)]);
    expect([r.status, r.signal]).toEqual([null, 'SIGTERM']);
    expect(r.stderr).toBe('');
    expect(readdirSync(dirname(out))).toEqual([]);
  }, 60_000);

  it('a boot ended by SIGKILL leaves its temporary trace file, and the next boot writing that trace removes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-temp-'));
    const trace = join(dir, 'run.jsonl');
    const r = await interruptWhileWriting(['boot', '--memory', '64G', '--accept', 'eager', '--trace', trace], dir, 'SIGKILL');
    expect(r.signal).toBe('SIGKILL');
    expect(readdirSync(dir)).toEqual([expect.stringMatching(/^\.run\.jsonl\.tmp-\d+-0$/)]);
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
