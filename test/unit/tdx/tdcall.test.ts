// TDCALL leaves handed to the module directly (no guest run): RAX checks, the leaf's outputs.
// intel/tdx-module TDX_1.5.01: tdx_td_dispatcher.c td_call(), tdg_vp_info.c, tdg_vp_veinfo_get.c,
// tdg_vm_rd_wr.c, tdg_vp_vmcall.c (reference A1, A2, A6, A7).
import { describe, expect, it, vi } from 'vitest';
import { CONFIG_FLAGS_FLEXIBLE_PENDING_VE, CONFIG_FLAGS_NO_RBP_MOD, TdAttributes, TdcsField } from '../../../src/platform/tdx/td-module.js';
import { TdcallLeaf } from '../../../src/platform/tdx/tdcall.js';
import { tdcall, tdxModule } from '../../helpers/tdx-module.js';

const OPERAND_INVALID_RAX = 0xc000010000000000n;
const OPERAND_INVALID_RCX = 0xc000010000000001n;

const METADATA_FIELD_ID_INCORRECT = 0xc0000c0000000000n;
const METADATA_FIELD_NOT_WRITABLE = 0xc0000c0100000000n;
const METADATA_FIELD_VALUE_NOT_VALID = 0xc0000c0300000000n;
const VM_RD = 7n;
const VM_WR = 8n;

describe('td_call(): RAX and privilege checks', () => {
  it('CPL 3 → #GP(0), not a TDCALL result (RAX unchanged)', () => {
    const m = tdxModule();
    const { regs } = tdcall(m, { rax: 1n }, 0x33);
    expect(regs.rax).toBe(1n);
    expect(m.trace.ofType('tdcall')[0]).toMatchObject({ result: '#GP(0)', cause: 'cpl>0' });
  });

  // The TDCALL instruction itself (Intel SDM / TDX ISA: IF CPL > 0 THEN #GP(0)) refuses every ring
  // but 0, and td_call() (tdx_td_dispatcher.c) injects #GP(0) when the guest is not in 64-bit mode.
  it.each([1, 2])('CPL %i → #GP(0) as well (only ring 0 may TDCALL)', (cpl) => {
    const m = tdxModule();
    const { regs } = tdcall(m, { rax: 1n }, 0x08 | cpl);
    expect(regs.rax).toBe(1n);
    expect(m.trace.ofType('tdcall')[0]).toMatchObject({ result: '#GP(0)', cause: 'cpl>0' });
  });

  it('outside 64-bit mode at CPL 0 → #GP(0), recorded as not-64-bit', () => {
    const m = tdxModule();
    const r = m.machine.vcpu.regs;
    r.rax = 1n;
    m.handleExit({ kind: 'tdcall', rip: r.rip, length: 4, leaf: 1n, codeBits: 32, cs: 0x08 });
    expect(r.rax).toBe(1n);
    expect(m.trace.ofType('tdcall')[0]).toMatchObject({ result: '#GP(0)', cause: 'not-64-bit' });
  });

  it('RAX bits 63:24 must be 0: bit 24 and bit 31 set → OPERAND_INVALID|RAX', () => {
    const m = tdxModule();
    expect(tdcall(m, { rax: (1n << 24n) | 1n }).regs.rax).toBe(OPERAND_INVALID_RAX);
    // Bit 24 alone (leaf 0, version 0): reserved0 is bits 31:24 (tdx_api_defs.h tdx_leaf_and_version_t).
    expect(tdcall(m, { rax: 1n << 24n }).regs.rax).toBe(OPERAND_INVALID_RAX);
    expect(tdcall(m, { rax: (1n << 31n) | 1n }).regs.rax).toBe(OPERAND_INVALID_RAX);
    expect(tdcall(m, { rax: 1n }).regs.rax).toBe(0n); // TDG.VP.INFO itself is fine
    // The trace still names the leaf RAX[15:0] asked for.
    expect(m.trace.ofType('tdcall').map((e) => e.leaf)).toEqual(['VP_INFO', 'VP_VMCALL', 'VP_INFO', 'VP_INFO']);
  });
});

