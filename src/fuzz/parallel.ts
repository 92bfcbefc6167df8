// A fuzzing run: N jobs (worker threads, one emulator each), each a campaign with its own derived
// seed, optionally one shard of a larger run. Job g of the whole run uses deriveSeed(seed, g);
// shard K/N with J jobs runs the global jobs K·J … K·J+J−1, so shards are disjoint and their union
// is the same run as N·J jobs on one machine. Results are merged in job order, findings
// deduplicated by signature, so the same seed and runs give the same findings in the same order
// however the threads were scheduled.
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { traceLine } from '../shared/trace.js';
import { PACKAGE_ROOT } from '../shared/package-root.js';
import type { AttackProgram } from './attack-program.js';
import { emptyStats, findingSignature, HonestRunOverBudgetError, runCampaign, type CampaignStats } from './campaign.js';
import { createExecutor } from './create-executor.js';
import type { Executor, FuzzTarget } from './executor.js';
import { storedFinding, type StoredFinding } from './finding-file.js';
import { deriveSeed } from '../shared/prng.js';

export interface Shard {
  /** 0-based. */
  index: number;
  count: number;
}

export interface FuzzRunOptions {
  target: FuzzTarget;
  seed: bigint;
  /** Executions in total (over all jobs of this shard). */
  runs?: number;
  timeMs?: number;
  jobs: number;
  shard?: Shard;
  /** Programs every job starts from (e.g. an existing corpus). */
  seeds?: AttackProgram[];
  shrinkBudget?: number;
  /** Summed statistics, at most every few hundred milliseconds. */
  onProgress?(stats: CampaignStats): void;
  /** With one job: each finding as soon as it is shrunk (several jobs report at the end, in order). */
  onFinding?(finding: StoredFinding, traceLines: string[]): void;
  /**
   * Aborted: every job stops before its next execution (Ctrl-C) and the run returns what the jobs
   * have, as a finished run does.
   */
  signal?: AbortSignal;
}

export interface FuzzRunResult {
  stats: CampaignStats;
  findings: { finding: StoredFinding; traceLines: string[] }[];
  corpus: AttackProgram[];
  jobs: number;
}

/** One job's work, as sent to its worker. */
export interface JobSpec {
  job: number;
  target: FuzzTarget;
  seed: bigint;
  runs?: number;
  timeMs?: number;
  seeds: AttackProgram[];
  shrinkBudget?: number;
}

export interface JobResult {
  stats: CampaignStats;
  findings: { finding: StoredFinding; traceLines: string[] }[];
  corpus: AttackProgram[];
}

export type JobMessage =
  | { kind: 'stats'; job: number; stats: CampaignStats }
  | { kind: 'finding'; job: number; finding: StoredFinding; traceLines: string[] }
  | { kind: 'done'; job: number; result: JobResult }
  | { kind: 'error'; job: number; message: string; overBudget?: boolean };

/** From the parent to a job's worker: stop before the next execution and report as if done. */
export interface StopMessage { kind: 'stop' }

/** The trace of one execution of `program`, as JSON lines (what trace.jsonl holds). */
export function traceLinesOf(executor: Executor, program: AttackProgram): { lines: string[]; sha256: string } {
  const e = executor.execute(program, { keepTrace: true });
  return { lines: (e.events ?? []).map(traceLine), sha256: e.traceSha256 };
}

const PROGRESS_EVERY_MS = 250;
/** The compiled worker (from src/ under vitest as from dist/ or the CLI bundle), like host-campaign's. */
const WORKER = join(PACKAGE_ROOT, 'dist', 'fuzz', 'worker.js');

