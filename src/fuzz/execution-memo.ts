// Executions that are known before they run. From one execution start a run is a pure function of
// what the adversary's book gives at each consultation (an exit's host actions, a decision point's
// answer): the guest, the hardware model and the honest VMM do the same thing for the same
// answers (the design every execution's trace hash already rests on: it is computed by running the
// execution again). So the runs of one start form a tree, branching where two programs answered a
// consultation differently, and a program whose book gives, along one recorded path, what that
// run was given, is that run again: its execution is known without running it. Many mutants are:
// a decision for an occurrence the guest never reaches, a host action past the last exit, a
// change to a decision that never fires (over a quarter of a 6,000-execution TDX campaign's
// executions and ~15% of its CPU time; a fifth and ~12% on SNP; issue 10). Like a fork server's, the shortcut changes nothing the
// campaign sees: the same judgement, counts, coverage and trace hash as the run would give.
import { DecisionBook } from './adversary.js';
import { SNP_CALL_POINTS, TDX_CALL_POINTS, type AttackProgram, type CallPoint } from './attack-program.js';
import { EDGE_MAP_BYTES } from '../cpu/machine.js';
import type { Execution } from './executor.js';

/**
 * A step is one consultation and what was given there, as a number: `given * STEP_KINDS + kind`,
 * the kind being 0 for an exit's host actions, 1 + the index of a decision point for an answer,
 * and `given` 0 where the program decided nothing (no actions, the honest answer), else a number
 * for what it gave (ExecutionMemo#stepOf). Walking a recorded path then costs no strings.
 */
const CALL_POINTS: readonly CallPoint[] = [...TDX_CALL_POINTS, ...SNP_CALL_POINTS];
const KIND_OF_POINT = new Map<CallPoint, number>(CALL_POINTS.map((point, i) => [point, i + 1]));
const EXIT_KIND = 0;
const STEP_KINDS = 64;
if (CALL_POINTS.length >= STEP_KINDS) throw new Error('execution-memo: more decision points than step kinds');

/**
 * Recorded runs kept per start before the tree is dropped and built again from the runs that
 * follow (~4 KiB each: the path after its branch point, the edges hit, the execution's sets).
 */
export const MAX_RECORDED_RUNS = 4096;

/**
 * One recorded run's end: its execution, and the edge slots it hit then their counts,
 * `[n, slot1, …, slotn, count1, …, countn]` (the live edge map and slot list are the next run's).
 */
interface RecordedRun {
  execution: Execution;
  edges: Uint32Array;
}

/**
 * A node of the tree: the consultations (step ids) every run through it made in a row, then either
 * the run's end or the branches at the next consultation, keyed by what was given there.
 */
interface PathNode {
  steps: number[];
  branches: Map<number, PathNode> | undefined;
  /** The kind of consultation the branches start with (the runs were the same up to it, so all make the same one). */
  branchKind: number;
  run: RecordedRun | undefined;
}

const emptyNode = (): PathNode => ({ steps: [], branches: undefined, branchKind: 0, run: undefined });
const leaf = (steps: number[], run: RecordedRun): PathNode => ({ steps, branches: undefined, branchKind: 0, run });

/**
 * Canonical text of what a book gave (an answer, or an exit's list of host actions): equal texts,
 * equal values. BigInts and undefined get a form no attack-program field has.
 */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? { '\u0000bigint': v.toString() } : v === undefined ? { '\u0000undefined': 0 } : v));
}

export class ExecutionMemo {
  #root = emptyNode();
  #runs = 0;
  /** Canonical `kind|given` → its number (#stepOf). */
  #givens = new Map<string, number>();
  /** Per step kind, what was given (the program's own objects) → its number. */
  #givenIds: WeakMap<object, number>[] = [];
  /** Calls of each decision point (and exits) so far in a walk, and which of them the program decides anything at. */
  readonly #seen = new Uint32Array(STEP_KINDS);
  readonly #decided = new Uint8Array(STEP_KINDS);
  /** The steps of the run being recorded (the tree keeps copies of the parts it needs). */
  readonly #path: number[] = [];
  /** The last #stepOf asked for, and its answer. */
  #lastGiven: object | undefined;
  #lastStep = -1;
  /** The edge map returned with known executions, and the slots the last one set. */
  #edges: Uint8Array | undefined;
  #edgesSet: Uint32Array | undefined;
  /** Runs that did not fit the tree (a run that is not a pure function of its consultations): the memo is off. */
  conflicts = 0;

