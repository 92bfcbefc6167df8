// The VMM's own record of the S-EPT, built from what it did: KVM's "mirror" page tables for a TD
// (arch/x86/kvm/mmu/tdp_mmu.c with kvm_gfn_direct_bits / the mirror root; arch/x86/kvm/vmx/tdx.c).
// KVM never reads the S-EPT back (it has no use for TDH.MEM.SEPT.RD): it knows where it added
// SEPT pages (tdx_sept_link_private_spt -> TDH.MEM.SEPT.ADD), which pages it mapped
// (tdx_sept_set_private_spte -> TDH.MEM.PAGE.AUG) and which it zapped (BLOCK, TRACK, REMOVE), at
// which level. This mirror knows the same, from the result of every SEAMCALL made through the
// VMM's handle, and answers the question the honest VMM used to ask TDH.MEM.SEPT.RD: where does
// the walk to a GPA stop, and in which state. Where it does not know (nothing it did or read
// covers the entry) the VMM still asks the module, and remembers the answer.
//
// States are kept as classes, because the guest changes some without the VMM seeing it
// (TDG.MEM.PAGE.ACCEPT turns PENDING into MAPPED) and the VMM acts on none of those differences:
// LEAF is any leaf (MAPPED, PENDING, BLOCKED, PENDING_BLOCKED). Nothing but the host's SEAMCALLs
// changes the S-EPT's shape (sept-legality.ts: the guest's ACCEPT only maps a PENDING leaf).
import type { Snapshottable } from '../../shared/snapshottable.js';
import type { SeamcallName } from '../../platform/tdx/seamcall.js';
import { isLeafState, septEntryKey, type SeptLevel, type SeptStateName } from '../../platform/tdx/sept-states.js';
import { TdxStatus } from '../../platform/tdx/status.js';
import { u64ToNumber } from '../../shared/u64.js';

/** What the VMM knows of one entry: its state, with every leaf state one class. */
export type MirroredState = 'FREE' | 'REMOVED' | 'NL_MAPPED' | 'NL_BLOCKED' | 'LEAF';

/** Where the walk to a GPA stops and in which state (what TDH.MEM.SEPT.RD reports). */
export interface MirroredWalk {
  level: SeptLevel;
  state: MirroredState | SeptStateName;
}

// An entry is one number: its state code, plus, for a non-leaf, what its children are when the
// mirror has no entry of their own (a SEPT page the VMM added holds FREE entries; a DEMOTEd leaf
// gives 512 leaves). The GPA keys are numbers, as in sept.ts.
const STATES: readonly MirroredState[] = ['FREE', 'REMOVED', 'NL_MAPPED', 'NL_BLOCKED', 'LEAF'];
const CODE: Readonly<Record<MirroredState, number>> = { FREE: 0, REMOVED: 1, NL_MAPPED: 2, NL_BLOCKED: 3, LEAF: 4 };
const CHILDREN_UNKNOWN = 0, CHILDREN_FREE = 1, CHILDREN_LEAVES = 2;
const CHILD_SHIFT = 3, STATE_MASK = 7;
const ENTRIES = 512;

/**
 * Every walk result there can be, built once (level × state code): the honest VMM asks the
 * mirror before every page it converts, and only reads the result.
 */
const WALKS: readonly (readonly Readonly<MirroredWalk>[])[] = [0, 1, 2, 3, 4].map((level) =>
  STATES.map((state) => Object.freeze({ level: level as SeptLevel, state })));

/** The class of a state the module reported. */
function classOf(state: SeptStateName): MirroredState {
  return isLeafState(state) ? 'LEAF' : state as Exclude<MirroredState, 'LEAF'>;
}

/**
 * What each SEAMCALL that succeeded made of its entry, by class (sept-legality.ts, the rows a
 * SEAMCALL can take): `children` says what the entries below it are now, when it made them.
 * BLOCK and UNBLOCK keep a leaf a leaf and toggle a non-leaf; a state the mirror did not know
 * stays unknown.
 */
