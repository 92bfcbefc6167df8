// The fast executor: boots the guest once, honestly, to the first VMM decision point of the
// target's stage, snapshots the whole VM there (machine, hardware model, VMM, trace, console,
// run loop: BootSession), and restores that snapshot for every execution (execution-start.ts).
// Edge coverage is on for this VM only. The oracle starts each execution from what it observed
// of the honest prefix.
import { BootSession } from '../boot/boot-session.js';
import { DecisionBook } from './adversary.js';
import type { AttackProgram } from './attack-program.js';
import { bootConfigFor, FUZZ_RAM_PAGING, HandoverRecorder, type ExecuteOptions, type Execution, type Executor, type FuzzTarget } from './executor.js';
import { ExecutionStart, installAdversary } from './execution-start.js';

export class StageNotReachedError extends Error {
  override name = 'StageNotReachedError';
}

export class SnapshotExecutor implements Executor {
  readonly target: FuzzTarget;
  readonly #start: ExecutionStart;

  constructor(target: FuzzTarget) {
    this.target = target;
    const recorder = new HandoverRecorder();
    const session = BootSession.create({ ...bootConfigFor(target), maxInstructions: (1n << 62n) }, { keepTrace: true, onStageEntered: recorder.onStage, ramPaging: FUZZ_RAM_PAGING });
    // The prefix runs under the same (so far honest) adversary, so its trace and the oracle's view
    // of it are what a whole boot under the program would give.
    installAdversary(session, new DecisionBook({ platform: target.platform, decisions: [] }));
    if (target.stage !== 'all' && !session.runToStage(target.stage)) {
      session.platform.machine.close();
      throw new StageNotReachedError(`the honest boot did not pause at the ${target.stage} stage (it ended or skipped it)`);
    }
    // Each execution gets the whole per-execution budget from the pause (the prefix ran unbounded).
    const budget = { instructions: target.maxInstructions, total: target.maxInstructions };
    // Closed, it can no longer run an execution again for its trace hash: a new executor gives the same one.
    const traceSha256WhenClosed = (program: AttackProgram) => {
      const again = new SnapshotExecutor(target);
      try {
        return again.execute(program, { keepTrace: true }).traceSha256;
      } finally {
        again.close();
      }
    };
    this.#start = new ExecutionStart(session, recorder, { budget, prefixGpas: false, traceSha256WhenClosed });
  }

  execute(program: AttackProgram, options: ExecuteOptions = {}): Execution {
    if (program.platform !== this.target.platform) throw new Error(`a ${program.platform} attack program cannot run on ${this.target.platform}`);
    return this.#start.execute(program, options);
  }

  close(): void {
    this.#start.close();
  }
}
