// The VMM's mirror of the S-EPT (src/vmm/tdx/sept-mirror.ts) against the module's own S-EPT:
// whatever SEAMCALLs the host makes (legal or not) and whatever the guest accepts, every answer
// the mirror gives is the one TDH.MEM.SEPT.RD would give, state by class.
import { describe, expect, it } from 'vitest';
import { pageAccept } from '../../../src/platform/tdx/page-accept.js';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import type { SeptLevel, SeptStateName } from '../../../src/platform/tdx/sept-states.js';
import type { TdModule } from '../../../src/platform/tdx/td-module.js';
import { Prng } from '../../../src/shared/prng.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';
import { SeptMirror } from '../../../src/vmm/tdx/sept-mirror.js';

const MiB = 1n << 20n;
/** GPAs in two 2 MiB regions, at their edges and inside, so operations overlap. */
const PAGES = [0n, 0x1000n, 0x2000n, 0x1ff000n, 0x200000n, 0x201000n, 0x3ff000n];
const ZERO_PAGE = new Uint8Array(4096);

const classOf = (s: SeptStateName) => (s === 'FREE' || s === 'REMOVED' || s === 'NL_MAPPED' || s === 'NL_BLOCKED' ? s : 'LEAF');

/** One random host SEAMCALL or guest ACCEPT on the TD. */
function randomStep(rng: Prng, m: TdModule, mirror: SeptMirror): void {
  const h = m.host;
  const gpa = rng.pick(PAGES);
  const level = rng.pick([0, 0, 1, 1, 2, 3] as SeptLevel[]);
  const aligned = (l: SeptLevel) => gpa & ~((1n << BigInt(12 + 9 * l)) - 1n);
  const rcx = gpaLevel(aligned(level), level);
  switch (rng.below(11)) {
    case 0: h.memSeptAdd(rcx); break;
    case 1: h.memPageAug(gpaLevel(aligned(Math.min(level, 1) as SeptLevel), Math.min(level, 1) as SeptLevel)); break;
    case 2:
      if (m.finalized) break;
      // One PAGE.ADD, or a launch range of several (one event standing for all its pages).
      if (rng.chance(1, 2)) h.memPageAdd(gpaLevel(gpa, 0), ZERO_PAGE);
      else h.addPages(gpa, new Uint8Array(4096 * (1 + rng.below(4))), rng.chance(1, 2));
      break;
    case 3: h.memRangeBlock(rcx); break;
    case 4: h.memRangeUnblock(rcx); break;
    case 5: h.memTrack(); break;
    case 6: h.memPageRemove(rcx); break;
    case 7: h.memPageDemote(rcx); break;
    case 8: h.memPagePromote(rcx); break;
    case 9: pageAccept(m, gpaLevel(aligned(Math.min(level, 1) as SeptLevel), Math.min(level, 1) as SeptLevel)); break;
    default: {
      // The VMM reads an entry it does not know and remembers the answer.
      const r = h.memSeptRead(rcx);
      if (r.status === 0n || r.level !== level) mirror.learn(aligned(level), r);
    }
  }
  if (!m.finalized && rng.chance(1, 100)) h.mrFinalize();
}

/** Every answer the mirror gives matches the module's walk; returns how many it gave. */
function checkMirror(m: TdModule, mirror: SeptMirror): number {
  let known = 0;
  for (const gpa of PAGES) {
    for (const level of [0, 1, 2, 3] as SeptLevel[]) {
      const mirrored = mirror.walk(gpa, level);
      if (!mirrored) continue;
      known++;
      const truth = m.sept.walk(gpa, level);
      expect({ gpa, level, walk: mirrored }).toEqual({ gpa, level, walk: { level: truth.level, state: classOf(truth.state) } });
    }
  }
  return known;
}

