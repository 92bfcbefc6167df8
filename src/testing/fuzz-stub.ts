// minivisor/testing's fuzzing: a short, deterministic `minivisor fuzz` campaign against your stub
// from your own test suite, so a defence that a hostile VMM gets past fails CI as a broken boot
// does. Always a fixed number of executions in this thread (the same seed and runs find the same
// findings), never a time budget, which would make the suite's verdict depend on the machine.
//
//   import { fuzzStub, assertNoFindings } from 'minivisor/testing';
//   test('my kernel stops a hostile VMM', async () => {
//     assertNoFindings(await fuzzStub({ platform: 'tdx', kernel: 'build/kernel.elf', runs: 300, out: 'fuzz-out' }));
//   }, 60_000);
import { parseFuzzOptions, type RawFuzzOptions } from '../cli/fuzz-options.js';
import { FINDING_CATEGORIES, type FindingCategory, type Severity } from '../fuzz/oracle.js';
import { checkWritableOutputDir, FuzzOutputDir, replayCommand } from '../fuzz/output-dir.js';
import { runFuzz } from '../fuzz/parallel.js';
import type { CampaignStats } from '../fuzz/campaign.js';
import { asFlags, type OptionKind, type TestingOptions } from './flags.js';

/** The fuzz flags a suite may give (the compiler checks the table covers them), as `asFlags` takes them. */
const FUZZ_OPTION_KINDS = {
  platform: 'text', stage: 'text', runs: 'numeric', seed: 'numeric', out: 'text', workload: 'numeric', memory: 'numeric',
  unit: 'numeric', accept: 'text', preAccept: 'numeric', maxInstructions: 'numeric', variant: 'text', tracking: 'text',
  vcpus: 'numeric', firmware: 'text', decompressor: 'text', kernel: 'text',
} as const satisfies Record<Exclude<keyof RawFuzzOptions, 'json' | 'time' | 'jobs' | 'shard'>, OptionKind>;

/** `minivisor fuzz`'s flags by their camel-case names, without --time, --jobs and --shard; `out` keeps findings and corpus. */
export type FuzzStubOptions = TestingOptions<Pick<RawFuzzOptions, keyof typeof FUZZ_OPTION_KINDS>, typeof FUZZ_OPTION_KINDS>;

/** Executions when `runs` is not given: enough for the planted bugs of guest/DEFENCES.md at a 1 MiB workload, about a second each. */
export const DEFAULT_STUB_FUZZ_RUNS = 300;

export interface StubFinding {
  id: string;
  category: FindingCategory;
  severity: Severity;
  detail: string;
  /** Its finding.json, when `out` was given: `minivisor replay FILE` runs it again. */
  file?: string;
}

export interface StubFuzzRun {
  platform: 'tdx' | 'snp';
  execs: number;
  verdicts: CampaignStats['verdicts'];
  findings: StubFinding[];
}

/**
 * Runs a campaign of `runs` executions (default DEFAULT_STUB_FUZZ_RUNS) with `minivisor fuzz`'s
 * defaults and flags; with `out`, writes its findings and corpus there as the CLI does. It never
 * starts from a corpus already there (the CLI resumes one), so the same options give the same
 * campaign in a fresh checkout and on a developer's machine alike. A bad option, or an image that
 * cannot be read, throws.
 */
export async function fuzzStub(options: FuzzStubOptions = {}): Promise<StubFuzzRun> {
  const raw = asFlags(options, FUZZ_OPTION_KINDS, 'fuzzStub') as RawFuzzOptions;
  const config = parseFuzzOptions({ ...raw, runs: raw.runs ?? String(DEFAULT_STUB_FUZZ_RUNS) });
  let out: FuzzOutputDir | undefined;
  if (raw.out !== undefined) {
    checkWritableOutputDir(raw.out);
    out = new FuzzOutputDir(raw.out);
  }
  const result = await runFuzz({ target: config.target, seed: config.seed, jobs: 1, runs: config.runs! });
  const findings = result.findings.map(({ finding, traceLines }): StubFinding => ({
    id: finding.id, category: finding.category, severity: finding.severity, detail: finding.detail,
    ...(out ? { file: out.addFinding(finding, traceLines) } : {}),
  }));
  if (out) for (const program of result.corpus) out.addCorpus(program);
  return { platform: config.target.platform, execs: result.stats.execs, verdicts: result.stats.verdicts, findings };
}

/** Throws unless the campaign found nothing: each finding with what the hardware saw and how to replay it. */
export function assertNoFindings(run: StubFuzzRun): void {
  if (run.findings.length === 0) return;
  const lines = run.findings.map((f) => `  ${f.id} (${f.severity}): ${FINDING_CATEGORIES[f.category].summary}\n    ${f.detail}\n    ` +
    (f.file !== undefined ? `replay: ${replayCommand(f.file)}` : 'give fuzzStub an `out` directory to keep it for `minivisor replay`'));
  throw new Error(`${run.platform.toUpperCase()} fuzz: ${run.findings.length} finding${run.findings.length === 1 ? '' : 's'} in ${run.execs} executions:\n${lines.join('\n')}`);
}
