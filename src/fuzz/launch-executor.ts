// Executions of programs that change the launch (launch actions, a memory description): the
// campaign's snapshot was taken after an honest launch, so these launch a fresh VM with the
// program's launch hooks, run it honestly to the target's stage (the program's decisions count
// exits from there, as with the snapshot), then under the program to the end. The oracle sees the
// whole trace, launch included. A boot per execution: the mutator adds launch actions rarely.
import { BootSession } from '../boot/boot-session.js';
import { loadBootImages, type BootImages } from '../boot/images.js';
import type { RunOutcome } from '../shared/outcome.js';
import { traceSha256OfEvents } from '../shared/trace.js';
import { DecisionBook } from './adversary.js';
import { launchKey, needsFreshLaunch, type AttackProgram } from './attack-program.js';
import {
  applySchedule, bootConfigFor, crashedExecution, FUZZ_RAM_PAGING, HandoverRecorder, judgeExecution, type ExecuteOptions, type Execution, type Executor, type FuzzTarget,
} from './executor.js';
import { ExecutionStart, installAdversary } from './execution-start.js';
import { launchOverride } from './launch.js';
import { AcceptanceOracle } from './oracle.js';

/** Runs a just-launched VM with no decisions (the honest VMM) up to `target`'s stage, or to its end. */
function runHonestPrefix(session: BootSession, target: FuzzTarget, platform: AttackProgram['platform']) {
  installAdversary(session, new DecisionBook({ platform, decisions: [] }));
  return target.stage === 'all' ? { kind: 'paused' as const } : session.runToStageOrEnd(target.stage);
}

/** Runs `program` from a fresh launch of `target`'s VM. */
export function executeFromLaunch(target: FuzzTarget, program: AttackProgram, options: ExecuteOptions = {}): Execution {
  const book = new DecisionBook(program);
  const handovers = new HandoverRecorder();
  let session: BootSession;
  try {
    session = BootSession.create(bootConfigFor(target), { keepTrace: true, vmm: launchOverride(program), onStageEntered: handovers.onStage, ramPaging: FUZZ_RAM_PAGING });
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
        installAdversary(session, book);
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
    const slots = machine.edgeSlots;
    if (edges && slots) execution.edgeSlots = slots.slice(0, slots[0]! + 1);
    if (options.keepTrace) execution.events = session.trace.events.slice();
    return execution;
  } finally {
    machine.close();
  }
}

/** `ended`'s execution as one that paid `launchInstructions`; its hash read from `ended` when read (not copied). */
function endedExecution(ended: Execution, launchInstructions: bigint, keepTrace: boolean): Execution {
  const e: Execution = {
    judgement: ended.judgement, get traceSha256() { return ended.traceSha256; }, traceEvents: ended.traceEvents, instructions: ended.instructions,
    launchInstructions, vmmExits: ended.vmmExits, decisionCoverage: ended.decisionCoverage, callCounts: ended.callCounts, gpas: ended.gpas,
    edges: ended.edges, console: ended.console,
  };
  if (keepTrace && ended.events) e.events = ended.events;
  return e;
}

/**
 * Launched VMs kept at once, each paused at the target's stage with its snapshot: the launch
 * parts a campaign is working on (its launch-changing corpus entries). A cached VM holds its guest
 * RAM (the target's memory size, mostly untouched) and a snapshot of it.
 */
export const LAUNCH_CACHE_ENTRIES = 4;

/**
 * One launch part's start: a VM launched with it and run honestly to the stage (the prefix of
 * executeFromLaunch, done once), observed and snapshotted there; or, when the guest ended before
 * the stage, that execution itself (the program's decisions never act then, so it is the launch
 * part's alone).
 */
type LaunchedStart = { start: ExecutionStart; ended?: undefined } | { start?: undefined; ended: Execution };

/**
 * Restores `inner`'s snapshot for programs that keep the honest launch. A program that changes the
 * launch starts from a VM launched with its launch part and snapshotted at the stage, kept in a
 * small LRU cache keyed by that launch part: a launch-changing corpus entry is launched once and
 * its mutants that keep its launch part (most of them) restore its snapshot. Each execution is
 * the same whether its launch part was just launched or restored (same trace hash, same verdict):
 * the same launch, the same honest prefix, the whole trace judged (the prefix once, when it is
 * launched), the budget counted from the launch, and every execution begins with the restore.
 * executeFromLaunch runs on from the pause without that restore: for most programs the same
 * execution, but not for all (an SNP program with host RMPUPDATEs at the first exits after the
 * pause was seen to differ; the emulator's TLB, flushed by a restore, is the suspected cause).
 */