// td_call() (tdx_td_dispatcher.c): "Only a few functions have multiple versions": version > 0 of
// any leaf but TDG.VM.RD is OPERAND_INVALID|RAX before the leaf runs.
describe('td_call(): RAX[23:16] version', () => {
  it.each([0n, 1n, 3n, 6n, 8n])('leaf %i with version 1 or 0xFF → OPERAND_INVALID|RAX', (leaf) => {
    const m = tdxModule();
    for (const version of [1n, 0xffn]) {
      const { step, regs } = tdcall(m, { rax: leaf | (version << 16n), rcx: 0n });
      expect(step).toEqual({ kind: 'resume' });
      expect(regs.rax).toBe(OPERAND_INVALID_RAX);
    }
  });

  it('TDG.VM.RD version 1 runs the leaf', () => {
    expect(tdcall(tdxModule(), { rax: VM_RD | (1n << 16n), rcx: 0n, rdx: TdcsField.TD_CTLS }).regs.rax).toBe(0n);
  });
});

// A leaf that returns writes its status to RAX and the module resumes the TD after the TDCALL
// (RIP + its length); a TDG.VP.VMCALL is a TD exit with RIP still at the TDCALL until the VMM
// answers (tdg_vp_vmcall.c: trap-like, the module advances RIP when it resumes the TD). Each
// TDCALL is one tdcall event (docs/trace-schema.md).
describe('td_call(): RIP and the tdcall event', () => {
  it('a leaf that returns advances RIP past the TDCALL and records its status', () => {
    const m = tdxModule();
    const rip = m.machine.vcpu.regs.rip;
    const { step, regs } = tdcall(m, { rax: 1n });
    expect(step).toEqual({ kind: 'resume' });
    expect(regs.rip).toBe(rip + 4n);
    expect(m.trace.ofType('tdcall')).toEqual([expect.objectContaining({ rip, rax: 1n, leaf: 'VP_INFO', result: 'SUCCESS', status: 0n })]);
  });

  it('a refused TDCALL advances RIP too, with its error in RAX', () => {
    const m = tdxModule();
    const rip = m.machine.vcpu.regs.rip;
    expect(tdcall(m, { rax: 0x99n }).regs.rip).toBe(rip + 4n);
    expect(m.trace.ofType('tdcall')).toEqual([expect.objectContaining({ leaf: '0x99', result: 'OPERAND_INVALID', status: OPERAND_INVALID_RAX })]);
  });

  it('a TDG.VP.VMCALL leaves RIP at the TDCALL until the VMM answers, and records the TD exit', () => {
    const m = tdxModule();
    const rip = m.machine.vcpu.regs.rip;
    const { regs } = tdcall(m, { rax: 0n, rcx: 0x1000n });
    expect(regs.rip).toBe(rip);
    expect(m.trace.ofType('tdcall')).toEqual([expect.objectContaining({ rip, leaf: 'VP_VMCALL', result: 'td-exit(tdvmcall)' })]);
    m.completeVmcall({ r12: 7n });
    expect([regs.rip, regs.r12]).toEqual([rip + 4n, 7n]);
  });
});

