// `minivisor fuzz merge` reads other machines' output directories: what it reads decides nothing
// outside the directory it merges into, and a source that is not an output directory is one clear
// error before anything is written.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { handMadeFinding } from '../helpers/hand-made-finding.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'minivisor-merge-'));

function minivisor(args: string[], cwd?: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(process.cwd(), 'bin/minivisor.js'), ...args], { encoding: 'utf8', timeout: 60_000, ...(cwd ? { cwd } : {}) });
}

function expectOneClearError(r: SpawnSyncReturns<string>, pattern: RegExp, status = 2): void {
  expect(r.signal).toBeNull();
  expect(r.status).toBe(status);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

/** A source output directory holding one finding whose JSON has `id`. */
function sourceWithId(id: string): string {
  const source = scratch();
  const file = handMadeFinding(source);
  const f = JSON.parse(readFileSync(file, 'utf8'));
  f.id = id;
  writeFileSync(file, JSON.stringify(f));
  return source;
}

describe('a finding\'s id names its folder, so it must be one the fuzzer makes', () => {
  it.each([
    ['../../../escaped', /id "\.\.\/\.\.\/\.\.\/escaped" is not a finding id \(the category, a dash and 12 hex digits\)/],
    ['/tmp/absolute-0123456789ab', /is not a finding id/],
    ['double-acceptance-0123456789ab\u001b[2J', /id "double-acceptance-0123456789ab\\u001b\[2J" is not a finding id/],
    ['liveness-0123456789ab', /id "liveness-0123456789ab" is not a finding id of category double-acceptance/],
  ])('merge skips a finding with id %j, with a warning, and writes nothing outside --out', (id, pattern) => {
    const source = sourceWithId(id);
    const work = scratch();
    const r = minivisor(['fuzz', 'merge', source, '--out', 'into/deep'], work);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^minivisor fuzz merge: skipping .*finding\.json: /);
    expect(r.stderr).toMatch(pattern);
    expect(r.stdout).toMatch(/now holds 0 corpus programs and 0 findings/);
    expect(readdirSync(work)).toEqual(['into']);
    expect(readdirSync(join(work, 'into', 'deep', 'findings'))).toEqual([]);
    // And replay refuses it the same way.
    expectOneClearError(minivisor(['replay', join(source, 'findings', 'double-acceptance-000000000000')]), pattern);
  });
});

