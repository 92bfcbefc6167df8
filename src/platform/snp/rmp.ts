// The Reverse Map Table: one entry per 4 KiB system-physical page (APM Vol. 2 §15.36.3;
// tdx-snp-architecture.md B3). Stored sparsely: a Map keyed by 2 MiB region holding either one
// 2 MiB entry or the region's 4 KiB entries (a slot per page). Regions whose pages all have the
// reset state (hypervisor-owned) are never stored, so memory use is proportional to the regions
// assigned, whatever the size of guest RAM. Region keys are numbers (the 2 MiB index): hashing
// BigInt keys was a large share of every PVALIDATE exit (issue 11).
//
// Address model (documented simplification): guest-physical = system-physical. The RMP is
// indexed by system-physical page, and each entry's `gpa` field is the reverse map; the VMM may
// assign a page with a GPA other than its own address, which the reverse-map check then
// rejects (NPF), so remap/alias attacks remain expressible without a separate SPA space.
import type { Snapshottable } from '../../shared/snapshottable.js';
import { u64ToNumber } from '../../shared/u64.js';

export const PAGE_4K = 0x1000n;
export const PAGE_2M = 0x200000n;
export const PAGES_PER_2M = 512;
/**
 * `spa & PAGE_4K_BASE` (`PAGE_2M_BASE`) is the start of the 4 KiB (2 MiB) page holding spa. Made
 * once: `~(PAGE_4K - 1n)` written in place is two more BigInt operations, each an allocation, per use.
 */
export const PAGE_4K_BASE = ~(PAGE_4K - 1n);
export const PAGE_2M_BASE = ~(PAGE_2M - 1n);

export type RmpPageSize = '4k' | '2m';

/** VMPL permission bits (APM Vol. 2 §15.36.7 "VMPL Permission Mask Definition"; b4 supervisor
 * shadow stack). */
export const VMPL_PERM = { read: 1, write: 2, execUser: 4, execSupervisor: 8, supervisorShadowStack: 0x10 } as const;
/**
 * Every permission, supervisor shadow stack included: what VMPL0 holds on a page newly assigned
 * to the guest ("VMPL0 gets full permission": microsoft/verismo rmp_perm_init, the full set of
 * Read, Write, ExeU, ExeS and Shadow; perm_s.rs gives Shadow the value 16). RMPADJUST grants
 * only a subset of the caller's own, so with 0xF VMPL0 could never grant a lower VMPL the SSS bit.
 */
export const VMPL_PERM_ALL = 0x1f;
/** Read, write and both executes, no shadow stack: what an SVSM grants its guest (COCONUT-SVSM RMPFlags::RWX). */
export const VMPL_PERM_RWX = 0xf;

export interface RmpEntry {
  assigned: boolean;
  pageSize: RmpPageSize;
  immutable: boolean;
  /** Reverse map: the guest-physical address this page (or 2 MiB page) is assigned to. */
  gpa: bigint;
  asid: number;
  validated: boolean;
  vmsa: boolean;
  /** Permissions for VMPL0..3. VMPL0 gets all (VMPL_PERM_ALL) on assignment, the others none (B3). */
  vmplPerms: readonly [number, number, number, number];
}

/** The reset state: hypervisor-owned (Assigned=0, ASID=0). */
export const HV_OWNED_ENTRY: Readonly<RmpEntry> = Object.freeze({
  assigned: false, pageSize: '4k', immutable: false, gpa: 0n, asid: 0, validated: false, vmsa: false,
  vmplPerms: [0, 0, 0, 0] as const,
});

/**
 * `version` names the region's contents: every change gives the region a number no table of this
 * thread gave before, and copies (snapshots) keep it, so two regions with the same version hold
 * the same entries. What is derived from a region alone (the platform's page gate) can be
 * remembered by it.
 */
type Region = ({ kind: 'large'; entry: RmpEntry } | SmallRegion) & { version: number };
/**
 * A region of 4 KiB entries: one slot per page (undefined: the reset state), and how many are
 * stored. An array of 512 rather than a map of what is stored: the first write to a region after a
 * save or load copies it (#willChange), a PSMASH fills it, the page gate walks it, and a 512-entry
 * Map took ~40x as long to copy and ~5x as long to fill or walk (issue 10: every fuzz execution
 * that validates, converts or splits a page of such a region does one of them).
 */
interface SmallRegion {
  kind: 'small';
  entries: (RmpEntry | undefined)[];
  count: number;
  /** How many of them are assigned (regionHypervisorOwned, asked on shared writes under a 2 MiB nested mapping). */
  assigned: number;
}

