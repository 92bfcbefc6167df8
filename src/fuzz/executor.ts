// Runs one attack program against one guest configuration and judges it. The campaign, the
// shrinker and replay only see the `Executor` interface, so how a VM gets to its starting point
// (a full boot, or a whole-VM snapshot restored per execution) is this file's business.
import type { BootConfig } from '../boot/boot-config.js';
import type { AcceptanceTracking, StubVariant } from '../boot/images.js';
import { bootGuest } from '../boot/boot-guest.js';
import { loadBootImages } from '../boot/images.js';
import type { Machine, RamPaging } from '../cpu/machine.js';
import { DEFAULT_QUANTUM, type VcpuScheduler } from '../cpu/vcpu-scheduler.js';
import type { RunOutcome } from '../shared/outcome.js';
import type { TraceEvent, TraceObserver, TraceValue } from '../shared/trace.js';
import { DecisionBook } from './adversary.js';
import { adversaryVmm } from './adversary-vmm.js';
import type { AttackProgram, CallPoint } from './attack-program.js';
import { readGuestAcceptanceRecord } from './guest-record.js';
import { AcceptanceOracle, type Judgement } from './oracle.js';
import { captureHandover, type StageHandover } from './stage-handover.js';
import { stageImageFiles, type StageImages } from './stage-images.js';

export const FUZZ_STAGES = ['firmware', 'decompressor', 'kernel', 'all'] as const;
export type FuzzStage = (typeof FUZZ_STAGES)[number];

/** Everything that fixes what one execution does, apart from the attack program. */
export interface FuzzTarget {
  platform: BootConfig['platform'];
  /** Where executions start: the first VMM decision of this boot stage ('all' = the first of the boot). */
  stage: FuzzStage;
  memoryBytes: bigint;
  workloadBytes: bigint;
  preAccept: BootConfig['preAccept'];
  accept: BootConfig['accept'];
  unitBytes: bigint;
  /** The guest's own seed (the boot's --seed), not the campaign's. */
  guestSeed: bigint;
  /** Instruction budget of one execution: a guest stuck in a loop ends as `budget`. */
  maxInstructions: bigint;
  /** A planted-bug variant of the stubs (guest/lib/variants.mk) instead of the honest ones. */
  variant?: StubVariant;
  /** The guest's acceptance record (issue 14 part 3); absent = the bitmap, the default build. */
  tracking?: AcceptanceTracking;
  /** vCPUs (absent = 1); with several, an attack program's `schedule` decides their turns. */
  vcpus?: number;
  /** Stages replaced by the user's own ELF files (`--firmware`, `--decompressor`, `--kernel`). */
  images?: StageImages;
}

/**
 * One execution's default instruction budget (`minivisor fuzz --max-instructions`): about 100x an
 * honest kernel-stage execution and 9x a whole honest boot (stage all) at the default 1M workload,
 * so a mutant that makes the guest loop costs milliseconds, not seconds; a campaign whose honest
 * execution needs more stops with a usage error.
 */
export const DEFAULT_EXECUTION_BUDGET = 5_000_000n;

export interface Execution {
  judgement: Judgement;
  /**
   * The whole trace's hash. A snapshot executor computes it on first read, by running the
   * execution again from its snapshot with the trace hashing (most executions never need it): read
   * it before relying on the executor's VM or edge map being as this execution left them.
   */
  readonly traceSha256: string;
  traceEvents: number;
  /** Guest instructions and exits to the VMM in this execution. */
  instructions: bigint;
  /**
   * Guest instructions this execution spent launching a fresh VM and running it to the stage
   * (absent or 0: it started from a snapshot). What the campaign's cost model charges for a launch.
   */
  launchInstructions?: bigint;
  vmmExits: number;
  /** Decision point × choice (and host action × result) keys reached. */
  decisionCoverage: ReadonlySet<string>;
  /** How often each decision point was reached (the mutator aims occurrences with it). */
  callCounts: ReadonlyMap<CallPoint, number>;
  /** GPAs the hardware saw the guest and VMM work on (the mutator aims host actions at them). */
  gpas: bigint[];
  /** AFL-style edge hit counts of this execution, when the executor collects them. */
  edges: Uint8Array | undefined;
  /**
   * The slots of `edges` this execution hit, `[n, slot1, …, slotn]` (Machine.edgeSlots), when the
   * executor keeps that list: merging the edges then visits only those. Absent: scan `edges`.
   */
  edgeSlots?: Uint32Array;
  /** The trace, when asked for (replay, findings). */
  events?: TraceEvent[];
  console: string;
  /** Answered from the runs its start recorded, without running (execution-memo.ts): for benchmarks, which count what ran. */
  recalled?: true;
}

