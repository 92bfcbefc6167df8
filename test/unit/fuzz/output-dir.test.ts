// The fuzz output directory (src/fuzz/output-dir.ts), in process: what a finding's README says,
// which folders are accepted to write to or merge from (AFL++ likewise refuses an -o folder it did
// not make), and what a merge keeps. The CLI tests reach most of this only through a child process.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  FuzzOutputDir, OutputDirError, checkMergeDestination, checkReadableOutputDir, checkWritableOutputDir, findingReadme, mergeOutputDirs,
} from '../../../src/fuzz/output-dir.js';
import { attackProgramToJson, type AttackProgram } from '../../../src/fuzz/attack-program.js';
import { programHash } from '../../../src/fuzz/campaign.js';
import type { StoredFinding } from '../../../src/fuzz/finding-file.js';
import type { FuzzTarget } from '../../../src/fuzz/executor.js';
import { quoteForError } from '../../../src/shared/quote.js';

const scratch = (): string => mkdtempSync(join(tmpdir(), 'minivisor-outdir-'));
/** A process id above the kernel's limit: no process has it, so a temporary file named for it is stale. */
const NO_SUCH_PID = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;

const oneDecision: AttackProgram = {
  platform: 'tdx',
  decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n, resumeDelta: 0n } }],
};
const twoDecisions: AttackProgram = {
  platform: 'tdx',
  decisions: [...oneDecision.decisions, { at: 'call', point: 'tdx.mapGpa', occurrence: 1, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n, resumeDelta: 0n } }],
};
const target: FuzzTarget = {
  platform: 'tdx', stage: 'kernel', memoryBytes: 512n << 20n, workloadBytes: 16n << 20n, preAccept: 64n << 20n, accept: 'lazy',
  unitBytes: 0x200000n, guestSeed: 1n, maxInstructions: 50_000_000n,
};

function finding(id: string, detail: string, over: Partial<StoredFinding> = {}): StoredFinding {
  return {
    id, category: 'double-acceptance', severity: 'high', summary: 'two accepts', detail, target, seed: 7n, job: 0, execIndex: 3,
    outcome: { outcome: 'done', reason: 'guest halted' }, traceSha256: 'ab'.repeat(32), program: oneDecision, unshrunk: twoDecisions, ...over,
  };
}

describe('findingReadme', () => {
  it('says the whole configuration: variant, tracking, vCPUs, sizes not in whole MiB, pre-accept all, the 4K unit', () => {
    const text = findingReadme(finding('double-acceptance-0123456789ab', 'd', {
      target: { ...target, platform: 'snp', variant: 'reaccept-skipped', tracking: 'memmap', vcpus: 4, memoryBytes: (4097n << 20n) + 0x1000n,
        workloadBytes: 0x12345n, preAccept: 'all', unitBytes: 0x1000n },
    }), 'out/findings/x/finding.json');
    const config = text.split('\n').find((l) => l.startsWith('Configuration: '));
    // 4097 MiB + 4 KiB = 4296019968 bytes, 0x12345 = 74565 bytes: neither is a whole number of MiB.
    expect(config).toBe('Configuration: SNP (stub variant reaccept-skipped) (memmap tracking), 4 vCPUs, 4296019968 bytes RAM, '
      + 'workload 74565 bytes, pre-accept all, lazy acceptance, 4K unit, guest seed 1, executions start at stage kernel, budget 50000000 instructions.');
  });

  it('leaves out what the target does not set, and counts sizes in MiB when they are whole', () => {
    const text = findingReadme(finding('double-acceptance-0123456789ab', 'd'), 'f.json');
    expect(text).toContain('Configuration: TDX, 512 MiB RAM, workload 16 MiB, pre-accept 64 MiB, lazy acceptance, 2M unit,');
  });

  it('counts decisions in words, one and several, shrunk from the unshrunk program, and lists each', () => {
    const one = findingReadme(finding('double-acceptance-0123456789ab', 'd'), 'f.json');
    expect(one).toContain('The attack program (1 decision, shrunk from 2);');
    expect(one.split('\n').filter((l) => l.startsWith('  - call tdx.mapGpa'))).toHaveLength(1);
    const two = findingReadme(finding('double-acceptance-0123456789ab', 'd', { program: twoDecisions, unshrunk: twoDecisions }), 'f.json');
    expect(two).toContain('The attack program (2 decisions, shrunk from 2);');
    expect(two.split('\n').filter((l) => l.startsWith('  - call tdx.mapGpa'))).toHaveLength(2);
    expect(two).toContain('  minivisor replay f.json');
  });
  it('says where it was found and what to replay: the job, its seed, the execution index, the trace hash, and the user\'s own images', () => {
    const text = findingReadme(finding('double-acceptance-0123456789ab', 'd', {
      job: 2, seed: 99n, execIndex: 41, traceSha256: 'cd'.repeat(32),
      target: { ...target, images: { kernel: { file: '/builds/kernel.bin', sha256: 'ef'.repeat(32) } } },
    }), 'f.json');
    expect(text).toContain('Found by job 2 (its seed 99, derived from the campaign\'s --seed) at execution 41.');
    expect(text).toContain(`Replay it (the trace hash must be ${'cd'.repeat(32)}):`);
    expect(text.split('\n').filter((l) => l.startsWith('Your own '))).toEqual([
      `Your own kernel: /builds/kernel.bin (SHA-256 ${'ef'.repeat(32)}); after rebuilding it, the same replay runs the new build.`,
    ]);
  });
});

