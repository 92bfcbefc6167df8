// The VMM's S-EPT mirror (src/vmm/tdx/sept-mirror.ts) keeps its entries in saved bases and
// generation-stamped overlays, memoises the walk above 4K and searches only where entries were
// written. None of that may change what it knows. Beside the module's truth (sept-mirror.test.ts),
// this runs a plain mirror of the same rules (one Map per level, deep copies for save and
// restore, a walk from the top every time) on the same SEAMCALLs and checks that the two know the
// same entries, answer the same and forget the same, across saves and restores taken and loaded
// in any order. The rules themselves: KVM's mirror root (arch/x86/kvm/mmu/tdp_mmu.c) records what
// each successful SEAMCALL made of its entry (sept-legality.ts rows; tdh_mem_sept_add.c: a new
// SEPT page holds FREE entries; tdh_mem_page_demote.c: a demoted leaf's 512 children are leaves).
import { describe, expect, it } from 'vitest';
import { pageAccept } from '../../../src/platform/tdx/page-accept.js';
import { gpaLevel, type SeamcallName } from '../../../src/platform/tdx/seamcall.js';
import { isLeafState, septEntryKey, type SeptLevel, type SeptStateName } from '../../../src/platform/tdx/sept-states.js';
import type { TdModule } from '../../../src/platform/tdx/td-module.js';
import { Prng } from '../../../src/shared/prng.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';
import { SeptMirror, type MirroredState, type MirroredWalk, type SeptMirrorState } from '../../../src/vmm/tdx/sept-mirror.js';

const MiB = 1n << 20n;
const PAGE = 0x1000n;
/** A state as the mirror keeps it: every leaf state one class (sept-states.ts, the module's leaf states). */
const classOf = (s: SeptStateName): MirroredState => (isLeafState(s) ? 'LEAF' : s as MirroredState);

type Children = 'unknown' | 'free' | 'leaves';
interface Entry { state: MirroredState; children: Children }

/** The mirror's rules with nothing optimised: the oracle for what the real one must know. */
class PlainMirror {
  levels: Map<number, Entry>[];
  constructor(readonly top: SeptLevel) {
    this.levels = Array.from({ length: top + 1 }, () => new Map<number, Entry>());
  }

  save(): Map<number, Entry>[] { return this.levels.map((m) => new Map(m)); }
  load(saved: Map<number, Entry>[]): void { this.levels = saved.map((m) => new Map(m)); }

  walk(gpa: bigint, level: SeptLevel): MirroredWalk | undefined {
    const at = Number(gpa);
    let children: Children = 'unknown';
    for (let l = this.top; ; l = (l - 1) as SeptLevel) {
      const entry = this.levels[l]!.get(septEntryKey(at, l));
      const state: MirroredState | undefined = entry?.state ?? (children === 'free' ? 'FREE' : children === 'leaves' ? 'LEAF' : undefined);
      if (state === undefined) return undefined;
      if (l === level || state !== 'NL_MAPPED') return { level: l, state };
      children = entry!.children;
    }
  }

  learn(gpa: bigint, walk: { level: SeptLevel; state: SeptStateName }): void {
    const at = Number(gpa);
    for (let l = this.top; l > walk.level; l = (l - 1) as SeptLevel) {
      const key = septEntryKey(at, l);
      if (this.levels[l]!.get(key)?.state !== 'NL_MAPPED') this.levels[l]!.set(key, { state: 'NL_MAPPED', children: 'unknown' });
    }
    const key = septEntryKey(at, walk.level);
    const known = this.levels[walk.level]!.get(key)?.state;
    const state = classOf(walk.state);
    if (known === state) return;
    if (known !== undefined) this.forgetBelow(walk.level, key);
    this.levels[walk.level]!.set(key, { state, children: 'unknown' });
  }

  observe(leaf: SeamcallName, rcx: bigint | null, status: bigint, pages: number): void {
    if (status !== 0n || rcx === null) return;
    const operand = Number(rcx);
    const level = (operand % 8) as SeptLevel;
    if (level > this.top) return;
    const first = septEntryKey(operand - (operand % 4096), level);
    for (let i = 0; i < pages; i++) this.apply(leaf, level, first + i);
  }

