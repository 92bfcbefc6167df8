// The oracle: judges one execution from what the trusted hardware model saw (its trace events and
// its page state), never from what the guest says about itself. The guest's own record (its
// acceptance bitmap) is only compared against that ground truth.
//
// Acceptance lifetimes: a page's lifetime starts when the hardware accepts it for the guest
// (TDX TDG.MEM.PAGE.ACCEPT success, tdg_mem_page_accept.c; SNP PVALIDATE validate with CF=0,
// APM Vol. 3 "PVALIDATE"; or the launch: TDH.MEM.PAGE.ADD / SNP_LAUNCH_UPDATE) and ends only when
// the GUEST asks to give the page up (TDX MapGPA to shared, GHCI 1.5 §3.2; SNP PVALIDATE rescind,
// Linux __set_pages_state). What the VMM does in between (REMOVE+AUG, RMPUPDATE) does not end it:
// that is exactly the replay the guest must notice.
import { TdxStatus } from '../platform/tdx/status.js';
import type { RunOutcome } from '../shared/outcome.js';
import type { TraceEvent, TraceValue } from '../shared/trace.js';
import type { StageHandover } from './stage-handover.js';

export type Verdict = 'detected' | 'benign' | 'finding';
export type Severity = 'high' | 'medium' | 'low' | 'internal';

/** Finding categories (issue 10 §2), with their severity and a sentence for READMEs. */
export const FINDING_CATEGORIES = {
  'double-acceptance': {
    severity: 'high',
    summary: 'the guest accepted a page again that it had already accepted in this lifetime (or carried on after the hardware refused such an accept), with no conversion to shared it asked for in between: the VMM can replay or zero live data',
  },
  'foreign-content': {
    severity: 'high',
    summary: "the guest read private memory whose content it did not put there itself in the page's current lifetime and that is not the zeroes of its own accept, and carried on: the hardware's content watch saw the read (src/platform/foreign-content.ts says which pages count on each platform)",
  },
  'latent-foreign-content': {
    severity: 'medium',
    summary: 'the guest asked for memory back as private and finished without accepting it again, while the hardware kept old contents mapped private: it did not read them, but its next use of that memory would',
  },
  'latent-double-acceptance': {
    severity: 'high',
    summary: "the guest's own acceptance record says unaccepted for a page it accepted itself (at the end of the run, or in what one boot stage handed the next even if that one stopped on it later): its next lazy accept would zero live data",
  },
  'unchecked-state-change': {
    severity: 'medium',
    summary: "the guest carried on after the VMM reported that a page-state change it asked for (MapGPA / PSC) failed, and the hardware confirms the memory is not in the state asked for: the guest's view of which memory is private and which is shared no longer matches the hardware's",
  },
  liveness: {
    severity: 'low',
    summary: 'the guest repeated the same page-state request (MapGPA / PSC) without progress until the budget ran out, instead of giving up',
  },
  'minivisor-bug': {
    severity: 'internal',
    summary: 'minivisor itself threw or broke an invariant (a bug in the emulator, not in the guest)',
  },
} as const satisfies Record<string, { severity: Severity; summary: string }>;
export type FindingCategory = keyof typeof FINDING_CATEGORIES;

export interface OracleFinding {
  category: FindingCategory;
  severity: Severity;
  /** What happened, in words, with the GPA and trace event when there is one. */
  detail: string;
  gpa?: bigint;
  /** seq of the trace event that showed it. */
  eventSeq?: number;
  /** The guest instruction that did it, when the hardware saw one (foreign-content: the read). */
  rip?: bigint;
}

export interface Judgement {
  verdict: Verdict;
  outcome: RunOutcome;
  /** Deduplicated by category: the first finding of each, in trace order. */
  findings: OracleFinding[];
}

const PAGE = 0x1000n;
const PAGE_SHIFT = 12n;
const PAGES_PER_REGION = 512;
const TDX_GPA_MASK = 0x000ffffffffff000n;
/** TDX_PAGE_ALREADY_ACCEPTED (bits 63:32; the low half carries the level): informational, bit 63 clear (TDX module status codes). */
const TDX_ALREADY_ACCEPTED_CLASS = TdxStatus.PAGE_ALREADY_ACCEPTED >> 32n;
/** Exits that show a guest went on with its work: page-state requests, accepts, HLT at the end. */
const CARRY_ON_POINTS = new Set(['tdx.mapGpa', 'tdx.onAcceptViolation', 'tdx.instructionHlt', 'snp.msr.psc', 'snp.ghcb.psc', 'snp.onHlt']);
/** Faults that show it used memory (when they hit the memory in question). */
const FAULT_POINTS = new Set(['tdx.onPrivateEptViolation', 'tdx.onPendingAccess', 'tdx.onSharedEptViolation', 'snp.onNpf']);
/** Identical page-state requests in a row, at the end of a budget-exhausted run, that count as a livelock. */
export const LIVENESS_REQUEST_RUN = 256;