describe('checkWritableOutputDir', () => {
  it('refuses a folder of other files, naming the first three in order and marking that there are more', () => {
    const dir = scratch();
    for (const name of ['d', 'c', 'b', 'a']) writeFileSync(join(dir, name), '');
    expect(() => checkWritableOutputDir(dir)).toThrow(new OutputDirError('it holds other files ("a", "b", "c", …) and no corpus/, findings/ or stats.json: give a new or empty folder, or one a campaign wrote'));
    const three = scratch();
    for (const name of ['c', 'b', 'a']) writeFileSync(join(three, name), '');
    expect(() => checkWritableOutputDir(three)).toThrow(/\("a", "b", "c"\) and no corpus/);
  });

  it('accepts a new path, an empty folder and one a campaign wrote, next to files of the user\'s', () => {
    const dir = scratch();
    expect(() => checkWritableOutputDir(join(dir, 'new'))).not.toThrow();
    expect(() => checkWritableOutputDir(dir)).not.toThrow();
    mkdirSync(join(dir, 'corpus'));
    writeFileSync(join(dir, 'notes.txt'), '');
    expect(() => checkWritableOutputDir(dir)).not.toThrow();
  });

  it('refuses an output directory whose corpus/ is a file or whose stats.json is a folder, before the campaign runs', () => {
    const fileCorpus = scratch();
    writeFileSync(join(fileCorpus, 'corpus'), '');
    expect(() => checkWritableOutputDir(fileCorpus)).toThrow(new OutputDirError('its corpus is not a folder'));
    const folderStats = scratch();
    mkdirSync(join(folderStats, 'findings'));
    mkdirSync(join(folderStats, 'stats.json'));
    expect(() => checkWritableOutputDir(folderStats)).toThrow(new OutputDirError('its stats.json is a folder, not a file'));
    const folderReport = scratch();
    mkdirSync(join(folderReport, 'corpus'));
    mkdirSync(join(folderReport, 'report.html'));
    expect(() => checkWritableOutputDir(folderReport)).toThrow(new OutputDirError('its report.html is a folder, not a file'));
  });

  it('refuses an empty name and a path under a file', () => {
    expect(() => checkWritableOutputDir(' ')).toThrow(new OutputDirError('it is empty'));
    const dir = scratch();
    writeFileSync(join(dir, 'file'), '');
    expect(() => checkWritableOutputDir(join(dir, 'file'))).toThrow(/a file, not a directory/);
    expect(() => checkWritableOutputDir(join(dir, 'file', 'below'))).toThrow(/a file, not a directory/);
  });
});

