// TDX 1.5 SEAMCALL status codes through the host interface, each against the handler in the
// intel/tdx-module tree at tag TDX_1.5.01 that decides it (src/vmm_dispatcher/api_calls/).
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { createTd, type Td } from '../../../src/vmm/tdx/run-td.js';
import { pageAccept } from '../../../src/platform/tdx/page-accept.js';
import { septLockKey } from '../../../src/platform/tdx/sept-states.js';

const STATE_INCORRECT_RCX = 0xc0000b0d00000001n;
const OPERAND_INVALID_RCX = 0xc000010000000001n;
const P = 0x200000n;

/** A TD with the SEPT levels above P (512 GiB and 1 GiB entries) added, not finalized. */
function td(): Td {
  const t = createTd({ memoryBytes: 8n << 20n });
  expect(t.platform.module.host.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
  expect(t.platform.module.host.memSeptAdd(gpaLevel(0n, 2)).status).toBe(0n);
  return t;
}

describe('TDX 1.5 SEAMCALL status codes', () => {
  it('host priority (tdx_locks.h sept_lock_acquire_host/_guest): a host SEAMCALL on an entry a vCPU holds inside its ACCEPT gets OPERAND_BUSY|RCX and sets HP; a guest ACCEPT then gets OPERAND_BUSY until the host takes the lock', () => {
    const m = td().platform.module;
    const h = m.host;
    h.mrFinalize();
    expect(h.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    // vCPU 1 is inside its 2M ACCEPT of the entry, preempted between chunks (page-accept.ts).
    m.guestLocks.set(septLockKey(1, P), 1);
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0x8000020000000001n);
    expect(m.hostPriority.has(septLockKey(1, P))).toBe(true);
    expect(m.sept.walk(P, 1).state).toBe('PENDING');
    // vCPU 1 finishes and lets go; vCPU 0 now takes the free lock, finds HP and lets go again.
    m.guestLocks.delete(septLockKey(1, P));
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0x8000020000000001n });
    expect(m.sept.walk(P, 1).state).toBe('PENDING');
    // The host's retry gets the lock (clearing HP) and blocks the entry.
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.hostPriority.size).toBe(0);
    expect(m.sept.walk(P, 1).state).toBe('PENDING_BLOCKED');
  });

  it('RCX 0 is a valid operand, GPA 0 at level 4K (page_info_api_input_t: level in bits 2:0, GPA above): ACCEPT of a PENDING page at GPA 0 with RCX 0 succeeds', () => {
    const m = td().platform.module;
    const h = m.host;
    h.mrFinalize();
    expect(h.memSeptAdd(gpaLevel(0n, 1)).status).toBe(0n);
    expect(h.memPageAug(0n).status).toBe(0n);
    expect(pageAccept(m, 0n)).toEqual({ kind: 'return', status: 0n });
    expect(m.sept.walk(0n, 0).state).toBe('MAPPED');
  });

  it('AUG, PAGE.ADD and SEPT.ADD on a non-FREE entry → EPT_ENTRY_STATE_INCORRECT|RCX (tdh_mem_page_aug.c, tdh_mem_page_add.c, tdh_mem_sept_add.c)', () => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(STATE_INCORRECT_RCX); // NL_MAPPED already
    expect(h.memPageAdd(gpaLevel(P, 0), new Uint8Array(4096)).status).toBe(0n);
    expect(h.memPageAdd(gpaLevel(P, 0), new Uint8Array(4096)).status).toBe(STATE_INCORRECT_RCX);
    expect(h.memPageAug(gpaLevel(P, 0)).status).toBe(STATE_INCORRECT_RCX);
  });

  it('AUG is allowed before MR.FINALIZE (op_state_lookup.c: TDH.MEM.PAGE.AUG in OP_STATE_INITIALIZED)', () => {
    const m = td().platform.module;
    expect(m.finalized).toBe(false);
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.walk(P, 1).state).toBe('PENDING');
  });

  it('BLOCK of a blocked entry → GPA_RANGE_ALREADY_BLOCKED|RCX (tdh_mem_range_block.c)', () => {
    const m = td().platform.module;
    m.host.memPageAug(gpaLevel(P, 1));
    expect(m.host.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.host.memRangeBlock(gpaLevel(P, 1)).status).toBe(0x00000b0700000001n);
  });

  it('UNBLOCK of an entry that is not blocked → EPT_ENTRY_STATE_INCORRECT|RCX (tdh_mem_range_unblock.c)', () => {
    const m = td().platform.module;
    m.host.memPageAug(gpaLevel(P, 1));
    expect(m.host.memRangeUnblock(gpaLevel(P, 1)).status).toBe(STATE_INCORRECT_RCX);
  });

  it('UNBLOCK of a running TD without TRACK → TLB_TRACKING_NOT_DONE with operand SEPT_TREE 0x92', () => {
    const m = td().platform.module;
    const h = m.host;
    h.mrFinalize();
    h.memPageAug(gpaLevel(P, 1));
    h.memRangeBlock(gpaLevel(P, 1));
    expect(h.memRangeUnblock(gpaLevel(P, 1)).status).toBe(0xc0000b0800000092n);
    h.memTrack();
    expect(h.memRangeUnblock(gpaLevel(P, 1)).status).toBe(0n);
  });

  it('UNBLOCK before MR.FINALIZE needs no TRACK (op_state_lookup.c: no TLB tracking in INITIALIZED)', () => {
    const m = td().platform.module;
    const h = m.host;
    h.memPageAug(gpaLevel(P, 1));
    h.memRangeBlock(gpaLevel(P, 1));
    expect(h.memRangeUnblock(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.walk(P, 1).state).toBe('PENDING');
  });

  it('MR.EXTEND of an unmapped GPA → EPT_ENTRY_NOT_PRESENT|RCX (tdh_mr_extend.c)', () => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.mrExtend(P).status).toBe(0xc0000b0300000001n); // no SEPT page below 2M: the walk fails
    h.memSeptAdd(gpaLevel(P, 1));
    expect(h.mrExtend(P).status).toBe(0xc0000b0300000001n); // a FREE 4K entry
    h.memPageAug(gpaLevel(P, 0));
    expect(h.mrExtend(P).status).toBe(0xc0000b0300000001n); // PENDING is not present
    expect(h.mrExtend(P + 0x80n).status).toBe(0xc000010000000001n); // not 256-byte aligned
  });

  it('SEPT.ADD is legal from PD up to the page-walk length; the host adds the levels top-down', () => {
    const t = createTd({ memoryBytes: 8n << 20n });
    const h = t.platform.module.host;
    expect(h.septTopLevel).toBe(3); // GPAW 48: 4-level SEPT, EPTP.ept_pwl = 3
    expect(h.memSeptAdd(gpaLevel(0n, 2)).status).toBe(0xc0000b0000000001n); // EPT_WALK_FAILED: no level-3 page yet
    expect(h.memPageAug(gpaLevel(P, 1)).status).toBe(0xc0000b0000000001n);
    expect(h.memSeptAdd(gpaLevel(0n, 4)).status).toBe(0xc000010000000001n); // above ept_pwl: OPERAND_INVALID
    expect(h.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
    expect(h.memSeptAdd(gpaLevel(0n, 2)).status).toBe(0n);
    expect(h.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    const r = h.memSeptRead(gpaLevel(P, 0)); // SEPT.RD below a leaf: the walk stops at the 2M leaf
    expect([r.status, r.level, r.state]).toEqual([0xc0000b0000000001n, 1, 'PENDING']);
    t.platform.machine.close();
  });

  // tdh_mem_sept_rd.c: the operand's level must be 0..the SEPT's top (EPTP.ept_pwl) and its
  // GPA aligned to that level; otherwise OPERAND_INVALID|RCX before any walk.
  it('SEPT.RD refuses a level above the top or a GPA not aligned to its level; a good one reads the entry', () => {
    const t = createTd({ memoryBytes: 8n << 20n });
    const h = t.platform.module.host;
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    h.memPageAug(gpaLevel(P, 1));
    expect(h.memSeptRead(gpaLevel(0n, 4)).status).toBe(0xc000010000000001n);
    expect(h.memSeptRead(gpaLevel(P + 0x1000n, 1)).status).toBe(0xc000010000000001n);
    const r = h.memSeptRead(gpaLevel(P, 1));
    expect([r.status, r.level, r.state]).toEqual([0n, 1, 'PENDING']);
    const top = h.memSeptRead(gpaLevel(0n, 3));
    expect([top.status, top.level, top.state]).toEqual([0n, 3, 'NL_MAPPED']);
    t.platform.machine.close();
  });

  it('a GPAW-52 TD has a 5-level SEPT: SEPT.ADD level 4 is legal', () => {
    const t = createTd({ memoryBytes: 8n << 20n, gpaWidth: 52 });
    const h = t.platform.module.host;
    expect(h.septTopLevel).toBe(4);
    expect(h.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0xc0000b0000000001n);
    expect(h.memSeptAdd(gpaLevel(0n, 4)).status).toBe(0n);
    expect(h.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
    t.platform.machine.close();
  });
});

describe('operand levels: verify_page_info_input(min, max) in each handler', () => {
  it('PAGE.ADD is 4K only (LVL_PT..LVL_PT), SEPT.ADD starts at PD (LVL_PD..ept_pwl), REMOVE goes up to 1G (LVL_PT..LVL_PDPT)', () => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.memPageAdd(gpaLevel(P, 1), new Uint8Array(4096)).status).toBe(OPERAND_INVALID_RCX);
    expect(h.memSeptAdd(gpaLevel(P, 0)).status).toBe(OPERAND_INVALID_RCX);
    expect(h.memPageRemove(gpaLevel(0n, 3)).status).toBe(OPERAND_INVALID_RCX);
    // A 1G leaf (e.g. PROMOTEd from 2M leaves) is removed at level 2.
    m.sept.setState(2, 0x40000000n, 'MAPPED');
    expect(h.memPageRemove(gpaLevel(0x40000000n, 2)).status).toBe(0n);
    expect(m.sept.walk(0x40000000n, 2).state).toBe('FREE');
  });

  it('PAGE.ADD refuses a source that is not one 4 KiB page with OPERAND_INVALID|R9 (the source operand)', () => {
    const h = td().platform.module.host;
    h.memSeptAdd(gpaLevel(P, 1));
    expect(h.memPageAdd(gpaLevel(P, 0), new Uint8Array(100)).status).toBe(0xc000010000000009n);
    expect(h.memPageAdd(gpaLevel(P, 0), new Uint8Array(8192)).status).toBe(0xc000010000000009n);
  });
});

