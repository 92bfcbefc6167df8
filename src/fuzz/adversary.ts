// Turns an attack program into a hostile VMM: a VMM policy that answers honestly except where the
// program says otherwise, and that takes the program's host actions when the guest exits. It
// acts only through what the VMM is given (the SEAMCALL host / SNP host interface, its answers,
// its own EPT/NPT): never through the machine or private memory.
import { gpaLevel, type SeamcallHost } from '../platform/tdx/seamcall.js';
import type { SnpVmmHandle } from '../platform/snp/vmm-handle.js';
import type { SeptLevel } from '../platform/tdx/sept-states.js';
import { Sept } from '../platform/tdx/sept.js';
import { TdxStatus } from '../platform/tdx/status.js';
import { tdxSharedBit } from '../platform/tdx/td-module.js';
import type { SeptMirror } from '../vmm/tdx/sept-mirror.js';
import type { SnpVmExit } from '../platform/snp/snp-cpu.js';
import { decodeGhcbMsr, ghcbMsr, GHCB_INFO, PSC_OP, REGISTER_GHCB_REFUSED_GFN } from '../platform/snp/ghcb-msr.js';
import type { HostMemory } from '../platform/host-memory.js';
import { decodePscEntryWords, GHCB_OFFSET, PSC_MAX_ENTRIES, pscEntryAddress, SVM_EXIT } from '../platform/snp/ghcb-page.js';
import { PAGE_2M, PAGE_4K } from '../platform/snp/rmp.js';
import { governingLeafEnd, type PageState } from '../platform/platform.js';
import type { RunOutcome } from '../shared/outcome.js';
import type { TraceValue } from '../shared/trace.js';
import type { SnpVmmPolicy, VmmAnswer } from '../vmm/snp/policy.js';
import {
  augRange, convertRange, ensureSeptLevels, honestTdxPolicy, removePrivateRange, RESUME, type EptViolationExit, type TdxVmmPolicy, type VmcallDecision,
  type VmcallExit, type VmmAction, type VmmContext,
} from '../vmm/tdx/honest-vmm.js';
import { SNP_CALL_POINTS, TDX_CALL_POINTS, type Answer, type AttackProgram, type CallPoint, type HostAction, type SnpCallPoint, type TdxCallPoint } from './attack-program.js';

const stopByAdversary = (point: CallPoint): RunOutcome => ({ outcome: 'vmm-error', reason: `the VMM stopped the guest at ${point} (attack program)` });

/**
 * The same page-state request this many times in a row (no other exit between) ends the
 * execution as out of budget: the fuzzer's livelock guard, not a VMM decision. A guest with a
 * bound of its own gives up long before (the honest stubs after 3 stalls); one without would
 * loop for as long as the VMM keeps answering, so waiting for the instruction budget only costs
 * time. The oracle reports such a run as a liveness finding.
 */
export const LIVELOCK_REQUESTS = 256;

/** A page-state change the guest asked for, as the oracle checks it against the hardware. */
export interface RequestedChange {
  gpa: bigint;
  bytes: bigint;
  to: 'shared' | 'private';
}

/** Pages the harness samples per refused change (a request covers at most a few MiB in these stubs). */
const MAX_PROBED_PAGES = 4096n;
/**
 * Exits for the guest's output: TDX Instruction.IO and the vendor-specific TDVMCALLs (the stubs'
 * batched console is the only one they make), SNP GHCB IOIO. What follows them shows what the
 * guest does next.
 */
const OUTPUT_POINTS: ReadonlySet<CallPoint> = new Set<CallPoint>(['tdx.instructionIo', 'tdx.otherVmcall', 'snp.ghcb.ioio']);

/** Most exits have no host action due. */
const NO_ACTIONS: readonly HostAction[] = Object.freeze([]);

/** Which decision applies when: indexes an attack program for the run loop. */
export class DecisionBook {
  /** Each call decision with its coverage key (answerKey), built here once, not on every exit. */
  readonly #calls = new Map<CallPoint, { from: number; to: number; answer: Answer; coverageKey: string }[]>();
  readonly #actions = new Map<number, HostAction[]>();
  readonly #seen = new Map<CallPoint, number>();
  /** Exits to the VMM so far in this execution. */
  exits = 0;
  /** Decision coverage: decision point × choice (and host action × result) keys this execution reached. */
  readonly coverage = new Set<string>();
  /** SNP replays: page contents (ciphertext, as the host reads them) the VMM saved, by slot. */
  readonly captured = new Map<number, Uint8Array>();
  /**
   * The harness's view of the hardware (never the VMM's): when the VMM answers a page-state
   * request with a failure, the adversary records whether the hardware nevertheless holds the
   * pages in the state asked for, so the oracle can tell a guest that carries on after a real
   * failure. Set by the executor; without it nothing is recorded.
   */
  probe: ((gpa: bigint) => PageState) | undefined;
  /**
   * When set, every consultation is appended to it as a pair: an exit's host actions (beginExit)
   * as `null, actions`, a decision point's answer (answerFor) as `point, answer`, with undefined
   * where the program decides nothing (no actions, the honest answer). What the book gave at each
   * consultation is all a program decides about a run (execution-memo.ts).
   */
  consultations: unknown[] | undefined;
  #requestKey = '';
  #requestRun = 0;
  #requestThisExit = false;
  /** A change was refused and not made: the guest's next exit tells the oracle whether it stopped. */
  #awaitingNextExit = false;