describe('checkReadableOutputDir', () => {
  it('says what is wrong with a merge source: missing, a file, under a file, or no corpus/ and no findings/', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'file'), '');
    const q = quoteForError;
    expect(() => checkReadableOutputDir(join(dir, 'none'))).toThrow(new OutputDirError(`${q(join(dir, 'none'))} does not exist`));
    expect(() => checkReadableOutputDir(join(dir, 'file'))).toThrow(new OutputDirError(`${q(join(dir, 'file'))} is not a directory: give fuzz --out directories`));
    expect(() => checkReadableOutputDir(join(dir, 'file', 'x'))).toThrow(new OutputDirError(`${q(join(dir, 'file', 'x'))} is not a directory: give fuzz --out directories`));
    expect(() => checkReadableOutputDir(dir)).toThrow(new OutputDirError(`${q(dir)} is not a fuzz output directory (it has no corpus/ and no findings/)`));
  });

  it('accepts a folder with only corpus/ or only findings/', () => {
    const corpusOnly = scratch();
    mkdirSync(join(corpusOnly, 'corpus'));
    expect(() => checkReadableOutputDir(corpusOnly)).not.toThrow();
    const findingsOnly = scratch();
    mkdirSync(join(findingsOnly, 'findings'));
    expect(() => checkReadableOutputDir(findingsOnly)).not.toThrow();
  });

  it('reports any other reason it cannot look at the source with its errno code (a symbolic link loop)', () => {
    const dir = scratch();
    symlinkSync('loop', join(dir, 'loop'));
    expect(() => checkReadableOutputDir(join(dir, 'loop'))).toThrow(new OutputDirError(`cannot read ${quoteForError(join(dir, 'loop'))}: ELOOP`));
    // The same folder as an output directory: not one of the errors it explains, so passed on as it is.
    expect(() => checkWritableOutputDir(join(dir, 'loop'))).toThrow(expect.objectContaining({ code: 'ELOOP' }));
  });
});

describe('checkMergeDestination', () => {
  it('refuses an output inside a source, also through a symbolic link, and accepts one beside it whose name starts with the source\'s', () => {
    const top = scratch();
    const a = join(top, 'a');
    mkdirSync(join(a, 'corpus'), { recursive: true });
    symlinkSync(a, join(top, 'link'));
    const inside = join(a, 'corpus', 'all');
    expect(() => checkMergeDestination(inside, [a])).toThrow(new OutputDirError(`--out ${quoteForError(inside)} is inside the source ${quoteForError(a)}: give a folder outside the sources (or, to merge into that one, name it first and leave --out out)`));
    expect(() => checkMergeDestination(join(top, 'link', 'corpus', 'all'), [a])).toThrow(OutputDirError);
    expect(() => checkMergeDestination(join(top, 'a-merged'), [a])).not.toThrow();
    // A missing source is refused later as a source, with its own message: not here.
    expect(() => checkMergeDestination(join(top, 'merged'), [join(top, 'none'), a])).not.toThrow();
  });
});

