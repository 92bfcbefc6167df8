// The virtual IA32_VMX_* capability MSRs a TD reads: TDH.MNG.INIT computes them once into the TDCS
// (`virt_msr_helpers.c` init_virt_ia32_vmx_msrs, the calc_virt_ia32_vmx_* functions of
// `virt_msr_helpers.h`) and td_rdmsr_exit answers an L1 RDMSR of them from there
// (`td_msr_access.c` rdmsr_l1_only_special_msrs), intel/tdx-module TDX_1.5.01. They enumerate what
// the TD, as L1 VMM of TD partitioning, may set in its L2 VMCSs: the module's L2 VMCS initial
// values and L1 write masks (`vmcs_defs.h` td_l2_vmcs_ctl_values_e), the TD's ATTRIBUTES, XFAM and
// CPUID, and some values TDH.SYS.INIT sampled from the platform's own VMX MSRs (PLATFORM below).
import { TD_XFAM, tdCpuid } from './td-cpuid.js';
import { TdAttributes, type TdModule } from './td-module.js';

/**
 * The TDCS virtual VMX MSR fields in tdr_tdcs_fields_lookup.c order (VIRTUAL_IA32_VMX_*). All but
 * EXIT_CTLS2 are answered to RDMSR; EXIT_CTLS2 (0x493) has a field that init_virt_ia32_vmx_msrs
 * leaves 0, and its RDMSR is outside msr_lookup[], so it is a #VE.
 */
export const TDCS_VIRTUAL_VMX_MSRS: readonly { readonly msr: number; readonly name: string }[] = [
  { msr: 0x480, name: 'BASIC' }, { msr: 0x485, name: 'MISC' }, { msr: 0x486, name: 'CR0_FIXED0' },
  { msr: 0x487, name: 'CR0_FIXED1' }, { msr: 0x488, name: 'CR4_FIXED0' }, { msr: 0x489, name: 'CR4_FIXED1' },
  { msr: 0x48b, name: 'PROCBASED_CTLS2' }, { msr: 0x48c, name: 'EPT_VPID_CAP' }, { msr: 0x48d, name: 'TRUE_PINBASED_CTLS' },
  { msr: 0x48e, name: 'TRUE_PROCBASED_CTLS' }, { msr: 0x48f, name: 'TRUE_EXIT_CTLS' }, { msr: 0x490, name: 'TRUE_ENTRY_CTLS' },
  { msr: 0x491, name: 'VMFUNC' }, { msr: 0x492, name: 'PROCBASED_CTLS3' }, { msr: 0x493, name: 'EXIT_CTLS2' },
];
const EXIT_CTLS2 = 0x493;
/** The MSRs rdmsr_l1_only_special_msrs answers (for the L1 VMM, vm_id 0: every TD without L2 VMs). */
export const VIRTUAL_VMX_READS: ReadonlySet<number> = new Set(TDCS_VIRTUAL_VMX_MSRS.map((m) => m.msr).filter((msr) => msr !== EXIT_CTLS2));

const bit = (n: number): bigint => 1n << BigInt(n);
const MASK32 = 0xffff_ffffn;

