// The VMSA the VMM provides for an SEV-SNP BSP, and how the AMD-SP takes it (SNP_LAUNCH_UPDATE
// page type VMSA, measured at GPA 0xFFFFFFFFF000 like sev-snp-measure does). Layout: AMD APM
// Vol. 2 Table B-4 / Linux arch/x86/include/asm/svm.h `struct sev_es_save_area` (segments as
// vmcb_seg {u16 selector, u16 attrib, u32 limit, u64 base}).
//
// QEMU/KVM fill the BSP's VMSA from the vCPU's reset state (real mode, CS selector 0xF000, hidden
// base 0xFFFF0000, IP 0xFFF0: linear 0xFFFFFFF0, the reset vector at the top of the firmware
// volume), as KVM holds it in the VMCB when it encrypts it (sev_es_sync_vmsa): the page is the one
// sev-snp-measure (vmsa.py, VMM type QEMU) builds to predict the launch digest, so a digest the
// model reports can be checked against that tool's. An AP starts from the SEV-ES reset block OVMF
// publishes in its GUID table (CS base = vector & 0xFFFF0000, IP = vector & 0xFFFF; QEMU
// target/i386/sev.c).
import type { Machine } from '../../cpu/machine.js';
import { SNP_GUEST_SEV_FEATURES, snpCpuid } from './sev-status.js';

export const VMSA_MEASURED_GPA = 0xfffffffff000n;
/** IA32_PAT / PAT (APM Vol. 2 §7.8.1): the guest's is G_PAT in the VMSA. */
export const MSR_PAT = 0x277;

export interface Vmsa {
  cs: { selector: number; base: bigint; limit: number; attrib: number };
  rip: bigint;
  rflags: bigint;
  cr0: bigint;
  cr4: bigint;
  efer: bigint;
  xcr0: bigint;
  rdx: bigint;
}

/** The x86 reset vector: CS base 0xFFFF0000 + IP 0xFFF0 (APM Vol. 2 §14.1.5, Table 14-1). */
export const SNP_RESET_VECTOR = 0xfffffff0n;

/** The BSP's VMSA: the reset state, real mode at 0xFFFF0000:FFF0. */
export function bspResetVmsa(): Vmsa {
  return resetVmsa(SNP_RESET_VECTOR);
}

/** Real mode at `vector` by the SEV-ES reset-block convention (CS 0xF000, base = vector & ~0xFFFF). */
export function resetVmsa(vector: bigint): Vmsa {
  return {
    cs: { selector: 0xf000, base: vector & 0xffff0000n, limit: 0xffff, attrib: 0x9b },
    rip: vector & 0xffffn,
    rflags: 0x2n,
    // ET: the reset value (APM Vol. 2 Table 14-1) has CD and NW set too, which KVM clears in the
    // VMCB (svm_set_cr0 with KVM_X86_QUIRK_CD_NW_CLEARED, on by default); sev-snp-measure cr0=0x10.
    cr0: 0x10n,
    cr4: 0x40n,              // MCE, which KVM sets in the VMCB's CR4 (svm_set_cr4); sev-snp-measure cr4=0x40
    efer: 0x1000n,           // SVME: required in every SEV-ES VMSA
    xcr0: 1n,                // x87 only (KVM kvm_vcpu_reset: xcr0 = XFEATURE_MASK_FP; sev-snp-measure xcr0=1)
    // EDX at reset holds the processor's family/model/stepping, CPUID Fn0000_0001_EAX (APM Vol. 2
    // §14.1.5, Table 14-1); QEMU's x86_cpu_reset_hold writes env->cpuid_version there, KVM's
    // kvm_vcpu_reset the vCPU's CPUID(1).EAX, and sev-snp-measure builds the measured VMSA with it.
    rdx: BigInt(snpCpuid(1, 0, 0).eax),
  };
}

/**
 * TR at reset: selector 0, base 0, limit 0xFFFF, present (APM Vol. 2 Table 14-1), as QEMU's
 * x86_cpu_reset types it, a busy 32-bit TSS (DESC_TYPE 11; sev-snp-measure, VMM type QEMU:
 * tr_flags 0x8b).
 */
