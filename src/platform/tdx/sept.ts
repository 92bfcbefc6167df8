// The Secure EPT: per-GPA entry state at the 1G, 2M and 4K levels, stored sparsely (one Map per
// level keyed by GPA >> level shift), so memory follows what is mapped, not the guest size.
// An entry that is absent is FREE. Levels above 1G (PML4/PML5 SEPT pages) are taken as always
// present: the model starts at the 1G level (approximation; the module needs TDH.MEM.SEPT.ADD for them).
// It drives the page gate: a private page is accessible iff its leaf is MAPPED.
import type { PageGate } from '../../memory/page-gate.js';
import {
  ENTRIES_PER_TABLE, LEVEL_SHIFT, LEVEL_SIZE, isNonLeaf, type SeptLevel, type SeptStateName,
} from './sept-states.js';

export interface SeptEntry {
  state: SeptStateName;
  /** 2M ACCEPT progress in 4K chunks (`accept_counter` in the module's SEPT entry). */
  acceptCounter: number;
  /** The TD epoch when the entry was blocked (TLB tracking is done once the epoch moved on). */
  blockEpoch: bigint;
}

export interface SeptWalk {
  /** The level the walk stopped at: the requested one, or a larger one holding a leaf / FREE. */
  level: SeptLevel;
  requestedLevel: SeptLevel;
  state: SeptStateName;
  /** GPA of the entry's range (aligned to `level`). */
  base: bigint;
  /** The entry is a leaf (maps a page), as reported in the ACCEPT exit qualification is_leaf bit. */
  isLeaf: boolean;
}

const LEVELS: readonly SeptLevel[] = [2, 1, 0];

export class Sept {
  readonly #levels: [Map<bigint, SeptEntry>, Map<bigint, SeptEntry>, Map<bigint, SeptEntry>] = [new Map(), new Map(), new Map()];
  readonly #gate: PageGate | undefined;
  readonly #ramBytes: bigint;

  /** `gate` is optional so the table can be unit-tested without a VM. */
  constructor(ramBytes: bigint, gate?: PageGate) {
    this.#ramBytes = ramBytes;
    this.#gate = gate;
  }

  static alignDown(gpa: bigint, level: SeptLevel): bigint {
    return gpa & ~(LEVEL_SIZE[level] - 1n);
  }

  entry(level: SeptLevel, gpa: bigint): SeptEntry | undefined {
    return this.#levels[level].get(gpa >> LEVEL_SHIFT[level]);
  }

  stateAt(level: SeptLevel, gpa: bigint): SeptStateName {
    return this.entry(level, gpa)?.state ?? 'FREE';
  }

  /** Walks from 1G down to `level`, stopping early at a leaf or a FREE entry (missing SEPT page). */
  walk(gpa: bigint, level: SeptLevel): SeptWalk {
    for (const l of LEVELS) {
      const state = this.stateAt(l, gpa);
      if (l === level || !isNonLeaf(state)) {
        return { level: l, requestedLevel: level, state, base: Sept.alignDown(gpa, l), isLeaf: !isNonLeaf(state) && state !== 'FREE' };
      }
    }
    throw new Error('unreachable: level 0 always ends the walk');
  }

  /** Sets one entry's state (keeping its counters unless told), and the gate for leaf states. */
  setState(level: SeptLevel, gpa: bigint, state: SeptStateName, fields: Partial<Omit<SeptEntry, 'state'>> = {}): void {
    const base = Sept.alignDown(gpa, level);
    const key = base >> LEVEL_SHIFT[level];
    const map = this.#levels[level];
    const old = map.get(key);
    if (state === 'FREE') {
      map.delete(key);
    } else {
      map.set(key, { state, acceptCounter: fields.acceptCounter ?? old?.acceptCounter ?? 0, blockEpoch: fields.blockEpoch ?? old?.blockEpoch ?? 0n });
    }
    if (!isNonLeaf(state)) this.#applyGate(base, LEVEL_SIZE[level], state);
  }

  /** Turns a leaf at `level` (1 or 2) into a non-leaf whose 512 children are in `childState`. */
  split(level: 1 | 2, gpa: bigint, childState: SeptStateName): void {
    const base = Sept.alignDown(gpa, level);
    const child = (level - 1) as SeptLevel;
    const map = this.#levels[child];
    this.#levels[level].set(base >> LEVEL_SHIFT[level], { state: 'NL_MAPPED', acceptCounter: 0, blockEpoch: 0n });
    if (childState !== 'FREE') {
      for (let i = 0n; i < BigInt(ENTRIES_PER_TABLE); i++) {
        map.set((base >> LEVEL_SHIFT[child]) + i, { state: childState, acceptCounter: 0, blockEpoch: 0n });
      }
    }
    this.#applyGate(base, LEVEL_SIZE[level], childState);
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
    for (let i = 0n; i < BigInt(ENTRIES_PER_TABLE); i++) this.#levels[child].delete((base >> LEVEL_SHIFT[child]) + i);
    this.setState(level, base, state, { acceptCounter: 0, blockEpoch: 0n });
  }

  /** How many entries exist at each level (for memory-proportionality tests). */
  entryCounts(): [number, number, number] {
    return [this.#levels[0].size, this.#levels[1].size, this.#levels[2].size];
  }

  #applyGate(base: bigint, size: bigint, state: SeptStateName): void {
    if (!this.#gate || base >= this.#ramBytes) return;
    const length = base + size > this.#ramBytes ? this.#ramBytes - base : size;
    this.#gate.set('private', base, length, state === 'MAPPED' ? 'readwrite' : 'none');
  }
}
