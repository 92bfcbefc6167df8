// Scenario files for `minivisor test`: a boot config, expectations, and optionally a golden
// trace summary, in JSON or YAML (the `yaml` package: a maintained YAML 1.2 parser, rather than
// a hand-written subset). One scenario per file, named *.scenario.json / .yaml / .yml:
//
//   name: TDX default boot            # optional (default: the file name)
//   boot: { platform: tdx, memory: 4G } # `minivisor boot` flags: platform, memory, preAccept,
//                                       # accept, unit, workload, seed, maxInstructions, firmware, decompressor, kernel, variant
//   expect:
//     outcome: done                     # done, guest-fatal, terminated, vmm-error, fault, budget
//     reason: "HLT"                     # a regular expression the outcome reason must match
//     acceptedBytes: { min: 64M, max: 128M }
//     guestStats: { workload_bytes_verified: 67108864 }
//     verify: clean                     # or mismatch: the guest's record against the hardware
//     golden: golden/tdx-default.json   # trace hash and event counts (relative to this file)
//   adversary: attacks/stall.json       # optional: a hostile VMM, as an attack program (the fuzzer's
//                                       # format, src/fuzz/attack-program.ts): a file (relative to
//                                       # this one; a fuzz finding.json's `program` is taken too) or inline
import { makeDirectories } from '../shared/make-directories.js';
import { createRequire } from 'node:module';
import { dirname, resolve, basename } from 'node:path';
import { readInputText, readInputTextStrict, InputFileError } from '../shared/input-file.js';
import { escapeControls, quoteForError } from '../shared/quote.js';
import { OutputFile } from '../shared/output-file.js';
import { BootOptionError, parseBootOptions, type RawBootOptions } from './boot-options.js';
import { parseSize, SizeError } from './size.js';
import { bootGuest } from '../boot/boot-guest.js';
import { OUTCOME_KINDS } from '../shared/outcome.js';
import { bootInputFiles } from '../boot/images.js';
import { describeMismatch, verifyBoot } from '../boot/verify.js';
import type { BootConfig } from '../boot/boot-config.js';
import { DecisionBook } from '../fuzz/adversary.js';
import { adversaryVmm } from '../fuzz/adversary-vmm.js';
import { AttackProgramError, parseAttackProgram, type AttackProgram } from '../fuzz/attack-program.js';

/**
 * The YAML parser, loaded on first use: every `minivisor` process loads this module with the CLI,
 * and importing `yaml` up front was ~40 ms of CPU in each one, boots included (issue 11).
 */
function parseYaml(text: string): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  // parse() prints its warnings as a Node process warning and goes on: an unknown tag (`!!foo 4G`)
  // became its plain string with "(node:…) YAMLWarning" on stderr. A scenario is refused instead.
  const doc = yaml.parseDocument(text);
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw problem;
  return doc.toJS();
}

export const SCENARIO_FILE = /\.scenario\.(json|ya?ml)$/;
const MAX_SCENARIO_BYTES = 1 << 20;
const BOOT_KEYS = ['platform', 'memory', 'preAccept', 'accept', 'unit', 'workload', 'seed', 'maxInstructions', 'firmware', 'decompressor', 'kernel', 'variant'] as const;
/** Keys that name an image file: relative to the scenario file. */
const FILE_KEYS: ReadonlySet<string> = new Set(['firmware', 'decompressor', 'kernel']);
const EXPECT_KEYS = ['outcome', 'reason', 'acceptedBytes', 'guestStats', 'verify', 'golden'] as const;

export class ScenarioError extends Error {
  override name = 'ScenarioError';
}

export interface Scenario {
  file: string;
  /** Every file the scenario reads: itself, its images (ours too) and its adversary; never written. */
  inputs: string[];
  name: string;
  config: BootConfig;
  /** The VMM's attack program; the honest VMM without one. */
  adversary?: AttackProgram;
  expect: {
    outcome?: string;
    reason?: RegExp;
    acceptedBytes?: { min?: bigint; max?: bigint };
    guestStats?: Record<string, string>;
    verify?: 'clean' | 'mismatch';
    golden?: string;
  };
}

