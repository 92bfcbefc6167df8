// `minivisor boot`: firmware -> decompressor -> kernel on an emulated TDX or SNP platform with an
// honest VMM, and the report the CLI prints. A run is a pure function of its config and seed:
// the only wall-clock reading is `wallMs`, which nothing guest-visible depends on.
import { performance } from 'node:perf_hooks';
import { ConsoleProtocolParser, type BootReport } from './console-protocol.js';
import { ElfError, parseElf, type ElfImage } from './elf.js';
import { encodeFirmwareConfig } from './fw-config.js';
import { FIRMWARE_LOAD, FW_CONFIG_GPA, GUEST_IMAGE_LOAD } from './layout.js';
import type { BootConfig } from './boot-config.js';
import type { OutcomeKind, RunOutcome } from '../shared/outcome.js';
import { OutputFile } from '../shared/output-file.js';
import { quoteForError } from '../shared/quote.js';
import { BootTrace, type AcceptanceTotals } from './accounting.js';
import type { FailureExplanation } from './failure.js';
import { builtImagePaths, GuestImageError, readImage } from './images.js';
import { bootSnp, bootTdx, type BootImages, type BootPlatform, type VmmOverride } from './platforms.js';

export interface BootResult {
  platform: BootConfig['platform'];
  memoryBytes: number;
  seed: string;
  outcome: OutcomeKind;
  outcomeReason: string;
  acceptedBytes: { firmware: number; decompressor: number; kernel: number; total: number };
  acceptCalls: { '4K': number; '2M': number };
  exits: Record<string, number>;
  guestInstructions: number;
  wallMs: number;
  /** Peak resident memory of this process so far (like wallMs: measured, not part of the run). */
  peakRssMiB: number;
  traceSha256: string;
  traceEvents: number;
  measurement: string;
  /** What the guest itself reported on its console ("@mv stat" lines), for cross-checks. */
  guestStats: Record<string, string>;
  stages: string[];
  console: string;
  /** Only when the outcome is not `done`: the cause chain, the guest's stage and a register dump. */
  failure?: FailureExplanation;
}

export interface BootRun {
  result: BootResult;
  report: BootReport;
  trace: BootTrace;
  platform: BootPlatform;
  totals: AcceptanceTotals;
  /** CPU time of the guest run alone (after VM setup), for benchmarks; like wallMs, not part of the run. */
  runCpuMs: number;
}

export interface BootIo {
  /** Each guest console line as it arrives (the CLI prints them unless --json). */
  consoleLine?: (line: string) => void;
  /** Keep trace events in memory (tests). Default false: only the hash and the file. */
  keepTrace?: boolean;
  /** A hostile (or just different) VMM in place of the honest one. */
  vmm?: VmmOverride;
}

export function loadBootImages(config: BootConfig): BootImages {
  const built = builtImagePaths(config.variant);
  const firmwarePath = config.firmwareFile ?? built.firmware;
  const parse = (path: string, what: string, window: { start: bigint; end: bigint }): ElfImage => {
    const bytes = readImage(path, what);
    try {
      return parseElf(bytes, { ramBytes: config.memoryBytes, window });
    } catch (err) {
      if (err instanceof ElfError) throw new GuestImageError(`${what} ${quoteForError(path)}: ${err.message}`);
      throw err;
    }
  };
  const firmware = parse(firmwarePath, 'firmware image', FIRMWARE_LOAD);
  const guestImage = parse(built.guestImage, 'guest image', GUEST_IMAGE_LOAD);
  const bytes = encodeFirmwareConfig({
    memoryBytes: config.memoryBytes,
    preAccept: config.preAccept,
    acceptMode: config.accept,
    acceptUnit: config.unitBytes === 4096n ? 4096 : 0x200000,
    workloadBytes: config.workloadBytes,
    seed: config.seed,
    platformHint: config.platform,
    guestImageEntry: guestImage.entry,
  });
  return { firmware, guestImage, config: { gpa: FW_CONFIG_GPA, bytes } };
}

