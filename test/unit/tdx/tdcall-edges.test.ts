// TDCALL behaviours a mutation sweep of src/platform/tdx/tdcall.ts found untested, against
// intel/tdx-module (branch tdx_1.5, TDX 1.5.01) tdx_td_dispatcher.c td_call() and
// tdg_vm_rd_wr.c tdg_vm_rd_wr(), tdg_vp_veinfo_get.c.
import { describe, expect, it } from 'vitest';
import { TdcsField } from '../../../src/platform/tdx/td-module.js';
import { tdcall, tdxModule } from '../../helpers/tdx-module.js';

const OPERAND_INVALID_RAX = 0xc000010000000000n;

// tdx_api_defs.h tdx_leaf_and_version_t: the leaf is all of RAX[15:0]. td_call() switches on it,
// and a value that is no leaf (bits 15:8 set over a leaf number) takes the default case:
// OPERAND_INVALID|RAX, the leaf it would be modulo 256 does not run.
describe('td_call(): the leaf is RAX[15:0], all sixteen bits', () => {
  it.each([['0x101', 0x101n], ['0x106', 0x106n], ['0x8001', 0x8001n]] as const)('RAX %s is no leaf → OPERAND_INVALID|RAX, nothing run', (_name, rax) => {
    const m = tdxModule();
    const { step, regs } = tdcall(m, { rax, rcx: 0x1234n, rdx: 0x5678n });
    expect(step).toEqual({ kind: 'resume' });
    expect(regs.rax).toBe(OPERAND_INVALID_RAX);
    // TDG.VP.INFO (leaf 1) would have written RCX = GPAW; TDG.MEM.PAGE.ACCEPT (6) would have changed nothing here but its status.
    expect(regs.rcx).toBe(0x1234n);
    expect(regs.rdx).toBe(0x5678n);
  });
});

// The version is all of RAX[23:16] (tdx_leaf_and_version_t.version : 8). The dispatcher lets any
// version of TDG.VM.RD through, and tdg_vm_rd_wr() refuses "version > 1" with OPERAND_INVALID|RAX
// after setting RDX = MD_FIELD_ID_NA and R8 = 0: version 0x80 or 0x81 is refused, not read as 0 or 1.
describe('TDG.VM.RD: version bits 23:16, all eight', () => {
  it.each([['0x80', 0x80n], ['0x81', 0x81n], ['0xFF', 0xffn]] as const)('version %s → OPERAND_INVALID|RAX, RDX = -1, R8 = 0', (_name, version) => {
    const m = tdxModule();
    const { regs } = tdcall(m, { rax: 7n | (version << 16n), rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 0x55n });
    expect(regs.rax).toBe(OPERAND_INVALID_RAX);
    expect(regs.rdx).toBe(0xffffffffffffffffn);
    expect(regs.r8).toBe(0n);
  });
});

// tdg_vp_veinfo_get.c tdg_vp_veinfo_get(): RCX = exit_reason, RDX = exit_qualification,
// R8 = gla, R9 = gpa, R10 = inst_len_and_info, from the VE_INFO of the #VE. With paging on the GLA
// is not the GPA, so each lands in its own register.
describe('TDG.VP.VEINFO.GET: R8 is the GLA and R9 the GPA', () => {
  it('a #VE whose linear and physical addresses differ', () => {
    const m = tdxModule();
    m.veInfo.store({ exitReason: 48, exitQualification: 0x81n, gla: 0xffff_8000_0012_3456n, gpa: 0x0045_6456n, instructionLength: 0, instructionInfo: 0 });
    const { regs } = tdcall(m, { rax: 3n });
    expect([regs.rax, regs.rcx, regs.rdx, regs.r8, regs.r9]).toEqual([0n, 48n, 0x81n, 0xffff_8000_0012_3456n, 0x0045_6456n]);
  });
});

// tdg_vm_rd_wr.c tdg_vm_rd_wr(): the version check ("version > 1", OPERAND_INVALID|RAX) comes
// before the VM ID check ("vm_id != 0", all 64 bits of RCX, OPERAND_INVALID|RCX).
describe('TDG.VM.RD / WR: the VM ID in RCX', () => {
  it('version 2 with a non-zero VM ID is a RAX error: the version is checked first', () => {
    const { regs } = tdcall(tdxModule(), { rax: 7n | (2n << 16n), rcx: 1n, rdx: TdcsField.TD_CTLS });
    expect(regs.rax).toBe(OPERAND_INVALID_RAX);
  });

  it.each([['bit 16', 1n << 16n], ['bit 63', 1n << 63n]] as const)('a VM ID with only %s set is not VM 0 → OPERAND_INVALID|RCX', (_name, rcx) => {
    for (const rax of [7n, 8n]) {
      const { regs } = tdcall(tdxModule(), { rax, rcx, rdx: TdcsField.TD_CTLS, r8: 0n, r9: 0n });
      expect(regs.rax).toBe(0xc000010000000001n);
      expect(regs.r8).toBe(0n);
    }
  });
});

// tdx_td_dispatcher.c td_call(): RAX bits 31:24 (tdx_leaf_and_version_t.reserved0) are checked
// before the switch, so a TDG.VM.RD with one of them set never reaches tdg_vm_rd_wr(), which would
// have set RDX = MD_FIELD_ID_NA and R8 = 0 before its own "version > 1" check: both keep the TD's values.
describe('td_call(): RAX bits 31:24 are refused before the leaf runs', () => {
  it.each([['bit 24', 1n << 24n], ['bit 31', 1n << 31n]] as const)('TDG.VM.RD version 1 with %s → OPERAND_INVALID|RAX, RDX and R8 untouched', (_name, bit) => {
    const { regs } = tdcall(tdxModule(), { rax: 7n | (1n << 16n) | bit, rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 0x55n });
    expect(regs.rax).toBe(OPERAND_INVALID_RAX);
    expect(regs.rdx).toBe(TdcsField.TD_CTLS);
    expect(regs.r8).toBe(0x55n);
  });
});