  constructor(program: AttackProgram) {
    for (const d of program.decisions) {
      if (d.at === 'call') {
        const list = this.#calls.get(d.point) ?? [];
        list.push({ from: d.occurrence, to: d.occurrence + (d.repeat ?? 1), answer: d.answer, coverageKey: answerKey(d.point, d.answer) });
        this.#calls.set(d.point, list);
      } else {
        const list = this.#actions.get(d.exitIndex) ?? [];
        list.push(d.action);
        this.#actions.set(d.exitIndex, list);
      }
    }
  }

  /** A new exit reached the VMM: the host actions due before it is handled. */
  beginExit(): readonly HostAction[] {
    if (!this.#requestThisExit) this.#requestRun = 0;
    this.#requestThisExit = false;
    const actions = this.actionsAt(this.exits++);
    this.consultations?.push(null, actions === NO_ACTIONS ? undefined : actions);
    return actions;
  }

  /** The host actions the program takes at exit `index` (counting nothing). */
  actionsAt(index: number): readonly HostAction[] {
    return this.#actions.get(index) ?? NO_ACTIONS;
  }

  /** The guest's page-state request of this exit; true when the livelock guard must end the run. */
  noteRequest(key: string): boolean {
    this.#requestThisExit = true;
    this.#requestRun = key === this.#requestKey ? this.#requestRun + 1 : 1;
    this.#requestKey = key;
    return this.#requestRun >= LIVELOCK_REQUESTS;
  }

  get livelockOutcome(): RunOutcome {
    return { outcome: 'budget', reason: `livelock guard: the guest made the same page-state request ${this.#requestRun} times in a row (${this.#requestKey})` };
  }

  /**
   * After the VMM answered `changes` with a failure: records, for the oracle, whether the
   * hardware holds every page in the state the guest asked for anyway (then nothing diverged).
   */
  noteRefusedChanges(trace: { record(source: 'vmm', type: string, fields: Record<string, TraceValue>): unknown }, changes: RequestedChange[]): void {
    const probe = this.probe;
    if (!probe) return;
    for (const c of changes) {
      let reached = true;
      const pages = c.bytes / 0x1000n < MAX_PROBED_PAGES ? c.bytes / 0x1000n : MAX_PROBED_PAGES;
      for (let i = 0n; i < pages && reached;) {
        const gpa = c.gpa + i * 0x1000n;
        const state = probe(gpa);
        if (state.visibility !== c.to) reached = false;
        // Every page the same SEPT leaf / RMP entry governs is in the same state: skip to its end
        // (asking page by page about a 2 MiB request showed in every execution that made one).
        i += (governingLeafEnd(state) - state.gpa) / 0x1000n;
      }
      trace.record('vmm', 'state-change-refused', { gpa: c.gpa, bytes: c.bytes, to: c.to, reached });
      if (!reached) this.#awaitingNextExit = true;
    }
  }

  /**
   * The decision point of each exit: after an unmade change, the first one that is not the
   * guest's own output goes into the trace, for the oracle to tell whether the guest stopped or
   * went on. Output says neither: a guest prints its fatal reason before it stops, and may as well
   * print a warning and carry on.
   */
  noteExitPoint(trace: { record(source: 'vmm', type: string, fields: Record<string, TraceValue>): unknown }, point: CallPoint, gpa?: bigint): void {
    if (!this.#awaitingNextExit || OUTPUT_POINTS.has(point)) return;
    this.#awaitingNextExit = false;
    trace.record('vmm', 'exit-after-refusal', gpa === undefined ? { point } : { point, gpa });
  }

  /**
   * The answer for this call of `point` (the first decision covering it wins), counting the call
   * and adding its decision point × choice key to the coverage.
   */
  answerFor(point: CallPoint): Answer {
    const occurrence = this.#seen.get(point) ?? 0;
    this.#seen.set(point, occurrence + 1);
    const d = this.decisionAt(point, occurrence);
    if (d !== undefined) {
      this.coverage.add(d.coverageKey);
      this.consultations?.push(point, d.answer);
      return d.answer;
    }
    this.coverage.add(HONEST_ANSWER_KEYS.get(point)!);
    this.consultations?.push(point, undefined);
    return HONEST_ANSWER;
  }

  /** The program's decision for call `occurrence` of `point` (the first covering it wins; counting nothing). */
  decisionAt(point: CallPoint, occurrence: number): { answer: Answer; coverageKey: string } | undefined {
    const list = this.#calls.get(point);
    if (list !== undefined) {
      for (const d of list) if (occurrence >= d.from && occurrence < d.to) return d;
    }
    return undefined;
  }

  /** How many times each decision point was reached (the mutator aims occurrences with it). */
  get callCounts(): ReadonlyMap<CallPoint, number> {
    return this.#seen;
  }

  cover(key: string): void {
    this.coverage.add(key);
  }
}

/** The answer where the program has no decision: one object, read only. */
const HONEST_ANSWER: Answer = Object.freeze({ kind: 'honest' });
/**
 * answerKey(point, HONEST_ANSWER) of every decision point of both platforms, built once (a Map:
 * an object indexed by the point, which varies from exit to exit, was a megamorphic load).
 */
const HONEST_ANSWER_KEYS: ReadonlyMap<CallPoint, string> = new Map(
  [...TDX_CALL_POINTS, ...SNP_CALL_POINTS].map((point) => [point, answerKey(point, HONEST_ANSWER)]),
);

/** A short coverage key for an answer: its shape, not its addresses. */
function answerKey(point: CallPoint, a: Answer): string {
  switch (a.kind) {
    case 'map-gpa': return `${point}|map-gpa|s${a.status}|${a.convertBytes === 0n ? 'none' : 'some'}|${a.resumeDelta === undefined ? '-' : a.resumeDelta === 0n ? 'same' : a.resumeDelta < 0n ? 'back' : 'fwd'}`;
    case 'vmcall-return': return `${point}|vmcall|${a.effect}|r10=${a.regs.r10 ?? '-'}`;
    case 'ept': return `${point}|ept|${a.action}`;
    case 'npf': return `${point}|npf|${a.action}`;
    case 'ghcb-registration': return `${point}|ghcb-registration|${a.response}`;
    case 'vmgexit': return `${point}|vmgexit|${a.effect}|${a.msr !== undefined ? 'msr' : ''}|${Object.keys(a.ghcb ?? {}).join(',')}|${Object.keys(a.pscHeader ?? {}).join(',')}`;
    default: return `${point}|${a.kind}`;
  }
}

function record(trace: { record(source: 'vmm', type: string, fields: Record<string, TraceValue>): unknown }, fields: Record<string, TraceValue>): void {
  trace.record('vmm', 'adversary', fields);
}

// ------------------------------------------------------------------------------------------ TDX

const SEAMCALL_RESULT_OK = TdxStatus.SUCCESS;

/** Each GPA width's mask that clears the shared bit (GPAW-1): built once, not a BigInt NOT per exit. */
const WITHOUT_SHARED_BIT: Readonly<Record<48 | 52, bigint>> = { 48: ~tdxSharedBit(48), 52: ~tdxSharedBit(52) };

/** A GPA with the shared bit (GPAW-1) cleared. */
function withoutSharedBit(ctx: VmmContext, gpa: bigint): bigint {
  return gpa & WITHOUT_SHARED_BIT[ctx.gpaWidth];
}

function tdxSeamcall(host: SeamcallHost, action: Extract<HostAction, { kind: 'tdx.seamcall' }>): bigint {
  const rcx = gpaLevel(action.gpa, action.level as SeptLevel);
  switch (action.op) {
    case 'BLOCK': return host.memRangeBlock(rcx).status;
    case 'UNBLOCK': return host.memRangeUnblock(rcx).status;
    case 'TRACK': return host.memTrack().status;
    case 'REMOVE': return host.memPageRemove(rcx).status;
    case 'AUG': return host.memPageAug(rcx).status;
    case 'DEMOTE': return host.memPageDemote(rcx).status;
    case 'PROMOTE': return host.memPagePromote(rcx).status;
    case 'SEPT_ADD': return host.memSeptAdd(rcx).status;
  }
}

/**
 * Runs one TDX host action; returns a short result for coverage and the trace. With the VMM's
 * `mirror` (at run time; a launch action has none yet), a replay finds the leaves from it.
 */
export function tdxHostAction(host: VmmContext['host'], action: HostAction, mirror?: SeptMirror): string {
  switch (action.kind) {
    case 'tdx.seamcall': {
      const status = tdxSeamcall(host, action);
      return status === SEAMCALL_RESULT_OK ? 'ok' : `0x${(status >> 32n).toString(16)}`;
    }
    case 'tdx.replay-zeroed': {
      // Like a VMM that takes the page away and gives a fresh one back: a 2M leaf around a 4K
      // target is demoted first (BLOCK, TRACK, DEMOTE), then BLOCK, TRACK, REMOVE, and AUG.
      const size = action.level === 1 ? 0x200000n : 0x1000n;
      const base = Sept.alignDown(action.gpa, action.level);
      removePrivateRange(host, base, base + size, mirror);
      augRange(host, base, base + size, mirror);
      return 'ok';
    }
    case 'tdx.post-interrupt':
      host.postInterrupt(action.vector, action.afterChunks);
      return 'ok';
    case 'tdx.shared-ept':
      host.setShared(action.gpa, action.size, action.mapped);
      return 'ok';
    case 'inject':
      host.injectInterrupt(action.vector);
      return 'ok';
    case 'shared-write':
      return writeLittleEndian(host.hostMemory, action);
    default:
      return 'unsupported';
  }
}

/**
 * A host write of `size` bytes of `value`: 'ok', or the hardware's refusal (the handle's host
 * memory refuses private pages) as the result a thrown refusal gives (runTdxHostActions).
 */
function writeLittleEndian(memory: Pick<HostMemory, 'tryWrite'>, action: Extract<HostAction, { kind: 'shared-write' }>): string {
  const bytes = new Uint8Array(action.size);
  for (let i = 0; i < action.size; i++) bytes[i] = Number((action.value >> BigInt(8 * i)) & 0xffn);
  const refused = memory.tryWrite(action.gpa, bytes);
  return refused === undefined ? 'ok' : `refused: ${refused}`;
}

function runTdxHostActions(book: DecisionBook, ctx: VmmContext): void {
  for (const action of book.beginExit()) {
    let result: string;
    try {
      result = tdxHostAction(ctx.host, action, ctx.septMirror);
    } catch (err) {
      // The hardware refused (a bad operand, a protected page): the adversary just failed.
      result = `refused: ${err instanceof Error ? err.message : String(err)}`;
    }
    book.cover(`host|${action.kind}|${action.kind === 'tdx.seamcall' ? action.op : ''}|${result.startsWith('refused') ? 'refused' : result}`);
    record(ctx.trace, { exit: book.exits - 1, action: action.kind, result });
  }
}

/**
 * AUGs the private page of `gpa` (shared bit stripped) at `level`, adding SEPT pages first. A
 * SEAMCALL the module refuses just means the attack did nothing: the adversary does not care.
 */
function augAt(ctx: VmmContext, gpa: bigint, level: SeptLevel): void {
  const base = Sept.alignDown(withoutSharedBit(ctx, gpa), level);
  try {
    ensureSeptLevels(ctx.host, base, level, ctx.septMirror);
    ctx.host.memPageAug(gpaLevel(base, level));
  } catch (err) {
    ctx.trace.record('vmm', 'adversary', { aug: base, level, failed: err instanceof Error ? err.message : String(err) });
  }
}

/** The program's EPT action for this exit (every EPT_ACTIONS entry answers). */
function eptAction(ctx: VmmContext, point: TdxCallPoint, exit: EptViolationExit, answer: Extract<Answer, { kind: 'ept' }>): VmmAction {
  switch (answer.action) {
    case 'aug-4k': augAt(ctx, exit.gpa, 0); return RESUME;
    case 'aug-2m': augAt(ctx, exit.gpa, 1); return RESUME;
    case 'aug-other': {
      const target = withoutSharedBit(ctx, exit.gpa) + (answer.otherDelta ?? 0n);
      if (target >= 0n && target < ctx.memoryBytes) augAt(ctx, target, 0);
      return RESUME;
    }
    case 'refuse': return RESUME;
    case 'stop': return { kind: 'stop', outcome: stopByAdversary(point) };
  }
}

/** The honest policy's answer for one decision point (its method, bound). */
type HonestEptAnswer = (ctx: VmmContext, exit: EptViolationExit) => VmmAction;
type HonestVmcallAnswer = (ctx: VmmContext, call: VmcallExit) => VmcallDecision;

function eptAnswer(ctx: VmmContext, point: TdxCallPoint, exit: EptViolationExit, answer: Answer, honestAnswer: HonestEptAnswer): VmmAction {
  switch (answer.kind) {
    case 'resume': return RESUME;
    case 'stop': return { kind: 'stop', outcome: stopByAdversary(point) };
    case 'ept': return eptAction(ctx, point, exit, answer);
    default: return honestAnswer(ctx, exit);
  }
}

/** Converts [base, base+bytes) like the honest MapGPA, without its chunking; nothing past guest memory. */
function convert(ctx: VmmContext, base: bigint, bytes: bigint, toShared: boolean): void {
  const end = base + bytes > ctx.memoryBytes ? ctx.memoryBytes : base + bytes;
  // Nothing to convert: no bytes, or a range that starts at or past the end of memory.
  if (end <= base) return;
  convertRange(ctx, base, end, toShared);
}

function vmcallAnswer(ctx: VmmContext, point: TdxCallPoint, call: VmcallExit, answer: Answer, honestAnswer: HonestVmcallAnswer): VmcallDecision {
  switch (answer.kind) {
    case 'stop': return { kind: 'stop', outcome: stopByAdversary(point) };
    case 'vmcall-return': {
      if (answer.effect === 'none') return { kind: 'return', regs: { ...answer.regs } };
      const d = honestAnswer(ctx, call);
      return d.kind === 'stop' ? d : { kind: 'return', regs: { ...d.regs, ...answer.regs } };
    }
    case 'map-gpa': {
      const sharedBit = tdxSharedBit(ctx.gpaWidth);
      const start = call.regs.r12;
      const size = call.regs.r13;
      const base = start & ~sharedBit;
      const bytes = answer.convertBytes < size ? answer.convertBytes : size;
      try {
        if (answer.sharedEptOnly) ctx.host.setShared(base, bytes, (start & sharedBit) !== 0n);
        else convert(ctx, base, bytes, (start & sharedBit) !== 0n);
      } catch (err) {
        // A SEAMCALL the honest helpers could not complete: the lie goes on regardless.
        record(ctx.trace, { point, failed: err instanceof Error ? err.message : String(err) });
      }
      const regs: VmcallDecision & { kind: 'return' } = { kind: 'return', regs: { r10: answer.status } };
      if (answer.resumeDelta !== undefined) regs.regs.r11 = BigInt.asUintN(64, start + answer.resumeDelta);
      return regs;
    }
    default:
      return honestAnswer(ctx, call);
  }
}

type TdxEptMethod = 'onAcceptViolation' | 'onPrivateEptViolation' | 'onPendingAccess' | 'onSharedEptViolation';
type TdxVmcallMethod = 'mapGpa' | 'reportFatalError' | 'getTdVmCallInfo' | 'instructionIo' | 'instructionHlt' | 'otherVmcall';

// The policy bodies live at module level, not in closures made per policy: a fresh policy is made
// for every fuzz execution, and big bodies inside per-policy closures were observed being
// re-optimised by TurboFan again and again in a steady campaign (--trace-opt), with no deopt.
function tdxEptDecision(book: DecisionBook, honestAnswer: HonestEptAnswer, point: TdxCallPoint, ctx: VmmContext, exit: EptViolationExit): VmmAction {
  runTdxHostActions(book, ctx);
  book.noteExitPoint(ctx.trace, point, withoutSharedBit(ctx, exit.gpa));
  const answer = book.answerFor(point);
  return eptAnswer(ctx, point, exit, answer, honestAnswer);
}

function tdxVmcallDecision(
  book: DecisionBook, honestAnswer: HonestVmcallAnswer, point: TdxCallPoint, method: TdxVmcallMethod, ctx: VmmContext, call: VmcallExit,
): VmcallDecision {
  runTdxHostActions(book, ctx);
  book.noteExitPoint(ctx.trace, point);
  let change: RequestedChange | undefined;
  if (method === 'mapGpa') {
    // The guest's own request to convert memory to shared ends the acceptance lifetime of
    // that memory for the oracle, whatever the VMM then does with it.
    const sharedBit = tdxSharedBit(ctx.gpaWidth);
    const gpa = call.regs.r12 & ~sharedBit;
    const key = `map-gpa ${call.regs.r12.toString(16)}+${call.regs.r13.toString(16)}`;
    ctx.trace.record('vmm', 'guest-request', { key });
    const toShared = (call.regs.r12 & sharedBit) !== 0n;
    ctx.trace.record('vmm', toShared ? 'guest-release' : 'guest-reclaim', { gpa, bytes: call.regs.r13 });
    if (book.noteRequest(key)) return { kind: 'stop', outcome: book.livelockOutcome };
    change = { gpa, bytes: call.regs.r13, to: toShared ? 'shared' : 'private' };
  }
  const answer = book.answerFor(point);
  const decision = vmcallAnswer(ctx, point, call, answer, honestAnswer);
  // TDVMCALL status 0 is SUCCESS and 1 RETRY (GHCI 1.5 Table 3-1); anything else reports a failure.
  if (change && decision.kind === 'return' && decision.regs.r10 !== undefined && decision.regs.r10 > 1n) book.noteRefusedChanges(ctx.trace, [change]);
  return decision;
}

/**
 * The hostile TDX policy: each method first takes the host actions due at this exit, then
 * answers as the program says for this call of this decision point, else as `honest` would.
 */
export function tdxAdversaryPolicy(book: DecisionBook, honest: TdxVmmPolicy = honestTdxPolicy): TdxVmmPolicy {
  return tdxAdversaryPolicyOf({ book }, honest);
}

/**
 * Where an adversary policy finds the book it answers from: one policy can serve execution after
 * execution, each with its own book (the fuzzer's executions from one snapshot; building the
 * policy per execution was most of what installing an adversary allocated).
 */
export interface BookHolder {
  book: DecisionBook;
}

/** tdxAdversaryPolicy answering from whatever book `holder` holds at each exit. */
export function tdxAdversaryPolicyOf(holder: BookHolder, honest: TdxVmmPolicy = honestTdxPolicy): TdxVmmPolicy {
  // Each point's honest method is looked up (and bound) here once: honest[method] at every exit,
  // with a method name that varies from exit to exit, was a megamorphic load.
  const ept = (point: TdxCallPoint, method: TdxEptMethod) => {
    const honestAnswer: HonestEptAnswer = honest[method].bind(honest);
    return (ctx: VmmContext, exit: EptViolationExit): VmmAction => tdxEptDecision(holder.book, honestAnswer, point, ctx, exit);
  };
  const vmcall = (point: TdxCallPoint, method: TdxVmcallMethod) => {
    const honestAnswer: HonestVmcallAnswer = honest[method].bind(honest);
    return (ctx: VmmContext, call: VmcallExit): VmcallDecision => tdxVmcallDecision(holder.book, honestAnswer, point, method, ctx, call);
  };
  return {
    onAcceptViolation: ept('tdx.onAcceptViolation', 'onAcceptViolation'),
    onPrivateEptViolation: ept('tdx.onPrivateEptViolation', 'onPrivateEptViolation'),
    onPendingAccess: ept('tdx.onPendingAccess', 'onPendingAccess'),
    onSharedEptViolation: ept('tdx.onSharedEptViolation', 'onSharedEptViolation'),
    mapGpa: vmcall('tdx.mapGpa', 'mapGpa'),
    reportFatalError: vmcall('tdx.reportFatalError', 'reportFatalError'),
    getTdVmCallInfo: vmcall('tdx.getTdVmCallInfo', 'getTdVmCallInfo'),
    instructionIo: vmcall('tdx.instructionIo', 'instructionIo'),
    instructionHlt: vmcall('tdx.instructionHlt', 'instructionHlt'),
    // Not a decision point: the stubs never ask (only Linux's #VE handler does, for hypervisor leaves).
    instructionCpuid: (ctx, call) => honest.instructionCpuid(ctx, call),
    otherVmcall: vmcall('tdx.otherVmcall', 'otherVmcall'),
  };
}

// ------------------------------------------------------------------------------------------ SNP

type Npf = Extract<SnpVmExit, { kind: 'npf' }>;
type Vmgexit = Extract<SnpVmExit, { kind: 'vmgexit' }>;

/** Which SNP decision point a VMGEXIT is: the MSR protocol request, or the GHCB page's exit code. */
export function snpVmgexitPoint(host: SnpVmmHandle, exit: Vmgexit): SnpCallPoint {
  const req = decodeGhcbMsr(exit.ghcbMsr);
  switch (req.kind) {
    case 'sev-info': return 'snp.msr.sevInfo';
    case 'cpuid': return 'snp.msr.cpuid';
    case 'register-ghcb': return 'snp.msr.registerGhcb';
    case 'psc': return 'snp.msr.psc';
    case 'hv-features': return 'snp.msr.hvFeatures';
    case 'ghcb-gpa': {
      if (req.gpa + 0x1000n > host.memoryBytes) return 'snp.ghcb.other';
      const code = host.hostMemory.readU64(req.gpa + BigInt(GHCB_OFFSET.swExitCode));
      if (code === BigInt(SVM_EXIT.IOIO)) return 'snp.ghcb.ioio';
      if (code === BigInt(SVM_EXIT.PSC)) return 'snp.ghcb.psc';
      if (code === BigInt(SVM_EXIT.HV_FEATURES)) return 'snp.ghcb.hvFeatures';
      return 'snp.ghcb.other';
    }
    default: return 'snp.msr.other';
  }
}

/** A guest's page-state request: its key (for the livelock guard), the changes asked for, and for a GHCB-page request the GHCB's GPA. */
interface SnpPageStateRequest {
  key: string;
  changes: RequestedChange[];
  /** The GHCB page the request came in (a GHCB PSC); undefined for the MSR protocol's PSC. */
  ghcb?: bigint;
}

/**
 * Records the guest's own requests to make memory shared (they end acceptance lifetimes) or
 * private again, and returns the request.
 */
function noteSnpRequests(host: SnpVmmHandle, exit: Vmgexit, point: SnpCallPoint): SnpPageStateRequest | undefined {
  const req = decodeGhcbMsr(exit.ghcbMsr);
  const kind = (op: number) => (op === PSC_OP.SHARED ? 'guest-release' : op === PSC_OP.PRIVATE ? 'guest-reclaim' : undefined);
  const changes: RequestedChange[] = [];
  const note = (op: number, gpa: bigint, bytes: bigint) => {
    const type = kind(op);
    if (!type) return;
    host.trace.record('vmm', type, { gpa, bytes });
    changes.push({ gpa, bytes, to: op === PSC_OP.SHARED ? 'shared' : 'private' });
  };
  if (point === 'snp.msr.psc' && req.kind === 'psc') {
    const key = `psc-msr ${exit.ghcbMsr.toString(16)}`;
    host.trace.record('vmm', 'guest-request', { key });
    note(req.op, req.gfn << 12n, PAGE_4K);
    return { key, changes };
  }
  if (point === 'snp.ghcb.psc' && req.kind === 'ghcb-gpa') {
    const buf = req.gpa + BigInt(GHCB_OFFSET.sharedBuffer);
    const header = host.hostMemory.readU32(buf);
    const cur = header & 0xffff, end = header >>> 16;
    // The entries asked for, and the one at cur_entry (the key names it), in one host read: the
    // buffer lies in the GHCB page (snpVmgexitPoint), so every entry index below PSC_MAX_ENTRIES
    // is in guest memory. One read per entry was most of this function (issue 10).
    const last = Math.min(Math.max(cur, end), PSC_MAX_ENTRIES - 1);
    const entries = cur < PSC_MAX_ENTRIES ? host.hostMemory.read(pscEntryAddress(buf, cur), (last - cur + 1) * 8) : new Uint8Array(0);
    const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
    const first = cur < PSC_MAX_ENTRIES ? view.getBigUint64(0, true) : 0n;
    const key = `psc-ghcb ${cur}-${end} ${first.toString(16)}`;
    host.trace.record('vmm', 'guest-request', { key });
    for (let i = cur; i <= end && i < PSC_MAX_ENTRIES; i++) {
      const e = decodePscEntryWords(view.getUint32((i - cur) * 8, true), view.getUint32((i - cur) * 8 + 4, true));
      note(e.op, BigInt(e.gfn * 0x1000), e.size2m ? PAGE_2M : PAGE_4K);
    }
    return { key, changes, ghcb: req.gpa };
  }
  return undefined;
}

/**
 * Whether the VMM's answer, as the guest will read it, reports the page-state change failed: an
 * MSR-protocol PSC response that is not "0 = success" (GHCB spec §2.3.1), or a GHCB PSC with
 * SW_EXITINFO1[31:0] or SW_EXITINFO2 non-zero (GHCB spec §4.1.6, Linux vmgexit_psc).
 */
function snpAnswerReportsFailure(host: SnpVmmHandle, request: SnpPageStateRequest): boolean {
  if (request.ghcb === undefined) {
    const resp = host.ghcbMsr;
    return (resp & 0xfffn) !== BigInt(GHCB_INFO.PSC_RESP) || resp >> 32n !== 0n;
  }
  // The GHCB page lies inside guest memory (snpVmgexitPoint), and a host read of it never faults:
  // it returns the ciphertext if the page is the guest's (APM Vol. 2 §15.36.10; host-memory.ts).
  const info1 = host.hostMemory.readU64(request.ghcb + BigInt(GHCB_OFFSET.swExitInfo1));
  const info2 = host.hostMemory.readU64(request.ghcb + BigInt(GHCB_OFFSET.swExitInfo2));
  return (info1 & 0xffffffffn) !== 0n || info2 !== 0n;
}

/** Runs one SNP host action; returns a short result for coverage and the trace. */
export function snpHostAction(book: Pick<DecisionBook, 'captured'>, host: SnpVmmHandle, action: HostAction): string {
  switch (action.kind) {
    case 'snp.rmpupdate':
      return host.rmpUpdate(action.spa & ~(PAGE_4K - 1n), {
        assigned: action.assigned, pageSize: action.pageSize, gpa: action.gpa & ~(PAGE_4K - 1n), asid: action.assigned ? host.asid : 0,
      }).result;
    case 'snp.psmash': return host.psmash(action.spa & ~(PAGE_2M - 1n)).result;
    case 'snp.unvalidate': {
      const page = action.spa & ~(PAGE_4K - 1n);
      return host.batch(() => {
        if (host.rmpEntry(page).pageSize === '2m') host.psmash(page & ~(PAGE_2M - 1n));
        return host.rmpUpdate(page, { assigned: true, pageSize: '4k', gpa: page, asid: host.asid }).result;
      });
    }
    case 'snp.npt-page-size':
      host.setNptPageSize(action.gpa, action.size);
      return 'ok';
    case 'snp.capture':
      book.captured.set(action.slot, host.hostMemory.read(action.spa & ~(PAGE_4K - 1n), Number(PAGE_4K)));
      return 'ok';
    case 'snp.restore': {
      const saved = book.captured.get(action.slot);
      if (!saved) return 'empty-slot';
      host.hostMemory.write(action.spa & ~(PAGE_4K - 1n), saved);
      return 'ok';
    }
    case 'inject':
      host.inject(action.vector, action.errorCode);
      return 'ok';
    case 'shared-write':
      return writeLittleEndian(host.hostMemory, action);
    default:
      return 'unsupported';
  }
}

function runSnpVmmHandleActions(book: DecisionBook, host: SnpVmmHandle): void {
  for (const action of book.beginExit()) {
    let result: string;
    try {
      result = snpHostAction(book, host, action);
    } catch (err) {
      result = `refused: ${err instanceof Error ? err.message : String(err)}`;
    }
    book.cover(`host|${action.kind}|${result.startsWith('refused') ? 'refused' : result}`);
    record(host.trace, { exit: book.exits - 1, action: action.kind, result });
  }
}

function npfAnswer(host: SnpVmmHandle, exit: Npf, answer: Extract<Answer, { kind: 'npf' }>): VmmAnswer {
  const page = exit.gpa & ~(PAGE_4K - 1n);
  switch (answer.action) {
    case 'psmash':
      host.psmash(exit.gpa & ~(PAGE_2M - 1n));
      host.setNptPageSize(exit.gpa, '4k');
      return 'resume';
    case 'make-private':
      host.rmpUpdate(page, { assigned: true, pageSize: '4k', gpa: page, asid: host.asid });
      return 'resume';
    case 'make-shared':
      if (host.rmpEntry(page).pageSize === '2m') host.psmash(exit.gpa & ~(PAGE_2M - 1n));
      host.rmpUpdate(page, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
      return 'resume';
    case 'npt-2m': host.setNptPageSize(exit.gpa, '2m'); return 'resume';
    case 'npt-4k': host.setNptPageSize(exit.gpa, '4k'); return 'resume';
    case 'refuse': return 'resume';
    case 'stop': return stopByAdversary('snp.onNpf');
  }
}

function vmgexitOverrides(host: SnpVmmHandle, exit: Vmgexit, answer: Extract<Answer, { kind: 'vmgexit' }>): void {
  if (answer.msr !== undefined) host.ghcbMsr = answer.msr;
  const req = decodeGhcbMsr(exit.ghcbMsr);
  if (req.kind !== 'ghcb-gpa' || req.gpa + 0x1000n > host.memoryBytes) return;
  const ghcb = req.gpa;
  for (const [field, value] of Object.entries(answer.ghcb ?? {}) as [keyof typeof GHCB_OFFSET, bigint][]) {
    host.hostMemory.writeU64(ghcb + BigInt(GHCB_OFFSET[field]), value);
  }
  const header = ghcb + BigInt(GHCB_OFFSET.sharedBuffer);
  const h = answer.pscHeader;
  if (h?.curEntry !== undefined) host.hostMemory.writeU16(header, h.curEntry);
  if (h?.endEntry !== undefined) host.hostMemory.writeU16(header + 2n, h.endEntry);
  if (h?.reserved !== undefined) host.hostMemory.writeU32(header + 4n, h.reserved);
}

/** The GFN field of a GHCB MSR registration (GHCBData[63:12]): 52 bits. */
const GFN_FIELD = (1n << 52n) - 1n;

/**
 * A GHCB registration answered with another GFN (Answer 'ghcb-registration'): a refusal (all ones)
 * registers nothing; another GFN is registered by the honest VMM as if the guest had asked for it,
 * so this vCPU's GHCB calls at its own GPA then meet an unregistered GHCB (KVM: the VM stops).
 */
function ghcbRegistrationAnswer(host: SnpVmmHandle, exit: Vmgexit, answer: Extract<Answer, { kind: 'ghcb-registration' }>, honest: SnpVmmPolicy): VmmAnswer {
  if (answer.response === 'refuse') {
    host.ghcbMsr = ghcbMsr.registerResp(REGISTER_GHCB_REFUSED_GFN);
    return 'resume';
  }
  // The decision point is the registration request (snpVmgexitPoint): GHCBData[63:12] is the guest's GFN.
  const other = ((exit.ghcbMsr >> 12n) + (answer.gfnDelta ?? 0n)) & GFN_FIELD;
  return honest.onVmgexit(host, { ...exit, ghcbMsr: ghcbMsr.registerReq(other) });
}

/** A lie the hardware refuses (an RMP-protected write, a bad operand) just fails: the guest resumes. */
function adversaryTry(host: SnpVmmHandle, point: SnpCallPoint, body: () => VmmAnswer): VmmAnswer {
  try {
    return body();
  } catch (err) {
    record(host.trace, { point, failed: err instanceof Error ? err.message : String(err) });
    return 'resume';
  }
}

/**
 * The honest work of a VMGEXIT answer. For a GHCB PSC with `pscEntries`, only that many entries
 * from cur_entry: the VMM narrows end_entry in the shared header while the honest code works, then
 * puts the guest's end_entry back, so the guest sees partial progress (cur_entry advanced by at
 * most `pscEntries`), as KVM gives when it returns to the guest mid-request.
 */
function snpEffect(host: SnpVmmHandle, exit: Vmgexit, point: SnpCallPoint, answer: Extract<Answer, { kind: 'vmgexit' }>, honest: SnpVmmPolicy): VmmAnswer {
  const req = decodeGhcbMsr(exit.ghcbMsr);
  if (answer.pscEntries === undefined || point !== 'snp.ghcb.psc' || req.kind !== 'ghcb-gpa') return honest.onVmgexit(host, exit);
  if (answer.pscEntries === 0) return 'resume';
  const header = req.gpa + BigInt(GHCB_OFFSET.sharedBuffer);
  const cur = host.hostMemory.readU16(header);
  const end = host.hostMemory.readU16(header + 2n);
  const last = cur + answer.pscEntries - 1;
  if (last >= end) return honest.onVmgexit(host, exit);
  host.hostMemory.writeU16(header + 2n, last);
  const result = honest.onVmgexit(host, exit);
  host.hostMemory.writeU16(header + 2n, end);
  return result;
}

function snpNpfDecision(book: DecisionBook, honest: SnpVmmPolicy, host: SnpVmmHandle, exit: Npf): VmmAnswer {
  runSnpVmmHandleActions(book, host);
  book.noteExitPoint(host.trace, 'snp.onNpf', exit.gpa);
  const answer = book.answerFor('snp.onNpf');
  if (answer.kind === 'npf') return adversaryTry(host, 'snp.onNpf', () => npfAnswer(host, exit, answer));
  if (answer.kind === 'resume') return 'resume';
  if (answer.kind === 'stop') return stopByAdversary('snp.onNpf');
  return honest.onNpf(host, exit);
}

function snpVmgexitDecision(book: DecisionBook, honest: SnpVmmPolicy, host: SnpVmmHandle, exit: Vmgexit): VmmAnswer {
  runSnpVmmHandleActions(book, host);
  const point = snpVmgexitPoint(host, exit);
  book.noteExitPoint(host.trace, point);
  const request = noteSnpRequests(host, exit, point);
  if (request && book.noteRequest(request.key)) return book.livelockOutcome;
  const answer = book.answerFor(point);
  if (answer.kind === 'stop') return stopByAdversary(point);
  let result: VmmAnswer;
  if (answer.kind === 'ghcb-registration') {
    result = ghcbRegistrationAnswer(host, exit, answer, honest);
  } else if (answer.kind !== 'vmgexit') {
    result = honest.onVmgexit(host, exit);
  } else {
    result = answer.effect === 'honest' ? snpEffect(host, exit, point, answer, honest) : 'resume';
    if (result === 'resume') {
      result = adversaryTry(host, point, () => {
        vmgexitOverrides(host, exit, answer);
        return 'resume';
      });
    }
  }
  if (result === 'resume' && request && request.changes.length > 0 && snpAnswerReportsFailure(host, request)) {
    book.noteRefusedChanges(host.trace, request.changes);
  }
  return result;
}

function snpHltDecision(book: DecisionBook, honest: SnpVmmPolicy, host: SnpVmmHandle, exit: Parameters<SnpVmmPolicy['onHlt']>[1]): VmmAnswer {
  runSnpVmmHandleActions(book, host);
  book.noteExitPoint(host.trace, 'snp.onHlt');
  const answer = book.answerFor('snp.onHlt');
  if (answer.kind === 'resume') return 'resume';
  if (answer.kind === 'stop') return stopByAdversary('snp.onHlt');
  return honest.onHlt(host, exit);
}

/**
 * The hostile SNP VMM around an honest one (which keeps its own state, e.g. the registered GHCB).
 * Its bodies are module-level functions for the reason given above tdxEptDecision.
 */
export function snpAdversaryPolicy(book: DecisionBook, honest: SnpVmmPolicy): SnpVmmPolicy {
  return snpAdversaryPolicyOf({ book }, honest);
}

/** snpAdversaryPolicy answering from whatever book `holder` holds at each exit. */
export function snpAdversaryPolicyOf(holder: BookHolder, honest: SnpVmmPolicy): SnpVmmPolicy {
  return {
    onNpf: (host, exit) => snpNpfDecision(holder.book, honest, host, exit),
    onVmgexit: (host, exit) => snpVmgexitDecision(holder.book, honest, host, exit),
    onHlt: (host, exit) => snpHltDecision(holder.book, honest, host, exit),
  };
}

