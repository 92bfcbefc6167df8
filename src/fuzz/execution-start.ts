// Where executions start: a VM paused at the target's stage and snapshotted there, with the
// oracle as it stood after observing the run up to the pause. Both the campaign's honest start
// (snapshot-executor.ts) and a kept launch of a launch-changing program (launch-executor.ts) are
// one of these, and every execution from either runs the same sequence: restore the whole VM,
// give it the budget it had at the pause, install the program's adversary, run to the end with a
// fork of the paused oracle observing the events as they are recorded, and judge. The run before
// the pause is observed once, when the start is taken, not again in every execution (issue 10).
//
// Executions neither keep nor hash their trace events (trace retention 'none'): the oracle has
// seen them, and the hash is wanted for the few executions that become findings. Reading an
// execution's traceSha256 runs it again from the snapshot with the trace hashing (executions are
// deterministic: the same events, so the hash the execution would have had). Building and keeping
// every event to walk it after the run was a tenth of a low-exit execution, and most of its garbage.
import type { BootSession } from '../boot/boot-session.js';
import type { VmSnapshot } from '../vmm/run-vm.js';
import { DecisionBook, snpAdversaryPolicyOf, tdxAdversaryPolicyOf, type BookHolder } from './adversary.js';
import type { AttackProgram } from './attack-program.js';
import {
  applySchedule, crashedExecution, ExecutionObserver, observeEvents, type ExecuteOptions, type Execution, type HandoverRecorder,
} from './executor.js';
import { ExecutionMemo } from './execution-memo.js';
import { AcceptanceOracle } from './oracle.js';
import type { RunOutcome } from '../shared/outcome.js';
import type { TraceRetention } from '../shared/trace.js';

/** Hands the VM's decisions to `book`'s adversary (the honest VMM where it has no decision), for one run. */
export function installAdversary(session: BootSession, book: DecisionBook): void {
  new AdversarySeat(session, book).install(book);
}

/**
 * The adversary of one VM, made once and handed each execution's book: installing it for an
 * execution sets the book and puts the policy in charge (a restore puts back the one in charge at
 * the snapshot). An execution start keeps one, so executions make no new policy and probe each.
 */
class AdversarySeat {
  readonly #holder: BookHolder;
  readonly #install: () => void;
  readonly #probe: (gpa: bigint) => ReturnType<BootSession['platform']['pageState']>;

