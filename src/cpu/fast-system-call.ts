// SYSCALL and SYSENTER as the CPU executes them. Neither TDX nor SEV-SNP intercepts them, but
// Unicorn's helper_syscall and helper_sysenter only call instruction hooks and step over the
// instruction (qemu/target/i386/seg_helper.c), so without this a guest's SYSCALL silently did
// nothing, even with EFER.SCE clear. The native side traps both before they run (SystemCallExit).
//
// What is modelled exactly: the #UD and #GP(0) checks, and the transfer to 64-bit code at CPL 0
// from 64-bit mode (SYSCALL, SYSENTER) and from compatibility mode above CPL 0 (SYSENTER). At CPL
// 0 only the CS and SS selectors change (the emulator's 64-bit vCPU writes selectors only:
// native/src/guest_stub.cc); from CPL > 0, CS is loaded with the fixed flat 64-bit state both
// instructions give it through Vcpu.enterInnerPrivilege, which is how the emulator can raise CPL.
// A transfer that changes the code size at CPL 0 (from compatibility mode) or leaves legacy mode
// is reported, not approximated. The
// vCPU's code size is read from the descriptor CS's selector names (native/src/deliver.cc
// CurrentCodeSegment), so the selectors in STAR and SYSENTER_CS must name the GDT's 64-bit code
// descriptor, as every OS's do (Linux: __KERNEL_CS), for later exits to see 64-bit mode.
import type { SystemCallExit } from './exits.js';
import { RFLAGS } from './registers.js';
import type { Vcpu } from './vcpu.js';

export type CpuVendor = 'intel' | 'amd';

export type FastSystemCallResult =
  | { kind: 'done' }
  | { kind: 'ud' }
  | { kind: 'gp' }
  | { kind: 'unmodelled'; reason: string };

export const MSR_SYSENTER_CS = 0x174;
export const MSR_SYSENTER_ESP = 0x175;
export const MSR_SYSENTER_EIP = 0x176;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
/** AMD's compatibility-mode SYSCALL target (Intel has no CSTAR). */
export const MSR_CSTAR = 0xc0000083;
export const MSR_SFMASK = 0xc0000084;

const EFER_SCE = 1n << 0n;
const RF = 1n << 16n;
const VM = 1n << 17n;
/** RFLAGS bit 1 reads as 1 whatever a mask clears (SDM Vol. 1 §3.4.3). */
const RFLAGS_FIXED_1 = 2n;
const MASK32 = 0xffffffffn;

/**
 * The CS both instructions load in IA-32e mode, whatever the GDT holds (SDM Vol. 2B "SYSCALL" and
 * "SYSENTER", Operation): base 0, limit FFFFFH with G = 1, type 11 (execute/read, accessed), S = 1,
 * DPL 0, P = 1, L = 1, D = 0: as an 8-byte code descriptor (SDM Vol. 3 §3.4.5).
 */
export const FLAT_64BIT_KERNEL_CODE = 0x00af9b000000ffffn;

/** CS = `selector` at CPL 0 with FLAT_64BIT_KERNEL_CODE, from CPL `cpl`: undefined, or why it could not. */
function loadKernelCs(vcpu: Vcpu, selector: bigint, cpl: number): string | undefined {
  if (cpl === 0) {
    vcpu.writeSpecial('cs', selector);
    return undefined;
  }
  return vcpu.enterInnerPrivilege(Number(selector), FLAT_64BIT_KERNEL_CODE);
}

const DONE: FastSystemCallResult = { kind: 'done' };
const UD: FastSystemCallResult = { kind: 'ud' };
const GP: FastSystemCallResult = { kind: 'gp' };

/** Executes the trapped SYSCALL or SYSENTER on `vcpu` as a `vendor` CPU would, or says which exception it raises. */
export function executeFastSystemCall(vcpu: Vcpu, exit: SystemCallExit, vendor: CpuVendor): FastSystemCallResult {
  // With a LOCK prefix it never gets here: that #UD is the decode's (Machine::OnCode).
  return exit.instruction === 'syscall' ? syscall(vcpu, exit, vendor) : sysenter(vcpu, vendor);
}

