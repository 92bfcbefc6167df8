// RDMSR/WRMSR in a TD (`td_msr_access.c` td_rdmsr_exit/td_wrmsr_exit, table
// `include/auto_gen/msr_config_lookup.c`, bitmap set-up `helpers.c` set_msr_bitmaps /
// is_msr_dynamic_bit_cleared, intel/tdx-module TDX_1.5.01). Each row gives, for reads and for
// writes, the MSR-bitmap bit (fixed 0: the TD's own MSR, no VM exit; fixed 1: exit; dynamic: no
// exit when the TD has the feature) and what the module does on an exit (#VE, #GP(0), #GP(0)
// unless the TD's CPUID enumerates the feature then #VE, or its own emulation). An MSR outside
// the bitmap ranges (0..0x1FFF, 0xC000_0000..0xC000_1FFF), or missing from the table (the table
// omits every "exit and #VE" MSR to save space), raises #VE, so the guest asks the VMM (Linux
// tdx.c read_msr/write_msr → TDG.VP.VMCALL<Instruction.RDMSR/WRMSR>).
import type { VmExit } from '../../cpu/exits.js';
import { TD_RESUME, TdAttributes, type TdModule, type TdStep } from './td-module.js';
import { TD_XFAM, tdCpuid } from './td-cpuid.js';
import { GP_VECTOR } from '../../shared/x86-vectors.js';
import { ExitReason } from './ve.js';
import { VIRTUAL_VMX_READS, virtualVmxMsrs } from './virtual-vmx-msrs.js';

/** native: no VM exit, the TD's own MSR; emulate: the module computes the result (`OTHER`); gp / ve: #GP(0) / #VE. */
export type MsrAction = 'native' | 'emulate' | 'gp' | 've';

/** Bitmap bit meaning: F0/F1 fixed; the others are cleared (no exit) when the TD has the feature. */
type BitMeaning = 'F0' | 'F1' | 'PERFMON' | 'UMWAIT' | 'TSX' | 'XFD' | 'PKS' | 'PT' | 'CET' | 'ULI' | 'LBR' | 'OTHER';
/** The action on an exit: '-' the table's FATAL_ERROR (never exits), EMU its OTHER (emulated). */
type ExitAction = '-' | 'VE' | 'GP' | 'GP_OR_VE' | 'EMU';

interface MsrRow {
  name: string;
  first: number;
  last: number;
  rdBit: BitMeaning;
  rdAction: ExitAction;
  wrBit: BitMeaning;
  wrAction: ExitAction;
}

const r = (name: string, first: number, last: number, rdBit: BitMeaning, rdAction: ExitAction, wrBit: BitMeaning, wrAction: ExitAction): MsrRow =>
  ({ name, first, last, rdBit, rdAction, wrBit, wrAction });

export const MsrIndex = {
  IA32_TSC: 0x10, IA32_APIC_BASE: 0x1b, IA32_SPEC_CTRL: 0x48, IA32_PRED_CMD: 0x49, IA32_XAPIC_DISABLE_STATUS: 0xbd,
  IA32_ARCH_CAPABILITIES: 0x10a, IA32_FLUSH_CMD: 0x10b, IA32_MISC_ENABLE: 0x1a0, IA32_DEBUGCTL: 0x1d9, IA32_PAT: 0x277, IA32_PERF_GLOBAL_CTRL: 0x38f,
  IA32_PERF_CAPABILITIES: 0x345, IA32_PERF_METRICS: 0x329, IA32_TSC_DEADLINE: 0x6e0, IA32_XSS: 0xda0, IA32_EFER: 0xc0000080,
} as const;

