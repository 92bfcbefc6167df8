// Intel TDX as a Platform: the vCPU under the TDX module. `step()` is TDH.VP.ENTER: the vCPU
// runs, the module handles what it owns (TDCALLs, #VE, exceptions) and returns on a TD exit.
import { Machine, type MachineState, type RamPaging } from '../../cpu/machine.js';
import { Trace } from '../../shared/trace.js';
import { DEFAULT_QUANTUM, VcpuScheduler, type ScheduleOptions, type VcpuSchedulerState } from '../../cpu/vcpu-scheduler.js';
import type { PageState, Platform, PlatformStep } from '../platform.js';
import { enterVm, type HardwareHandled } from '../vm-entry.js';
import type { VmExit } from '../../cpu/exits.js';
import type { TraceValue } from '../../shared/trace.js';
import { TdModule, type TdConfig, type TdExit, type TdModuleState } from './td-module.js';
import type { TdxVmmHandle } from './vmm-handle.js';

export interface TdxPlatformOptions extends Partial<TdConfig> {
  memoryBytes: bigint;
  countInstructions?: boolean;
  instructionLimit?: bigint;
  /** How the host backs guest RAM (MachineOptions.ramPaging; default 'huge-pages'). */
  ramPaging?: RamPaging;
  trace?: Trace;
  /** vCPUs (default 1); with more, `schedule` decides their interleaving (default round-robin, seed 1). */
  vcpus?: number;
  schedule?: ScheduleOptions;
}

const LEVEL_PAGE_SIZE = ['4k', '2m', '1g'] as const;

export interface TdxPlatformState { machine: MachineState; module: TdModuleState; scheduler?: VcpuSchedulerState }

export class TdxPlatform implements Platform<TdExit, TdxVmmHandle, TdxPlatformState> {
  readonly kind = 'tdx' as const;
  readonly machine: Machine;
  readonly module: TdModule;
  readonly #recordHw = (type: string, fields: Record<string, TraceValue>): void => this.module.record(type, fields);
  readonly trace: Trace;
  /** Several vCPUs: who runs when. */
  readonly scheduler: VcpuScheduler | undefined;

  /** A new TD: its machine (RAM, gate, vCPU) and TDX module, nothing mapped yet. */
  static create(options: TdxPlatformOptions): TdxPlatform {
    const gpaWidth = options.gpaWidth ?? 48;
    const machine = new Machine({
      memoryBytes: options.memoryBytes, countInstructions: options.countInstructions ?? true,
      marker: { kind: 'tdx-shared-bit', gpaWidth }, vcpus: options.vcpus ?? 1,
      ...(options.instructionLimit !== undefined ? { instructionLimit: options.instructionLimit } : {}),
      ...(options.ramPaging !== undefined ? { ramPaging: options.ramPaging } : {}),
    });
    const config: TdConfig = { gpaWidth, attributes: options.attributes ?? 0n };
    if (options.numVcpus !== undefined) config.numVcpus = options.numVcpus;
    if (options.maxVcpus !== undefined) config.maxVcpus = options.maxVcpus;
    if (machine.vcpuCount > 1) config.numVcpus = config.maxVcpus = machine.vcpuCount;
    if (options.configFlags !== undefined) config.configFlags = options.configFlags;
    const schedule = options.schedule ?? { policy: 'round-robin', seed: 1n, quantum: DEFAULT_QUANTUM };
    return new TdxPlatform(machine, options.trace ?? new Trace(), config, schedule);
  }

  constructor(machine: Machine, trace: Trace, config: TdConfig, schedule?: ScheduleOptions) {
    this.machine = machine;
    this.trace = trace;
    this.module = new TdModule(machine, trace, config);
    this.scheduler = machine.vcpuCount > 1 && schedule ? new VcpuScheduler(machine, schedule) : undefined;
    const scheduler = this.scheduler;
    if (scheduler) this.module.preemptAccept = (done) => scheduler.splitLongInstruction(done, 512);
  }

  get handle(): TdxVmmHandle {
    return this.module.host;
  }

  saveState(): TdxPlatformState {
    const state: TdxPlatformState = { machine: this.machine.saveState(), module: this.module.saveState() };
    if (this.scheduler) state.scheduler = this.scheduler.saveState();
    return state;
  }

  loadState(state: TdxPlatformState): void {
    this.machine.loadState(state.machine);
    this.module.loadState(state.module);
    if (this.scheduler && state.scheduler) this.scheduler.loadState(state.scheduler);
  }

  /**
   * With several vCPUs, every exit the module or the VMM handled is a switch point, and so is
   * the end of a quantum and a PAUSE; a TD exit is handed to the VMM for the vCPU it came from.
   */
  step(): PlatformStep<TdExit> {
    const scheduler = this.scheduler;
    scheduler?.switchPoint('exit');
    const posted = this.module.deliverPostedInterrupt();
    if (posted.kind === 'stop') return { kind: 'outcome', outcome: posted.outcome };
    return enterVm(this.machine, scheduler, this.#recordHw, this.#handleExit);
  }

  readonly #handleExit = (exit: VmExit): HardwareHandled<TdExit> => {
    const step = this.module.handleExit(exit);
    if (step.kind === 'resume') return undefined;
    if (step.kind === 'stop') return { kind: 'outcome', outcome: step.outcome };
    return { kind: 'exit', exit: step.exit };
  };


  pageState(gpa: bigint): PageState {
    const page = this.module.privatePageOf(gpa);
    const walk = this.module.sept.walk(page, 0);
    const state = walk.state;
    const pending = state === 'PENDING' || state === 'PENDING_BLOCKED';
    // A BLOCKED page was accepted; the host has only made it unreachable for a while.
    const accepted = state === 'MAPPED' || state === 'BLOCKED';
    return {
      gpa: page, visibility: this.module.isPrivatePage(page) ? 'private' : 'shared', accepted, pending,
      // A walk stopped above 1G (no 512G-level SEPT page yet) maps nothing: report the largest size.
      pageSize: LEVEL_PAGE_SIZE[Math.min(walk.level, 2)]!, raw: state,
    };
  }
}
