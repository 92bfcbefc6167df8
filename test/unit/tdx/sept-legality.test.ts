// Walks the whole SEPT legality table (state × operation), first as data against an independent
// statement of reference A3/A5/A6, then through the SEAMCALL host interface on a real TD model.
import { describe, expect, it } from 'vitest';
import { SEPT_LEGALITY, lookupTransition, type SeptOperation } from '../../../src/platform/tdx/sept-legality.js';
import { SEPT_STATE_NAMES, SeptState, isLeafState, septStateIndex, type SeptLevel, type SeptStateName } from '../../../src/platform/tdx/sept-states.js';
import { gpaLevel, type SeamcallResult } from '../../../src/platform/tdx/seamcall.js';
import { TdxStatus, decodeTdxStatus, statusName } from '../../../src/platform/tdx/status.js';
import { Sept } from '../../../src/platform/tdx/sept.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';

// Columns: FREE REMOVED NL_MAPPED NL_BLOCKED MAPPED BLOCKED PENDING PENDING_BLOCKED.
// A state name = legal, the entry becomes that; otherwise the status (or ACCEPT/ACCESS action).
// TDX 1.5 (intel/tdx-module TDX_1.5.01): seamcall_sept_state_lookup in sept_state_lookup.c gives
// the legal states; tdh_mem_page_add/aug.c, tdh_mem_sept_add.c and tdh_mem_range_unblock.c refuse
// with EPT_ENTRY_STATE_INCORRECT (1.0 had EPT_ENTRY_NOT_FREE); tdh_mem_range_block.c with
// GPA_RANGE_ALREADY_BLOCKED for any blocked entry.
const SI = 'EPT_ENTRY_STATE_INCORRECT', NB = 'GPA_RANGE_NOT_BLOCKED', AB = 'GPA_RANGE_ALREADY_BLOCKED';
const EXPECTED: Record<SeptOperation, string[]> = {
  ADD:             ['MAPPED', SI, SI, SI, SI, SI, SI, SI],
  AUG:             ['PENDING', 'PENDING', SI, SI, SI, SI, SI, SI],
  SEPT_ADD:        ['NL_MAPPED', SI, SI, SI, SI, SI, SI, SI],
  BLOCK:           [SI, SI, 'NL_BLOCKED', AB, 'BLOCKED', AB, 'PENDING_BLOCKED', AB],
  UNBLOCK:         [SI, SI, SI, 'NL_MAPPED', SI, 'MAPPED', SI, 'PENDING'],
  REMOVE:          [SI, SI, SI, SI, 'FREE', 'FREE', 'FREE', 'FREE'],
  REMOVE_RUNNING:  [SI, SI, SI, SI, NB, 'FREE', NB, 'FREE'],
  DEMOTE:          [SI, SI, SI, SI, 'NL_MAPPED', 'NL_MAPPED', 'NL_MAPPED', 'NL_MAPPED'],
  DEMOTE_RUNNING:  [SI, SI, SI, SI, NB, 'NL_MAPPED', NB, 'NL_MAPPED'],
  PROMOTE:         [SI, SI, 'MAPPED', 'MAPPED', SI, SI, SI, SI],
  PROMOTE_RUNNING: [SI, SI, NB, 'MAPPED', SI, SI, SI, SI],
  // tdg_mem_page_accept.c: a non-FREE entry without the PS bit (REMOVED too) is a size mismatch.
  ACCEPT:          ['td-exit', 'size-mismatch', 'size-mismatch', 'size-mismatch', 'already-accepted', 'td-exit', 'zero-and-map', 'td-exit'],
  ACCEPT_LARGER:   ['td-exit', 'td-exit', 'td-exit', 'td-exit', 'already-accepted', 'td-exit', 'td-exit', 'td-exit'],
  ACCESS:          ['ept-violation', 'ept-violation', 'ept-violation', 'ept-violation', 'allowed', 'ept-violation', 'pending', 'ept-violation'],
};
const ORDER: SeptStateName[] = ['FREE', 'REMOVED', 'NL_MAPPED', 'NL_BLOCKED', 'MAPPED', 'BLOCKED', 'PENDING', 'PENDING_BLOCKED'];

describe('SEPT state encodings (sept_state_lookup.h)', () => {
  it('match reference A5', () => {
    expect(SeptState).toEqual({ FREE: 0x0e, REMOVED: 0x0c, NL_MAPPED: 0, NL_BLOCKED: 0x08, MAPPED: 0x60, BLOCKED: 0x68, PENDING: 0x70, PENDING_BLOCKED: 0x78 });
    expect([...SEPT_STATE_NAMES].sort()).toEqual([...ORDER].sort());
  });
});

