// Executions of programs that change the launch (launch actions, a memory description): the
// campaign's snapshot was taken after an honest launch, so these launch a fresh VM with the
// program's launch hooks, run it honestly to the target's stage (the program's decisions count
// exits from there, as with the snapshot), then under the program to the end. The oracle sees the
// whole trace, launch included. A boot per execution: the mutator adds launch actions rarely.
import { BootSession } from '../boot/boot-session.js';
import type { RunOutcome } from '../shared/outcome.js';
import { DecisionBook, snpAdversaryPolicy, tdxAdversaryPolicy } from './adversary.js';
import { needsFreshLaunch, type AttackProgram } from './attack-program.js';
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
    try {
      install(session, new DecisionBook({ platform: program.platform, decisions: [] }));
      const prefix = target.stage === 'all' ? { kind: 'paused' as const } : session.runToStageOrEnd(target.stage);
      if (prefix.kind === 'ended') {
        outcome = prefix.outcome;
      } else {
        edges = machine.enableEdgeCoverage();
        install(session, book);
        applySchedule(session.platform.scheduler, program);
        outcome = session.finish().outcome;
      }
    } catch (err) {
      return crashedExecution(err, book);
    }
    const { judgement, gpas } = judgeExecution(new AcceptanceOracle(), session.trace.events, outcome, machine, handovers.handovers);
    const execution: Execution = {
      judgement, traceSha256: session.trace.sha256(), traceEvents: session.trace.length,
      instructions: machine.vcpu.instructions, vmmExits: book.exits, decisionCoverage: book.coverage,
      callCounts: book.callCounts, gpas, edges: edges ? edges.slice() : undefined, console: '',
    };
    if (options.keepTrace) execution.events = session.trace.events.slice();
    return execution;
  } finally {
    machine.close();
  }
}

/** Restores `inner`'s snapshot for ordinary programs; launches afresh for those that change the launch. */
export class LaunchAwareExecutor implements Executor {
  readonly target: FuzzTarget;
  readonly #inner: Executor;

  constructor(inner: Executor) {
    this.target = inner.target;
    this.#inner = inner;
  }

  execute(program: AttackProgram, options: ExecuteOptions = {}): Execution {
    if (program.platform !== this.target.platform) throw new Error(`a ${program.platform} attack program cannot run on ${this.target.platform}`);
    return needsFreshLaunch(program) ? executeFromLaunch(this.target, program, options) : this.#inner.execute(program, options);
  }

  close(): void {
    this.#inner.close();
  }
}