export interface ExecuteOptions {
  keepTrace?: boolean;
}

export interface Executor {
  readonly target: FuzzTarget;
  execute(program: AttackProgram, options?: ExecuteOptions): Execution;
  /** Whether `program` would start from a snapshot now (no fresh launch); absent: always. */
  startsFromSnapshot?(program: AttackProgram): boolean;
  close(): void;
}

const MAX_GPAS = 64;

/** GPAs worth aiming host actions at: pages the guest accepted, converted or faulted on. */
function gpasOf(type: string, e: Readonly<Record<string, TraceValue>>, into: Set<bigint>): void {
  if (into.size >= MAX_GPAS) return;
  let gpa: TraceValueBigint = undefined;
  if (type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT' && typeof e.rcx === 'bigint') gpa = e.rcx & 0x000ffffffffff000n;
  else if ((type === 'pvalidate' || type === 'npf' || type === 'guest-release' || type === 'td-exit') && typeof e.gpa === 'bigint') gpa = e.gpa;
  if (gpa !== undefined) into.add(gpa & ~0xfffn);
  // The code page the guest exited from: memory it certainly uses again (the stubs identity-map, VA == GPA).
  if ((type === 'td-exit' || type === 'vmgexit') && typeof e.rip === 'bigint' && into.size < MAX_GPAS) into.add(e.rip & ~0xfffn);
}

/**
 * What one execution's events go through: its oracle, and the GPAs they name. A trace observer
 * (fed as events are recorded) and the stage handovers' sink (each right after its `stage` event).
 */
export class ExecutionObserver implements TraceObserver {
  readonly oracle: AcceptanceOracle;
  /** GPAs the events named, in the order first named (after those given to start with). */
  readonly gpas: Set<bigint>;

  constructor(oracle: AcceptanceOracle, gpas: Iterable<bigint> = []) {
    this.oracle = oracle;
    this.gpas = new Set(gpas);
  }

  event(seq: number, type: string, fields: Readonly<Record<string, TraceValue>>): void {
    this.oracle.observeFields(seq, type, fields);
    gpasOf(type, fields, this.gpas);
  }

  handover(h: StageHandover): void {
    this.oracle.handedOver(h);
  }

  /** The oracle's verdict, checked against the hardware's page gate and the guest's own acceptance record in `machine`. */
  judge(outcome: RunOutcome, machine: Machine): Judgement {
    return this.oracle.judge(outcome, {
      hardwareAccepted: (gpa) => machine.gate.get('private', gpa) !== 'none',
      guestRecord: () => readGuestAcceptanceRecord(machine.memory),
    });
  }
}

/**
 * Feeds kept `events` to `observer`, each stage handover right after its `stage` event
 * (`handovers`, in trace order).
 */
export function observeEvents(observer: ExecutionObserver, events: readonly TraceEvent[], handovers: readonly StageHandover[]): void {
  let next = 0;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    observer.event(e.seq, e.type, e);
    while (next < handovers.length && handovers[next]!.seq <= e.seq) {
      if (handovers[next]!.seq === e.seq) observer.handover(handovers[next]!);
      next++;
    }
  }
}

/**
 * The oracle's verdict on one execution's kept events (observeEvents), checked against the
 * hardware's page gate and the guest's own acceptance record in `machine`; with every GPA the
 * events name.
 */
export function judgeExecution(
  oracle: AcceptanceOracle, events: readonly TraceEvent[], outcome: RunOutcome, machine: Machine, handovers: readonly StageHandover[] = [],
): { judgement: Judgement; gpas: bigint[] } {
  const observer = new ExecutionObserver(oracle);
  observeEvents(observer, events, handovers);
  return { judgement: observer.judge(outcome, machine), gpas: [...observer.gpas] };
}
type TraceValueBigint = bigint | undefined;

/**
 * Collects the stage handovers of a run: pass `onStage` as the boot session's onStageEntered.
 * Reading guest memory is reading untrusted input: a record that cannot be read is no evidence
 * either way. Only handovers with something to look at are kept.
 */
export class HandoverRecorder {
  readonly handovers: StageHandover[] = [];
  /** Also given each handover as it is captured (an execution's observer; not the kept prefix's). */
  observer: ExecutionObserver | undefined;