/** What a golden file holds: small enough to review in a diff. */
export interface Golden {
  traceSha256: string;
  traceEvents: number;
  eventCounts: Record<string, number>;
}

export interface ScenarioResult {
  scenario: Scenario;
  passed: boolean;
  /** Each failed expectation, in words (expected vs got). */
  failures: string[];
  /** The golden file was (re)written (--update). */
  updated: boolean;
  summary: string;
}

function object(v: unknown, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ScenarioError(`${where} must be a mapping`);
  return v as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  const extra = Object.keys(o).filter((k) => !keys.includes(k));
  if (extra.length) throw new ScenarioError(`${where}: unknown key ${extra.map((k) => JSON.stringify(k)).join(', ')} (known: ${keys.join(', ')})`);
}

function scalar(v: unknown, where: string): string {
  // JSON.parse and YAML read 12345678901234567890 as the nearest double, 12345678901234567000: a
  // seed or a count that large would be another one, silently.
  if (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v)) {
    throw new ScenarioError(`${where}: ${v} is past 2^53, where a number is no longer exact: write it as a string ("…")`);
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint') return String(v);
  throw new ScenarioError(`${where} must be a string or number`);
}

function size(v: unknown, where: string): bigint {
  try {
    return parseSize(scalar(v, where), where);
  } catch (err) {
    if (err instanceof SizeError) throw new ScenarioError(err.message);
    throw err;
  }
}

export function loadScenario(file: string): Scenario {
  let doc: unknown;
  try {
    const text = readInputTextStrict(file, 'scenario', MAX_SCENARIO_BYTES, 'a scenario file', file.endsWith('.json') ? 'JSON' : 'YAML');
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    if (err instanceof InputFileError) throw new ScenarioError(err.message);
    // JSON.parse's message is one sentence quoting the text (raw newlines and all); the yaml
    // package's first line is the sentence, a code frame follows.
    if (err instanceof Error) throw new ScenarioError(`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${escapeControls(file.endsWith('.json') ? err.message : err.message.split('\n')[0]!)}`);
    throw err;
  }
  const top = object(doc, file);
  onlyKeys(top, ['name', 'boot', 'adversary', 'expect'], file);
  const dir = dirname(file);
  const bootIn = object(top.boot ?? {}, `${file}: boot`);
  onlyKeys(bootIn, BOOT_KEYS, `${file}: boot`);
  const raw: RawBootOptions = {};
  for (const key of BOOT_KEYS) {
    if (bootIn[key] === undefined) continue;
    const value = scalar(bootIn[key], `${file}: boot.${key}`);
    raw[key] = FILE_KEYS.has(key) ? resolve(dir, value) : value;
  }
  let config: BootConfig;
  try {
    config = parseBootOptions(raw);
  } catch (err) {
    if (err instanceof BootOptionError) throw new ScenarioError(`${file}: boot: ${err.message.replace(/--([a-z-]+)/g, (_m, f: string) => f.replace(/-([a-z])/g, (_x, c: string) => c.toUpperCase()))}`);
    throw err;
  }
  const ex = object(top.expect ?? {}, `${file}: expect`);
  onlyKeys(ex, EXPECT_KEYS, `${file}: expect`);
  const expect: Scenario['expect'] = {};
  if (ex.outcome !== undefined) {
    // A misspelt outcome would fail every run as "expected dne, got done" (exit 1): it is this file's error.
    const outcome = scalar(ex.outcome, `${file}: expect.outcome`);
    if (!(OUTCOME_KINDS as readonly string[]).includes(outcome)) throw new ScenarioError(`${file}: expect.outcome must be one of ${OUTCOME_KINDS.join(', ')}, not ${quoteForError(outcome)}`);
    expect.outcome = outcome;
  }
  if (ex.reason !== undefined) {
    try {
      expect.reason = new RegExp(scalar(ex.reason, `${file}: expect.reason`));
    } catch (err) {
      throw new ScenarioError(`${file}: expect.reason is not a regular expression: ${(err as Error).message}`);
    }
  }
  if (ex.acceptedBytes !== undefined) {
    const b = object(ex.acceptedBytes, `${file}: expect.acceptedBytes`);
    onlyKeys(b, ['min', 'max'], `${file}: expect.acceptedBytes`);
    expect.acceptedBytes = {
      ...(b.min !== undefined ? { min: size(b.min, 'expect.acceptedBytes.min') } : {}),
      ...(b.max !== undefined ? { max: size(b.max, 'expect.acceptedBytes.max') } : {}),
    };
    const { min, max } = expect.acceptedBytes;
    // No run can pass such bounds.
    if (min !== undefined && max !== undefined && min > max) throw new ScenarioError(`${file}: expect.acceptedBytes: min ${min} is more than max ${max}`);
  }
  if (ex.guestStats !== undefined) {
    const s = object(ex.guestStats, `${file}: expect.guestStats`);
    // Checked here, so a value that is not a number is this scenario's error, not a BigInt SyntaxError ending the whole run.
    expect.guestStats = Object.fromEntries(Object.entries(s).map(([k, v]) => {
      const text = scalar(v, `${file}: expect.guestStats.${k}`).trim();
      if (!/^(0x[0-9a-f]+|\d+)$/i.test(text)) throw new ScenarioError(`${file}: expect.guestStats.${k} must be a non-negative integer, not ${quoteForError(text)}`);
      return [k, text];
    }));
  }
  if (ex.verify !== undefined) {
    if (ex.verify !== 'clean' && ex.verify !== 'mismatch') throw new ScenarioError(`${file}: expect.verify must be clean or mismatch`);
    expect.verify = ex.verify;
  }
  if (ex.golden !== undefined) expect.golden = resolve(dir, scalar(ex.golden, `${file}: expect.golden`));
  const name = top.name !== undefined ? scalar(top.name, `${file}: name`) : basename(file).replace(SCENARIO_FILE, '');
  // Printed on its PASS/FAIL line and written to the JUnit XML, where XML 1.0 allows no C0 control.
  if (escapeControls(name) !== name) throw new ScenarioError(`${file}: name ${quoteForError(name)} must be one line of text without control characters`);
  const scenario: Scenario = { file, inputs: [file, ...bootInputFiles(config)], name, config, expect };
  if (top.adversary !== undefined) {
    scenario.adversary = loadAdversary(top.adversary, dir, file, config);
    if (typeof top.adversary === 'string') scenario.inputs.push(resolve(dir, top.adversary));
  }
  return scenario;
}

