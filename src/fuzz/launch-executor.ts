// Executions of programs that change the launch (launch actions, a memory description): the
// campaign's snapshot was taken after an honest launch, so these launch a fresh VM with the
// program's launch hooks, run it honestly to the target's stage (the program's decisions count
// exits from there, as with the snapshot), then under the program to the end. The oracle sees the
// whole trace, launch included. A boot per execution: the mutator adds launch actions rarely.
import { BootSession } from '../boot/boot-session.js';
import type { RunOutcome } from '../shared/outcome.js';
import type { VmSnapshot } from '../vmm/run-vm.js';
import type { StageHandover } from './stage-handover.js';
import { DecisionBook, snpAdversaryPolicy, tdxAdversaryPolicy } from './adversary.js';
import { launchKey, needsFreshLaunch, type AttackProgram } from './attack-program.js';
import {
  applySchedule, bootConfigFor, crashedExecution, HandoverRecorder, judgeExecution, type ExecuteOptions, type Execution, type Executor, type FuzzTarget,
} from './executor.js';
import { launchOverride } from './launch.js';
import { AcceptanceOracle } from './oracle.js';

function install(session: BootSession, book: DecisionBook): void {
  book.probe = (gpa) => session.platform.pageState(gpa);
  const vmm = session.vmm;
  if (vmm.kind === 'tdx') vmm.driver.policy = tdxAdversaryPolicy(book, vmm.honest);
  else vmm.driver.policy = snpAdversaryPolicy(book, vmm.honest);
}

/** Runs a just-launched VM with no decisions (the honest VMM) up to `target`'s stage, or to its end. */
function runHonestPrefix(session: BootSession, target: FuzzTarget, platform: AttackProgram['platform']) {
  install(session, new DecisionBook({ platform, decisions: [] }));
  return target.stage === 'all' ? { kind: 'paused' as const } : session.runToStageOrEnd(target.stage);
}

/** Runs `program` from a fresh launch of `target`'s VM. */
export function executeFromLaunch(target: FuzzTarget, program: AttackProgram, options: ExecuteOptions = {}): Execution {
  const book = new DecisionBook(program);
  const handovers = new HandoverRecorder();
  let session: BootSession;
  try {
    session = BootSession.create(bootConfigFor(target), { keepTrace: true, vmm: launchOverride(program), onStageEntered: handovers.onStage });
  } catch (err) {
    return crashedExecution(err, book);
  }
  const machine = session.platform.machine;
  try {
    let outcome: RunOutcome;
    let edges: Uint8Array | undefined;
    let launchInstructions = 0n;
    try {
      const prefix = runHonestPrefix(session, target, program.platform);
      launchInstructions = machine.vcpu.instructions;
      if (prefix.kind === 'ended') {
        outcome = prefix.outcome;
      } else {
        edges = machine.enableEdgeCoverage();
        install(session, book);
        applySchedule(session.platform.scheduler, program);
        outcome = session.finishOutcome();
      }
    } catch (err) {
      return crashedExecution(err, book);
    }
    const { judgement, gpas } = judgeExecution(new AcceptanceOracle(), session.trace.events, outcome, machine, handovers.handovers);
    const execution: Execution = {
      judgement, traceSha256: session.trace.sha256(), traceEvents: session.trace.length,
      instructions: machine.vcpu.instructions - launchInstructions, launchInstructions, vmmExits: book.exits, decisionCoverage: book.coverage,
      callCounts: book.callCounts, gpas, edges: edges ? edges.slice() : undefined, console: '',
    };
    if (options.keepTrace) execution.events = session.trace.events.slice();
    return execution;
  } finally {
    machine.close();
  }
}

/**
 * Launched VMs kept at once, each paused at the target's stage with its snapshot: the launch
 * parts a campaign is working on (its launch-changing corpus entries). A cached VM holds its guest
 * RAM (the target's memory size, mostly untouched) and a snapshot of it.
 */
export const LAUNCH_CACHE_ENTRIES = 4;

/**
 * One launch part's start: a VM launched with it and run honestly to the stage (the prefix of
 * executeFromLaunch, done once), then snapshotted; or, when the guest ended before the stage, that
 * execution itself (the program's decisions never act then, so it is the launch part's alone).
 */
interface LaunchedStart {
  session?: BootSession;
  snapshot?: VmSnapshot;
  /** Handovers the prefix recorded (judged in every execution, as a fresh launch judges them). */
  prefixHandovers: StageHandover[];
  recorder: HandoverRecorder;
  edges?: Uint8Array;
  /** At the pause: instructions, host-work charges and the run's limits (restored relative to the counters). */
  pause: { instructions: bigint; charged: bigint; instructionLimit: bigint; budgetLimit: bigint };
  ended?: Execution;
}

/**
 * Restores `inner`'s snapshot for programs that keep the honest launch. A program that changes the
 * launch starts from a VM launched with its launch part and snapshotted at the stage, kept in a
 * small LRU cache keyed by that launch part: a launch-changing corpus entry is launched once and
 * its mutants that keep its launch part (most of them) restore its snapshot. Each execution is
 * what executeFromLaunch gives for the same program (same trace hash, same verdict): the same
 * launch, the same honest prefix, the whole trace judged, the budget counted from the launch.
 */
