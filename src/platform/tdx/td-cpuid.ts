// CPUID in a TD is answered by the TDX module itself, from its table (`td_cpuid.c` td_cpuid_exit,
// table `include/auto_gen/cpuid_configurations.c`, intel/tdx-module TDX_1.5.01). Only a leaf that
// is missing from the table, or marked faulting there, raises #VE (exit reason 10) so that the
// guest can ask the VMM (Linux tdx.c handle_cpuid does so for the hypervisor range 0x4000_0000).
//
// The module's answer is the CPU's native value filtered by the TD's CPUID configuration, with
// the table's fixed-1 bits set and fixed-0 bits clear. The model's virtual CPU is a small
// Sapphire-Rapids-like part: `native` below gives the leaves it has features in; every other
// answered leaf reads as 0 (feature absent) apart from its fixed-1 bits. Dynamic bits the module
// computes per call (APIC ID, OSXSAVE, OSPKE, SYSCALL in 64-bit mode) are computed likewise.
import type { VmExit } from '../../cpu/exits.js';
import { CR4_OSXSAVE } from '../../cpu/registers.js';
import { TD_RESUME, type TdModule, type TdStep } from './td-module.js';
import { ExitReason } from './ve.js';

/** EAX, EBX, ECX, EDX. */
export type CpuidRegs = readonly [number, number, number, number];

export interface CpuidEntry {
  leaf: number;
  /** Undefined: the entry answers every subleaf (CPUID_SUBLEAF_NA). */
  subleaf?: number;
  /** The table marks it faulting: #VE. */
  faulting?: true;
  /** The module's fixed-1 bits (`fixed1`) and fixed-0-or-dynamic bits (`fixed0_or_dynamic`). */
  fixed1?: CpuidRegs;
  fixed0?: CpuidRegs;
  /** The virtual CPU's native value before filtering (absent: 0). */
  native?: CpuidRegs;
}

const ANY = undefined;
const e = (leaf: number, subleaf: number | undefined, more: Omit<CpuidEntry, 'leaf' | 'subleaf'> = {}): CpuidEntry =>
  ({ leaf, ...(subleaf === undefined ? {} : { subleaf }), ...more });

/** The XSAVE area's legacy region (512 bytes) and header (64): all that x87 and SSE state needs. */
const XSAVE_LEGACY_AND_HEADER_BYTES = 576;

/** "GenuineIntel" in EBX, EDX, ECX. */
const GENUINE_INTEL: CpuidRegs = [0, 0x756e6547, 0x6c65746e, 0x49656e69];