type MirrorTransition = (from: MirroredState | undefined) => Readonly<{ state: MirroredState; code: number; children?: number }> | undefined;
// The results as constants: one is looked up for every SEAMCALL the VMM makes. Each carries its
// state's code (CODE[state] with a state that varies was a megamorphic load).
const TO_NL_MAPPED_FREE_CHILDREN = { state: 'NL_MAPPED', code: CODE.NL_MAPPED, children: CHILDREN_FREE } as const;
const TO_LEAF = { state: 'LEAF', code: CODE.LEAF } as const;
const TO_FREE = { state: 'FREE', code: CODE.FREE } as const;
const TO_NL_MAPPED_LEAF_CHILDREN = { state: 'NL_MAPPED', code: CODE.NL_MAPPED, children: CHILDREN_LEAVES } as const;
const TO_LEAF_CHILDREN_UNKNOWN = { state: 'LEAF', code: CODE.LEAF, children: CHILDREN_UNKNOWN } as const;
const TO_NL_BLOCKED = { state: 'NL_BLOCKED', code: CODE.NL_BLOCKED } as const;
const TO_NL_MAPPED = { state: 'NL_MAPPED', code: CODE.NL_MAPPED } as const;
/** By SEAMCALL: a Map, as AFTER[leaf] with a leaf that varies was a megamorphic load. */
const AFTER: ReadonlyMap<SeamcallName, MirrorTransition> = new Map<SeamcallName, MirrorTransition>([
  ['TDH_MEM_SEPT_ADD', () => TO_NL_MAPPED_FREE_CHILDREN],
  ['TDH_MEM_PAGE_ADD', () => TO_LEAF],
  ['TDH_MEM_PAGE_AUG', () => TO_LEAF],
  ['TDH_MEM_PAGE_REMOVE', () => TO_FREE],
  ['TDH_MEM_PAGE_DEMOTE', () => TO_NL_MAPPED_LEAF_CHILDREN],
  ['TDH_MEM_PAGE_PROMOTE', () => TO_LEAF_CHILDREN_UNKNOWN],
  ['TDH_MEM_RANGE_BLOCK', (from) => (from === 'NL_MAPPED' ? TO_NL_BLOCKED : from === 'LEAF' ? TO_LEAF : undefined)],
  ['TDH_MEM_RANGE_UNBLOCK', (from) => (from === 'NL_BLOCKED' ? TO_NL_MAPPED : from === 'LEAF' ? TO_LEAF : undefined)],
]);

/** A saved mirror: each level's entries (never changed once saved: a restore reads them as they are). */
export type SeptMirrorState = readonly ReadonlyMap<number, number>[];

/** An overlay's mark for an entry the base has and the mirror dropped since. */
const DROPPED = -1;
/**
 * Overlay values carry the restore they belong to: `generation + 1 + entry` (DROPPED included),
 * the generation a multiple of this; a value below the current generation is stale, as if absent.
 * A restore then moves the generation on instead of clearing the maps: cleared, they grew again
 * from empty through every rehash in each fuzz execution (a MapGPA changes hundreds of entries).
 * It must exceed 1 + the largest entry, LEAF | CHILDREN_LEAVES << CHILD_SHIFT = 20, or an older
 * generation's value could read as current.
 */
const GENERATION_STEP = 32;
/** Past this many keys (stale ones included) an overlay is cleared at a restore, so it stays bounded. */
const OVERLAY_KEYS_LIMIT = 1 << 16;

/** The parent keys (a level up) of a saved level's entries, made once per saved map (saved maps never change). */
const savedParents = new WeakMap<ReadonlyMap<number, number>, ReadonlySet<number>>();
function parentsOf(saved: ReadonlyMap<number, number>): ReadonlySet<number> {
  let parents = savedParents.get(saved);
  if (parents === undefined) {
    const set = new Set<number>();
    for (const key of saved.keys()) set.add(Math.floor(key / ENTRIES));
    savedParents.set(saved, (parents = set));
  }
  return parents;
}

