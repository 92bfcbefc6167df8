// The fast executor: boots the guest once, honestly, to the first VMM decision point of the
// target's stage, snapshots the whole VM there (machine, hardware model, VMM, trace, console,
// run loop: BootSession), and restores that snapshot for every execution. Edge coverage is on for
// this VM only. The oracle starts each execution from what the honest prefix accepted.
import { BootSession } from '../boot/boot-session.js';
import type { VmSnapshot } from '../vmm/run-vm.js';
import { DecisionBook, snpAdversaryPolicy, tdxAdversaryPolicy } from './adversary.js';
import type { AttackProgram } from './attack-program.js';
import {
  applySchedule, bootConfigFor, crashedExecution, HandoverRecorder, judgeExecution, type ExecuteOptions, type Execution, type Executor, type FuzzTarget,
} from './executor.js';
import { AcceptanceOracle, LifetimeMap } from './oracle.js';

export class StageNotReachedError extends Error {
  override name = 'StageNotReachedError';
}

export class SnapshotExecutor implements Executor {
  readonly target: FuzzTarget;
  readonly #session: BootSession;
  readonly #start: VmSnapshot;
  readonly #prefixLifetimes: LifetimeMap;
  readonly #edges: Uint8Array;
  /** Stage handovers of the current execution (a stage entered after the snapshot). */
  readonly #handovers = new HandoverRecorder();

  constructor(target: FuzzTarget) {
    this.target = target;
    const session = BootSession.create({ ...bootConfigFor(target), maxInstructions: (1n << 62n) }, { keepTrace: true, onStageEntered: this.#handovers.onStage });
    this.#session = session;
    // The prefix runs under the same (so far honest) adversary, so its trace and the oracle's view
    // of it are what a whole boot under the program would give.
    this.#install(new DecisionBook({ platform: target.platform, decisions: [] }));
    if (target.stage !== 'all' && !session.runToStage(target.stage)) {
      session.platform.machine.close();
      throw new StageNotReachedError(`the honest boot did not pause at the ${target.stage} stage (it ended or skipped it)`);
    }
    const prefix = new AcceptanceOracle();
    for (const e of session.trace.events) prefix.observe(e);
    this.#handovers.clear(); // the honest prefix's own, judged by nobody: the honest stubs' records are exact
    this.#prefixLifetimes = prefix.lifetimes.clone();
    this.#edges = session.platform.machine.enableEdgeCoverage();
    this.#start = session.snapshot();
  }

  execute(program: AttackProgram, options: ExecuteOptions = {}): Execution {
    if (program.platform !== this.target.platform) throw new Error(`a ${program.platform} attack program cannot run on ${this.target.platform}`);
    const session = this.#session;
    const machine = session.platform.machine;
    session.restore(this.#start);
    machine.resetEdgeCoverage();
    // Counters as restored (host-work charges may not be part of the snapshot): the budget is per execution.
    const vcpu = machine.vcpu;
    vcpu.instructionLimit = vcpu.instructions + this.target.maxInstructions;
    vcpu.budgetLimit = vcpu.instructions + vcpu.budgetCharged + this.target.maxInstructions;
    const startInstructions = vcpu.instructions;
    const book = new DecisionBook(program);
    this.#install(book);
    this.#handovers.clear();
    applySchedule(session.platform.scheduler, program);
    const firstEvent = session.trace.events.length;
    let outcome;
    try {
      outcome = session.finishOutcome();
    } catch (err) {
      return crashedExecution(err, book);
    }
    const { judgement, gpas } = judgeExecution(
      new AcceptanceOracle(this.#prefixLifetimes.clone()), session.trace.events, outcome, machine, this.#handovers.handovers, firstEvent,
    );
    const traceSha256 = session.trace.deferredSha256();
    const execution: Execution = {
      judgement, get traceSha256() { return traceSha256(); }, traceEvents: session.trace.length,
      instructions: vcpu.instructions - startInstructions, vmmExits: book.exits, decisionCoverage: book.coverage,
      callCounts: book.callCounts, gpas, edges: this.#edges, console: '',
    };
    // The whole trace (the honest prefix too): its hash is the one reported.
    if (options.keepTrace) execution.events = session.trace.events.slice();
    return execution;
  }

  #install(book: DecisionBook): void {
    book.probe = (gpa) => this.#session.platform.pageState(gpa);
    const vmm = this.#session.vmm;
    if (vmm.kind === 'tdx') vmm.driver.policy = tdxAdversaryPolicy(book, vmm.honest);
    else vmm.driver.policy = snpAdversaryPolicy(book, vmm.honest);
  }

  close(): void {
    this.#session.platform.machine.close();
  }
}
