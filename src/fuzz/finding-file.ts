// finding.json: everything needed to understand and replay one finding, bit for bit: the exact
// target configuration, the campaign seed, the shrunk attack program, the outcome and the trace
// hash its execution produced. Bigints are "0x…" strings, as in attack programs.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isAcceptanceTracking, isStubVariant } from '../boot/images.js';
import { MAX_VCPUS } from '../cpu/machine.js';
import { attackProgramToJsonValue, parseAttackProgram, AttackProgramError, type AttackProgram } from './attack-program.js';
import type { CampaignFinding } from './campaign.js';
import { FUZZ_STAGES, type FuzzTarget } from './executor.js';
import { FINDING_CATEGORIES, type FindingCategory, type Severity } from './oracle.js';
import { STAGE_IMAGE_KINDS, type StageImageKind, type StageImages } from './stage-images.js';
import { InputFileError, readInputTextStrict } from '../shared/input-file.js';
import { escapeControls, quoteForError } from '../shared/quote.js';

export const FINDING_FORMAT = 'minivisor-finding';
export const FINDING_VERSION = 1;

/**
 * A bound on finding.json and corpus files, so a device, a FIFO or a runaway file named as one ends
 * in one error instead of an endless read or a hang: two programs of MAX_DECISIONS decisions stay
 * far below it.
 */
export const MAX_FINDING_BYTES = 64 << 20;

/** The text of a finding.json or a corpus program: a regular file of at most MAX_FINDING_BYTES. */
export function readFindingText(path: string, what: string): string {
  try {
    return readInputTextStrict(path, what, MAX_FINDING_BYTES, `a ${what} file`);
  } catch (err) {
    if (err instanceof InputFileError) throw new FindingFileError(err.message);
    throw err;
  }
}

export class FindingFileError extends Error {
  override name = 'FindingFileError';
}