export class SeptMirror implements Snapshottable<SeptMirrorState> {
  readonly #top: SeptLevel;
  /**
   * Each level's entries as saved (or restored), never written, and what changed since: a restore
   * per fuzz execution then costs nothing, where copying the launch's several hundred entries did.
   */
  #base: SeptMirrorState;
  #overlay: Map<number, number>[];
  /** The current generation of overlay values (see GENERATION_STEP). */
  #generation = 0;
  /** Current entries in each level's overlay (its size counts stale keys too). */
  #live: number[];
  /**
   * For each level, the parent keys (a level up) under which its overlay was written, with the
   * generation of the last such write: #forgetBelow skips a parent with nothing under it. And the
   * parent of the level's last write, whose generation is already recorded (consecutive writes
   * mostly share it).
   */
  readonly #overlayParents: Map<number, number>[];
  readonly #lastParent: number[];
  /** Bumped whenever an entry above the 4K level may change: the memo below is good only for the count it was taken at. */
  #upperChanges = 0;
  /**
   * The 2 MiB range (its key at level 1) whose walk was last found to pass every level above the
   * 4K one, with what its PD entry says of its children, as of #upperChanges = #pathChecked; -1
   * children: the walk does not pass (then the full walk answers). The honest VMM walks to each
   * 4K page of a range it converts, and each walk went through every level from the top again.
   */
  #pathKey = -1;
  #pathChecked = -1;
  #pathChildren = -1;

  constructor(topLevel: SeptLevel) {
    this.#top = topLevel;
    this.#base = Array.from({ length: topLevel + 1 }, () => new Map<number, number>());
    this.#overlay = this.#base.map(() => new Map<number, number>());
    this.#live = this.#base.map(() => 0);
    this.#overlayParents = this.#base.map(() => new Map<number, number>());
    this.#lastParent = this.#base.map(() => -1);
  }

