// The output directory of `minivisor fuzz --out DIR`, AFL/libFuzzer style:
//   DIR/corpus/<hash>.json                     attack programs that reached new coverage
//   DIR/findings/<category>-<hash>/finding.json the finding (config, seed, shrunk program, trace hash)
//   DIR/findings/<category>-<hash>/trace.jsonl  the trace of its replay
//   DIR/findings/<category>-<hash>/README.txt   what happened, in words, and how to replay it
//   DIR/stats.json                              the campaign's numbers
// Files are written whole (temp file + rename), so an interrupted campaign never leaves a damaged
// one; the temporary files of a process a signal killed are removed when the directory is next written.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { makeDirectories } from '../shared/make-directories.js';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { attackProgramFromJson, attackProgramToJson, describeDecision, type AttackProgram } from './attack-program.js';
import { findingSignature, programHash } from './campaign.js';
import { findingFromJson, findingToJson, readFindingText, type StoredFinding } from './finding-file.js';
import { InputFileError, readInputText } from '../shared/input-file.js';
import { MAX_TRACE_FILE_BYTES } from '../shared/trace.js';
import { quoteForError } from '../shared/quote.js';
import { removeStaleTempsIn, writeFileAtomic } from '../shared/output-file.js';
import { counted } from '../shared/counted.js';
import { STAGE_IMAGE_KINDS } from './stage-images.js';

const mib = (b: bigint): string => (b % (1n << 20n) === 0n ? `${b >> 20n} MiB` : `${b} bytes`);

export function replayCommand(findingJson: string): string {
  return `minivisor replay ${findingJson}`;
}

/** README.txt of a finding: what happened, in words. */
export function findingReadme(f: StoredFinding, findingJson: string): string {
  const t = f.target;
  const lines = [
    `minivisor finding ${f.id}: ${f.category} (severity ${f.severity})`,
    '',
    `What it means: ${f.summary}.`,
    `What the hardware saw: ${f.detail}.`,
    `How the run ended: ${f.outcome.outcome} (${f.outcome.reason}).`,
    '',
    `Configuration: ${t.platform.toUpperCase()}${t.variant ? ` (stub variant ${t.variant})` : ''}${t.tracking ? ` (${t.tracking} tracking)` : ''}${t.vcpus ? `, ${t.vcpus} vCPUs` : ''}, ${mib(t.memoryBytes)} RAM, workload ${mib(t.workloadBytes)}, pre-accept ${t.preAccept === 'all' ? 'all' : mib(t.preAccept)}, ${t.accept} acceptance, ${t.unitBytes === 0x1000n ? '4K' : '2M'} unit, guest seed ${t.guestSeed}, executions start at stage ${t.stage}, budget ${t.maxInstructions} instructions.`,
    ...STAGE_IMAGE_KINDS.flatMap((kind) => {
      const image = t.images?.[kind];
      return image ? [`Your own ${kind}: ${image.file} (SHA-256 ${image.sha256}); after rebuilding it, the same replay runs the new build.`] : [];
    }),
    `Found by job ${f.job} (its seed ${f.seed}, derived from the campaign's --seed) at execution ${f.execIndex}.`,
    '',
    `The attack program (${counted(f.program.decisions.length, 'decision')}, shrunk from ${f.unshrunk.decisions.length}); everything else the VMM answered honestly:`,
    ...f.program.decisions.map((d) => `  - ${describeDecision(d)}`),
    '',
    `Replay it (the trace hash must be ${f.traceSha256}):`,
    `  ${replayCommand(findingJson)}`,
    '',
  ];
  return lines.join('\n');
}

/** A directory that cannot be a fuzz output directory (to write to, or to merge from); the message says why. */
export class OutputDirError extends Error {
  override name = 'OutputDirError';
}

/** What every fuzz output directory holds at least one of (an empty campaign still makes both folders). */
const OUTPUT_DIR_MARKS = ['corpus', 'findings', 'stats.json'];
/** What a campaign writes into the output directory, and the kind each must be when it is there already. */
const OUTPUT_DIR_ENTRIES: ReadonlyArray<readonly [string, 'folder' | 'file']> = [['corpus', 'folder'], ['findings', 'folder'], ['stats.json', 'file'], ['report.html', 'file']];

