// The Secure EPT: per-GPA entry state at every level from the TD's top level (PML4, or PML5 for
// GPAW 52) down to 4K, stored sparsely (one Map per level keyed by the GPA's index at that level;
// the 4K level as one 512-slot table per 2 MiB range), so memory follows what is mapped, not the guest size. An entry that is absent is FREE. Only the root page
// above the top level exists from the start; the host adds every level below it with
// TDH.MEM.SEPT.ADD. It drives the page gate: a private page is accessible iff the walk to it ends
// on a MAPPED leaf (a blocked non-leaf on the way closes everything below it).
//
// Keys are numbers (the GPA divided by the level's size; GPAs are below 2^52, so exact): BigInt
// keys made every lookup hash a BigInt and every key a BigInt shift, the largest single cost of
// an ACCEPT exit (issue 11).
import type { PageGate } from '../../memory/page-gate.js';
import type { Snapshottable } from '../../shared/snapshottable.js';
import { u64ToNumber } from '../../shared/u64.js';
import {
  ENTRIES_PER_TABLE, LEVEL_BYTES, LEVEL_SIZE, SEPT_STATE_NAMES, isLeafState, septEntryKey, septStateIndex, walkContinuesBelow, type SeptLevel, type SeptStateName,
} from './sept-states.js';

export interface SeptEntry {
  state: SeptStateName;
  /** 2M ACCEPT progress in 4K chunks (`accept_counter` in the module's SEPT entry). */
  acceptCounter: number;
  /** The TD epoch when the entry was blocked (TLB tracking is done once the epoch moved on). */
  blockEpoch: bigint;
}

export interface SeptWalk {
  /** The level the walk stopped at: the requested one, or a larger one holding a leaf, a FREE entry or a blocked non-leaf. */
  level: SeptLevel;
  requestedLevel: SeptLevel;
  state: SeptStateName;
  /** GPA of the entry's range (aligned to `level`). */
  base: bigint;
  /** The entry's PS bit (`is_secure_ept_leaf_entry`), as in the ACCEPT exit qualification's is_leaf. */
  isLeaf: boolean;
}

/**
 * The 4K leaves of one 2 MiB range, a slot per page (undefined: FREE). A table, not entries in a
 * Map: a DEMOTE sets 512 of them and a MapGPA frees and restores as many, and the fuzzer's restore
 * took them out again; the Map then rehashed on every such execution (its deleted slots filled it),
 * ~40 µs a DEMOTE and most of a TDX campaign's page faults from JavaScript (issue 10).
 */
type LeafTable = (Readonly<SeptEntry> | undefined)[];

/** A saved copy of every level's entries (maps and leaf tables are copied; entries never change once stored). */
export interface SeptTables {
  /** Levels above 4K, by level (index 0 is unused). */
  readonly levels: ReadonlyArray<ReadonlyMap<number, Readonly<SeptEntry>>>;
  /** The 4K level: leaf tables by their 2 MiB range's key at level 1. */
  readonly leaves: ReadonlyMap<number, readonly (Readonly<SeptEntry> | undefined)[]>;
}

const copyLevels = (levels: SeptTables['levels']): Map<number, Readonly<SeptEntry>>[] => levels.map((m) => new Map(m));
const copyLeaves = (leaves: SeptTables['leaves']): Map<number, LeafTable> => new Map([...leaves].map(([k, t]) => [k, t.slice()]));

/** An undo log record's level for a whole leaf table (its key the table's; what it held, a copy, or undefined if absent). */
const LEAF_TABLE = -1;

/**
 * The entry of each state with both counters 0, shared by every entry that has them (most do):
 * entries are never changed in place, so a DEMOTE's 512 children, a launch range's leaves and
 * an AUG need no object of their own, and the undo log and snapshots keep entries as they are.
 */
const FRESH_ENTRY: Readonly<Record<SeptStateName, Readonly<SeptEntry>>> = Object.fromEntries(
  SEPT_STATE_NAMES.map((state) => [state, Object.freeze({ state, acceptCounter: 0, blockEpoch: 0n })]),
) as Record<SeptStateName, Readonly<SeptEntry>>;

/** FRESH_ENTRY by septStateIndex, for a state that varies (FRESH_ENTRY[state] there is a megamorphic load). */
const FRESH_ENTRIES: readonly Readonly<SeptEntry>[] = SEPT_STATE_NAMES.map((state) => FRESH_ENTRY[state]);