  constructor(session: BootSession, first: DecisionBook) {
    this.#holder = { book: first };
    this.#probe = (gpa) => session.platform.pageState(gpa);
    const vmm = session.vmm;
    if (vmm.kind === 'tdx') {
      const policy = tdxAdversaryPolicyOf(this.#holder, vmm.honest);
      this.#install = () => { vmm.driver.policy = policy; };
    } else {
      const policy = snpAdversaryPolicyOf(this.#holder, vmm.honest);
      this.#install = () => { vmm.driver.policy = policy; };
    }
  }

  install(book: DecisionBook): void {
    book.probe = this.#probe;
    this.#holder.book = book;
    this.#install();
  }
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
  /**
   * The trace hash of `program`'s execution once this start is closed (and cannot run it again):
   * from the same start taken again (a new executor, or the same launch part launched again).
   * Absent: reading it then throws.
   */
  traceSha256WhenClosed?: (program: AttackProgram) => string;
}

/** What ran: the outcome (undefined: the run threw `error`), the adversary's book and the observer that saw the events. */
interface Run {
  outcome: RunOutcome | undefined;
  error?: unknown;
  book: DecisionBook;
  observer: ExecutionObserver;
  startInstructions: bigint;
}

export class ExecutionStart {
  readonly session: BootSession;
  readonly #snapshot: VmSnapshot;
  readonly #recorder: HandoverRecorder;
  readonly #oracle: AcceptanceOracle;
  readonly #gpas: readonly bigint[];
  readonly #edges: Uint8Array;
  readonly #edgeSlots: Uint32Array | undefined;
  readonly #budget: BudgetLeft;
  readonly #traceSha256WhenClosed: ((program: AttackProgram) => string) | undefined;
  #seat: AdversarySeat | undefined;
  /** The runs from this start so far, to answer the programs that would only repeat one (execution-memo.ts). */
  readonly #memo = new ExecutionMemo();
  /** The consultations of the run being recorded in the memo (one array, emptied for each run). */
  readonly #consultations: unknown[] = [];
  #closed = false;
  /** The last execution threw out of the run: the VM may be in no state to restore from. */
  broken = false;

  /**
   * Takes the start where `session` is paused: observes its trace so far (kept: the session keeps
   * its trace until here) and the stage handovers `recorder` captured (its onStage is the
   * session's onStageEntered), turns edge coverage on and snapshots the whole VM.
   */
  constructor(session: BootSession, recorder: HandoverRecorder, options: StartOptions) {
    this.session = session;
    this.#recorder = recorder;
    this.#budget = options.budget;
    this.#traceSha256WhenClosed = options.traceSha256WhenClosed;
    const observer = new ExecutionObserver(new AcceptanceOracle());
    observeEvents(observer, session.trace.events, recorder.handovers);
    this.#oracle = observer.oracle;
    this.#gpas = options.prefixGpas ? [...observer.gpas] : [];
    const machine = session.platform.machine;
    recorder.clear();
    this.#edges = machine.enableEdgeCoverage();
    this.#edgeSlots = machine.edgeSlots;
    this.#snapshot = session.snapshot();
  }

  /** Runs `program` from the start; `launchInstructions`: what launching this start cost, if this execution paid for it. */
  execute(program: AttackProgram, options: ExecuteOptions = {}, launchInstructions = 0n): Execution {
    // A kept trace is this run's own; a vCPU schedule is a decision the memo does not follow.
    const memo = options.keepTrace || program.schedule ? undefined : this.#memo;
    const book = new DecisionBook(program);
    const known = memo?.find(program, book);
    if (known) return memo!.execution(known, launchInstructions);
    if (memo) {
      book.consultations = this.#consultations;
      book.consultations.length = 0;
    }
    const run = this.#run(program, options.keepTrace ? 'keep' : 'none', book);
    if (run.outcome === undefined) return crashedExecution(run.error, run.book);
    const { observer } = run;
    const session = this.session;
    const machine = session.platform.machine;
    const judgement = observer.judge(run.outcome, machine);
    let traceSha256: () => string;
    if (options.keepTrace) {
      // Kept for replay or a finding, whose hash is read: hashed now, before the next restore.
      const digest = session.trace.sha256();
      traceSha256 = () => digest;
    } else {
      let digest: string | undefined;
      traceSha256 = () => (digest ??= this.#traceSha256Of(program));
    }
    const execution: Execution = {
      judgement, get traceSha256() { return traceSha256(); }, traceEvents: session.trace.length,
      instructions: machine.vcpu.instructions - run.startInstructions, launchInstructions, vmmExits: book.exits, decisionCoverage: book.coverage,
      callCounts: book.callCounts, gpas: [...observer.gpas], edges: this.#edges, console: '',
    };
    if (this.#edgeSlots) execution.edgeSlots = this.#edgeSlots;
    // The whole trace (the run before the pause too): its hash is the one reported.
    if (options.keepTrace) execution.events = session.trace.events.slice();
    if (book.consultations) memo!.record(book.consultations, execution);
    return execution;
  }

  /** Restores the start and runs `program` to the end, the trace keeping, hashing or only showing its events. */
  #run(program: AttackProgram, retention: TraceRetention, book = new DecisionBook(program)): Run {
    const session = this.session;
    const machine = session.platform.machine;
    const vcpu = machine.vcpu;
    const trace = session.trace;
    session.restore(this.#snapshot);
    machine.resetEdgeCoverage();
    // Counters as restored (host-work charges may not be part of the snapshot): the budget is what was left at the pause.
    vcpu.instructionLimit = vcpu.instructions + this.#budget.instructions;
    vcpu.budgetLimit = vcpu.instructions + vcpu.budgetCharged + this.#budget.total;
    const startInstructions = vcpu.instructions;
    (this.#seat ??= new AdversarySeat(session, book)).install(book);
    this.#recorder.clear();
    applySchedule(session.platform.scheduler, program);
    const observer = new ExecutionObserver(this.#oracle.fork(), this.#gpas);
    trace.retention = retention;
    trace.observer = observer;
    this.#recorder.observer = observer;
    try {
      return { outcome: session.finishOutcome(), book, observer, startInstructions };
    } catch (error) {
      this.broken = true;
      return { outcome: undefined, error, book, observer, startInstructions };
    } finally {
      trace.observer = undefined;
      this.#recorder.observer = undefined;
    }
  }

  /** `program`'s execution again, hashing its trace: the hash that execution had. */
  #traceSha256Of(program: AttackProgram): string {
    if (this.#closed) {
      if (this.#traceSha256WhenClosed) return this.#traceSha256WhenClosed(program);
      throw new Error('the executor was closed before this execution\'s trace hash was read (it is computed by running the execution again)');
    }
    const run = this.#run(program, 'hash');
    if (run.outcome === undefined) throw run.error;
    return this.session.trace.sha256();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.session.platform.machine.close();
  }
}
