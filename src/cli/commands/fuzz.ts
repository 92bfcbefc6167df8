// `minivisor fuzz`: coverage-guided fuzzing of a hostile VMM against the guest's acceptance code,
// and `minivisor fuzz merge` to combine output directories (shards, machines).
import { Command } from 'commander';
import { HonestRunOverBudgetError, type CampaignStats } from '../../fuzz/campaign.js';
import { GuestImageError } from '../../boot/images.js';
import { checkMergeDestination, checkWritableOutputDir, FuzzOutputDir, mergeOutputDirs } from '../../fuzz/output-dir.js';
import { jobMemoryBytes, jobsThatFit, planJobs, runFuzz, type FuzzRunResult } from '../../fuzz/parallel.js';
import { withFuzzInliningBudget } from '../v8-tuning.js';
import { availableParallelism, freemem } from 'node:os';
import { FINDING_CATEGORIES } from '../../fuzz/oracle.js';
import { targetToJson } from '../../fuzz/finding-file.js';
import { FuzzOptionError, FUZZ_DEFAULTS, parseFuzzOptions, type FuzzCliConfig, type RawFuzzOptions } from '../fuzz-options.js';
import type { CliIo } from '../io.js';
import { StatusLine } from '../status-line.js';
import { CoverageSamples } from '../coverage-samples.js';
import { fuzzReportHtml } from '../../view/fuzz-report.js';
import { existsSync } from 'node:fs';
import { readInputText } from '../../shared/input-file.js';
import { MAX_FINDING_BYTES } from '../../fuzz/finding-file.js';
import { join, resolve } from 'node:path';
import { creationErrorInWords, writeFileAtomic } from '../../shared/output-file.js';
import { catchStopSignals, removeTempsOnStopSignals, STOP_SIGNALS, type StopSignal } from '../stop-signals.js';
import { monotonicMs } from '../../shared/monotonic-clock.js';
import { quoteForError } from '../../shared/quote.js';
import { counted } from '../../shared/counted.js';

function statusText(s: CampaignStats, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (s.execs * 1000) / elapsedMs : 0;
  const found = Object.entries(s.findingsByCategory).map(([c, n]) => `${c} ${n}`).join(', ');
  return `fuzz: ${s.execs} execs (${rate.toFixed(1)}/s), ${s.edges} edges, ${s.decisionKeys} decisions, corpus ${s.corpusSize}, ` +
    `findings ${s.verdicts.finding > 0 ? found : 0}, detected ${s.verdicts.detected}`;
}

/** stats.json: the run's configuration and numbers (rates are wall-clock measurements). */
function statsJson(config: FuzzCliConfig, result: FuzzRunResult, wallMs: number, findingFiles: string[], coverage: CoverageSamples, interrupted: StopSignal | undefined): Record<string, unknown> {
  const s = result.stats;
  const execsPerSec = wallMs > 0 ? (s.execs * 1000) / wallMs : 0;
  return {
    target: targetToJson(config.target),
    seed: config.seed.toString(),
    jobs: result.jobs,
    ...(config.shard ? { shard: `${config.shard.index + 1}/${config.shard.count}` } : {}),
    ...(config.runs !== undefined ? { runs: config.runs } : { timeMs: config.timeMs }),
    ...(interrupted !== undefined ? { interrupted } : {}),
    wallMs: Math.round(wallMs),
    execs: s.execs,
    execsPerSec: Math.round(execsPerSec * 10) / 10,
    execsPerSecPerJob: Math.round((execsPerSec / result.jobs) * 10) / 10,
    // Counted in execs: answered from an earlier run of the same start without running it (execution-memo.ts).
    recalledExecs: s.recalled,
    instructionsPerExec: s.execs ? Number(s.instructions / BigInt(s.execs)) : 0,
    vmmExitsPerExec: s.execs ? Math.round((s.vmmExits / s.execs) * 10) / 10 : 0,
    verdicts: s.verdicts,
    findingsByCategory: s.findingsByCategory,
    corpusSize: s.corpusSize,
    edges: s.edges,
    decisionKeys: s.decisionKeys,
    shrinkExecs: s.shrinkExecs,
    findings: findingFiles,
    coverageOverTime: coverage.samples,
  };
}