const RESET_TR: VmsaSegment = { selector: 0, attrib: 0x8b, limit: 0xffff, base: 0n };
/** G_PAT at reset: the PAT MSR's power-on value (APM Vol. 2 §7.8.1; sev-snp-measure g_pat). */
const RESET_G_PAT = 0x0007040600070406n;

/** The 4 KiB VMSA page with the fields the model carries. */
export function vmsaPage(v: Vmsa): Uint8Array {
  const b = Buffer.alloc(4096);
  const seg = (off: number, selector: number, attrib: number, limit: number, base: bigint) => {
    b.writeUInt16LE(selector, off);
    b.writeUInt16LE(attrib, off + 2);
    b.writeUInt32LE(limit, off + 4);
    b.writeBigUInt64LE(base, off + 8);
  };
  for (const off of [0x00, 0x20, 0x30, 0x40, 0x50]) seg(off, 0, 0x93, 0xffff, 0n);  // ES SS DS FS GS
  seg(0x10, v.cs.selector, v.cs.attrib, v.cs.limit, v.cs.base);
  seg(0x60, 0, 0, 0xffff, 0n);  // GDTR
  seg(0x70, 0, 0x82, 0xffff, 0n);  // LDTR
  seg(0x80, 0, 0, 0xffff, 0n);  // IDTR
  seg(0x90, RESET_TR.selector, RESET_TR.attrib, RESET_TR.limit, RESET_TR.base);
  b.writeBigUInt64LE(v.efer, 0xd0);
  b.writeBigUInt64LE(v.cr4, 0x148);
  b.writeBigUInt64LE(v.cr0, 0x158);
  b.writeBigUInt64LE(0x400n, 0x160);  // DR7
  b.writeBigUInt64LE(0xffff0ff0n, 0x168);  // DR6
  b.writeBigUInt64LE(v.rflags, 0x170);
  b.writeBigUInt64LE(v.rip, 0x178);
  b.writeBigUInt64LE(RESET_G_PAT, 0x268);
  b.writeBigUInt64LE(v.rdx, 0x310);
  b.writeBigUInt64LE(SNP_GUEST_SEV_FEATURES, 0x3b0);
  b.writeBigUInt64LE(v.xcr0, 0x3e8);
  return b;
}

