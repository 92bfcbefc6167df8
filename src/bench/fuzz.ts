// `npm run bench:fuzz [-- --json] [-- --budget 60] [-- --speed] [-- --campaign-runs 20000]`: the fuzzer against its targets (issue 10 §5).
// - Speed: executions per second per core (CPU time) of a kernel-stage campaign with a small (4 KiB)
//   workload, beside the cost of a full boot per execution with the same config measured in the
//   same run, and the guest instructions and VMM exits one execution takes (campaign average, and
//   the honest execution every mutant starts from), and how much of the CPU time went to the
//   executions that launch a fresh VM (programs that change the launch cannot start from the snapshot).
//   Two figures, each against a full boot measured at the same point: cold (no campaign of the
//   platform ran before: V8 compiles and optimises as it goes, and the first ~250 executions cost
//   about twice the later ones) and steady (the same campaign again on a new executor, after a warm-up
//   campaign with another seed: what a campaign longer than a few seconds runs at).
//   And a third, what users get: the CLI's own campaign (`minivisor fuzz --runs N`, one job, its seed
//   corpus and derived seed) in a process of its own, its whole CPU time (every thread, node's start
//   included) over its executions. A long campaign's mix differs from its first 500 executions':
//   its corpus grows, more mutants end detected early, fewer change the launch.
//   Executions the memo answers without running (a mutant that only repeats an earlier run,
//   execution-memo.ts) count as executions, as they do in the campaign; each figure also says how
//   many there were and the rate of those that ran.
// - Planted bugs: for each compile-time variant of the stubs, a campaign with a fixed seed until the
//   first finding of the category its bug belongs to (target ≤ 60 s on one core).
// - Honest stubs: the findings of a campaign of the same budget (target: zero).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FUZZ_DEFAULTS } from '../cli/fuzz-options.js';
import { withFuzzInliningBudget } from '../cli/v8-tuning.js';
import { CLI_PATH, processCost } from './boot-cost.js';
import { needsFreshLaunch, type AttackProgram } from '../fuzz/attack-program.js';
import { runCampaign } from '../fuzz/campaign.js';
import { createExecutor } from '../fuzz/create-executor.js';
import { executionCost } from '../fuzz/execution-cost.js';
import { BootExecutor, type Execution, type Executor, type FuzzTarget } from '../fuzz/executor.js';
import type { FindingCategory } from '../fuzz/oracle.js';
import { PLANTED_BUGS, plantedBugTarget } from '../fuzz/planted-bugs.js';
import type { StubVariant } from '../boot/images.js';

const json = process.argv.includes('--json');
/** `--speed`: only the speed part (a few seconds), not the planted-bug and honest campaigns. */
const speedOnly = process.argv.includes('--speed');
const budgetArg = process.argv.indexOf('--budget');
const budgetSeconds = budgetArg > 0 ? Number(process.argv[budgetArg + 1]) : 60;
/** `--campaign-runs N`: executions of the CLI campaign figure (0 skips it). */
const campaignRunsArg = process.argv.indexOf('--campaign-runs');
const CLI_CAMPAIGN_RUNS = campaignRunsArg > 0 ? Number(process.argv[campaignRunsArg + 1]) : 20_000;
const log = (line: string) => { if (!json) console.log(line); };
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });

const target = plantedBugTarget;

/** Planted bugs (guest/lib/variants.mk) and the finding category that shows each. */
const PLANTED = PLANTED_BUGS;

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** CPU ms of one full boot (stage all, the honest VMM) with `config`: the mean of a few. */
function bootCost(config: FuzzTarget): number {
  const boot = new BootExecutor({ ...config, stage: 'all' });
  const bootStart = cpuMs();
  const bootRuns = 5;
  for (let i = 0; i < bootRuns; i++) boot.execute({ platform: config.platform, decisions: [] });
  return (cpuMs() - bootStart) / bootRuns;
}

/** Campaign length of both speed figures. */
const SPEED_RUNS = 500;
/** Executions of the warm-up campaign before the steady-state figure. */
const WARM_UP_RUNS = 1000;

async function speed(platform: 'tdx' | 'snp') {
  const config: FuzzTarget = { ...target(platform), workloadBytes: 0x1000n };
  const cold = await coldSpeed(config);
  const steady = await steadySpeed(config);
  const cliCampaign = CLI_CAMPAIGN_RUNS > 0 ? cliCampaignSpeed(platform, CLI_CAMPAIGN_RUNS) : undefined;
  return { ...cold, steady, cliCampaign };
}

