// TDCALL from the guest: mode checks, RAX leaf/version checks and dispatch (`tdx_td_dispatcher.c`
// `td_call()`; reference A1). Every TDCALL is one `tdcall` trace event with its result.
import type { VmExit } from '../../cpu/exits.js';
import { pageAccept } from './page-accept.js';
import { mrReport } from './mr-report.js';
import { mrVerifyReport } from './mr-verifyreport.js';
import { rtmrExtend } from './rtmr-extend.js';
import { OperandId, TdxStatus, statusName, withOperand } from './status.js';
import { CONFIG_FLAGS_NO_RBP_MOD, TD_RESUME, exposed, exposedBits, type TdModule, type TdStep, type VmcallRegs } from './td-module.js';
import { MD_FIELD_ID_NA, guestReadTdField, guestWriteTdField } from './td-metadata.js';
import { GP_VECTOR } from '../../shared/x86-vectors.js';

export const TdcallLeaf = {
  VP_VMCALL: 0, VP_INFO: 1, MR_RTMR_EXTEND: 2, VP_VEINFO_GET: 3, MR_REPORT: 4, VP_CPUIDVE_SET: 5,
  MEM_PAGE_ACCEPT: 6, VM_RD: 7, VM_WR: 8, MR_VERIFYREPORT: 22,
} as const;
const LEAF_NAME = new Map<number, string>(Object.entries(TdcallLeaf).map(([k, v]) => [v, k]));

/** GPRs a TDG.VP.VMCALL can expose (RCX bitmap bits 1..15 minus RSP). RCX itself is never exposed. */
export const VMCALL_REGS = ['rcx', 'rdx', 'rbx', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
export type VmcallReg = (typeof VMCALL_REGS)[number];

/** What a leaf handler decided. */
export type LeafResult =
  /** Write RAX (and whatever the handler already set) and advance RIP. */
  | { kind: 'return'; status: bigint }
  /** Leave RIP at the TDCALL (it re-executes) and hand a TD exit / stop to the caller. */
  | { kind: 'step'; step: TdStep; result: string };

type TdcallExit = Extract<VmExit, { kind: 'tdcall' }>;

const VMCALL_MASK_RESERVED = 0xffffffff00000000n;
const VMCALL_MASK_FORBIDDEN = (1n << 0n) | (1n << 1n) | (1n << 4n); // RAX, RCX, RSP
/** RBP, forbidden too when CONFIG_FLAGS.NO_RBP_MOD is set (tdg_vp_vmcall.c: gpr_check_mask |= BIT(5)). */
const VMCALL_MASK_RBP = 1n << 5n;

export function handleTdcall(td: TdModule, exit: TdcallExit): TdStep {
  const vcpu = td.machine.vcpu;
  const regs = vcpu.regs;
  const rip = exit.rip;
  const rax = regs.rax;
  const rcx = regs.rcx;

  // td_call(): outside 64-bit mode → #GP(0). CPL > 0 → #GP(0) as the SDM's TDCALL page says (reference marks it (U)).
  // The exit carries the code segment the TDCALL ran in: EFER.LMA and CS.L as the vCPU read them.
  const cpl = exit.cs & 3;
  if (exit.codeBits !== 64 || cpl > 0) {
    td.record('tdcall', { rip, rax, rcx, result: '#GP(0)', cause: cpl > 0 ? 'cpl>0' : 'not-64-bit' });
    return td.injectException(GP_VECTOR, 0n, undefined, true);
  }

  let result: LeafResult;
  // RAX[15:0] leaf, [23:16] version, [63:24] reserved: decoded as a number (BigInt masks and
  // shifts allocated four per TDCALL); RAX < 2^24 is "the reserved bits are 0".
  const reservedClear = rax < 0x1000000n;
  const low = Number(reservedClear ? rax : rax & 0xffffffn);
  const leaf = low & 0xffff;
  const version = low >>> 16;
  const leafName = LEAF_NAME.get(leaf) ?? `0x${leaf.toString(16)}`;
  // Only TDG.VM.RD has versions beyond 0: its handler checks the version itself.
  if (!reservedClear || (version !== 0 && leaf !== TdcallLeaf.VM_RD)) {
    result = { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RAX) };
  } else {
    result = dispatch(td, leaf, version, exit);
  }

  // One object literal per event (same keys in the same order as the trace always had): building
  // it by spreading a shared prefix cost an object-shape change per exit (issue 11).
  if (result.kind === 'step') {
    td.record('tdcall', { rip, rax, rcx, leaf: leafName, result: result.result });
    return result.step;
  }
  const status = result.status;
  regs.rax = status;
  vcpu.complete(exit);
  td.record('tdcall', { rip, rax, rcx, leaf: leafName, result: statusName(status), status });
  return TD_RESUME;
}