// msr_lookup[] in table order (ascending MSR numbers).
export const TD_MSR_TABLE: readonly MsrRow[] = [
  r('IA32_TIME_STAMP_COUNTER',          0x10, 0x10, 'F0', '-', 'F1', 'VE'),
  r('IA32_SPEC_CTRL',                   0x48, 0x48, 'F0', '-', 'F0', '-'),
  r('IA32_PRED_CMD',                    0x49, 0x49, 'F0', '-', 'F0', '-'),
  r('IA32_MKTME_PARTITIONING',          0x87, 0x87, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_SGXLEPUBKEYHASHx',            0x8c, 0x8f, 'F1', 'GP', 'F1', 'GP'),
  r('MSR_WBINVDP',                      0x98, 0x98, 'F1', 'GP', 'F1', 'GP'),
  r('MSR_WBNOINVDP',                    0x99, 0x99, 'F1', 'GP', 'F1', 'GP'),
  r('MSR_INTR_PENDING',                 0x9a, 0x9a, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_SMM_MONITOR_CTL',             0x9b, 0x9b, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_SMBASE',                      0x9e, 0x9e, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_MISC_PACKAGE_CTLS',           0xbc, 0xbc, 'F0', '-', 'F1', 'VE'),
  r('IA32_XAPIC_DISABLE_STATUS',        0xbd, 0xbd, 'F1', 'EMU', 'F0', '-'),
  r('IA32_PMCx',                        0xc1, 0xc8, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_UMWAIT_CONTROL',              0xe1, 0xe1, 'UMWAIT', 'GP', 'UMWAIT', 'GP'),
  r('IA32_ARCH_CAPABILITIES',           0x10a, 0x10a, 'F1', 'EMU', 'F0', '-'),
  r('IA32_FLUSH_CMD',                   0x10b, 0x10b, 'F0', '-', 'F0', '-'),
  r('IA32_TSX_CTRL',                    0x122, 0x122, 'TSX', 'GP', 'TSX', 'GP'),
  r('IA32_SYSENTER_CS',                 0x174, 0x174, 'F0', '-', 'F0', '-'),
  r('IA32_SYSENTER_ESP',                0x175, 0x175, 'F0', '-', 'F0', '-'),
  r('IA32_SYSENTER_EIP',                0x176, 0x176, 'F0', '-', 'F0', '-'),
  r('IA32_PERFEVTSELx',                 0x186, 0x18d, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_OVERCLOCKING_STATUS',         0x195, 0x195, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_MISC_ENABLE',                 0x1a0, 0x1a0, 'PERFMON', 'EMU', 'F1', 'VE'),
  r('MSR_OFFCORE_RSPx',                 0x1a6, 0x1a7, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_XFD',                         0x1c4, 0x1c4, 'XFD', 'GP', 'XFD', 'GP'),
  r('IA32_XFD_ERR',                     0x1c5, 0x1c5, 'XFD', 'GP', 'XFD', 'GP'),
  r('IA32_DEBUGCTL',                    0x1d9, 0x1d9, 'F1', 'EMU', 'F1', 'EMU'),
  r('IA32_PLATFORM_DCA_CAP',            0x1f8, 0x1f8, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_CPU_DCA_CAP',                 0x1f9, 0x1f9, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_DCA_0_CAP',                   0x1fa, 0x1fa, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('MSR_SLAM_ENABLE',                  0x276, 0x276, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_PAT',                         0x277, 0x277, 'F0', '-', 'F0', '-'),
  r('IA32_FIXED_CTRx',                  0x309, 0x310, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_PERF_METRICS',                0x329, 0x329, 'OTHER', 'GP', 'OTHER', 'GP'),
  r('IA32_PERF_CAPABILITIES',           0x345, 0x345, 'OTHER', 'EMU', 'PERFMON', 'GP'),
  r('IA32_FIXED_CTR_CTRL',              0x38d, 0x38d, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_PERF_GLOBAL_STATUS',          0x38e, 0x38e, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_PERF_GLOBAL_CTRL',            0x38f, 0x38f, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_PERF_GLOBAL_STATUS_RESET',    0x390, 0x390, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_PERF_GLOBAL_STATUS_SET',      0x391, 0x391, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_PERF_GLOBAL_INUSE',           0x392, 0x392, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_PEBS_ENABLE',                 0x3f1, 0x3f1, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('MSR_PEBS_MATRIX_VECT',             0x3f2, 0x3f2, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('MSR_PEBS_LD_LATENCY',              0x3f6, 0x3f6, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('MSR_PEBS_FRONTEND',                0x3f7, 0x3f7, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_VMX_BASIC',                   0x480, 0x480, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_PINBASED_CTLS',           0x481, 0x481, 'F1', 'VE', 'F1', 'GP'),
  r('IA32_VMX_PROCBASED_CTLS',          0x482, 0x482, 'F1', 'VE', 'F1', 'GP'),
  r('IA32_VMX_EXIT_CTLS',               0x483, 0x483, 'F1', 'VE', 'F1', 'GP'),
  r('IA32_VMX_ENTRY_CTLS',              0x484, 0x484, 'F1', 'VE', 'F1', 'GP'),
  r('IA32_VMX_MISC',                    0x485, 0x485, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_CR0_FIXED0',              0x486, 0x486, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_CR0_FIXED1',              0x487, 0x487, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_CR4_FIXED0',              0x488, 0x488, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_CR4_FIXED1',              0x489, 0x489, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_VMCS_ENUM',               0x48a, 0x48a, 'F1', 'VE', 'F1', 'GP'),
  r('IA32_VMX_PROCBASED_CTLS2',         0x48b, 0x48b, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_EPT_VPID_CAP',            0x48c, 0x48c, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_TRUE_PINBASED_CTLS',      0x48d, 0x48d, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_TRUE_PROCBASED_CTLS',     0x48e, 0x48e, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_TRUE_EXIT_CTLS',          0x48f, 0x48f, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_TRUE_ENTRY_CTLS',         0x490, 0x490, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_VMFUNC',                  0x491, 0x491, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_VMX_PROCBASED_CTLS3',         0x492, 0x492, 'F1', 'EMU', 'F1', 'GP'),
  r('IA32_A_PMCx',                      0x4c1, 0x4c8, 'PERFMON', 'GP', 'PERFMON', 'GP'),
  r('IA32_SGX_SVN_STATUS',              0x500, 0x500, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_RTIT_OUTPUT_BASE',            0x560, 0x560, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_OUTPUT_MASK_PTRS',       0x561, 0x561, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_CTL',                    0x570, 0x570, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_STATUS',                 0x571, 0x571, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_CR3_MATCH',              0x572, 0x572, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR0_A',                0x580, 0x580, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR0_B',                0x581, 0x581, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR1_A',                0x582, 0x582, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR1_B',                0x583, 0x583, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR2_A',                0x584, 0x584, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR2_B',                0x585, 0x585, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR3_A',                0x586, 0x586, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_RTIT_ADDR3_B',                0x587, 0x587, 'PT', 'GP', 'PT', 'GP'),
  r('IA32_DS_AREA',                     0x600, 0x600, 'F0', '-', 'F0', '-'),
  r('IA32_U_CET',                       0x6a0, 0x6a0, 'CET', 'GP', 'CET', 'GP'),
  r('IA32_S_CET',                       0x6a2, 0x6a2, 'CET', 'GP', 'CET', 'GP'),
  r('IA32_PL0_SSP',                     0x6a4, 0x6a4, 'CET', 'GP', 'CET', 'GP'),
  r('IA32_PL1_SSP',                     0x6a5, 0x6a5, 'CET', 'GP', 'CET', 'GP'),
  r('IA32_PL2_SSP',                     0x6a6, 0x6a6, 'CET', 'GP', 'CET', 'GP'),
  r('IA32_PL3_SSP',                     0x6a7, 0x6a7, 'CET', 'GP', 'CET', 'GP'),
  r('IA32_INTERRUPT_SSP_TABLE_ADDR',    0x6a8, 0x6a8, 'CET', 'GP', 'CET', 'GP'),
  r('IA32_TSC_DEADLINE',                0x6e0, 0x6e0, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_PKRS',                        0x6e1, 0x6e1, 'PKS', 'GP', 'PKS', 'GP'),
  r('Reserved for xAPIC MSRs',          0x800, 0x801, 'F1', 'GP', 'F1', 'GP'),
  r('Reserved for xAPIC MSRs',          0x804, 0x807, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_X2APIC_TPR',                  0x808, 0x808, 'F0', '-', 'F0', '-'),
  r('Reserved for xAPIC MSRs',          0x809, 0x809, 'F0', '-', 'F0', '-'),
  r('IA32_X2APIC_PPR',                  0x80a, 0x80a, 'F0', '-', 'F0', '-'),
  r('IA32_X2APIC_EOI',                  0x80b, 0x80b, 'F0', '-', 'F0', '-'),
  r('Reserved for xAPIC MSRs',          0x80c, 0x80c, 'F0', '-', 'F0', '-'),
  r('Reserved for xAPIC MSRs',          0x80e, 0x80e, 'F0', '-', 'F0', '-'),
  r('IA32_X2APIC_ISRx',                 0x810, 0x817, 'F0', '-', 'F0', '-'),
  r('IA32_X2APIC_TMRx',                 0x818, 0x81f, 'F0', '-', 'F0', '-'),
  r('IA32_X2APIC_IRRx',                 0x820, 0x827, 'F0', '-', 'F0', '-'),
  r('Reserved for xAPIC MSRs',          0x829, 0x82e, 'F1', 'GP', 'F1', 'GP'),
  r('Reserved for xAPIC MSRs',          0x831, 0x831, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_X2APIC_SELF_IPI',             0x83f, 0x83f, 'F0', '-', 'F0', '-'),
  r('Reserved for xAPIC MSRs',          0x840, 0x87f, 'F1', 'GP', 'F1', 'GP'),
  r('Reserved for xAPIC MSRs',          0x880, 0x8bf, 'F1', 'GP', 'F1', 'GP'),
  r('Reserved for xAPIC MSRs',          0x8c0, 0x8ff, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_TME_CAPABILITY',              0x981, 0x981, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_TME_ACTIVATE',                0x982, 0x982, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_TME_EXCLUDE_MASK',            0x983, 0x983, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_TME_EXCLUDE_BASE',            0x984, 0x984, 'F1', 'GP_OR_VE', 'F1', 'GP_OR_VE'),
  r('IA32_UINTR_RR',                    0x985, 0x985, 'ULI', 'GP', 'ULI', 'GP'),
  r('IA32_UINTR_HANDLER',               0x986, 0x986, 'ULI', 'GP', 'ULI', 'GP'),
  r('IA32_UINTR_STACKADJUST',           0x987, 0x987, 'ULI', 'GP', 'ULI', 'GP'),
  r('IA32_UINTR_MISC',                  0x988, 0x988, 'ULI', 'GP', 'ULI', 'GP'),
  r('IA32_UINTR_PD',                    0x989, 0x989, 'ULI', 'GP', 'ULI', 'GP'),
  r('IA32_UINTR_TT',                    0x98a, 0x98a, 'ULI', 'GP', 'ULI', 'GP'),
  r('IA32_DEBUG_INTERFACE',             0xc80, 0xc80, 'F0', '-', 'F1', 'VE'),
  r('IA32_BNDCFGS',                     0xd90, 0xd90, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_PASID',                       0xd93, 0xd93, 'F1', 'GP', 'F1', 'GP'),
  r('IA32_XSS',                         0xda0, 0xda0, 'F0', '-', 'F1', 'EMU'),
  r('IA32_LBR_INFO',                    0x1200, 0x12ff, 'LBR', 'GP', 'LBR', 'GP'),
  r('IA32_LBR_CTL',                     0x14ce, 0x14ce, 'LBR', 'GP', 'LBR', 'GP'),
  r('IA32_LBR_DEPTH',                   0x14cf, 0x14cf, 'LBR', 'GP', 'LBR', 'GP'),
  r('IA32_LBR_x_FROM_IP',               0x1500, 0x15ff, 'LBR', 'GP', 'LBR', 'GP'),
  r('IA32_LBR_x_TO_IP',                 0x1600, 0x16ff, 'LBR', 'GP', 'LBR', 'GP'),
  r('IA32_UARCH_MISC_CTL',              0x1b01, 0x1b01, 'F0', '-', 'F0', '-'),
  r('IA32_EFER',                        0xc0000080, 0xc0000080, 'F0', '-', 'F1', 'EMU'),
  r('IA32_STAR',                        0xc0000081, 0xc0000081, 'F0', '-', 'F0', '-'),
  r('IA32_LSTAR',                       0xc0000082, 0xc0000082, 'F0', '-', 'F0', '-'),
  r('IA32_FMASK',                       0xc0000084, 0xc0000084, 'F0', '-', 'F0', '-'),
  r('IA32_FSBASE',                      0xc0000100, 0xc0000100, 'F0', '-', 'F0', '-'),
  r('IA32_GSBASE',                      0xc0000101, 0xc0000101, 'F0', '-', 'F0', '-'),
  r('IA32_KERNEL_GS_BASE',              0xc0000102, 0xc0000102, 'F0', '-', 'F0', '-'),
  r('IA32_TSC_AUX',                     0xc0000103, 0xc0000103, 'F0', '-', 'F0', '-'),
];

/** True when the MSR bitmap lets the access run without a VM exit (is_msr_dynamic_bit_cleared). */
function bitCleared(td: TdModule, msr: number, bit: BitMeaning): boolean {
  const perfmon = (td.config.attributes & TdAttributes.PERFMON) !== 0n;
  const leaf7 = cpuidRegs(7, 0);
  switch (bit) {
    case 'F0': return true;
    case 'F1': return false;
    case 'PERFMON': return perfmon;
    case 'CET': return (TD_XFAM & (XFAM_CET_U | XFAM_CET_S)) !== 0n;
    case 'PT': return (TD_XFAM & XFAM_PT) !== 0n;
    case 'ULI': return (TD_XFAM & XFAM_ULI) !== 0n;
    case 'LBR': return (TD_XFAM & XFAM_LBR) !== 0n;
    case 'UMWAIT': return (leaf7[2] & CPUID7_ECX_WAITPKG) !== 0;
    case 'PKS': return (td.config.attributes & ATTRIBUTES_PKS) !== 0n;
    case 'XFD': return (cpuidRegs(0xd, 1)[0] & CPUID_D1_EAX_XFD) !== 0;
    case 'TSX': return (leaf7[1] & CPUID7_EBX_HLE) !== 0;
    // PERF_CAPABILITIES: PERFMON and PT; PERF_METRICS: PERFMON and the platform's
    // PERF_CAPABILITIES.PERF_METRICS_AVAILABLE, which the virtual CPU does not have.
    case 'OTHER': return msr === MsrIndex.IA32_PERF_CAPABILITIES && perfmon && (TD_XFAM & XFAM_PT) !== 0n;
  }
}

const XFAM_PT = 1n << 8n;
const XFAM_CET_U = 1n << 11n;
const XFAM_CET_S = 1n << 12n;
const XFAM_ULI = 1n << 14n;
const XFAM_LBR = 1n << 15n;
const ATTRIBUTES_PKS = 1n << 30n;
const CPUID1_ECX_DCA = 1 << 18;
const CPUID1_ECX_TSC_DEADLINE = 1 << 24;
const CPUID7_EBX_HLE = 1 << 4;
const CPUID7_ECX_WAITPKG = 1 << 5;
const CPUID7_ECX_TME = 1 << 13;
const CPUID7_EDX_PCONFIG = 1 << 18;
const CPUID_D1_EAX_XFD = 1 << 4;

/** The TD's CPUID as the module's cpuid_flags hold it (no dynamic bits involved). */
function cpuidRegs(leaf: number, subleaf: number): readonly [number, number, number, number] {
  const answer = tdCpuid(leaf, subleaf, { vcpuIndex: 0, cr4: 0n, in64BitMode: true });
  return answer.kind === 'answer' ? answer.regs : [0, 0, 0, 0];
}

/** rd_wr_msr_generic_case(), GP_OR_VE: #VE when the TD's CPUID enumerates the MSR's feature. */
function gpOrVe(msr: number): 'gp' | 've' {
  let enumerated: boolean;
  if (msr >= 0x1f8 && msr <= 0x1fa) enumerated = (cpuidRegs(1, 0)[2] & CPUID1_ECX_DCA) !== 0;
  else if (msr >= 0x981 && msr <= 0x984) enumerated = (cpuidRegs(7, 0)[2] & CPUID7_ECX_TME) !== 0;
  else if (msr === 0x87) enumerated = (cpuidRegs(7, 0)[3] & CPUID7_EDX_PCONFIG) !== 0;
  else enumerated = (cpuidRegs(1, 0)[2] & CPUID1_ECX_TSC_DEADLINE) !== 0; // IA32_TSC_DEADLINE
  return enumerated ? 've' : 'gp';
}

/** Reads td_rdmsr_exit emulates before the table's action (when the bitmap makes them exit). */
const EMULATED_READS = new Set<number>([
  MsrIndex.IA32_DEBUGCTL, MsrIndex.IA32_MISC_ENABLE, MsrIndex.IA32_PERF_CAPABILITIES, MsrIndex.IA32_ARCH_CAPABILITIES, MsrIndex.IA32_XAPIC_DISABLE_STATUS,
]);
/** Writes td_wrmsr_exit emulates before the table's action. */
const EMULATED_WRITES = new Set<number>([MsrIndex.IA32_XSS, MsrIndex.IA32_DEBUGCTL, MsrIndex.IA32_EFER]);

const BITMAP_LOW_END = 0x2000;
const BITMAP_HIGH_START = 0xc0000000;

/** What the TD's access to `msr` does (rd_wr_msr_generic_checks, the bitmap, then td_rdmsr_exit / td_wrmsr_exit). */
export function msrAction(td: TdModule, msr: number, write: boolean): { action: MsrAction; name: string } {
  const unlisted = { action: 've' as const, name: `MSR 0x${(msr >>> 0).toString(16)}` };
  if (!(msr < BITMAP_LOW_END || (msr >= BITMAP_HIGH_START && msr < BITMAP_HIGH_START + BITMAP_LOW_END))) return unlisted;
  const row = TD_MSR_TABLE.find((m) => msr >= m.first && msr <= m.last);
  // Not in the table: the bitmap bit stays 1 (TDH.MNG.ADDCX sets them all) and the exit is #VE.
  if (!row) return unlisted;
  const name = row.name;
  if (bitCleared(td, msr, write ? row.wrBit : row.rdBit)) return { action: 'native', name };
  if (write ? EMULATED_WRITES.has(msr) : EMULATED_READS.has(msr)) return { action: 'emulate', name };
  // rdmsr_l1_only_special_msrs: the TDCS virtual VMX values (the rows' OTHER reads).
  if (!write && VIRTUAL_VMX_READS.has(msr)) return { action: 'emulate', name };
  const action = write ? row.wrAction : row.rdAction;
  switch (action) {
    case 'VE': return { action: 've', name };
    case 'GP': return { action: 'gp', name };
    case 'GP_OR_VE': return { action: gpOrVe(msr), name };
    // FATAL_ERROR or OTHER without a handler: the module stops; the table never gets here.
    default: throw new Error(`msr_config_lookup: ${name} exits (${write ? 'write' : 'read'}) with action ${action}`);
  }
}

/**
 * MSRs whose native value the emulator's CPU keeps (Unicorn/QEMU), because its instructions use
 * them (the page walk's PAT, SYSENTER's, SYSCALL's and SWAPGS's MSRs, the segment bases); the
 * others live in the module.
 */
export const EMULATOR_BACKED = new Set<number>([
  MsrIndex.IA32_PAT, 0x174, 0x175, 0x176, 0xc0000081, 0xc0000082, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103,
]);

/**
 * Write-only command MSRs (SDM Vol. 4 Table 2-2: IA32_PRED_CMD bit 0 IBPB, IA32_FLUSH_CMD bit 0
 * L1D_FLUSH, both WO): the TD runs them natively, so the CPU itself answers RDMSR, and WRMSR with
 * a reserved bit set, with #GP(0). The command has nothing to act on in the model.
 */
const WRITE_ONLY_COMMANDS = new Set<number>([MsrIndex.IA32_PRED_CMD, MsrIndex.IA32_FLUSH_CMD]);
const COMMAND_BITS = 1n;
/** Read-only MSRs whose writes run natively (bitmap bit 0): the CPU's #GP(0) (SDM Vol. 4: both RO). */
const READ_ONLY_NATIVE = new Set<number>([MsrIndex.IA32_XAPIC_DISABLE_STATUS, MsrIndex.IA32_ARCH_CAPABILITIES]);

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
/** ia32_debugctl_t (msr_defs.h): bits 5:3 and 63:16 reserved; 6 TR, 7 BTS, 13 EN_UNCORE_PMI. */
const DEBUGCTL_RESERVED = (0x7n << 3n) | (0xffff_ffff_ffffn << 16n);
const DEBUGCTL_TR = 1n << 6n;
const DEBUGCTL_BTS = 1n << 7n;
const DEBUGCTL_EN_UNCORE_PMI = 1n << 13n;
/** IA32_XAPIC_DISABLE_STATUS.LEGACY_XAPIC_DISABLED: a TD's APIC is always x2APIC. */
const XAPIC_DISABLE_STATUS_LEGACY_XAPIC_DISABLED = 1n;
/**
 * IA32_XSS bits the CPU supports (supervisor state components: PT 8, PASID 10, CET 11-12, HDC 13,
 * UINTR 14, LBR 15, HWP 16); wrmsr_ia32_xss also requires them in XFAM.
 */
const XSS_SUPPORTED = 0x1fd00n;
const MASK32 = 0xffffffffn;

type MsrExit = Extract<VmExit, { kind: 'rdmsr' | 'wrmsr' }>;

/** td_rdmsr_exit / td_wrmsr_exit for one guest RDMSR or WRMSR. */
export function handleMsr(td: TdModule, exit: MsrExit): TdStep {
  const write = exit.kind === 'wrmsr';
  const msr = exit.msr >>> 0;
  const { action, name } = msrAction(td, msr, write);
  td.record(write ? 'wrmsr' : 'rdmsr', { msr, name, action, rip: exit.rip });
  const ve = (): TdStep =>
    td.deliverVe({ exitReason: write ? ExitReason.WRMSR : ExitReason.RDMSR, exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: exit.length, instructionInfo: 0 });
  if (action === 've') return ve();
  if (action === 'gp') return td.injectException(GP_VECTOR, 0n);
  const vcpu = td.machine.vcpu;
  if (action === 'native') {
    const cpuRefuses = WRITE_ONLY_COMMANDS.has(msr) ? !write || (exit.value & ~COMMAND_BITS) !== 0n : write && READ_ONLY_NATIVE.has(msr);
    if (cpuRefuses) return td.injectException(GP_VECTOR, 0n);
  }
  if (write) {
    const outcome = action === 'emulate' ? emulateWrite(td, msr, exit.value) : nativeWrite(td, msr, exit.value);
    if (outcome === 've') return ve();
    if (outcome === 'gp') return td.injectException(GP_VECTOR, 0n);
  } else {
    const value = action === 'emulate' ? emulatedRead(td, msr) : nativeRead(td, msr);
    vcpu.regs.rax = value & MASK32;
    vcpu.regs.rdx = value >> 32n;
  }
  vcpu.complete(exit);
  return TD_RESUME;
}

function nativeWrite(td: TdModule, msr: number, value: bigint): 'done' {
  if (WRITE_ONLY_COMMANDS.has(msr)) return 'done';
  if (EMULATOR_BACKED.has(msr)) td.machine.vcpu.writeMsr(msr, value);
  else td.msrValues.set(msr, value);
  return 'done';
}

function emulateWrite(td: TdModule, msr: number, value: bigint): 'done' | 've' | 'gp' {
  const vcpu = td.machine.vcpu;
  switch (msr) {
    case MsrIndex.IA32_EFER: {
      // wrmsr_ia32_efer: LMA is read-only; only SCE may change, any other change is #VE.
      const old = vcpu.readSpecial('efer');
      const updated = (value & ~EFER_LMA) | (old & EFER_LMA);
      if (((old ^ updated) & ~EFER_SCE) !== 0n) return 've';
      vcpu.writeSpecial('efer', updated);
      return 'done';
    }
    case MsrIndex.IA32_DEBUGCTL: {
      // wrmsr_ia32_debugctl: reserved bits #GP; TR without BTS #VE; EN_UNCORE_PMI keeps its old
      // value, which in the model is 0: nothing else writes DEBUGCTL (the host of a debug TD could).
      if ((value & DEBUGCTL_RESERVED) !== 0n) return 'gp';
      if ((value & DEBUGCTL_TR) !== 0n && (value & DEBUGCTL_BTS) === 0n) return 've';
      td.msrValues.set(msr, value & ~DEBUGCTL_EN_UNCORE_PMI);
      return 'done';
    }
    case MsrIndex.IA32_XSS:
      // wrmsr_ia32_xss: every set bit must be supported by the CPU and in XFAM.
      if ((value & ~(XSS_SUPPORTED & TD_XFAM)) !== 0n) return 'gp';
      td.msrValues.set(msr, value);
      return 'done';
    default: throw new Error(`no emulated write for MSR 0x${msr.toString(16)}`);
  }
}

function emulatedRead(td: TdModule, msr: number): bigint {
  switch (msr) {
    case MsrIndex.IA32_MISC_ENABLE:
      // Exits only without PERFMON (DYN_PERFMON): performance monitoring and PEBS reported unavailable.
      return (MISC_ENABLE_NATIVE & ~MISC_ENABLE_PERFMON_AVAILABLE) | MISC_ENABLE_PEBS_UNAVAILABLE;
    case MsrIndex.IA32_DEBUGCTL: return td.msrValues.get(msr) ?? 0n;
    case MsrIndex.IA32_XAPIC_DISABLE_STATUS: return XAPIC_DISABLE_STATUS_LEGACY_XAPIC_DISABLED;
    // rdmsr_ia32_perf_capabilities: 0 without PERFMON; with it, the platform's value with bit 16
    // cleared. The virtual CPU's IA32_PERF_CAPABILITIES, like its IA32_ARCH_CAPABILITIES (from which
    // TDH.MNG.INIT derives the TD's value by clearing bits), enumerates nothing: both read 0.
    case MsrIndex.IA32_PERF_CAPABILITIES:
    case MsrIndex.IA32_ARCH_CAPABILITIES:
      return 0n;
    default: {
      const virtualVmx = VIRTUAL_VMX_READS.has(msr) ? virtualVmxMsrs(td).get(msr) : undefined;
      if (virtualVmx === undefined) throw new Error(`no emulated read for MSR 0x${msr.toString(16)}`);
      return virtualVmx;
    }
  }
}

function nativeRead(td: TdModule, msr: number): bigint {
  const vcpu = td.machine.vcpu;
  switch (msr) {
    // The TSC counts guest instructions, so a run stays a pure function of its input.
    case MsrIndex.IA32_TSC: return vcpu.instructions;
    case MsrIndex.IA32_EFER: return vcpu.readSpecial('efer');
    // With PERFMON the TD reads the MSR itself.
    case MsrIndex.IA32_MISC_ENABLE: return MISC_ENABLE_NATIVE;
    default:
      return EMULATOR_BACKED.has(msr) ? vcpu.readMsr(msr) : td.msrValues.get(msr) ?? 0n;
  }
}