describe('TDG.VP.INFO (tdg_vp_info.c)', () => {
  // tdg_vp_info.c: RDX = ATTRIBUTES, R8 = td_num_of_vcpus_t (num_vcpus[31:0], max_vcpus[63:32],
  // tdx_api_defs.h), R9 = VCPU_INDEX, R11 = 0. (R10, commands_available, is 0 here: the model
  // offers no TDG.SYS.RD, so it does not say tdg_sys_rd_available.)
  it('RDX = ATTRIBUTES, R8 = NUM_VCPUS | MAX_VCPUS << 32, R9 = the vCPU index, R10 = R11 = 0', () => {
    const attributes = TdAttributes.SEPT_VE_DISABLE | TdAttributes.DEBUG;
    const m = tdxModule({ attributes, numVcpus: 3, maxVcpus: 5 });
    const { regs } = tdcall(m, { rax: 1n, rcx: 9n, rdx: 9n, r8: 9n, r9: 9n, r10: 9n, r11: 9n });
    expect([regs.rax, regs.rcx, regs.rdx, regs.r8, regs.r9, regs.r10, regs.r11]).toEqual([0n, 48n, attributes, 3n | (5n << 32n), 0n, 0n, 0n]);
  });

  it('R9 is the index of the vCPU that asks', () => {
    const m = tdxModule({ vcpus: 2 });
    m.machine.switchVcpu(1);
    expect(tdcall(m, { rax: 1n }).regs.r9).toBe(1n);
    expect(tdcall(m, { rax: 1n }).regs.r8).toBe(2n | (2n << 32n));
  });

  it('RCX = GPAW: 52 for a GPAW-52 TD', () => {
    expect(tdcall(tdxModule({ gpaWidth: 52 }), { rax: 1n }).regs.rcx).toBe(52n);
  });
});

// td_call() (tdx_td_dispatcher.c) dispatches leaf 6 to tdg_mem_page_accept() with RCX.
describe('TDG.MEM.PAGE.ACCEPT through the dispatcher', () => {
  it('leaf 6 accepts the PENDING page RCX names', () => {
    const m = tdxModule();
    expect(m.host.memSeptAdd(3n).status).toBe(0n);
    expect(m.host.memSeptAdd(2n).status).toBe(0n);
    expect(m.host.memSeptAdd(0x200000n | 1n).status).toBe(0n);
    expect(m.host.mrFinalize().status).toBe(0n);
    expect(m.host.memPageAug(0x203000n).status).toBe(0n);
    expect(tdcall(m, { rax: 6n, rcx: 0x203000n }).regs.rax).toBe(0n);
    expect(m.sept.stateAt(0, 0x203000n)).toBe('MAPPED');
  });
});

describe('TDG.VP.VEINFO.GET (tdg_vp_veinfo_get.c)', () => {
  it('R10 = instruction length [31:0] | instruction info [63:32]; the info is then invalid', () => {
    const m = tdxModule();
    m.veInfo.store({ exitReason: 30, exitQualification: 0x3f8_0000n, gla: 0n, gpa: 0n, instructionLength: 2, instructionInfo: 0x1234 });
    const { regs } = tdcall(m, { rax: 3n });
    expect([regs.rax, regs.rcx, regs.rdx, regs.r10]).toEqual([0n, 30n, 0x3f8_0000n, 0x0000_1234_0000_0002n]);
    expect(m.veInfo.valid).toBe(false);
  });

  it('without valid VE info → NO_VALID_VE_INFO, every output 0', () => {
    const m = tdxModule();
    const { regs } = tdcall(m, { rax: 3n, rcx: 7n, rdx: 7n, r8: 7n, r9: 7n, r10: 7n });
    expect([regs.rax, regs.rcx, regs.rdx, regs.r8, regs.r9, regs.r10]).toEqual([0xc000070400000000n, 0n, 0n, 0n, 0n, 0n]);
  });
});