/** The run's outcome, sharpened by what the guest said: a halt is only `done` after "@mv done". */
function finalOutcome(run: RunOutcome, report: BootReport): RunOutcome {
  if (run.outcome === 'done') {
    if (report.done && report.errors.length === 0) return run;
    if (report.fatal !== undefined) return { outcome: 'guest-fatal', reason: report.fatal };
    if (report.errors.length) return { outcome: 'guest-fatal', reason: `console protocol: ${report.errors[0]}` };
    return { outcome: 'guest-fatal', reason: `${run.reason} without reporting done` };
  }
  if (run.outcome === 'guest-fatal' && report.fatal !== undefined) return { outcome: 'guest-fatal', reason: `${report.fatal} (${run.reason})` };
  return run;
}

export function bootGuest(config: BootConfig, io: BootIo = {}): BootRun {
  const loaded = loadBootImages(config);
  const images = io.vmm?.images ? io.vmm.images(loaded) : loaded;
  const built = builtImagePaths(config.variant);
  const traceFile = config.traceFile !== undefined
    ? new OutputFile(config.traceFile, 'trace', [config.firmwareFile ?? built.firmware, built.guestImage])
    : undefined;
  let booted: BootRun;
  try {
    const trace = new BootTrace({
      keep: io.keepTrace ?? false,
      ...(traceFile !== undefined ? { sink: (line: string) => traceFile.write(`${line}\n`) } : {}),
    });
    const parser = new ConsoleProtocolParser();
    const echo = (line: string) => {
      const before = parser.report.stages.length;
      parser.push(line.endsWith('\n') ? line : `${line}\n`);
      const stages = parser.report.stages;
      if (stages.length > before) trace.enterStage(stages[stages.length - 1]!);
      trace.faults.consoleLine(line.replace(/\n$/, ''));
      io.consoleLine?.(line.replace(/\n$/, ''));
    };
    const options = {
      memoryBytes: config.memoryBytes, instructionLimit: config.maxInstructions, countInstructions: config.countInstructions ?? true, trace, echo,
      ...(io.vmm ? { vmm: io.vmm } : {}),
    };
    const start = performance.now();
    const platform = config.platform === 'tdx' ? bootTdx(images, options) : bootSnp(images, options);
    let run: RunOutcome;
    const runCpu = process.cpuUsage();
    try {
      run = platform.run();
    } finally {
      platform.console.flush();
    }
    const { user, system } = process.cpuUsage(runCpu);
    const wallMs = performance.now() - start;
    const report = parser.end();
    const outcome = finalOutcome(run, report);
    const totals = trace.totals;
    const n = (v: bigint) => Number(v);
    const result: BootResult = {
      platform: config.platform,
      memoryBytes: n(config.memoryBytes),
      seed: config.seed.toString(),
      outcome: outcome.outcome,
      outcomeReason: outcome.reason,
      acceptedBytes: {
        firmware: n(totals.acceptedBytes.firmware), decompressor: n(totals.acceptedBytes.decompressor),
        kernel: n(totals.acceptedBytes.kernel), total: n(totals.acceptedBytes.total),
      },
      acceptCalls: { ...totals.acceptCalls },
      exits: { ...platform.machine.vcpu.exitCounts } as Record<string, number>,
      guestInstructions: n(platform.machine.vcpu.instructions),
      wallMs: Math.round(wallMs * 10) / 10,
      peakRssMiB: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
      traceSha256: trace.sha256(),
      traceEvents: trace.length,
      measurement: platform.measurement,
      guestStats: Object.fromEntries(Object.entries(report.stats).map(([k, v]) => [k, v.toString()])),
      stages: [...report.stages],
      console: platform.console.text,
      ...(outcome.outcome === 'done' ? {} : { failure: trace.faults.explain(outcome, trace.length - 1, trace.stage, platform.machine.vcpu) }),
    };
    booted = { result, report, trace, platform, totals, runCpuMs: (user + system) / 1000 };
  } catch (err) {
    // The trace file stays untouched; the error says what was left behind instead.
    if (traceFile !== undefined && err instanceof Error) err.message = `${err.message} (${traceFile.abandon()})`;
    throw err;
  }
  traceFile?.commit();
  return booted;
}