describe('TLB tracking and the TD\'s op state (op_state_lookup.c state_flags_lookup, tdh_mem_page_remove.c, tdh_mem_page_promote.c)', () => {
  it('REMOVE before MR.FINALIZE needs no TRACK, even of a blocked entry (tlb_tracking_required is 0 in INITIALIZED)', () => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.memPageRemove(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.walk(P, 1).state).toBe('FREE');
  });

  it('PROMOTE of a running TD needs TDH.MEM.TRACK after BLOCK: TLB_TRACKING_NOT_DONE|RCX', () => {
    const m = td().platform.module;
    const h = m.host;
    h.mrFinalize();
    m.sept.split(1, P, 'MAPPED');
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(0xc0000b0800000001n);
    expect(m.sept.walk(P, 1).state).toBe('NL_BLOCKED');
    h.memTrack();
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.walk(P, 1).state).toBe('MAPPED');
  });
});

describe('PROMOTE (tdh_mem_page_promote.c is_sept_page_valid_for_merge)', () => {
  it('512 PENDING children merge into a PENDING 2M leaf, which the guest then accepts at 2M', () => {
    const m = td().platform.module;
    const h = m.host;
    h.mrFinalize();
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    for (let g = P; g < P + 0x200000n; g += 0x1000n) expect(h.memPageAug(gpaLevel(g, 0)).status).toBe(0n);
    h.memRangeBlock(gpaLevel(P, 1));
    h.memTrack();
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.walk(P + 0x3000n, 0)).toMatchObject({ level: 1, state: 'PENDING' });
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
  });

  it('children neither all MAPPED nor all PENDING → EPT_INVALID_PROMOTE_CONDITIONS|RCX 0xC0000B0900000001', () => {
    const m = td().platform.module;
    const h = m.host;
    m.sept.split(1, P, 'MAPPED');
    m.sept.setState(0, P + 0x5000n, 'PENDING');
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(0xc0000b0900000001n);
    m.sept.setState(0, P + 0x5000n, 'MAPPED');
    m.sept.setState(0, P, 'BLOCKED');
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(0xc0000b0900000001n);
  });
});