/** `adversary`: an attack program inline, or the path of a program file or a fuzz finding. */
function loadAdversary(value: unknown, dir: string, file: string, config: BootConfig): AttackProgram {
  let json: unknown = value;
  let where = `${file}: adversary`;
  if (typeof value === 'string') {
    const path = resolve(dir, value);
    where = `${file}: adversary ${path}`;
    try {
      json = JSON.parse(readInputTextStrict(path, 'attack program', MAX_SCENARIO_BYTES, 'an attack program file'));
    } catch (err) {
      if (err instanceof InputFileError) throw new ScenarioError(`${file}: adversary: ${err.message}`);
      if (err instanceof Error) throw new ScenarioError(`${where}: not JSON: ${escapeControls(err.message)}`);
      throw err;
    }
    // A finding (minivisor fuzz --out DIR/findings/<id>/finding.json) carries its program.
    if (json !== null && typeof json === 'object' && 'program' in json) json = (json as { program: unknown }).program;
  }
  let program: AttackProgram;
  try {
    program = parseAttackProgram(json, 'adversary');
  } catch (err) {
    if (err instanceof AttackProgramError) throw new ScenarioError(`${where}: ${err.message}`);
    throw err;
  }
  if (program.platform !== config.platform) {
    throw new ScenarioError(`${where}: a ${program.platform} attack program cannot run on the scenario's ${config.platform} boot`);
  }
  return program;
}

function readGolden(path: string): Golden | undefined {
  try {
    const g = JSON.parse(readInputText(path, 'golden', MAX_SCENARIO_BYTES)) as Golden;
    if (typeof g.traceSha256 !== 'string' || typeof g.traceEvents !== 'number' || typeof g.eventCounts !== 'object') return undefined;
    return g;
  } catch {
    return undefined;
  }
}