/** A finding as stored on disk (and read back for replay and shrink). */
export interface StoredFinding {
  id: string;
  category: FindingCategory;
  severity: Severity;
  summary: string;
  detail: string;
  gpa?: bigint;
  /** The guest instruction that did it, when the hardware saw one (foreign-content: the read). */
  rip?: bigint;
  /** seq of the trace event that showed it, in the replayed trace. */
  eventSeq?: number;
  target: FuzzTarget;
  seed: bigint;
  job: number;
  execIndex: number;
  outcome: { outcome: string; reason: string };
  traceSha256: string;
  program: AttackProgram;
  unshrunk: AttackProgram;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

export function storedFinding(f: CampaignFinding, job: number): StoredFinding {
  const s: StoredFinding = {
    id: f.id, category: f.category, severity: f.severity, summary: f.summary, detail: f.detail, target: f.target,
    seed: f.seed, job, execIndex: f.execIndex, outcome: f.outcome, traceSha256: f.traceSha256, program: f.program, unshrunk: f.unshrunk,
  };
  if (f.gpa !== undefined) s.gpa = f.gpa;
  if (f.rip !== undefined) s.rip = f.rip;
  if (f.eventSeq !== undefined) s.eventSeq = f.eventSeq;
  return s;
}

export function targetToJson(t: FuzzTarget): Record<string, unknown> {
  return {
    platform: t.platform, stage: t.stage, memoryBytes: hex(t.memoryBytes), workloadBytes: hex(t.workloadBytes),
    preAccept: t.preAccept === 'all' ? 'all' : hex(t.preAccept), accept: t.accept, unitBytes: hex(t.unitBytes),
    guestSeed: hex(t.guestSeed), maxInstructions: hex(t.maxInstructions), ...(t.variant !== undefined ? { variant: t.variant } : {}),
    ...(t.tracking !== undefined ? { tracking: t.tracking } : {}),
    ...(t.vcpus !== undefined ? { vcpus: t.vcpus } : {}),
    ...(t.images !== undefined ? { images: t.images } : {}),
  };
}

export function findingToJson(f: StoredFinding, replayCommand: string): string {
  const value = {
    format: FINDING_FORMAT, version: FINDING_VERSION, id: f.id, category: f.category, severity: f.severity,
    summary: f.summary, detail: f.detail, ...(f.gpa !== undefined ? { gpa: hex(f.gpa) } : {}),
    ...(f.rip !== undefined ? { rip: hex(f.rip) } : {}), ...(f.eventSeq !== undefined ? { eventSeq: f.eventSeq } : {}),
    target: targetToJson(f.target), seed: hex(f.seed), job: f.job, execIndex: f.execIndex, outcome: f.outcome,
    traceSha256: f.traceSha256, replay: replayCommand,
    program: attackProgramToJsonValue(f.program), unshrunk: attackProgramToJsonValue(f.unshrunk),
  };
  return `${JSON.stringify(value, null, 2)}\n`;
}

function fail(path: string, why: string): never {
  throw new FindingFileError(`${path}: ${why}`);
}

function str(o: Record<string, unknown>, key: string, path: string): string {
  const v = o[key];
  if (typeof v !== 'string') fail(path, `${key} must be a string`);
  return v;
}

function big(o: Record<string, unknown>, key: string, path: string): bigint {
  const v = str(o, key, path);
  if (!/^0x[0-9a-f]{1,16}$/i.test(v)) fail(path, `${key} must be a hex string like "0x1000"`);
  return BigInt(v);
}

function int(o: Record<string, unknown>, key: string, path: string): number {
  const v = o[key];
  // Safe integers only: 1e308 is an integer to JavaScript, and a count past 2^53 is no longer exact.
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(path, `${key} must be a non-negative integer`);
  return v;
}

function targetFromJson(v: unknown, path: string): FuzzTarget {
  if (typeof v !== 'object' || v === null) fail(path, 'target must be an object');
  const t = v as Record<string, unknown>;
  const platform = str(t, 'platform', path);
  if (platform !== 'tdx' && platform !== 'snp') fail(path, 'target.platform must be tdx or snp');
  const stage = str(t, 'stage', path) as FuzzTarget['stage'];
  if (!FUZZ_STAGES.includes(stage)) fail(path, `target.stage must be one of ${FUZZ_STAGES.join(', ')}`);
  const accept = str(t, 'accept', path);
  if (accept !== 'lazy' && accept !== 'eager') fail(path, 'target.accept must be lazy or eager');
  const target: FuzzTarget = {
    platform, stage, memoryBytes: big(t, 'memoryBytes', path), workloadBytes: big(t, 'workloadBytes', path),
    preAccept: t.preAccept === 'all' ? 'all' : big(t, 'preAccept', path), accept, unitBytes: big(t, 'unitBytes', path),
    guestSeed: big(t, 'guestSeed', path), maxInstructions: big(t, 'maxInstructions', path),
  };
  if (t.variant !== undefined) {
    const variant = str(t, 'variant', path);
    if (!isStubVariant(variant)) fail(path, `target.variant "${variant}" is not a stub variant this minivisor builds`);
    target.variant = variant;
  }
  if (t.tracking !== undefined) {
    const tracking = str(t, 'tracking', path);
    if (!isAcceptanceTracking(tracking)) fail(path, `target.tracking "${tracking}" must be bitmap or memmap`);
    if (tracking === 'memmap') target.tracking = tracking;
  }
  if (t.vcpus !== undefined) {
    if (typeof t.vcpus !== 'number' || !Number.isInteger(t.vcpus) || t.vcpus < 1 || t.vcpus > MAX_VCPUS) fail(path, `target.vcpus must be an integer from 1 to ${MAX_VCPUS}`);
    if (t.vcpus > 1) target.vcpus = t.vcpus;
  }
  if (t.images !== undefined) target.images = stageImagesFromJson(t.images, path);
  return target;
}

/** target.images: { firmware?, decompressor?, kernel? }, each { file, sha256 }. */
function stageImagesFromJson(v: unknown, path: string): StageImages {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'target.images must be an object');
  const images: StageImages = {};
  for (const [kind, image] of Object.entries(v)) {
    if (!(STAGE_IMAGE_KINDS as readonly string[]).includes(kind)) fail(path, `target.images may name ${STAGE_IMAGE_KINDS.join(', ')}, not "${escapeControls(kind)}"`);
    if (typeof image !== 'object' || image === null) fail(path, `target.images.${kind} must be an object with file and sha256`);
    const o = image as Record<string, unknown>;
    const file = str(o, 'file', path);
    // A NUL cannot be in a path (open would throw a TypeError), and an empty one names no file.
    if (file === '' || file.includes('\0')) fail(path, `target.images.${kind}.file must name a file`);
    const sha256 = str(o, 'sha256', path);
    if (!/^[0-9a-f]{64}$/.test(sha256)) fail(path, `target.images.${kind}.sha256 must be 64 lowercase hex digits`);
    images[kind as StageImageKind] = { file, sha256 };
  }
  return images;
}