function dispatch(td: TdModule, leaf: number, version: number, exit: TdcallExit): LeafResult {
  switch (leaf) {
    case TdcallLeaf.VP_VMCALL: return vpVmcall(td, exit);
    case TdcallLeaf.VP_INFO: return vpInfo(td);
    case TdcallLeaf.VP_VEINFO_GET: return veInfoGet(td);
    case TdcallLeaf.MR_RTMR_EXTEND: return rtmrExtend(td);
    case TdcallLeaf.MR_REPORT: return mrReport(td);
    case TdcallLeaf.VP_CPUIDVE_SET: return cpuidVeSet(td);
    case TdcallLeaf.MR_VERIFYREPORT: return mrVerifyReport(td);
    case TdcallLeaf.MEM_PAGE_ACCEPT: return pageAccept(td, td.machine.vcpu.regs.rcx);
    case TdcallLeaf.VM_RD: return vmRead(td, version);
    case TdcallLeaf.VM_WR: return vmWrite(td);
    // Leaves that exist in 1.5 but are not modelled (VP.RD/WR, SYS.RD, …) and unknown leaves.
    default: return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RAX) };
  }
}

/** TDG.VP.INFO (reference A2). */
function vpInfo(td: TdModule): LeafResult {
  const regs = td.machine.vcpu.regs;
  const c = td.config;
  regs.rcx = BigInt(c.gpaWidth);
  regs.rdx = c.attributes;
  regs.r8 = BigInt(c.numVcpus) | (BigInt(c.maxVcpus) << 32n);
  regs.r9 = BigInt(td.machine.vcpuIndex); // VCPU_INDEX
  regs.r10 = 0n; // TDG.SYS.RD not modelled
  regs.r11 = 0n;
  return { kind: 'return', status: TdxStatus.SUCCESS };
}

/** TDG.VP.CPUIDVE.SET (`tdg_vp_cpuidve_set.c`): RCX bit 0 supervisor, bit 1 user, the rest reserved. */
function cpuidVeSet(td: TdModule): LeafResult {
  const rcx = td.machine.vcpu.regs.rcx;
  if ((rcx & ~0x3n) !== 0n) return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX) };
  td.cpuidVe[td.machine.vcpuIndex] = { supervisor: (rcx & 1n) !== 0n, user: (rcx & 2n) !== 0n };
  return { kind: 'return', status: TdxStatus.SUCCESS };
}

/** TDG.VP.VEINFO.GET (`tdg_vp_veinfo_get.c`). */
function veInfoGet(td: TdModule): LeafResult {
  const regs = td.machine.vcpu.regs;
  const info = td.veInfo.take();
  regs.rcx = BigInt(info?.exitReason ?? 0);
  regs.rdx = info?.exitQualification ?? 0n;
  regs.r8 = info?.gla ?? 0n;
  regs.r9 = info?.gpa ?? 0n;
  regs.r10 = info ? BigInt(info.instructionLength) | (BigInt(info.instructionInfo) << 32n) : 0n;
  return { kind: 'return', status: info ? TdxStatus.SUCCESS : TdxStatus.NO_VALID_VE_INFO };
}

/** A TDG.VM.RD/WR status for the guest (`tdg_vm_rd_wr.c` tdg_vm_rd_wr() adds no operand ID to metadata errors). */
function vmRdWrResult(status: bigint): LeafResult {
  return { kind: 'return', status };
}