/** DIR/stats.json, or no numbers when there is none (or it cannot be read: said through `warn`). */
function readStats(dir: string, warn: (m: string) => void): Record<string, unknown> {
  const path = join(dir, 'stats.json');
  if (!existsSync(path)) return {};
  try {
    return JSON.parse(readInputText(path, 'stats', MAX_FINDING_BYTES)) as Record<string, unknown>;
  } catch (err) {
    warn(`${path} cannot be read (${err instanceof Error ? err.message : String(err)}); the report has no numbers`);
    return {};
  }
}

/** DIR/report.html from stats.json's numbers and every finding in DIR/findings (this campaign's and earlier ones). */
function writeReport(out: FuzzOutputDir, stats: Record<string, unknown>, warn: (m: string) => void): string {
  const findings = out.readFindings(warn).map(({ finding, dir }) => ({ id: finding.id, category: finding.category, detail: finding.detail, dir }));
  const path = join(out.dir, 'report.html');
  writeFileAtomic(path, fuzzReportHtml(out.dir, stats, findings, FINDING_CATEGORIES));
  return path;
}

/** `--out DIR` (`flag`) checked (checkWritableOutputDir) and made; an Error whose message names it and says why not. */
function openWritableOutputDir(dir: string, flag = '--out '): FuzzOutputDir {
  try {
    checkWritableOutputDir(dir);
    return new FuzzOutputDir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOTDIR' || code === 'EEXIST' ? 'it or a folder above it is a file, not a directory' : creationErrorInWords(err);
    throw new Error(`cannot use ${flag}${quoteForError(dir)} as the output directory: ${why}`);
  }
}

/** Memory this process may still take: the kernel's MemAvailable, or less under a cgroup limit (Node 20.13+). */
function availableMemoryBytes(): number {
  return typeof process.availableMemory === 'function' ? process.availableMemory() : freemem();
}