describe('FuzzOutputDir', () => {
  it('opened read-only makes nothing, and reads an absent corpus and findings folder as empty', () => {
    const dir = scratch();
    const out = new FuzzOutputDir(join(dir, 'missing'), false);
    expect(out.readCorpus()).toEqual([]);
    expect(out.readFindings()).toEqual([]);
    expect(existsSync(join(dir, 'missing'))).toBe(false);
  });

  it('opened to write, removes the temporary files a killed campaign left, in finding folders too', () => {
    const dir = scratch();
    const stale = `.finding.json.tmp-${NO_SUCH_PID}-0`;
    mkdirSync(join(dir, 'findings', 'double-acceptance-00000000000a'), { recursive: true });
    writeFileSync(join(dir, 'findings', 'double-acceptance-00000000000a', stale), '{');
    mkdirSync(join(dir, 'corpus'));
    writeFileSync(join(dir, 'corpus', `.x.json.tmp-${NO_SUCH_PID}-1`), '{');
    new FuzzOutputDir(dir);
    expect(readdirSync(join(dir, 'findings', 'double-acceptance-00000000000a'))).toEqual([]);
    expect(readdirSync(join(dir, 'corpus'))).toEqual([]);
  });

  it('writes stats with 64-bit counters as decimal strings', () => {
    const out = new FuzzOutputDir(scratch());
    out.writeStats({ execs: 3, instructions: (1n << 64n) - 1n });
    expect(JSON.parse(readFileSync(join(out.dir, 'stats.json'), 'utf8'))).toEqual({ execs: 3, instructions: '18446744073709551615' });
  });

  it('writes a finding with no trace lines as an empty trace.jsonl, and one with lines one a line', () => {
    const out = new FuzzOutputDir(scratch());
    const empty = out.addFinding(finding('double-acceptance-000000000001', 'a'), []);
    expect(readFileSync(join(empty, '..', 'trace.jsonl'), 'utf8')).toBe('');
    const two = out.addFinding(finding('double-acceptance-000000000002', 'b'), ['{"a":1}', '{"b":2}']);
    expect(readFileSync(join(two, '..', 'trace.jsonl'), 'utf8')).toBe('{"a":1}\n{"b":2}\n');
  });

  it('reads the corpus in file-name order, skips files that are not .json and warns about damaged ones', () => {
    const out = new FuzzOutputDir(scratch());
    writeFileSync(join(out.corpusDir, 'b.json'), attackProgramToJson(twoDecisions));
    writeFileSync(join(out.corpusDir, 'a.json'), attackProgramToJson(oneDecision));
    writeFileSync(join(out.corpusDir, 'c.json'), '{ not json');
    writeFileSync(join(out.corpusDir, 'notes.txt'), '{ not json either');
    const warnings: string[] = [];
    expect(out.readCorpus((m) => warnings.push(m))).toEqual([oneDecision, twoDecisions]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(new RegExp(`^skipping ${join(out.corpusDir, 'c.json').replace(/[.]/g, '\\.')}: `));
  });

  it('reads findings in folder-name order, passes over folders without a finding.json and warns about damaged ones', () => {
    const out = new FuzzOutputDir(scratch());
    out.addFinding(finding('double-acceptance-00000000000b', 'b'), []);
    out.addFinding(finding('double-acceptance-00000000000a', 'a'), []);
    mkdirSync(join(out.findingsDir, 'double-acceptance-000000000000'));
    mkdirSync(join(out.findingsDir, 'zz-damaged'));
    writeFileSync(join(out.findingsDir, 'zz-damaged', 'finding.json'), '{}');
    const warnings: string[] = [];
    const read = out.readFindings((m) => warnings.push(m));
    expect(read.map((r) => r.finding.id)).toEqual(['double-acceptance-00000000000a', 'double-acceptance-00000000000b']);
    expect(read[0]!.dir).toBe(join(out.findingsDir, 'double-acceptance-00000000000a'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.startsWith(`skipping ${join(out.findingsDir, 'zz-damaged', 'finding.json')}: `)).toBe(true);
  });
});

describe('mergeOutputDirs', () => {
  function source(findings: { f: StoredFinding; trace?: string[] }[], corpus: AttackProgram[]): FuzzOutputDir {
    const out = new FuzzOutputDir(scratch());
    for (const { f, trace } of findings) out.addFinding(f, trace ?? []);
    for (const p of corpus) out.addCorpus(p);
    return out;
  }

  it('takes the union of the corpora and each finding once by signature (numbers aside), the first source\'s first', () => {
    const a = source([{ f: finding('double-acceptance-00000000000a', 'page 0x1000 twice'), trace: ['{"from":"a"}'] }], [oneDecision]);
    // Same category, same words, other addresses: the same finding; another category: a second one.
    const b = source([
      { f: finding('double-acceptance-00000000000b', 'page 0x2000 twice'), trace: ['{"from":"b"}'] },
      { f: finding('foreign-content-00000000000c', 'page 0x2000 twice', { category: 'foreign-content' }) },
    ], [oneDecision, twoDecisions]);
    const into = join(scratch(), 'merged');
    const r = mergeOutputDirs([a.dir, b.dir], () => new FuzzOutputDir(into));
    expect(r.corpus).toBe(2);
    expect(r.findings).toBe(2);
    expect(readdirSync(r.out.corpusDir).sort()).toEqual([`${programHash(oneDecision)}.json`, `${programHash(twoDecisions)}.json`].sort());
    expect(readdirSync(r.out.findingsDir).sort()).toEqual(['double-acceptance-00000000000a', 'foreign-content-00000000000c']);
    expect(readFileSync(join(r.out.findingsDir, 'double-acceptance-00000000000a', 'trace.jsonl'), 'utf8')).toBe('{"from":"a"}\n');
  });

  it('of two findings with one signature in one source keeps the first in folder-name order', () => {
    const a = source([
      { f: finding('double-acceptance-00000000000b', 'page 0x2000 twice') },
      { f: finding('double-acceptance-00000000000a', 'page 0x1000 twice') },
    ], []);
    const r = mergeOutputDirs([a.dir], () => new FuzzOutputDir(join(scratch(), 'm')));
    expect(readdirSync(r.out.findingsDir)).toEqual(['double-acceptance-00000000000a']);
  });

  it('keeps what the output directory holds already: a finding found again is not written twice', () => {
    const into = source([{ f: finding('double-acceptance-00000000000a', 'page 0x1000 twice'), trace: ['{"from":"into"}'] }], []);
    const b = source([{ f: finding('double-acceptance-00000000000b', 'page 0x5000 twice') }], []);
    const r = mergeOutputDirs([b.dir], () => new FuzzOutputDir(into.dir));
    expect(r.findings).toBe(1);
    expect(readdirSync(r.out.findingsDir)).toEqual(['double-acceptance-00000000000a']);
    expect(readFileSync(join(r.out.findingsDir, 'double-acceptance-00000000000a', 'trace.jsonl'), 'utf8')).toBe('{"from":"into"}\n');
  });

  it('merges a finding whose trace cannot be read without a trace, and says so', () => {
    const a = source([{ f: finding('double-acceptance-00000000000a', 'd') }], []);
    const traceFile = join(a.findingsDir, 'double-acceptance-00000000000a', 'trace.jsonl');
    rmSync(traceFile);
    mkdirSync(traceFile);
    const warnings: string[] = [];
    const r = mergeOutputDirs([a.dir], () => new FuzzOutputDir(join(scratch(), 'm')), (m) => warnings.push(m));
    expect(r.findings).toBe(1);
    expect(readFileSync(join(r.out.findingsDir, 'double-acceptance-00000000000a', 'trace.jsonl'), 'utf8')).toBe('');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^trace ".*" \(\d+ characters\) is a directory; give a regular file: the merged finding has no trace$/);
  });

  it('merges a finding whose folder has no trace.jsonl with an empty trace, and no warning', () => {
    const a = source([{ f: finding('double-acceptance-00000000000a', 'd'), trace: ['{"x":1}'] }], []);
    rmSync(join(a.findingsDir, 'double-acceptance-00000000000a', 'trace.jsonl'));
    const warnings: string[] = [];
    const r = mergeOutputDirs([a.dir], () => new FuzzOutputDir(join(scratch(), 'm')), (m) => warnings.push(m));
    expect(warnings).toEqual([]);
    expect(readFileSync(join(r.out.findingsDir, 'double-acceptance-00000000000a', 'trace.jsonl'), 'utf8')).toBe('');
  });

  it('checks every source before it opens the output: a bad last source makes nothing', () => {
    const a = source([], [oneDecision]);
    let opened = false;
    expect(() => mergeOutputDirs([a.dir, join(scratch(), 'none')], () => { opened = true; return new FuzzOutputDir(join(scratch(), 'm')); })).toThrow(OutputDirError);
    expect(opened).toBe(false);
  });
});