/**
 * TDG.VM.RD (`tdg_vm_rd_wr.c` tdg_vm_rd_wr()): RCX = VM ID (0: this TD), RDX = field ID → R8 =
 * value; version 1 also returns in RDX the next field ID the guest can read (td-metadata.ts).
 */
function vmRead(td: TdModule, version: number): LeafResult {
  const regs = td.machine.vcpu.regs;
  const field = regs.rdx;
  // RDX (version 1) and R8 get their defaults before any check, so every error leaves them.
  if (version > 0) regs.rdx = MD_FIELD_ID_NA;
  regs.r8 = 0n;
  // The dispatcher lets every TDG.VM.RD version through; this leaf supports 0 and 1.
  if (version > 1) return vmRdWrResult(withOperand(TdxStatus.OPERAND_INVALID, OperandId.RAX));
  if (regs.rcx !== 0n) return vmRdWrResult(withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX));
  const read = guestReadTdField(td, field, version);
  if (version > 0) regs.rdx = read.next;
  regs.r8 = read.value;
  return vmRdWrResult(read.status);
}

/** TDG.VM.WR: RCX = VM ID (0), RDX = field, R8 = value, R9 = write mask → R8 = old value. */
function vmWrite(td: TdModule): LeafResult {
  const regs = td.machine.vcpu.regs;
  const value = regs.r8;
  regs.r8 = 0n; // tdg_vm_rd_wr(): R8 = 0 before any check
  if (regs.rcx !== 0n) return vmRdWrResult(withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX));
  const write = guestWriteTdField(td, regs.rdx, value, regs.r9);
  regs.r8 = write.old;
  return vmRdWrResult(write.status);
}

/**
 * TDG.VP.VMCALL (`tdg_vp_vmcall.c`; reference A7): RCX selects the GPRs exposed to the VMM
 * (bits 0, 1, 4, bit 5 under CONFIG_FLAGS.NO_RBP_MOD, and 63:32 must be 0); the others are zeroed
 * toward the VMM.
 */
function vpVmcall(td: TdModule, exit: TdcallExit): LeafResult {
  const regs = td.machine.vcpu.regs;
  const mask = regs.rcx;
  const forbidden = (td.config.configFlags & CONFIG_FLAGS_NO_RBP_MOD) !== 0n ? VMCALL_MASK_FORBIDDEN | VMCALL_MASK_RBP : VMCALL_MASK_FORBIDDEN;
  if ((mask & VMCALL_MASK_RESERVED) !== 0n || (mask & forbidden) !== 0n) {
    return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX) };
  }
  // One literal in VMCALL_REGS order; a register is read only when exposed (each read is a BigInt).
  const bits = exposedBits(mask);
  const seen: VmcallRegs = {
    rcx: mask, // the VMM learns the bitmap itself
    rdx: exposed(bits, 'rdx') ? regs.rdx : 0n, rbx: exposed(bits, 'rbx') ? regs.rbx : 0n, rbp: exposed(bits, 'rbp') ? regs.rbp : 0n,
    rsi: exposed(bits, 'rsi') ? regs.rsi : 0n, rdi: exposed(bits, 'rdi') ? regs.rdi : 0n, r8: exposed(bits, 'r8') ? regs.r8 : 0n,
    r9: exposed(bits, 'r9') ? regs.r9 : 0n, r10: exposed(bits, 'r10') ? regs.r10 : 0n, r11: exposed(bits, 'r11') ? regs.r11 : 0n,
    r12: exposed(bits, 'r12') ? regs.r12 : 0n, r13: exposed(bits, 'r13') ? regs.r13 : 0n, r14: exposed(bits, 'r14') ? regs.r14 : 0n,
    r15: exposed(bits, 'r15') ? regs.r15 : 0n,
  };
  td.observeVmcall(seen);
  td.beginVmcall(exit.length, mask);
  return { kind: 'step', step: td.tdExit({ reason: 'tdvmcall', rip: exit.rip, mask, regs: seen }), result: 'td-exit(tdvmcall)' };
}
