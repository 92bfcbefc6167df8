// RDMSR/WRMSR in a TD (`td_msr_access.c` td_rdmsr_exit/td_wrmsr_exit, table
// `include/auto_gen/msr_config_lookup.c`, intel/tdx-module TDX_1.5.01). The TD's MSR bitmaps let
// some MSRs run natively (bitmap bit 0: no VM exit at all); of those that exit, the module emulates
// a few, injects #GP(0) for some and #VE for the rest. An MSR outside the bitmap ranges
// (0..0x1FFF, 0xC000_0000..0xC000_1FFF), or missing from the lookup table (the table omits every
// "exit and #VE" MSR to save space), raises #VE, so the guest asks the VMM (Linux tdx.c
// read_msr/write_msr → TDG.VP.VMCALL<Instruction.RDMSR/WRMSR>).
//
// Only the MSRs a boot touches are listed; every other MSR takes the #VE default, which is right
// for all MSRs the lookup table leaves out and wrong only for those listed there that are not here.
import type { VmExit } from '../../cpu/exits.js';
import { TD_RESUME, TdAttributes, type TdModule, type TdStep } from './td-module.js';
import { tdCpuid } from './td-cpuid.js';
import { ExitReason, GP_VECTOR } from './ve.js';

/**
 * native: no VM exit, the TD's own MSR; emulate: the module computes the result (`OTHER`);
 * gp / ve: #GP(0) / #VE; gp-or-ve: #GP(0) unless the TD's CPUID enumerates the feature, then #VE.
 */
export type MsrAction = 'native' | 'emulate' | 'gp' | 've' | 'gp-or-ve';

export interface MsrRange {
  name: string;
  first: number;
  last: number;
  read: MsrAction;
  write: MsrAction;
}

const r = (name: string, first: number, last: number, read: MsrAction, write: MsrAction): MsrRange => ({ name, first, last, read, write });

export const MsrIndex = {
  IA32_TSC: 0x10, IA32_APIC_BASE: 0x1b, IA32_SPEC_CTRL: 0x48, IA32_MISC_ENABLE: 0x1a0, IA32_PAT: 0x277,
  IA32_TSC_DEADLINE: 0x6e0, X2APIC_FIRST: 0x800, X2APIC_LAST: 0x8ff, IA32_EFER: 0xc0000080,
} as const;

// Rows from msr_config_lookup.c (FIXED_0 bitmap bit = native; FIXED_1 + action otherwise).
export const TD_MSR_TABLE: readonly MsrRange[] = [
  r('IA32_TSC', 0x10, 0x10, 'native', 've'),
  r('IA32_SPEC_CTRL', 0x48, 0x48, 'native', 'native'),
  // Read: DYN_PERFMON bit, emulated without PERFMON (rdmsr_ia32_misc_enables); write: exit + #VE.
  r('IA32_MISC_ENABLE', 0x1a0, 0x1a0, 'emulate', 've'),
  r('IA32_PAT', 0x277, 0x277, 'native', 'native'),
  // GP_OR_VE: #VE when CPUID(1).ECX.TSC_DEADLINE is set for the TD (is_tsc_deadline_supported_in_tdcs).
  r('IA32_TSC_DEADLINE', 0x6e0, 0x6e0, 'gp-or-ve', 'gp-or-ve'),
  // x2APIC: the virtual APIC handles TPR, PPR, EOI, ISR/TMR/IRR and SELF_IPI; IDs, LDR, SVR, LVTs,
  // ICR and timer registers are not in the table (#VE); the rest are #GP.
  r('X2APIC 0x800-0x801', 0x800, 0x801, 'gp', 'gp'),
  r('X2APIC 0x804-0x807', 0x804, 0x807, 'gp', 'gp'),
  r('X2APIC_TPR', 0x808, 0x808, 'native', 'native'),
  r('X2APIC 0x809', 0x809, 0x809, 'native', 'native'),
  r('X2APIC_PPR', 0x80a, 0x80a, 'native', 'native'),
  r('X2APIC_EOI', 0x80b, 0x80b, 'native', 'native'),
  r('X2APIC 0x80c', 0x80c, 0x80c, 'native', 'native'),
  r('X2APIC 0x80e', 0x80e, 0x80e, 'native', 'native'),
  r('X2APIC_ISR/TMR/IRR', 0x810, 0x827, 'native', 'native'),
  r('X2APIC 0x829-0x82e', 0x829, 0x82e, 'gp', 'gp'),
  r('X2APIC 0x831', 0x831, 0x831, 'gp', 'gp'),
  r('X2APIC_SELF_IPI', 0x83f, 0x83f, 'native', 'native'),
  r('X2APIC 0x840-0x8ff', 0x840, 0x8ff, 'gp', 'gp'),
  // Read native; write emulated: only EFER.SCE may change, any other change is #VE (wrmsr_ia32_efer).
  r('IA32_EFER', 0xc0000080, 0xc0000080, 'native', 'emulate'),
  r('IA32_STAR/LSTAR/CSTAR/FMASK', 0xc0000081, 0xc0000084, 'native', 'native'),
  r('IA32_FS_BASE/GS_BASE/KERNEL_GS_BASE/TSC_AUX', 0xc0000100, 0xc0000103, 'native', 'native'),
];

