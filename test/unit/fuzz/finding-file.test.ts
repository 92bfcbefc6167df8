// finding.json (src/fuzz/finding-file.ts): what a campaign writes reads back to the same finding,
// bit for bit, and a hand-edited or damaged file is refused with one error that names the file and
// the field ("every field is checked (it may be hand-edited or damaged)"; README: bad input gives a
// clear error, never a crash).
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FINDING_FORMAT, FindingFileError, findingFromJson, findingToJson, loadFinding, type StoredFinding } from '../../../src/fuzz/finding-file.js';
import type { AttackProgram } from '../../../src/fuzz/attack-program.js';
import type { FuzzTarget } from '../../../src/fuzz/executor.js';

const PATH = 'findings/x/finding.json';
const program: AttackProgram = { platform: 'tdx', decisions: [] };
const target: FuzzTarget = {
  platform: 'tdx', stage: 'kernel', memoryBytes: 512n << 20n, workloadBytes: 16n << 20n, preAccept: 64n << 20n, accept: 'lazy',
  unitBytes: 0x200000n, guestSeed: 1n, maxInstructions: 50_000_000n,
};
const plain: StoredFinding = {
  id: 'double-acceptance-0123456789ab', category: 'double-acceptance', severity: 'high', summary: 'two accepts', detail: 'of 0x400000',
  target, seed: 7n, job: 2, execIndex: 13, outcome: { outcome: 'done', reason: 'guest halted' }, traceSha256: 'ab'.repeat(32),
  program, unshrunk: program,
};

/** The finding's JSON object, with `edit` applied to it, as text. */
function edited(edit: (o: Record<string, any>) => void, f: StoredFinding = plain): string {
  const o = JSON.parse(findingToJson(f, 'minivisor replay findings/x'));
  edit(o);
  return JSON.stringify(o);
}

describe('finding.json round trip', () => {
  it('a finding with every optional field (64 vCPUs, the most there are) reads back equal, 64-bit values exact', () => {
    const full: StoredFinding = {
      ...plain, id: 'foreign-content-fedcba987654', category: 'foreign-content', severity: 'high', gpa: 0xffff_ffff_ffff_f000n, rip: 0x301005n, eventSeq: 0,
      seed: 0xfedc_ba98_7654_3210n,
      target: {
        ...target, platform: 'tdx', preAccept: 'all', variant: 'accepting-list-missing', tracking: 'memmap', vcpus: 64, maxInstructions: (1n << 64n) - 1n,
        images: { firmware: { file: '/stubs/fw.elf', sha256: '0f'.repeat(32) }, kernel: { file: 'relative/kernel.elf', sha256: 'a1'.repeat(32) } },
      },
      // The program before shrinking is kept apart from the shrunk one.
      unshrunk: { ...program, memoryDescription: { memoryBytes: 0x20000000n } },
    };
    expect(findingFromJson(findingToJson(full, 'r'), PATH)).toEqual(full);
  });

  it('a finding without them reads back without them (no gpa, rip, eventSeq, variant, tracking, vcpus or images keys)', () => {
    const back = findingFromJson(findingToJson(plain, 'r'), PATH);
    expect(back).toEqual(plain);
    for (const key of ['gpa', 'rip', 'eventSeq']) expect(Object.hasOwn(back, key)).toBe(false);
    for (const key of ['variant', 'tracking', 'vcpus', 'images']) expect(Object.hasOwn(back.target, key)).toBe(false);
  });

  it('the defaults are not stored: tracking "bitmap" and vcpus 1 read back as absent; a missing "unshrunk" is the program', () => {
    const back = findingFromJson(edited((o) => { o.target.tracking = 'bitmap'; o.target.vcpus = 1; delete o.unshrunk; }), PATH);
    expect(back.target).toEqual(target);
    expect(back.unshrunk).toEqual(program);
  });

  it('the severity is the category\'s, not what the file says', () => {
    expect(findingFromJson(edited((o) => { o.severity = 'low'; }), PATH).severity).toBe('high');
  });
});

