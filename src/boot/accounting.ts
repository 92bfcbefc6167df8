// Acceptance accounting from the hardware's point of view: every successful TDX PAGE.ACCEPT and
// SNP PVALIDATE(validate) the trusted model recorded, attributed to the boot stage the guest had
// announced on its console when it happened. The guest's own statistics are checked against this.
import type { BootStage } from './console-protocol.js';
import { AcceptedRanges } from './accepted-ranges.js';
import { FaultChainRecorder } from './failure.js';
import { STAGES } from './layout.js';
import { Trace, type TraceEvent, type TraceOptions, type TraceState, type TraceValue } from '../shared/trace.js';

export type PageSizeName = '4K' | '2M';

export interface AcceptanceTotals {
  acceptedBytes: Record<BootStage | 'total', bigint>;
  /**
   * Accept calls the hardware saw (any result), by requested page size: a TDX ACCEPT that exits to
   * the VMM first (which then adds the page) and is executed again counts twice.
   */
  acceptCalls: Record<PageSizeName, number>;
  /** Accept calls that accepted their page (TDX status SUCCESS; SNP PVALIDATE rc 0, CF clear): what the guest's accept_calls_* count. */
  completedAcceptCalls: Record<PageSizeName, number>;
  /** Calls that did not accept anything new (ALREADY_ACCEPTED, CF=1, errors, TD exits). */
  unsuccessfulAcceptCalls: number;
}

const SIZE_BYTES: Record<PageSizeName, bigint> = { '4K': 0x1000n, '2M': 0x200000n };
/** Clears a GPA's page offset (a constant: `~0xfffn` in place was a BigInt per accept). */
const PAGE_GPA_MASK = ~0xfffn;

export interface BootTraceState extends TraceState {
  stage: BootStage | 'vmm';
  totals: AcceptanceTotals;
  faults: ReturnType<FaultChainRecorder['saveState']>;
  accepted: ReturnType<AcceptedRanges['saveState']>;
}

/** A Trace that also keeps the acceptance totals as events are recorded. */
export class BootTrace extends Trace {
  stage: BootStage | 'vmm' = 'vmm';
  readonly totals: AcceptanceTotals = {
    acceptedBytes: { firmware: 0n, decompressor: 0n, kernel: 0n, total: 0n },
    acceptCalls: { '4K': 0, '2M': 0 },
    completedAcceptCalls: { '4K': 0, '2M': 0 },
    unsuccessfulAcceptCalls: 0,
  };
  /** Called after every completed accept (the CLI's progress line); not part of the run's state. */
  onAccepted: (() => void) | undefined;
  /** Every range a completed accept covered, each byte once: acceptedBytes.distinct. */
  readonly acceptedRanges = new AcceptedRanges();
  /** The latest chain of faults, for explaining a run that does not end `done`. */
  readonly faults = new FaultChainRecorder();

  #instructions: () => bigint = () => 0n;

  constructor(options: TraceOptions = {}) {
    super(options);
  }

  /** Events from now on carry this vCPU's retired-instruction count (0 during VMM setup). */
  countInstructionsOf(vcpu: { readonly instructions: bigint }): void {
    this.#instructions = () => vcpu.instructions;
  }

  /**
   * Every event carries `icount` (guest instructions retired so far; exact in counting mode, at
   * exit granularity) and `stage` (the boot stage the guest last announced, or "vmm" before):
   * docs/trace-schema.md.
   */
  override record(source: TraceEvent['source'], type: string, fields: Record<string, TraceValue> = {}): void {
    this.recordWithEnvelope(source, type, this.#instructions, this.stage, fields);
    this.faults.observe(this.length - 1, source, type, fields, this.stage);
    if (source === 'hw') this.#account(type, fields);
  }

  override saveState(): BootTraceState {
    return { ...super.saveState(), stage: this.stage, totals: copyTotals(this.totals), faults: this.faults.saveState(), accepted: this.acceptedRanges.saveState() };
  }

  override loadState(state: BootTraceState): void {
    super.loadState(state);
    this.stage = state.stage;
    loadTotals(this.totals, state.totals);
    this.faults.loadState(state.faults);
    this.acceptedRanges.loadState(state.accepted);
  }

  /** The guest announced a stage ("@mv stage X"); later accepts count for it. */
  enterStage(stage: BootStage): void {
    this.stage = stage;
    this.record('guest', 'stage');
  }

  #account(type: string, e: Record<string, TraceValue>): void {
    let size: PageSizeName | undefined;
    let accepted = false;
    let gpa = 0n;
    if (type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT') {
      // RCX bits 2:0 are the level (0 = 4K, 1 = 2M); anything else was refused as OPERAND_INVALID.
      const level = typeof e.rcx === 'bigint' ? Number(e.rcx & 7n) : -1;
      size = level === 1 ? '2M' : '4K';
      accepted = e.status === 0n;
      if (typeof e.rcx === 'bigint') gpa = e.rcx & PAGE_GPA_MASK;
    } else if (type === 'pvalidate' && e.validate === true) {
      size = e.size === '2m' ? '2M' : '4K';
      accepted = e.rc === 0 && e.cf === false;
      if (typeof e.gpa === 'bigint') gpa = e.gpa;
    } else {
      return;
    }
    this.totals.acceptCalls[size]++;
    if (!accepted) {
      this.totals.unsuccessfulAcceptCalls++;
      return;
    }
    this.totals.completedAcceptCalls[size]++;
    const bytes = SIZE_BYTES[size];
    this.acceptedRanges.add(gpa, gpa + bytes);
    const stage = this.stage === 'vmm' ? STAGES[0] : this.stage;
    this.totals.acceptedBytes[stage] += bytes;
    this.totals.acceptedBytes.total += bytes;
    this.onAccepted?.();
  }
}

/** Puts saved totals `from` back into `into` (its objects stay: callers may hold them). */
function loadTotals(into: AcceptanceTotals, from: AcceptanceTotals): void {
  Object.assign(into.acceptedBytes, from.acceptedBytes);
  Object.assign(into.acceptCalls, from.acceptCalls);
  Object.assign(into.completedAcceptCalls, from.completedAcceptCalls);
  into.unsuccessfulAcceptCalls = from.unsuccessfulAcceptCalls;
}

function copyTotals(t: AcceptanceTotals): AcceptanceTotals {
  return { acceptedBytes: { ...t.acceptedBytes }, acceptCalls: { ...t.acceptCalls }, completedAcceptCalls: { ...t.completedAcceptCalls }, unsuccessfulAcceptCalls: t.unsuccessfulAcceptCalls };
}
