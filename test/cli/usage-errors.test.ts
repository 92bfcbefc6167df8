// commander's own usage errors (unknown command or option, a missing or extra argument) in the
// form of every other error: one line naming the command, what is wrong, where the usage is;
// exit status 2; the values of flags echoed escaped and cut short. Before: "error: unknown option '--x'" without the command, and at the top level a
// second line for the usage hint.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { handMadeFinding } from '../helpers/hand-made-finding.js';
import { capture } from '../helpers/captured-io.js';

describe('usage errors are one line naming the command', () => {
  it.each([
    [['bogus'], 'minivisor: unknown command \'bogus\' (run `minivisor --help` for usage)'],
    [['bot'], 'minivisor: unknown command \'bot\' (Did you mean boot?) (run `minivisor --help` for usage)'],
    [['--bogus'], 'minivisor: unknown option \'--bogus\' (run `minivisor --help` for usage)'],
    [['boot', '--bogus'], 'minivisor boot: unknown option \'--bogus\' (run `minivisor boot --help` for usage)'],
    [['boot', '--memory'], 'minivisor boot: option \'--memory <size>\' argument missing (run `minivisor boot --help` for usage)'],
    [['fuzz', 'merge', '--bogus', 'x'], 'minivisor fuzz merge: unknown option \'--bogus\' (run `minivisor fuzz merge --help` for usage)'],
    [['trace', 'export'], 'minivisor trace export: missing required argument \'in\' (run `minivisor trace export --help` for usage)'],
    [['info', 'extra'], 'minivisor info: too many arguments for \'info\'. Expected 0 arguments but got 1. (run `minivisor info --help` for usage)'],
    [['\u001b[2J'], 'minivisor: unknown command \'\\u001b[2J\' (run `minivisor --help` for usage)'],
  ])('%j', async (argv, line) => {
    const io = capture();
    expect(await main(argv, io)).toBe(2);
    expect(io.stderr).toEqual([line]);
    expect(io.stdout).toEqual([]);
  });
});

describe('flag values are echoed escaped and cut short', () => {
  // An escape sequence and 100 more characters: before, these flags echoed it raw and whole.
  const hostile = `a\u001b[2J${'9'.repeat(100)}`;
  it.each([
    ['fuzz', '--time'], ['fuzz', '--runs'], ['fuzz', '--jobs'], ['fuzz', '--shard'], ['fuzz', '--stage'], ['fuzz', '--variant'], ['boot', '--variant'],
  ])('%s %s', async (command, flag) => {
    const io = capture();
    expect(await main([command, flag, hostile, ...(command === 'fuzz' ? ['--out', '/nonexistent/never-written'] : [])], io)).toBe(2);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(new RegExp(`^minivisor ${command}: `));
    expect(io.stderr[0]).toContain('"a\\u001b[2J9999');
    expect(io.stderr[0]).toMatch(/\(105 characters\)/);
    expect(io.stderr[0]).not.toContain('\u001b');
  });

  it('shrink --budget past --runs\'s bound is refused (before: 99999999999999999999 was taken as the double 1e20)', async () => {
    const file = handMadeFinding(mkdtempSync(join(tmpdir(), 'minivisor-usage-')));
    for (const budget of ['99999999999999999999', '1000000001']) {
      const io = capture();
      expect(await main(['shrink', file, '--budget', budget], io)).toBe(2);
      expect(io.stderr).toEqual([`minivisor shrink: --budget must be between 1 and 1000000000, not "${budget}"`]);
    }
  });

  it.each([['shrink', '--budget'], ['replay', '--variant']])('%s %s', async (command, flag) => {
    const io = capture();
    // A finding that loads: replay checks --variant after reading it.
    const file = handMadeFinding(mkdtempSync(join(tmpdir(), 'minivisor-usage-')));
    expect(await main([command, file, flag, hostile], io)).toBe(2);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(/\(105 characters\)/);
    expect(io.stderr[0]).not.toContain('\u001b');
  });
});

describe('paths in errors are quoted, so an empty or odd one is visible', () => {
  it.each([
    [['test', ''], 'minivisor test: "" does not exist'],
    [['test', 'no\u001bwhere'], 'minivisor test: "no\\u001bwhere" does not exist'],
    [['replay', ''], 'minivisor replay: "": no such finding (expected a finding.json or a findings/<id>/ directory)'],
    [['shrink', 'no-such.json'], 'minivisor shrink: "no-such.json": no such finding (expected a finding.json or a findings/<id>/ directory)'],
  ])('%j', async (argv, line) => {
    const io = capture();
    expect(await main(argv, io)).toBe(2);
    expect(io.stderr).toEqual([line]);
  });
});

describe('a --workload the stub kernel cannot run is a usage error before any guest runs', () => {
  // guest/kernel/main.c: MAX_CHUNKS (4096) allocations of CHUNK_BYTES (1 MiB); a larger workload
  // ended the boot in workload_too_large (exit 1), and made every fuzz execution that same
  // detected fatal (exit 0, a campaign that tested nothing). kexec doubles it for the second kernel.
  it.each([
    [['boot', '--memory', '16G', '--workload', '4097M'], 'minivisor boot: --workload "4097M" must be at most 4G: the stub kernel\'s workload table holds 4096 allocations of 1M'],
    [['fuzz', '--memory', '16G', '--workload', '4097M', '--out', '/nonexistent/never-written'], 'minivisor fuzz: --workload "4097M" must be at most 4G: the stub kernel\'s workload table holds 4096 allocations of 1M'],
    [['boot', '--memory', '16G', '--workload', '2049M', '--handover', 'kexec'], 'minivisor boot: --workload "2049M" must be at most 2G with --handover kexec: the second kernel\'s workload is twice it, and the stub kernel runs at most 4G'],
  ])('%j', async (argv, line) => {
    const io = capture();
    expect(await main(argv, io)).toBe(2);
    expect(io.stderr).toEqual([line]);
    expect(io.stdout).toEqual([]);
  });
});

describe('an error that is not a usage error', () => {
  it('ends with exit status 1 and its message, not the usage status 2', async () => {
    // An output that fails under a command: nothing a command handles itself.
    const io = { ...capture(), out: () => { throw new Error('the output broke'); } };
    expect(await main(['info'], io)).toBe(1);
    expect(io.stderr).toEqual(['minivisor: the output broke']);
  });
});
