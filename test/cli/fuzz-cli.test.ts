// `minivisor fuzz`, `replay`, `shrink` and `fuzz merge` as a user runs them.
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { handMadeFinding } from '../helpers/hand-made-finding.js';
import { traceSha256OfJsonLines } from '../../src/shared/trace.js';
import { capture } from '../helpers/captured-io.js';

const small = ['--memory', '128M', '--workload', '1M', '--stage', 'all'];
const tmp = () => mkdtempSync(join(tmpdir(), 'minivisor-fuzz-'));

describe('minivisor fuzz', () => {
  it.each([
    [['--time', '5s', '--runs', '3'], /give --time or --runs, not both/],
    [['--shard', '0/4'], /--shard "0\/4": K must be between 1 and N/],
    [['--shard', 'half'], /--shard "half" must look like K\/N/],
    [['--stage', 'bios'], /--stage must be one of firmware, decompressor, kernel, all/],
    [['--jobs', '0'], /--jobs must be between 1 and 256/],
    [['--time', 'soon'], /--time "soon" is not a duration/],
    [['--memory', 'lots'], /--memory "lots" is not a size/],
  ])('rejects %j with exit status 2', async (args, message) => {
    const io = capture();
    expect(await main(['fuzz', ...args, '--out', tmp()], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(message);
  });

  it('refuses an --out that is a file, or under one, before any execution: exit status 2, the file untouched', async () => {
    const file = join(tmp(), 'notes.txt');
    writeFileSync(file, 'keep me');
    for (const out of [file, join(file, 'sub'), '']) {
      const io = capture();
      // Before: the mkdir's bare ENOTDIR reached main's catch-all, with exit status 1.
      expect(await main(['fuzz', ...small, '--runs', '1', '--out', out], io)).toBe(2);
      expect(io.stderr).toHaveLength(1);
      expect(io.stderr[0]).toMatch(/^minivisor fuzz: cannot use --out ".*" as the output directory: (it or a folder above it is a file, not a directory|it is empty)$/);
    }
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });

  it('stops with exit status 2 when the honest execution exceeds the budget', async () => {
    const io = capture();
    expect(await main(['fuzz', ...small, '--runs', '4', '--max-instructions', '20000', '--out', tmp()], io), io.stderr.join('\n')).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/honest execution needs more than its budget of 20000 instructions .*raise --max-instructions/);
  });

  it('runs a fixed number of executions and writes corpus/, findings/ and stats.json', async () => {
    const out = tmp();
    const io = capture();
    expect(await main(['fuzz', ...small, '--runs', '3', '--seed', '5', '--out', out, '--json'], io)).toBe(0);
    const stats = JSON.parse(io.stdout[0]!);
    expect(stats).toMatchObject({ execs: 3, jobs: 1, runs: 3, seed: '5', findings: [], target: { platform: 'tdx', stage: 'all', memoryBytes: '0x8000000' } });
    expect(stats.instructionsPerExec).toBeGreaterThan(100_000);
    expect(stats.vmmExitsPerExec).toBeGreaterThan(10);
    // Counted, and none here: seed 5's three executions each run something new.
    expect(stats.recalledExecs).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'))).toEqual(stats);
    expect(readdirSync(join(out, 'corpus')).length).toBeGreaterThan(0);
    expect(readdirSync(join(out, 'findings'))).toEqual([]);
    // Without a terminal, progress comes as plain lines on stderr.
    expect(io.stderr.at(-1)).toMatch(/^fuzz: 3 execs \([\d.]+\/s\), \d+ edges, \d+ decisions, corpus \d+, findings 0/);
  }, 120_000);

  it('--runs 2 with --jobs 4 starts the 2 jobs that have runs, and counts only them', async () => {
    // Before: 4 workers (2 of them with no run to do), and stats.json said jobs 4.
    const io = capture();
    expect(await main(['fuzz', '--runs', '2', '--jobs', '4', '--out', tmp(), '--json'], io)).toBe(0);
    expect(JSON.parse(io.stdout[0]!)).toMatchObject({ execs: 2, jobs: 2, runs: 2 });
  }, 120_000);
});

describe('minivisor replay and shrink', () => {
  it('replays a finding on its exact configuration and writes the trace whose hash it reports', async () => {
    const file = handMadeFinding(tmp());
    const trace = join(tmp(), 'trace.jsonl');
    const io = capture();
    // The program is one the honest stubs stop on: the finding does not reproduce (exit 0).
    expect(await main(['replay', file, '--trace', trace, '--json'], io)).toBe(0);
    const r = JSON.parse(io.stdout[0]!);
    expect(r).toMatchObject({ reproduced: false, verdict: 'detected', identicalTrace: false });
    expect(r.outcome.reason).toMatch(/^tdx_map_gpa_no_progress/);
    expect(traceSha256OfJsonLines(readFileSync(trace, 'utf8'))).toBe(r.traceSha256);
  }, 60_000);

  it('rejects a missing or damaged finding with exit status 2 and leaves it untouched', async () => {
    const dir = tmp();
    const io = capture();
    expect(await main(['replay', join(dir, 'nope.json')], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(/no such finding/);
    const bad = join(dir, 'finding.json');
    writeFileSync(bad, '{"format":"minivisor-finding","version":1,"category":"double-acceptance"');
    const io2 = capture();
    expect(await main(['shrink', bad], io2)).toBe(2);
    expect(io2.stderr.join('\n')).toMatch(/not JSON/);
    expect(readFileSync(bad, 'utf8')).toBe('{"format":"minivisor-finding","version":1,"category":"double-acceptance"');
  });

  /** The hand-made finding with `edit` applied to its parsed JSON. */
  function editedFinding(edit: (f: Record<string, any>) => void): string {
    const file = handMadeFinding(tmp());
    const f = JSON.parse(readFileSync(file, 'utf8'));
    edit(f);
    writeFileSync(file, JSON.stringify(f));
    return file;
  }

  // The same bounds as the flags (boot-options.ts): before, these ran (a unit of 3 bytes, a budget
  // of 0, a workload not in pages) or failed inside the emulator with exit status 1.
  it.each([
    ['memoryBytes', '0x0', /--memory must be between 128M and 64T, not "0"/],
    ['memoryBytes', '0xffffffffffffffff', /--memory must be between 128M and 64T/],
    ['memoryBytes', '0x8000001', /--memory must be a multiple of 4K/],
    ['workloadBytes', '0x1001', /--workload must be a multiple of 4K/],
    ['preAccept', '0xffffffffffffffff', /--pre-accept .* is larger than --memory/],
    ['unitBytes', '0x3', /--unit must be 4K or 2M, not "3"/],
    ['maxInstructions', '0x0', /--max-instructions must be at least 1/],
  ])('refuses a finding whose target.%s is %s, before running it, with exit status 2', async (field, value, message) => {
    const file = editedFinding((f) => { f.target[field] = value; });
    for (const command of ['replay', 'shrink']) {
      const io = capture();
      expect(await main([command, file], io)).toBe(2);
      expect(io.stderr).toHaveLength(1);
      expect(io.stderr[0]).toMatch(/finding\.json: target is not a configuration `minivisor fuzz` accepts \(its sizes in bytes\): /);
      expect(io.stderr[0]).toMatch(message);
    }
  });

  it.each(['constructor', '__proto__', 'toString'])('refuses the category %j (a key of Object.prototype, not a category)', async (category) => {
    const file = editedFinding((f) => { f.category = category; });
    const io = capture();
    expect(await main(['replay', file], io)).toBe(2);
    expect(io.stderr.join('\n')).toMatch(new RegExp(`unknown category "${category}"`));
  });

  it('merges output directories: union of corpora, findings deduplicated', async () => {
    const a = tmp();
    const b = tmp();
    handMadeFinding(a);
    handMadeFinding(b);
    mkdirSync(join(a, 'corpus'), { recursive: true });
    const into = join(tmp(), 'merged');
    const io = capture();
    expect(await main(['fuzz', 'merge', a, b, '--out', into], io)).toBe(0);
    expect(io.stdout.join('\n')).toMatch(/holds 0 corpus programs and 1 findings/);
    expect(existsSync(join(into, 'findings', 'double-acceptance-000000000000', 'README.txt'))).toBe(true);
    expect(readFileSync(join(into, 'findings', 'double-acceptance-000000000000', 'README.txt'), 'utf8')).toMatch(/minivisor replay .*finding\.json/);
  });
});
