// The host interface: the SEAMCALLs the (untrusted) VMM may make (`src/vmm_dispatcher/api_calls/
// tdh_mem_*.c`; reference A5). This is the only way SEPT state changes from outside the TD. Each
// call returns the module's status value (never throws on bad input) and is a `seamcall` trace event.
// RCX-style inputs are `gpa | level` (bits 2:0 level, 51:12 GPA).
import { lookupTransition, type SeptOperation } from './sept-legality.js';
import { ENTRIES_PER_TABLE, LEVEL_BITS, LEVEL_BYTES, SeptState, operandLevel, septLockKey, type SeptLevel, type SeptStateName } from './sept-states.js';
import { OperandId, TdxStatus, statusName, withOperand } from './status.js';
import { isZeroPage } from '../../memory/zero-page.js';
import { u64ToNumber } from '../../shared/u64.js';
import { HashStepMemo, feedMemoized, type BufferedHashStep } from '../../shared/hash-step-memo.js';
import { denseBytes, pageAt, type SparsePages } from '../../shared/sparse-pages.js';
import type { HashLineage } from '../../shared/buffered-hash.js';
import type { TdModule } from './td-module.js';

export const SeamcallLeaf = {
  TDH_MEM_PAGE_ADD: 2, TDH_MEM_SEPT_ADD: 3, TDH_MEM_PAGE_AUG: 6, TDH_MEM_RANGE_BLOCK: 7, TDH_MEM_PAGE_DEMOTE: 15,
  TDH_MR_EXTEND: 16, TDH_MR_FINALIZE: 17, TDH_MEM_PAGE_PROMOTE: 23, TDH_MEM_SEPT_RD: 25, TDH_MEM_PAGE_REMOVE: 29,
  TDH_MEM_TRACK: 38, TDH_MEM_RANGE_UNBLOCK: 39,
} as const;
export type SeamcallName = keyof typeof SeamcallLeaf;

export interface SeamcallResult {
  status: bigint;
}
export interface SeptReadResult extends SeamcallResult {
  /** The level the walk reached and the entry's state there (TDH.MEM.SEPT.RD: RCX = entry, RDX = level/state). */
  level: SeptLevel;
  state: SeptStateName;
}

/** Builds the RCX operand `gpa | level` (a 4K one is the GPA itself: no BigInt made). */
export function gpaLevel(gpa: bigint, level: SeptLevel): bigint {
  return level === 0 ? gpa : gpa | LEVEL_BITS[level]!;
}

/**
 * The levels each leaf accepts (`verify_page_info_input(…, min, max)` in each `tdh_mem_*.c`);
 * `top` is the TD's page-walk length (EPTP.ept_pwl): SEPT.ADD, BLOCK, UNBLOCK and SEPT.RD go up to it.
 * `mapsMemory`: the leaf maps a page, which the model can back only inside guest RAM.
 */
interface OperandRule { min: SeptLevel; max: SeptLevel | 'top'; mapsMemory: boolean }
type OperandKey = 'ADD' | 'AUG' | 'SEPT_ADD' | 'BLOCK' | 'UNBLOCK' | 'REMOVE' | 'DEMOTE' | 'PROMOTE' | 'SEPT_RD';
const OPERAND_RULES: Readonly<Record<OperandKey, OperandRule>> = {
  ADD: { min: 0, max: 0, mapsMemory: true }, AUG: { min: 0, max: 1, mapsMemory: true }, SEPT_ADD: { min: 1, max: 'top', mapsMemory: false },
  BLOCK: { min: 0, max: 'top', mapsMemory: false }, UNBLOCK: { min: 0, max: 'top', mapsMemory: false }, REMOVE: { min: 0, max: 2, mapsMemory: false },
  DEMOTE: { min: 1, max: 2, mapsMemory: false }, PROMOTE: { min: 1, max: 2, mapsMemory: false }, SEPT_RD: { min: 0, max: 'top', mapsMemory: false },
};
const OPERAND_INVALID_RCX = withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX);
const OPERAND_ADDR_RANGE_ERROR_RCX = withOperand(TdxStatus.OPERAND_ADDR_RANGE_ERROR, OperandId.RCX);
const EPT_WALK_FAILED_RCX = withOperand(TdxStatus.EPT_WALK_FAILED, OperandId.RCX);
const OPERAND_BUSY_RCX = withOperand(TdxStatus.OPERAND_BUSY, OperandId.RCX);
/** PAGE.ADD's source is not one 4 KiB page: the model's form of a bad source page operand (R9). */
const SOURCE_INVALID_R9 = withOperand(TdxStatus.OPERAND_INVALID, OperandId.R9);
/** The result of every SEAMCALL that succeeded and reports nothing more: one object, read only (a MapGPA makes three per page). */
const SUCCEEDED: SeamcallResult = Object.freeze({ status: TdxStatus.SUCCESS });

