// `minivisor boot`: firmware -> decompressor -> kernel on an emulated TDX or SNP platform with an
// honest VMM, and the report the CLI prints. A run is a pure function of its config and seed:
// the only wall-clock reading is `wallMs`, which nothing guest-visible depends on.
import { monotonicMs } from '../shared/monotonic-clock.js';
import type { BootReport } from './console-protocol.js';
import { checkBootConfig, type BootConfig } from './boot-config.js';
import type { OutcomeKind } from '../shared/outcome.js';
import { OutputFile } from '../shared/output-file.js';
import type { AcceptanceTotals, BootTrace } from './accounting.js';
import { BootSession, type BootSessionIo } from './boot-session.js';
import { bootInputFiles } from './images.js';
import type { BootPlatform } from './platforms.js';
import { traceHeader } from './trace-header.js';
import type { FailureExplanation } from './failure.js';
import { linuxBootReport, linuxBootReportJson, type LinuxBootReport, type LinuxBootReportJson } from './linux/linux-report.js';

export interface BootResult {
  platform: BootConfig['platform'];
  memoryBytes: number;
  seed: string;
  outcome: OutcomeKind;
  outcomeReason: string;
  /**
   * Bytes accepted by completed accept calls, by the stage that made them; `total` counts a page
   * accepted again after a private->shared->private conversion each time, `distinct` once (so it
   * is at most memoryBytes).
   */
  acceptedBytes: { firmware: number; decompressor: number; kernel: number; total: number; distinct: number };
  /** Accept calls the hardware saw, any result (a call that exits to the VMM first and is executed again counts twice). */
  acceptCalls: { '4K': number; '2M': number };
  /** Accept calls that accepted their page: what the guest's own accept_calls_4k/2m count. */
  acceptCallsCompleted: { '4K': number; '2M': number };
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
  /** Only when the outcome is not a success: the cause chain, the guest's stage and a register dump. */
  failure?: FailureExplanation;
  /** A Linux boot (BootConfig.linux): what the decompressor accepted, checked against its table. */
  linux?: LinuxBootReportJson;
}

/** A Linux boot succeeds when it reaches the decompressed kernel; a stub boot when the kernel says done. */
export function bootSucceeded(config: Pick<BootConfig, 'linux'>, outcome: OutcomeKind): boolean {
  return config.linux ? outcome === 'handover' : outcome === 'done';
}

export interface BootRun {
  result: BootResult;
  report: BootReport;
  trace: BootTrace;
  platform: BootPlatform;
  totals: AcceptanceTotals;
  /** CPU time of the guest run alone (after VM setup), for benchmarks; like wallMs, not part of the run. */
  runCpuMs: number;
  session: BootSession;
  /** A Linux boot's report (also in result.linux, as JSON). */
  linux?: LinuxBootReport;
}

/** Where the trace's lines go: the header line first, then one line per event, each ending in a newline. */
export interface TraceWriter {
  write(text: string): void;
  /** The run ended (any outcome): finish the output. */
  commit(): void;
  /** The run failed with an error: give up, and say what was left behind. */
  abandon(): string;
}

export type BootIo = Omit<BootSessionIo, 'traceSink'> & {
  /** Takes the place of `config.traceFile` (the CLI's `--trace -`, Perfetto output, filters). */
  traceWriter?: TraceWriter;
  /** Called after every completed accept with the run's trace (stage, totals): a progress display. */
  onAccepted?: (trace: BootTrace) => void;
};

export function bootGuest(config: BootConfig, io: BootIo = {}): BootRun {
  checkBootConfig(config);  // before the trace header reads it (BootSession.create checks it too)
  const { traceWriter, onAccepted, ...sessionIo } = io;
  const traceFile: TraceWriter | undefined = traceWriter ?? (config.traceFile !== undefined
    ? new OutputFile(config.traceFile, 'trace', bootInputFiles(config))
    : undefined);
  let booted: BootRun;
  try {
    const start = monotonicMs();
    // The header goes out with the first event: a run that fails before any event writes nothing.
    let header: string | undefined = `${JSON.stringify(traceHeader(config))}\n`;
    const traceSink = (line: string) => {
      if (header !== undefined) {
        traceFile?.write(header);
        header = undefined;
      }
      traceFile?.write(`${line}\n`);
    };
    // A Linux boot's report reads the accept calls back from the trace.
    const session = BootSession.create(config, { ...sessionIo, ...(config.linux ? { keepTrace: true } : {}), ...(traceFile !== undefined ? { traceSink } : {}) });
    if (onAccepted !== undefined) session.trace.onAccepted = () => onAccepted(session.trace);
    const runCpu = process.cpuUsage();
    const { outcome, report } = session.finish();
    const { user, system } = process.cpuUsage(runCpu);
    const wallMs = monotonicMs() - start;
    const { trace, platform } = session;
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
        kernel: n(totals.acceptedBytes.kernel), total: n(totals.acceptedBytes.total), distinct: n(trace.acceptedRanges.bytes),
      },
      acceptCalls: { ...totals.acceptCalls },
      acceptCallsCompleted: { ...totals.completedAcceptCalls },
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
      ...(bootSucceeded(config, outcome.outcome) ? {} : { failure: trace.faults.explain(outcome, trace.length - 1, trace.stage, platform.machine.vcpu) }),
    };
    const linuxImages = session.images.linux;
    const linux = linuxImages
      ? linuxBootReport(linuxImages, trace.events, (gpa, length) => platform.machine.memory.read(gpa, length), outcome.outcome === 'handover' ? platform.machine.vcpu.regs.rip : undefined)
      : undefined;
    if (linux) result.linux = linuxBootReportJson(linux);
    booted = { result, report, trace, platform, totals, session, runCpuMs: (user + system) / 1000, ...(linux ? { linux } : {}) };
  } catch (err) {
    // The trace file stays untouched; the error says what was left behind instead.
    if (traceFile !== undefined && err instanceof Error) err.message = `${err.message} (${traceFile.abandon()})`;
    throw err;
  }
  traceFile?.commit();
  return booted;
}