/**
 * SDM Vol. 2B "SYSCALL", Operation: #UD unless in 64-bit mode with IA32_EFER.SCE set; then
 * RCX ← RIP of the next instruction, RIP ← IA32_LSTAR, R11 ← RFLAGS, RFLAGS ← RFLAGS AND
 * NOT(IA32_FMASK), CS.Selector ← IA32_STAR[47:32] AND FFFCH, SS.Selector ← IA32_STAR[47:32] + 8,
 * CPL 0. AMD (APM Vol. 3 "SYSCALL") does the same from 64-bit mode, with RF cleared in R11 and
 * RFLAGS; SFMASK's bits 63:32 are reserved. AMD also allows SYSCALL from compatibility mode
 * (to CSTAR) and legacy mode (to STAR[31:0]): not modelled.
 */
function syscall(vcpu: Vcpu, exit: SystemCallExit, vendor: CpuVendor): FastSystemCallResult {
  if ((vcpu.readSpecial('efer') & EFER_SCE) === 0n) return UD;
  const cs = vcpu.codeSegment();
  const in64BitMode = cs.longMode && cs.bits === 64;
  if (!in64BitMode) return vendor === 'intel' ? UD : { kind: 'unmodelled', reason: 'SYSCALL outside 64-bit mode on an AMD CPU (to CSTAR or STAR[31:0]) is not modelled' };
  const star = vcpu.readMsr(MSR_STAR);
  const regs = vcpu.regs;
  const flags = regs.rflags & ~RF;
  const selector = (star >> 32n) & 0xffffn;
  const failed = loadKernelCs(vcpu, selector & 0xfffcn, cs.selector & 3);
  if (failed) return { kind: 'unmodelled', reason: `SYSCALL from CPL ${cs.selector & 3}: ${failed}` };
  regs.rcx = exit.rip + BigInt(exit.length);
  regs.r11 = flags;
  regs.rflags = (flags & ~(vcpu.readMsr(MSR_SFMASK) & MASK32)) | RFLAGS_FIXED_1;
  vcpu.writeSpecial('ss', (selector + 8n) & 0xffffn);
  regs.rip = vcpu.readMsr(MSR_LSTAR);
  return DONE;
}

/**
 * SDM Vol. 2B "SYSENTER", Operation: #GP(0) when CR0.PE = 0 or IA32_SYSENTER_CS[15:2] = 0; then
 * RFLAGS.VM, IF and RF ← 0; in IA-32e mode RSP ← IA32_SYSENTER_ESP, RIP ← IA32_SYSENTER_EIP;
 * CS.Selector ← IA32_SYSENTER_CS AND FFFCH (64-bit code in IA-32e mode), SS.Selector ← CS + 8,
 * CPL 0. AMD CPUs raise #UD for SYSENTER in long mode (APM Vol. 3 "SYSENTER", Exceptions).
 */
function sysenter(vcpu: Vcpu, vendor: CpuVendor): FastSystemCallResult {
  const cs = vcpu.codeSegment();
  if (vendor === 'amd' && cs.longMode) return UD;
  if (!cs.protectedMode) return GP;
  const target = vcpu.readMsr(MSR_SYSENTER_CS) & 0xffffn;
  if ((target & 0xfffcn) === 0n) return GP;
  const cpl = cs.selector & 3;
  if (!cs.longMode || (cs.bits !== 64 && cpl === 0)) {
    return { kind: 'unmodelled', reason: 'SYSENTER outside IA-32e mode, or from compatibility mode at CPL 0 (a change of code size without one of privilege), is not modelled' };
  }
  const failed = loadKernelCs(vcpu, target & 0xfffcn, cpl);
  if (failed) return { kind: 'unmodelled', reason: `SYSENTER from CPL ${cpl}: ${failed}` };
  const regs = vcpu.regs;
  regs.rflags = regs.rflags & ~(VM | RFLAGS.IF | RF);
  vcpu.writeSpecial('ss', (target & 0xfffcn) + 8n);
  regs.rsp = vcpu.readMsr(MSR_SYSENTER_ESP);
  regs.rip = vcpu.readMsr(MSR_SYSENTER_EIP);
  return DONE;
}