/** The regions of a map that has none (never changed: a map's changes go into its own regions). */
const NO_REGIONS: ReadonlyMap<number, Uint8Array> = new Map();

/** Whether each shared region (never changed in place) holds a mark, once worked out. */
const sharedRegionMarks = new WeakMap<Uint8Array, boolean>();
/** The keys of each table of shared regions (never changed once shared), in ascending order. */
const sharedKeys = new WeakMap<ReadonlyMap<number, Uint8Array>, readonly number[]>();

function sharedRegionMarked(r: Uint8Array): boolean {
  let marked = sharedRegionMarks.get(r);
  if (marked === undefined) {
    marked = r.some((v) => v !== 0);
    sharedRegionMarks.set(r, marked);
  }
  return marked;
}

function sortedKeysOf(table: ReadonlyMap<number, Uint8Array>): readonly number[] {
  let keys = sharedKeys.get(table);
  if (!keys) {
    keys = [...table.keys()].sort((a, b) => a - b);
    sharedKeys.set(table, keys);
  }
  return keys;
}

/**
 * Pages the guest holds accepted in the current lifetime, stored sparsely per 2 MiB region. Page
 * numbers are plain numbers inside (any 64-bit GPA, even plus a 64-bit length, has a page number
 * below 2^53, exact in a double): a 2 MiB accept marks 512 pages, and BigInt arithmetic per page
 * showed in every execution.
 */
export class LifetimeMap {
  /**
   * Regions shared with the maps cloned from this one or that it was cloned from: never changed
   * in place. Every execution clones the honest prefix's lifetimes and changes few regions, so a
   * clone shares them all (issue 10: copying every region, then even the table of them, showed).
   */
  #shared: ReadonlyMap<number, Uint8Array>;
  /** Regions this map made or copied since it was cloned (absent: none); they shadow #shared. */
  #own: Map<number, Uint8Array> | undefined;

  constructor(shared: ReadonlyMap<number, Uint8Array> = NO_REGIONS) {
    this.#shared = shared;
  }