/** The SEAMCALLs that change one S-EPT entry through #transition (the legality table decides, then #apply). */
type EntryCall = 'TDH_MEM_PAGE_ADD' | 'TDH_MEM_SEPT_ADD' | 'TDH_MEM_PAGE_AUG' | 'TDH_MEM_RANGE_BLOCK' | 'TDH_MEM_RANGE_UNBLOCK'
  | 'TDH_MEM_PAGE_REMOVE' | 'TDH_MEM_PAGE_DEMOTE' | 'TDH_MEM_PAGE_PROMOTE';

/** UNBLOCK's counter update (built once; setState copies what it needs). */
const BLOCK_EPOCH_CLEARED = { blockEpoch: 0n } as const;

type MeasuredOperation = 'MEM.PAGE.ADD' | 'MR.EXTEND';

/**
 * Each measured operation's 128-byte MRTD block before its GPA goes in (the name, zero-padded):
 * copied whole, as a cold boot measures 4,352 of them and filling and writing each one piece by
 * piece was the largest part of its VM setup after the trace (issue 11).
 */
const MEASUREMENT_BLOCK: Record<MeasuredOperation, Uint8Array> = { 'MEM.PAGE.ADD': nameBlock('MEM.PAGE.ADD'), 'MR.EXTEND': nameBlock('MR.EXTEND') };

function nameBlock(name: string): Uint8Array {
  const block = new Uint8Array(128);
  block.set(Buffer.from(name, 'latin1'));
  return block;
}

/**
 * MRTD after a launch's ranges, kept from one TD to the next (in this process): a fuzz campaign's
 * launches mostly measure the same image into a new TD (src/shared/hash-step-memo.ts). A range
 * is taken from here only after the same ranges from TD creation on, and with the same GPA, size,
 * measured flag and (measured) bytes; its events, SEPT and memory updates happen as ever. A few
 * TDs' worth: a launch adds three to five ranges.
 */
const MRTD_STEPS = new HashStepMemo<HashLineage, BufferedHashStep>(16);
const NO_BYTES = new Uint8Array(0);

/** A measured page's blocks but for their GPAs and chunk bytes: "MEM.PAGE.ADD", then sixteen times "MR.EXTEND" and 256 bytes. */
const MEASURED_PAGE_BLOCKS = (() => {
  const blocks = new Uint8Array(128 + 16 * (128 + 256));
  blocks.set(MEASUREMENT_BLOCK['MEM.PAGE.ADD'], 0);
  for (let chunk = 0; chunk < 16; chunk++) blocks.set(MEASUREMENT_BLOCK['MR.EXTEND'], 128 + chunk * 384);
  return blocks;
})();

/**
 * Told of each SEAMCALL when it completes: its leaf, its RCX operand (`gpa | level`), its status,
 * and how many consecutive 4 KiB pages from there it stands for (a launch range's PAGE.ADD).
 */
export type SeamcallObserver = (leaf: SeamcallName, rcx: bigint | null, status: bigint, pages: number) => void;

export class SeamcallHost {
  readonly #td: TdModule;
  /**
   * The VMM's own record of what its SEAMCALLs did (a KVM keeps a mirror of the S-EPT it built):
   * it learns only what the caller sees anyway, each call's operand and status.
   */
  observer: SeamcallObserver | undefined;
  /** Guest RAM's size, as a number (exact: below 2^52), for #operand's checks. */
  readonly #ramBytes: number;
  /** The operand #operand decoded last: fields, not an object per SEAMCALL. */
  #operandGpa = 0n;
  #operandLevel: SeptLevel = 0;