// Leaves and subleaves of cpuid_lookup[] in cpuid_configurations.c, in that order; fixed bits copied
// from there for the leaves the virtual CPU has values in.
export const TD_CPUID_TABLE: readonly CpuidEntry[] = [
  e(0x0, ANY, { native: GENUINE_INTEL, fixed1: [0x23, 0, 0, 0], fixed0: [0xffffffdc, 0, 0, 0] }),
  e(0x1, ANY, {
    // Family 6 model 0x8F stepping 8; CLFLUSH 64 bytes; SSE3…SSE4.2, MOVBE, POPCNT, AES, XSAVE,
    // RDRAND, PCID, x2APIC, TSC-deadline; FPU…SSE2/HTT. Without FMA, AVX and F16C (ECX bits 12,
    // 28, 29): the emulated CPU raises #UD for their instructions (measured: vfmadd132ps,
    // vaddps ymm, vcvtph2ps), so the model's TD is one configured without AVX in XFAM, which is
    // valid, and for which TDH.MNG.INIT clears exactly those three bits (cpuid_configurations.c
    // xfam_mask_0x1_0xffffffff[2]; TD_XFAM below).
    native: [0x000806f8, 0x00000800, 0x47fa2203, 0x1f8bfbff],
    fixed1: [0, 0, 0x80000000, 0x00000200], fixed0: [0xf000c000, 0xff0000ff, 0x08010060, 0x40120400],
  }),
  e(0x3, ANY), e(0x4, 0), e(0x4, 1), e(0x4, 2), e(0x4, 3), e(0x4, 4), e(0x5, ANY),
  e(0x6, ANY, { faulting: true }),
  e(0x7, 0, {
    // BMI1, ERMS, RDSEED. Only some leaf-7 EBX features are configurable per TD (allow_direct in
    // cpuid_configurations.c; AVX2 also goes with XFAM's AVX bit, which this TD lacks). Others
    // (FSGSBASE, SMEP, INVPCID, SMAP, CLFLUSHOPT, CLWB, SHA) are native bits TDH.SYS.INIT verifies,
    // which every real TD reads as 1: leaving them out is a deliberate deviation from any real
    // platform, listed in test/unit/tdx/td-cpuid-table.test.ts. All of these are left out because
    // the emulated CPU (Unicorn 2.1.4's default x86-64 model) cannot execute them (measured):
    // FSGSBASE, AVX2, ADX, CLFLUSHOPT, SHA, INVPCID, CLWB
    // and SMAP's STAC/CLAC raise #UD, SMEP is kept in its CR4 but the page walk does not enforce it
    // (native/src/page_walk.h), and BMI2's SHLX/SARX/SHRX raise #UD
    // whenever CR4.OSFXSR is clear (QEMU decodes their 66/F2/F3 VEX forms as SSE). Linux's
    // decompressor clears CR4.OSFXSR in startup_64 and its zstd then takes the BMI2 path if CPUID
    // offers it; the kernel proper flushes its TLB with INVPCID if offered (issue 15).
    // EAX: the last subleaf, 2, which TDH.SYS.INIT verifies in full (verify_mask EAX 0xFFFFFFFF).
    native: [2, 0x00040208, 0, 0], fixed0: [0, 0x00404006, 0x643e8010, 0x002298c3],
  }),
  e(0x7, 1), e(0x7, 2), e(0x8, ANY), e(0xa, ANY),
  // XSAVE state: x87 and SSE, the TD's XFAM (TDH.MNG.INIT masks EAX with xfam_mask_0xd_0x0); ECX
  // is calculate_xsave_area_max_size(XFAM), the legacy region and header, 512 + 64 bytes; EBX is
  // dynamic (tdCpuid).
  e(0xd, 0, { native: [0x3, 0, XSAVE_LEGACY_AND_HEADER_BYTES, 0], fixed0: [0xfff9fd18, 0xffffffff, 0, 0xffffffff] }),
  // XSAVEOPT only. TDH.SYS.INIT verifies XSAVEC, XGETBV with ECX = 1 and XSAVES too (verify_mask
  // EAX 0xF), so every real TD reads them as 1; they are left out because the emulated CPU cannot
  // run them (measured: XSAVEC and XSAVES raise #UD, XGETBV with ECX = 1 #GP(0)), a deliberate
  // deviation listed in test/unit/tdx/td-cpuid-table.test.ts. XFD (bit 4) is cleared for an XFAM
  // without AMX; the supervisor components in ECX (CET, PT, ...) by XFAM (xfam_mask_0xd_0x1).
  e(0xd, 1, { native: [0x1, 0, 0, 0], fixed0: [0xffffffe0, 0xffffffff, 0xffff26ff, 0xffffffff] }),
  // Subleaves 2..18 describe components XFAM lacks: TDH.MNG.INIT zeroes them.
  ...Array.from({ length: 0x11 }, (_, i) => e(0xd, i + 2)),
  e(0xe, ANY), e(0x11, ANY), e(0x12, ANY), e(0x13, ANY), e(0x14, 0), e(0x14, 1),
  // TSC / core crystal clock: 25 MHz crystal (fixed), ratio 100 → a 2.5 GHz TSC.
  e(0x15, ANY, { native: [0, 100, 0, 0], fixed1: [1, 0, 0x017d7840, 0], fixed0: [0xfffffffe, 0, 0xfe8287bf, 0xffffffff] }),
  e(0x19, ANY), e(0x1c, ANY), e(0x1d, 0), e(0x1d, 1), e(0x1e, ANY),
  ...Array.from({ length: 6 }, (_, i) => e(0x1f, i, { faulting: true })),
  e(0x20, ANY),
  // "IntelTDX    " is all fixed-1 bits.
  e(0x21, 0, { fixed1: [0, 0x65746e49, 0x20202020, 0x5844546c], fixed0: [0xffffffff, 0x9a8b91b6, 0xdfdfdfdf, 0xa7bbab93] }),
  e(0x22, ANY), e(0x23, 0), e(0x23, 1), e(0x23, 2), e(0x23, 3),
  e(0x80000000, ANY, { fixed1: [0x80000008, 0, 0, 0], fixed0: [0x7ffffff7, 0xffffffff, 0xffffffff, 0xffffffff] }),
  // LAHF, LZCNT, PREFETCHW; NX, 1G pages, RDTSCP, LM (SYSCALL is dynamic).
  e(0x80000001, ANY, { native: [0, 0, 0x00000121, 0x2c100000], fixed0: [0xffffffff, 0xffffffff, 0xfffffede, 0xd3efffff] }),
  e(0x80000006, ANY, { faulting: true }),
  // Invariant TSC, which TDH.SYS.INIT verifies (verify_mask EDX 0x100): the TD's virtual TSC
  // runs at the configured frequency whatever the power state (td-cpuid's leaf 0x15).
  e(0x80000007, ANY, { native: [0, 0, 0, 0x100], fixed0: [0xffffffff, 0xffffffff, 0xffffffff, 0xfffffeff] }),
  // 52 physical, 48 linear address bits.
  e(0x80000008, ANY, { native: [0x00003034, 0, 0, 0], fixed0: [0xffff0000, 0xfffffdff, 0xffffffff, 0xffffffff] }),
];