/**
 * The platform's VMX MSR values the derivation reads (TDH.SYS.INIT check_l2_vmx_msrs samples them).
 * They belong to the host CPU; the model fixes them for its virtual CPU (td-cpuid.ts) as follows:
 * - the TRUE control MSRs' must-be-1 bits (bits 31:0) are the SDM's "default1" controls (Vol. 3C
 *   §24.6.1, §24.6.2, §24.7.1, §24.8.1: pin 1, 2, 4; processor-based 1, 4-6, 8, 13-16, 26; exit 0-8,
 *   10, 11, 13, 14, 16, 17; entry 0-8, 12) less the four a TRUE MSR lets be 0 on current parts —
 *   CR3-load/-store exiting and save/load debug controls — the set Linux KVM reports to its own L1
 *   (nested.c nested_vmx_setup_*_ctls: *_ALWAYSON_WITHOUT_TRUE_MSR with those cleared);
 * - secondary controls have no default1 bits (SDM §24.6.2: "reserved to 0"), and ENCLV exiting may
 *   not be 1: the virtual CPU has no SGX (CPUID 7.0:EBX bit 2 clear);
 * - IA32_VMX_CR4_FIXED0 is CR4.VMXE alone; IA32_VMX_CR4_FIXED1 the CR4 bits the virtual CPU's CPUID
 *   enumerates (VME…OSXMMEXCPT 10:0, VMXE 13, PCIDE 17, OSXSAVE 18; no UMIP, LA57, FSGSBASE, SMEP,
 *   SMAP, PKE, CET, PKS or UINTR);
 * - IA32_VMX_EPT_VPID_CAP reports an HLAT prefix size of 0, and the CPU has no WAITPKG (CPUID
 *   7.0:ECX bit 5 clear), which TDH.SYS.INIT records as global waitpkg_supported.
 * These values pass every TDH.SYS.INIT check of check_l2_vmx_msrs (the must-be-1 bits lie in each
 * control's L2 UNKNOWN mask and outside its VARIABLE mask).
 */
const PLATFORM = {
  truePinbasedMustBe1: bit(1) | bit(2) | bit(4),
  trueProcbasedMustBe1: bit(1) | bit(4) | bit(5) | bit(6) | bit(8) | bit(13) | bit(14) | bit(26),
  trueExitMustBe1: 0x36dffn & ~bit(2),
  trueEntryMustBe1: 0x11ffn & ~bit(2),
  enclvExitingAllowed: false,
  cr4Fixed0: bit(13),
  cr4Fixed1: 0x7ffn | bit(13) | bit(17) | bit(18),
  hlatPrefixSize: 0n,
  waitpkg: false,
} as const;

// vmcs_defs.h td_l2_vmcs_ctl_values_e: L2 VMCS initial values and L1 VMM write masks.
const PINBASED_CTLS_L2_INIT = 0x00000029n;
const PINBASED_CTLS_L1_WR_MASK = 0x00000000n;
const PROCBASED_CTLS_L2_INIT = 0x91220088n;
const PROCBASED_CTLS_L1_WR_MASK = 0x48d99a04n;
const PROCBASED_CTLS2_L2_INIT = 0x1338b3fan;
const PROCBASED_CTLS2_L1_WR_MASK = 0x0c513e0cn;
const PROCBASED_CTLS3_L2_INIT = 0x80n;
const PROCBASED_CTLS3_L1_WR_MASK = 0x0en;
const EXIT_CTLS_L2_INIT = 0x1f3c8204n;
const EXIT_CTLS_L1_WR_MASK = 0x00000000n;
const ENTRY_CTLS_L2_INIT = 0x003ec004n;
const ENTRY_CTLS_L1_WR_MASK = 0x00000200n;
const GUEST_CR0_L2_INIT = 0x21n;
const GUEST_CR0_L2_VARIABLE = 0x8005001fn;
const GUEST_CR4_L2_INIT = 0x2040n;
const CR4_L1_VMM_WRITE_MASK = 0x03ff1fbfn;

// Control bits (vmcs_defs.h, td_vmcs_init.h).
const PROC_MWAIT_EXITING = bit(10);
const PROC_RDPMC_EXITING = bit(11);
const PROC_MONITOR_EXITING = bit(29);
const PROC2_EN_GUEST_WAIT_PAUSE = bit(26);
const PROC2_EN_PCONFIG = bit(27);
const PROC2_EN_ENCLV_EXITING = bit(28);
const EXIT_LOAD_PERF_GLBL_CTRL = bit(12);
const EXIT_SAVE_PERF_GLBL_CTRL = bit(30);
const ENTRY_LOAD_PERF_GLBL_CTRL = bit(13);
const ENTRY_LOAD_PKRS = bit(22);
// CR4 (x86_defs.h ia32_cr4_t) and XFAM (ia32_xcr0_t) bits.
const CR4_KEYLOCKER = bit(19);
const CR4_PKE = bit(22);
const CR4_CET = bit(23);
const CR4_PKS = bit(24);
const CR4_UINTR = bit(25);
const XFAM_PK = bit(9);
const XFAM_CET_U = bit(11);
const XFAM_CET_S = bit(12);
const XFAM_ULI = bit(14);
const ATTRIBUTES_PKS = bit(30);