export class LaunchAwareExecutor implements Executor {
  readonly target: FuzzTarget;
  readonly #inner: Executor;
  readonly #launched = new Map<string, LaunchedStart>();

  constructor(inner: Executor) {
    this.target = inner.target;
    this.#inner = inner;
  }

  startsFromSnapshot(program: AttackProgram): boolean {
    return !needsFreshLaunch(program) || this.#launched.has(launchKey(program));
  }

  execute(program: AttackProgram, options: ExecuteOptions = {}): Execution {
    if (program.platform !== this.target.platform) throw new Error(`a ${program.platform} attack program cannot run on ${this.target.platform}`);
    if (!needsFreshLaunch(program)) return this.#inner.execute(program, options);
    const key = launchKey(program);
    let start = this.#launched.get(key);
    let launchInstructions = 0n;
    if (start) {
      // Most recently used last: the first entry is the one to evict.
      this.#launched.delete(key);
      this.#launched.set(key, start);
    } else {
      let launched;
      try {
        launched = this.#launch(program);
      } catch (err) {
        return crashedExecution(err, new DecisionBook(program));
      }
      start = launched.start;
      launchInstructions = launched.instructions;
      this.#launched.set(key, start);
      if (this.#launched.size > LAUNCH_CACHE_ENTRIES) {
        const [oldest] = this.#launched.keys();
        this.#evict(oldest!);
      }
    }
    if (start.ended) {
      const e: Execution = { ...start.ended, launchInstructions };
      if (!options.keepTrace) delete e.events;
      return e;
    }
    const session = start.session!;
    const machine = session.platform.machine;
    const vcpu = machine.vcpu;
    session.restore(start.snapshot!);
    machine.resetEdgeCoverage();
    // The same budget left as the fresh launch had at the pause, whatever the counters restore to.
    const p = start.pause;
    vcpu.instructionLimit = vcpu.instructions + (p.instructionLimit - p.instructions);
    vcpu.budgetLimit = vcpu.instructions + vcpu.budgetCharged + (p.budgetLimit - p.instructions - p.charged);
    const startInstructions = vcpu.instructions;
    const book = new DecisionBook(program);
    install(session, book);
    start.recorder.clear();
    applySchedule(session.platform.scheduler, program);
    let outcome: RunOutcome;
    try {
      outcome = session.finishOutcome();
    } catch (err) {
      this.#evict(key);
      return crashedExecution(err, book);
    }
    const handovers = [...start.prefixHandovers, ...start.recorder.handovers];
    const { judgement, gpas } = judgeExecution(new AcceptanceOracle(), session.trace.events, outcome, machine, handovers);
    const traceSha256 = session.trace.deferredSha256();
    const execution: Execution = {
      judgement, get traceSha256() { return traceSha256(); }, traceEvents: session.trace.length,
      instructions: vcpu.instructions - startInstructions, launchInstructions, vmmExits: book.exits, decisionCoverage: book.coverage,
      callCounts: book.callCounts, gpas, edges: start.edges, console: '',
    };
    if (options.keepTrace) execution.events = session.trace.events.slice();
    return execution;
  }

  /** Launches a VM with `program`'s launch part and runs it honestly to the stage (executeFromLaunch's prefix). */
  #launch(program: AttackProgram): { start: LaunchedStart; instructions: bigint } {
    const target = this.target;
    const recorder = new HandoverRecorder();
    const session = BootSession.create(bootConfigFor(target), { keepTrace: true, vmm: launchOverride(program), onStageEntered: recorder.onStage });
    const machine = session.platform.machine;
    try {
      const prefix = runHonestPrefix(session, target, program.platform);
      const vcpu = machine.vcpu;
      const pause = { instructions: vcpu.instructions, charged: vcpu.budgetCharged, instructionLimit: vcpu.instructionLimit, budgetLimit: vcpu.budgetLimit };
      if (prefix.kind === 'ended') {
        // As executeFromLaunch: the program's decisions never act; nothing of this VM is needed again.
        const { judgement, gpas } = judgeExecution(new AcceptanceOracle(), session.trace.events, prefix.outcome, machine, recorder.handovers);
        const ended: Execution = {
          judgement, traceSha256: session.trace.sha256(), traceEvents: session.trace.length, instructions: 0n,
          vmmExits: 0, decisionCoverage: new Set(), callCounts: new Map(), gpas, edges: undefined, console: '', events: session.trace.events.slice(),
        };
        machine.close();
        return { start: { prefixHandovers: [], recorder, pause, ended }, instructions: pause.instructions };
      }
      const prefixHandovers = recorder.handovers.slice();
      const edges = machine.enableEdgeCoverage();
      const snapshot = session.snapshot();
      return { start: { session, snapshot, prefixHandovers, recorder, edges, pause }, instructions: pause.instructions };
    } catch (err) {
      machine.close();
      throw err;
    }
  }

  #evict(key: string): void {
    const start = this.#launched.get(key);
    this.#launched.delete(key);
    start?.session?.platform.machine.close();
  }

  close(): void {
    for (const key of [...this.#launched.keys()]) this.#evict(key);
    this.#inner.close();
  }
}