/**
 * Checks that `dir` can be written as a fuzz output directory: a new or empty folder, or one a
 * campaign or a merge wrote (it is resumed). A folder with other files and none of an output
 * directory's is refused rather than filled with corpus/, findings/ and the rest (AFL++ likewise
 * refuses an -o folder it did not make). OutputDirError otherwise.
 */
export function checkWritableOutputDir(dir: string): void {
  if (dir.trim() === '') throw new OutputDirError('it is empty');
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new OutputDirError('it or a folder above it is a file, not a directory');
    entries = readdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;  // made when the campaign starts
    if (code === 'ENOTDIR') throw new OutputDirError('it or a folder above it is a file, not a directory');
    throw err;
  }
  if (entries.length > 0 && !entries.some((name) => OUTPUT_DIR_MARKS.includes(name))) {
    const shown = entries.sort().slice(0, 3).map(quoteForError).join(', ');
    throw new OutputDirError(`it holds other files (${shown}${entries.length > 3 ? ', …' : ''}) and no corpus/, findings/ or stats.json: give a new or empty folder, or one a campaign wrote`);
  }
  // Checked now, not found out when the campaign's results are written at its end.
  for (const [name, kind] of OUTPUT_DIR_ENTRIES) {
    if (!entries.includes(name)) continue;
    const isDirectory = statSync(join(dir, name), { throwIfNoEntry: false })?.isDirectory();
    if (isDirectory !== undefined && isDirectory !== (kind === 'folder')) throw new OutputDirError(`its ${name} is ${kind === 'folder' ? 'not a folder' : 'a folder, not a file'}`);
  }
}

/** `path` with symbolic links resolved, for a path that may not exist yet: its nearest existing folder's real path, and the rest. */
function realPathOfNew(path: string): string {
  let existing = resolve(path);
  const rest: string[] = [];
  while (!existsSync(existing) && dirname(existing) !== existing) {
    rest.unshift(basename(existing));
    existing = dirname(existing);
  }
  return join(realpathSync(existing), ...rest);
}

/**
 * Refuses a merge destination inside one of its sources (`merge a b --out a/corpus/all`): it would
 * be written into that campaign's own folders, which a merge only reads, and a later campaign or
 * merge of that source would find a folder among its corpus programs or findings.
 */
export function checkMergeDestination(into: string, sources: readonly string[]): void {
  const target = realPathOfNew(into);
  for (const source of sources) {
    if (!existsSync(source)) continue;  // refused as a source, with its own message
    const root = realpathSync(source);
    if (target.startsWith(root + sep)) throw new OutputDirError(`--out ${quoteForError(into)} is inside the source ${quoteForError(source)}: give a folder outside the sources (or, to merge into that one, name it first and leave --out out)`);
  }
}

/** Checks that `dir` is a fuzz output directory to read (merge sources): OutputDirError otherwise, saying why. */
export function checkReadableOutputDir(dir: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new OutputDirError(`${quoteForError(dir)} does not exist`);
    if (code === 'ENOTDIR') throw new OutputDirError(`${quoteForError(dir)} is not a directory: give fuzz --out directories`);
    throw new OutputDirError(`cannot read ${quoteForError(dir)}: ${code ?? String(err)}`);
  }
  if (!isDirectory) throw new OutputDirError(`${quoteForError(dir)} is not a directory: give fuzz --out directories`);
  if (!existsSync(join(dir, 'corpus')) && !existsSync(join(dir, 'findings'))) {
    throw new OutputDirError(`${quoteForError(dir)} is not a fuzz output directory (it has no corpus/ and no findings/)`);
  }
}

export class FuzzOutputDir {
  readonly dir: string;
  readonly corpusDir: string;
  readonly findingsDir: string;

  /** `create: false` opens an existing directory read-only (merge sources are never changed). */
  constructor(dir: string, create = true) {
    this.dir = dir;
    this.corpusDir = join(dir, 'corpus');
    this.findingsDir = join(dir, 'findings');
    if (create) {
      makeDirectories(this.corpusDir);
      makeDirectories(this.findingsDir);
      for (const d of [dir, this.corpusDir, this.findingsDir, ...readdirSync(this.findingsDir).map((n) => join(this.findingsDir, n))]) removeStaleTempsIn(d);
    }
  }