function emptySmallRegion(): SmallRegion & { version: number } {
  return { kind: 'small', entries: new Array<RmpEntry | undefined>(PAGES_PER_2M).fill(undefined), count: 0, assigned: 0, version: 0 };
}
/** A saved copy of the table (regions are copied; entries are replaced, never changed in place). */
export type RmpTable = ReadonlyMap<number, Readonly<Region>>;

/**
 * The next region version (see Region), shared by every table of this thread: a state saved from
 * one table and loaded into another keeps versions that mean the same entries in both.
 */
let nextRegionVersion = 1;
/**
 * The version a region gets from a write that its entries and the write's kind alone decide (a
 * PSMASH, a page put back to the reset state, PVALIDATE's Validated, a fresh assignment), by the
 * version it had (the outer key) and the write (the inner key: page, kind, ASID): the same write
 * to the same entries gives the same version again, so what is remembered by version (the page
 * gate's derivation) is found again when a fuzz execution repeats what the last one did from the
 * same snapshot. Two levels of small-integer keys: one number for both was past 2^30, a heap number
 * that the Map allocated and hashed on every write (~1% of a seed-1 SNP campaign). Started again
 * when it holds WRITTEN_VERSIONS_LIMIT writes (versions are then only new).
 */
const writtenVersions = new Map<number, Map<number, number>>();
let writtenVersionsCount = 0;
const WRITTEN_VERSIONS_LIMIT = 1 << 16;
/** Write kinds in the inner key of writtenVersions. */
const enum Write {
  Split, Reset, Validated, NotValidated,
  /** RMPUPDATE's entry for a 4 KiB page given to ASID `asid` at its own GPA (isFreshAssignment). */
  Assigned,
  /** The same for a 2 MiB page: the region's one entry. */
  Assigned2m,
}
const WRITE_KINDS = 8;
/** ASIDs the inner key names (an Assigned write's); a write to another one gets a new version. */
const KEYED_ASIDS = 1024;

/**
 * The version after `write` (at page `index`; an Assigned write to `asid`) to the region with
 * index `regionKey` at version `from`. A stored region's version names its entries, and so its
 * index; one with nothing stored (version 0) is named by its index. `repeatable`: the table was
 * saved or loaded, so a region can be at `from` again. Before that, every version a table's
 * regions had was new (only a load brings one back), so no later write starts from `from` and
 * remembering it only fills the map: an SNP guest that validates its RAM without snapshots added
 * an entry per PVALIDATE, ~10% of such an exit's JavaScript (issue 11).
 */
function versionAfter(regionKey: number, from: number, write: Write, index: number, repeatable: boolean, asid = 0): number {
  if (!repeatable || !(Number.isInteger(asid) && asid >= 0 && asid < KEYED_ASIDS)) return nextRegionVersion++;
  // Regions with nothing stored below 0.
  const before = from !== 0 ? from : -1 - regionKey;
  const writeKey = (index * WRITE_KINDS + write) * KEYED_ASIDS + asid;
  let after = writtenVersions.get(before);
  const known = after?.get(writeKey);
  if (known !== undefined) return known;
  if (writtenVersionsCount >= WRITTEN_VERSIONS_LIMIT) {
    writtenVersions.clear();
    writtenVersionsCount = 0;
    after = undefined;
  }
  if (after === undefined) {
    after = new Map();
    writtenVersions.set(before, after);
  }
  const version = nextRegionVersion++;
  after.set(writeKey, version);
  writtenVersionsCount++;
  return version;
}

/**
 * The 4 KiB entries PSMASH makes of 2 MiB entries, by the version the region gets (equal versions,
 * equal entries): the entry objects of a split made before, in a new array. A fuzz execution that
 * answers an NPF with PSMASH splits the same region from the same snapshot as the one before, and
 * making 512 entries and their GPAs each time was a fifth of an SNP campaign's allocation (issue 10).
 * Entries are never changed in place (a write replaces the slot's object), so sharing them is safe.
 */
const splits = new Map<number, readonly RmpEntry[]>();
const SPLITS_LIMIT = 64;