describe('the TDX VMM mirror of the S-EPT', () => {
  it('agrees with the module after any sequence of SEAMCALLs and guest accepts, and knows most entries', () => {
    let known = 0, asked = 0;
    for (let seed = 1n; seed <= 12n; seed++) {
      const td = createTd({ memoryBytes: 8n * MiB });
      const m = td.platform.module;
      const mirror = td.vmm.ctx.septMirror;
      const rng = new Prng(seed);
      // As a launch starts: the upper levels over the first GiB (then anything goes).
      m.host.memSeptAdd(gpaLevel(0n, 3));
      m.host.memSeptAdd(gpaLevel(0n, 2));
      for (let step = 0; step < 300; step++) {
        randomStep(rng, m, mirror);
        known += checkMirror(m, mirror);
        asked += PAGES.length * 4;
      }
      td.platform.machine.close();
    }
    // Not vacuous: the mirror answers most questions (the rest are entries nothing told it about).
    expect(known / asked).toBeGreaterThan(0.5);
  });

  it('agrees with the module too when it is made to forget everything now and then (a VMM attached to a running TD): what it did not see stays unknown', () => {
    let known = 0;
    for (let seed = 1n; seed <= 6n; seed++) {
      const td = createTd({ memoryBytes: 8n * MiB });
      const m = td.platform.module;
      const mirror = td.vmm.ctx.septMirror;
      const nothing = new SeptMirror(m.host.septTopLevel).saveState();
      const rng = new Prng(1000n + seed);
      m.host.memSeptAdd(gpaLevel(0n, 3));
      m.host.memSeptAdd(gpaLevel(0n, 2));
      for (let step = 0; step < 200; step++) {
        if (rng.chance(1, 20)) mirror.loadState(nothing);
        randomStep(rng, m, mirror);
        known += checkMirror(m, mirror);
      }
      td.platform.machine.close();
    }
    expect(known).toBeGreaterThan(0);
  });

  it('is saved and restored with the VMM: a restore brings back what it knew, and later changes do not reach the saved copy', () => {
    const td = createTd({ memoryBytes: 8n * MiB });
    const m = td.platform.module;
    const mirror = td.vmm.ctx.septMirror;
    const rng = new Prng(99n);
    for (let step = 0; step < 200; step++) randomStep(rng, m, mirror);
    const savedModule = m.saveState();
    const savedVmm = td.vmm.saveState();
    const before = checkMirror(m, mirror);
    expect(before).toBeGreaterThan(0);
    for (let round = 0; round < 3; round++) {
      for (let step = 0; step < 100; step++) {
        randomStep(rng, m, mirror);
        checkMirror(m, mirror);
      }
      m.loadState(savedModule);
      td.vmm.loadState(savedVmm);
      expect(checkMirror(m, mirror)).toBe(before);
    }
    td.platform.machine.close();
  });

  it('spares the honest VMM every TDH.MEM.SEPT.RD of a converting MapGPA: it converts from what it knows', () => {
    const td = createTd({ memoryBytes: 8n * MiB });
    const h = td.platform.module.host;
    // What a launch leaves: the upper SEPT levels, and a 2 MiB private page the guest then accepts.
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    h.mrFinalize();
    h.memPageAug(gpaLevel(0x200000n, 1));
    pageAccept(td.platform.module, gpaLevel(0x200000n, 1));
    const reads = () => td.trace.events.filter((e) => e.type === 'seamcall' && e.leaf === 'TDH_MEM_SEPT_RD').length;
    const call = (r12: bigint, r13: bigint) => ({ reason: 'tdvmcall', regs: { r10: 0n, r11: 0x10001n, r12, r13 } }) as never;
    const shared = 1n << 47n;
    // To shared and back: BLOCK, TRACK, DEMOTE, then BLOCK, TRACK, REMOVE per page; AUG back.
    expect(td.vmm.decide(call(0x204000n | shared, 0x3000n))).toMatchObject({ kind: 'return', regs: { r10: 0n } });
    expect(td.vmm.decide(call(0x204000n, 0x3000n))).toMatchObject({ kind: 'return', regs: { r10: 0n } });
    expect(td.trace.events.filter((e) => e.type === 'seamcall' && e.leaf === 'TDH_MEM_PAGE_REMOVE' && e.status === 0n)).toHaveLength(3);
    expect(td.trace.events.filter((e) => e.type === 'seamcall' && e.leaf === 'TDH_MEM_PAGE_AUG' && e.status === 0n)).toHaveLength(4);
    expect(reads()).toBe(0);
    td.platform.machine.close();
  });

  // The mirror remembers the last 2 MiB range whose walk reached the 4K level; that memo must not
  // outlive a change above the 4K level, nor a restore.
  it('a walk to 4K after its PD entry changed, or after a restore, answers from the entry as it is now', () => {
    const td = createTd({ memoryBytes: 8n * MiB });
    const h = td.platform.module.host;
    const mirror = td.vmm.ctx.septMirror;
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    const beforePd = td.vmm.saveState();
    h.memSeptAdd(gpaLevel(0x200000n, 1));
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 0, state: 'FREE' });
    // BLOCK of the PD entry (tdh_mem_range_block.c: a non-leaf becomes NL_BLOCKED): the walk stops there.
    expect(h.memRangeBlock(gpaLevel(0x200000n, 1)).status).toBe(0n);
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 1, state: 'NL_BLOCKED' });
    h.memTrack();
    expect(h.memRangeUnblock(gpaLevel(0x200000n, 1)).status).toBe(0n);
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 0, state: 'FREE' });
    // Back to before the PD page was added: the walk stops at the FREE PD entry.
    td.vmm.loadState(beforePd);
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 1, state: 'FREE' });
    td.platform.machine.close();
  });

  it('learning what a TDH.MEM.SEPT.RD reported keeps what the mirror already knew above and below it', () => {
    const td = createTd({ memoryBytes: 8n * MiB });
    const h = td.platform.module.host;
    const mirror = td.vmm.ctx.septMirror;
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    h.memSeptAdd(gpaLevel(0x200000n, 1));
    h.memPageAug(gpaLevel(0x201000n, 0));
    // A read that stops at the FREE PD entry of 0x400000, and one of the PD entry it added itself.
    mirror.learn(0x400000n, { level: 1, state: 'FREE' });
    mirror.learn(0x200000n, { level: 1, state: 'NL_MAPPED' });
    // The PD page's other entries are still known FREE, and the 4K entries under 0x200000 as they were.
    expect(mirror.walk(0x600000n, 1)).toEqual({ level: 1, state: 'FREE' });
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 0, state: 'LEAF' });
    expect(mirror.walk(0x202000n, 0)).toEqual({ level: 0, state: 'FREE' });
    td.platform.machine.close();
  });

  it('an entry found changed forgets what was below it: a SEPT page added there again has only FREE entries', () => {
    const mirror = new SeptMirror(3);
    const ok = 0n;
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 3), ok);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 2), ok);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0x200000n, 1), ok);
    mirror.observe('TDH_MEM_PAGE_AUG', gpaLevel(0x201000n, 0), ok);
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 0, state: 'LEAF' });
    // A TDH.MEM.SEPT.RD finds the PD entry FREE (its page went away behind the VMM's back) ...
    mirror.learn(0x200000n, { level: 1, state: 'FREE' });
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 1, state: 'FREE' });
    // ... and a new SEPT page there holds FREE entries only (tdh_mem_sept_add.c), not the old leaf.
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0x200000n, 1), ok);
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 0, state: 'FREE' });
  });
});