/**
 * The TD's XFAM as its CPUID answers imply it: the module clears CPUID(1).ECX.AVX unless XFAM[2]
 * is set (tdh_mng_init.c apply_cpuid_xfam_masks), leaf 0xD enumerates no other state component,
 * and x87 and SSE (bits 1:0) are in every XFAM.
 */
export const TD_XFAM: bigint = (() => {
  const leaf1 = TD_CPUID_TABLE.find((e) => e.leaf === 1)!;
  const CPUID1_ECX_AVX = 1 << 28;
  const avx = ((leaf1.native?.[2] ?? 0) & ~(leaf1.fixed0?.[2] ?? 0) & CPUID1_ECX_AVX) !== 0;
  return 0x3n | (avx ? 0x4n : 0n);
})();

/** The last leaf of each range the module virtualizes (CPUID_LAST_BASE_LEAF; 0x8000_0000's fixed EAX). */
export const CPUID_LAST_BASE_LEAF = 0x23;
export const CPUID_LAST_EXTENDED_LEAF = 0x80000008;
const HYPERVISOR_RANGE = [0x40000000, 0x4fffffff] as const;

/** What the guest's vCPU state contributes to the dynamic bits. */
export interface CpuidDynamicState {
  vcpuIndex: number;
  cr4: bigint;
  in64BitMode: boolean;
}

export type CpuidAnswer = { kind: 've' } | { kind: 'answer'; regs: CpuidRegs };

const CR4_PKE = 1n << 22n;