  readonly onStage = (stage: StageHandover['stage'], seq: number, machine: Machine): void => {
    let h: StageHandover | undefined;
    try {
      h = captureHandover(machine, stage, seq);
    } catch {
      return;
    }
    if (h && h.heldButRecordedUnaccepted.length > 0) {
      this.handovers.push(h);
      this.observer?.handover(h);
    }
  };

  clear(): void {
    this.handovers.length = 0;
  }
}

/**
 * A fuzz VM's RAM is in 4 KiB pages faulted in one by one (MachineOptions.ramPaging): its
 * executions and launches touch little, scattered RAM. In huge pages each first touch of a 2 MiB
 * range cleared all of it (a launch's page added at a random GPA, a restore after a 2 MiB accept
 * gave its pages back); against them, seed-1 campaigns of 3,000 executions, 4 KiB workload: CPU
 * time 0.93x (TDX and SNP alike, medians of 5 alternating runs on a loaded machine), system time
 * half, peak RSS 269 -> 160 MB (TDX) and 312 -> 194 MB (SNP).
 */
export const FUZZ_RAM_PAGING: RamPaging = 'on-touch';

export function bootConfigFor(target: FuzzTarget): BootConfig {
  return {
    platform: target.platform, memoryBytes: target.memoryBytes, preAccept: target.preAccept, accept: target.accept,
    unitBytes: target.unitBytes, workloadBytes: target.workloadBytes, seed: target.guestSeed,
    maxInstructions: target.maxInstructions, ...(target.variant !== undefined ? { variant: target.variant } : {}),
    ...(target.tracking !== undefined ? { tracking: target.tracking } : {}),
    ...(target.vcpus !== undefined && target.vcpus > 1 ? { vcpus: target.vcpus, schedule: { policy: 'random' as const, quantum: DEFAULT_QUANTUM } } : {}),
    ...stageImageFiles(target.images),
  };
}

/** Hands the program's vCPU schedule to the scheduler, where the program's decisions start. */
export function applySchedule(scheduler: VcpuScheduler | undefined, program: AttackProgram): void {
  if (scheduler && program.schedule) scheduler.reschedule(program.schedule);
}

/** The execution of a run that threw: judged as a minivisor bug. */
export function crashedExecution(err: unknown, book: DecisionBook): Execution {
  const reason = `internal error: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`;
  const judgement = new AcceptanceOracle().judge({ outcome: 'vmm-error', reason }, { hardwareAccepted: () => false, guestRecord: () => undefined });
  return {
    judgement, traceSha256: '', traceEvents: 0, instructions: 0n, vmmExits: book.exits, decisionCoverage: book.coverage,
    callCounts: book.callCounts, gpas: [], edges: undefined, console: '',
  };
}

/**
 * Boots the guest from its first instruction for every execution. Correct but slow (a whole
 * boot per execution); stands in until executions restore a whole-VM snapshot.
 */
export class BootExecutor implements Executor {
  readonly target: FuzzTarget;

  constructor(target: FuzzTarget) {
    this.target = target;
    // A missing or bad guest image is the user's configuration, reported now (GuestImageError), not a bug found later.
    loadBootImages(bootConfigFor(target));
  }

  execute(program: AttackProgram, options: ExecuteOptions = {}): Execution {
    if (program.platform !== this.target.platform) throw new Error(`a ${program.platform} attack program cannot run on ${this.target.platform}`);
    const book = new DecisionBook(program);
    const vmm = adversaryVmm(this.target.platform, book);
    const handovers = new HandoverRecorder();
    let run: ReturnType<typeof bootGuest>;
    try {
      run = bootGuest(bootConfigFor(this.target), { vmm, keepTrace: true, onStageEntered: handovers.onStage });
    } catch (err) {
      // Nothing an attack program or a guest does may throw out of a run: this is our bug.
      return crashedExecution(err, book);
    }
    try {
      const machine = run.platform.machine;
      const outcome = { outcome: run.result.outcome, reason: run.result.outcomeReason };
      const { judgement, gpas } = judgeExecution(new AcceptanceOracle(), run.trace.events, outcome, machine, handovers.handovers);
      const execution: Execution = {
        judgement, traceSha256: run.result.traceSha256, traceEvents: run.result.traceEvents,
        instructions: machine.vcpu.instructions, vmmExits: book.exits, decisionCoverage: book.coverage,
        callCounts: book.callCounts, gpas, edges: undefined, console: run.result.console,
      };
      if (options.keepTrace) execution.events = run.trace.events;
      return execution;
    } finally {
      run.platform.machine.close();
    }
  }

  close(): void {}
}