describe('what the mirror derives for entries it has none of', () => {
  const ok = 0n;

  it('the 512 entries under a demoted 2M leaf are leaves (tdh_mem_page_demote.c: sept_split_entry gives each the leaf\'s state)', () => {
    const mirror = new SeptMirror(3);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 3), ok);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 2), ok);
    mirror.observe('TDH_MEM_PAGE_AUG', gpaLevel(0x200000n, 1), ok);
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 1, state: 'LEAF' });
    mirror.observe('TDH_MEM_PAGE_DEMOTE', gpaLevel(0x200000n, 1), ok);
    expect(mirror.walk(0x200000n, 1)).toEqual({ level: 1, state: 'NL_MAPPED' });
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 0, state: 'LEAF' });
    expect(mirror.walk(0x3ff000n, 0)).toEqual({ level: 0, state: 'LEAF' });
    // A SEPT page added elsewhere holds FREE entries (tdh_mem_sept_add.c), not leaves.
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0x400000n, 1), ok);
    expect(mirror.walk(0x401000n, 0)).toEqual({ level: 0, state: 'FREE' });
  });

  it('the 512 entries under a demoted 1G leaf are 2M leaves', () => {
    const mirror = new SeptMirror(3);
    mirror.observe('TDH_MEM_SEPT_ADD', gpaLevel(0n, 3), ok);
    mirror.observe('TDH_MEM_PAGE_PROMOTE', gpaLevel(0n, 2), ok);  // a 1G leaf
    mirror.observe('TDH_MEM_PAGE_DEMOTE', gpaLevel(0n, 2), ok);
    expect(mirror.walk(0n, 2)).toEqual({ level: 2, state: 'NL_MAPPED' });
    expect(mirror.walk(0x200000n, 1)).toEqual({ level: 1, state: 'LEAF' });
    expect(mirror.walk(0x3fe00000n, 1)).toEqual({ level: 1, state: 'LEAF' });
  });

  it('what a TDH.MEM.SEPT.RD reported says nothing of the other entries of that SEPT page: they stay unknown', () => {
    // A VMM that starts after the TD did learns one 4K leaf; its neighbours may be anything.
    const mirror = new SeptMirror(3);
    mirror.learn(0x201000n, { level: 0, state: 'MAPPED' });
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 0, state: 'LEAF' });
    expect(mirror.walk(0x202000n, 0)).toBeUndefined();
    expect(mirror.walk(0x400000n, 1)).toBeUndefined();
    expect(mirror.walk(0x201000n, 1)).toEqual({ level: 1, state: 'NL_MAPPED' });
  });

  it('a REMOVED entry a TDH.MEM.SEPT.RD reported is remembered as REMOVED, and the walk stops there (it is no present non-leaf)', () => {
    const mirror = new SeptMirror(3);
    mirror.learn(0x200000n, { level: 1, state: 'REMOVED' });
    expect(mirror.walk(0x200000n, 1)).toEqual({ level: 1, state: 'REMOVED' });
    expect(mirror.walk(0x201000n, 0)).toEqual({ level: 1, state: 'REMOVED' });
  });
});