/** The action for an access (`rd_wr_msr_generic_checks` then the lookup table); #VE when unlisted. */
export function msrAction(msr: number, write: boolean): { action: MsrAction; name: string } {
  const row = TD_MSR_TABLE.find((m) => msr >= m.first && msr <= m.last);
  if (!row) return { action: 've', name: `MSR 0x${(msr >>> 0).toString(16)}` };
  return { action: write ? row.write : row.read, name: row.name };
}

/** MSRs whose native value the emulator's CPU keeps (Unicorn/QEMU); the others live in the module. */
export const EMULATOR_BACKED = new Set<number>([
  MsrIndex.IA32_PAT, 0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103,
]);

/**
 * IA32_MISC_ENABLE as the virtual CPU has it natively: fast strings, automatic thermal control,
 * performance monitoring available, EIST, MONITOR/MWAIT. Without ATTRIBUTES.PERFMON the module
 * reports performance monitoring unavailable and PEBS unavailable (rdmsr_ia32_misc_enables).
 */
export const MISC_ENABLE_NATIVE = 0x50089n;
const MISC_ENABLE_PERFMON_AVAILABLE = 1n << 7n;
const MISC_ENABLE_PEBS_UNAVAILABLE = 1n << 12n;
const EFER_SCE = 1n << 0n;
const EFER_LMA = 1n << 10n;
const CPUID1_ECX_TSC_DEADLINE = 1 << 24;
const MASK32 = 0xffffffffn;

type MsrExit = Extract<VmExit, { kind: 'rdmsr' | 'wrmsr' }>;

/** td_rdmsr_exit / td_wrmsr_exit for one guest RDMSR or WRMSR. */
export function handleMsr(td: TdModule, exit: MsrExit): TdStep {
  const write = exit.kind === 'wrmsr';
  const msr = exit.msr >>> 0;
  let { action, name } = msrAction(msr, write);
  if (action === 'gp-or-ve') {
    const cpuid1 = tdCpuid(1, 0, { vcpuIndex: 0, cr4: 0n, in64BitMode: true });
    action = cpuid1.kind === 'answer' && (cpuid1.regs[2] & CPUID1_ECX_TSC_DEADLINE) !== 0 ? 've' : 'gp';
  }
  td.record(write ? 'wrmsr' : 'rdmsr', { msr, name, action, rip: exit.rip });
  if (action === 've') {
    return td.deliverVe({ exitReason: write ? ExitReason.WRMSR : ExitReason.RDMSR, exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: exit.length, instructionInfo: 0 });
  }
  if (action === 'gp') return td.injectException(GP_VECTOR, 0n);
  const vcpu = td.machine.vcpu;
  if (write) {
    if (msr === MsrIndex.IA32_EFER) {
      // wrmsr_ia32_efer: LMA is read-only; only SCE may change, any other change is #VE.
      const old = vcpu.readSpecial('efer');
      const value = (exit.value & ~EFER_LMA) | (old & EFER_LMA);
      if (((old ^ value) & ~EFER_SCE) !== 0n) {
        return td.deliverVe({ exitReason: ExitReason.WRMSR, exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: exit.length, instructionInfo: 0 });
      }
      vcpu.writeSpecial('efer', value);
    } else if (EMULATOR_BACKED.has(msr)) {
      vcpu.writeMsr(msr, exit.value);
    } else {
      td.msrValues.set(msr, exit.value);
    }
  } else {
    const value = readMsrValue(td, msr);
    vcpu.regs.rax = value & MASK32;
    vcpu.regs.rdx = value >> 32n;
  }
  vcpu.complete(exit);
  return TD_RESUME;
}

function readMsrValue(td: TdModule, msr: number): bigint {
  const vcpu = td.machine.vcpu;
  switch (msr) {
    // The TSC counts guest instructions, so a run stays a pure function of its input.
    case MsrIndex.IA32_TSC: return vcpu.instructions;
    case MsrIndex.IA32_EFER: return vcpu.readSpecial('efer');
    case MsrIndex.IA32_MISC_ENABLE:
      return (td.config.attributes & TdAttributes.PERFMON) !== 0n
        ? MISC_ENABLE_NATIVE
        : (MISC_ENABLE_NATIVE & ~MISC_ENABLE_PERFMON_AVAILABLE) | MISC_ENABLE_PEBS_UNAVAILABLE;
    default:
      return EMULATOR_BACKED.has(msr) ? vcpu.readMsr(msr) : td.msrValues.get(msr) ?? 0n;
  }
}
