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