describe('state-indexed look-ups', () => {
  it('septStateIndex is each state\'s position in SEPT_STATE_NAMES', () => {
    expect(SEPT_STATE_NAMES.map(septStateIndex)).toEqual(SEPT_STATE_NAMES.map((_, i) => i));
  });
  it('lookupTransition gives every cell of SEPT_LEGALITY, and isLeafState the PS bit of the encoding', () => {
    for (const op of Object.keys(SEPT_LEGALITY) as SeptOperation[]) {
      for (const state of SEPT_STATE_NAMES) expect(lookupTransition(op, state)).toBe(SEPT_LEGALITY[op][state]);
    }
    expect(SEPT_STATE_NAMES.filter(isLeafState)).toEqual(['MAPPED', 'BLOCKED', 'PENDING', 'PENDING_BLOCKED']);
  });
});

describe('legality table as data', () => {
  const cells = (Object.keys(EXPECTED) as SeptOperation[]).flatMap((op) => ORDER.map((s, i) => [op, s, EXPECTED[op][i]!] as const));
  it.each(cells)('%s on %s → %s', (op, state, expected) => {
    const t = SEPT_LEGALITY[op][state];
    const got = t.kind === 'ok' ? t.next : t.kind === 'status' ? statusName(t.status) : t.action;
    expect(got).toBe(expected);
  });
});

describe('legality table through the SEAMCALL host interface', () => {
  type HostOp = Exclude<SeptOperation, 'ACCEPT' | 'ACCEPT_LARGER' | 'ACCESS'>;
  const running: Record<HostOp, boolean> = {
    ADD: false, AUG: true, SEPT_ADD: true, BLOCK: true, UNBLOCK: true, REMOVE: false, REMOVE_RUNNING: true,
    DEMOTE: false, DEMOTE_RUNNING: true, PROMOTE: false, PROMOTE_RUNNING: true,
  };
  const cells = (Object.keys(running) as HostOp[]).flatMap((op) => ORDER.map((s, i) => [op, s, EXPECTED[op][i]!] as const))
    // ADD is 4K-only and a 4K entry cannot be a non-leaf.
    .filter(([op, s]) => !(op === 'ADD' && (s === 'NL_MAPPED' || s === 'NL_BLOCKED')));

  it.each(cells)('%s on %s → %s', (op, state, expected) => {
    const td = createTd({ memoryBytes: 8n << 20n });
    const m = td.platform.module;
    m.finalized = running[op];
    const level: SeptLevel = op === 'ADD' ? 0 : 1;
    const gpa = 0x200000n;
    m.sept.setState(3, 0n, 'NL_MAPPED');
    m.sept.split(2, 0n, 'FREE');
    if (level === 0) m.sept.split(1, gpa, 'FREE');
    if (state === 'NL_MAPPED' || state === 'NL_BLOCKED') {
      m.sept.split(1, gpa, 'MAPPED');
      if (state === 'NL_BLOCKED') m.sept.setState(1, gpa, 'NL_BLOCKED', { blockEpoch: 0n });
    } else {
      m.sept.setState(level, gpa, state, { blockEpoch: 0n }); // epoch 0 < TD epoch 1: TLB-tracked
    }
    const rcx = gpaLevel(gpa, level);
    const h = m.host;
    const call: Record<HostOp, () => SeamcallResult> = {
      ADD: () => h.memPageAdd(rcx, new Uint8Array(4096)), AUG: () => h.memPageAug(rcx), SEPT_ADD: () => h.memSeptAdd(rcx),
      BLOCK: () => h.memRangeBlock(rcx), UNBLOCK: () => h.memRangeUnblock(rcx),
      REMOVE: () => h.memPageRemove(rcx), REMOVE_RUNNING: () => h.memPageRemove(rcx),
      DEMOTE: () => h.memPageDemote(rcx), DEMOTE_RUNNING: () => h.memPageDemote(rcx),
      PROMOTE: () => h.memPagePromote(rcx), PROMOTE_RUNNING: () => h.memPagePromote(rcx),
    };
    const r = call[op]();
    const after = m.sept.walk(gpa, level);
    if ((SEPT_STATE_NAMES as string[]).includes(expected)) {
      expect(statusName(r.status)).toBe('SUCCESS');
      expect(after.level === level ? after.state : 'walk-stopped-above').toBe(expected);
    } else {
      expect(statusName(r.status)).toBe(expected);
      expect(r.status & 0xffffffffn).toBe(1n); // operand ID RCX
      expect(after.state).toBe(state);
    }
    // Gate invariant: a private page is accessible iff its leaf is MAPPED.
    for (const page of [gpa, gpa + 0x1ff000n]) {
      expect(m.machine.gate.get('private', page)).toBe(m.sept.walk(page, 0).state === 'MAPPED' ? 'readwrite' : 'none');
    }
    expect(td.trace.ofType('seamcall').at(-1)).toMatchObject({ result: statusName(r.status) });
    td.platform.machine.close();
  });
});