  /** The execution `program` would repeat, when its book gives what one recorded run was given at each of its consultations. */
  find(program: AttackProgram, book = new DecisionBook(program)): RecordedRun | undefined {
    if (this.conflicts > 0 || this.#runs === 0) return undefined;
    // The kinds of consultation the program decides anything at: at the others every step must be the default one.
    const decided = this.#decided;
    decided.fill(0);
    for (const d of program.decisions) decided[d.at === 'exit' ? EXIT_KIND : KIND_OF_POINT.get(d.point)!] = 1;
    const seen = this.#seen;
    seen.fill(0);
    // What `book` gives at the next consultation of `kind` (the next exit's or the next call's), as a step.
    const consult = (kind: number): number => {
      if (decided[kind] === 0) return kind;
      const n = seen[kind]!++;
      const given = kind === EXIT_KIND ? book.actionsAt(n) : book.decisionAt(CALL_POINTS[kind - 1]!, n)?.answer;
      return given === undefined || (kind === EXIT_KIND && (given as readonly unknown[]).length === 0) ? kind : this.#stepOf(kind, given);
    };
    let node = this.#root;
    for (;;) {
      const steps = node.steps;
      for (let i = 0; i < steps.length; i++) {
        const step = steps[i]!;
        const kind = step % STEP_KINDS;
        if (decided[kind] === 0 ? step !== kind : consult(kind) !== step) return undefined;
      }
      if (node.run) return node.run;
      const branches = node.branches;
      if (!branches) return undefined;
      const next = branches.get(consult(node.branchKind));
      if (!next) return undefined;
      node = next;
    }
  }

  /**
   * Records a run: `consultations` as its book appended them (DecisionBook.consultations), and its
   * execution (whose edge map and slot list are copied: they are the next run's).
   */
  record(consultations: readonly unknown[], execution: Execution): void {
    if (this.conflicts > 0 || !execution.edges || !execution.edgeSlots) return;
    if (this.#runs >= MAX_RECORDED_RUNS) this.#clear();
    const path = this.#path;
    path.length = 0;
    for (let i = 0; i < consultations.length; i += 2) {
      const point = consultations[i] as CallPoint | null;
      const kind = point === null ? EXIT_KIND : KIND_OF_POINT.get(point)!;
      const given = consultations[i + 1] as object | undefined;
      path.push(given === undefined ? kind : this.#stepOf(kind, given));
    }
    const n = execution.edgeSlots[0]!;
    const edges = new Uint32Array(2 * n + 1);
    edges.set(execution.edgeSlots.subarray(0, n + 1));
    for (let k = 1; k <= n; k++) edges[n + k] = execution.edges[edges[k]!]!;
    if (this.#insert(path, { execution, edges })) this.#runs++;
  }

  /** `run`'s execution again, as the run would return it (`launchInstructions`: what this one paid for its start). */
  execution(run: RecordedRun, launchInstructions: bigint): Execution {
    const e = run.execution;
    const map = (this.#edges ??= new Uint8Array(EDGE_MAP_BYTES));
    const last = this.#edgesSet;
    if (last) for (let k = 1, n = last[0]!; k <= n; k++) map[last[k]!] = 0;
    const edges = run.edges;
    for (let k = 1, n = edges[0]!; k <= n; k++) map[edges[k]!] = edges[n + k]!;
    this.#edgesSet = edges;
    return {
      judgement: e.judgement, get traceSha256() { return e.traceSha256; }, traceEvents: e.traceEvents, instructions: e.instructions,
      launchInstructions, vmmExits: e.vmmExits, decisionCoverage: e.decisionCoverage, callCounts: e.callCounts, gpas: e.gpas.slice(),
      edges: map, edgeSlots: edges, console: e.console, recalled: true,
    };
  }

  /** The step of a consultation of `kind` where the program gave `given` (equal canonical texts, the same step). */
  #stepOf(kind: number, given: object): number {
    // A decision that repeats gives the same answer call after call (a livelock's hundreds).
    if (given === this.#lastGiven && kind === this.#lastStep % STEP_KINDS) return this.#lastStep;
    const step = this.#stepOfNew(kind, given);
    this.#lastGiven = given;
    this.#lastStep = step;
    return step;
  }

  #stepOfNew(kind: number, given: object): number {
    const ids = (this.#givenIds[kind] ??= new WeakMap());
    // An exit's list is the book's own, made per program; its one action (the usual case) is the program's, shared with its mutants.
    const key = kind === EXIT_KIND && (given as readonly object[]).length === 1 ? (given as readonly object[])[0]! : given;
    let id = ids.get(key);
    if (id === undefined) {
      const text = `${kind}|${canonical(given)}`;
      id = this.#givens.get(text);
      if (id === undefined) {
        id = this.#givens.size + 1;
        this.#givens.set(text, id);
      }
      ids.set(key, id);
    }
    return id * STEP_KINDS + kind;
  }

  /** Adds `path`, ending in `run`; false when it was there already or does not fit (then the memo turns off). */
  #insert(path: readonly number[], run: RecordedRun): boolean {
    if (this.#runs === 0) {
      this.#root = leaf(path.slice(), run);
      return true;
    }
    let node = this.#root;
    let i = 0;
    for (;;) {
      const steps = node.steps;
      let j = 0;
      while (j < steps.length && i < path.length && steps[j] === path[i]) {
        j++;
        i++;
      }
      if (j < steps.length) {
        // One run ended where another made one more consultation, or they made different ones: not a function of them.
        if (i === path.length || !this.#sameConsultation(steps[j]!, path[i]!)) return this.#conflict();
        // The runs part here: the node keeps the common steps and branches.
        const rest: PathNode = { steps: steps.slice(j + 1), branches: node.branches, branchKind: node.branchKind, run: node.run };
        node.steps = steps.slice(0, j);
        node.branches = new Map([[steps[j]!, rest], [path[i]!, leaf(path.slice(i + 1), run)]]);
        node.branchKind = steps[j]! % STEP_KINDS;
        node.run = undefined;
        return true;
      }
      if (i === path.length) {
        if (node.run) return false; // the same run, recorded before
        return this.#conflict();
      }
      if (node.run) return this.#conflict();
      const branches = node.branches!;
      const next = branches.get(path[i]!);
      if (!next) {
        if (path[i]! % STEP_KINDS !== node.branchKind) return this.#conflict();
        branches.set(path[i]!, leaf(path.slice(i + 1), run));
        return true;
      }
      node = next;
      i++;
    }
  }

  /** Whether two steps consult the same thing (what was given may differ). */
  #sameConsultation(a: number, b: number): boolean {
    return a % STEP_KINDS === b % STEP_KINDS;
  }

  #conflict(): false {
    this.conflicts++;
    this.#clear();
    return false;
  }

  #clear(): void {
    this.#root = emptyNode();
    this.#runs = 0;
    this.#givens = new Map();
    this.#givenIds = [];
    this.#lastGiven = undefined;
  }
}
