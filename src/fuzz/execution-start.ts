// Where executions start: a VM paused at the target's stage and snapshotted there, with the
// oracle as it stood after observing the run up to the pause. Both the campaign's honest start
// (snapshot-executor.ts) and a kept launch of a launch-changing program (launch-executor.ts) are
// one of these, and every execution from either runs the same sequence: restore the whole VM,
// give it the budget it had at the pause, install the program's adversary, run to the end, and
// judge from a fork of the paused oracle. The run before the pause is observed once, when the
// start is taken, not again in every execution (issue 10).
import type { BootSession } from '../boot/boot-session.js';
import type { VmSnapshot } from '../vmm/run-vm.js';
import { DecisionBook, snpAdversaryPolicy, tdxAdversaryPolicy } from './adversary.js';
import type { AttackProgram } from './attack-program.js';
import {
  applySchedule, crashedExecution, judgeExecution, observeEvents, type ExecuteOptions, type Execution, type HandoverRecorder,
} from './executor.js';
import { AcceptanceOracle } from './oracle.js';

/** Hands the VM's decisions to `book`'s adversary (the honest VMM where it has no decision). */
export function installAdversary(session: BootSession, book: DecisionBook): void {
  book.probe = (gpa) => session.platform.pageState(gpa);
  const vmm = session.vmm;
  if (vmm.kind === 'tdx') vmm.driver.policy = tdxAdversaryPolicy(book, vmm.honest);
  else vmm.driver.policy = snpAdversaryPolicy(book, vmm.honest);
}

/** What one execution may still spend from the pause: guest instructions, and instructions plus host-work charges. */
export interface BudgetLeft {
  instructions: bigint;
  total: bigint;
}

export interface StartOptions {
  budget: BudgetLeft;
  /**
   * Whether the GPAs the run before the pause named are offered to the mutator too (a launch of
   * the program's own, as a fresh launch judges its whole trace), or only those of the execution
   * (the honest start, shared by every program).
   */
  prefixGpas: boolean;
}

export class ExecutionStart {
  readonly session: BootSession;
  readonly #snapshot: VmSnapshot;
  readonly #recorder: HandoverRecorder;
  readonly #oracle: AcceptanceOracle;
  readonly #gpas: readonly bigint[];
  readonly #edges: Uint8Array;
  readonly #budget: BudgetLeft;
  /** The last execution threw out of the run: the VM may be in no state to restore from. */
  broken = false;

  /**
   * Takes the start where `session` is paused: observes its trace so far and the stage handovers
   * `recorder` captured (its onStage is the session's onStageEntered), turns edge coverage on and
   * snapshots the whole VM.
   */
  constructor(session: BootSession, recorder: HandoverRecorder, options: StartOptions) {
    this.session = session;
    this.#recorder = recorder;
    this.#budget = options.budget;
    const oracle = new AcceptanceOracle();
    const gpas = new Set<bigint>();
    observeEvents(oracle, session.trace.events, recorder.handovers, 0, gpas);
    this.#oracle = oracle;
    this.#gpas = options.prefixGpas ? [...gpas] : [];
    const machine = session.platform.machine;
    recorder.clear();
    this.#edges = machine.enableEdgeCoverage();
    this.#snapshot = session.snapshot();
  }

  /** Runs `program` from the start; `launchInstructions`: what launching this start cost, if this execution paid for it. */
  execute(program: AttackProgram, options: ExecuteOptions = {}, launchInstructions = 0n): Execution {
    const session = this.session;
    const machine = session.platform.machine;
    const vcpu = machine.vcpu;
    session.restore(this.#snapshot);
    machine.resetEdgeCoverage();
    // Counters as restored (host-work charges may not be part of the snapshot): the budget is what was left at the pause.
    vcpu.instructionLimit = vcpu.instructions + this.#budget.instructions;
    vcpu.budgetLimit = vcpu.instructions + vcpu.budgetCharged + this.#budget.total;
    const startInstructions = vcpu.instructions;
    const book = new DecisionBook(program);
    installAdversary(session, book);
    this.#recorder.clear();
    applySchedule(session.platform.scheduler, program);
    const firstEvent = session.trace.events.length;
    let outcome;
    try {
      outcome = session.finishOutcome();
    } catch (err) {
      this.broken = true;
      return crashedExecution(err, book);
    }
    const { judgement, gpas } = judgeExecution(this.#oracle.fork(), session.trace.events, outcome, machine, this.#recorder.handovers, firstEvent, this.#gpas);
    const traceSha256 = session.trace.deferredSha256();
    const execution: Execution = {
      judgement, get traceSha256() { return traceSha256(); }, traceEvents: session.trace.length,
      instructions: vcpu.instructions - startInstructions, launchInstructions, vmmExits: book.exits, decisionCoverage: book.coverage,
      callCounts: book.callCounts, gpas, edges: this.#edges, console: '',
    };
    // The whole trace (the run before the pause too): its hash is the one reported.
    if (options.keepTrace) execution.events = session.trace.events.slice();
    return execution;
  }

  close(): void {
    this.session.platform.machine.close();
  }
}