describe('conditions beyond the entry state', () => {
  const fresh = () => {
    const td = createTd({ memoryBytes: 8n << 20n });
    td.platform.module.host.memSeptAdd(gpaLevel(0n, 3));
    td.platform.module.host.memSeptAdd(gpaLevel(0n, 2));
    return td;
  };

  it('REMOVE / DEMOTE / UNBLOCK of a running TD need TDH.MEM.TRACK after BLOCK', () => {
    const td = fresh();
    const h = td.platform.module.host;
    h.mrFinalize();
    expect(h.memPageAug(gpaLevel(0x200000n, 1)).status).toBe(0n);
    expect(h.memRangeBlock(gpaLevel(0x200000n, 1)).status).toBe(0n);
    expect(h.memPageRemove(gpaLevel(0x200000n, 1)).status).toBe(TdxStatus.TLB_TRACKING_NOT_DONE | 1n);
    expect(h.memPageDemote(gpaLevel(0x200000n, 1)).status).toBe(TdxStatus.TLB_TRACKING_NOT_DONE | 1n);
    // tdh_mem_range_unblock.c reports the missing tracking against the SEPT tree (operand 0x92).
    expect(h.memRangeUnblock(gpaLevel(0x200000n, 1)).status).toBe(0xc0000b0800000092n);
    h.memTrack();
    expect(h.memPageRemove(gpaLevel(0x200000n, 1)).status).toBe(0n);
    expect(td.platform.module.sept.walk(0x200000n, 1).state).toBe('FREE');
  });

  it('PAGE.ADD only before finalization; FINALIZE only once; MRTD is SHA-384 over the measured pages', () => {
    const td = fresh();
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0n, 1));
    const page = new Uint8Array(4096).fill(0x90);
    expect(h.addMeasuredPage(0x1000n, page).status).toBe(0n);
    expect([...td.platform.machine.memory.read(0x1000n, 4)]).toEqual([0x90, 0x90, 0x90, 0x90]);
    const f = h.mrFinalize();
    expect(f.status).toBe(0n);
    expect(f.mrtd).toHaveLength(48);
    expect(h.mrFinalize().status).toBe(TdxStatus.OP_STATE_INCORRECT);
    expect(h.memPageAdd(gpaLevel(0x2000n, 0), page).status).toBe(TdxStatus.OP_STATE_INCORRECT);
    // Same content → same MRTD; different content → different MRTD.
    const again = fresh(); again.platform.module.host.memSeptAdd(gpaLevel(0n, 1)); again.platform.module.host.addMeasuredPage(0x1000n, page);
    expect(again.platform.module.host.mrFinalize().mrtd!.equals(f.mrtd!)).toBe(true);
    const other = fresh(); other.platform.module.host.memSeptAdd(gpaLevel(0n, 1)); other.platform.module.host.addMeasuredPage(0x1000n, page.fill(0xcc));
    expect(other.platform.module.host.mrFinalize().mrtd!.equals(f.mrtd!)).toBe(false);
  });

  it('PROMOTE needs 512 uniform children; AUG refuses 1G; operands are checked', () => {
    const td = fresh();
    const h = td.platform.module.host;
    h.mrFinalize();
    h.memSeptAdd(gpaLevel(0x200000n, 1));
    h.memPageAug(gpaLevel(0x200000n, 0));
    h.memRangeBlock(gpaLevel(0x200000n, 1));
    h.memTrack();
    expect(h.memPagePromote(gpaLevel(0x200000n, 1)).status).toBe(TdxStatus.EPT_INVALID_PROMOTE_CONDITIONS | 1n);
    expect(h.memPageAug(gpaLevel(0n, 2)).status).toBe(TdxStatus.OPERAND_INVALID | 1n);
    expect(h.memPageAug(0x201000n | 1n).status).toBe(TdxStatus.OPERAND_INVALID | 1n); // misaligned 2M
    expect(h.memPageAug((1n << 47n) | 0x400000n).status).toBe(TdxStatus.OPERAND_INVALID | 1n); // shared bit
    expect(h.memPageAug(0x400000n | 0x10n).status).toBe(TdxStatus.OPERAND_INVALID | 1n); // reserved bits
    expect(h.memPageAug(gpaLevel(0x600000n, 0)).status).toBe(TdxStatus.EPT_WALK_FAILED | 1n); // no SEPT page below 2M
    expect(h.memPageAug(gpaLevel(0x40000000n, 1)).status).toBe(TdxStatus.OPERAND_ADDR_RANGE_ERROR | 1n); // outside RAM
  });

  it('PROMOTE of 512 accepted pages gives one 2M MAPPED leaf and one gate range', () => {
    const td = fresh();
    const h = td.platform.module.host;
    const s = td.platform.module.sept;
    s.split(1, 0x200000n, 'MAPPED');
    h.mrFinalize();
    h.memRangeBlock(gpaLevel(0x200000n, 1));
    h.memTrack();
    expect(h.memPagePromote(gpaLevel(0x200000n, 1)).status).toBe(0n);
    expect(s.walk(0x234000n, 0)).toMatchObject({ level: 1, state: 'MAPPED' });
    expect(td.platform.machine.gate.count('private', 0x200000n, 0x200000n, 'readwrite')).toBe(512n);
  });
});