  #region(key: number): Uint8Array | undefined {
    return this.#own?.get(key) ?? this.#shared.get(key);
  }

  #writableRegion(key: number, create: boolean): Uint8Array | undefined {
    const own = this.#own?.get(key);
    if (own) return own;
    const shared = this.#shared.get(key);
    if (!shared && !create) return undefined;
    const r = shared ? shared.slice() : new Uint8Array(PAGES_PER_REGION);
    (this.#own ??= new Map()).set(key, r);
    return r;
  }

  has(gpa: bigint): boolean {
    const page = pageOf(gpa);
    return (this.#region(Math.floor(page / PAGES_PER_REGION))?.[page % PAGES_PER_REGION] ?? 0) !== 0;
  }

  /**
   * Marks [gpa, gpa+bytes) (`value` false: unmarks); returns the first page that was already
   * marked, if any. `origin`: whether the lifetime began with the guest's own accept, or with the
   * launch (pages the VMM added and the hardware measured, which the guest never accepted itself).
   */
  set(gpa: bigint, bytes: bigint, value: boolean, origin: 'guest' | 'launch' = 'guest'): bigint | undefined {
    let already: number | undefined;
    const mark = value ? (origin === 'guest' ? 1 : 2) : 0;
    const end = pageOf(gpa + bytes);
    for (let page = pageOf(gpa); page < end;) {
      const key = Math.floor(page / PAGES_PER_REGION);
      const from = page % PAGES_PER_REGION;
      const to = Math.min(PAGES_PER_REGION, from + (end - page));
      // Unmarking pages already unmarked changes nothing: no copy of a shared region for it.
      const r = value || this.#anyMarked(key, from, to) ? this.#writableRegion(key, value) : undefined;
      if (r) {
        if (value && already === undefined) {
          for (let i = from; i < to; i++) if (r[i] !== 0) { already = key * PAGES_PER_REGION + i; break; }
        }
        r.fill(mark, from, to);
      }
      page += to - from;
    }
    return already === undefined ? undefined : BigInt(already) << PAGE_SHIFT;
  }

  /** Whether any page [from, to) of region `key` is marked. */
  #anyMarked(key: number, from: number, to: number): boolean {
    const r = this.#region(key);
    if (!r) return false;
    for (let i = from; i < to; i++) if (r[i] !== 0) return true;
    return false;
  }

  /** Pages in [gpa, gpa+bytes) whose lifetime the guest's own accept began, in address order. */
  *marked(gpa: bigint, bytes: bigint): Generator<bigint> {
    const end = pageOf(gpa + bytes);
    for (let page = pageOf(gpa); page < end;) {
      const key = Math.floor(page / PAGES_PER_REGION);
      const from = page % PAGES_PER_REGION;
      const to = Math.min(PAGES_PER_REGION, from + (end - page));
      const r = this.#region(key);
      if (r) for (let i = from; i < to; i++) if (r[i] === 1) yield BigInt(key * PAGES_PER_REGION + i) << PAGE_SHIFT;
      page += to - from;
    }
  }

  /** Every marked page (either origin), in address order. */
  *all(): Generator<bigint> {
    const own = this.#own;
    const keys = own ? [...new Set([...this.#shared.keys(), ...own.keys()])].sort((a, b) => a - b) : sortedKeysOf(this.#shared);
    for (const key of keys) {
      const mine = own?.get(key);
      // A shared region never changes, so whether it holds a mark is worked out once for all the
      // maps that share it: every execution's oracle clones the honest prefix's (issue 10).
      const r = mine ?? this.#shared.get(key)!;
      if (!mine && !sharedRegionMarked(r)) continue;
      // Four pages at a time: most of a region an execution unmarked again is unmarked (0.8% of an
      // SNP campaign's CPU profile was this loop, page by page). Regions are their own buffers
      // (made new or sliced), so their 32-bit view is aligned.
      const words = new Uint32Array(r.buffer, r.byteOffset, PAGES_PER_REGION / 4);
      for (let w = 0; w < words.length; w++) {
        if (words[w] === 0) continue;
        for (let i = w * 4; i < w * 4 + 4; i++) if (r[i] !== 0) yield BigInt(key * PAGES_PER_REGION + i) << PAGE_SHIFT;
      }
    }
  }

  /** A map with the same pages marked; what either marks from now on leaves the other as it is. */
  clone(): LifetimeMap {
    if (this.#own) {
      // The regions this map changed become shared too (neither map changes them in place again).
      const merged = new Map(this.#shared);
      for (const [key, r] of this.#own) merged.set(key, r);
      this.#shared = merged;
      this.#own = undefined;
    }
    return new LifetimeMap(this.#shared);
  }
}

/** The 4 KiB page number of `gpa` (below 2^65), as a number: exact, being below 2^53. */
function pageOf(gpa: bigint): number {
  return Number(gpa >> PAGE_SHIFT);
}

/** The guest's own record of accepted memory, read from guest memory at the end of a run. */
export interface GuestAcceptanceRecord {
  /** Units the guest's bitmap marks unaccepted: [start, end) GPA ranges. */
  unacceptedRanges: { start: bigint; end: bigint }[];
}

export interface OracleContext {
  /** The hardware's current answer: is this 4 KiB page accepted (SEPT MAPPED / RMP validated)? */
  hardwareAccepted(gpa: bigint): boolean;
  /** The guest's record, when it can be read (the kernel stage has run far enough); undefined otherwise. */
  guestRecord(): GuestAcceptanceRecord | undefined;
}

/** Fed every trace event of one execution in order; then `judge` gives the verdict. */
export class AcceptanceOracle {
  readonly lifetimes: LifetimeMap;
  readonly #findings: OracleFinding[] = [];
  readonly #seen = new Set<FindingCategory>();
  /** Accepts the hardware refused as already done, waiting to see whether the guest stops. */
  readonly #refusedAccepts: { gpa: bigint; seq: number; what: string }[] = [];
  /** Page-state changes the VMM reported failed while the hardware did not make them, waiting likewise. */
  readonly #refusedChanges: { gpa: bigint; seq: number; to: string; bytes: bigint; carriedOn?: boolean }[] = [];
  /** seq of the guest's last acceptance work (an accept, a PVALIDATE, a page-state request): did it carry on? */
  #lastAcceptanceWork = -1;
  /** The same page-state request (MapGPA / PSC), repeated exit after exit with no other exit between: a retry loop without progress. */
  #requestRun = 0;
  #requestKey = '';
  #exitWithoutRequest = false;
  /** Pages the guest asked to have back as private and has not accepted since. */
  #reclaimed = new LifetimeMap();
  /** The first read of foreign content the hardware's content watch saw, waiting to see whether the guest stops. */
  #foreignRead: { gpa: bigint; rip: bigint | undefined; seq: number } | undefined;

  constructor(initial: LifetimeMap = new LifetimeMap()) {
    this.lifetimes = initial;
  }

  /**
   * An oracle that has observed everything this one has; what either observes from now on leaves
   * the other as it is. An execution from a snapshot forks the oracle that observed the run up to
   * the snapshot, instead of observing that prefix again (issue 10). Lifetime regions are shared
   * until one side changes them.
   */
  fork(): AcceptanceOracle {
    const copy = new AcceptanceOracle(this.lifetimes.clone());
    copy.#findings.push(...this.#findings.map((f) => ({ ...f })));
    for (const c of this.#seen) copy.#seen.add(c);
    copy.#refusedAccepts.push(...this.#refusedAccepts.map((a) => ({ ...a })));
    copy.#refusedChanges.push(...this.#refusedChanges.map((c) => ({ ...c })));
    copy.#lastAcceptanceWork = this.#lastAcceptanceWork;
    copy.#requestRun = this.#requestRun;
    copy.#requestKey = this.#requestKey;
    copy.#exitWithoutRequest = this.#exitWithoutRequest;
    copy.#reclaimed = this.#reclaimed.clone();
    copy.#foreignRead = this.#foreignRead && { ...this.#foreignRead };
    return copy;
  }

  #report(category: FindingCategory, detail: string, gpa?: bigint, eventSeq?: number, rip?: bigint): void {
    if (this.#seen.has(category)) return;
    this.#seen.add(category);
    const f: OracleFinding = { category, severity: FINDING_CATEGORIES[category].severity, detail };
    if (gpa !== undefined) f.gpa = gpa;
    if (eventSeq !== undefined) f.eventSeq = eventSeq;
    if (rip !== undefined) f.rip = rip;
    this.#findings.push(f);
  }

  #accepted(gpa: bigint, bytes: bigint, seq: number, what: string): void {
    this.#reclaimed.set(gpa, bytes, false);
    const again = this.lifetimes.set(gpa, bytes, true);
    if (again !== undefined) {
      this.#report('double-acceptance', `${what} of 0x${again.toString(16)} succeeded although the guest had already accepted it and never asked to convert it to shared since`, again, seq);
    }
  }

  /** The guest asked to give [gpa, gpa+bytes) up (MapGPA to shared, PVALIDATE rescind). */
  released(gpa: bigint, bytes: bigint): void {
    this.lifetimes.set(gpa, bytes, false);
  }

  observe(e: TraceEvent): void {
    this.observeFields(e.seq, e.type, e);
  }

  /** observe() of the event numbered `seq`, of type `type`, with these fields (a TraceObserver's view, trace.ts). */
  observeFields(seq: number, type: string, e: Readonly<Record<string, TraceValue>>): void {
    if (type === 'td-exit' || type === 'vmgexit' || type === 'npf') {
      if (this.#exitWithoutRequest) {
        this.#requestRun = 0;
        this.#requestKey = '';
      }
      this.#exitWithoutRequest = true;
    } else if (type === 'guest-request' && typeof e.key === 'string') {
      this.#exitWithoutRequest = false;
      this.#requestRun = e.key === this.#requestKey ? this.#requestRun + 1 : 1;
      this.#requestKey = e.key;
    }
    if ((type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT') || type === 'pvalidate' || type === 'guest-request') this.#lastAcceptanceWork = seq;
    switch (type) {
      case 'state-change-refused':
        // Recorded by the harness when the VMM answered a page-state request with a failure:
        // `reached` is the hardware's view of whether the pages are in the state asked for anyway.
        if (e.reached === false && typeof e.gpa === 'bigint' && typeof e.bytes === 'bigint') {
          this.#refusedChanges.push({ gpa: e.gpa, bytes: e.bytes, seq, to: String(e.to) });
        }
        return;
      case 'exit-after-refusal':
        // The guest's first exit after an unmade change that is not its own output (the harness
        // skips those: a guest may print a warning and go on) shows whether it went on as if the
        // change had been made: another page-state request, an accept, a HLT (it finished), or a
        // fault on the very memory it was told was not converted. Anything else (a fault
        // elsewhere, the fatal report) is no evidence that it carried on; finishing is.
        for (const c of this.#refusedChanges) {
          if (c.carriedOn !== undefined) continue;
          const point = String(e.point);
          const touched = typeof e.gpa === 'bigint' && e.gpa >= c.gpa && e.gpa < c.gpa + c.bytes;
          c.carriedOn = CARRY_ON_POINTS.has(point) || (touched && FAULT_POINTS.has(point));
        }
        return;
      case 'tdcall': {
        if (e.leaf !== 'MEM_PAGE_ACCEPT' || typeof e.status !== 'bigint' || typeof e.rcx !== 'bigint') return;
        const gpa = e.rcx & TDX_GPA_MASK;
        const bytes = (e.rcx & 7n) === 1n ? 0x200000n : PAGE;
        if (e.status === 0n) this.#accepted(gpa, bytes, seq, 'TDG.MEM.PAGE.ACCEPT');
        else if (e.status >> 32n === TDX_ALREADY_ACCEPTED_CLASS) this.#refusedAccepts.push({ gpa, seq: seq, what: 'TDG.MEM.PAGE.ACCEPT returned TDX_PAGE_ALREADY_ACCEPTED' });
        return;
      }
      case 'pvalidate': {
        if (e.rc !== 0 || typeof e.gpa !== 'bigint') return;
        const bytes = e.size === '2m' ? 0x200000n : PAGE;
        if (e.validate !== true) {
          if (e.cf === false) this.released(e.gpa, bytes);
        } else if (e.cf === false) {
          this.#accepted(e.gpa, bytes, seq, 'PVALIDATE');
        } else {
          this.#refusedAccepts.push({ gpa: e.gpa, seq: seq, what: 'PVALIDATE left the page unchanged (CF=1)' });
        }
        return;
      }
      case 'seamcall':
        // TDH.MEM.PAGE.ADD before the TD runs: the page (with `pages`, each of them) is the guest's, measured, accepted.
        if (e.leaf === 'TDH_MEM_PAGE_ADD' && e.status === 0n && typeof e.rcx === 'bigint') {
          this.lifetimes.set(e.rcx & TDX_GPA_MASK, PAGE * BigInt(typeof e.pages === 'number' ? e.pages : 1), true, 'launch');
        }
        return;
      case 'launch-update':
        // With `pages` (trace schema 3), each of that many pages from `gpa` on.
        if (e.result === 'SUCCESS' && typeof e.gpa === 'bigint') this.lifetimes.set(e.gpa, PAGE * BigInt(typeof e.pages === 'number' ? e.pages : 1), true, 'launch');
        return;
      case 'guest-release':
        // The adversary layer records the guest's own request to convert memory to shared.
        if (typeof e.gpa === 'bigint' && typeof e.bytes === 'bigint') this.released(e.gpa, e.bytes);
        return;
      case 'guest-reclaim':
        // …and to have it back as private: until it accepts it, its content is not its own.
        if (typeof e.gpa === 'bigint' && typeof e.bytes === 'bigint') this.#reclaimed.set(e.gpa, e.bytes, true);
        return;
      case 'foreign-read':
        // The hardware's content watch: the guest read a byte of private memory it did not write
        // itself in the page's lifetime (src/platform/foreign-content.ts).
        if (!this.#foreignRead && typeof e.gpa === 'bigint') this.#foreignRead = { gpa: e.gpa, rip: typeof e.rip === 'bigint' ? e.rip : undefined, seq };
        return;
      default:
    }
  }

  /**
   * The guest entered `h.stage`; `h` holds the pages its record called unaccepted right then while
   * the hardware held them accepted (captured at that exit, see stage-handover.ts). Call it right
   * after observing the `stage` event, so the lifetimes are those of that moment. Pages that the
   * launch added, or that the guest never accepted, do not count (nothing of the guest's to zero).
   */
  handedOver(h: StageHandover): void {
    for (const range of h.heldButRecordedUnaccepted) {
      for (const gpa of this.lifetimes.marked(range.start, range.end - range.start)) {
        this.#report('latent-double-acceptance', `when the guest entered the ${h.stage} stage, the record it was handed (bitmap and memory map) marked 0x${gpa.toString(16)} unaccepted, but the guest had accepted it itself and the hardware held it accepted`, gpa, h.seq);
        return;
      }
    }
  }

  judge(outcome: RunOutcome, ctx: OracleContext): Judgement {
    if (outcome.outcome === 'vmm-error' && /^internal error|^hardware model/.test(outcome.reason)) {
      this.#report('minivisor-bug', outcome.reason);
    }
    // Reading foreign content and then stopping on the fatal path is the guest noticing (its own
    // check read it); reading it and going on is using it.
    const read = this.#foreignRead;
    if (read && outcome.outcome !== 'guest-fatal') {
      const at = read.rip === undefined ? '' : ` at RIP 0x${read.rip.toString(16)}`;
      this.#report('foreign-content', `the guest read 0x${read.gpa.toString(16)}${at}, private content it did not put there itself in this lifetime of the page (nor the zeroes of its own accept), and carried on`, read.gpa, read.seq, read.rip);
    }
    // The guest carried on past a refusal when it went on to do acceptance work (another accept,
    // PVALIDATE or page-state request) or finished: stopping on the fatal path is what it must do.
    // A run the VMM cuts short right after the refusal (denial of service) is no evidence either way.
    const carriedOn = (seq: number) => outcome.outcome !== 'guest-fatal' && (outcome.outcome === 'done' || this.#lastAcceptanceWork > seq);
    const r = this.#refusedAccepts.find((a) => carriedOn(a.seq));
    if (r) this.#report('double-acceptance', `${r.what} for 0x${r.gpa.toString(16)} and the guest carried on instead of stopping`, r.gpa, r.seq);
    // Finishing (`done`) after an unmade change is carrying on, whatever the exit just after it was.
    const c = this.#refusedChanges.find((a) => outcome.outcome !== 'guest-fatal' && (a.carriedOn === true || outcome.outcome === 'done'));
    if (c) {
      this.#report('unchecked-state-change', `the VMM reported that converting 0x${c.gpa.toString(16)}+0x${c.bytes.toString(16)} to ${c.to} failed, the hardware had not converted it, and the guest carried on instead of stopping`, c.gpa, c.seq);
    }
    if (outcome.outcome === 'done') {
      this.#checkGuestRecord(ctx);
      this.#checkReclaimed(ctx);
    }
    if (outcome.outcome === 'budget' && this.#requestRun >= LIVENESS_REQUEST_RUN) {
      this.#report('liveness', `the run ended on its instruction budget with the guest repeating the same page-state request (${this.#requestKey}) ${this.#requestRun} times in a row without progress`);
    }
    const findings = [...this.#findings];
    const verdict: Verdict = findings.length > 0 ? 'finding' : outcome.outcome === 'guest-fatal' ? 'detected' : 'benign';
    return { verdict, outcome, findings };
  }

  /**
   * Latent foreign content: memory asked back as private, never accepted, yet mapped private by
   * the hardware at the end. Whether the guest read it is the content watch's business
   * (foreign-content); this is the end state only: the next use of that memory would read it.
   */
  #checkReclaimed(ctx: OracleContext): void {
    if (this.#seen.has('foreign-content')) return; // the guest did read such content: the latent form adds nothing
    for (const gpa of this.#reclaimed.all()) {
      if (!ctx.hardwareAccepted(gpa)) continue; // not usable without an accept: nothing to read
      this.#report('latent-foreign-content', `the guest asked for 0x${gpa.toString(16)} back as private and finished without accepting it again, while the hardware kept its old contents mapped private`, gpa);
      return;
    }
  }

  /** Latent double acceptance: the guest's bitmap says unaccepted, the hardware and the guest's lifetime say accepted. */
  #checkGuestRecord(ctx: OracleContext): void {
    let record: GuestAcceptanceRecord | undefined;
    try {
      record = ctx.guestRecord();
    } catch {
      return; // guest memory is untrusted input: an unreadable record is no evidence either way
    }
    for (const range of record?.unacceptedRanges ?? []) {
      for (const gpa of this.lifetimes.marked(range.start, range.end - range.start)) {
        if (!ctx.hardwareAccepted(gpa)) continue; // the VMM took it away: denial of service, not this
        this.#report('latent-double-acceptance', `the guest's bitmap marks 0x${gpa.toString(16)} unaccepted, but the guest accepted it itself and the hardware still holds it accepted`, gpa);
        return;
      }
    }
  }
}