function inBinaryUnits(bytes: number): string {
  if (bytes >= 2 ** 40) return `${(bytes / 2 ** 40).toFixed(1)} TiB`;
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${Math.round(bytes / 2 ** 20)} MiB`;
}

/**
 * The jobs that will start must fit in the memory available now: a run that outgrows it is killed
 * by the kernel's OOM killer part way, losing the campaign, so more jobs than fit is refused
 * before any execution, with the number that fits (as afl-fuzz refuses to start, "No more free CPU
 * cores", when every core is taken: bind_to_free_cpu in AFL++'s src/afl-fuzz-init.c), rather than
 * starting fewer jobs than asked (other seeds than the run's); --shard spreads a larger run over
 * machines with the same seeds. More jobs than CPUs only share them (each runs slower, a --runs
 * campaign finds the same): a warning.
 * Returns the usage error, if any.
 */
function checkJobsFit(config: FuzzCliConfig, warn: (m: string) => void): string | undefined {
  const starting = planJobs(config).length;
  const available = availableMemoryBytes();
  const fit = jobsThatFit(config.target, available);
  if (starting > fit) {
    return `--jobs ${config.jobs} needs about ${starting} × ${inBinaryUnits(jobMemoryBytes(config.target))} of memory and ${inBinaryUnits(available)} is available: ` +
      `at most ${counted(fit, 'job')} fit${fit === 1 ? 's' : ''} (a job holds an emulator with its snapshots and corpus, about ${inBinaryUnits(jobMemoryBytes({ workloadBytes: 0n }))}, plus the guest memory its --workload writes); ` +
      `give --jobs ${fit}${fit === 1 ? '' : ' or fewer'}, or split the run over machines with --shard`;
  }
  const cpus = availableParallelism();
  if (starting > cpus) warn(`--jobs ${config.jobs}: ${starting} jobs share ${counted(cpus, 'CPU')}, so each runs slower (a --runs campaign still finds the same)`);
  return undefined;
}

async function fuzz(io: CliIo, raw: RawFuzzOptions): Promise<void> {
  let config: FuzzCliConfig;
  try {
    config = parseFuzzOptions(raw);
  } catch (err) {
    if (err instanceof FuzzOptionError || err instanceof GuestImageError) {
      io.err(`minivisor fuzz: ${err.message}`);
      // An image that cannot be read is exit status 1, as the campaign's own image errors are.
      io.exitCode = err instanceof GuestImageError ? 1 : 2;
      return;
    }
    throw err;
  }
  const tooMany = checkJobsFit(config, (m) => io.err(`minivisor fuzz: warning: ${m}`));
  if (tooMany !== undefined) {
    io.err(`minivisor fuzz: ${tooMany}`);
    io.exitCode = 2;
    return;
  }
  // The output directory is made before the campaign, so a bad --out is a usage error that costs no execution.
  let out: FuzzOutputDir;
  try {
    out = openWritableOutputDir(config.out);
  } catch (err) {
    io.err(`minivisor fuzz: ${err instanceof Error ? err.message : String(err)}`);
    io.exitCode = 2;
    return;
  }
  const stored = out.readCorpus((m) => io.err(`minivisor fuzz: ${m}`));
  const seeds = stored.filter((p) => p.platform === config.target.platform);
  // Said, not silent: a folder of another platform's campaign (or a merge of both) gives this one fewer seeds, or none.
  if (stored.length > 0) {
    const others = stored.length - seeds.length;
    const platform = config.target.platform.toUpperCase();
    io.err(`minivisor fuzz: resuming ${quoteForError(config.out)}: ${counted(seeds.length, `${platform} corpus program`)} as seeds` +
      (others > 0 ? `; ${counted(others, 'program')} of another platform stay${others === 1 ? 's' : ''} in its corpus unused` : ''));
  }
  const status = new StatusLine(io);
  const coverage = new CoverageSamples();
  const start = monotonicMs();
  const findingFiles: string[] = [];
  const controller = new AbortController();
  // The first Ctrl-C, SIGTERM or SIGHUP: every job stops before its next execution and what the campaign has is saved.
  const stopSignals = catchStopSignals(controller, (name) => {
    status.end();
    io.err(`minivisor fuzz: ${name}: stopping after the current execution to save the campaign (again to quit at once)`);
  });
  let result: FuzzRunResult;
  try {
    result = await withFuzzInliningBudget(() => runFuzz({
      target: config.target, seed: config.seed, jobs: config.jobs, seeds, signal: controller.signal,
      ...(config.runs !== undefined ? { runs: config.runs } : {}),
      ...(config.timeMs !== undefined ? { timeMs: config.timeMs } : {}),
      ...(config.shard ? { shard: config.shard } : {}),
      onProgress: (s) => {
        const ms = monotonicMs() - start;
        coverage.record(s, ms);
        status.update(() => statusText(s, ms));
      },
      onFinding: (finding, traceLines) => {
        const file = out.addFinding(finding, traceLines);
        findingFiles.push(file);
        status.end();
        io.err(`minivisor fuzz: finding ${finding.id} (${finding.severity}): ${finding.detail}`);
        io.err(`  replay: minivisor replay ${file}`);
      },
    }));
  } catch (err) {
    stopSignals.stop();
    status.end();
    if (err instanceof GuestImageError) {
      io.err(`minivisor fuzz: ${err.message}`);
      io.exitCode = 1;
      return;
    }
    if (err instanceof HonestRunOverBudgetError) {
      io.err(`minivisor fuzz: ${err.message}`);
      io.exitCode = 2;
      return;
    }
    throw err;
  }
  // Stopped by a signal (a first one while saving changes no number, only how the process ends).
  const interrupted = stopSignals.signal();
  const wallMs = monotonicMs() - start;
  status.update(() => statusText(result.stats, wallMs), true);
  status.end();
  for (const program of result.corpus) out.addCorpus(program);
  coverage.record(result.stats, wallMs, true);
  const stats = statsJson(config, result, wallMs, findingFiles, coverage, interrupted);
  out.writeStats(stats);
  const report = writeReport(out, stats, (m) => io.err(`minivisor fuzz: ${m}`));
  const signalled = stopSignals.signal();
  stopSignals.stop();
  if (config.json) {
    io.out(JSON.stringify(stats));
  } else {
    io.out(`minivisor fuzz: ${interrupted !== undefined ? `interrupted (${interrupted}) after ` : ''}${result.stats.execs} executions in ${(wallMs / 1000).toFixed(1)} s, ${counted(result.findings.length, 'finding')}; output in ${config.out}, report ${report}`);
    for (const { finding } of result.findings) {
      io.out(`  ${finding.id}: ${FINDING_CATEGORIES[finding.category].summary}`);
    }
  }
  // Interrupted: 128 + the signal's number, which bin/minivisor.js turns into ending by that
  // signal, so a calling shell sees the interruption and stops too (its findings are saved and printed).
  io.exitCode = signalled !== undefined ? STOP_SIGNALS[signalled] : result.findings.length > 0 ? 1 : 0;
}

export function fuzzCommand(io: CliIo): Command {
  const command = new Command('fuzz')
    .description('fuzz a hostile VMM against the guest\'s memory-acceptance code; findings are shrunk and replayable')
    .option('--platform <name>', 'tdx or snp', FUZZ_DEFAULTS.platform)
    .option('--stage <stage>', 'where executions start: firmware, decompressor, kernel or all')
    .option('--time <duration>', `stop after this long, e.g. 30s, 5m (default ${FUZZ_DEFAULTS.time})`)
    .option('--runs <n>', 'stop after this many executions (deterministic: same seed, same findings)')
    .option('--seed <n>', 'campaign seed (also the guest\'s)', FUZZ_DEFAULTS.seed)
    .option('--jobs <n>', 'parallel jobs, one emulator per worker thread (with --runs, at most that many: a job runs at least once); refused beyond what the available memory holds, about 512 MiB plus the --workload per job', FUZZ_DEFAULTS.jobs)
    .option('--shard <K/N>', 'run slice K of N (disjoint, deterministic); merge the outputs with `fuzz merge`')
    .option('--out <dir>', 'output directory (new, empty, or an earlier campaign\'s): corpus/, findings/, stats.json, report.html', FUZZ_DEFAULTS.out)
    .option('--workload <size>', 'memory the kernel workload allocates', FUZZ_DEFAULTS.workload)
    .option('--memory <size>', 'guest memory', FUZZ_DEFAULTS.memory)
    .option('--unit <size>', 'acceptance bitmap unit, 4K or 2M')
    .option('--accept <mode>', 'lazy or eager acceptance in the kernel')
    .option('--pre-accept <size|all>', 'memory the firmware accepts before handing over')
    .option('--max-instructions <n>', 'instruction budget of one execution', FUZZ_DEFAULTS.maxInstructions)
    .option('--variant <name>', 'fuzz a planted-bug variant of the stubs (guest/DEFENCES.md) instead of the honest ones')
    .option('--tracking <design>', "the guest's record of accepted memory: bitmap or memmap (Kleen's variant) (default: bitmap)")
    .option('--vcpus <n>', "vCPUs; with several, the attack programs also choose the VMM's vCPU schedule (default: 1)")
    .option('--firmware <file>', 'fuzz your own firmware ELF, as `boot --firmware` boots it (findings record its path and SHA-256)')
    .option('--decompressor <file>', 'fuzz your own decompressor ELF (our kernel payload appended), as `boot --decompressor`')
    .option('--kernel <file>', 'fuzz your own kernel ELF behind our firmware and decompressor, as `boot --kernel`')
    .option('--json', 'print the final statistics as one JSON object')
    .enablePositionalOptions()
    .action((raw: RawFuzzOptions) => fuzz(io, raw));
  command.addCommand(new Command('merge')
    .description('merge fuzz output directories: the union of the corpora, findings deduplicated')
    .argument('<dirs...>', 'output directories to merge')
    .option('--out <dir>', 'where to merge into, made if new (default: the first directory, which must exist)')
    .action((dirs: string[], opts: { out?: string }) => {
      const into = opts.out ?? dirs[0]!;
      const sources = dirs.filter((d) => resolve(d) !== resolve(into));
      removeTempsOnStopSignals();
      try {
        const warn = (m: string) => io.err(`minivisor fuzz merge: ${m}`);
        checkMergeDestination(into, dirs);
        // Without --out the first directory is merged into and is a source too: it must exist, as
        // libFuzzer's -merge=1 requires of its first corpus directory unless -create_missing_dirs=1
        // (ValidateDirectoryExists, FuzzerDriver.cpp). A mistyped name made a new, empty folder.
        if (opts.out === undefined && !existsSync(into)) {
          throw new Error(`${quoteForError(into)} does not exist: the first directory is the one merged into (give --out to merge into a new one)`);
        }
        const merged = mergeOutputDirs(sources, () => openWritableOutputDir(into, opts.out !== undefined ? '--out ' : ''), warn);
        // The report lists every finding the directory now holds; its numbers are those of the campaign that last wrote stats.json there.
        const report = writeReport(merged.out, readStats(into, warn), warn);
        io.out(`minivisor fuzz merge: ${into} now holds ${merged.corpus} corpus programs and ${merged.findings} findings; report ${report}`);
      } catch (err) {
        io.err(`minivisor fuzz merge: ${err instanceof Error ? err.message : String(err)}`);
        io.exitCode = 2;
      }
    }));
  return command;
}