describe('sparse SEPT', () => {
  it('a 1 TiB TD uses memory proportional to what is mapped', () => {
    const td = createTd({ memoryBytes: 1n << 40n });
    const h = td.platform.module.host;
    h.mrFinalize();
    const gpas = [0n, 0x80_1234_0000n & ~0x1fffffn, (1n << 40n) - 0x200000n];
    for (const g of gpas) {
      h.memSeptAdd(gpaLevel(Sept.alignDown(g, 3), 3)); // once per 512 GiB; later calls are STATE_INCORRECT
      expect(h.memSeptAdd(gpaLevel(Sept.alignDown(g, 2), 2)).status).toBe(0n);
      expect(h.memPageAug(gpaLevel(g, 1)).status).toBe(0n);
    }
    td.platform.module.sept.setState(1, gpas[2]!, 'MAPPED');
    expect(td.platform.module.sept.entryCounts()).toEqual([0, 3, 3, 2]);
    expect(td.platform.machine.gate.get('private', (1n << 40n) - 0x1000n)).toBe('readwrite');
    expect(td.platform.machine.gate.get('private', gpas[1]!)).toBe('none');
    // A removed page is FREE again: its entry goes (a TD that converts memory back and forth does
    // not grow its SEPT). BLOCK, TRACK and REMOVE, the host's way to take a private page away.
    expect(h.memRangeBlock(gpaLevel(gpas[0]!, 1)).status).toBe(0n);
    expect(h.memTrack().status).toBe(0n);
    expect(h.memPageRemove(gpaLevel(gpas[0]!, 1)).status).toBe(0n);
    expect(td.platform.module.sept.stateAt(1, gpas[0]!)).toBe('FREE');
    expect(td.platform.module.sept.entryCounts()).toEqual([0, 2, 3, 2]);
    td.platform.machine.close();
  });
});

describe('status decoding (coconut tdx_result style)', () => {
  it.each([
    [0n, { kind: 'success' }],
    [0x00000b0a00000001n, { kind: 'warning', name: 'PAGE_ALREADY_ACCEPTED', detail: 1n }],
    [0xc0000b0b00000001n, { kind: 'error', name: 'PAGE_SIZE_MISMATCH', operand: 1n, recoverable: false, fatal: false }],
    [0x8000020000000001n, { kind: 'error', name: 'OPERAND_BUSY', operand: 1n, recoverable: true }],
    [0xc000010000000001n, { kind: 'error', name: 'OPERAND_INVALID', operand: 1n }],
    [0x6000000200000000n, { kind: 'warning', name: 'UNKNOWN' }],
    [0xe000060400000000n, { kind: 'error', name: 'UNKNOWN', recoverable: false, fatal: true }],
  ])('0x%s', (raw, expected) => {
    expect(decodeTdxStatus(raw)).toMatchObject(expected);
  });
});