/** `inner`, telling `seen` of each execution and its CPU time. */
function timed(inner: Executor, seen: (program: AttackProgram, e: Execution, ms: number) => void): Executor {
  return {
    target: inner.target, close: () => inner.close(),
    startsFromSnapshot: (program) => inner.startsFromSnapshot?.(program) ?? true,
    execute(program, options) {
      const t = cpuMs();
      const e = inner.execute(program, options);
      seen(program, e, cpuMs() - t);
      return e;
    },
  };
}

/**
 * The campaign again, as the warm process of a longer campaign runs it: a warm-up campaign (another
 * seed) first, then the same SPEED_RUNS executions on a new executor (the same snapshot and
 * launches as the cold figure; only the process is warm), and a full boot measured after them.
 */
async function steadySpeed(config: FuzzTarget) {
  const warmUp = createExecutor(config);
  await runCampaign({ executor: warmUp, seed: 2n, runs: WARM_UP_RUNS });
  warmUp.close();
  const inner = createExecutor(config);
  inner.execute({ platform: config.platform, decisions: [] });
  // Executions that launch a fresh VM and the others apart, in CPU time and in what the cost model
  // charged them: a launch's cost beyond its execution, in executions, is the ratio
  // execution-cost.ts is calibrated with.
  const launches = { execs: 0, ms: 0, charged: 0n };
  const others = { execs: 0, ms: 0, charged: 0n };
  const executor = timed(inner, (_program, e, ms) => {
    const cost = executionCost(e);
    const kind = e.launchInstructions ? launches : others;
    kind.execs++;
    kind.ms += ms;
    kind.charged += e.launchInstructions ? cost.launch : cost.total;
  });
  const start = cpuMs();
  const result = await runCampaign({ executor, seed: 1n, runs: SPEED_RUNS });
  const ms = cpuMs() - start;
  executor.close();
  const bootMsPerExec = bootCost(config);
  const msPerExec = ms / result.stats.execs;
  const msPerOther = others.ms / others.execs;
  const launchInExecutions = launches.execs > 0 ? (launches.ms / launches.execs - msPerOther) / msPerOther : 0;
  const launchInExecutionsCharged = launches.execs > 0 ? Number(launches.charged) / launches.execs / (Number(others.charged) / others.execs) : 0;
  return {
    warmUpExecs: WARM_UP_RUNS, execs: result.stats.execs, execsPerSecPerCore: 1000 / msPerExec, msPerExec, bootMsPerExec, speedupVsBoot: bootMsPerExec / msPerExec,
    recalledExecs: result.stats.recalled, ranExecsPerSecPerCore: perSecond(result.stats.execs - result.stats.recalled, ms),
    freshLaunchExecs: launches.execs, freshLaunchCpuShare: launches.ms / ms, msPerFreshLaunch: launches.execs > 0 ? launches.ms / launches.execs : 0,
    launchInExecutions, launchInExecutionsCharged,
  };
}

/** `count` executions in `cpuMs` of CPU time, per second of it (so per core). */
function perSecond(count: number, cpuMs: number): number {
  return (count * 1000) / cpuMs;
}

