// SEAMCALL behaviours a mutation sweep of src/platform/tdx/seamcall.ts found untested, each
// against the handler in the intel/tdx-module tree (branch tdx_1.5, TDX 1.5.01) that decides it.
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { createTd, type Td } from '../../../src/vmm/tdx/run-td.js';

const P = 0x200000n;
const OP_STATE_INCORRECT = 0xc000060800000000n;
const OPERAND_INVALID_RCX = 0xc000010000000001n;
const OPERAND_INVALID_R9 = 0xc000010000000009n;
const EPT_WALK_FAILED_RCX = 0xc0000b0000000001n;
const STATE_INCORRECT_RCX = 0xc0000b0d00000001n;

/** A TD with the SEPT levels above P (512 GiB and 1 GiB entries) added, not finalized. */
function td(memoryBytes = 8n << 20n): Td {
  const t = createTd({ memoryBytes });
  expect(t.platform.module.host.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
  expect(t.platform.module.host.memSeptAdd(gpaLevel(0n, 2)).status).toBe(0n);
  return t;
}

// tdh_mem_page_add.c tdh_mem_page_add(): check_state_map_tdcs_and_lock (the TD's op state) comes
// first; then verify_page_info_input and check_gpa_validity (RCX), walk_private_gpa
// (EPT_WALK_FAILED|RCX), sept_state_is_seamcall_leaf_allowed (EPT_ENTRY_STATE_INCORRECT|RCX), and
// only then shared_hpa_check_with_pwr_2_alignment of the source page (the R9 operand). The model's
// source is the page's bytes: anything but one 4 KiB page is that operand's failure.
describe('TDH.MEM.PAGE.ADD: the order of its checks', () => {
  it('after MR.FINALIZE a bad source is still OP_STATE_INCORRECT, not an R9 error', () => {
    const h = td().platform.module.host;
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.mrFinalize().status).toBe(0n);
    expect(h.memPageAdd(gpaLevel(P, 0), new Uint8Array(100)).status).toBe(OP_STATE_INCORRECT);
  });

  it('a bad RCX, a failed walk or a non-FREE entry is reported before a bad source (R9)', () => {
    const m = td().platform.module;
    const h = m.host;
    const bad = new Uint8Array(100);
    expect(h.memPageAdd(P | 0x10n, bad).status).toBe(OPERAND_INVALID_RCX); // reserved bits 11:3
    expect(h.memPageAdd(gpaLevel(P, 0), bad).status).toBe(EPT_WALK_FAILED_RCX); // no SEPT page below 2M
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.memPageAdd(gpaLevel(P, 0), new Uint8Array(4096)).status).toBe(0n);
    expect(h.memPageAdd(gpaLevel(P, 0), bad).status).toBe(STATE_INCORRECT_RCX);
    // A FREE, reachable leaf: now the source is the first thing wrong, and nothing changed.
    expect(h.memPageAdd(gpaLevel(P + 0x1000n, 0), bad).status).toBe(OPERAND_INVALID_R9);
    expect(m.sept.stateAt(0, P + 0x1000n)).toBe('FREE');
  });
});