const setIf = (value: bigint, mask: bigint, on: boolean): bigint => (on ? value | mask : value & ~mask);

/** calc_allowed32_vmx_ctls: must-be-1 (bits 31:0) = init bits L1 may not change; may-be-1 (63:32) = init | writable. */
function allowed32(init: bigint, writable: bigint): bigint {
  return (((init | writable) & MASK32) << 32n) | (init & ~writable & MASK32);
}

/** calc_allowed64_vmx_ctls for the CRx_FIXED pairs: FIXED0 = init bits L1 may not change, FIXED1 = init | writable. */
function fixedPair(init: bigint, writable: bigint): [bigint, bigint] {
  return [init & ~writable, init | writable];
}

/** The TD's CPUID flags TDH.MNG.INIT keeps in TDCS cpuid_flags, from its final CPUID values. */
function cpuidFlags(): { monitorMwait: boolean; waitpkg: boolean; mktme: boolean } {
  const regs = (leaf: number) => {
    const a = tdCpuid(leaf, 0, { vcpuIndex: 0, cr4: 0n, in64BitMode: true });
    return a.kind === 'answer' ? a.regs : [0, 0, 0, 0] as const;
  };
  return {
    monitorMwait: (regs(1)[2] & (1 << 3)) !== 0, // CPUID.1:ECX.MONITOR
    waitpkg: (regs(7)[2] & (1 << 5)) !== 0, // CPUID.7.0:ECX.WAITPKG
    mktme: (regs(7)[3] & (1 << 18)) !== 0, // CPUID.7.0:EDX.PCONFIG
  };
}

