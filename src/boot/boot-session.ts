// A booted VM for one BootConfig that can be run, paused, snapshotted and restored: what
// `minivisor boot` runs once, and what the fuzzer runs thousands of times from one snapshot.
//
//   const session = BootSession.create(config);      // VM built, image launched (measured); nothing ran
//   session.runToStage('kernel');                    // pauses at the kernel stage's first VMM decision point
//   const start = session.snapshot();                // the whole VM (see below)
//   for (each execution) {
//     session.restore(start);                        // cheap: written pages and model state only
//     if (session.vmm.kind === 'tdx') session.vmm.driver.policy = adversary(session.vmm.honest);
//     const { outcome } = session.finish();          // runs to the end: outcome as `boot` reports it
//     session.trace.sha256();                        // the execution's trace hash
//   }
//
// A snapshot covers every part of the VM, each behind Snapshottable: the machine (CPU registers,
// RAM, page gate, exit counters), the hardware model (TDX: SEPT, epoch, finalized, MRTD hash,
// TD_CTLS, MSR values, host locks, pending/posted interrupts, VMCALL in flight, VE info; SNP: RMP, NPT sizes,
// GHCB MSR, launch digest), the trace (position and hash), the console, the VMM (the policy in
// charge and its own state through its optional saveState/loadState hook), the boot's console
// parser (stage, stats, done/fatal) and the run loop (the exit it paused before). A restore puts
// the policy in charge at snapshot time back: set yours after each restore.
import { checkBootConfig, type BootConfig } from './boot-config.js';
import { BootTrace } from './accounting.js';
import { ConsoleProtocolParser, type BootReport, type BootStage } from './console-protocol.js';
import { loadBootImages, type BootImages } from './images.js';
import { DEFAULT_QUANTUM } from '../cpu/vcpu-scheduler.js';
import { STAGES } from './layout.js';
import { bootSnp, bootTdx, type BootPlatform, type BootVmm, type VmmOverride } from './platforms.js';
import type { Machine, RamPaging } from '../cpu/machine.js';
import type { RunOutcome } from '../shared/outcome.js';
import type { VmSnapshot } from '../vmm/run-vm.js';

export interface BootSessionIo {
  /** Each guest console line as it arrives (the CLI prints them unless --json). */
  consoleLine?: (line: string) => void;
  /** Keep trace events in memory (tests). Default false: only the hash (and the sink). */
  keepTrace?: boolean;
  /** Receives every trace line (a --trace file). A restore cannot take back what it received. */
  traceSink?: (line: string) => void;
  /** A hostile (or just different) VMM in place of the honest one, from the start. */
  vmm?: VmmOverride;
  /**
   * Called when the guest announces a boot stage, at that very exit (the guest flushes its console
   * on every announcement), with the seq of the trace's `stage` event: the moment one stage hands
   * over to the next, which the fuzz oracle inspects (reading `machine`). Not part of the VM's state.
   */
  onStageEntered?: (stage: BootStage, seq: number, machine: Machine) => void;
  /**
   * The config's images as loadBootImages(config) gives them, loaded once by a caller that
   * launches the same config many times (a fuzz executor): never changed, so VMs can share them.
   */
  images?: BootImages;
  /** How the host backs guest RAM (MachineOptions.ramPaging; default 'huge-pages'), never what the guest sees. */
  ramPaging?: RamPaging;
}

/** The instruction budget is the real guard; this cap only stops a runaway VMM loop. */
const MAX_EXITS = 200_000_000;

export class BootSession {
  readonly config: BootConfig;
  readonly trace: BootTrace;
  readonly parser: ConsoleProtocolParser;
  /** The machine, console, measurement and the run loop (`platform.vm`). */
  readonly platform: BootPlatform;
  /** What was launched (firmware, guest image or Linux kernel, config). */
  readonly images: BootImages;

  private constructor(config: BootConfig, trace: BootTrace, parser: ConsoleProtocolParser, platform: BootPlatform, images: BootImages) {
    this.config = config;
    this.images = images;
    this.trace = trace;
    this.parser = parser;
    this.platform = platform;
  }