/** Parses finding.json text; every field is checked (it may be hand-edited or damaged). */
export function findingFromJson(text: string, path: string): StoredFinding {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    fail(path, `not JSON (${escapeControls(err instanceof Error ? err.message : String(err))})`);
  }
  if (typeof v !== 'object' || v === null) fail(path, 'expected a JSON object');
  const o = v as Record<string, unknown>;
  if (o.format !== FINDING_FORMAT) fail(path, `format must be "${FINDING_FORMAT}"`);
  if (o.version !== FINDING_VERSION) fail(path, `unsupported version (this minivisor reads ${FINDING_VERSION})`);
  const category = str(o, 'category', path) as FindingCategory;
  // An own key only: "constructor" or "__proto__" are not categories (`in` found them on Object.prototype).
  if (!Object.hasOwn(FINDING_CATEGORIES, category)) fail(path, `unknown category ${quoteForError(category)}`);
  const outcome = o.outcome as Record<string, unknown> | undefined;
  if (!outcome || typeof outcome.outcome !== 'string' || typeof outcome.reason !== 'string') fail(path, 'outcome must be { outcome, reason }');
  let program: AttackProgram;
  let unshrunk: AttackProgram;
  try {
    program = parseAttackProgram(o.program, 'program');
    unshrunk = parseAttackProgram(o.unshrunk ?? o.program, 'unshrunk');
  } catch (err) {
    if (err instanceof AttackProgramError) fail(path, err.message);
    throw err;
  }
  const target = targetFromJson(o.target, path);
  if (program.platform !== target.platform) fail(path, 'the program and the target are for different platforms');
  // The id names the finding's folder (`fuzz merge` writes findings/<id>/): only the form the
  // campaign gives it, the category and 12 hex digits of the program's hash (campaign.ts), so a
  // finding from elsewhere cannot name a path outside findings/ or put escapes on the terminal.
  const id = str(o, 'id', path);
  if (!/^[a-z][a-z-]*-[0-9a-f]{12}$/.test(id)) fail(path, `id ${quoteForError(id)} is not a finding id (the category, a dash and 12 hex digits)`);
  if (!id.startsWith(`${category}-`) || id.length !== category.length + 13) fail(path, `id ${quoteForError(id)} is not a finding id of category ${category}`);
  const f: StoredFinding = {
    id, category, severity: FINDING_CATEGORIES[category].severity, summary: str(o, 'summary', path),
    detail: str(o, 'detail', path), target, seed: big(o, 'seed', path), job: int(o, 'job', path), execIndex: int(o, 'execIndex', path),
    outcome: { outcome: outcome.outcome, reason: outcome.reason }, traceSha256: str(o, 'traceSha256', path), program, unshrunk,
  };
  if (o.gpa !== undefined) f.gpa = big(o, 'gpa', path);
  if (o.rip !== undefined) f.rip = big(o, 'rip', path);
  if (o.eventSeq !== undefined) f.eventSeq = int(o, 'eventSeq', path);
  return f;
}

/** Reads a finding from its finding.json or from the finding's directory. */
export function loadFinding(path: string): { finding: StoredFinding; file: string } {
  let file = path;
  if (existsSync(path) && statSync(path).isDirectory()) file = join(path, 'finding.json');
  if (!existsSync(file)) throw new FindingFileError(`${quoteForError(path)}: no such finding (expected a finding.json or a findings/<id>/ directory)`);
  return { finding: findingFromJson(readFindingText(file, 'finding'), file), file };
}