/** What differs between a golden and a run, in words. */
export function goldenDifferences(want: Golden, got: Golden): string[] {
  if (want.traceSha256 === got.traceSha256) return [];
  const out = [`trace ${got.traceSha256.slice(0, 16)}… differs from the golden ${want.traceSha256.slice(0, 16)}… (${want.traceEvents} → ${got.traceEvents} events)`];
  for (const type of [...new Set([...Object.keys(want.eventCounts), ...Object.keys(got.eventCounts)])].sort()) {
    const a = want.eventCounts[type] ?? 0;
    const b = got.eventCounts[type] ?? 0;
    if (a !== b) out.push(`  ${type}: ${a} → ${b}`);
  }
  if (out.length === 1) out.push('  same event counts: the events differ in their fields or order (minivisor boot --trace, then minivisor trace diff)');
  return out;
}

/**
 * Runs a scenario. `inputs`: files that must never be written (every scenario's inputs in a
 * `minivisor test` run); the scenario's own are always among them.
 */
export function runScenario(scenario: Scenario, options: { update?: boolean; inputs?: readonly string[] } = {}): ScenarioResult {
  const run = bootGuest(scenario.config, scenario.adversary ? { vmm: adversaryVmm(scenario.adversary.platform, new DecisionBook(scenario.adversary)) } : {});
  const failures: string[] = [];
  let updated = false;
  try {
    const r = run.result;
    const ex = scenario.expect;
    if (ex.outcome !== undefined && r.outcome !== ex.outcome) failures.push(`outcome: expected ${ex.outcome}, got ${r.outcome} (${r.outcomeReason})`);
    if (ex.reason && !ex.reason.test(r.outcomeReason)) failures.push(`reason: expected to match /${ex.reason.source}/, got ${JSON.stringify(r.outcomeReason)}`);
    const total = BigInt(r.acceptedBytes.total);
    const bounds = ex.acceptedBytes;
    if (bounds?.min !== undefined && total < bounds.min) failures.push(`acceptedBytes: expected at least ${bounds.min}, got ${total}`);
    if (bounds?.max !== undefined && total > bounds.max) failures.push(`acceptedBytes: expected at most ${bounds.max}, got ${total}`);
    for (const [key, want] of Object.entries(ex.guestStats ?? {})) {
      // An own key only: "constructor" is no guest statistic.
      const got = Object.hasOwn(r.guestStats, key) ? r.guestStats[key] : undefined;
      if (got === undefined || BigInt(got) !== BigInt(want)) failures.push(`guestStats.${key}: expected ${want}, got ${got ?? 'nothing'}`);
    }
    if (ex.verify !== undefined) {
      const v = verifyBoot(run);
      if (ex.verify === 'clean' && !v.ok) failures.push(`verify: expected clean, got ${v.noRecord ?? v.mismatches.map(describeMismatch).join('; ')}`);
      if (ex.verify === 'mismatch' && v.ok) failures.push('verify: expected a mismatch, got a clean record');
    }
    if (ex.golden !== undefined) {
      const got: Golden = { traceSha256: r.traceSha256, traceEvents: r.traceEvents, eventCounts: Object.fromEntries([...run.trace.counts].sort(([a], [b]) => a.localeCompare(b))) };
      const want = readGolden(ex.golden);
      if (options.update && (!want || want.traceSha256 !== got.traceSha256)) {
        makeDirectories(dirname(ex.golden));
        const out = new OutputFile(ex.golden, 'golden', [...scenario.inputs, ...(options.inputs ?? [])]);
        out.write(`${JSON.stringify(got, null, 2)}\n`);
        out.commit();
        updated = true;
      } else if (!want) {
        failures.push(`golden: ${ex.golden} is missing or unreadable (run with --update to write it)`);
      } else {
        const diff = goldenDifferences(want, got);
        if (diff.length) failures.push(`golden: ${diff.join('\n')}`);
      }
    }
    const summary = `${r.platform} ${r.outcome}, accepted ${Math.round(r.acceptedBytes.total / 2 ** 20)} MiB, ${r.traceEvents} events`;
    return { scenario, passed: failures.length === 0, failures, updated, summary };
  } finally {
    run.platform.machine.close();
  }
}
