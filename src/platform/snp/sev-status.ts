// SEV_STATUS MSR and the CPUID view of an SNP guest (tdx-snp-architecture.md B4).
export const MSR_SEV_STATUS = 0xc0010131;
export const MSR_GHCB = 0xc0010130;

/** SEV_STATUS bits (B4). */
export const SEV_STATUS = {
  SEV: 1n << 0n,
  SEV_ES: 1n << 1n,
  SNP: 1n << 2n,
  VTOM: 1n << 3n,
  REFLECT_VC: 1n << 4n,
  RESTRICTED_INJECTION: 1n << 5n,
  ALTERNATE_INJECTION: 1n << 6n,
} as const;

/** An SNP guest: SEV, SEV-ES and SNP enabled. */
export const SNP_GUEST_SEV_STATUS = SEV_STATUS.SEV | SEV_STATUS.SEV_ES | SEV_STATUS.SNP;
/** SEV_FEATURES of this guest's VMSAs: SEV_STATUS >> 2 (Linux wakeup_cpu_via_vmgexit), SNPActive (bit 0). */
export const SNP_GUEST_SEV_FEATURES = SNP_GUEST_SEV_STATUS >> 2n;

/** VMPLs an SNP CPU has (VMPL0-3), CPUID Fn8000_001F EBX[15:12]. */
export const SNP_VMPL_COUNT = 4;

/** CPUID Fn8000_001F ECX: encrypted guests supported at once (APM Vol. 3 E.4.17). */
export const SNP_ENCRYPTED_GUESTS = 1006;
/** CPUID Fn8000_001F EDX: the minimum ASID of an SEV guest with SEV-ES off (APM Vol. 3 E.4.17). */
export const SNP_MIN_SEV_NO_ES_ASID = 100;

export interface CpuidResult { eax: number; ebx: number; ecx: number; edx: number }

/**
 * The emulated CPU's own CPUID answers: what the firmware checks an SNP CPUID page against
 * (cpuid-page.ts) and what an honest VMM reports. The guest never executes CPUID natively: it
 * raises #VC 0x72 (snp-cpu.ts). 0x8000001F: EAX bit0 SME, 1 SEV, 3 SEV-ES, 4 SNP, 5 VMPL;
 * EBX[5:0] C-bit position, EBX[11:6] physical-address reduction, EBX[15:12] number of VMPLs
 * (APM Vol. 3 CPUID Fn8000_001F; Linux tools/arch/x86/kcpuid/cpuid.csv vm_permission_levels,
 * vmpl_count). SNP parts have four VMPLs (0-3; a Genoa host's `snphost ok` reports "Number of
 * VMPLs: 4"), and the model runs VMPLs 1-3.
 */
export function snpCpuid(leaf: number, _subleaf: number, cBit: number): CpuidResult {
  switch (leaf >>> 0) {
    case 0x0: return { eax: 0xd, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 }; // "AuthenticAMD"
    // Family 19h model 11h stepping 1 (EPYC 9004, an SNP part); CLFLUSH 64 bytes, one logical
    // processor, APIC ID 0. ECX: SSE3, SSSE3, CX16, SSE4.1, SSE4.2, POPCNT, RDRAND (Linux's
    // decompressor refuses an SEV guest without it; the model answers it from the run's seed,
    // src/cpu/hardware-random.ts), hypervisor. EDX: FPU, DE, PSE, TSC,
    // MSR, PAE, MCE, CX8, APIC, SEP, MTRR, PGE, MCA, CMOV, PAT, PSE36, CLFSH, MMX, FXSR, SSE, SSE2.
    // (APM Vol. 3 CPUID Fn0000_0001.)
    case 0x1: return { eax: 0x00a10f11, ebx: 0x00010800, ecx: 0xc0982201, edx: 0x78bfbfd };
    case 0x80000000: return { eax: 0x8000001f, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 };
    // ECX: how many encrypted guests the CPU runs at once; EDX: the lowest ASID of an SEV guest
    // without SEV-ES. ASIDs 1 to EDX-1 are the SEV-ES and SNP guests' (Linux's KVM, svm/sev.c
    // sev_hardware_setup, turns SEV-ES and SNP off when EDX is 1). A Genoa host with SNP set up
    // in its BIOS reports 1006 and 100 (virtee/snphost#193's `snphost ok` output).
    case 0x8000001f: return { eax: 0x3b, ebx: (cBit & 0x3f) | (1 << 6) | (SNP_VMPL_COUNT << 12), ecx: SNP_ENCRYPTED_GUESTS, edx: SNP_MIN_SEV_NO_ES_ASID };
    default: return { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  }
}