describe('merge sources and destinations', () => {
  it('a source that is a file, a FIFO, or a folder that is not an output directory is refused before anything is written', () => {
    const good = dirname(dirname(dirname(handMadeFinding(scratch()))));
    const dir = scratch();
    const file = join(dir, 'notes.txt');
    writeFileSync(file, 'keep me');
    const fifo = join(dir, 'fifo');
    spawnSync('mkfifo', [fifo]);
    const plain = join(dir, 'plain');
    mkdirSync(plain);
    writeFileSync(join(plain, 'a.txt'), 'x');
    const cases: Array<[string, RegExp]> = [
      [file, /^minivisor fuzz merge: ".*notes\.txt" is not a directory: give fuzz --out directories$/],
      [fifo, /^minivisor fuzz merge: ".*fifo" is not a directory: give fuzz --out directories$/],
      [plain, /^minivisor fuzz merge: ".*plain" is not a fuzz output directory \(it has no corpus\/ and no findings\/\)$/],
      [join(dir, 'missing'), /^minivisor fuzz merge: ".*missing" does not exist$/],
    ];
    for (const [source, pattern] of cases) {
      const into = join(scratch(), 'merged');
      // The bad source last: before, the good one was merged first, and then the error came.
      expectOneClearError(minivisor(['fuzz', 'merge', good, source, '--out', into]), pattern);
      expect(existsSync(into)).toBe(false);
    }
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('--out inside a source, directly or through a link, is refused before anything is written (before: merged into the source\'s findings/ as a folder)', () => {
    const good = dirname(dirname(dirname(handMadeFinding(scratch()))));
    const before = readdirSync(join(good, 'findings'));
    const link = join(scratch(), 'link');
    symlinkSync(good, link);
    for (const out of [join(good, 'findings', 'all'), join(link, 'merged', 'deeper')]) {
      expectOneClearError(minivisor(['fuzz', 'merge', good, '--out', out]), /^minivisor fuzz merge: --out ".*" is inside the source ".*": give a folder outside the sources/);
    }
    expect(readdirSync(join(good, 'findings'))).toEqual(before);
    expect(existsSync(join(good, 'merged'))).toBe(false);
  });

  it('a first directory that does not exist is one clear error and is not made, without --out; with --out a new one is made', () => {
    // libFuzzer's -merge=1 requires its first corpus directory to exist (ValidateDirectoryExists,
    // FuzzerDriver.cpp, unless -create_missing_dirs=1). Before: a mistyped name was made, empty or
    // with the other sources merged into it, with exit 0.
    const good = dirname(dirname(dirname(handMadeFinding(scratch()))));
    const missing = join(scratch(), 'typo');
    for (const args of [[missing], [missing, good]]) {
      expectOneClearError(minivisor(['fuzz', 'merge', ...args]), /^minivisor fuzz merge: ".*typo" does not exist: the first directory is the one merged into \(give --out to merge into a new one\)$/);
      expect(existsSync(missing)).toBe(false);
    }
    const r = minivisor(['fuzz', 'merge', good, '--out', missing]);
    expect(r.status).toBe(0);
    expect(readdirSync(join(missing, 'findings'))).toEqual(readdirSync(join(good, 'findings')));
  });

  it('merging into a first directory that is a file is one clear error, and the file is intact', () => {
    const good = dirname(dirname(dirname(handMadeFinding(scratch()))));
    const file = join(scratch(), 'notes.txt');
    writeFileSync(file, 'keep me');
    expectOneClearError(minivisor(['fuzz', 'merge', file, good]), /^minivisor fuzz merge: cannot use ".*notes\.txt" as the output directory: it or a folder above it is a file, not a directory$/);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('--out that is a file, or under one, is one clear error and the file is intact', () => {
    const good = dirname(dirname(dirname(handMadeFinding(scratch()))));
    const file = join(scratch(), 'notes.txt');
    writeFileSync(file, 'keep me');
    for (const out of [file, join(file, 'sub')]) {
      // Before: "ENOTDIR: not a directory, stat '…/notes.txt/corpus'".
      expectOneClearError(minivisor(['fuzz', 'merge', good, '--out', out]), /^minivisor fuzz merge: cannot use --out ".*notes\.txt(\/sub)?" as the output directory: it or a folder above it is a file, not a directory$/);
    }
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });
});

describe('fuzz --out', () => {
  it('an existing folder with other files and no corpus/, findings/ or stats.json is refused before any execution, untouched', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'notes.txt'), 'keep me');
    mkdirSync(join(dir, 'src'));
    // Before: corpus/, findings/, stats.json and report.html were written beside the user's files.
    for (const command of [['fuzz', '--runs', '1', '--out', dir], ['fuzz', 'merge', dirname(dirname(dirname(handMadeFinding(scratch())))), '--out', dir]]) {
      expectOneClearError(minivisor(command), /^minivisor fuzz( merge)?: cannot use --out ".*" as the output directory: it holds other files \("notes\.txt", "src"\) and no corpus\/, findings\/ or stats\.json: give a new or empty folder, or one a campaign wrote$/);
      expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'src']);
    }
  });

  it('an empty folder, or one a campaign wrote (resumed), is used', () => {
    const empty = scratch();
    expect(minivisor(['fuzz', '--runs', '1', '--out', empty]).status).toBe(0);
    expect(readdirSync(empty).sort()).toEqual(['corpus', 'findings', 'report.html', 'stats.json']);
    writeFileSync(join(empty, 'my-notes.txt'), 'mine');
    expect(minivisor(['fuzz', '--runs', '1', '--out', empty]).status).toBe(0);
  });

  it('a folder that takes no new entries (/proc) is one clear error in words, not Node\'s mkdir text', () => {
    // Before: "ENOENT: no such file or directory, mkdir '/proc/…'", though /proc exists.
    expectOneClearError(minivisor(['fuzz', '--runs', '1', '--out', '/proc/minivisor-out/deeper']),
      /^minivisor fuzz: cannot use --out "\/proc\/minivisor-out\/deeper" as the output directory: the directory "\/proc" takes no new files \(ENOENT\)$/);
  });

  it('resuming another platform\'s campaign says how many of its corpus programs are seeds, and leaves the others', () => {
    // Before: an SNP campaign into a TDX campaign's folder silently started from nothing.
    const dir = scratch();
    expect(minivisor(['fuzz', '--runs', '3', '--out', dir]).status).toBe(0);
    const tdxPrograms = readdirSync(join(dir, 'corpus')).sort();
    expect(tdxPrograms.length).toBeGreaterThan(0);
    const snp = minivisor(['fuzz', '--platform', 'snp', '--runs', '1', '--out', dir]);
    expect(snp.status).toBe(0);
    const n = tdxPrograms.length;
    expect(snp.stderr).toContain(`minivisor fuzz: resuming "${dir}": 0 SNP corpus programs as seeds; ${n} program${n === 1 ? '' : 's'} of another platform stay${n === 1 ? 's' : ''} in its corpus unused`);
    expect(readdirSync(join(dir, 'corpus'))).toEqual(expect.arrayContaining(tdxPrograms));
    const again = minivisor(['fuzz', '--runs', '1', '--out', dir]);
    expect(again.stderr).toMatch(new RegExp(`resuming ".*": ${n} TDX corpus programs? as seeds; [1-9]\\d* programs? of another platform`));
  });

  it('an output directory whose stats.json or report.html is a folder, or whose corpus or findings is a file, is refused before any execution', () => {
    // Before: stats.json as a folder failed at the end of the campaign (EISDIR, exit 1) and left stats.json.tmp-<pid> behind.
    const cases: Array<[string, (dir: string) => void, RegExp]> = [
      ['stats.json', (d) => mkdirSync(join(d, 'stats.json')), /its stats\.json is a folder, not a file$/],
      ['report.html', (d) => { mkdirSync(join(d, 'corpus')); mkdirSync(join(d, 'report.html')); }, /its report\.html is a folder, not a file$/],
      ['findings', (d) => { mkdirSync(join(d, 'corpus')); writeFileSync(join(d, 'findings'), ''); }, /its findings is not a folder$/],
    ];
    for (const [, make, pattern] of cases) {
      const dir = scratch();
      make(dir);
      const before = readdirSync(dir).sort();
      expectOneClearError(minivisor(['fuzz', '--runs', '1', '--out', dir]), new RegExp(`^minivisor fuzz: cannot use --out ".*" as the output directory: ${pattern.source}`));
      expect(readdirSync(dir).sort()).toEqual(before);
    }
  });
});