async function coldSpeed(config: FuzzTarget) {
  const platform = config.platform;
  const bootMsPerExec = bootCost(config);
  const inner = createExecutor(config);
  const honest = inner.execute({ platform, decisions: [] });
  const fresh = { execs: 0, ms: 0 };
  const launchProgram = { execs: 0, fromSnapshot: 0 };
  // Executions that end on the instruction budget are credited all of it, though a guest parked in
  // a pure spin loop (a second fatal error while the first is reported) has its rounds skipped
  // natively (spin_loop.h): they are most of the mean, so the others are reported apart.
  const outOfBudget = { execs: 0 };
  const withinBudget: number[] = [];
  const executor = timed(inner, (program, e, ms) => {
    if (e.judgement.outcome.outcome === 'budget') outOfBudget.execs++;
    else withinBudget.push(Number(e.instructions));
    if (needsFreshLaunch(program)) {
      launchProgram.execs++;
      if (!e.launchInstructions) launchProgram.fromSnapshot++;
    }
    if (e.launchInstructions) {
      fresh.ms += ms;
      fresh.execs++;
    }
  });
  const start = cpuMs();
  const result = await runCampaign({ executor, seed: 1n, runs: SPEED_RUNS });
  const ms = cpuMs() - start;
  executor.close();
  const s = result.stats;
  return {
    platform, execs: s.execs, execsPerSecPerCore: perSecond(s.execs, ms), msPerExec: ms / s.execs, bootMsPerExec,
    recalledExecs: s.recalled, ranExecsPerSecPerCore: perSecond(s.execs - s.recalled, ms),
    launchChangingExecs: launchProgram.execs, launchChangingFromSnapshot: launchProgram.fromSnapshot,
    freshLaunchExecs: fresh.execs, freshLaunchCpuShare: fresh.ms / ms, msPerFreshLaunch: fresh.execs > 0 ? fresh.ms / fresh.execs : 0,
    speedupVsBoot: bootMsPerExec / (ms / s.execs), instructionsPerExec: Number(s.instructions) / s.execs, vmmExitsPerExec: s.vmmExits / s.execs,
    honestInstructions: Number(honest.instructions), honestVmmExits: honest.vmmExits,
    outOfBudgetExecs: outOfBudget.execs, instructionsPerExecWithinBudget: mean(withinBudget), medianInstructionsWithinBudget: median(withinBudget),
  };
}

/**
 * The CLI's campaign, as a user runs it, in a process of its own: CPU time of the whole process
 * (every thread: the job's worker and the main thread's status and output) per execution. Exit 1
 * (findings) is reported, not an error: the honest stubs' target is zero findings.
 */