describe('a damaged finding.json', () => {
  const refusals: [string, string, RegExp][] = [
    ['not JSON', '{"format": ', /: not JSON \(/],
    ['a JSON array', '[]', /format must be "minivisor-finding"/],
    ['null', 'null', /expected a JSON object/],
    ['another format', edited((o) => { o.format = 'minivisor-program'; }), /format must be "minivisor-finding"/],
    ['another version', edited((o) => { o.version = 2; }), /unsupported version \(this minivisor reads 1\)/],
    ['an unknown category', edited((o) => { o.category = 'bad-luck'; }), /unknown category/],
    ['a category inherited from Object.prototype', edited((o) => { o.category = 'constructor'; }), /unknown category/],
    ['no outcome', edited((o) => { delete o.outcome; }), /outcome must be \{ outcome, reason \}/],
    ['an outcome without a reason', edited((o) => { o.outcome = { outcome: 'done' }; }), /outcome must be \{ outcome, reason \}/],
    ['a program that is not one', edited((o) => { o.program.format = 'x'; }), /program/],
    ['no target', edited((o) => { delete o.target; }), /target must be an object/],
    ['target.platform sev', edited((o) => { o.target.platform = 'sev'; }), /target\.platform must be tdx or snp/],
    ['target.stage boot', edited((o) => { o.target.stage = 'boot'; }), /target\.stage must be one of firmware, decompressor, kernel, all/],
    ['target.accept sometimes', edited((o) => { o.target.accept = 'sometimes'; }), /target\.accept must be lazy or eager/],
    ['a decimal memoryBytes', edited((o) => { o.target.memoryBytes = '536870912'; }), /memoryBytes must be a hex string like "0x1000"/],
    ['a 65-bit memoryBytes', edited((o) => { o.target.memoryBytes = '0x10000000000000000'; }), /memoryBytes must be a hex string/],
    ['a numeric seed', edited((o) => { o.seed = 7; }), /seed must be a string/],
    ['an unknown variant', edited((o) => { o.target.variant = 'no-such-bug'; }), /target\.variant "no-such-bug" is not a stub variant/],
    ['tracking "list"', edited((o) => { o.target.tracking = 'list'; }), /target\.tracking "list" must be bitmap or memmap/],
    ['vcpus 0', edited((o) => { o.target.vcpus = 0; }), /target\.vcpus must be an integer from 1 to 64/],
    ['vcpus 65', edited((o) => { o.target.vcpus = 65; }), /target\.vcpus must be an integer from 1 to 64/],
    ['vcpus 1.5', edited((o) => { o.target.vcpus = 1.5; }), /target\.vcpus must be an integer/],
    ['images as a list', edited((o) => { o.target.images = []; }), /target\.images must be an object/],
    ['an image of an unknown stage', edited((o) => { o.target.images = { bios: { file: '/b', sha256: '0'.repeat(64) } }; }), /target\.images may name firmware, decompressor, kernel, not "bios"/],
    ['an image without its file', edited((o) => { o.target.images = { kernel: { sha256: '0'.repeat(64) } }; }), /file must be a string/],
    ['an image file that is empty', edited((o) => { o.target.images = { kernel: { file: '', sha256: '0'.repeat(64) } }; }), /target\.images\.kernel\.file must name a file/],
    ['an image file with a NUL', edited((o) => { o.target.images = { kernel: { file: 'k\0.elf', sha256: '0'.repeat(64) } }; }), /target\.images\.kernel\.file must name a file/],
    ['an image SHA-256 in capitals', edited((o) => { o.target.images = { firmware: { file: '/f', sha256: 'AB'.repeat(32) } }; }), /target\.images\.firmware\.sha256 must be 64 lowercase hex digits/],
    ['an image SHA-256 one digit short', edited((o) => { o.target.images = { firmware: { file: '/f', sha256: '0'.repeat(63) } }; }), /sha256 must be 64 lowercase hex digits/],
    ['a program for the other platform', edited((o) => { o.target.platform = 'snp'; }), /the program and the target are for different platforms/],
    ['a negative job', edited((o) => { o.job = -1; }), /job must be a non-negative integer/],
    ['a fractional execIndex', edited((o) => { o.execIndex = 1.5; }), /execIndex must be a non-negative integer/],
    ['a decimal gpa', edited((o) => { o.gpa = '4194304'; }), /gpa must be a hex string/],
    ['a hex rip as a number', edited((o) => { o.rip = 0x1000; }), /rip must be a string/],
    ['a string eventSeq', edited((o) => { o.eventSeq = '3'; }), /eventSeq must be a non-negative integer/],
    ['an execIndex past 2^53 (before: 1e308 was taken and printed as 1e+308)', edited((o) => { o.execIndex = 1e308; }), /execIndex must be a non-negative integer/],
    ['a job past 2^53', edited((o) => { o.job = 2 ** 53; }), /job must be a non-negative integer/],
    // The id names the finding's folder (fuzz merge writes findings/<id>/): the category, a dash and 12 hex digits, nothing more.
    ['an id with a path after it', edited((o) => { o.id = 'double-acceptance-0123456789ab/../../x'; }), /id ".*" is not a finding id/],
    ['an id with more words than its category', edited((o) => { o.id = 'double-acceptance-x-0123456789ab'; }), /id "double-acceptance-x-0123456789ab" is not a finding id of category double-acceptance/],
    ['an id of another category', edited((o) => { o.id = 'liveness-0123456789ab'; }), /is not a finding id of category double-acceptance/],
  ];
  it.each(refusals)('%s → FindingFileError naming the file and the field', (_what, text, why) => {
    let error: unknown;
    try {
      findingFromJson(text, PATH);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FindingFileError);
    expect((error as Error).message.startsWith(`${PATH}: `)).toBe(true);
    expect((error as Error).message).toMatch(why);
  });

  it('the format name it asks for is the one it writes', () => {
    expect(JSON.parse(findingToJson(plain, 'r')).format).toBe(FINDING_FORMAT);
  });
});

describe('loadFinding', () => {
  const dir = mkdtempSync(join(tmpdir(), 'minivisor-finding-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes a finding\'s directory or its finding.json, and names a path that has neither', () => {
    const findingDir = join(dir, 'double-acceptance-0123456789ab');
    mkdirSync(findingDir);
    writeFileSync(join(findingDir, 'finding.json'), findingToJson(plain, 'r'));
    expect(loadFinding(findingDir)).toEqual({ finding: plain, file: join(findingDir, 'finding.json') });
    expect(loadFinding(join(findingDir, 'finding.json')).finding).toEqual(plain);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(() => loadFinding(empty)).toThrow(FindingFileError);
    expect(() => loadFinding(empty)).toThrow(/no such finding \(expected a finding\.json or a findings\/<id>\/ directory\)$/);
    expect(() => loadFinding(empty)).toThrow(empty);
    expect(() => loadFinding(join(dir, 'missing'))).toThrow(/no such finding/);
  });
});