describe('TDH.MR.EXTEND checks (tdh_mr_extend.c, helpers.c check_gpa_validity)', () => {
  it('after MR.FINALIZE → TDX_OP_STATE_INCORRECT 0xC000060800000000 (no operand: check_any_td_state_map_tdcs_and_lock)', () => {
    const h = td().platform.module.host;
    h.memSeptAdd(gpaLevel(P, 1));
    expect(h.addMeasuredPage(P, new Uint8Array(4096)).status).toBe(0n);
    expect(h.mrFinalize().status).toBe(0n);
    expect(h.mrExtend(P).status).toBe(0xc000060800000000n);
    expect(h.memPageAdd(gpaLevel(P + 0x1000n, 0), new Uint8Array(4096)).status).toBe(0xc000060800000000n);
    expect(h.mrFinalize().status).toBe(0xc000060800000000n);
  });

  it('GPA bits 51:48 of a GPAW-48 TD → OPERAND_INVALID|RCX', () => {
    const h = td().platform.module.host;
    expect(h.mrExtend((1n << 48n) | P).status).toBe(OPERAND_INVALID_RCX);
    expect(h.mrExtend((1n << 47n) | P).status).toBe(OPERAND_INVALID_RCX); // the shared bit
  });
});

describe('a blocked non-leaf entry (tdh_mem_range_block.c, sept_manager.c secure_ept_walk)', () => {
  it('BLOCK on NL_MAPPED clears RWX: walks stop there and the whole range closes', () => {
    const { module: m, machine } = td().platform;
    const h = m.host;
    h.memSeptAdd(gpaLevel(P, 1));
    for (let g = P; g < P + 0x200000n; g += 0x1000n) m.sept.setState(0, g, 'MAPPED');
    expect(machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(512n);
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.walk(P + 0x5000n, 0)).toMatchObject({ level: 1, state: 'NL_BLOCKED', isLeaf: false });
    expect(machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(0n);
    // Host calls below it fail the walk too.
    expect(h.memRangeBlock(gpaLevel(P + 0x5000n, 0)).status).toBe(0xc0000b0000000001n);
    // UNBLOCK (before finalize, no TRACK needed) reopens exactly what the children map.
    m.sept.setState(0, P + 0x7000n, 'PENDING');
    expect(h.memRangeUnblock(gpaLevel(P, 1)).status).toBe(0n);
    expect(machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(511n);
    expect(machine.gate.get('private', P + 0x7000n)).toBe('none');
  });
});

// verify_page_info_input and check_gpa_validity (helpers.c) refuse only a misaligned GPA, a bad
// level or a GPA at or above the shared bit: GPA 0, the first page of the TD, is a valid operand.
describe('the operand at GPA 0', () => {
  it('SEPT.ADD, AUG, BLOCK and REMOVE of the entries at GPA 0 (levels 1 and 0) succeed', () => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.memSeptAdd(gpaLevel(0n, 1)).status).toBe(0n);
    expect(h.memPageAug(0n).status).toBe(0n);
    expect(m.sept.stateAt(0, 0n)).toBe('PENDING');
    expect(h.memRangeBlock(0n).status).toBe(0n);
    expect(h.memPageRemove(0n).status).toBe(0n);
    expect(m.sept.stateAt(0, 0n)).toBe('FREE');
  });
});