  private apply(leaf: SeamcallName, level: SeptLevel, key: number): void {
    const entry = this.levels[level]!.get(key);
    let next: { state: MirroredState; children?: Children } | undefined;
    switch (leaf) {
      case 'TDH_MEM_SEPT_ADD': next = { state: 'NL_MAPPED', children: 'free' }; break;
      case 'TDH_MEM_PAGE_ADD': case 'TDH_MEM_PAGE_AUG': next = { state: 'LEAF' }; break;
      case 'TDH_MEM_PAGE_REMOVE': next = { state: 'FREE' }; break;
      case 'TDH_MEM_PAGE_DEMOTE': next = { state: 'NL_MAPPED', children: 'leaves' }; break;
      case 'TDH_MEM_PAGE_PROMOTE': next = { state: 'LEAF', children: 'unknown' }; break;
      case 'TDH_MEM_RANGE_BLOCK':
        next = entry?.state === 'NL_MAPPED' ? { state: 'NL_BLOCKED' } : entry?.state === 'LEAF' ? { state: 'LEAF' } : undefined; break;
      case 'TDH_MEM_RANGE_UNBLOCK':
        next = entry?.state === 'NL_BLOCKED' ? { state: 'NL_MAPPED' } : entry?.state === 'LEAF' ? { state: 'LEAF' } : undefined; break;
      default: return;
    }
    if (!next) { this.levels[level]!.delete(key); return; }
    if (next.children !== undefined) this.forgetBelow(level, key);
    this.levels[level]!.set(key, { state: next.state, children: next.children ?? entry?.children ?? 'unknown' });
  }

  private forgetBelow(level: SeptLevel, key: number): void {
    if (level === 0) return;
    const child = (level - 1) as SeptLevel;
    for (const k of [...this.levels[child]!.keys()]) {
      if (Math.floor(k / 512) !== key) continue;
      this.forgetBelow(child, k);
      this.levels[child]!.delete(k);
    }
  }
}

/** Pages at the edges and middles of the 8 MiB TD's four 2 MiB ranges, range by range (walks in a row share one). */
const PAGES = [0n, 2n, 4n, 6n].flatMap((r) => [0n, 1n, 2n, 255n, 256n, 510n, 511n].map((p) => r * MiB + p * PAGE));

function randomStep(rng: Prng, m: TdModule, mirror: SeptMirror, gpa: bigint): void {
  const h = m.host;
  const level = rng.pick([0, 0, 1, 1, 2, 3] as SeptLevel[]);
  const aligned = (l: SeptLevel) => gpa & ~((1n << BigInt(12 + 9 * l)) - 1n);
  const upTo2m = Math.min(level, 1) as SeptLevel;
  switch (rng.below(12)) {
    case 0: h.memSeptAdd(gpaLevel(aligned(level), level)); break;
    case 1: h.memPageAug(gpaLevel(aligned(upTo2m), upTo2m)); break;
    case 2:
      // A launch range of 1-4 pages, or a whole 2 MiB range page by page: 512 entries at once.
      if (!m.finalized) h.addPages(rng.chance(1, 4) ? aligned(1) : gpa, new Uint8Array(Number(PAGE) * (rng.chance(1, 4) ? 512 : 1 + rng.below(4))), rng.chance(1, 2));
      break;
    case 3: h.memRangeBlock(gpaLevel(aligned(level), level)); break;
    case 4: h.memRangeUnblock(gpaLevel(aligned(level), level)); break;
    case 5: h.memTrack(); break;
    case 6: h.memPageRemove(gpaLevel(aligned(level), level)); break;
    case 7: h.memPageDemote(gpaLevel(aligned(level), level)); break;
    case 8: h.memPagePromote(gpaLevel(aligned(level), level)); break;
    case 9: pageAccept(m, gpaLevel(aligned(upTo2m), upTo2m)); break;
    case 10: if (!m.finalized && rng.chance(1, 10)) h.mrFinalize(); break;
    default: {
      const r = h.memSeptRead(gpaLevel(aligned(level), level));
      if (r.status === 0n || r.level !== level) mirror.learn(aligned(level), r);
    }
  }
}

