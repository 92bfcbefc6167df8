// The Secure EPT: per-GPA entry state at every level from the TD's top level (PML4, or PML5 for
// GPAW 52) down to 4K, stored sparsely (one Map per level keyed by GPA >> level shift), so memory
// follows what is mapped, not the guest size. An entry that is absent is FREE. Only the root page
// above the top level exists from the start; the host adds every level below it with
// TDH.MEM.SEPT.ADD. It drives the page gate: a private page is accessible iff the walk to it ends
// on a MAPPED leaf (a blocked non-leaf on the way closes everything below it).
import type { PageGate } from '../../memory/page-gate.js';
import type { Snapshottable } from '../../shared/snapshottable.js';
import {
  ENTRIES_PER_TABLE, LEVEL_SHIFT, LEVEL_SIZE, isLeafState, walkContinuesBelow, type SeptLevel, type SeptStateName,
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

/** A saved copy of every level's entries (entries are copied: ACCEPT updates acceptCounter in place). */
export type SeptTables = ReadonlyArray<ReadonlyMap<bigint, SeptEntry>>;

const copyLevels = (levels: SeptTables): Map<bigint, SeptEntry>[] =>
  levels.map((m) => new Map([...m].map(([k, e]) => [k, { ...e }])));

export class Sept implements Snapshottable<SeptTables> {
  readonly topLevel: SeptLevel;
  #levels: Map<bigint, SeptEntry>[];
  readonly #gate: PageGate | undefined;
  readonly #ramBytes: bigint;

  /** `gate` is optional so the table can be unit-tested without a VM. */
  constructor(ramBytes: bigint, topLevel: SeptLevel, gate?: PageGate) {
    this.#ramBytes = ramBytes;
    this.topLevel = topLevel;
    this.#levels = Array.from({ length: topLevel + 1 }, () => new Map<bigint, SeptEntry>());
    this.#gate = gate;
  }

  /** The page gate is not part of it: the machine's snapshot restores the gate. */
  saveState(): SeptTables {
    return copyLevels(this.#levels);
  }

  loadState(state: SeptTables): void {
    this.#levels = copyLevels(state);
  }

  static alignDown(gpa: bigint, level: SeptLevel): bigint {
    return gpa & ~(LEVEL_SIZE[level] - 1n);
  }

  entry(level: SeptLevel, gpa: bigint): SeptEntry | undefined {
    return this.#levels[level]?.get(gpa >> LEVEL_SHIFT[level]);
  }

  stateAt(level: SeptLevel, gpa: bigint): SeptStateName {
    return this.entry(level, gpa)?.state ?? 'FREE';
  }

  /**
   * `secure_ept_walk` (`sept_manager.c`): from the top level down to `level`, stopping early at
   * any entry the walk cannot pass (a leaf, a FREE entry, or a non-leaf whose RWX is 0: blocked).
   */
  walk(gpa: bigint, level: SeptLevel): SeptWalk {
    for (let l = this.topLevel; ; l = (l - 1) as SeptLevel) {
      const state = this.stateAt(l, gpa);
      if (l === level || l === 0 || !walkContinuesBelow(state)) {
        return { level: l, requestedLevel: level, state, base: Sept.alignDown(gpa, l), isLeaf: isLeafState(state) };
      }
    }
  }

  /** Sets one entry's state (keeping its counters unless told) and re-derives the gate under it. */
  setState(level: SeptLevel, gpa: bigint, state: SeptStateName, fields: Partial<Omit<SeptEntry, 'state'>> = {}): void {
    const base = Sept.alignDown(gpa, level);
    const key = base >> LEVEL_SHIFT[level];
    const map = this.#levels[level]!;
    const old = map.get(key);
    if (state === 'FREE') {
      map.delete(key);
    } else {
      map.set(key, { state, acceptCounter: fields.acceptCounter ?? old?.acceptCounter ?? 0, blockEpoch: fields.blockEpoch ?? old?.blockEpoch ?? 0n });
    }
    // A new empty SEPT page (FREE → NL_MAPPED) opens nothing; any other change may.
    if (old?.state !== state && !(state === 'NL_MAPPED' && old === undefined)) this.#refreshGate(level, base);
  }

  /** Re-derives the gate under one entry (after something outside the SEPT changed the gate). */
  resyncGate(level: SeptLevel, gpa: bigint): void {
    this.#refreshGate(level, Sept.alignDown(gpa, level));
  }

  /** Turns a leaf at `level` (1 or 2) into a non-leaf whose 512 children are in `childState`. */
  split(level: 1 | 2, gpa: bigint, childState: SeptStateName): void {
    const base = Sept.alignDown(gpa, level);
    const child = (level - 1) as SeptLevel;
    const map = this.#levels[child]!;
    this.#levels[level]!.set(base >> LEVEL_SHIFT[level], { state: 'NL_MAPPED', acceptCounter: 0, blockEpoch: 0n });
    if (childState !== 'FREE') {
      for (let i = 0n; i < BigInt(ENTRIES_PER_TABLE); i++) {
        map.set((base >> LEVEL_SHIFT[child]) + i, { state: childState, acceptCounter: 0, blockEpoch: 0n });
      }
    }
    this.#refreshGate(level, base);
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
    for (let i = 0n; i < BigInt(ENTRIES_PER_TABLE); i++) this.#levels[child]!.delete((base >> LEVEL_SHIFT[child]) + i);
    this.setState(level, base, state, { acceptCounter: 0, blockEpoch: 0n });
  }

  /** How many entries exist at each level, 4K first (for memory-proportionality tests). */
  entryCounts(): number[] {
    return this.#levels.map((m) => m.size);
  }

  /** The walk reaches `level` at `gpa`: every entry above it is a present non-leaf. */
  #reachable(level: SeptLevel, gpa: bigint): boolean {
    for (let l = this.topLevel; l > level; l = (l - 1) as SeptLevel) {
      if (!walkContinuesBelow(this.stateAt(l, gpa))) return false;
    }
    return true;
  }

  /** Re-derives the private gate for the range of the entry at (`level`, `base`) from the SEPT. */
  #refreshGate(level: SeptLevel, base: bigint): void {
    if (!this.#gate || base >= this.#ramBytes) return;
    if (!this.#reachable(level, base)) return; // closed by an entry above, and stays so
    this.#openMappedLeaves(level, base);
  }

  /** Sets the gate under one reachable entry: MAPPED leaves open, everything else closed. */
  #openMappedLeaves(level: SeptLevel, base: bigint): void {
    const state = this.stateAt(level, base);
    if (level === 0 || !walkContinuesBelow(state)) {
      this.#setGate(base, LEVEL_SIZE[level], state === 'MAPPED');
      return;
    }
    const child = (level - 1) as SeptLevel;
    this.#setGate(base, LEVEL_SIZE[level], false);
    // Only children that exist can open anything; absent ones are FREE.
    const first = base >> LEVEL_SHIFT[child];
    for (let i = 0n; i < BigInt(ENTRIES_PER_TABLE); i++) {
      const e = this.#levels[child]!.get(first + i);
      if (e && (e.state === 'MAPPED' || walkContinuesBelow(e.state))) this.#openMappedLeaves(child, base + i * LEVEL_SIZE[child]);
    }
  }

  #setGate(base: bigint, size: bigint, open: boolean): void {
    if (!this.#gate || base >= this.#ramBytes) return;
    const length = base + size > this.#ramBytes ? this.#ramBytes - base : size;
    this.#gate.set('private', base, length, open ? 'readwrite' : 'none');
  }
}