  constructor(td: TdModule) {
    this.#td = td;
    this.#ramBytes = Number(td.machine.memoryBytes);
  }

  /** The TD's top SEPT level (the page-walk length the host chose at TDH.MNG.INIT). */
  get septTopLevel(): SeptLevel {
    return this.#td.sept.topLevel;
  }

  /**
   * Records the call as a `seamcall` event. `count`: it stands for several calls, all with this
   * status (docs/trace-schema.md): `calls` on the next 256-byte chunks (MR.EXTEND), `pages` on
   * the next 4 KiB pages (PAGE.ADD of a launch range).
   */
  #done<T extends SeamcallResult>(name: SeamcallName, rcx: bigint | null, result: T, count?: { calls: number } | { pages: number }): T {
    const fields = { leaf: name, rcx, status: result.status, result: statusName(result.status) };
    this.#td.trace.record('hw', 'seamcall', count === undefined ? fields : { ...fields, ...count });
    this.observer?.(name, rcx, result.status, count !== undefined && 'pages' in count ? count.pages : 1);
    return result;
  }

  /**
   * Decodes and checks a `gpa | level` operand against the leaf's allowed levels and guest RAM:
   * SUCCESS with the operand in #operandGpa / #operandLevel, or the refusal. Callers pass the rule
   * itself: OPERAND_RULES[key] with a key that varies from call to call was a megamorphic load.
   */
  #operand(rule: OperandRule, rcx: bigint): bigint {
    // decodeGpaLevel, with RCX converted to a number once: below the shared bit it is exact, and
    // each Number(BigInt) and BigInt(number) conversion of a GPA was a runtime call (issue 10).
    if (rcx < 0n || rcx >= this.#td.sharedBit) return OPERAND_INVALID_RCX;
    const operand = u64ToNumber(rcx);
    const level = operandLevel(operand, rule.min, rule.max === 'top' ? this.#td.sept.topLevel : rule.max);
    if (level === undefined) return OPERAND_INVALID_RCX;
    // The model can only back GPAs inside the machine's RAM (a real host would pass an HPA).
    if (rule.mapsMemory && operand - level + LEVEL_BYTES[level]! > this.#ramBytes) return OPERAND_ADDR_RANGE_ERROR_RCX;
    // RCX with its level bits cleared (a 4K operand's RCX is its GPA).
    this.#operandGpa = level === 0 ? rcx : rcx ^ LEVEL_BITS[level]!;
    this.#operandLevel = level;
    return TdxStatus.SUCCESS;
  }

  #tracked(level: SeptLevel, gpa: bigint): boolean {
    return (this.#td.sept.entry(level, gpa)?.blockEpoch ?? 0n) < this.#td.epoch;
  }

  /**
   * Common path: operand → walk to exactly the operand's level (a missing SEPT level, or a leaf
   * above it, is EPT_WALK_FAILED) → legality table → #apply. `source`: PAGE.ADD's page.
   */
  #transition(name: EntryCall, op: SeptOperation, rule: OperandRule, rcx: bigint, source?: Uint8Array): SeamcallResult {
    const refused = this.#operand(rule, rcx);
    if (refused !== TdxStatus.SUCCESS) return this.#done(name, rcx, { status: refused });
    const gpa = this.#operandGpa;
    const level = this.#operandLevel;
    const from = this.#td.sept.reachedState(gpa, level);
    if (from === undefined) return this.#done(name, rcx, { status: EPT_WALK_FAILED_RCX });
    // sept_lock_acquire_host (tdx_locks.h), before the state check: an entry a vCPU holds
    // locked inside its TDG.MEM.PAGE.ACCEPT gives OPERAND_BUSY|RCX and gets the host-priority
    // bit; taking the lock clears it.
    // Without any lock or host-priority bit held (nearly always) there is no key to build.
    const td = this.#td;
    if (td.guestLocks.size !== 0 || td.hostPriority.size !== 0) {
      const lockKey = septLockKey(level, gpa);
      if (td.guestLocks.has(lockKey)) {
        td.hostPriority.add(lockKey);
        return this.#done(name, rcx, { status: OPERAND_BUSY_RCX });
      }
      td.hostPriority.delete(lockKey);
    }
    const t = lookupTransition(op, from);
    if (t.kind === 'status') return this.#done(name, rcx, { status: withOperand(t.status, OperandId.RCX) });
    if (t.kind !== 'ok') throw new Error(`legality table row ${op} is not a SEAMCALL row`);
    const extra = this.#apply(name, gpa, level, from, t.next, source);
    if (extra !== undefined) return this.#done(name, rcx, { status: extra });
    return this.#done(name, rcx, SUCCEEDED);
  }

  /**
   * What each leaf does once the legality table allowed it (`next`: the table's new state), or
   * the status of a check that comes after the table (TLB tracking, PROMOTE's 512 children).
   * One method, not a closure per call: a MapGPA makes three SEAMCALLs per page.
   */
  #apply(name: EntryCall, gpa: bigint, level: SeptLevel, from: SeptStateName, next: SeptStateName, source: Uint8Array | undefined): bigint | undefined {
    const td = this.#td;
    const sept = td.sept;
    switch (name) {
      case 'TDH_MEM_PAGE_ADD':
        // The source page (R9) is checked only once the entry is found FREE (tdh_mem_page_add.c:
        // shared_hpa_check_with_pwr_2_alignment after sept_state_is_seamcall_leaf_allowed).
        if (source!.byteLength !== 4096) return SOURCE_INVALID_R9;
        td.machine.memory.write(gpa, source!);
        sept.setState(level, gpa, next);
        this.#measure('MEM.PAGE.ADD', gpa);
        return undefined;
      case 'TDH_MEM_SEPT_ADD':
        sept.setState(level, gpa, next);
        return undefined;
      case 'TDH_MEM_PAGE_AUG':
        // From FREE (no entry) or REMOVED (an entry without counters): the new entry has none either.
        sept.setState(level, gpa, next);
        return undefined;
      case 'TDH_MEM_RANGE_BLOCK':
        // block_sept_entry (tdh_mem_range_block.c) starts with sept_cleanup_if_pending: a PENDING
        // 2M leaf loses its accept_counter (sept_manager.h), so an ACCEPT interrupted before the
        // BLOCK starts again from its first 4K chunk after the UNBLOCK. A 4K entry's counter is 0.
        sept.setState(level, gpa, next, from === 'PENDING' ? { blockEpoch: td.epoch, acceptCounter: 0 } : { blockEpoch: td.epoch });
        return undefined;
      case 'TDH_MEM_RANGE_UNBLOCK':
        if (td.finalized && !this.#tracked(level, gpa)) return withOperand(TdxStatus.TLB_TRACKING_NOT_DONE, OperandId.SEPT_TREE);
        sept.setState(level, gpa, next, BLOCK_EPOCH_CLEARED);
        return undefined;
      case 'TDH_MEM_PAGE_REMOVE':
        if (td.finalized && !this.#tracked(level, gpa)) return withOperand(TdxStatus.TLB_TRACKING_NOT_DONE, OperandId.RCX);
        sept.setState(level, gpa, next); // FREE: the entry goes, counters and all
        return undefined;
      case 'TDH_MEM_PAGE_DEMOTE': {
        if (td.finalized && !this.#tracked(level, gpa)) return withOperand(TdxStatus.TLB_TRACKING_NOT_DONE, OperandId.RCX);
        const child: SeptStateName = from === 'MAPPED' || from === 'BLOCKED' ? 'MAPPED' : 'PENDING';
        // A partly accepted 2M PENDING page restarts its accept per 4K page (progress is not carried over).
        sept.split(level as 1 | 2, gpa, child);
        return undefined;
      }
      case 'TDH_MEM_PAGE_PROMOTE': {
        if (td.finalized && !this.#tracked(level, gpa)) return withOperand(TdxStatus.TLB_TRACKING_NOT_DONE, OperandId.RCX);
        const states = sept.childStates(level as 1 | 2, gpa);
        const first = states[0]!;
        if ((first !== 'MAPPED' && first !== 'PENDING') || states.length !== ENTRIES_PER_TABLE || states.some((s) => s !== first)) {
          return withOperand(TdxStatus.EPT_INVALID_PROMOTE_CONDITIONS, OperandId.RCX);
        }
        sept.merge(level as 1 | 2, gpa, first);
        return undefined;
      }
    }
  }

  /**
   * TDH.MEM.PAGE.ADD: copy `source` (4 KiB) into a FREE 4K GPA before finalization, MAPPED; MRTD
   * gets "MEM.PAGE.ADD"‖GPA. Checks in tdh_mem_page_add.c's order: op state, RCX, walk, entry
   * state, then the source (#apply).
   */
  memPageAdd(rcx: bigint, source: Uint8Array): SeamcallResult {
    if (this.#td.finalized) return this.#done('TDH_MEM_PAGE_ADD', rcx, { status: TdxStatus.OP_STATE_INCORRECT });
    return this.#transition('TDH_MEM_PAGE_ADD', 'ADD', OPERAND_RULES.ADD, rcx, source);
  }

  /**
   * TDH.MR.EXTEND: measure a 256-byte chunk of a MAPPED, added page into MRTD (tdh_mr_extend.c).
   * The walk to a leaf must end on a present (MAPPED) leaf, else EPT_ENTRY_NOT_PRESENT|RCX.
   */
  mrExtend(gpa: bigint): SeamcallResult {
    const status = this.#mrExtendStatus(gpa);
    if (status === TdxStatus.SUCCESS) this.#measureChunk(gpa, this.#td.machine.memory.read(gpa, 256));
    return this.#done('TDH_MR_EXTEND', gpa, { status });
  }

  /** TDH.MR.EXTEND's checks, in its order: TD state, 256-byte alignment, the GPA, the walk to a MAPPED leaf. */
  #mrExtendStatus(gpa: bigint): bigint {
    const td = this.#td;
    if (td.finalized) return TdxStatus.OP_STATE_INCORRECT;
    if ((gpa & 0xffn) !== 0n || (gpa & td.sharedBit) !== 0n || (gpa >> BigInt(td.config.gpaWidth)) !== 0n) {
      return withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX);
    }
    if (td.sept.walk(gpa, 0).state !== 'MAPPED') return withOperand(TdxStatus.EPT_ENTRY_NOT_PRESENT, OperandId.RCX);
    return TdxStatus.SUCCESS;
  }

  /** MRTD takes "MR.EXTEND"‖GPA, then the chunk's 256 bytes: three 128-byte SHA-384 blocks. */
  #measureChunk(gpa: bigint, chunk: Uint8Array): void {
    this.#measure('MR.EXTEND', gpa);
    this.#td.mrtdHash.update(chunk);
  }

  /**
   * PAGE.ADD then MR.EXTEND of each of the page's sixteen 256-byte chunks (what QEMU/KVM do for
   * measured TDVF pages), MRTD updated chunk by chunk exactly as sixteen calls would. Every check
   * TDH.MR.EXTEND makes (tdh_mr_extend.c: TD state, alignment, GPA, the walk to a MAPPED leaf)
   * is about the page, which PAGE.ADD has just mapped: the sixteen calls succeed or fail alike,
   * so they are checked once and recorded as one `seamcall` event with `calls: 16`
   * (docs/trace-schema.md). An event per chunk, and a walk per chunk, were most of a default
   * boot's VM setup (4,096 of its ~5,000 events; issue 11). The chunks are measured from
   * `source`, which PAGE.ADD has just copied into the page, not read back from RAM.
   */
  addMeasuredPage(gpa: bigint, source: Uint8Array): SeamcallResult {
    const r = this.memPageAdd(gpaLevel(gpa, 0), source);
    if (r.status !== TdxStatus.SUCCESS) return r;
    const status = this.#mrExtendStatus(gpa);
    if (status !== TdxStatus.SUCCESS) return this.#done('TDH_MR_EXTEND', gpa, { status });
    for (let off = 0; off < 4096; off += 256) this.#measureChunk(gpa + BigInt(off), source.subarray(off, off + 256));
    return this.#done('TDH_MR_EXTEND', gpa, { status }, { calls: 16 });
  }

  /**
   * The VMM's launch of one range of the initial image (KVM_TDX_INIT_MEM_REGION, with the flag
   * KVM_TDX_MEASURE_MEMORY_REGION when `measured`: Linux Documentation/virt/kvm/x86/intel-tdx.rst): for each 4 KiB page of [gpa, gpa +
   * source.byteLength) in address order, TDH.MEM.PAGE.ADD from `source`, and when `measured`
   * TDH.MR.EXTEND of its sixteen 256-byte chunks right after it (addMeasuredPage). It stops at the
   * first call that fails, as KVM does, and returns that call's status and page (`at`; the last
   * page when all succeed). SEPT, memory and MRTD end as after those calls one by one.
   *
   * The trace: when every page can only succeed (before MR.FINALIZE, a valid range inside RAM,
   * each page's leaf FREE and reachable, no entry locked), one PAGE.ADD event with `pages` stands
   * for the range's PAGE.ADDs, and for a measured range one MR.EXTEND event with `calls` for all
   * their chunks, in address order (trace schema 3). A PAGE.ADD event and a gate update per page
   * were most of a default TDX boot's VM setup (issue 11). Otherwise each call has its own event.
   *
   * `source` may come as its non-zero pages (SparsePages): the same calls, events and MRTD, with
   * the zero pages' RAM zero-filled (RAM nothing wrote stays untouched) rather than copied.
   */
  addPages(gpa: bigint, source: Uint8Array | SparsePages, measured: boolean): SeamcallResult & { at: bigint } {
    const pages = source.byteLength / 4096;
    if (!Number.isInteger(pages) || pages < 1) return this.#addPageByPage(gpa, denseBytes(source), measured);
    const last = gpa + BigInt(pages - 1) * 4096n;
    const td = this.#td;
    // The legality table's row for a FREE leaf, as #transition reads it for each page.
    const next = lookupTransition('ADD', 'FREE');
    // Both ends valid is every page valid: same alignment, and the pages between lie between them.
    const canOnlySucceed = !td.finalized
      && this.#operand(OPERAND_RULES.ADD, gpaLevel(gpa, 0)) === TdxStatus.SUCCESS && this.#operand(OPERAND_RULES.ADD, gpaLevel(last, 0)) === TdxStatus.SUCCESS
      && td.guestLocks.size === 0 && td.hostPriority.size === 0 && td.sept.freeReachableLeaves(gpa, pages);
    if (!canOnlySucceed || next.kind !== 'ok' || next.next === 'FREE') return this.#addPageByPage(gpa, denseBytes(source), measured);
    td.machine.memory.writePages(gpa, source);
    td.sept.setFreeLeaves(gpa, pages, next.next);
    this.#measurePages(gpa, source, measured);
    const count = pages > 1 ? { pages } : undefined;
    const added = this.#done('TDH_MEM_PAGE_ADD', gpaLevel(gpa, 0), { status: TdxStatus.SUCCESS }, count);
    if (measured) this.#done('TDH_MR_EXTEND', gpa, { status: TdxStatus.SUCCESS }, { calls: 16 * pages });
    return { ...added, at: last };
  }

  /** MRTD for PAGE.ADD (+ MR.EXTEND) of `source`'s pages: from MRTD_STEPS when it has them, else #measurePagesNow. */
  #measurePages(gpa: bigint, source: Uint8Array | SparsePages, measured: boolean): void {
    // An unmeasured range feeds only its pages' GPAs (MEM.PAGE.ADD blocks), not their bytes.
    const label = `${measured ? 'PAGE.ADD+MR.EXTEND' : 'PAGE.ADD'} 0x${gpa.toString(16)} ${source.byteLength}`;
    feedMemoized(MRTD_STEPS, this.#td.mrtdHash, label, measured ? source : NO_BYTES, () => this.#measurePagesNow(gpa, source, measured));
  }

  /**
   * MRTD for PAGE.ADD of each page of `source` from `gpa` on and, when `measured`, MR.EXTEND of
   * its sixteen chunks: the blocks #measure and #measureChunk would give, written a page at a time
   * from a template with the GPAs filled in. The template's chunk bytes are zeros, so an all-zero
   * page (most of a launch: the initial image is 1 MiB around a few dozen KiB of stubs) needs only
   * its GPAs. That keeps the loop short enough to stay in the interpreter: copying every chunk
   * made it hot enough for TurboFan to compile it twice (on-stack and whole) in the background
   * of every cold boot, ~10-20 ms of CPU for a loop that runs once (issue 11).
   */
  #measurePagesNow(gpa: bigint, source: Uint8Array | SparsePages, measured: boolean): void {
    const h = this.#td.mrtdHash;
    const template = measured ? MEASURED_PAGE_BLOCKS : MEASUREMENT_BLOCK['MEM.PAGE.ADD'];
    const first = Number(gpa);  // below 2^52: exact
    for (let page = 0; page < source.byteLength / 4096; page++) {
      h.room(template.byteLength);
      const at = h.pos;
      const end = at + template.byteLength;
      const view = h.view;
      h.buf.set(template, at);
      // A page-aligned GPA as two 32-bit words; a chunk's offset (below 4 KiB) only adds to the low one.
      const pageGpa = first + page * 4096;
      const low = pageGpa % 0x1_0000_0000;
      const high = (pageGpa - low) / 0x1_0000_0000;
      view.setUint32(at + 16, low, true);
      view.setUint32(at + 20, high, true);
      if (measured) {
        // Each chunk's MR.EXTEND block: its GPA at +16, its bytes at +128; the template's high words are zero.
        for (let field = at + 144, chunkGpa = low; field < end; field += 384, chunkGpa += 256) view.setUint32(field, chunkGpa, true);
        if (high !== 0) for (let field = at + 148; field < end; field += 384) view.setUint32(field, high, true);
        const bytes = pageAt(source, page * 4096);
        if (bytes !== undefined && !isZeroPage(bytes)) {
          for (let chunk = 0; chunk < 16; chunk++) h.buf.set(bytes.subarray(chunk * 256, chunk * 256 + 256), at + 256 + chunk * 384);
        }
      }
      h.pos = end;
    }
  }

  /** addPages() one call after the other, each with its own event. */
  #addPageByPage(gpa: bigint, source: Uint8Array, measured: boolean): SeamcallResult & { at: bigint } {
    // Not whole pages: PAGE.ADD refuses the source operand (R9) itself.
    if (source.byteLength === 0 || source.byteLength % 4096 !== 0) return { ...this.memPageAdd(gpaLevel(gpa, 0), source), at: gpa };
    let result: SeamcallResult = { status: TdxStatus.SUCCESS };
    let page = gpa;
    for (let off = 0; off < source.byteLength; off += 4096, page += 4096n) {
      const bytes = source.subarray(off, off + 4096);
      result = measured ? this.addMeasuredPage(page, bytes) : this.memPageAdd(gpaLevel(page, 0), bytes);
      if (result.status !== TdxStatus.SUCCESS) return { ...result, at: page };
    }
    return { ...result, at: page - 4096n };
  }

  /** One 128-byte MRTD block: ASCII operation name, GPA at byte 16 (tdh_mem_page_add.c / tdh_mr_extend.c). */
  #measure(op: MeasuredOperation, gpa: bigint): void {
    const h = this.#td.mrtdHash;
    h.room(128);
    h.buf.set(MEASUREMENT_BLOCK[op], h.pos);
    h.view.setBigUint64(h.pos + 16, gpa, true);
    h.pos += 128;
  }

  /** TDH.MR.FINALIZE: MRTD is fixed, the TD may run; PAGE.ADD is refused from now on, AUG allowed. */
  mrFinalize(): SeamcallResult & { mrtd?: Buffer } {
    const td = this.#td;
    if (td.finalized) return this.#done('TDH_MR_FINALIZE', null, { status: TdxStatus.OP_STATE_INCORRECT });
    td.finalized = true;
    td.mrtd = td.mrtdHash.digest();
    td.trace.record('hw', 'mrtd', { mrtd: td.mrtd.toString('hex') });
    return { ...this.#done('TDH_MR_FINALIZE', null, { status: TdxStatus.SUCCESS }), mrtd: td.mrtd };
  }

  /**
   * TDH.MEM.SEPT.ADD: give a FREE entry at `level` (PD up to the TD's top level) a SEPT page, so
   * the range can be mapped one level down. Its parent must exist: the host adds levels top-down.
   */
  memSeptAdd(rcx: bigint): SeamcallResult {
    return this.#transition('TDH_MEM_SEPT_ADD', 'SEPT_ADD', OPERAND_RULES.SEPT_ADD, rcx);
  }

  /** TDH.MEM.PAGE.AUG: FREE/REMOVED → PENDING (4K/2M), before or after MR.FINALIZE (op_state_lookup.c). */
  memPageAug(rcx: bigint): SeamcallResult {
    return this.#transition('TDH_MEM_PAGE_AUG', 'AUG', OPERAND_RULES.AUG, rcx);
  }

  /**
   * TDH.MEM.RANGE.BLOCK (tdh_mem_range_block.c): clears the entry's RWX. On a non-leaf (NL_MAPPED →
   * NL_BLOCKED) that stops every SEPT walk there, so the whole range below becomes unreachable.
   */
  memRangeBlock(rcx: bigint): SeamcallResult {
    return this.#transition('TDH_MEM_RANGE_BLOCK', 'BLOCK', OPERAND_RULES.BLOCK, rcx);
  }

  /** TDH.MEM.TRACK: advance the TD epoch; entries blocked before now count as TLB-tracked. */
  memTrack(): SeamcallResult {
    this.#td.epoch += 1n;
    return this.#done('TDH_MEM_TRACK', null, SUCCEEDED);
  }

  /**
   * TDH.MEM.RANGE.UNBLOCK (tdh_mem_range_unblock.c): a blocked entry back to its previous state.
   * TLB tracking is required only once the TD runs (op_state_lookup.c: not in INITIALIZED), and
   * its absence is reported against the SEPT tree, not RCX.
   */
  memRangeUnblock(rcx: bigint): SeamcallResult {
    return this.#transition('TDH_MEM_RANGE_UNBLOCK', 'UNBLOCK', OPERAND_RULES.UNBLOCK, rcx);
  }

  /** TDH.MEM.PAGE.REMOVE: → FREE; on a running TD only blocked and tracked entries. */
  memPageRemove(rcx: bigint): SeamcallResult {
    const running = this.#td.finalized;
    return this.#transition('TDH_MEM_PAGE_REMOVE', running ? 'REMOVE_RUNNING' : 'REMOVE', OPERAND_RULES.REMOVE, rcx);
  }

  /** TDH.MEM.PAGE.DEMOTE: a 2M/1G leaf becomes 512 leaves one level down, in its (unblocked) state. */
  memPageDemote(rcx: bigint): SeamcallResult {
    const running = this.#td.finalized;
    return this.#transition('TDH_MEM_PAGE_DEMOTE', running ? 'DEMOTE_RUNNING' : 'DEMOTE', OPERAND_RULES.DEMOTE, rcx);
  }

  /** TDH.MEM.PAGE.PROMOTE: 512 uniform MAPPED (or PENDING) leaves merge into one leaf. */
  memPagePromote(rcx: bigint): SeamcallResult {
    const running = this.#td.finalized;
    return this.#transition('TDH_MEM_PAGE_PROMOTE', running ? 'PROMOTE_RUNNING' : 'PROMOTE', OPERAND_RULES.PROMOTE, rcx);
  }

  /**
   * TDH.MEM.SEPT.RD (tdh_mem_sept_rd.c): the entry at `level`. When the walk stops above it (a
   * leaf, a FREE entry, a blocked non-leaf) the status is EPT_WALK_FAILED|RCX and the outputs
   * describe the entry it stopped on.
   */
  memSeptRead(rcx: bigint): SeptReadResult {
    const refused = this.#operand(OPERAND_RULES.SEPT_RD, rcx);
    if (refused !== TdxStatus.SUCCESS) return this.#done('TDH_MEM_SEPT_RD', rcx, { status: refused, level: 0, state: 'FREE' });
    const walk = this.#td.sept.walk(this.#operandGpa, this.#operandLevel);
    const status = walk.level === this.#operandLevel ? TdxStatus.SUCCESS : EPT_WALK_FAILED_RCX;
    return this.#done('TDH_MEM_SEPT_RD', rcx, { status, level: walk.level, state: walk.state });
  }
}

export { SeptState };