describe('the S-EPT mirror against a plain mirror of the same rules', () => {
  it('knows exactly what the plain one knows, answers the same, and agrees with the module, across saves and restores in any order', () => {
    let known = 0, unknown = 0, forgotten = 0;
    for (let seed = 1n; seed <= 8n; seed++) {
      const td = createTd({ memoryBytes: 8n * MiB });
      const m = td.platform.module;
      const mirror = td.vmm.ctx.septMirror;
      const plain = new PlainMirror(m.host.septTopLevel);
      const observe = m.host.observer!;
      m.host.observer = (leaf, rcx, status, pages) => { observe(leaf, rcx, status, pages); plain.observe(leaf, rcx, status, pages); };
      const learn = mirror.learn.bind(mirror);
      mirror.learn = (gpa, walk) => { learn(gpa, walk); plain.learn(gpa, walk); };
      const saves: { module: ReturnType<TdModule['saveState']>; mirror: SeptMirrorState; plain: Map<number, Entry>[] }[] = [];
      const nothing = new SeptMirror(m.host.septTopLevel).saveState();
      const rng = new Prng(seed);
      m.host.memSeptAdd(gpaLevel(0n, 3));
      m.host.memSeptAdd(gpaLevel(0n, 2));
      let before = 0;
      for (let step = 0; step < 400; step++) {
        const roll = rng.below(40);
        if (roll === 0) {
          saves.push({ module: m.saveState(), mirror: mirror.saveState(), plain: plain.save() });
        } else if (roll === 1 && saves.length > 0) {
          const s = rng.pick(saves);
          m.loadState(s.module);
          mirror.loadState(s.mirror);
          plain.load(s.plain);
        } else if (roll === 2) {
          // The VMM's record lost (a VMM attached to a running TD): it knows only what it reads again.
          mirror.loadState(nothing);
          plain.load(new PlainMirror(plain.top).levels);
        } else {
          // A walk just before the step, to the 2 MiB range the step may change, and the same walk
          // first after it: the mirror's memo of the last range walked must not survive the change.
          const probe = rng.pick(PAGES);
          expect(mirror.walk(probe, 0)).toEqual(plain.walk(probe, 0));
          randomStep(rng, m, mirror, rng.chance(1, 2) ? probe : rng.pick(PAGES));
          expect({ seed, step, probe, walk: mirror.walk(probe, 0) }).toEqual({ seed, step, probe, walk: plain.walk(probe, 0) });
        }
        let now = 0;
        for (const gpa of PAGES) {
          for (const level of [0, 1, 2, 3] as SeptLevel[]) {
            const mirrored = mirror.walk(gpa, level);
            expect({ seed, step, gpa, level, walk: mirrored }).toEqual({ seed, step, gpa, level, walk: plain.walk(gpa, level) });
            if (!mirrored) { unknown++; continue; }
            now++;
            const truth = m.sept.walk(gpa, level);
            expect({ seed, step, gpa, level, walk: mirrored }).toEqual({ seed, step, gpa, level, walk: { level: truth.level, state: classOf(truth.state) } });
          }
        }
        known += now;
        const entries = plain.levels.reduce((n, l) => n + l.size, 0);
        if (entries < before) forgotten++;
        before = entries;
      }
      td.platform.machine.close();
    }
    // Not vacuous: the mirrors know many entries, do not know many others, and forget some (REMOVE,
    // a new SEPT page, an entry found changed, a restore).
    expect(known).toBeGreaterThan(10_000);
    expect(unknown).toBeGreaterThan(10_000);
    expect(forgotten).toBeGreaterThan(20);
  });
});

