// Builds a tiny SNP guest: GDT, IDT with #VC/#GP/#PF/#UD handlers at fixed addresses, code at
// CODE_BASE, optional paging, and a launch that pre-validates the image (SNP_LAUNCH_UPDATE).
import { Machine } from '../../src/cpu/machine.js';
import { ghcbMsr } from '../../src/platform/snp/ghcb-msr.js';
import { SnpPlatform, SNP_GUEST_SEV_FEATURES } from '../../src/platform/snp/snp-cpu.js';
import { HonestSnpVmm, type HonestSnpVmmOptions } from '../../src/vmm/snp/honest-vmm.js';
import { runSnp } from '../../src/vmm/snp/run-snp.js';
import type { SnpVmmPolicy } from '../../src/vmm/snp/policy.js';
import type { LaunchVmplPerms } from '../../src/platform/snp/launch.js';
import type { ScheduleOptions } from '../../src/cpu/vcpu-scheduler.js';
import { Trace } from '../../src/shared/trace.js';
import { CODE_BASE, GDT_BASE, IDT_BASE, IRETQ_TO_CPL3, PT_BASE, STACK_TOP, enablePaging, installGdt, installIdt, loadCode, loadTss, type Mapping } from './guest-setup.js';

export const C_BIT = 1n << 51n;

/**
 * Asm for an SNP test guest: puts the user code (0x1b, 64-bit) and user data (0x23) descriptors
 * into its GDT, loads a GDT descriptor built at 0x30000 (launch that page: SNP_GUEST_CPL3_LAUNCH)
 * and a TSS whose RSP0 is STACK_TOP (loadTss: an exception at CPL 3 runs its handler there), and
 * IRETQs to CPL 3, going on at the line after it.
 */
export function snpGuestToCpl3(tss = loadTss(`0x${STACK_TOP.toString(16)}`)): string {
  return `
      mov rax, 0x00affb000000ffff      # user code, DPL 3, L=1
      mov [0x10018], rax
      mov rax, 0x00cff3000000ffff      # user data, DPL 3
      mov [0x10020], rax
      mov word ptr [0x30000], 55
      mov qword ptr [0x30002], 0x10000
      lgdt [0x30000]
      ${tss}
      ${IRETQ_TO_CPL3}`;
}
export const SNP_GUEST_TO_CPL3 = snpGuestToCpl3();
/** The page SNP_GUEST_TO_CPL3 builds its GDT descriptor in, launched with the guest. */
export const SNP_GUEST_CPL3_LAUNCH: Array<[bigint, bigint]> = [[0x30000n, 0x1000n]];
export const HANDLER = { vc: 0x1800n, gp: 0x1900n, pf: 0x1a00n, ud: 0x1b00n } as const;
export const GHCB_GPA = 0x30000n;

/** Default handler: r13 = vector, r15 = error code (or RIP for #UD), r14 = CR2, then HLT. */
function defaultHandler(vector: number, hasError: boolean): string {
  return `mov r13, ${vector}\n${hasError ? 'pop r15' : 'mov r15, [rsp]'}\nmov r14, cr2\nhlt`;
}

export interface SnpGuestOptions {
  memoryBytes?: bigint;
  vcHandler?: string;
  udHandler?: string;
  /** Page-table mappings (C-bit via extraBits); paging stays off without them. */
  mappings?: Mapping[];
  /** Extra [gpa, length] ranges to pre-validate at launch, with VMPL1-3 permissions (default none). */
  launch?: Array<[bigint, bigint] | [bigint, bigint, LaunchVmplPerms]>;
  /** Code assembled at a GPA (before the launch, which measures it); launch it with `launch`. */
  extraCode?: Array<[bigint, string]>;
  /** VMPL1-3 permissions SNP_LAUNCH_UPDATE gives the guest's own pages (code, GDT, IDT, stack, page tables); default none. */
  imageVmplPerms?: LaunchVmplPerms;
  vmm?: HonestSnpVmmOptions;
  /** Names the VM's memory-encryption key (SnpPlatformOptions.keySeed). */
  keySeed?: bigint;
  /** The VMPL the vCPU runs at (SnpPlatformOptions.vmpl). */
  vmpl?: 0 | 1 | 2 | 3;
  /** vCPUs on the machine (default 1); the APs exist only once started (SnpPlatform.runApFromVmsa). */
  vcpus?: number;
  /** With several vCPUs: the scheduler's policy, seed and quantum. */
  schedule?: ScheduleOptions;
  /** A budget exit after this many guest instructions (a bound on tests that could spin). */
  instructionLimit?: bigint;
  /** Counting mode (default) or fast mode (MachineOptions.countInstructions). */
  countInstructions?: boolean;
  /** A page launched as SNP_LAUNCH_UPDATE type SECRETS (the firmware writes the secrets page there). */
  secrets?: bigint;
}