/** Loads the BSP from the VMSA as VMRUN does. */
export function applyVmsa(machine: Machine, v: Vmsa): void {
  const vcpu = machine.vcpu;
  vcpu.enter({ mode: 'real16', csSelector: v.cs.selector, csBase: v.cs.base });
  vcpu.writeSpecial('cr0', v.cr0);
  vcpu.writeSpecial('cr4', v.cr4);
  vcpu.writeSpecial('efer', v.efer);
  loadTr(machine, RESET_TR);
  vcpu.writeMsr(MSR_PAT, RESET_G_PAT);
  vcpu.writeXcr0(v.xcr0);
  const regs = vcpu.regs;
  for (const r of ['rax', 'rcx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const) regs[r] = 0n;
  regs.rdx = v.rdx;
  regs.rip = v.rip;
  regs.rflags = v.rflags;
}

/** TR as VMRUN loads it from the VMSA: where an exception below CPL 0 finds its stack. */
function loadTr(machine: Machine, tr: VmsaSegment): void {
  machine.vcpu.writeSpecial('trSelector', BigInt(tr.selector));
  machine.vcpu.writeSpecial('trBase', tr.base);
  machine.vcpu.writeSpecial('trLimit', BigInt(tr.limit));
}

// ---------------------------------------------------------------- an AP's VMSA, as the guest wrote it

/** A vmcb_seg as the VMSA holds it: selector, attributes (VMCB format), limit, base. */
export interface VmsaSegment { selector: number; attrib: number; limit: number; base: bigint }

/** The fields of a guest-written VMSA page (Linux `struct sev_es_save_area` offsets) the model loads. */
export interface GuestVmsa {
  es: VmsaSegment; cs: VmsaSegment; ss: VmsaSegment; ds: VmsaSegment; fs: VmsaSegment; gs: VmsaSegment; tr: VmsaSegment;
  gdtr: { limit: number; base: bigint };
  idtr: { limit: number; base: bigint };
  vmpl: number;
  efer: bigint; cr4: bigint; cr3: bigint; cr2: bigint; cr0: bigint; rflags: bigint; rip: bigint; rsp: bigint;
  gprs: Record<'rax' | 'rcx' | 'rdx' | 'rbx' | 'rbp' | 'rsi' | 'rdi' | 'r8' | 'r9' | 'r10' | 'r11' | 'r12' | 'r13' | 'r14' | 'r15', bigint>;
  /** The MSRs the VMSA holds (0x200-0x238), by MSR index: VMRUN loads them too. */
  msrs: ReadonlyMap<number, bigint>;
  /** SEV_FEATURES (0x3B0): what the guest's SEV_STATUS MSR shows, shifted right by 2 (Linux wakeup_cpu_via_vmgexit). */
  sevFeatures: bigint;
  /** XCR0 (0x3E8): guest state VMRUN loads from an SEV-ES/SNP guest's VMSA, as the BSP's (applyVmsa). */
  xcr0: bigint;
  /** G_PAT (0x268): the guest's PAT (MSR 0x277), which its RDMSR reads without an intercept (snp-cpu.ts PASSTHROUGH_MSRS). */
  gPat: bigint;
}

/** VMSA offsets: Linux arch/x86/include/asm/svm.h `struct sev_es_save_area` (APM Vol. 2 Table B-4). */
const VMSA_OFFSET = {
  es: 0x00, cs: 0x10, ss: 0x20, ds: 0x30, fs: 0x40, gs: 0x50, gdtr: 0x60, idtr: 0x80, tr: 0x90,
  vmpl: 0xca, efer: 0xd0, cr4: 0x148, cr3: 0x150, cr0: 0x158, rflags: 0x170, rip: 0x178, rsp: 0x1d8, rax: 0x1f8, cr2: 0x240,
  rcx: 0x308, rdx: 0x310, rbx: 0x318, rbp: 0x328, rsi: 0x330, rdi: 0x338, r8: 0x340, r9: 0x348, r10: 0x350,
  r11: 0x358, r12: 0x360, r13: 0x368, r14: 0x370, r15: 0x378, sevFeatures: 0x3b0, xcr0: 0x3e8, gPat: 0x268,
} as const;

/**
 * The VMSA's MSR fields, offset -> MSR index (struct sev_es_save_area: star 0x200, lstar, cstar,
 * sfmask, kernel_gs_base, sysenter_cs, sysenter_esp, sysenter_eip 0x238). VMRUN loads them from
 * the VMSA of an SEV-ES or SNP guest like the rest of its state (APM Vol. 2 §15.35, SEV-ES: the
 * guest state is in the VMSA; KVM sev_es_sync_vmsa writes these fields too): an AP's
 * SYSCALL and SYSENTER entry points are those its creator wrote there.
 */
const VMSA_MSR_FIELDS: readonly (readonly [number, number])[] = [
  [0x200, 0xc0000081], [0x208, 0xc0000082], [0x210, 0xc0000083], [0x218, 0xc0000084],
  [0x220, 0xc0000102], [0x228, 0x174], [0x230, 0x175], [0x238, 0x176],
];

export function decodeVmsaPage(page: Uint8Array): GuestVmsa {
  const b = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const q = (off: number) => b.readBigUInt64LE(off);
  const seg = (off: number): VmsaSegment => ({ selector: b.readUInt16LE(off), attrib: b.readUInt16LE(off + 2), limit: b.readUInt32LE(off + 4), base: q(off + 8) });
  const o = VMSA_OFFSET;
  return {
    es: seg(o.es), cs: seg(o.cs), ss: seg(o.ss), ds: seg(o.ds), fs: seg(o.fs), gs: seg(o.gs), tr: seg(o.tr),
    gdtr: { limit: b.readUInt32LE(o.gdtr + 4), base: q(o.gdtr + 8) },
    idtr: { limit: b.readUInt32LE(o.idtr + 4), base: q(o.idtr + 8) },
    vmpl: b.readUInt8(o.vmpl), efer: q(o.efer), cr4: q(o.cr4), cr3: q(o.cr3), cr2: q(o.cr2), cr0: q(o.cr0), rflags: q(o.rflags), rip: q(o.rip), rsp: q(o.rsp),
    gprs: {
      rax: q(o.rax), rcx: q(o.rcx), rdx: q(o.rdx), rbx: q(o.rbx), rbp: q(o.rbp), rsi: q(o.rsi), rdi: q(o.rdi), r8: q(o.r8), r9: q(o.r9),
      r10: q(o.r10), r11: q(o.r11), r12: q(o.r12), r13: q(o.r13), r14: q(o.r14), r15: q(o.r15),
    },
    msrs: new Map(VMSA_MSR_FIELDS.map(([offset, msr]) => [msr, q(offset)])),
    sevFeatures: q(o.sevFeatures),
    xcr0: q(o.xcr0),
    gPat: q(o.gPat),
  };
}

/** EFER.SVME: VMRUN refuses guest state without it (AMD APM Vol. 2 §15.5.1). */
export const EFER_SVME = 1n << 12n;
const CR0_PE = 1n;
/** vmcb_seg attrib bits (Linux svm.h SVM_SELECTOR_*): L (64-bit code) 9, D/B 10. */
const SEG_L = 1 << 9, SEG_DB = 1 << 10;

/**
 * The entry state a guest VMSA describes, in the forms the emulator can load (Vcpu.enter): real
 * mode (what Linux writes: the SIPI-like start at its trampoline) or flat 32-bit protected mode
 * (CS base 0, D=1), or why not. A VMSA without EFER.SVME fails VMRUN's consistency checks (APM
 * Vol. 2 §15.5.1 "Canonicalization and Consistency Checks": EFER.SVME = 0 is illegal guest state).
 */
export function vmsaEntryState(v: GuestVmsa): { mode: 'real16' | 'protected32' } | { refused: string } {
  if ((v.efer & EFER_SVME) === 0n) return { refused: 'EFER.SVME is clear (VMRUN consistency check)' };
  const xcr0 = xcr0Refused(v.xcr0);
  if (xcr0 !== undefined) return { refused: xcr0 };
  if (!patValid(v.gPat)) return { refused: `G_PAT 0x${v.gPat.toString(16)} holds a reserved memory type (VMRUN takes it as illegal guest state)` };
  if ((v.cr0 & CR0_PE) === 0n) {
    // Any real-mode CS is legal VMRUN state, but the emulator enters real mode through a GDT
    // descriptor for the selector (native guest_stub.cc: a non-null selector with TI = RPL = 0, and
    // the one after it for SS) and a base below 4 GiB; a SIPI-style start fits (KVM
    // kvm_vcpu_deliver_sipi_vector: selector = vector << 8, base = vector << 12). Another is
    // refused here, as other states the emulator cannot load are, not thrown from Vcpu.enter.
    const sel = v.cs.selector;
    if (sel === 0 || (sel & 7) !== 0 || sel === 0xfff8 || v.cs.base > 0xffffffffn) {
      return { refused: `a real-mode CS the emulator cannot enter from a VMSA (selector 0x${sel.toString(16)}, base 0x${v.cs.base.toString(16)})` };
    }
    return { mode: 'real16' };
  }
  if ((v.cs.attrib & SEG_L) === 0 && (v.cs.attrib & SEG_DB) !== 0 && v.cs.base === 0n) return { mode: 'protected32' };
  return { refused: 'a code segment the emulator cannot enter from a VMSA (only real mode and flat 32-bit protected mode)' };
}

/**
 * Why VMRUN would not load `xcr0` from a VMSA, or undefined. VMRUN of an SEV-ES/SNP guest loads
 * XCR0 from the VMSA (offset 0x3E8; KVM writes the BSP's there before LAUNCH_UPDATE_VMSA,
 * sev_es_sync_vmsa "Sync some non-GPR registers before encrypting", and cannot set it later:
 * sev_es_init_vmcb "Can't intercept XSETBV, HV can't modify XCR0 directly"). (U) What VMRUN does
 * with a value XSETBV would refuse (#GP(0): x87 bit 0 clear, AVX without SSE, AVX-512's three bits
 * not all set or without AVX, AMX's two bits not both set; Intel SDM Vol. 2D XSETBV, the checks of
 * native/src/xcr0.h) is not in the sources read here: APM Vol. 2 §15.5.1 "Canonicalization and
 * Consistency Checks" does not name XCR0, and KVM never looks inside a guest-written VMSA. The
 * model takes it as illegal guest state, as it takes a VMSA without EFER.SVME (§15.5.1): VMRUN
 * fails with VMEXIT_INVALID, which KVM reports as KVM_EXIT_FAIL_ENTRY and QEMU treats as fatal
 * (the honest VMM ends the run). A bit the CPU does not implement is refused the same way when
 * the vCPU is loaded (applyGuestVmsa).
 */
export function xcr0Refused(xcr0: bigint): string | undefined {
  const avx512 = xcr0 & 0xe0n, amx = xcr0 & (3n << 17n);
  const legal = (xcr0 & 1n) !== 0n && !((xcr0 & 4n) !== 0n && (xcr0 & 2n) === 0n)
    && (avx512 === 0n || (avx512 === 0xe0n && (xcr0 & 4n) !== 0n)) && (amx === 0n || amx === 3n << 17n);
  return legal ? undefined : `XCR0 0x${xcr0.toString(16)} is a value XSETBV refuses (VMRUN takes it as illegal guest state)`;
}

/**
 * Whether `pat` is a PAT value the CPU takes: every PAn byte one of the defined memory types 0, 1,
 * 4, 5, 6, 7 (APM Vol. 2 §7.8.1 "PAT Register": a reserved type written to the PAT is #GP; KVM's
 * kvm_pat_valid in arch/x86/kvm/x86.h makes the same check). (U) For G_PAT in a VMSA the model
 * applies the policy of xcr0Refused: VMRUN is taken to refuse a reserved type as illegal guest state.
 */
export function patValid(pat: bigint): boolean {
  if ((pat & 0xf8f8f8f8f8f8f8f8n) !== 0n) return false;
  return (pat | ((pat & 0x0202020202020202n) << 1n)) === pat;
}

/**
 * Loads the running vCPU from a guest VMSA, as VMRUN does with the VMSA the VMCB points at.
 * Returns why it could not (an XCR0 with a feature bit the CPU lacks), or undefined; the vCPU is
 * then left in its entry state and must not run.
 */
export function applyGuestVmsa(machine: Machine, v: GuestVmsa, mode: 'real16' | 'protected32'): string | undefined {
  const vcpu = machine.vcpu;
  if (mode === 'real16') vcpu.enter({ mode, csSelector: v.cs.selector, csBase: v.cs.base });
  else vcpu.enter({ mode });
  // First, while the vCPU is in its flat entry state (the XSETBV that sets it runs in a stub page,
  // Vcpu.writeXcr0, which paging from the VMSA's CR0/CR3 might not map). writeXcr0 throws for a
  // value XSETBV refuses: guest input, so a refusal, never a throw out of the model.
  try {
    vcpu.writeXcr0(v.xcr0);
  } catch (e) {
    return `XCR0 0x${v.xcr0.toString(16)}: ${e instanceof Error ? e.message : String(e)}`;
  }
  vcpu.writeSpecial('cr0', v.cr0);
  vcpu.writeSpecial('cr4', v.cr4);
  vcpu.writeSpecial('cr3', v.cr3);
  vcpu.writeSpecial('cr2', v.cr2);
  vcpu.writeSpecial('efer', v.efer);
  for (const [msr, value] of v.msrs) vcpu.writeMsr(msr, value);
  vcpu.writeMsr(MSR_PAT, v.gPat);
  vcpu.writeSpecial('gdtrBase', v.gdtr.base);
  vcpu.writeSpecial('gdtrLimit', BigInt(v.gdtr.limit));
  vcpu.writeSpecial('idtrBase', v.idtr.base);
  vcpu.writeSpecial('idtrLimit', BigInt(v.idtr.limit));
  vcpu.writeSpecial('fsBase', v.fs.base);
  vcpu.writeSpecial('gsBase', v.gs.base);
  loadTr(machine, v.tr);
  const regs = vcpu.regs;
  for (const [r, value] of Object.entries(v.gprs) as [keyof GuestVmsa['gprs'], bigint][]) regs[r] = value;
  regs.rsp = v.rsp;
  regs.rip = v.rip;
  regs.rflags = v.rflags | 0x2n;
  return undefined;
}
