// The state TDH.VP.INIT gives a TD vCPU (intel/tdx-module TDX_1.5: tdh_vp_init.c
// init_vcpu_gprs_and_registers, td_vmcs_init.c td_vmcs_migrated_state_init_map and
// td_vmcs_non_migrated_state_init_map): 32-bit protected mode, flat CS (AR 0xC09B, limit 4 GiB)
// and data segments (0xC093), paging off, RIP = 0xFFFFFFF0, RFLAGS = 0x2, CR0 = 0x21 (PE, NE),
// CR4 = 0x2040 (MCE; VMXE is the module's and not modelled), EFER = 0x901 (SCE, LME, NXE: long
// mode is enabled and becomes active when the guest sets CR0.PG), GDTR limit 0xFFFF, TR base 0
// and limit 0xFFFF (AR 0x8B: a busy TSS), so an exception below CPL 0 before the guest loads its
// own TSS reads its stack from there, as in a real TD. XCR0 = 1 (x87 only: tdh_vp_init.c
// guest_state.xcr0 = XCR0_RESET_STATE, which TDH.VP.ENTER loads with XSETBV). IA32_FMASK = 0x20200
// (init_vcpu_msrs).
// GPRs: RBX = the GPA width (52 with TDCS.GPAW, else 48), RCX = R8 = the VMM's TDH.VP.INIT
// parameter, RSI = the vCPU index, RDX = CPUID(1).EAX as the TD sees it (the value TDH.SYS.INIT
// saved: init_vcpu_gprs_and_registers reads cpuid_values[leaf 1].eax).
import type { Machine } from '../../cpu/machine.js';
import { MSR_SFMASK } from '../../cpu/fast-system-call.js';
import { tdCpuid } from './td-cpuid.js';

/** XCR0 after reset: x87 state only (Intel SDM Vol. 1 §13.3; tdx-module x86_defs.h XCR0_RESET_STATE). */
export const XCR0_RESET_STATE = 1n;

/** The TD reset vector (td_vmcs_init.c: guest RIP 0xFFFFFFF0), in the firmware volume below 4 GiB. */
export const TD_RESET_RIP = 0xfffffff0n;

/** tdx-module msr_defs.h IA32_FMASK_MSR_RESET_STATE: the SYSCALL RFLAGS mask a TD vCPU starts with. */
const IA32_FMASK_RESET_STATE = 0x20200n;

export interface TdVcpuInit {
  gpaWidth: 48 | 52;
  initRcx: bigint;
  vcpuIndex: number;
}

export function initTdVcpu(machine: Machine, init: TdVcpuInit): void {
  const vcpu = machine.vcpu;
  vcpu.enter({ mode: 'protected32' });
  vcpu.writeSpecial('cr0', 0x21n);
  vcpu.writeSpecial('cr4', 0x40n);
  vcpu.writeSpecial('efer', 0x901n);
  vcpu.writeSpecial('gdtrBase', 0n);
  vcpu.writeSpecial('gdtrLimit', 0xffffn);
  vcpu.writeSpecial('idtrBase', 0n);
  vcpu.writeSpecial('idtrLimit', 0n);
  vcpu.writeSpecial('trBase', 0n);
  vcpu.writeSpecial('trLimit', 0xffffn);
  vcpu.writeXcr0(XCR0_RESET_STATE);
  // init_vcpu_msrs: IA32_FMASK = IA32_FMASK_MSR_RESET_STATE (msr_defs.h 0x20200: IF and VM), which
  // TDH.VP.ENTER loads (safe_wrmsr from guest_msr_state); the other MSRs it keeps outside the VMCS start at 0.
  vcpu.writeMsr(MSR_SFMASK, IA32_FMASK_RESET_STATE);
  const regs = vcpu.regs;
  for (const r of ['rax', 'rsp', 'rbp', 'rdi', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const) regs[r] = 0n;
  regs.rbx = BigInt(init.gpaWidth);
  regs.rcx = init.initRcx;
  regs.r8 = init.initRcx;
  regs.rsi = BigInt(init.vcpuIndex);
  // Family/model/stepping: not a dynamic field, so the vCPU state passed does not matter.
  const signature = tdCpuid(1, 0, { vcpuIndex: init.vcpuIndex, cr4: 0n, in64BitMode: false });
  regs.rdx = signature.kind === 'answer' ? BigInt(signature.regs[0]) : 0n;
  regs.rip = TD_RESET_RIP;
  regs.rflags = 0x2n;
}
