// `minivisor fuzz` flags (src/cli/fuzz-options.ts) at the edges of what they accept: durations
// (ms, s, m, h; a bare number is seconds; more than 0, at most a year), whole counts within their
// bounds (--jobs 1-256, --runs 1-10^9), --shard K/N (1 <= K <= N <= 100000), and a stored
// finding's target held to the same checks as the flags. Each refusal a FuzzOptionError (exit 2).
import { describe, expect, it } from 'vitest';
import { BootOptionError } from '../../../src/cli/boot-options.js';
import { checkRunnableTarget, defaultStage, FuzzOptionError, parseDuration, parseFuzzOptions, parseShard, positiveInt, type RawFuzzOptions } from '../../../src/cli/fuzz-options.js';
import { refusalMessage } from '../../helpers/refusal.js';

/** The FuzzOptionError `run` throws (failing the test when it throws none or another exception). */
const refusal = (run: () => unknown): string => refusalMessage(run, FuzzOptionError);

const parse = (raw: RawFuzzOptions) => parseFuzzOptions({ runs: '1', ...raw });

describe('fuzz flag values', () => {
  it('reads a duration in ms, s, m or h (seconds without a unit), at least 1 ms once rounded and at most 366 days', () => {
    expect(parseDuration('90', '--time')).toBe(90_000);
    expect(parseDuration(' 1.5m ', '--time')).toBe(90_000);
    expect(parseDuration('2h', '--time')).toBe(7_200_000);
    expect(parseDuration('1.5ms', '--time')).toBe(2);
    expect(parseDuration('8784h', '--time')).toBe(366 * 24 * 3_600_000);
    expect(parseDuration('0.5ms', '--time')).toBe(1);
    expect(refusal(() => parseDuration('8785h', '--time'))).toBe('--time must be at least 1ms and at most a year');
    expect(refusal(() => parseDuration('0s', '--time'))).toBe('--time must be at least 1ms and at most a year');
    // It rounds to 0 ms: a campaign with no time at all, not a duration.
    expect(refusal(() => parseDuration('0.4ms', '--time'))).toBe('--time must be at least 1ms and at most a year');
    expect(refusal(() => parseDuration('5s later', '--time'))).toMatch(/is not a duration/);
  });

  it('reads a whole count from 1 to its bound, and nothing else', () => {
    expect(positiveInt(' 256 ', '--jobs', 256)).toBe(256);
    expect(refusal(() => positiveInt('257', '--jobs', 256))).toBe('--jobs must be between 1 and 256, not "257"');
    expect(refusal(() => positiveInt('0', '--jobs', 256))).toBe('--jobs must be between 1 and 256, not "0"');
    expect(refusal(() => positiveInt('3x', '--jobs', 256))).toMatch(/is not a positive integer/);
  });

  it('reads --shard K/N as the 0-based index K-1 of N, 1 <= K <= N <= 100000', () => {
    expect(parseShard('1/1')).toEqual({ index: 0, count: 1 });
    expect(parseShard(' 4 / 4 ')).toEqual({ index: 3, count: 4 });
    expect(parseShard('1/100000')).toEqual({ index: 0, count: 100_000 });
    for (const text of ['5/4', '0/4', '1/0', '0/0', '1/100001']) expect(refusal(() => parseShard(text))).toMatch(/K must be between 1 and N \(N at most 100000\)/);
    expect(refusal(() => parseShard('1/4x'))).toMatch(/must look like K\/N/);
  });

  it('starts at the first stage replaced, else the kernel', () => {
    expect(defaultStage({ firmware: '/f', decompressor: '/d' })).toBe('firmware');
    expect(defaultStage({ decompressor: '/d', kernel: '/k' })).toBe('decompressor');
    expect(defaultStage({ kernel: '/k' })).toBe('kernel');
  });
});

describe('fuzz flags as a run', () => {
  it('takes --jobs up to 256, --runs up to 10^9, --shard, and the guest flags into the target', () => {
    expect(parse({ jobs: '256' }).jobs).toBe(256);
    expect(refusal(() => parse({ jobs: '257' }))).toMatch(/--jobs must be between 1 and 256/);
    expect(parse({ runs: '1000000000' }).runs).toBe(1_000_000_000);
    expect(refusal(() => parse({ runs: '1000000001' }))).toMatch(/--runs must be between 1 and 1000000000/);
    expect(parse({ shard: '2/3' }).shard).toEqual({ index: 1, count: 3 });
    expect(parse({ time: '2m', runs: undefined }).timeMs).toBe(120_000);
    expect(parse({ runs: undefined }).timeMs).toBe(60_000);
    expect(parse({ preAccept: '32M', vcpus: '2' }).target).toMatchObject({ preAccept: 32n << 20n, vcpus: 2 });
    expect(refusal(() => parse({ stage: 'bios' }))).toMatch(/--stage must be one of firmware, decompressor, kernel, all/);
    expect(refusal(() => parse({ memory: '1M' }))).toMatch(/--memory must be between/);
  });

  it('holds a stored target to the flags\' checks: its unit, accept mode and instruction budget too', () => {
    const { target } = parse({});
    expect(() => checkRunnableTarget(target)).not.toThrow();
    expect(() => checkRunnableTarget({ ...target, unitBytes: 0x1000n })).not.toThrow();
    expect(() => checkRunnableTarget({ ...target, unitBytes: 3n })).toThrow(BootOptionError);
    expect(() => checkRunnableTarget({ ...target, unitBytes: 0x400000n })).toThrow(/--unit must be 4K or 2M/);
    expect(() => checkRunnableTarget({ ...target, accept: 'sometimes' as 'lazy' })).toThrow(/--accept must be lazy or eager/);
    expect(() => checkRunnableTarget({ ...target, maxInstructions: 0n })).toThrow(/--max-instructions must be at least 1/);
  });
});