/** td_cpuid_exit: the module's answer to CPUID(`leaf`, `subleaf`), or #VE. */
export function tdCpuid(leaf: number, subleaf: number, state: CpuidDynamicState): CpuidAnswer {
  leaf >>>= 0;
  subleaf >>>= 0;
  // A leaf above the maximum of its range is treated as the maximum base leaf (not the hypervisor range).
  const inHypervisorRange = leaf >= HYPERVISOR_RANGE[0] && leaf <= HYPERVISOR_RANGE[1];
  if (!inHypervisorRange && (leaf > CPUID_LAST_EXTENDED_LEAF || (leaf > CPUID_LAST_BASE_LEAF && leaf < 0x80000000))) {
    leaf = CPUID_LAST_BASE_LEAF;
  }
  // get_cpuid_lookup_entry: the leaf with that subleaf, or an entry for any subleaf.
  const entry = TD_CPUID_TABLE.find((t) => t.leaf === leaf && (t.subleaf === undefined || t.subleaf === subleaf));
  if (!entry || entry.faulting) return { kind: 've' };
  const regs = [0, 1, 2, 3].map((i) => ((((entry.native?.[i] ?? 0) & ~(entry.fixed0?.[i] ?? 0)) | (entry.fixed1?.[i] ?? 0)) >>> 0));
  switch (leaf) {
    case 0x1: // INITIAL_APIC_ID = VCPU_INDEX; OSXSAVE = CR4.OSXSAVE
      regs[1] = ((regs[1]! & 0x00ffffff) | (state.vcpuIndex << 24)) >>> 0;
      regs[2] = (regs[2]! | ((state.cr4 & CR4_OSXSAVE) !== 0n ? 1 << 27 : 0)) >>> 0;
      break;
    case 0x7: // OSPKE = CR4.PKE
      if (subleaf === 0) regs[2] = (regs[2]! | ((state.cr4 & CR4_PKE) !== 0n ? 1 << 4 : 0)) >>> 0;
      break;
    case 0xd:
      // The XSAVE area size for the state enabled in XCR0 (subleaf 0) or XCR0 | IA32_XSS (1), read
      // from the CPU (td_cpuid_exit). XSETBV and IA32_XSS writes are bounded by XFAM = x87 | SSE,
      // whose state lies in the legacy region, so that size is always the legacy region and header.
      if (subleaf <= 1) regs[1] = XSAVE_LEGACY_AND_HEADER_BYTES;
      break;
    case 0x80000001: // SYSCALL/SYSRET reported only in 64-bit mode
      regs[3] = (regs[3]! | (state.in64BitMode ? 1 << 11 : 0)) >>> 0;
      break;
  }
  return { kind: 'answer', regs: regs as unknown as CpuidRegs };
}

/** A CPUID the guest executed: answered in place (RIP advances) or #VE with the instruction length. */
export function handleCpuid(td: TdModule, exit: Extract<VmExit, { kind: 'cpuid' }>): TdStep {
  const vcpu = td.machine.vcpu;
  let answer = tdCpuid(exit.leaf, exit.subleaf, { vcpuIndex: td.machine.vcpuIndex, cr4: vcpu.readSpecial('cr4'), in64BitMode: vcpu.codeSegment().bits === 64 });
  // td_cpuid_exit: after the faulting-leaf check, a #VE for every leaf when the vCPU asked for one
  // at the CPL it runs at (TDG.VP.CPUIDVE.SET). The per-leaf CPUID_CONTROL bits are not modelled
  // (only the host's TDH.VP.WR sets them).
  if (answer.kind === 'answer') {
    const ve = td.cpuidVe[td.machine.vcpuIndex]!;
    if ((ve.supervisor || ve.user) && (vcpu.cpl() === 0 ? ve.supervisor : ve.user)) answer = { kind: 've' };
  }
  td.record('cpuid', { leaf: exit.leaf, subleaf: exit.subleaf, rip: exit.rip, handledBy: answer.kind === 've' ? '#VE' : 'tdx-module' });
  if (answer.kind === 've') {
    return td.deliverVe({ exitReason: ExitReason.CPUID, exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: exit.length, instructionInfo: 0 });
  }
  const [eax, ebx, ecx, edx] = answer.regs;
  vcpu.regs.rax = BigInt(eax);
  vcpu.regs.rbx = BigInt(ebx);
  vcpu.regs.rcx = BigInt(ecx);
  vcpu.regs.rdx = BigInt(edx);
  vcpu.complete(exit);
  return TD_RESUME;
}