/** The TDCS virtual VMX MSR values of `td` (init_virt_ia32_vmx_msrs), keyed by MSR index. */
export function virtualVmxMsrs(td: TdModule): ReadonlyMap<number, bigint> {
  const attributes = td.config.attributes;
  const perfmon = (attributes & TdAttributes.PERFMON) !== 0n;
  const debug = (attributes & TdAttributes.DEBUG) !== 0n;
  const pks = (attributes & ATTRIBUTES_PKS) !== 0n;
  const xfam = TD_XFAM;
  const flags = cpuidFlags();

  // calc_virt_ia32_vmx_basic: VM-exit info on INS/OUTS (54), TRUE MSRs (55), no-error-code delivery (56);
  // no VMCS revision, size or memory type.
  const basic = bit(54) | bit(55) | bit(56);
  // calc_virt_ia32_vmx_misc: unrestricted guest (5), HLT (6) and shutdown (7) activity states, PT in
  // VMX (14), 4 CR3 targets (24:16), VMWRITE to any field (29), injection with instruction length 0 (30).
  const misc = bit(5) | bit(6) | bit(7) | bit(14) | (4n << 16n) | bit(29) | bit(30);

  // The L2 VMCS initial values (check_allowed_vmx_ctls: init | platform must-be-1; then the
  // calc_l2_vmcs_*_init TD-specific bits).
  const pinInit = PINBASED_CTLS_L2_INIT | PLATFORM.truePinbasedMustBe1;
  let procInit = PROCBASED_CTLS_L2_INIT | PLATFORM.trueProcbasedMustBe1;
  procInit = setIf(procInit, PROC_MWAIT_EXITING | PROC_MONITOR_EXITING, !flags.monitorMwait);
  procInit = setIf(procInit, PROC_RDPMC_EXITING, !perfmon);
  // check_l2_vmx_msrs: EN_GUEST_WAIT_PAUSE from the platform's WAITPKG, ENCLV exiting cleared when not allowed-1.
  let proc2Init = setIf(PROCBASED_CTLS2_L2_INIT, PROC2_EN_GUEST_WAIT_PAUSE, PLATFORM.waitpkg);
  if (!PLATFORM.enclvExitingAllowed) proc2Init &= ~PROC2_EN_ENCLV_EXITING;
  proc2Init = setIf(proc2Init, PROC2_EN_GUEST_WAIT_PAUSE, flags.waitpkg);
  proc2Init = setIf(proc2Init, PROC2_EN_PCONFIG, flags.mktme);
  const perfGlobal = perfmon || debug;
  let exitInit = EXIT_CTLS_L2_INIT | PLATFORM.trueExitMustBe1;
  exitInit = setIf(exitInit, EXIT_LOAD_PERF_GLBL_CTRL | EXIT_SAVE_PERF_GLBL_CTRL, perfGlobal);
  let entryInit = ENTRY_CTLS_L2_INIT | PLATFORM.trueEntryMustBe1;
  entryInit = setIf(entryInit, ENTRY_LOAD_PERF_GLBL_CTRL, perfGlobal);
  entryInit = setIf(entryInit, ENTRY_LOAD_PKRS, pks || debug);

  // The L1 write masks narrowed to the TD's configuration.
  const procWritable = setIf(PROCBASED_CTLS_L1_WR_MASK, PROC_RDPMC_EXITING, perfmon);
  let proc2Writable = setIf(PROCBASED_CTLS2_L1_WR_MASK, PROC2_EN_GUEST_WAIT_PAUSE, flags.waitpkg);
  proc2Writable = setIf(proc2Writable, PROC2_EN_PCONFIG, flags.mktme);

  // calc_virt_ia32_vmx_ept_vpid_cap: execute-only (0), 2M (16) and 1G (17) pages, advanced VM-exit
  // information (22), supervisor shadow stack (23) with XFAM.CET_S, the platform's HLAT prefix size (53:48).
  const eptVpidCap = bit(0) | bit(16) | bit(17) | bit(22) | ((xfam & XFAM_CET_S) !== 0n ? bit(23) : 0n) | (PLATFORM.hlatPrefixSize << 48n);

  // calc_base_l2_cr4_write_mask: the L1 write mask less what the platform fixes and what XFAM and
  // ATTRIBUTES do not enable (Key Locker never).
  let cr4Writable = CR4_L1_VMM_WRITE_MASK & ~PLATFORM.cr4Fixed0 & PLATFORM.cr4Fixed1;
  if ((xfam & XFAM_PK) === 0n) cr4Writable &= ~CR4_PKE;
  if ((xfam & XFAM_CET_S) === 0n || (xfam & XFAM_CET_U) === 0n) cr4Writable &= ~CR4_CET;
  if ((xfam & XFAM_ULI) === 0n) cr4Writable &= ~CR4_UINTR;
  cr4Writable &= ~CR4_KEYLOCKER;
  if (!pks) cr4Writable &= ~CR4_PKS;
  const [cr0Fixed0, cr0Fixed1] = fixedPair(GUEST_CR0_L2_INIT, GUEST_CR0_L2_VARIABLE);
  const [cr4Fixed0, cr4Fixed1] = fixedPair(GUEST_CR4_L2_INIT, cr4Writable);

  return new Map<number, bigint>([
    [0x480, basic],
    [0x485, misc],
    [0x486, cr0Fixed0],
    [0x487, cr0Fixed1],
    [0x488, cr4Fixed0],
    [0x489, cr4Fixed1],
    [0x48b, allowed32(proc2Init, proc2Writable)],
    [0x48c, eptVpidCap],
    [0x48d, allowed32(pinInit, PINBASED_CTLS_L1_WR_MASK)],
    [0x48e, allowed32(procInit, procWritable)],
    [0x48f, allowed32(exitInit, EXIT_CTLS_L1_WR_MASK)],
    [0x490, allowed32(entryInit, ENTRY_CTLS_L1_WR_MASK)],
    [0x491, 0n], // calc_virt_ia32_vmx_vmfunc: no VM functions
    // calc_virt_ia32_vmx_procbased_ctls3: allowed-1 settings only (64 bits), init | L1 write mask.
    [0x492, PROCBASED_CTLS3_L2_INIT | PROCBASED_CTLS3_L1_WR_MASK],
    [EXIT_CTLS2, 0n],
  ]);
}