export class LaunchAwareExecutor implements Executor {
  readonly target: FuzzTarget;
  readonly #inner: Executor;
  readonly #launched = new Map<string, LaunchedStart>();
  /** The target's images, read and parsed at the first launch: every launch starts from them (launch parts edit copies). */
  #images: BootImages | undefined;

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
    let launched = this.#launched.get(key);
    let launchInstructions = 0n;
    if (launched) {
      // Most recently used last: the first entry is the one to evict.
      this.#launched.delete(key);
      this.#launched.set(key, launched);
    } else {
      try {
        ({ launched, instructions: launchInstructions } = this.#launch(program));
      } catch (err) {
        return crashedExecution(err, new DecisionBook(program));
      }
      this.#launched.set(key, launched);
      if (this.#launched.size > LAUNCH_CACHE_ENTRIES) {
        const [oldest] = this.#launched.keys();
        this.#evict(oldest!);
      }
    }
    if (launched.ended) return endedExecution(launched.ended, launchInstructions, options.keepTrace === true);
    const execution = launched.start.execute(program, options, launchInstructions);
    if (launched.start.broken) this.#evict(key);
    return execution;
  }

  /** Launches a VM with `program`'s launch part and runs it honestly to the stage (executeFromLaunch's prefix). */
  #launch(program: AttackProgram): { launched: LaunchedStart; instructions: bigint } {
    const target = this.target;
    const recorder = new HandoverRecorder();
    const config = bootConfigFor(target);
    this.#images ??= loadBootImages(config);
    const session = BootSession.create(config, {
      keepTrace: true, vmm: launchOverride(program), onStageEntered: recorder.onStage, images: this.#images, ramPaging: FUZZ_RAM_PAGING,
    });
    const machine = session.platform.machine;
    try {
      const prefix = runHonestPrefix(session, target, program.platform);
      const vcpu = machine.vcpu;
      const instructions = vcpu.instructions;
      if (prefix.kind === 'ended') {
        // As executeFromLaunch: the program's decisions never act; nothing of this VM is needed again.
        const { judgement, gpas } = judgeExecution(new AcceptanceOracle(), session.trace.events, prefix.outcome, machine, recorder.handovers);
        // Its trace hash is computed when read (a finding's): the launch kept every event.
        const events = session.trace.events.slice();
        let digest: string | undefined;
        const ended: Execution = {
          judgement, get traceSha256() { return (digest ??= traceSha256OfEvents(events)); }, traceEvents: session.trace.length, instructions: 0n,
          vmmExits: 0, decisionCoverage: new Set(), callCounts: new Map(), gpas, edges: undefined, console: '', events,
        };
        machine.close();
        return { launched: { ended }, instructions };
      }
      // The same budget left as the fresh launch had at the pause, whatever the counters restore to.
      const budget = { instructions: vcpu.instructionLimit - instructions, total: vcpu.budgetLimit - instructions - vcpu.budgetCharged };
      // Evicted, it can no longer run an execution again for its trace hash: the same launch part
      // launched again and its start's first execution give the same one. (Not executeFromLaunch:
      // it runs on from the pause without the restore every cached execution begins with.)
      const traceSha256WhenClosed = (p: AttackProgram) => this.#relaunchedTraceSha256(p);
      return { launched: { start: new ExecutionStart(session, recorder, { budget, prefixGpas: true, traceSha256WhenClosed }) }, instructions };
    } catch (err) {
      machine.close();
      throw err;
    }
  }

  #relaunchedTraceSha256(program: AttackProgram): string {
    const { launched } = this.#launch(program);
    if (launched.ended) return launched.ended.traceSha256;
    try {
      return launched.start.execute(program, { keepTrace: true }).traceSha256;
    } finally {
      launched.start.close();
    }
  }

  #evict(key: string): void {
    const start = this.#launched.get(key);
    this.#launched.delete(key);
    start?.start?.close();
  }

  close(): void {
    for (const key of [...this.#launched.keys()]) this.#evict(key);
    this.#inner.close();
  }
}