// tdh_mem_page_demote.c: "Prepare the SEPT entry for the small pages: non-blocked" (sept_unblock
// of a *BLOCKED entry), then sept_split_entry gives each of the 512 children that state.
describe('TDH.MEM.PAGE.DEMOTE of a blocked 2M leaf on a running TD', () => {
  it.each([
    ['MAPPED', true, 'MAPPED'],
    ['PENDING', false, 'PENDING'],
  ] as const)('a %s leaf, blocked and tracked, becomes a SEPT page of 512 %s children', (_from, accepted, child) => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.mrFinalize().status).toBe(0n);
    expect(h.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    if (accepted) expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.memTrack().status).toBe(0n);
    expect(h.memPageDemote(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.stateAt(1, P)).toBe('NL_MAPPED');
    expect(new Set(m.sept.childStates(1, P))).toEqual(new Set([child]));
  });
});

// tdh_mem_page_promote.c is_sept_page_valid_for_merge: SEPT[0] must be MAPPED or PENDING
// (sept_state_is_mapped_or_pending), whatever the other 511 are; else
// api_error_with_operand_id(TDX_EPT_INVALID_PROMOTE_CONDITIONS, RCX).
describe('TDH.MEM.PAGE.PROMOTE of 512 uniform children in a state that cannot merge', () => {
  const INVALID_PROMOTE_CONDITIONS_RCX = 0xc0000b0900000001n;

  it('512 FREE children (a SEPT page nothing was added to) → EPT_INVALID_PROMOTE_CONDITIONS|RCX', () => {
    const m = td().platform.module;
    expect(m.host.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.host.memPagePromote(gpaLevel(P, 1)).status).toBe(INVALID_PROMOTE_CONDITIONS_RCX);
    expect(m.sept.stateAt(1, P)).toBe('NL_MAPPED');
  });

  it('512 BLOCKED children → EPT_INVALID_PROMOTE_CONDITIONS|RCX', () => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    for (let i = 0n; i < 512n; i++) {
      expect(h.memPageAug(P + i * 0x1000n).status).toBe(0n);
      expect(h.memRangeBlock(P + i * 0x1000n).status).toBe(0n);
    }
    expect(new Set(m.sept.childStates(1, P))).toEqual(new Set(['PENDING_BLOCKED']));
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(INVALID_PROMOTE_CONDITIONS_RCX);
  });
});