  /** Builds the VM for `config` and launches the boot image; no guest instruction has run. */
  static create(config: BootConfig, io: BootSessionIo = {}): BootSession {
    checkBootConfig(config);
    const loaded = io.images ?? loadBootImages(config);
    const images = io.vmm?.images ? io.vmm.images(loaded) : loaded;
    const trace = new BootTrace({ keep: io.keepTrace ?? false, ...(io.traceSink ? { sink: io.traceSink } : {}) });
    const parser = new ConsoleProtocolParser();
    let machine: Machine | undefined; // set below, before the guest runs
    const echo = (line: string) => {
      const before = parser.report.stages.length;
      const text = line.endsWith('\n') ? line.slice(0, -1) : line;
      parser.pushLine(text);
      const stages = parser.report.stages;
      if (stages.length > before) {
        const stage = stages[stages.length - 1]!;
        trace.enterStage(stage);
        if (machine) io.onStageEntered?.(stage, trace.length - 1, machine);
      }
      trace.faults.consoleLine(text);
      io.consoleLine?.(text);
    };
    const options = {
      memoryBytes: config.memoryBytes, instructionLimit: config.maxInstructions, countInstructions: config.countInstructions ?? true,
      seed: config.seed, trace, echo, extraState: { parser }, ...(io.vmm ? { vmm: io.vmm } : {}),
      ...(io.ramPaging !== undefined ? { ramPaging: io.ramPaging } : {}),
      ...(config.vcpus !== undefined && config.vcpus > 1
        ? { vcpus: { count: config.vcpus, schedule: { seed: config.seed, ...(config.schedule ?? { policy: 'random' as const, quantum: DEFAULT_QUANTUM }) } } }
        : {}),
    };
    const platform = config.platform === 'tdx' ? bootTdx(images, options) : bootSnp(images, options);
    trace.countInstructionsOf(platform.machine.vcpu);
    machine = platform.machine;
    return new BootSession(config, trace, parser, platform, images);
  }

  /** The VMM: its driver (set `driver.policy` to change who decides) and the policy installed at boot. */
  get vmm(): BootVmm {
    return this.platform.vmm;
  }

  /** The boot stage the guest announced last ('vmm' before the firmware's first announcement). */
  get stage(): BootStage | 'vmm' {
    return this.trace.stage;
  }

  /**
   * Runs until the first exit the VMM must decide on after the guest announced `stage`, and
   * pauses before the VMM handles it. Returns false if the run ended first, or the guest went
   * past `stage` without announcing it (the session is then paused at a later stage or ended).
   */
  runToStage(stage: BootStage): boolean {
    const result = this.runToStageOrEnd(stage);
    return result.kind === 'paused' && this.trace.stage === stage;
  }

  /**
   * Like runToStage, but says how it stopped: paused (at `stage` or, if the guest skipped it, at
   * a later one), or ended before that with the outcome `finish` would report.
   */
  runToStageOrEnd(stage: BootStage): { kind: 'paused' } | { kind: 'ended'; outcome: RunOutcome; report: BootReport } {
    const wanted = STAGES.indexOf(stage);
    const reached = () => this.trace.stage !== 'vmm' && STAGES.indexOf(this.trace.stage) >= wanted;
    const result = this.platform.vm.run({ maxExits: MAX_EXITS, stopBefore: reached });
    if (result.kind === 'paused') return { kind: 'paused' };
    this.platform.console.flush();
    const report = structuredClone(this.parser.end());
    return { kind: 'ended', outcome: finalOutcome(result.outcome, report), report };
  }

  /** Runs to the end and returns the outcome as `minivisor boot` reports it, with the guest's report. */
  finish(): { outcome: RunOutcome; report: BootReport } {
    const outcome = this.finishOutcome();
    return { outcome, report: structuredClone(this.parser.report) };
  }

  /**
   * finish() without a copy of the guest's report (the fuzzer's executions need only the outcome,
   * and copying the report, all console text of the boot included, showed in every execution).
   */
  finishOutcome(): RunOutcome {
    let result;
    try {
      result = this.platform.vm.run({ maxExits: MAX_EXITS });
    } finally {
      this.platform.console.flush();
    }
    if (result.kind !== 'ended') throw new Error('unreachable: a run without stopBefore never pauses');
    return finalOutcome(result.outcome, this.parser.end());
  }

  /** The whole VM, as it is now. */
  snapshot(): VmSnapshot {
    return this.platform.vm.snapshot();
  }

  restore(snapshot: VmSnapshot): void {
    this.platform.vm.restore(snapshot);
  }
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
