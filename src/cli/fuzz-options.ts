// `minivisor fuzz` flags, validated into a fuzz run. Guest-shape flags (--platform, --memory,
// --workload, --unit, --accept, --pre-accept, --max-instructions) are checked by the boot's own
// parser, so fuzz and boot accept exactly the same values.
import { BootOptionError, parseBootOptions } from './boot-options.js';
import { DEFAULT_EXECUTION_BUDGET, FUZZ_STAGES, type FuzzStage, type FuzzTarget } from '../fuzz/executor.js';
import type { FuzzRunOptions, Shard } from '../fuzz/parallel.js';
import { FindingFileError, loadFinding, type StoredFinding } from '../fuzz/finding-file.js';
import { quoteForError } from '../shared/quote.js';
import { stageFiles, stageImagesOf, type StageFiles } from '../fuzz/stage-images.js';

export interface RawFuzzOptions {
  platform?: string;
  stage?: string;
  time?: string;
  runs?: string;
  seed?: string;
  jobs?: string;
  out?: string;
  workload?: string;
  memory?: string;
  unit?: string;
  accept?: string;
  preAccept?: string;
  maxInstructions?: string;
  json?: boolean;
  shard?: string;
  variant?: string;
  tracking?: string;
  vcpus?: string;
  firmware?: string;
  decompressor?: string;
  kernel?: string;
}

/** A fuzz run as the library takes it, plus where to write and how to print. */
export interface FuzzCliConfig extends Pick<FuzzRunOptions, 'target' | 'seed' | 'runs' | 'timeMs' | 'jobs' | 'shard'> {
  out: string;
  json: boolean;
}

/** Usage errors of fuzz, replay, shrink and merge: exit status 2. */
export class FuzzOptionError extends Error {
  override name = 'FuzzOptionError';
}

export const FUZZ_DEFAULTS = {
  platform: 'tdx', stage: 'kernel', time: '60s', seed: '1', jobs: '1', out: 'fuzz-out', workload: '1M', memory: '128M',
  maxInstructions: DEFAULT_EXECUTION_BUDGET.toString(),
} as const;

const MAX_JOBS = 256;

/** "60s", "2m", "1h", "500ms" or a plain number of seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new FuzzOptionError(`${flag} ${quoteForError(text)} is not a duration (examples: 30s, 5m, 1h)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  // Rounded to the millisecond the campaign keeps time in, before the bounds: "0.4ms" would be 0.
  const ms = Math.round(Number(m[1]) * scale);
  if (!(ms >= 1) || ms > 366 * 24 * 3_600_000) throw new FuzzOptionError(`${flag} must be at least 1ms and at most a year`);
  return ms;
}

export function positiveInt(text: string, flag: string, max: number): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new FuzzOptionError(`${flag} ${quoteForError(text)} is not a positive integer`);
  const n = Number(text);
  if (n < 1 || n > max) throw new FuzzOptionError(`${flag} must be between 1 and ${max}, not ${quoteForError(text.trim())}`);
  return n;
}

/** "K/N": shard K (1-based) of N. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new FuzzOptionError(`--shard ${quoteForError(text)} must look like K/N, e.g. 1/4`);
  const k = Number(m[1]);
  const n = Number(m[2]);
  if (n < 1 || n > 100_000 || k < 1 || k > n) throw new FuzzOptionError(`--shard ${quoteForError(text.trim())}: K must be between 1 and N (N at most 100000)`);
  return { index: k - 1, count: n };
}

/**
 * Where executions start when --stage is not given: the kernel, or the first stage the user
 * replaced. A snapshot at the kernel's first decision has run the firmware and decompressor
 * honestly already, so only launch-time decisions (the memory description) would reach a
 * replaced firmware or decompressor there.
 */
export function defaultStage(files: StageFiles): FuzzStage {
  return files.firmware !== undefined ? 'firmware' : files.decompressor !== undefined ? 'decompressor' : FUZZ_DEFAULTS.stage;
}

/**
 * The flags as a fuzz run: FuzzOptionError for a bad one; GuestImageError for a --firmware,
 * --decompressor or --kernel that cannot be read (it is read and hashed into target.images).
 */
