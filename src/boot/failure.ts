// Why a run did not end `done`: the chain of faults and injected events that led to the end (the
// first of them is usually the real cause: a #VE for an address the VMM never mapped, not the triple
// fault it escalated into), what the guest was doing then, and a register dump of the vCPU in the
// spirit of QEMU's `-d cpu_reset`. Built while the trace is recorded, so it works without keeping
// events (only fault events become objects, and only the last chain is kept).
import type { Snapshottable } from '../shared/snapshottable.js';
import type { Vcpu } from '../cpu/vcpu.js';
import { traceLine, type TraceEvent, type TraceValue } from '../shared/trace.js';

/** A trace event as its JSON line holds it (bigints as "0x…" strings), so it can go into --json as is. */
export type JsonTraceEvent = { seq: number; source: TraceEvent['source']; type: string } & Record<string, unknown>;

/**
 * Trace events that are faults or event injections, by platform. TDX: the TDX module's #VE/#DF
 * delivery (td-module.ts); an EPT violation that exits to the VMM. SNP: nested page faults and
 * #VC/exception injection by the CPU model (snp-cpu.ts).
 */
function isFault(type: string, fields: Record<string, TraceValue>): boolean {
  // A switch, not a Set: compares of interned strings rather than a hash lookup for every event recorded.
  switch (type) {
    case 've-injected': case 'df-injected': case 'exception-injected': case 'injection-failed':
    case 'npf': case 'inject-vc': case 'inject': case 'shutdown':
      return true;
    case 'td-exit':
      return fields.reason === 'ept-violation';
    default:
      return false;
  }
}

/** Most events a chain keeps (an escalation is a handful; a fault storm is cut to its start). */
const CHAIN_LIMIT = 8;

export interface FailureExplanation {
  outcome: string;
  reason: string;
  /** The fault events that ran back to back into the end of the run, first one first (may be empty). */
  causeChain: JsonTraceEvent[];
  /** The boot stage the guest had announced when the chain began (or at the end, without one); null before the first. */
  stage: string | null;
  /** The last line the guest wrote to its console before the chain began. */
  lastConsoleLine: string | null;
  /** The vCPU's registers when the run ended, as "0x…" strings. */
  registers: Record<string, string>;
}

/** Follows the trace as it is recorded and keeps the latest run of consecutive fault events. */
interface FaultChainState {
  /**
   * As recorded: each event's header and the fields object it was recorded with (never changed
   * after recording), made into an event only when a run is explained. Every EPT-violation exit
   * is a fault event that starts a chain: spreading its fields into an event object each time was
   * a large share of an ACCEPT exit's garbage (issue 10).
   */
  chain: ChainedFault[];
  lastSeq: number;
  chainStage: string;
  chainConsoleLine: string | null;
  consoleLine: string | null;
}

/** A fault event of the chain as it was recorded. */
interface ChainedFault {
  readonly seq: number;
  readonly source: TraceEvent['source'];
  readonly type: string;
  readonly fields: Readonly<Record<string, TraceValue>>;
}

export class FaultChainRecorder implements Snapshottable<FaultChainState> {
  /**
   * The chain is the first #chainLength entries, changed in place (a new chain starts again at
   * 0, keeping the array): saveState and loadState copy it.
   */
  readonly #chain: ChainedFault[] = [];
  #chainLength = 0;
  #lastSeq = -2;
  #chainStage = '';
  #chainConsoleLine: string | null = null;
  #consoleLine: string | null = null;