  saveState(): SeptMirrorState {
    this.#upperChanges++;
    if (this.#live.some((n) => n > 0)) {
      const generation = this.#generation;
      this.#base = this.#base.map((base, level) => {
        if (this.#live[level] === 0) return base;
        const merged = new Map(base);
        for (const [key, value] of this.#overlay[level]!) {
          if (value < generation) continue;
          const entry = value - generation - 1;
          if (entry === DROPPED) merged.delete(key);
          else merged.set(key, entry);
        }
        return merged;
      });
      this.#newGeneration();
    }
    return this.#base;
  }

  loadState(state: SeptMirrorState): void {
    this.#upperChanges++;
    this.#base = state;
    this.#newGeneration();
  }

  /** Makes every overlay value stale (what a clear would do, keeping the maps' keys). */
  #newGeneration(): void {
    this.#generation += GENERATION_STEP;
    for (let level = 0; level < this.#overlay.length; level++) {
      this.#live[level] = 0;
      this.#lastParent[level] = -1;
      if (this.#overlay[level]!.size > OVERLAY_KEYS_LIMIT) {
        this.#overlay[level]!.clear();
        this.#overlayParents[level]!.clear();
      }
    }
  }

  /** What TDH.MEM.SEPT.RD of (`gpa`, `level`) would report, or undefined when the mirror does not know. */
  walk(gpa: bigint, level: SeptLevel): MirroredWalk | undefined {
    const at = u64ToNumber(gpa);
    if (level === 0) {
      const known = this.#leafTableChildren(at);
      if (known >= 0) return this.#leafWalk(at, known);
    }
    let children = CHILDREN_UNKNOWN; // the root's entries: not assumed (the VMM may start after the TD did)
    for (let l = this.#top; ; l = (l - 1) as SeptLevel) {
      const entry = this.#get(l, septEntryKey(at, l));
      let code: number;
      if (entry !== undefined) code = entry & STATE_MASK;
      else if (children === CHILDREN_FREE) code = CODE.FREE;
      else if (children === CHILDREN_LEAVES) code = CODE.LEAF;
      else return undefined;
      if (l === level || code !== CODE.NL_MAPPED) return WALKS[l]![code]!;
      children = entry! >> CHILD_SHIFT;
    }
  }

  /**
   * What the PD entry of `at`'s 2 MiB range says of its children when the walk passes every level
   * above 4K (a present non-leaf at each), else -1: from the memo when nothing above 4K changed.
   */
  #leafTableChildren(at: number): number {
    const key = septEntryKey(at, 1);
    if (key === this.#pathKey && this.#pathChecked === this.#upperChanges) return this.#pathChildren;
    // The walk ends at level 1 (the PD entry): its children are the answer.
    let children = -1;
    for (let l = this.#top; l > 0; l = (l - 1) as SeptLevel) {
      const entry = this.#get(l, septEntryKey(at, l));
      // Only a present non-leaf the mirror has an entry for passes: one it would derive from its
      // parent's children (FREE, LEAF) stops the walk there.
      if (entry === undefined || (entry & STATE_MASK) !== CODE.NL_MAPPED) { children = -1; break; }
      children = entry >> CHILD_SHIFT;
    }
    this.#pathKey = key;
    this.#pathChecked = this.#upperChanges;
    this.#pathChildren = children;
    return children;
  }

  /** walk(at, 0) once the walk is known to reach the 4K level, under a PD entry whose children are `children`. */
  #leafWalk(at: number, children: number): MirroredWalk | undefined {
    const entry = this.#get(0, septEntryKey(at, 0));
    if (entry !== undefined) return WALKS[0]![entry & STATE_MASK]!;
    if (children === CHILDREN_FREE) return WALKS[0]![CODE.FREE]!;
    if (children === CHILDREN_LEAVES) return WALKS[0]![CODE.LEAF]!;
    return undefined;
  }

  /** Remembers what a TDH.MEM.SEPT.RD (status SUCCESS or EPT_WALK_FAILED) reported: every level above `level` is a present non-leaf. */
  learn(gpa: bigint, walk: { level: SeptLevel; state: SeptStateName }): void {
    const at = u64ToNumber(gpa);
    for (let l = this.#top; l > walk.level; l = (l - 1) as SeptLevel) {
      if (this.#stateAt(l, at) !== 'NL_MAPPED') this.#set(l, septEntryKey(at, l), CODE.NL_MAPPED, CHILDREN_UNKNOWN);
    }
    const state = classOf(walk.state);
    const known = this.#stateAt(walk.level, at);
    if (known === state) return;
    const key = septEntryKey(at, walk.level);
    if (known !== undefined && walk.level > 0) this.#forgetBelow(walk.level, key);
    this.#set(walk.level, key, CODE[state], CHILDREN_UNKNOWN);
  }

  /**
   * A SEAMCALL completed through the VMM's handle (RCX = GPA | level), standing for `pages`
   * calls on consecutive entries (a launch range's PAGE.ADD); only a successful one changed anything.
   */
  observe(leaf: SeamcallName, rcx: bigint | null, status: bigint, pages = 1): void {
    if (status !== TdxStatus.SUCCESS || rcx === null) return;
    const after = AFTER.get(leaf);
    if (!after) return;
    // A call that succeeded had a valid operand: below 2^52 (bits 63:52 reserved), so exact as a number.
    const operand = u64ToNumber(rcx);
    const level = (operand % 8) as SeptLevel;
    if (level > this.#top) return;
    const first = septEntryKey(operand - (operand % 4096), level);
    for (let i = 0; i < pages; i++) this.#apply(after, level, first + i);
  }

  #apply(after: MirrorTransition, level: SeptLevel, key: number): void {
    const entry = this.#get(level, key);
    const next = after(entry === undefined ? undefined : STATES[entry & STATE_MASK]);
    if (!next) {
      this.#delete(level, key);
      return;
    }
    // An entry that keeps its state keeps what it knew of its children (BLOCK / UNBLOCK of a non-leaf).
    const children = next.children ?? (entry === undefined ? CHILDREN_UNKNOWN : entry >> CHILD_SHIFT);
    if (next.children !== undefined && level > 0) this.#forgetBelow(level, key);
    // A BLOCK of a leaf keeps it a leaf: nothing to write (one per page a MapGPA converts).
    if (entry === (next.code | (children << CHILD_SHIFT))) return;
    this.#set(level, key, next.code, children);
  }

  #stateAt(level: SeptLevel, at: number): MirroredState | undefined {
    const entry = this.#get(level, septEntryKey(at, level));
    return entry === undefined ? undefined : STATES[entry & STATE_MASK];
  }

  #get(level: SeptLevel, key: number): number | undefined {
    const value = this.#overlay[level]!.get(key);
    if (value === undefined || value < this.#generation) return this.#base[level]!.get(key);
    const entry = value - this.#generation - 1;
    return entry === DROPPED ? undefined : entry;
  }

  #set(level: SeptLevel, key: number, code: number, children: number): void {
    if (level > 0) this.#upperChanges++;
    this.#put(level, key, code | (children << CHILD_SHIFT));
  }

  #delete(level: SeptLevel, key: number): void {
    if (this.#get(level, key) === undefined) return;
    if (level > 0) this.#upperChanges++;
    this.#put(level, key, DROPPED);
  }

  #put(level: SeptLevel, key: number, entry: number): void {
    const parent = Math.floor(key / ENTRIES);
    if (parent !== this.#lastParent[level]) {
      this.#lastParent[level] = parent;
      this.#overlayParents[level]!.set(parent, this.#generation);
    }
    const overlay = this.#overlay[level]!;
    const value = overlay.get(key);
    if (value === undefined || value < this.#generation) this.#live[level]!++;
    overlay.set(key, this.#generation + 1 + entry);
  }

  /**
   * Drops every entry under (`level`, `key`): the SEAMCALL replaced what was below it. The level
   * below is searched by its keys when it holds fewer than the 512 it would be probed at: a launch
   * adds each SEPT page over a level that holds a handful, and probing 512 entries for each was
   * most of a default TDX boot's mirror lookups, enough for V8 to optimise the lookup in the
   * background of every boot (issue 11). The order entries go in does not change what is left.
   */
  #forgetBelow(level: SeptLevel, key: number): void {
    const child = (level - 1) as SeptLevel;
    const first = key * ENTRIES;
    const base = this.#base[child]!, overlay = this.#overlay[child]!, live = this.#live[child]!;
    if (base.size === 0 && live === 0) return;
    // Nothing was ever under `key` (a SEPT page just added, a leaf demoted): nothing to search.
    // Seed-1 TDX campaign executions searched 512 entries for each such call and found none.
    if (!parentsOf(base).has(key) && !(live > 0 && (this.#overlayParents[child]!.get(key) ?? -1) >= this.#generation)) return;
    // What a search by keys would visit: stale overlay keys too, when the overlay has current ones.
    if (base.size + (live > 0 ? overlay.size : 0) < ENTRIES) {
      const below = new Set<number>();
      for (const k of base.keys()) if (k >= first && k < first + ENTRIES) below.add(k);
      if (live > 0) for (const k of overlay.keys()) if (k >= first && k < first + ENTRIES) below.add(k);
      for (const k of below) this.#forget(child, k);
      return;
    }
    for (let i = 0; i < ENTRIES; i++) this.#forget(child, first + i);
  }

  /** Drops (`level`, `key`) and everything under it, if the mirror has it. */
  #forget(level: SeptLevel, key: number): void {
    if (this.#get(level, key) === undefined) return;
    if (level > 0) this.#forgetBelow(level, key);
    this.#delete(level, key);
  }
}