describe('what the mirror forgets, across saves', () => {
  // A 2 MiB range mapped page by page, promoted, removed whole and given a new SEPT page: the
  // module's new SEPT page holds FREE entries (tdh_mem_sept_add.c), so every 4K entry the mirror
  // knew under the old one must be gone, whether it was written before or after the last save,
  // and whether the walk to it was the last one made (the memo) or not.
  for (const saveAfter of ['nothing', 'aug', 'all aug', 'promote', 'remove', 'every step'] as const) {
    it(`a promoted range removed and given a new SEPT page reads FREE below it (saved after: ${saveAfter})`, () => {
      const td = createTd({ memoryBytes: 8n * MiB });
      const m = td.platform.module, h = m.host;
      const mirror = td.vmm.ctx.septMirror;
      const plain = new PlainMirror(h.septTopLevel);
      const observe = h.observer!;
      h.observer = (leaf, rcx, status, pages) => { observe(leaf, rcx, status, pages); plain.observe(leaf, rcx, status, pages); };
      const saved: SeptMirrorState[] = [];
      const save = (point: string) => { if (saveAfter === point || saveAfter === 'every step') saved.push(mirror.saveState()); };
      const base = 0x200000n;
      const check = () => {
        for (const off of [0n, PAGE, 0x100000n, 0x1ff000n]) {
          for (const level of [0, 1] as SeptLevel[]) {
            const truth = m.sept.walk(base + off, level);
            expect({ off, level, walk: mirror.walk(base + off, level) }).toEqual({ off, level, walk: { level: truth.level, state: classOf(truth.state) } });
            expect(plain.walk(base + off, level)).toEqual({ level: truth.level, state: classOf(truth.state) });
          }
        }
      };
      expect(h.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
      expect(h.memSeptAdd(gpaLevel(0n, 2)).status).toBe(0n);
      expect(h.memSeptAdd(gpaLevel(base, 1)).status).toBe(0n);
      // First a page in another 2 MiB range: the range below is not the first one written since the save.
      expect(h.memSeptAdd(gpaLevel(0n, 1)).status).toBe(0n);
      h.mrFinalize();
      expect(h.memPageAug(gpaLevel(PAGE, 0)).status).toBe(0n);
      // Half the range from below the last save, half from above it (each half its own parents' run).
      for (let p = 0n; p < 256n; p++) expect(h.memPageAug(gpaLevel(base + p * PAGE, 0)).status).toBe(0n);
      save('aug');
      for (let p = 256n; p < 512n; p++) expect(h.memPageAug(gpaLevel(base + p * PAGE, 0)).status).toBe(0n);
      save('all aug');
      check();
      expect(h.memRangeBlock(gpaLevel(base, 1)).status).toBe(0n);
      h.memTrack();
      expect(h.memPagePromote(gpaLevel(base, 1)).status).toBe(0n);
      save('promote');
      check();
      expect(h.memRangeBlock(gpaLevel(base, 1)).status).toBe(0n);
      h.memTrack();
      expect(h.memPageRemove(gpaLevel(base, 1)).status).toBe(0n);
      save('remove');
      check();
      expect(h.memSeptAdd(gpaLevel(base, 1)).status).toBe(0n);
      check();
      for (const off of [0n, PAGE, 0x1ff000n]) expect(mirror.walk(base + off, 0)).toEqual({ level: 0, state: 'FREE' });
      td.platform.machine.close();
    });
  }
});

describe('what the mirror forgets when a TDH.MEM.SEPT.RD finds an entry changed', () => {
  // The entry changed behind the VMM's back, so what was below it may have too: everything under
  // it is unknown until read again, the first entry of its SEPT page included, and at every level.
  for (const saved of [false, true]) {
    it(`under a PD entry found blocked and then unblocked, the 4K entries are unknown (${saved ? 'known since before the last save' : 'no save'})`, () => {
      const mirror = new SeptMirror(3);
      mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 3), 0n);
      mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 2), 0n);
      mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0x200000n, 1), 0n);
      mirror.observe('TDH_MEM_PAGE_AUG', gpaLevel(0x200000n, 0), 0n);
      mirror.observe('TDH_MEM_PAGE_AUG', gpaLevel(0x201000n, 0), 0n);
      if (saved) mirror.saveState();
      expect(mirror.walk(0x200000n, 0)).toEqual({ level: 0, state: 'LEAF' });
      mirror.learn(0x200000n, { level: 1, state: 'NL_BLOCKED' });
      expect(mirror.walk(0x200000n, 0)).toEqual({ level: 1, state: 'NL_BLOCKED' });
      // tdh_mem_range_unblock.c: NL_BLOCKED -> NL_MAPPED, the SEPT page below as it is (unknown here).
      mirror.observe('TDH_MEM_RANGE_UNBLOCK', gpaLevel(0x200000n, 1), 0n);
      expect(mirror.walk(0x200000n, 1)).toEqual({ level: 1, state: 'NL_MAPPED' });
      expect(mirror.walk(0x200000n, 0)).toBeUndefined();
      expect(mirror.walk(0x201000n, 0)).toBeUndefined();
      expect(mirror.walk(0x202000n, 0)).toBeUndefined();
    });
  }

  it('under a PDPT entry found changed, the PD entries and the 4K entries below them are unknown', () => {
    const mirror = new SeptMirror(3);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 3), 0n);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 2), 0n);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0x200000n, 1), 0n);
    mirror.observe('TDH_MEM_PAGE_AUG', gpaLevel(0x200000n, 0), 0n);
    mirror.learn(0n, { level: 2, state: 'NL_BLOCKED' });
    mirror.observe('TDH_MEM_RANGE_UNBLOCK', gpaLevel(0n, 2), 0n);
    expect(mirror.walk(0x200000n, 1)).toBeUndefined();
    // A read then finds the PD entry present: the 4K entries under it are still unknown.
    mirror.learn(0x200000n, { level: 1, state: 'NL_MAPPED' });
    expect(mirror.walk(0x200000n, 1)).toEqual({ level: 1, state: 'NL_MAPPED' });
    expect(mirror.walk(0x200000n, 0)).toBeUndefined();
  });
});