export function snpGuest(main: string, options: SnpGuestOptions = {}) {
  const vm = new Machine({ memoryBytes: options.memoryBytes ?? 32n << 20n,
    ...(options.vcpus !== undefined ? { vcpus: options.vcpus } : {}),
    ...(options.instructionLimit !== undefined ? { instructionLimit: options.instructionLimit } : {}),
    ...(options.countInstructions !== undefined ? { countInstructions: options.countInstructions } : {}),
  });
  installGdt(vm);
  installIdt(vm, { 29: HANDLER.vc, 13: HANDLER.gp, 14: HANDLER.pf, 6: HANDLER.ud });
  const source = `${main}
.org 0x800
${options.vcHandler ?? defaultHandler(29, true)}
.org 0x900
${defaultHandler(13, true)}
.org 0xa00
${defaultHandler(14, true)}
.org 0xb00
${options.udHandler ?? defaultHandler(6, false)}
`;
  for (const [gpa, code] of options.extraCode ?? []) loadCode(vm, code, gpa);
  loadCode(vm, source);
  let ptEnd = PT_BASE;
  if (options.mappings) ptEnd = enablePaging(vm, options.mappings);
  const trace = new Trace();
  const platform = new SnpPlatform(vm, {
    trace, ...(options.keySeed !== undefined ? { keySeed: options.keySeed } : {}), ...(options.vmpl !== undefined ? { vmpl: options.vmpl } : {}),
    ...(options.schedule !== undefined ? { schedule: options.schedule } : {}),
  });
  const imagePerms = options.imageVmplPerms;
  platform.launchUpdateRange(CODE_BASE, 0x1000n, 'NORMAL', imagePerms);
  platform.launchUpdateRange(GDT_BASE, 0x1000n, 'NORMAL', imagePerms);
  platform.launchUpdateRange(IDT_BASE, 0x1000n, 'NORMAL', imagePerms);
  platform.launchUpdateRange(STACK_TOP - 0x1000n, 0x1000n, 'NORMAL', imagePerms);
  if (ptEnd > PT_BASE) platform.launchUpdateRange(PT_BASE, ptEnd - PT_BASE, 'NORMAL', imagePerms);
  for (const [gpa, len, perms] of options.launch ?? []) platform.launchUpdateRange(gpa, len, 'NORMAL', perms);
  if (options.secrets !== undefined) {
    platform.rmpUpdate(options.secrets, { assigned: true, pageSize: '4k', immutable: true, gpa: options.secrets, asid: platform.asid });
    if (platform.launchUpdatePage(options.secrets, 'SECRETS').rc !== 0) throw new Error('the secrets page did not launch');
  }
  const digest = platform.launchFinish();
  const vmm = new HonestSnpVmm(options.vmm);
  return {
    vm, platform, vmm, trace, digest,
    run: (policy: SnpVmmPolicy = vmm) => runSnp(platform, policy),
  };
}

/** Identity map of [0, size) with 4 KiB pages and the C-bit, plus the GHCB page without it. */
export function privateIdentityWithGhcb(size = 0x800000n): Mapping[] {
  return [
    { va: 0n, pa: 0n, size, pageSize: 4096n, extraBits: C_BIT },
    { va: GHCB_GPA, pa: GHCB_GPA, size: 0x1000n, pageSize: 4096n },
  ];
}

export const PVALIDATE = '.byte 0xf2,0x0f,0x01,0xff';
export const VMGEXIT = '.byte 0xf3,0x0f,0x01,0xd9';

/** Asm: GHCB MSR <- imm (64-bit), VMGEXIT, rax <- GHCB MSR. Clobbers rcx, rdx. */
export function msrProtocol(value: bigint): string {
  return `
  mov ecx, 0xc0010130
  mov rax, 0x${value.toString(16)}
  mov rdx, rax
  shr rdx, 32
  wrmsr
  ${VMGEXIT}
  rdmsr
  shl rdx, 32
  or rax, rdx`;
}

/**
 * Asm: register GHCB_GPA as this vCPU's GHCB (GHCB MSR protocol 0x012), which an SNP guest must do
 * before its first GHCB call: KVM refuses a GHCB GPA the vCPU did not register. Clobbers rax, rcx, rdx.
 */
export const REGISTER_GHCB = msrProtocol(ghcbMsr.registerReq(GHCB_GPA >> 12n));