function splitEntries(large: Readonly<RmpEntry>, version: number): (RmpEntry | undefined)[] {
  const known = splits.get(version);
  if (known !== undefined) return known.slice();
  const entries = new Array<RmpEntry>(PAGES_PER_2M);
  // One literal per entry in the 2 MiB entry's key order (a spread per entry, and a BigInt
  // product per GPA, were most of a PSMASH).
  const { assigned, immutable, asid, validated, vmsa, vmplPerms } = large;
  let gpa = large.gpa;
  for (let i = 0; i < PAGES_PER_2M; i++, gpa += PAGE_4K) {
    entries[i] = { assigned, pageSize: '4k', immutable, gpa, asid, validated, vmsa, vmplPerms };
  }
  if (splits.size >= SPLITS_LIMIT) splits.clear();
  splits.set(version, entries);
  return entries.slice();
}

/**
 * Whether `entry`, written at the page that starts at `pageStart` (a number), is what RMPUPDATE makes
 * of a page it gives a guest at the page's own GPA (snp-cpu.ts rmpUpdate): assigned, mutable, not
 * validated, not a VMSA, all permissions at VMPL0 only. Its ASID is then its only other field, so
 * the write is decided by its kind, page and ASID (Write.Assigned): a fuzz execution that converts
 * the same page as the last one gets the same version, and the page gate's derivation by version
 * is found again (issue 10: an NPF answered with PSMASH and a conversion re-derived the region).
 */
function isFreshAssignment(entry: Readonly<RmpEntry>, pageStart: number): boolean {
  const p = entry.vmplPerms;
  return entry.assigned && !entry.immutable && !entry.validated && !entry.vmsa
    && p[0] === VMPL_PERM_ALL && p[1] === 0 && p[2] === 0 && p[3] === 0
    && u64ToNumber(entry.gpa) === pageStart;
}

const copyRegion = (r: Readonly<Region>): Region =>
  (r.kind === 'large' ? { ...r } : { kind: 'small', entries: r.entries.slice(), count: r.count, assigned: r.assigned, version: r.version });
const copyRegions = (regions: RmpTable): Map<number, Region> => new Map([...regions].map(([k, r]) => [k, copyRegion(r)]));

export function regionOf(spa: bigint): bigint {
  return spa >> 21n;
}

/** The table's key of the 2 MiB region holding `spa` (exact: addresses are below 2^53). */
function regionKey(spa: bigint): number {
  return regionKeyOf(u64ToNumber(spa));
}

/** regionKey, from `Number(spa)` (u64ToNumber): for a caller that also wants indexInRegionOf. */
function regionKeyOf(spaNumber: number): number {
  return Math.floor(spaNumber / 0x200000);
}

/** The 4 KiB entry's index inside its 2 MiB region, from `Number(spa)` (u64ToNumber). */
function indexInRegionOf(spaNumber: number): number {
  return Math.floor(spaNumber / 0x1000) % PAGES_PER_2M;
}

export class Rmp implements Snapshottable<RmpTable> {
  #regions = new Map<number, Region>();
  /**
   * The saved table the live one started from at the last save or load, and each region changed
   * since as it was then (undefined: not stored): loading that same state again (the fuzzer
   * restores one snapshot per execution) puts back only those regions instead of copying the table.
   */
  #base: RmpTable | undefined;
  readonly #changed = new Map<number, Region | undefined>();
  /** Size of system memory the RMP covers (RMP-Covered check). */
  readonly coveredBytes: bigint;

  constructor(coveredBytes: bigint) {
    this.coveredBytes = coveredBytes;
  }

  saveState(): RmpTable {
    const state = copyRegions(this.#regions);
    this.#base = state;
    this.#changed.clear();
    return state;
  }

  loadState(state: RmpTable): void {
    if (state === this.#base) {
      for (const [key, was] of this.#changed) {
        if (was) this.#regions.set(key, was);
        else this.#regions.delete(key);
      }
    } else {
      this.#regions = copyRegions(state);
    }
    this.#base = state;
    this.#changed.clear();
  }

  /** Call before changing, replacing or removing the region `key`: keeps what it was since the last save or load. */
  #willChange(key: number): void {
    if (this.#base === undefined || this.#changed.has(key)) return; // nothing to go back to before a save or load
    const region = this.#regions.get(key);
    this.#changed.set(key, region && copyRegion(region));
  }

  /** A version no region had before, for a region whose entries just changed. */
  #newVersion(): number {
    return nextRegionVersion++;
  }

  /**
   * The version of the 2 MiB region with index `key` (spa >> 21): equal versions, equal entries
   * (see Region). 0 for a region that stores nothing (every page in the reset state).
   */
  regionVersion(key: number): number {
    return this.#regions.get(key)?.version ?? 0;
  }