function cliCampaignSpeed(platform: 'tdx' | 'snp', runs: number) {
  const out = mkdtempSync(join(tmpdir(), 'minivisor-bench-fuzz-'));
  try {
    const cost = processCost([CLI_PATH, 'fuzz', '--platform', platform, '--stage', 'kernel', '--workload', '4K', '--runs', String(runs), '--out', out, '--json'], [0, 1]);
    const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8')) as { execs: number; recalledExecs: number; findings: unknown[]; instructionsPerExec: number; vmmExitsPerExec: number };
    return {
      platform, runs, execs: stats.execs, cpuMs: cost.cpuMs, wallMs: cost.wallMs, execsPerSecPerCore: perSecond(stats.execs, cost.cpuMs),
      findings: stats.findings.length, instructionsPerExec: stats.instructionsPerExec, vmmExitsPerExec: stats.vmmExitsPerExec,
      recalledExecs: stats.recalledExecs, ranExecsPerSecPerCore: perSecond(stats.execs - stats.recalledExecs, cost.cpuMs),
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const mean = (xs: number[]) => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const median = (xs: number[]) => {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function timeToFinding(platform: 'tdx' | 'snp', variant: StubVariant | undefined, expect: FindingCategory | undefined) {
  const start = performance.now();
  let executor;
  try {
    executor = createExecutor(target(platform, variant));
  } catch (err) {
    return { variant: variant ?? 'honest', platform, error: err instanceof Error ? err.message : String(err) };
  }
  let firstMs: number | undefined;
  const result = await runCampaign({
    executor, seed: 1n, timeMs: budgetSeconds * 1000,
    onFinding: (f) => { if (firstMs === undefined && f.category === expect) firstMs = performance.now() - start; },
    stop: () => firstMs !== undefined,
  });
  executor.close();
  return {
    variant: variant ?? 'honest', platform, expect: expect ?? null, secondsToFirstFinding: firstMs === undefined ? null : firstMs / 1000,
    execs: result.stats.execs, findings: result.findings.map((f) => f.category),
  };
}

const speeds = [];
for (const p of ['tdx', 'snp'] as const) {
  // Under the CLI's inlining budgets (withFuzzInliningBudget), so the figures are the CLI's.
  const s = await withFuzzInliningBudget(() => speed(p));
  speeds.push(s);
  log(`fuzz speed ${p} (kernel stage, 4 KiB workload), cold (a ${s.execs}-execution campaign before any warm-up on this platform: V8 compiling and optimising as it goes): ${fmt(s.execsPerSecPerCore, 1)} execs/s/core (target ≥ 1,000), ${fmt(s.msPerExec, 2)} ms CPU per execution vs ${fmt(s.bootMsPerExec, 1)} ms for a full boot = ${fmt(s.speedupVsBoot, 1)}× (target ≥ 100×); ${fmt(s.instructionsPerExec)} instructions and ${fmt(s.vmmExitsPerExec, 1)} VMM exits per execution (the honest one: ${fmt(s.honestInstructions)} and ${s.honestVmmExits}; ${s.outOfBudgetExecs} executions ran out of the per-execution budget and are counted in full (a guest parked in a pure spin loop costs little: its rounds are skipped natively), the others ${fmt(s.instructionsPerExecWithinBudget)} instructions on average, median ${fmt(s.medianInstructionsWithinBudget)}); ${fmt(s.freshLaunchCpuShare * 100)}% of the CPU time in the ${s.freshLaunchExecs} executions (shrinking included) that launch a fresh VM, ${fmt(s.msPerFreshLaunch, 1)} ms each (of ${s.launchChangingExecs} executions of launch-changing programs, ${s.launchChangingFromSnapshot} started from a kept launch snapshot); ${s.recalledExecs} of the ${s.execs} executions only repeated an earlier run and were answered without running (execution-memo.ts): counting only those that ran, ${fmt(s.ranExecsPerSecPerCore, 1)}/s/core`);
  const w = s.steady;
  log(`fuzz speed ${p}, steady state (the same ${w.execs}-execution campaign after a ${fmt(w.warmUpExecs)}-execution warm-up campaign in the same process): ${fmt(w.execsPerSecPerCore, 1)} execs/s/core (target ≥ 1,000), ${fmt(w.msPerExec, 2)} ms CPU per execution vs ${fmt(w.bootMsPerExec, 1)} ms for a full boot = ${fmt(w.speedupVsBoot, 1)}× (target ≥ 100×); ${fmt(w.freshLaunchCpuShare * 100)}% of the CPU time in the ${w.freshLaunchExecs} executions that launch a fresh VM, ${fmt(w.msPerFreshLaunch, 1)} ms each: beyond its execution a launch costs ${fmt(w.launchInExecutions, 1)} executions from a snapshot, and the cost model charges ${fmt(w.launchInExecutionsCharged, 1)} (execution-cost.ts); ${w.recalledExecs} answered without running (execution-memo.ts): counting only those that ran, ${fmt(w.ranExecsPerSecPerCore, 1)}/s/core`);
  const c = s.cliCampaign;
  if (c) log(`fuzz speed ${p}, the CLI's own campaign (\`minivisor fuzz --platform ${p} --workload 4K --runs ${fmt(c.runs)}\` in a process of its own, CPU of all its threads): ${fmt(c.execsPerSecPerCore, 1)} execs/s/core (target ≥ 1,000), ${fmt(c.cpuMs / 1000, 1)} s CPU and ${fmt(c.wallMs / 1000, 1)} s wall for ${fmt(c.execs)} executions of ${fmt(c.instructionsPerExec)} instructions and ${fmt(c.vmmExitsPerExec, 1)} VMM exits on average; ${c.findings} findings; ${fmt(c.recalledExecs)} answered without running (execution-memo.ts): counting only those that ran, ${fmt(c.ranExecsPerSecPerCore, 1)}/s/core`);
}
const planted = [];
for (const v of speedOnly ? [] : PLANTED) {
  const r = await withFuzzInliningBudget(() => timeToFinding(v.platform, v.variant, v.expect));
  planted.push(r);
  log('error' in r ? `planted ${v.variant} (${v.platform}): cannot run: ${r.error}`
    : `planted ${v.variant} (${v.platform}): ${r.secondsToFirstFinding === null ? `no ${v.expect} finding in ${budgetSeconds} s` : `first ${v.expect} after ${fmt(r.secondsToFirstFinding, 1)} s`} (${r.execs} execs; findings: ${r.findings.join(', ') || 'none'}; target ≤ 60 s)`);
}
const honest = [];
for (const p of speedOnly ? [] : (['tdx', 'snp'] as const)) {
  const r = await withFuzzInliningBudget(() => timeToFinding(p, undefined, undefined));
  honest.push(r);
  if (!('error' in r)) log(`honest stubs (${p}): ${r.findings.length} findings in ${budgetSeconds} s, ${r.execs} execs (target: 0)`);
}
if (json) console.log(JSON.stringify({ budgetSeconds, speed: speeds, planted, honest }));