/** Asm: fill the GHCB at GHCB_GPA (rdi) for one NAE call and VMGEXIT (after REGISTER_GHCB). */
export function ghcbCall(f: { exitCode: bigint; info1?: bigint; info2?: bigint; rax?: bigint; rbx?: bigint; scratch?: bigint }): string {
  // Valid bitmap bits are offset/8: rax 0x1f8 -> bit 63; rbx 0x318 -> bit 99; exit code/info1/info2/scratch -> bits 114..117.
  let high = (1 << 2) | (1 << 3) | (1 << 4);
  if (f.scratch !== undefined) high |= 1 << 5;
  return `
  mov rdi, 0x${GHCB_GPA.toString(16)}
  mov rax, 0x${f.exitCode.toString(16)}
  mov [rdi+0x390], rax
  mov rax, 0x${(f.info1 ?? 0n).toString(16)}
  mov [rdi+0x398], rax
  mov rax, 0x${(f.info2 ?? 0n).toString(16)}
  mov [rdi+0x3a0], rax
  ${f.scratch !== undefined ? `mov rax, 0x${f.scratch.toString(16)}\n  mov [rdi+0x3a8], rax` : ''}
  ${f.rax !== undefined ? `mov rax, 0x${f.rax.toString(16)}\n  mov [rdi+0x1f8], rax\n  mov byte ptr [rdi+0x3f7], 0x80` : 'mov byte ptr [rdi+0x3f7], 0'}
  ${f.rbx !== undefined ? `mov rax, 0x${f.rbx.toString(16)}\n  mov [rdi+0x318], rax\n  mov byte ptr [rdi+0x3fc], 0x08` : ''}
  mov byte ptr [rdi+0x3fe], ${high}
  mov ecx, 0xc0010130
  mov eax, 0x${GHCB_GPA.toString(16)}
  xor edx, edx
  wrmsr
  ${VMGEXIT}`;
}

/**
 * A guest-written VMSA page (Linux struct sev_es_save_area offsets) for flat 32-bit protected mode:
 * code 0x08 and data 0x10 over 4 GiB, EFER.SVME | LME, CR0.PE | ET, G_PAT and XCR0 as Linux writes them,
 * the guest's SEV_FEATURES.
 * Callers add RIP (0x178), RSP (0x1d8) and whatever else their AP needs.
 */
export function flat32VmsaPage(): Buffer {
  const b = Buffer.alloc(4096);
  const seg = (off: number, selector: number, attrib: number) => {
    b.writeUInt16LE(selector, off);
    b.writeUInt16LE(attrib, off + 2);
    b.writeUInt32LE(0xffffffff, off + 4);
  };
  seg(0x10, 0x08, 0xc9b);
  for (const off of [0x00, 0x20, 0x30, 0x40, 0x50]) seg(off, 0x10, 0xc93);
  b.writeBigUInt64LE((1n << 12n) | (1n << 8n), 0xd0); // EFER.SVME | LME
  b.writeBigUInt64LE(0x11n, 0x158);                   // CR0.PE | ET
  b.writeBigUInt64LE(0x2n, 0x170);                    // RFLAGS
  b.writeBigUInt64LE(SNP_GUEST_SEV_FEATURES, 0x3b0);
  b.writeBigUInt64LE(0x0007040600070406n, 0x268);    // G_PAT: the PAT's reset value (Linux AP_INIT_GPAT_DEFAULT)
  b.writeBigUInt64LE(1n, 0x3e8);                      // XCR0: x87 (Linux wakeup_cpu_via_vmgexit, AP_INIT_XCR0_DEFAULT)
  return b;
}

/**
 * Asm, the start of an AP's code at an apVmsaPageLike VMSA: the AP starts in flat 32-bit protected
 * mode with the BSP's CR3, CR4.PAE and EFER.LME (the emulator enters only real or flat 32-bit mode
 * from a VMSA); setting CR0.PG activates long mode (APM Vol. 2 §14.6.1) and a far jump to the
 * 64-bit code segment enters it. Goes on at the next line, in 64-bit code.
 */
export const AP_TO_LONG_MODE = `
.code32
  mov eax, cr0
  bts eax, 31
  mov cr0, eax
  .byte 0xea
  .long ap_long64
  .word 0x08
.code64
ap_long64:`;

/**
 * An AP's VMSA page: flat32VmsaPage at `rip`, on the stack `rsp`, with the BSP's GDT, IDT, CR3 and
 * CR4 (sev_es_save_area gdtr 0x60, idtr 0x80, cr4 0x148, cr3 0x150, rip 0x178, rsp 0x1d8).
 */
export function apVmsaPageLike(bsp: Machine, rip: bigint, rsp = STACK_TOP - 0x800n): Buffer {
  const b = flat32VmsaPage();
  const v = bsp.vcpu;
  b.writeUInt32LE(Number(v.readSpecial('gdtrLimit')), 0x64);
  b.writeBigUInt64LE(v.readSpecial('gdtrBase'), 0x68);
  b.writeUInt32LE(Number(v.readSpecial('idtrLimit')), 0x84);
  b.writeBigUInt64LE(v.readSpecial('idtrBase'), 0x88);
  b.writeBigUInt64LE(v.readSpecial('cr4'), 0x148);
  b.writeBigUInt64LE(v.readSpecial('cr3'), 0x150);
  b.writeBigUInt64LE(rip, 0x178);
  b.writeBigUInt64LE(rsp, 0x1d8);
  return b;
}