  covers(spa: bigint): boolean {
    return spa >= 0n && spa < this.coveredBytes;
  }

  /** The entry governing `spa` (a 2 MiB entry for every page inside it). */
  lookup(spa: bigint): Readonly<RmpEntry> {
    // Converted once, for both the key and the index.
    const n = u64ToNumber(spa);
    const region = this.#regions.get(regionKeyOf(n));
    if (!region) return HV_OWNED_ENTRY;
    if (region.kind === 'large') return region.entry;
    return region.entries[indexInRegionOf(n)] ?? HV_OWNED_ENTRY;
  }

  /** Whether `spa` lies in a 2 MiB RMP entry. */
  isLarge(spa: bigint): boolean {
    return this.#regions.get(regionKey(spa))?.kind === 'large';
  }

  /** How many 4 KiB entries of the 2 MiB region around `spa` are assigned (as 4 KiB entries). */
  assigned4kInRegion(spa: bigint): number {
    const region = this.#regions.get(regionKey(spa));
    if (!region || region.kind === 'large') return 0;
    return region.assigned;
  }

  /** Whether every 4 KiB RMP entry of the 2 MiB region around `spa` is hypervisor-owned. */
  regionHypervisorOwned(spa: bigint): boolean {
    const region = this.#regions.get(regionKey(spa));
    if (!region) return true;
    if (region.kind === 'large') return !region.entry.assigned;
    return region.assigned === 0;
  }

  /**
   * Whether every page of [spa, spa+length) (4 KiB aligned) has the reset entry: nothing stored
   * for it, neither a 2 MiB entry nor a 4 KiB one. One look per 2 MiB region, not per page.
   */
  allReset(spa: bigint, length: bigint): boolean {
    const first = Number(spa) / 0x1000, end = first + Number(length) / 0x1000;
    for (let page = first; page < end;) {
      const key = Math.floor(page / PAGES_PER_2M);
      const regionEnd = Math.min(end, (key + 1) * PAGES_PER_2M);
      const region = this.#regions.get(key);
      if (region?.kind === 'large') return false;
      if (region) {
        const entries = region.entries;
        for (let at = page; at < regionEnd; at++) if (entries[at - key * PAGES_PER_2M] !== undefined) return false;
      }
      page = regionEnd;
    }
    return true;
  }

  /** Any immutable entry in [spa, spa+length)? (length 4K or 2M, aligned) */
  anyImmutable(spa: bigint, length: bigint): boolean {
    if (length === PAGE_4K) return this.lookup(spa).immutable;
    const region = this.#regions.get(regionKey(spa));
    if (!region) return false;
    if (region.kind === 'large') return region.entry.immutable;
    for (const e of region.entries) if (e?.immutable) return true;
    return false;
  }

  // Raw writers: only the platform's instruction implementations call these, after the
  // legality table said yes. Each refuses, before it changes anything, a write that would make
  // the table contradict itself; the platform never asks for one (each throw says why), so a
  // throw here is a bug in a caller.