/** Runs one job in this thread; `stop` ends it early (checked before every execution). */
export async function runJob(spec: JobSpec, post: (m: JobMessage) => void, stop?: () => boolean): Promise<JobResult> {
  const executor = createExecutor(spec.target);
  try {
    const findings: JobResult['findings'] = [];
    let lastProgress = 0;
    const result = await runCampaign({
      executor, seed: spec.seed, seeds: spec.seeds,
      ...(stop !== undefined ? { stop } : {}),
      ...(spec.runs !== undefined ? { runs: spec.runs } : {}),
      ...(spec.timeMs !== undefined ? { timeMs: spec.timeMs } : {}),
      ...(spec.shrinkBudget !== undefined ? { shrinkBudget: spec.shrinkBudget } : {}),
      onExecution(stats) {
        const now = performance.now();
        if (now - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = now;
        post({ kind: 'stats', job: spec.job, stats: structuredClone(stats) });
      },
      onFinding(f) {
        const finding = storedFinding(f, spec.job);
        const traceLines = traceLinesOf(executor, f.program).lines;
        findings.push({ finding, traceLines });
        post({ kind: 'finding', job: spec.job, finding, traceLines });
      },
    });
    post({ kind: 'stats', job: spec.job, stats: structuredClone(result.stats) });
    return { stats: result.stats, findings, corpus: result.corpus };
  } finally {
    executor.close();
  }
}

/** Sums job statistics (edges and decision keys: the largest job's, as maps are per job). */
export function sumStats(all: readonly CampaignStats[]): CampaignStats {
  const total = emptyStats();
  for (const s of all) {
    total.execs += s.execs;
    for (const v of ['detected', 'benign', 'finding'] as const) total.verdicts[v] += s.verdicts[v];
    for (const [c, n] of Object.entries(s.findingsByCategory)) {
      const k = c as keyof CampaignStats['findingsByCategory'];
      total.findingsByCategory[k] = (total.findingsByCategory[k] ?? 0) + (n ?? 0);
    }
    total.corpusSize += s.corpusSize;
    total.edges = Math.max(total.edges, s.edges);
    total.decisionKeys = Math.max(total.decisionKeys, s.decisionKeys);
    total.instructions += s.instructions;
    total.vmmExits += s.vmmExits;
    total.shrinkExecs += s.shrinkExecs;
    total.recalled += s.recalled;
    total.launches += s.launches;
  }
  return total;
}

/**
 * The global job numbers and per-job runs of this shard. With fewer --runs than --jobs only the
 * first `runs` jobs are planned (one run each): the others would start a worker and launch an
 * emulator for nothing. Numbering and seeds stay those of `jobs` jobs per shard, so the jobs that
 * run are the same jobs, with the same seeds, as before, and shards stay disjoint.
 */
export function planJobs(options: Pick<FuzzRunOptions, 'jobs' | 'shard' | 'runs' | 'seed'>): { job: number; seed: bigint; runs?: number }[] {
  const shard = options.shard ?? { index: 0, count: 1 };
  const plan: { job: number; seed: bigint; runs?: number }[] = [];
  for (let j = 0; j < options.jobs; j++) {
    const job = shard.index * options.jobs + j;
    const entry: { job: number; seed: bigint; runs?: number } = { job, seed: deriveSeed(options.seed, job) };
    if (options.runs !== undefined) {
      entry.runs = Math.floor(options.runs / options.jobs) + (j < options.runs % options.jobs ? 1 : 0);
      if (entry.runs === 0) break;  // and so are all later jobs'
    }
    plan.push(entry);
  }
  return plan;
}

/**
 * Memory one job holds at its peak: its emulator (Unicorn's translation buffers, the VM snapshots
 * it starts executions from, a worker thread's own heap; guest RAM is reserved lazily and costs
 * only what the guest writes), its corpus and coverage maps, plus the guest memory its kernel
 * workload writes. Measured for the default target (TDX, 128 MiB, 1 MiB workload) on Linux x86-64:
 * a job's resident memory above Node's own (~48 MiB) is ~350 MiB after a 2-minute campaign and
 * grows slowly with its corpus; 512 MiB leaves room for a longer one. A 512 MiB workload adds
 * ~450 MiB (`boot --workload 512M` reports peakRssMiB).
 */
export const JOB_MEMORY_BYTES = 512 * 2 ** 20;

/** The estimated peak memory of one job fuzzing `target` (JOB_MEMORY_BYTES plus its workload). */
export function jobMemoryBytes(target: Pick<FuzzTarget, 'workloadBytes'>): number {
  return JOB_MEMORY_BYTES + Number(target.workloadBytes);
}

/**
 * How many jobs fuzzing `target` fit in `availableBytes` of memory; at least one, since one job
 * is the smallest run there is (it runs in the calling thread, as a boot does).
 */
export function jobsThatFit(target: Pick<FuzzTarget, 'workloadBytes'>, availableBytes: number): number {
  return Math.max(1, Math.floor(availableBytes / jobMemoryBytes(target)));
}

function mergeResults(results: JobResult[], jobs: number): FuzzRunResult {
  const seen = new Set<string>();
  const findings: FuzzRunResult['findings'] = [];
  for (const r of results) {
    for (const f of r.findings) {
      const signature = findingSignature(f.finding);
      if (seen.has(signature)) continue;
      seen.add(signature);
      findings.push(f);
    }
  }
  return { stats: sumStats(results.map((r) => r.stats)), findings, corpus: results.flatMap((r) => r.corpus), jobs };
}

export async function runFuzz(options: FuzzRunOptions): Promise<FuzzRunResult> {
  const plan = planJobs(options);
  const specOf = (p: (typeof plan)[number]): JobSpec => ({
    job: p.job, target: options.target, seed: p.seed, seeds: options.seeds ?? [],
    ...(p.runs !== undefined ? { runs: p.runs } : {}),
    ...(options.timeMs !== undefined ? { timeMs: options.timeMs } : {}),
    ...(options.shrinkBudget !== undefined ? { shrinkBudget: options.shrinkBudget } : {}),
  });
  if (plan.length === 1) {
    const result = await runJob(specOf(plan[0]!), (m) => {
      if (m.kind === 'stats') options.onProgress?.(m.stats);
      if (m.kind === 'finding') options.onFinding?.(m.finding, m.traceLines);
    }, () => options.signal?.aborted === true);
    return mergeResults([result], 1);
  }
  const latest = new Map<number, CampaignStats>();
  const results = await Promise.all(plan.map((p) => new Promise<JobResult>((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: specOf(p) });
    const stop = () => worker.postMessage({ kind: 'stop' } satisfies StopMessage);
    if (options.signal?.aborted) stop();
    options.signal?.addEventListener('abort', stop, { once: true });
    worker.on('exit', () => options.signal?.removeEventListener('abort', stop));
    worker.on('message', (m: JobMessage) => {
      if (m.kind === 'stats') {
        latest.set(m.job, m.stats);
        options.onProgress?.(sumStats([...latest.values()]));
      } else if (m.kind === 'done') {
        resolve(m.result);
      } else if (m.kind === 'error') {
        reject(m.overBudget ? new HonestRunOverBudgetError(m.message) : new Error(`fuzz job ${m.job} failed: ${m.message}`));
      }
    });
    worker.on('error', reject);
    worker.on('exit', (code) => {
      if (code !== 0) reject(new Error(`fuzz job ${p.job} exited with code ${code}`));
    });
  })));
  const merged = mergeResults(results, plan.length);
  for (const f of merged.findings) options.onFinding?.(f.finding, f.traceLines);
  return merged;
}
