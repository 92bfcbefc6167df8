// `minivisor fuzz merge` reads other machines' output directories: what it reads decides nothing
// outside the directory it merges into, and a source that is not an output directory is one clear
// error before anything is written.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { handMadeFinding } from '../helpers/hand-made-finding.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'minivisor-merge-'));

function minivisor(args: string[], cwd?: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [join(process.cwd(), 'bin/minivisor.js'), ...args], { encoding: 'utf8', timeout: 60_000, ...(cwd ? { cwd } : {}) });
}

function expectOneClearError(r: SpawnSyncReturns<string>, pattern: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.status).toBe(2);
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
    const r = minivisor(['fuzz', 'merge', 'into/deep', source], work);
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