export function parseFuzzOptions(raw: RawFuzzOptions): FuzzCliConfig {
  if (raw.stage !== undefined && !FUZZ_STAGES.includes(raw.stage as FuzzStage)) throw new FuzzOptionError(`--stage must be one of ${FUZZ_STAGES.join(', ')}, not ${quoteForError(raw.stage)}`);
  const files: StageFiles = { firmware: raw.firmware, decompressor: raw.decompressor, kernel: raw.kernel };
  let boot;
  try {
    boot = parseBootOptions({
      platform: raw.platform ?? FUZZ_DEFAULTS.platform, memory: raw.memory ?? FUZZ_DEFAULTS.memory,
      workload: raw.workload ?? FUZZ_DEFAULTS.workload, seed: raw.seed ?? FUZZ_DEFAULTS.seed,
      maxInstructions: raw.maxInstructions ?? FUZZ_DEFAULTS.maxInstructions,
      ...(raw.unit !== undefined ? { unit: raw.unit } : {}),
      ...(raw.accept !== undefined ? { accept: raw.accept } : {}),
      ...(raw.preAccept !== undefined ? { preAccept: raw.preAccept } : {}),
      ...(raw.variant !== undefined ? { variant: raw.variant } : {}),
      ...(raw.tracking !== undefined ? { tracking: raw.tracking } : {}),
      ...(raw.vcpus !== undefined ? { vcpus: raw.vcpus } : {}),
      ...files,
    });
  } catch (err) {
    if (err instanceof BootOptionError) throw new FuzzOptionError(err.message);
    throw err;
  }
  if (raw.time !== undefined && raw.runs !== undefined) throw new FuzzOptionError('give --time or --runs, not both');
  const stage = (raw.stage as FuzzStage | undefined) ?? defaultStage(files);
  const config: FuzzCliConfig = {
    target: {
      platform: boot.platform, stage, memoryBytes: boot.memoryBytes, workloadBytes: boot.workloadBytes, preAccept: boot.preAccept,
      accept: boot.accept, unitBytes: boot.unitBytes, guestSeed: boot.seed, maxInstructions: boot.maxInstructions,
      ...(boot.variant !== undefined ? { variant: boot.variant } : {}),
      ...(boot.tracking !== undefined ? { tracking: boot.tracking } : {}),
      ...(boot.vcpus !== undefined ? { vcpus: boot.vcpus } : {}),
    },
    seed: boot.seed,
    jobs: positiveInt(raw.jobs ?? FUZZ_DEFAULTS.jobs, '--jobs', MAX_JOBS),
    out: raw.out ?? FUZZ_DEFAULTS.out,
    json: raw.json ?? false,
  };
  if (raw.runs !== undefined) config.runs = positiveInt(raw.runs, '--runs', 1_000_000_000);
  else config.timeMs = parseDuration(raw.time ?? FUZZ_DEFAULTS.time, '--time');
  if (raw.shard !== undefined) config.shard = parseShard(raw.shard);
  // Read and hashed last, once every flag is known good, and now: a finding names the very bytes
  // it ran (a rebuild during the campaign is not them).
  const images = stageImagesOf(files);
  if (images) config.target.images = images;
  return config;
}

/**
 * Whether `target` is one `minivisor fuzz` could have made: its sizes, budget and combinations
 * pass the same checks as the flags (a hand-edited memoryBytes of 0 otherwise reached the
 * emulator, and a unitBytes of 3 or a maxInstructions of 0 ran a configuration no flag can ask
 * for). BootOptionError otherwise.
 */
export function checkRunnableTarget(t: FuzzTarget): void {
  const unit = t.unitBytes === 0x1000n ? '4K' : t.unitBytes === 0x200000n ? '2M' : t.unitBytes.toString();
  parseBootOptions({
    platform: t.platform, memory: t.memoryBytes.toString(), workload: t.workloadBytes.toString(),
    preAccept: t.preAccept === 'all' ? 'all' : t.preAccept.toString(), accept: t.accept, unit,
    seed: t.guestSeed.toString(), maxInstructions: t.maxInstructions.toString(),
    ...(t.variant !== undefined ? { variant: t.variant } : {}),
    ...(t.tracking !== undefined ? { tracking: t.tracking } : {}),
    ...(t.vcpus !== undefined ? { vcpus: t.vcpus.toString() } : {}),
    ...stageFiles(t.images),
  });
}

/** loadFinding, for running it: its target must pass checkRunnableTarget. FindingFileError otherwise. */
export function loadRunnableFinding(path: string): { finding: StoredFinding; file: string } {
  const loaded = loadFinding(path);
  try {
    checkRunnableTarget(loaded.finding.target);
  } catch (err) {
    if (err instanceof BootOptionError) throw new FindingFileError(`${loaded.file}: target is not a configuration \`minivisor fuzz\` accepts (its sizes in bytes): ${err.message}`);
    throw err;
  }
  return loaded;
}