// Two edge cases of the mirror's bookkeeping, against what the module does to the S-EPT.
describe('sept mirror: a PROMOTE forgets only its own 512 children; a restore hides every later entry', () => {
  const TWO_MIB = 0x200000n;
  const SUCCESS = 0n;

  it.each([['written since the last save', false], ['saved', true]] as const)('PROMOTE of 2 MiB range N drops the 4K leaves under N and keeps the first 4K leaf of range N + 1 (entries %s)', (_n, save) => {
    // tdh_mem_page_promote.c merges the 512 entries of the one SEPT page under the PD entry it
    // promotes; the entry after them is the first of the next PD entry's SEPT page.
    const m = new SeptMirror(3);
    const n = 5n;
    m.learn(n * TWO_MIB + 0x1000n, { level: 0, state: 'MAPPED' });
    m.learn((n + 1n) * TWO_MIB, { level: 0, state: 'MAPPED' });
    if (save) m.saveState();
    m.observe('TDH_MEM_PAGE_PROMOTE', gpaLevel(n * TWO_MIB, 1), SUCCESS);
    expect(m.walk(n * TWO_MIB + 0x1000n, 0)).toEqual({ level: 1, state: 'LEAF' });
    expect(m.walk((n + 1n) * TWO_MIB, 0)).toEqual({ level: 0, state: 'LEAF' });
  });

  it('an entry written after a save is gone after restoring it: a DEMOTEd 2 MiB leaf is a 2 MiB leaf again', () => {
    // The saved S-EPT had the 2 MiB leaf; what the VMM saw after the save (tdh_mem_page_demote.c:
    // a non-leaf over 512 leaves, the largest entry the mirror keeps) must not outlive the restore.
    const m = new SeptMirror(3);
    m.learn(3n * TWO_MIB, { level: 1, state: 'MAPPED' });
    const saved = m.saveState();
    m.observe('TDH_MEM_PAGE_DEMOTE', gpaLevel(3n * TWO_MIB, 1), SUCCESS);
    expect(m.walk(3n * TWO_MIB, 1)).toEqual({ level: 1, state: 'NL_MAPPED' });
    m.loadState(saved);
    expect(m.walk(3n * TWO_MIB, 1)).toEqual({ level: 1, state: 'LEAF' });
    expect(m.walk(3n * TWO_MIB + 0x1000n, 0)).toEqual({ level: 1, state: 'LEAF' });
  });
});
