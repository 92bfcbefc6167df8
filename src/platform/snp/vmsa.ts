// The VMSA the VMM provides for an SEV-SNP BSP, and how the AMD-SP takes it (SNP_LAUNCH_UPDATE
// page type VMSA, measured at GPA 0xFFFFFFFFF000 like sev-snp-measure does). Layout: AMD APM
// Vol. 2 Table B-4 / Linux arch/x86/include/asm/svm.h `struct sev_es_save_area` (segments as
// vmcb_seg {u16 selector, u16 attrib, u32 limit, u64 base}).
//
// QEMU/KVM fill the BSP's VMSA from the vCPU's reset state (real mode, CS selector 0xF000, hidden
// base 0xFFFF0000, IP 0xFFF0: linear 0xFFFFFFF0, the reset vector at the top of the firmware
// volume). An AP starts from the SEV-ES reset block OVMF publishes in its GUID table (CS base =
// vector & 0xFFFF0000, IP = vector & 0xFFFF; QEMU target/i386/sev.c).
import type { Machine } from '../../cpu/machine.js';

export const VMSA_MEASURED_GPA = 0xfffffffff000n;

export interface Vmsa {
  cs: { selector: number; base: bigint; limit: number; attrib: number };
  rip: bigint;
  rflags: bigint;
  cr0: bigint;
  efer: bigint;
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
    cr0: 0x60000010n,        // CD | NW | ET, the reset value (APM Vol. 2 Table 14-1)
    efer: 0x1000n,           // SVME: required in every SEV-ES VMSA
    rdx: 0n,
  };
}

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
  seg(0x90, 0, 0x83, 0xffff, 0n);  // TR
  b.writeBigUInt64LE(v.efer, 0xd0);
  b.writeBigUInt64LE(v.cr0, 0x158);
  b.writeBigUInt64LE(0x400n, 0x160);  // DR7
  b.writeBigUInt64LE(0xffff0ff0n, 0x168);  // DR6
  b.writeBigUInt64LE(v.rflags, 0x170);
  b.writeBigUInt64LE(v.rip, 0x178);
  b.writeBigUInt64LE(v.rdx, 0x310);
  return b;
}

/** Loads the BSP from the VMSA as VMRUN does. */
export function applyVmsa(machine: Machine, v: Vmsa): void {
  const vcpu = machine.vcpu;
  vcpu.enter({ mode: 'real16', csSelector: v.cs.selector, csBase: v.cs.base });
  vcpu.writeSpecial('cr0', v.cr0);
  vcpu.writeSpecial('efer', v.efer);
  const regs = vcpu.regs;
  for (const r of ['rax', 'rcx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const) regs[r] = 0n;
  regs.rdx = v.rdx;
  regs.rip = v.rip;
  regs.rflags = v.rflags;
}