describe('TDG.VM.RD / TDG.VM.WR (tdg_vm_rd_wr.c)', () => {
  it('RD of a field the model does not know → R8 = 0 (set before any check)', () => {
    const { regs } = tdcall(tdxModule(), { rax: 7n, rdx: 0x1234n, r8: 0x55n });
    expect(regs.rax >> 63n).toBe(1n);
    expect(regs.r8).toBe(0n);
  });

  it('WR of TD_CTLS changes only the bits in the write mask and returns the old value in R8', () => {
    const m = tdxModule({ configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE });
    expect(m.tdCtls).toBe(0n);
    const { regs } = tdcall(m, { rax: 8n, rdx: TdcsField.TD_CTLS, r8: 0xffn, r9: 1n });
    expect([regs.rax, regs.r8, m.tdCtls]).toEqual([0n, 0n, 1n]);
    expect(tdcall(m, { rax: 8n, rdx: TdcsField.TD_CTLS, r8: 0n, r9: 1n }).regs.r8).toBe(1n);
    expect(m.tdCtls).toBe(0n);
  });

  // tdg_vm_rd_wr(): R8 = 0 before any check; md_read_element()/md_td_write_element() return bare
  // metadata statuses (no api_error_with_operand_id).
  it('every WR error leaves R8 = 0 and carries no operand ID', () => {
    const m = tdxModule({ configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE });
    const cases: [bigint, bigint, bigint, bigint][] = [
      [0x1234n, 1n, 1n, METADATA_FIELD_ID_INCORRECT],
      [TdcsField.CONFIG_FLAGS, 2n, 2n, METADATA_FIELD_NOT_WRITABLE], // guest_wr_mask 0
      [TdcsField.TD_CTLS, 1n, 2n, METADATA_FIELD_NOT_WRITABLE], // mask misses bit 0, the only writable bit
      [TdcsField.TD_CTLS, 3n, 3n, METADATA_FIELD_VALUE_NOT_VALID], // would change non-writable bit 1
    ];
    for (const [rdx, r8, r9, status] of cases) {
      const { regs } = tdcall(m, { rax: VM_WR, rcx: 0n, rdx, r8, r9 });
      expect([regs.rax, regs.r8]).toEqual([status, 0n]);
    }
    expect(m.tdCtls).toBe(0n);
  });

  it('RD of an unknown field → METADATA_FIELD_ID_INCORRECT without an operand ID', () => {
    expect(tdcall(tdxModule(), { rax: VM_RD, rcx: 0n, rdx: 0x1234n }).regs.rax).toBe(METADATA_FIELD_ID_INCORRECT);
  });

  it('a non-zero VM ID (RCX) → OPERAND_INVALID|RCX, R8 = 0, nothing written', () => {
    const m = tdxModule({ configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE });
    const wr = tdcall(m, { rax: VM_WR, rcx: 1n, rdx: TdcsField.TD_CTLS, r8: 1n, r9: 1n }).regs;
    expect([wr.rax, wr.r8, m.tdCtls]).toEqual([OPERAND_INVALID_RCX, 0n, 0n]);
    const rd = tdcall(m, { rax: VM_RD, rcx: 1n, rdx: TdcsField.CONFIG_FLAGS, r8: 5n }).regs;
    expect([rd.rax, rd.r8]).toEqual([OPERAND_INVALID_RCX, 0n]);
  });

  // metadata_td.c md_td_write_element(), TD_CTLS special write: without FLEXIBLE_PENDING_VE only a
  // change of PENDING_VE_DISABLE is refused.
  it('without FLEXIBLE_PENDING_VE, rewriting PENDING_VE_DISABLE unchanged succeeds; changing it → FIELD_VALUE_NOT_VALID', () => {
    const clear = tdxModule();
    expect(tdcall(clear, { rax: VM_WR, rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 0n, r9: 1n }).regs.rax).toBe(0n);
    const changed = tdcall(clear, { rax: VM_WR, rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 1n, r9: 1n }).regs;
    expect([changed.rax, changed.r8, clear.tdCtls]).toEqual([METADATA_FIELD_VALUE_NOT_VALID, 0n, 0n]);

    const set = tdxModule({ attributes: TdAttributes.SEPT_VE_DISABLE }); // TD_CTLS starts as 1
    const same = tdcall(set, { rax: VM_WR, rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 1n, r9: 1n }).regs;
    expect([same.rax, same.r8, set.tdCtls]).toEqual([0n, 1n, 1n]);
    expect(tdcall(set, { rax: VM_WR, rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 0n, r9: 1n }).regs.rax).toBe(METADATA_FIELD_VALUE_NOT_VALID);
    expect(set.tdCtls).toBe(1n);
  });

  // metadata_generic.h md_check_forbidden_bits_unchanged(): mask bits outside guest_wr_mask fail only if
  // their value would change.
  it('write-mask bits outside the guest-writable mask are accepted when their value stays the same', () => {
    const m = tdxModule({ configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE });
    const { regs } = tdcall(m, { rax: VM_WR, rcx: 0n, rdx: TdcsField.TD_CTLS, r8: 1n, r9: ~0n & 0xffff_ffff_ffff_ffffn });
    expect([regs.rax, regs.r8, m.tdCtls]).toEqual([0n, 0n, 1n]);
  });
});