function freshEntry(state: SeptStateName): Readonly<SeptEntry> {
  return FRESH_ENTRIES[septStateIndex(state)]!;
}

function entryOf(state: SeptStateName, acceptCounter: number, blockEpoch: bigint): Readonly<SeptEntry> {
  return acceptCounter === 0 && blockEpoch === 0n ? freshEntry(state) : { state, acceptCounter, blockEpoch };
}

/** setState's counters when the caller changes none (one object, read only). */
const NO_FIELDS: Partial<Omit<SeptEntry, 'state'>> = Object.freeze({});

/** Each level's alignment mask, ~(size - 1), built once: alignDown is on every walk and SEAMCALL. */
const ALIGN_MASK: Readonly<Record<SeptLevel, bigint>> = {
  0: ~(LEVEL_SIZE[0] - 1n), 1: ~(LEVEL_SIZE[1] - 1n), 2: ~(LEVEL_SIZE[2] - 1n), 3: ~(LEVEL_SIZE[3] - 1n), 4: ~(LEVEL_SIZE[4] - 1n),
};

/** Whether an entry in `state` can leave any of its range open (#openMappedLeaves): a MAPPED leaf, or a walk below it. */
function opensRange(state: SeptStateName): boolean {
  return state === 'MAPPED' || walkContinuesBelow(state);
}

/**
 * Whether a walk to `level` passes every entry above it, for the one table (a key at level + 1)
 * it was last asked about, good only while `changes` (bumped on any change above `level`) is as
 * it was then.
 */
class PassesAboveMemo {
  changes = 0;
  key = -1;
  checked = -1;
  passes = false;
  constructor(readonly level: 0 | 1) {}
}

export class Sept implements Snapshottable<SeptTables> {
  readonly topLevel: SeptLevel;
  /** Levels above 4K (index 0 stays empty: the 4K level is #leaves). */
  #levels: Map<number, Readonly<SeptEntry>>[];
  #leaves = new Map<number, LeafTable>();
  readonly #gate: PageGate | undefined;
  readonly #ramBytes: bigint;
  /**
   * The saved tables the live ones started from at the last save or load, and an undo log of every
   * entry change since (level, key, the entry before: a copy, or undefined if absent): loading that
   * same state again (the fuzzer restores one snapshot per execution) undoes the log, newest first,
   * instead of copying every table, which was ~4% of an execution. A log, not a map of first
   * changes: a DEMOTE adds 512 entries, and a map lookup and insert each showed.
   */
  #base: SeptTables | undefined;
  readonly #undoLevels: (SeptLevel | typeof LEAF_TABLE)[] = [];
  readonly #undoKeys: number[] = [];
  readonly #undoEntries: (Readonly<SeptEntry> | LeafTable | undefined)[] = [];
  /** Inside batchGate: the private gate updates not applied yet, in order. */
  #deferredGate: { base: bigint; length: bigint; open: boolean }[] | undefined;
  /**
   * Whether a walk to the 4K level passes every level above it, for the 2 MiB range walked last.
   * Walks to 4K pages cluster in one 2 MiB range at a time (a MapGPA's BLOCK/TRACK/REMOVE of each
   * page, the kernel's ACCEPT of each 4K page of a demoted 2M page), and each walked every level
   * from the top again.
   */
  readonly #leafTableMemo = new PassesAboveMemo(0);
  /**
   * The same for walks to the 2M level, per 1 GiB range. Every 2M ACCEPT and AUG changes an entry
   * at the 2M level (so the memo above is stale each time) and walks to that level three or four
   * times, each from the top (issue 11).
   */
  readonly #pdTableMemo = new PassesAboveMemo(1);

  /** `gate` is optional so the table can be unit-tested without a VM. */
  constructor(ramBytes: bigint, topLevel: SeptLevel, gate?: PageGate) {
    this.#ramBytes = ramBytes;
    this.topLevel = topLevel;
    this.#levels = Array.from({ length: topLevel + 1 }, () => new Map<number, Readonly<SeptEntry>>());
    this.#gate = gate;
  }