  saveState(): FaultChainState {
    return { chain: this.#chain.slice(0, this.#chainLength), lastSeq: this.#lastSeq, chainStage: this.#chainStage, chainConsoleLine: this.#chainConsoleLine, consoleLine: this.#consoleLine };
  }

  loadState(state: FaultChainState): void {
    for (let i = 0; i < state.chain.length; i++) this.#chain[i] = state.chain[i]!;
    this.#chainLength = state.chain.length;
    this.#lastSeq = state.lastSeq;
    this.#chainStage = state.chainStage;
    this.#chainConsoleLine = state.chainConsoleLine;
    this.#consoleLine = state.consoleLine;
  }

  /** Called for every event recorded, after it got sequence number `seq`. */
  observe(seq: number, source: TraceEvent['source'], type: string, fields: Record<string, TraceValue>, stage: string): void {
    if (!isFault(type, fields)) return;
    if (seq !== this.#lastSeq + 1) {
      this.#chainLength = 0;
      this.#chainStage = stage;
      this.#chainConsoleLine = this.#consoleLine;
    }
    this.#lastSeq = seq;
    if (this.#chainLength < CHAIN_LIMIT) this.#chain[this.#chainLength++] = { seq, source, type, fields };
  }

  /** A console line the guest wrote (for "what the guest was doing"). */
  consoleLine(line: string): void {
    if (line.trim() !== '') this.#consoleLine = line;
  }

  /**
   * The explanation for a run that ended after trace event `endSeq` (the `outcome` event): a chain
   * counts only if it ran into the end, i.e. nothing but faults came between it and the outcome.
   */
  explain(outcome: { outcome: string; reason: string }, endSeq: number, stage: string, vcpu: Vcpu): FailureExplanation {
    const current = this.#lastSeq + 1 === endSeq;
    return {
      outcome: outcome.outcome,
      reason: outcome.reason,
      causeChain: current ? this.#chain.slice(0, this.#chainLength).map((e) => JSON.parse(traceLine({ seq: e.seq, source: e.source, type: e.type, ...e.fields })) as JsonTraceEvent) : [],
      stage: stageName(current ? this.#chainStage : stage),
      lastConsoleLine: current ? this.#chainConsoleLine : this.#consoleLine,
      registers: registerDump(vcpu),
    };
  }
}

/** BootTrace's stage before the guest announces one is 'vmm' (the VMM building the VM). */
const stageName = (stage: string): string | null => (stage === 'vmm' || stage === '' ? null : stage);

const hex = (v: bigint) => `0x${v.toString(16)}`;

/** The registers QEMU's `-d cpu_reset` shows that matter here: GPRs, RIP, RFLAGS, control registers, EFER, CS/SS. */
export function registerDump(vcpu: Vcpu): Record<string, string> {
  const r = vcpu.regs;
  const out: Record<string, string> = {};
  for (const name of ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const) {
    out[name] = hex(r[name]);
  }
  for (const name of ['cr0', 'cr2', 'cr3', 'cr4', 'efer', 'cs', 'ss'] as const) out[name] = hex(vcpu.readSpecial(name));
  return out;
}

function describeEvent(e: JsonTraceEvent): string {
  const fields = Object.entries(e)
    .filter(([k]) => k !== 'seq' && k !== 'source' && k !== 'type')
    .map(([k, v]) => `${k} ${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`);
  return `#${e.seq} ${e.source} ${e.type}${fields.length ? ` ${fields.join(' ')}` : ''}`;
}

/** The human form: cause chain, stage, last console line, then a QEMU-style register dump. */
export function formatFailure(f: FailureExplanation): string[] {
  const pad = (v: string) => v.replace(/^0x/, '').padStart(16, '0');
  const g = f.registers;
  const reg = (names: string[]) => names.map((n) => `${n.toUpperCase().padEnd(3)}=${pad(g[n]!)}`).join(' ');
  const lines = [`why: ${f.outcome} (${f.reason})`];
  if (f.causeChain.length === 0) lines.push('  no fault or injected event led into the end of the run');
  else {
    lines.push('  cause chain (first is the cause; trace event numbers):');
    f.causeChain.forEach((e, i) => lines.push(`    ${i === 0 ? '->' : '  '} ${describeEvent(e)}`));
  }
  lines.push(`  guest stage: ${f.stage ?? 'none announced yet'}; last console line: ${f.lastConsoleLine === null ? 'none' : JSON.stringify(f.lastConsoleLine)}`);
  lines.push('  registers at the end of the run:');
  lines.push(`    ${reg(['rax', 'rbx', 'rcx', 'rdx'])}`);
  lines.push(`    ${reg(['rsi', 'rdi', 'rbp', 'rsp'])}`);
  lines.push(`    ${reg(['r8', 'r9', 'r10', 'r11'])}`);
  lines.push(`    ${reg(['r12', 'r13', 'r14', 'r15'])}`);
  lines.push(`    RIP=${pad(g.rip!)} RFL=${pad(g.rflags!)}`);
  lines.push(`    CS =${g.cs!.replace(/^0x/, '').padStart(4, '0')} SS =${g.ss!.replace(/^0x/, '').padStart(4, '0')} EFER=${pad(g.efer!)}`);
  lines.push(`    CR0=${pad(g.cr0!)} CR2=${pad(g.cr2!)} CR3=${pad(g.cr3!)} CR4=${pad(g.cr4!)}`);
  return lines;
}