describe('TDG.VP.VMCALL RCX bitmap (tdg_vp_vmcall.c)', () => {
  it('bit 63 (reserved 63:32) → OPERAND_INVALID|RCX, no TD exit', () => {
    const m = tdxModule();
    const { step, regs } = tdcall(m, { rax: 0n, rcx: (1n << 63n) | 0xfc00n });
    expect(step).toEqual({ kind: 'resume' });
    expect(regs.rax).toBe(OPERAND_INVALID_RCX);
  });

  it('the VMM sees exactly the selected GPRs by their x86 numbers (RSI is 6); the others read as 0', () => {
    const m = tdxModule();
    const gprs = { rdx: 0x22n, rbx: 0x33n, rbp: 0x55n, rsi: 0x66n, rdi: 0x77n, r8: 8n, r9: 9n, r10: 10n, r11: 11n, r12: 12n, r13: 13n, r14: 14n, r15: 15n };
    const { step } = tdcall(m, { rax: 0n, rcx: 1n << 6n, ...gprs });
    const none = Object.fromEntries(Object.keys(gprs).map((r) => [r, 0n]));
    expect(step).toMatchObject({ kind: 'td-exit', exit: { reason: 'tdvmcall', regs: { ...none, rcx: 1n << 6n, rsi: 0x66n } } });
    m.completeVmcall({ rsi: 1n, rdi: 2n });
    expect([m.machine.vcpu.regs.rsi, m.machine.vcpu.regs.rdi]).toEqual([1n, 0x77n]);
  });
});