  /** The page gate is not part of it: the machine's snapshot restores the gate. */
  saveState(): SeptTables {
    const state: SeptTables = { levels: copyLevels(this.#levels), leaves: copyLeaves(this.#leaves) };
    this.#startFrom(state);
    return state;
  }

  loadState(state: SeptTables): void {
    this.#changedAt(this.topLevel);
    if (state === this.#base) {
      // Newest first: the oldest record of an entry, what it was at the save or load, is put back last.
      for (let i = this.#undoKeys.length - 1; i >= 0; i--) {
        const level = this.#undoLevels[i]!, key = this.#undoKeys[i]!, was = this.#undoEntries[i];
        if (level === LEAF_TABLE) {
          if (was) this.#leaves.set(key, was as LeafTable);
          else this.#leaves.delete(key);
        } else {
          this.#put(level, key, was as Readonly<SeptEntry> | undefined);
        }
      }
    } else {
      this.#levels = copyLevels(state.levels);
      this.#leaves = copyLeaves(state.leaves);
    }
    this.#startFrom(state);
  }

  /** The entry at (`level`, `key`), undefined if FREE. */
  #get(level: SeptLevel, key: number): Readonly<SeptEntry> | undefined {
    if (level !== 0) return this.#levels[level]!.get(key);
    return this.#leaves.get(Math.floor(key / ENTRIES_PER_TABLE))?.[key % ENTRIES_PER_TABLE];
  }

  /** Stores the entry at (`level`, `key`), or makes it FREE (undefined). A leaf table, once made, stays (its slots are cleared). */
  #put(level: SeptLevel, key: number, entry: Readonly<SeptEntry> | undefined): void {
    if (level !== 0) {
      if (entry) this.#levels[level]!.set(key, entry);
      else this.#levels[level]!.delete(key);
      return;
    }
    const tableKey = Math.floor(key / ENTRIES_PER_TABLE);
    let table = this.#leaves.get(tableKey);
    if (!table) {
      if (!entry) return;
      table = new Array<Readonly<SeptEntry> | undefined>(ENTRIES_PER_TABLE).fill(undefined);
      this.#leaves.set(tableKey, table);
    }
    table[key % ENTRIES_PER_TABLE] = entry;
  }

  /** Call before replacing or removing the whole leaf table `tableKey`: logs a copy of it (once there is a state to go back to). */
  #willChangeTable(tableKey: number): void {
    if (this.#base === undefined) return;
    this.#undoLevels.push(LEAF_TABLE);
    this.#undoKeys.push(tableKey);
    this.#undoEntries.push(this.#leaves.get(tableKey)?.slice());
  }