  put4k(spa: bigint, entry: RmpEntry): void {
    const n = u64ToNumber(spa);
    const key = regionKeyOf(n);
    const index = indexInRegionOf(n);
    let region = this.#regions.get(key);
    // RMPUPDATE 4K and SNP_LAUNCH_UPDATE in a 2 MiB entry are refused first (FAIL_OVERLAP, INVALID_PAGE_SIZE).
    if (region?.kind === 'large') throw new Error('put4k inside a 2 MiB RMP entry (the legality table should have refused)');
    if (!entry.assigned && !entry.validated && !entry.immutable) {
      // Back to the reset state: forget it (sparseness). A page already there changes nothing.
      if (!region) return;
      const old = region.entries[index];
      if (old === undefined) return;
      this.#willChange(key);
      region.entries[index] = undefined;
      region.count--;
      if (old.assigned) region.assigned--;
      if (region.count === 0) this.#regions.delete(key);
      else region.version = versionAfter(key, region.version, Write.Reset, index, this.#base !== undefined);
      return;
    }
    this.#willChange(key);
    if (!region) {
      region = emptySmallRegion();
      this.#regions.set(key, region);
    }
    const old = region.entries[index];
    if (old === undefined) region.count++;
    else if (old.assigned) region.assigned--;
    if (entry.assigned) region.assigned++;
    region.entries[index] = { ...entry, pageSize: '4k' };
    region.version = isFreshAssignment(entry, n - (n % 0x1000))
      ? versionAfter(key, region.version, Write.Assigned, index, this.#base !== undefined, entry.asid)
      : this.#newVersion();
  }

  put2m(spa: bigint, entry: RmpEntry): void {
    const key = regionKey(spa);
    this.#willChange(key);
    if (!entry.assigned && !entry.validated && !entry.immutable) {
      this.#regions.delete(key);
      return;
    }
    // A fresh assignment's entry alone decides the region's entries, whatever it held before.
    const version = isFreshAssignment(entry, key * 0x200000)
      ? versionAfter(key, 0, Write.Assigned2m, 0, this.#base !== undefined, entry.asid)
      : this.#newVersion();
    this.#regions.set(key, { kind: 'large', entry: { ...entry, pageSize: '2m' }, version });
  }

  /** PSMASH's effect: 512 4 KiB entries with the 2 MiB entry's attributes (Validated kept). */
  split(spa: bigint): void {
    const key = regionKey(spa);
    const region = this.#regions.get(key);
    // PSMASH of anything but a 2 MiB entry is FAIL_BADADDR in the legality table.
    if (region?.kind !== 'large') throw new Error('split of a region that is not a 2 MiB entry');
    this.#willChange(key);
    const { assigned } = region.entry;
    const version = versionAfter(key, region.version, Write.Split, 0, this.#base !== undefined);
    this.#regions.set(key, { kind: 'small', entries: splitEntries(region.entry, version), count: PAGES_PER_2M, assigned: assigned ? PAGES_PER_2M : 0, version });
  }

  /** Sets Validated on the entry governing `spa` (PVALIDATE's only write). */
  setValidated(spa: bigint, validated: boolean): void {
    const n = u64ToNumber(spa);
    const key = regionKeyOf(n);
    const region = this.#regions.get(key);
    const index = indexInRegionOf(n);
    // PVALIDATE gets here only past its guest-owned check: the page is assigned, so stored.
    if (!region || (region.kind === 'small' && !region.entries[index])) throw new Error('setValidated on a hypervisor-owned page');
    this.#willChange(key);
    region.version = versionAfter(key, region.version, validated ? Write.Validated : Write.NotValidated, region.kind === 'large' ? 0 : index, this.#base !== undefined);
    if (region.kind === 'large') region.entry = { ...region.entry, validated };
    else region.entries[index] = { ...region.entries[index]!, validated };
  }

  /** RMPADJUST's only write: one VMPL's permissions and the VMSA bit of the entry governing `spa`. */
  adjustPermissions(spa: bigint, vmpl: number, perms: number, vmsa: boolean): void {
    const n = u64ToNumber(spa);
    const key = regionKeyOf(n);
    const region = this.#regions.get(key);
    const index = indexInRegionOf(n);
    // RMPADJUST gets here only past its guest-owned check: the page is assigned, so stored.
    if (!region || (region.kind === 'small' && !region.entries[index])) throw new Error('adjustPermissions on a hypervisor-owned page');
    this.#willChange(key);
    const adjust = (e: RmpEntry): RmpEntry => {
      const vmplPerms = [...e.vmplPerms] as [number, number, number, number];
      vmplPerms[vmpl] = perms;
      return { ...e, vmplPerms, vmsa };
    };
    region.version = this.#newVersion();
    if (region.kind === 'large') region.entry = adjust(region.entry);
    else region.entries[index] = adjust(region.entries[index]!);
  }

  /** Stored 2 MiB regions (the memory-proportionality measure). */
  get storedRegions(): number {
    return this.#regions.size;
  }

  /** Number of assigned 4 KiB pages (2 MiB entries count 512). */
  assignedPages(): number {
    let n = 0;
    for (const r of this.#regions.values()) {
      if (r.kind === 'large') n += r.entry.assigned ? PAGES_PER_2M : 0;
      else n += r.assigned;
    }
    return n;
  }

  /** Region keys (2 MiB indices) in insertion order: for gate syncing and tests. */
  regionKeys(): bigint[] {
    return [...this.#regions.keys()].map(BigInt);
  }

  /**
   * The 4 KiB entries of the region with index `key` (spa >> 21), a slot per page (undefined: the
   * reset state), or undefined when it stores a 2 MiB entry or nothing. Read only, and valid until
   * the table changes: for a walk of every page (the page gate's derivation) without a call per
   * entry (a callback per entry was ~half of such a walk).
   */
  smallEntries(key: number): readonly (Readonly<RmpEntry> | undefined)[] | undefined {
    const r = this.#regions.get(key);
    return r?.kind === 'small' ? r.entries : undefined;
  }
}