// The VMM's answer reaches the guest only through the GPRs the guest's RCX bitmap selected, each
// by its x86 number (tdg_vp_vmcall.c: the bitmap is tdvmcall_control_t.gpr_select; on the way back
// the module loads only the selected GPRs from the VMM's values). One register at a time, so that
// a register mistaken for its neighbour in the bitmap shows.
describe('TDG.VP.VMCALL: the VMM\'s answer writes exactly the selected GPR', () => {
  const GPR_NUMBER = { rdx: 2, rbx: 3, rbp: 5, rsi: 6, rdi: 7, r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15 } as const;
  type Reg = keyof typeof GPR_NUMBER;
  const regs = Object.keys(GPR_NUMBER) as Reg[];
  it.each(regs)('only %s selected: of an answer naming every GPR, only it is written; the rest are reported ignored', (selected) => {
    const m = tdxModule();
    const guest = Object.fromEntries(regs.map((r, i) => [r, 0x100n + BigInt(i)])) as Record<Reg, bigint>;
    const { step } = tdcall(m, { rax: 0n, rcx: 1n << BigInt(GPR_NUMBER[selected]), ...guest });
    expect(step).toMatchObject({ kind: 'td-exit', exit: { reason: 'tdvmcall' } });
    const answer = Object.fromEntries(regs.map((r) => [r, 0xaaa0n])) as Record<Reg, bigint>;
    m.completeVmcall(answer);
    const after = m.machine.vcpu.regs;
    expect(Object.fromEntries(regs.map((r) => [r, after[r]]))).toEqual({ ...guest, [selected]: 0xaaa0n });
    expect(m.trace.ofType('vmcall-complete').at(-1)).toMatchObject({ ignoredUnexposed: regs.filter((r) => r !== selected) });
  });

  // tdh_vp_enter.c save_regs_after_tdvmcall(): after a TDG.VP.VMCALL the guest's RCX is the bitmap
  // it passed (gprs[1] = control.raw) and RAX is TDX_SUCCESS (gprs[0]); only GPRs 2..15 come from
  // the VMM, selected by the bitmap. So an answer naming RCX never reaches it, even when the GPR next
  // to it in the bitmap (RDX, bit 2) is selected and written.
  // tdg_vp_vmcall.c copy_gprs_data_from_td_to_vmm(): GPR i (2..15) reaches the VMM iff
  // gpr_select bit i is set; every other is 0 toward it. One bit at a time, so that a register read
  // under its neighbour's bit shows (both ways: leaked, and missing).
  it.each(regs)('only %s selected: the VMM sees it and every other GPR as 0', (selected) => {
    const m = tdxModule();
    const guest = Object.fromEntries(regs.map((r, i) => [r, 0x100n + BigInt(i)])) as Record<Reg, bigint>;
    const mask = 1n << BigInt(GPR_NUMBER[selected]);
    const { step } = tdcall(m, { rax: 0n, rcx: mask, ...guest });
    const seen = Object.fromEntries(regs.map((r) => [r, r === selected ? guest[r] : 0n]));
    expect(step).toMatchObject({ kind: 'td-exit', exit: { reason: 'tdvmcall', regs: { ...seen, rcx: mask } } });
  });

  it('an answer naming RCX does not write it: RCX keeps the bitmap, RAX is TDX_SUCCESS, RDX (selected) is written', () => {
    const m = tdxModule();
    const { step } = tdcall(m, { rax: 0n, rcx: 1n << 2n, rdx: 0x22n });
    expect(step).toMatchObject({ kind: 'td-exit', exit: { reason: 'tdvmcall' } });
    m.completeVmcall({ rcx: 0xdeadn, rdx: 0xaaan });
    const r = m.machine.vcpu.regs;
    expect([r.rax, r.rcx, r.rdx]).toEqual([0n, 1n << 2n, 0xaaan]);
    expect(m.trace.ofType('vmcall-complete').at(-1)).toMatchObject({ ignoredUnexposed: ['rcx'] });
  });

  it('an answer completes the call: no TDG.VP.VMCALL is in flight after it, and a second answer is refused', () => {
    const m = tdxModule();
    tdcall(m, { rax: 0n, rcx: 1n << 10n });
    expect(m.vmcallInFlight).toBe(true);
    m.completeVmcall({ r10: 0n });
    expect(m.vmcallInFlight).toBe(false);
    expect(() => m.completeVmcall({ r10: 0n })).toThrow('no TDG.VP.VMCALL is in flight');
  });
});