// tdh_mem_page_demote.c: "Prepare the SEPT entry for the small pages: non-blocked" (sept_unblock
// only when sept_state_is_any_blocked), then sept_split_entry copies that state into the 512
// children: an unblocked MAPPED leaf, which a TD not yet running may demote without BLOCK
// (the GPA_RANGE_NOT_BLOCKED check applies only when op_state_is_tlb_tracking_required), gives
// 512 MAPPED children mapping the same memory.
describe('TDH.MEM.PAGE.DEMOTE of an unblocked MAPPED 2M leaf before MR.FINALIZE', () => {
  it('gives 512 MAPPED children, contents unchanged', () => {
    const { module: m, machine } = td().platform;
    const h = m.host;
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    const page = new Uint8Array(4096).fill(0x5a);
    for (let g = P; g < P + 0x200000n; g += 0x1000n) expect(h.memPageAdd(gpaLevel(g, 0), page).status).toBe(0n);
    // tdh_mem_page_promote.c: 512 MAPPED children merge into one MAPPED 2M leaf.
    expect(h.memPagePromote(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.stateAt(1, P)).toBe('MAPPED');
    expect(h.memPageDemote(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.stateAt(1, P)).toBe('NL_MAPPED');
    expect(new Set(m.sept.childStates(1, P))).toEqual(new Set(['MAPPED']));
    expect(machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(512n);
    expect(machine.memory.read(P + 0x1ff000n, 4096).every((b) => b === 0x5a)).toBe(true);
  });
});

// A 2M AUG maps a whole 2 MiB page: tdh_mem_page_aug.c takes the target page with
// check_and_lock_free_range_hpa(…, PT_2MB, …), which requires the entire 2 MiB range to be free
// TDMR memory (pamt_is_2mb_range_free). The model backs a GPA with guest RAM (it has no HPA), so a
// 2M page that starts inside RAM but ends past it cannot be mapped: OPERAND_ADDR_RANGE_ERROR|RCX,
// and nothing changes. A 4K page at the end of the same RAM is fine.
describe('TDH.MEM.PAGE.AUG of a 2M page that runs past the end of RAM', () => {
  it('is refused with OPERAND_ADDR_RANGE_ERROR|RCX; the 4K pages inside RAM are not', () => {
    const m = td(3n << 20n).platform.module;  // RAM ends 1 MiB into the 2M page at P
    const h = m.host;
    expect(h.memPageAug(gpaLevel(P, 1)).status).toBe(0xc000010100000001n);
    expect(m.sept.stateAt(1, P)).toBe('FREE');
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(h.memPageAug(gpaLevel(P + 0xff000n, 0)).status).toBe(0n);
    expect(h.memPageAug(gpaLevel(P + 0x100000n, 0)).status).toBe(0xc000010100000001n);
  });
});

// KVM_TDX_INIT_MEM_REGION (Linux arch/x86/kvm/vmx/tdx.c tdx_vcpu_init_mem_region) makes one
// TDH.MEM.PAGE.ADD per page in address order and stops at the first that fails. A range whose
// first page is in RAM but whose last is not gets its pages inside RAM added, then the first page
// past RAM refused (OPERAND_ADDR_RANGE_ERROR|RCX, as for AUG above), nothing after it touched.
describe('addPages (a launch range) running past the end of RAM', () => {
  it('adds the pages inside RAM and stops at the first page past it', () => {
    const m = td(3n << 20n).platform.module;
    const h = m.host;
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n); // the 2M range P..P+2M, half of it past RAM
    const end = 3n << 20n;
    const r = h.addPages(end - 0x2000n, new Uint8Array(4 * 4096).fill(7), true);
    expect(r.status).toBe(0xc000010100000001n);
    expect(r.at).toBe(end);
    expect(m.sept.stateAt(0, end - 0x2000n)).toBe('MAPPED');
    expect(m.sept.stateAt(0, end - 0x1000n)).toBe('MAPPED');
    expect(m.sept.stateAt(0, end)).toBe('FREE');
    expect(m.sept.stateAt(0, end + 0x1000n)).toBe('FREE');
    expect(m.trace.ofType('seamcall').filter((e) => e.leaf !== 'TDH_MEM_SEPT_ADD').map((e) => `${e.leaf} ${e.result}`)).toEqual([
      'TDH_MEM_PAGE_ADD SUCCESS', 'TDH_MR_EXTEND SUCCESS', 'TDH_MEM_PAGE_ADD SUCCESS', 'TDH_MR_EXTEND SUCCESS',
      'TDH_MEM_PAGE_ADD OPERAND_ADDR_RANGE_ERROR',
    ]);
  });
});

// tdh_mem_page_demote.c: verify_page_info_input(gpa_mappings, LVL_PD, LVL_PDPT): a 1G leaf may be
// demoted too, into 512 2M leaves in its (unblocked) state (sept_split_entry).
describe('TDH.MEM.PAGE.DEMOTE of a 1G leaf', () => {
  it('gives a SEPT page of 512 2M leaves', () => {
    const m = createTd({ memoryBytes: 8n << 20n }).platform.module;
    expect(m.host.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
    // A 1G PENDING leaf (AUG maps 4K and 2M pages; PROMOTE of 512 PENDING 2M leaves would make one).
    m.sept.setState(2, 0n, 'PENDING');
    expect(m.host.memPageDemote(gpaLevel(0n, 2)).status).toBe(0n);
    expect(m.sept.stateAt(2, 0n)).toBe('NL_MAPPED');
    expect(new Set(m.sept.childStates(2, 0n))).toEqual(new Set(['PENDING']));
  });

  // tdh_mem_page_promote.c: verify_page_info_input(gpa_mappings, LVL_PD, LVL_PDPT): 512 uniform
  // 2M leaves merge into a 1G leaf; a level-0 operand is OPERAND_INVALID|RCX (there is nothing below 4K).
  it('PROMOTE merges the 512 2M leaves back into one 1G leaf; PROMOTE at level 0 is OPERAND_INVALID|RCX', () => {
    const m = createTd({ memoryBytes: 8n << 20n }).platform.module;
    expect(m.host.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
    m.sept.setState(2, 0n, 'PENDING');
    expect(m.host.memPageDemote(gpaLevel(0n, 2)).status).toBe(0n);
    expect(m.host.memPagePromote(gpaLevel(0n, 2)).status).toBe(0n);
    expect(m.sept.stateAt(2, 0n)).toBe('PENDING');
    expect(m.host.memPagePromote(gpaLevel(0n, 0)).status).toBe(OPERAND_INVALID_RCX);
  });
});

// tdh_mem_page_promote.c is_sept_page_valid_for_merge: entry 0 of the SEPT page must be MAPPED or
// PENDING, and each of the other 511 must equal entry 0 moved on by one leaf size (the same state,
// the next HPA); any that does not is TDX_EPT_INVALID_PROMOTE_CONDITIONS (|RCX), nothing merged.
// For a 1G PROMOTE the children are the 2M leaves of the whole 1 GiB range, not 4K apart.
describe('TDH.MEM.PAGE.PROMOTE of a 1G range whose 2M leaves are not uniform', () => {
  it.each([1n, 255n, 511n])('2M leaf %i MAPPED among PENDING ones is EPT_INVALID_PROMOTE_CONDITIONS|RCX, the range stays split', (odd) => {
    const m = createTd({ memoryBytes: 8n << 20n }).platform.module;
    expect(m.host.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
    m.sept.setState(2, 0n, 'PENDING');
    expect(m.host.memPageDemote(gpaLevel(0n, 2)).status).toBe(0n);
    // Past the 8 MiB of RAM no AUG or ACCEPT reaches it: the odd leaf is set directly.
    m.sept.setState(1, odd * P, 'MAPPED');
    expect(m.host.memPagePromote(gpaLevel(0n, 2)).status).toBe(0xc0000b0900000001n);
    expect(m.sept.stateAt(2, 0n)).toBe('NL_MAPPED');
    expect([m.sept.stateAt(1, 0n), m.sept.stateAt(1, odd * P)]).toEqual(['PENDING', 'MAPPED']);
  });
});

// KVM_TDX_INIT_MEM_REGION: one TDH.MEM.PAGE.ADD per page in address order, stopping at the first
// that fails (as above). tdh_mem_page_add.c refuses a page whose walk_private_gpa does not reach
// its 4K entry (TDX_EPT_WALK_FAILED|RCX) or whose entry is not FREE
// (sept_state_is_seamcall_leaf_allowed: TDX_EPT_ENTRY_STATE_INCORRECT|RCX), changing nothing.
describe('addPages (a launch range) over a page PAGE.ADD refuses', () => {
  const START = P + 0x10000n;
  it.each([0, 2, 3])('a MAPPED page at index %i of 4: the pages before it are added, it is refused (EPT_ENTRY_STATE_INCORRECT|RCX), the rest untouched', (k) => {
    const { module: m, machine } = td().platform;
    const h = m.host;
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    const taken = START + BigInt(k) * 0x1000n;
    expect(h.memPageAdd(gpaLevel(taken, 0), new Uint8Array(4096).fill(1)).status).toBe(0n);
    const r = h.addPages(START, new Uint8Array(4 * 4096).fill(7), false);
    expect([r.status, r.at]).toEqual([STATE_INCORRECT_RCX, taken]);
    for (let i = 0; i < 4; i++) {
      const page = START + BigInt(i) * 0x1000n;
      expect([i, m.sept.stateAt(0, page), machine.memory.read(page, 1)[0]]).toEqual(i < k ? [i, 'MAPPED', 7] : i === k ? [i, 'MAPPED', 1] : [i, 'FREE', 0]);
    }
  });

  it('a range running on into a 2 MiB range with no SEPT page below its PD entry: the pages before it are added, its first page is EPT_WALK_FAILED|RCX', () => {
    const m = td().platform.module;
    const h = m.host;
    expect(h.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    const r = h.addPages(2n * P - 0x2000n, new Uint8Array(4 * 4096).fill(7), true);
    expect([r.status, r.at]).toEqual([EPT_WALK_FAILED_RCX, 2n * P]);
    expect([m.sept.stateAt(0, 2n * P - 0x2000n), m.sept.stateAt(0, 2n * P - 0x1000n)]).toEqual(['MAPPED', 'MAPPED']);
    expect(m.sept.walk(2n * P, 0)).toMatchObject({ level: 1, state: 'FREE' });
  });

  // secure_ept_walk: a private access reaches a page iff the walk ends on a MAPPED leaf, so the
  // range's pages, and only they, are open to the guest (the page gate enforces the walk).
  it('a range that succeeds opens exactly its pages to private accesses', () => {
    const { module: m, machine } = td().platform;
    expect(m.host.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.host.addPages(START, new Uint8Array(3 * 4096).fill(7), true).status).toBe(0n);
    expect(machine.gate.count('private', P, P, 'readwrite')).toBe(3n);
    expect([-1n, 0n, 1n, 2n, 3n].map((i) => machine.gate.get('private', START + i * 0x1000n))).toEqual(['none', 'readwrite', 'readwrite', 'readwrite', 'none']);
  });
});

// tdh_mem_sept_add.c: verify_page_info_input(gpa_mappings, LVL_PD, EPTP.ept_pwl) lets the host
// add the entries of the top level (PML4 for GPAW 48, PML5 for GPAW 52) too, and
// sept_state_is_seamcall_leaf_allowed(TDH_MEM_SEPT_ADD_LEAF) wants the entry FREE: adding one
// that is present again is TDX_EPT_ENTRY_STATE_INCORRECT|RCX.
describe('TDH.MEM.SEPT.ADD of a top-level entry', () => {
  it.each([[48, 3], [52, 4]] as const)('GPAW %i: the level-%i entry is added once; a second ADD is EPT_ENTRY_STATE_INCORRECT|RCX', (gpaWidth, top) => {
    const m = createTd({ memoryBytes: 8n << 20n, gpaWidth }).platform.module;
    expect(m.sept.topLevel).toBe(top);
    expect(m.host.memSeptAdd(gpaLevel(0n, top)).status).toBe(0n);
    expect(m.host.memSeptAdd(gpaLevel(0n, top)).status).toBe(STATE_INCORRECT_RCX);
    expect(m.sept.stateAt(top, 0n)).toBe('NL_MAPPED');
  });
});