  addCorpus(program: AttackProgram): void {
    const path = join(this.corpusDir, `${programHash(program)}.json`);
    if (!existsSync(path)) writeFileAtomic(path, attackProgramToJson(program));
  }

  /** Writes one finding's directory; returns the path of its finding.json. */
  addFinding(f: StoredFinding, traceLines: readonly string[]): string {
    const dir = join(this.findingsDir, f.id);
    makeDirectories(dir);
    const json = join(dir, 'finding.json');
    writeFileAtomic(join(dir, 'trace.jsonl'), traceLines.length ? `${traceLines.join('\n')}\n` : '');
    writeFileAtomic(join(dir, 'README.txt'), findingReadme(f, json));
    writeFileAtomic(json, findingToJson(f, replayCommand(json)));
    return json;
  }

  writeStats(stats: unknown): void {
    writeFileAtomic(join(this.dir, 'stats.json'), `${JSON.stringify(stats, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
  }

  /** The corpus in file-name order (a deterministic seed list). Unreadable files are reported, not fatal. */
  readCorpus(warn: (message: string) => void = () => {}): AttackProgram[] {
    const programs: AttackProgram[] = [];
    if (!existsSync(this.corpusDir)) return programs;
    for (const name of readdirSync(this.corpusDir).filter((n) => n.endsWith('.json')).sort()) {
      const path = join(this.corpusDir, name);
      try {
        programs.push(attackProgramFromJson(readFindingText(path, 'corpus program'), path));
      } catch (err) {
        warn(`skipping ${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return programs;
  }

  /** The findings stored here, in directory-name order. */
  readFindings(warn: (message: string) => void = () => {}): { finding: StoredFinding; dir: string }[] {
    const out: { finding: StoredFinding; dir: string }[] = [];
    if (!existsSync(this.findingsDir)) return out;
    for (const name of readdirSync(this.findingsDir).sort()) {
      const path = join(this.findingsDir, name, 'finding.json');
      if (!existsSync(path)) continue;
      try {
        out.push({ finding: findingFromJson(readFindingText(path, 'finding'), path), dir: join(this.findingsDir, name) });
      } catch (err) {
        warn(`skipping ${path}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return out;
  }
}

/**
 * Merges the output directories `sources` into the one `openInto` opens (and makes): the union of
 * the corpora, and the findings deduplicated by signature (category and what happened, addresses
 * aside), first directory first. Every source is checked (checkReadableOutputDir) before `openInto`
 * is called: a bad one last left the others merged, and a bad one must not leave a new folder made.
 */
export function mergeOutputDirs(sources: readonly string[], openInto: () => FuzzOutputDir, warn: (message: string) => void = () => {}): { out: FuzzOutputDir; corpus: number; findings: number } {
  for (const source of sources) checkReadableOutputDir(source);
  const out = openInto();
  const signatures = new Set(out.readFindings(warn).map(({ finding }) => findingSignature(finding)));
  for (const source of sources) {
    const src = new FuzzOutputDir(source, false);
    for (const program of src.readCorpus(warn)) out.addCorpus(program);
    for (const { finding, dir } of src.readFindings(warn)) {
      const signature = findingSignature(finding);
      if (signatures.has(signature)) continue;
      signatures.add(signature);
      const traceFile = join(dir, 'trace.jsonl');
      let trace: string[] = [];
      try {
        if (existsSync(traceFile)) trace = readInputText(traceFile, 'trace', MAX_TRACE_FILE_BYTES).split('\n').filter((l) => l !== '');
      } catch (err) {
        if (!(err instanceof InputFileError)) throw err;
        warn(`${err.message}: the merged finding has no trace`);
      }
      out.addFinding(finding, trace);
    }
  }
  return { out, corpus: readdirSync(out.corpusDir).filter((n) => n.endsWith('.json')).length, findings: out.readFindings().length };
}