// tdg_vp_vmcall.c (TDX_1.5): gpr_check_mask = BIT(0) | BIT(1) | BIT(4) (RAX, RCX, RSP; RBP too only
// with CONFIG_FLAGS.NO_RBP_MOD, bit 2 of config_flags_t in tdx_api_defs.h), and
// tdvmcall_control_t.reserved (RCX[63:32], tdx_api_defs.h) must be 0; RCX[31:16] (xmm_select) is not checked.
describe('TDG.VP.VMCALL RCX bitmap: each forbidden bit', () => {
  it('RBP (bit 5) is refused only when CONFIG_FLAGS.NO_RBP_MOD is set: OPERAND_INVALID|RCX, no TD exit', () => {
    for (const rcx of [1n << 5n, (1n << 5n) | 0xfc00n]) {
      const m = tdxModule({ configFlags: CONFIG_FLAGS_NO_RBP_MOD });
      const { step, regs } = tdcall(m, { rax: 0n, rcx, rbp: 0x55n });
      expect(step).toEqual({ kind: 'resume' });
      expect([regs.rax, regs.rbp]).toEqual([OPERAND_INVALID_RCX, 0x55n]);
      expect(m.vmcallInFlight).toBe(false);
    }
    // The other bits stay selectable under the flag; without it, RBP is too.
    expect(tdcall(tdxModule({ configFlags: CONFIG_FLAGS_NO_RBP_MOD }), { rax: 0n, rcx: 0xffccn }).step).toMatchObject({ kind: 'td-exit', exit: { mask: 0xffccn } });
    expect(tdcall(tdxModule(), { rax: 0n, rcx: 1n << 5n, rbp: 0x55n }).step).toMatchObject({ kind: 'td-exit', exit: { regs: { rbp: 0x55n } } });
  });

  it.each([0n, 1n, 4n, 32n, 47n])('bit %i alone, or beside valid bits → OPERAND_INVALID|RCX, no TD exit', (bit) => {
    for (const rcx of [1n << bit, (1n << bit) | 0xfc00n]) {
      const m = tdxModule();
      const { step, regs } = tdcall(m, { rax: 0n, rcx });
      expect(step).toEqual({ kind: 'resume' });
      expect(regs.rax).toBe(OPERAND_INVALID_RCX);
      expect(m.vmcallInFlight).toBe(false);
    }
  });

  // A MapGPA the guest sends through TDG.VP.VMCALL ends the private lifetime of its range
  // (td-module.ts observeVmcall, foreign-content.ts): the module is told of exactly what the VMM sees.
  it('the module observes each TDG.VP.VMCALL\'s exposed registers, as the VMM sees them', () => {
    const m = tdxModule();
    const observe = vi.spyOn(m, 'observeVmcall');
    const mask = (1n << 10n) | (1n << 11n) | (1n << 12n) | (1n << 13n);
    tdcall(m, { rax: 0n, rcx: mask, r10: 0n, r11: 0x10001n, r12: (1n << 47n) | 0x400000n, r13: 0x1000n, r14: 0x99n });
    expect(observe).toHaveBeenCalledTimes(1);
    expect(observe.mock.calls[0]![0]).toMatchObject({ rcx: mask, r10: 0n, r11: 0x10001n, r12: (1n << 47n) | 0x400000n, r13: 0x1000n, r14: 0n });
  });

  it('an empty bitmap exposes nothing: the VMM reads 0 in every GPR (copy_gprs_data_from_td_to_vmm)', () => {
    const m = tdxModule();
    const gprs = { rdx: 2n, rbx: 3n, rbp: 5n, rsi: 6n, rdi: 7n, r8: 8n, r9: 9n, r10: 10n, r11: 11n, r12: 12n, r13: 13n, r14: 14n, r15: 15n };
    const { step } = tdcall(m, { rax: 0n, rcx: 0n, ...gprs });
    const none = Object.fromEntries(Object.keys(gprs).map((r) => [r, 0n]));
    expect(step).toMatchObject({ kind: 'td-exit', exit: { reason: 'tdvmcall', regs: { ...none, rcx: 0n } } });
  });

  it('every other GPR bit (2, 3, 5 to 15) together, and xmm_select bits, are a TD exit', () => {
    const m = tdxModule();
    const rcx = 0xffecn | (0xffffn << 16n);
    const { step } = tdcall(m, { rax: 0n, rcx, rbx: 3n, rbp: 5n });
    expect(step).toMatchObject({ kind: 'td-exit', exit: { reason: 'tdvmcall', mask: rcx, regs: { rcx, rbx: 3n, rbp: 5n } } });
    expect(m.vmcallInFlight).toBe(true);
  });
});

// tdx_api_defs.h (TDX_1.5) tdcall_leaf_opcode_t: the leaf numbers the trace names each TDCALL by.
describe('TDCALL leaf numbers', () => {
  it('are the module\'s: VP.VMCALL 0 … VM.WR 8, MR.VERIFYREPORT 22, and the unmodelled ones are OPERAND_INVALID|RAX under their own names', () => {
    expect(TdcallLeaf).toEqual({ VP_VMCALL: 0, VP_INFO: 1, MR_RTMR_EXTEND: 2, VP_VEINFO_GET: 3, MR_REPORT: 4, VP_CPUIDVE_SET: 5, MEM_PAGE_ACCEPT: 6, VM_RD: 7, VM_WR: 8, MR_VERIFYREPORT: 22 });
    const m = tdxModule();
    for (const leaf of [9n, 10n, 11n]) expect(tdcall(m, { rax: leaf }).regs.rax).toBe(OPERAND_INVALID_RAX);
    expect(m.trace.ofType('tdcall').map((e) => e.leaf)).toEqual(['0x9', '0xa', '0xb']);
  });
});