  #startFrom(state: SeptTables): void {
    this.#base = state;
    this.#undoLevels.length = 0;
    this.#undoKeys.length = 0;
    this.#undoEntries.length = 0;
  }

  /** Call before changing or removing the entry at (`level`, `key`): logs what it was (once there is a state to go back to). */
  #willChange(level: SeptLevel, key: number): void {
    if (this.#base !== undefined) this.#logChange(level, key, this.#get(level, key));
  }

  /** #willChange when the caller has the entry (`was`) at hand already. */
  #logChange(level: SeptLevel, key: number, was: Readonly<SeptEntry> | undefined): void {
    if (this.#base === undefined) return; // a boot that never snapshots keeps no log
    this.#undoLevels.push(level);
    this.#undoKeys.push(key);
    this.#undoEntries.push(was);
  }

  static alignDown(gpa: bigint, level: SeptLevel): bigint {
    return gpa & ALIGN_MASK[level];
  }

  /** Read-only: change entries through setState (a restore puts back only what went through it). */
  entry(level: SeptLevel, gpa: bigint): Readonly<SeptEntry> | undefined {
    return level >= 0 && level <= this.topLevel ? this.#get(level, septEntryKey(u64ToNumber(gpa), level)) : undefined;
  }

  stateAt(level: SeptLevel, gpa: bigint): SeptStateName {
    return this.#stateOf(level, u64ToNumber(gpa));
  }

  /** stateAt for the GPA `at` as a number. */
  #stateOf(level: SeptLevel, at: number): SeptStateName {
    return level >= 0 && level <= this.topLevel ? this.#get(level, septEntryKey(at, level))?.state ?? 'FREE' : 'FREE';
  }

  /**
   * `secure_ept_walk` (`sept_manager.c`): from the top level down to `level`, stopping early at
   * any entry the walk cannot pass (a leaf, a FREE entry, or a non-leaf whose RWX is 0: blocked).
   * `level` is at most the top level (every caller's operand rules say so).
   */
  walk(gpa: bigint, level: SeptLevel): SeptWalk {
    const at = u64ToNumber(gpa);
    if (level === 0 && this.#reachesLeafTable(at)) {
      const state = this.#get(0, septEntryKey(at, 0))?.state ?? 'FREE';
      return { level: 0, requestedLevel: 0, state, base: Sept.alignDown(gpa, 0), isLeaf: isLeafState(state) };
    }
    if (level === 1 && this.#reachesPdTable(at)) {
      const state = this.#levels[1]!.get(septEntryKey(at, 1))?.state ?? 'FREE';
      return { level: 1, requestedLevel: 1, state, base: Sept.alignDown(gpa, 1), isLeaf: isLeafState(state) };
    }
    for (let l = this.topLevel; ; l = (l - 1) as SeptLevel) {
      const state = this.#get(l, septEntryKey(at, l))?.state ?? 'FREE';
      if (l === level || !walkContinuesBelow(state)) {
        return { level: l, requestedLevel: level, state, base: Sept.alignDown(gpa, l), isLeaf: isLeafState(state) };
      }
    }
  }

  /**
   * The state of the entry at `level` when the walk (as walk()) reaches it, else undefined (it
   * stops above): walk() without building its result, for the SEAMCALLs that act on exactly one
   * level (several per exit when a VMM converts memory).
   */
  reachedState(gpa: bigint, level: SeptLevel): SeptStateName | undefined {
    const at = u64ToNumber(gpa);
    return this.#reachableAt(level, at) ? this.#stateOf(level, at) : undefined;
  }

  /** Sets one entry's state (keeping its counters unless told) and re-derives the gate under it. */
  setState(level: SeptLevel, gpa: bigint, state: SeptStateName, fields: Partial<Omit<SeptEntry, 'state'>> = NO_FIELDS): void {
    const key = septEntryKey(u64ToNumber(gpa), level);
    const old = this.#get(level, key);
    const oldState = old?.state;
    this.#logChange(level, key, old);
    this.#changedAt(level);
    this.#put(level, key, state === 'FREE' ? undefined
      : entryOf(state, fields.acceptCounter ?? old?.acceptCounter ?? 0, fields.blockEpoch ?? old?.blockEpoch ?? 0n));
    // A new empty SEPT page (FREE → NL_MAPPED) opens nothing. Neither does a change between two
    // states that both close the entry's whole range (no MAPPED leaf, no walk below it), such as
    // the FREE → PENDING of every AUG: the range was closed and stays so. Any other change may.
    if (oldState !== state && !(state === 'NL_MAPPED' && old === undefined) && (opensRange(oldState ?? 'FREE') || opensRange(state))) {
      this.#refreshGate(level, Sept.alignDown(gpa, level), state);
    }
  }

  /**
   * Every 4K leaf of [gpa, gpa + pages × 4 KiB) is FREE and the walk reaches it: what a
   * TDH.MEM.PAGE.ADD operand walk checks for each page, answered once per 2 MiB for the levels
   * above. `gpa` is 4 KiB-aligned.
   */
  freeReachableLeaves(gpa: bigint, pages: number): boolean {
    const first = u64ToNumber(gpa) / LEVEL_BYTES[0]!;
    for (let i = 0; i < pages; i++) if (this.#get(0, first + i) !== undefined) return false;
    for (let pd = Math.floor(first / ENTRIES_PER_TABLE); pd <= Math.floor((first + pages - 1) / ENTRIES_PER_TABLE); pd++) {
      if (!this.#reachable(0, BigInt(pd) * LEVEL_SIZE[1])) return false;
    }
    return true;
  }

  /**
   * setState(0, page, state) of each page of a range that freeReachableLeaves() holds for, with
   * the gate derived once for the whole range instead of once per page.
   */
  setFreeLeaves(gpa: bigint, pages: number, state: Exclude<SeptStateName, 'FREE'>): void {
    const first = u64ToNumber(gpa) / LEVEL_BYTES[0]!;
    const entry = freshEntry(state);
    for (let i = 0; i < pages; i++) {
      this.#willChange(0, first + i);
      this.#put(0, first + i, entry);
    }
    // As setState: a FREE leaf closes its page, so only a state that opens it changes the gate.
    if (opensRange(state)) this.#setGate(gpa, BigInt(pages) * LEVEL_SIZE[0], state === 'MAPPED');
  }

  /** Re-derives the gate under one entry (after something outside the SEPT changed the gate). */
  resyncGate(level: SeptLevel, gpa: bigint): void {
    const base = Sept.alignDown(gpa, level);
    this.#refreshGate(level, base, this.stateAt(level, base));
  }

  /** Turns a leaf at `level` (1 or 2) into a non-leaf whose 512 children are in `childState`. */
  split(level: 1 | 2, gpa: bigint, childState: SeptStateName): void {
    const base = Sept.alignDown(gpa, level);
    const child = (level - 1) as SeptLevel;
    const key = septEntryKey(u64ToNumber(base), level);
    this.#willChange(level, key);
    this.#changedAt(level);
    this.#levels[level]!.set(key, FRESH_ENTRY.NL_MAPPED);
    if (childState !== 'FREE') {
      const entry = freshEntry(childState);
      if (child === 0) {
        // The 2 MiB range's leaf table is `key` (its entry's key at level 1): replaced whole.
        this.#willChangeTable(key);
        this.#leaves.set(key, new Array<Readonly<SeptEntry> | undefined>(ENTRIES_PER_TABLE).fill(entry));
      } else {
        const map = this.#levels[child]!;
        const first = septEntryKey(u64ToNumber(base), child);
        for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
          this.#willChange(child, first + i);
          map.set(first + i, entry);
        }
      }
    }
    this.#refreshGate(level, base, 'NL_MAPPED');
  }

  /** The states of the 512 children of a non-leaf at `level` (1 or 2). */
  childStates(level: 1 | 2, gpa: bigint): SeptStateName[] {
    const base = Sept.alignDown(gpa, level);
    const child = (level - 1) as SeptLevel;
    const out: SeptStateName[] = [];
    for (let i = 0n; i < BigInt(ENTRIES_PER_TABLE); i++) out.push(this.stateAt(child, base + i * LEVEL_SIZE[child]));
    return out;
  }

  /** Replaces a non-leaf and its (leaf) children by one leaf in `state`. */
  merge(level: 1 | 2, gpa: bigint, state: SeptStateName): void {
    const base = Sept.alignDown(gpa, level);
    const child = (level - 1) as SeptLevel;
    const first = septEntryKey(u64ToNumber(base), child);
    this.#changedAt(level);
    if (child === 0) {
      // The leaf table of the 2 MiB range (keyed as the entry at level 1), dropped whole.
      const tableKey = septEntryKey(u64ToNumber(base), 1);
      this.#willChangeTable(tableKey);
      this.#leaves.delete(tableKey);
    } else {
      for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
        this.#willChange(child, first + i);
        this.#levels[child]!.delete(first + i);
      }
    }
    this.setState(level, base, state, { acceptCounter: 0, blockEpoch: 0n });
  }

  /** How many entries exist at each level, 4K first (for memory-proportionality tests). */
  entryCounts(): number[] {
    let leaves = 0;
    for (const table of this.#leaves.values()) for (const e of table) if (e) leaves++;
    return this.#levels.map((m, level) => (level === 0 ? leaves : m.size));
  }

  /** The walk reaches `level` at `gpa`: every entry above it is a present non-leaf. */
  #reachable(level: SeptLevel, gpa: bigint): boolean {
    return this.#reachableAt(level, u64ToNumber(gpa));
  }

  /** #reachable for the GPA `at` as a number. */
  #reachableAt(level: SeptLevel, at: number): boolean {
    return level === 0 ? this.#reachesLeafTable(at) : level === 1 ? this.#reachesPdTable(at) : this.#passesAbove(level, at);
  }

  /** An entry at `level` may change: the walk memos of the levels below it are stale. */
  #changedAt(level: SeptLevel): void {
    if (level > 0) this.#leafTableMemo.changes++;
    if (level > 1) this.#pdTableMemo.changes++;
  }

  /** #reachable(0, …) for the GPA `at` (a number), from the memo when the 2 MiB range and the upper levels are as it saw them. */
  #reachesLeafTable(at: number): boolean {
    return this.#passesAboveMemoised(this.#leafTableMemo, at);
  }

  /** #reachable(1, …) for the GPA `at` (a number), from the memo when the 1 GiB range and the levels above 2M are as it saw them. */
  #reachesPdTable(at: number): boolean {
    return this.#passesAboveMemoised(this.#pdTableMemo, at);
  }

  /** #passesAbove(memo.level, at), from `memo` when the table walked to and the levels above are as it saw them. */
  #passesAboveMemoised(memo: PassesAboveMemo, at: number): boolean {
    // The table holding the entry at memo.level is keyed as its parent entry, one level up.
    const key = septEntryKey(at, (memo.level + 1) as SeptLevel);
    if (key === memo.key && memo.checked === memo.changes) return memo.passes;
    memo.key = key;
    memo.checked = memo.changes;
    memo.passes = this.#passesAbove(memo.level, at);
    return memo.passes;
  }

  /** Whether every entry above `level` on the walk to the GPA `at` (a number) lets the walk pass. */
  #passesAbove(level: SeptLevel, at: number): boolean {
    for (let l = this.topLevel; l > level; l = (l - 1) as SeptLevel) {
      if (!walkContinuesBelow(this.#get(l, septEntryKey(at, l))?.state ?? 'FREE')) return false;
    }
    return true;
  }

  /** Re-derives the private gate for the range of the entry at (`level`, `base`), in `state` now, from the SEPT. */
  #refreshGate(level: SeptLevel, base: bigint, state: SeptStateName): void {
    if (!this.#gate || base >= this.#ramBytes) return;
    if (!this.#reachable(level, base)) return; // closed by an entry above, and stays so
    this.#openMappedLeaves(level, base, state);
  }

  /** Sets the gate under one reachable entry (in `state`): MAPPED leaves open, everything else closed. */
  #openMappedLeaves(level: SeptLevel, base: bigint, state: SeptStateName): void {
    if (level === 0 || !walkContinuesBelow(state)) {
      this.#setGate(base, LEVEL_SIZE[level], state === 'MAPPED');
      return;
    }
    const child = (level - 1) as SeptLevel;
    this.#setGate(base, LEVEL_SIZE[level], false);
    // Only children that exist can open anything; absent ones are FREE. Neighbouring MAPPED 4K
    // leaves open as one range: a DEMOTEd 2M leaf has 512 of them, and a gate update each was
    // most of a fuzz execution's DEMOTE (~0.3 ms).
    const first = septEntryKey(u64ToNumber(base), child);
    let run = -1;
    const openRun = (end: number) => {
      if (run >= 0) this.#setGate(base + BigInt(run) * LEVEL_SIZE[0], BigInt(end - run) * LEVEL_SIZE[0], true);
      run = -1;
    };
    const table = child === 0 ? this.#leaves.get(septEntryKey(u64ToNumber(base), 1)) : undefined;
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const e = child === 0 ? table?.[i] : this.#levels[child]!.get(first + i);
      if (child === 0) {
        if (e?.state === 'MAPPED') { if (run < 0) run = i; } else openRun(i);
        continue;
      }
      if (e && (e.state === 'MAPPED' || walkContinuesBelow(e.state))) this.#openMappedLeaves(child, base + BigInt(i) * LEVEL_SIZE[child], e.state);
    }
    openRun(ENTRIES_PER_TABLE);
  }

  #setGate(base: bigint, size: bigint, open: boolean): void {
    if (!this.#gate || base >= this.#ramBytes) return;
    const length = base + size > this.#ramBytes ? this.#ramBytes - base : size;
    const deferred = this.#deferredGate;
    if (deferred === undefined) {
      this.#gate.set('private', base, length, open ? 'readwrite' : 'none');
      return;
    }
    // Inside batchGate: a range that continues the last one with the same access joins it.
    // (deferred[-1] of an empty list would be a property look-up, megamorphic: hence the length check.)
    const last = deferred.length > 0 ? deferred[deferred.length - 1] : undefined;
    if (last !== undefined && last.open === open && last.base + last.length === base) last.length += length;
    else deferred.push({ base, length, open });
  }

  /** Inside batchGate: gate updates wait for its end. */
  get batchingGate(): boolean {
    return this.#deferredGate !== undefined;
  }

  /**
   * Runs `fn`, host operations between two guest runs (a VMM's answer to one exit), and applies
   * the private gate updates they made when it ends, in their order, neighbouring ranges with the
   * same access as one. The gate is only the emulator's enforcement of the S-EPT, and nothing
   * reads it until the guest runs again (host accesses ask the S-EPT), so the result is the same
   * as updating it at once. A MapGPA to shared BLOCKs each 4 KiB page of its range, and closing
   * them one by one flushed the vCPU's TLB for every page (issue 10).
   */
  batchGate<T>(fn: () => T): T {
    if (this.#deferredGate !== undefined) return fn();
    const deferred: { base: bigint; length: bigint; open: boolean }[] = [];
    this.#deferredGate = deferred;
    try {
      return fn();
    } finally {
      this.#deferredGate = undefined;
      for (const r of deferred) this.#gate!.set('private', r.base, r.length, r.open ? 'readwrite' : 'none');
    }
  }
}
