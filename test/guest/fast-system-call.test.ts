// SYSCALL and SYSENTER as real guest instructions. Neither TDX nor SEV-SNP intercepts them: the CPU
// runs them with the MSRs the guest wrote (Intel SDM Vol. 2B "SYSCALL", "SYSENTER"; AMD APM Vol. 3
// "SYSCALL", "SYSENTER"). Unicorn alone steps over both without doing anything
// (qemu/target/i386/seg_helper.c helper_syscall, helper_sysenter), so these tests fail without
// src/cpu/fast-system-call.ts.
import { describe, expect, it } from 'vitest';
import { HALT, TO_COMPAT_MODE, runTdGuest, toCpl } from '../helpers/tdx-guest.js';
import { CODE_BASE } from '../helpers/guest-setup.js';
import { SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, snpGuest } from '../helpers/snp-guest.js';
import { STACK_TOP } from '../helpers/guest-setup.js';
import { SnpPlatform } from '../../src/platform/snp/snp-cpu.js';
import { flat32VmsaPage } from '../helpers/snp-guest.js';

// IRETQ to the next line at CPL 0 with RFLAGS.RF set in the frame: IRETQ loads RF from it (SDM
// Vol. 2A "IRET"; APM Vol. 3 "IRET"), so the instruction after it runs with RF = 1.
const IRETQ_WITH_RF = `
      mov rax, rsp
      push 0x10
      push rax
      pushfq
      or qword ptr [rsp], 0x10000
      push 0x08
      lea rax, [rip + 1f]
      push rax
      iretq
    1:`;

const wrmsr = (msr: number, value: bigint) =>
  `mov ecx, 0x${msr.toString(16)}\n mov eax, 0x${(value & 0xffffffffn).toString(16)}\n mov edx, 0x${(value >> 32n).toString(16)}\n wrmsr`;
/** Sets EFER.SCE, keeping the rest (the guest reads EFER; both platforms let it write SCE). */
const SET_SCE = 'mov ecx, 0xc0000080\n rdmsr\n or eax, 1\n wrmsr';
/** MSR `msr` (LSTAR, SYSENTER_EIP) <- the address of the guest's label `entry`. */
const msrToEntry = (msr: number) => `lea rax, [rip + entry]\n mov rdx, rax\n shr rdx, 32\n mov ecx, 0x${msr.toString(16)}\n wrmsr`;
/** STAR <- `star`, LSTAR <- `entry`, FMASK/SFMASK <- `fmask`. */
const syscallMsrs = (star: bigint, fmask = 0n) => `${wrmsr(0xc0000081, star)}\n ${msrToEntry(0xc0000082)}\n ${wrmsr(0xc0000084, fmask)}`;
/**
 * STAR[47:32] = 0x0B, the GDT's 64-bit code selector 0x08 with RPL 3: CS takes it with RPL forced to
 * 0 (0x08), SS is it plus 8 (0x13), as both manuals' Operation sections write it.
 */
const STAR = 0x0023000b00000000n;
/**
 * Asm: SYSCALL from CPL 3 (an SNP guest) with STAR = `star`, LSTAR at `entry`, FMASK 0: R9 = the
 * user RSP, R12 = the return address `after`, where `afterReturn` runs. At `entry`: CS -> RBX,
 * SS -> RBP, RCX -> RSI, RSP -> R8, a MOV from CR0 (CPL 0 only), then `entryEnd`.
 */
const syscallFromCpl3 = (star: bigint, afterReturn: string, entryEnd: string) => `
      ${SET_SCE}
      ${syscallMsrs(star)}
      ${SNP_GUEST_TO_CPL3}
      mov r9, rsp
      lea r12, [rip + after]
      syscall
    after:
      ${afterReturn}
    entry:
      mov bx, cs\n movzx ebx, bx\n mov bp, ss\n movzx ebp, bp\n mov rsi, rcx\n mov r8, rsp
      mov rax, cr0
      ${entryEnd}`;
const DF = 0x400n;
/**
 * Points LSTAR at `entry`, masks DF (FMASK/SFMASK), sets DF and runs SYSCALL; R12 = the address
 * after the SYSCALL. At `entry`: CS -> RBX, SS -> RBP, RCX -> RSI, R11 -> RDI, RFLAGS -> R13.
 */
const SYSCALL_TO_ENTRY = `
    ${syscallMsrs(STAR, DF)}
    lea r12, [rip + after]
    std
    syscall
  after:
    mov r14, 0xbad
    jmp done
  entry:
    mov bx, cs\n movzx ebx, bx\n mov bp, ss\n movzx ebp, bp
    mov rsi, rcx\n mov rdi, r11\n pushfq\n pop r13\n cld
  done:`;

describe('SYSCALL in a TD (an Intel CPU runs it; the TD owns STAR, LSTAR and FMASK: msr_config_lookup.c)', () => {
  it('from 64-bit mode at CPL 0: RIP <- LSTAR, RCX <- next RIP, R11 <- RFLAGS, RFLAGS masked by FMASK, CS <- STAR[47:32] & ~3, SS <- STAR[47:32] + 8', () => {
    const { td, outcome } = runTdGuest(`${SET_SCE}\n ${SYSCALL_TO_ENTRY}\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r14).toBe(0n);
    expect([r.rbx, r.rbp]).toEqual([0x08n, 0x13n]);
    expect(r.rsi).toBe(r.r12);
    expect(r.rdi & DF).toBe(DF);
    expect(r.r13 & DF).toBe(0n);
    expect(r.r13 & 2n).toBe(2n);
  });

  it('FMASK with every bit of RFLAGS[31:0] set clears them all but bit 1, which always reads as 1 (SDM Vol. 1 §3.4.3)', () => {
    const { td, outcome } = runTdGuest(`${SET_SCE}\n ${SYSCALL_TO_ENTRY.replace(wrmsr(0xc0000084, DF), wrmsr(0xc0000084, 0xffffffffn))}\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r14).toBe(0n);
    expect(r.r13).toBe(2n);
  });

  it('with EFER.SCE clear: #UD, RIP at the SYSCALL', () => {
    const { td, outcome } = runTdGuest(`lea r12, [rip + 1f]\n 1: syscall\n mov r14, 0xbad\n ${HALT}`, { ud: `mov r15, 6\n mov rbx, [rsp]\n ${HALT}` });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r14, r.rbx]).toEqual([6n, 0n, r.r12]);
  });

  it('with a LOCK prefix: #UD (SDM Vol. 2A §2.1.1)', () => {
    const { td, outcome } = runTdGuest(`${SET_SCE}\n ${SYSCALL_TO_ENTRY.replace('syscall', '.byte 0xf0, 0x0f, 0x05')}\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(6n);
  });

  it('in compatibility mode: #UD, an Intel CPU has SYSCALL in 64-bit mode only', () => {
    const { td, outcome } = runTdGuest(`${SET_SCE}\n ${TO_COMPAT_MODE}\n .byte 0x0f, 0x05\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(6n);
  });
});

/**
 * A GDT with the 64-bit code descriptor also in slot 0x108 and data in 0x110 (limit 0x117), for
 * selectors above 0xFF: the GDT descriptor is built at 0x30000 (in the TD's boot pages).
 */
const GDT_UP_TO_0X110 = `
    mov rax, 0x00af9b000000ffff
    mov [0x10108], rax
    mov rax, 0x00cf93000000ffff
    mov [0x10110], rax
    mov word ptr [0x30000], 0x117
    mov qword ptr [0x30002], 0x10000
    lgdt [0x30000]`;
/** Alias VA 0x80_0000_0000 (PML4 slot 1) to VA 0 (slot 0), so code and stack can be reached above 4 GiB. */
const HIGH_ALIAS = 0x8000000000n;
const MAP_HIGH_ALIAS = `
    mov rax, cr3
    and rax, ~0xfff
    mov rbx, [rax]
    mov [rax + 8], rbx
    mov cr3, rax`;

describe('SYSCALL in a TD, more of the SDM\'s Operation section', () => {
  it('RFLAGS <- RFLAGS AND NOT(IA32_FMASK) for every flag bit, AC (18) and ID (21) too, while bit 1 stays 1; R11 keeps them', () => {
    // Linux's MSR_SYSCALL_MASK (arch/x86/kernel/cpu/common.c syscall_init): CF PF AF ZF SF TF IF DF
    // OF IOPL NT RF AC ID; plus bit 1, which the mask cannot clear (SDM Vol. 1 §3.4.3: reserved, 1).
    const mask = 0x257fd5n | 2n;
    const { td, outcome } = runTdGuest(`${SET_SCE}\n ${SYSCALL_TO_ENTRY
      .replace(wrmsr(0xc0000084, DF), wrmsr(0xc0000084, mask))
      .replace('std', 'pushfq\n or qword ptr [rsp], 0x240401\n popfq')}\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r14).toBe(0n);
    expect(r.rdi & 0x240401n).toBe(0x240401n);
    expect(r.r13).toBe(2n);
  });

  it('CS <- STAR[47:32] AND FFFCH and SS <- STAR[47:32] + 8 use all 16 selector bits', () => {
    const { td, outcome } = runTdGuest(`${SET_SCE}\n ${GDT_UP_TO_0X110}\n ${SYSCALL_TO_ENTRY.replace(wrmsr(0xc0000081, STAR), wrmsr(0xc0000081, 0x0023010b00000000n))}\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r14, r.rbx, r.rbp]).toEqual([0n, 0x108n, 0x113n]);
  });

  it('from CPL 2: CPL 0 at LSTAR (the TDCALL there is allowed), CS <- STAR[47:32] & ~3 and SS <- + 8, RSP unchanged', () => {
    const { td, outcome } = runTdGuest(`
      ${SET_SCE}
      ${syscallMsrs(STAR)}
      ${toCpl(2)}
      mov r9, rsp
      lea r12, [rip + after]
      syscall
    after:
      mov r14, 0xbad
    entry:
      mov bx, cs\n movzx ebx, bx\n mov bp, ss\n movzx ebp, bp\n mov rsi, rcx\n mov r8, rsp
      ${HALT}`);
    // HALT is a TDCALL, which is #GP at CPL > 0 (tdx-module tdx_td_dispatcher.c): reaching done says CPL 0.
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r14, r.rbx, r.rbp, r.rsi, r.r8]).toEqual([0n, 0x08n, 0x13n, r.r12, r.r9]);
  });
});

describe('SYSENTER in a TD (Intel: IA32_SYSENTER_CS/ESP/EIP are the TD\'s own)', () => {
  /** Inside the guest's stack page, below what the code above it pushed. */
  const SYSENTER_STACK = STACK_TOP - 0x200n;

  it('from 64-bit mode at CPL 0: RSP <- SYSENTER_ESP, RIP <- SYSENTER_EIP, CS <- SYSENTER_CS & ~3, SS <- CS + 8, IF cleared', () => {
    const { td, outcome } = runTdGuest(`
      ${wrmsr(0x174, 0xbn)}
      ${wrmsr(0x175, SYSENTER_STACK)}
      ${msrToEntry(0x176)}
      sti
      sysenter
      mov r14, 0xbad
      jmp done
    entry:
      mov bx, cs\n movzx ebx, bx\n mov bp, ss\n movzx ebp, bp\n mov rsi, rsp\n pushfq\n pop r13
    done:
      ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r14).toBe(0n);
    expect([r.rbx, r.rbp, r.rsi]).toEqual([0x08n, 0x10n, SYSENTER_STACK]);
    expect(r.r13 & 0x200n).toBe(0n);
  });

  it('in IA-32e mode RSP <- IA32_SYSENTER_ESP and RIP <- IA32_SYSENTER_EIP with all 64 bits (SDM Vol. 2B "SYSENTER", Operation)', () => {
    const { td, outcome } = runTdGuest(`
      ${MAP_HIGH_ALIAS}
      ${wrmsr(0x174, 0x8n)}
      ${wrmsr(0x175, HIGH_ALIAS + SYSENTER_STACK)}
      lea rax, [rip + entry]\n mov rdx, 0x${HIGH_ALIAS.toString(16)}\n add rax, rdx\n mov rdx, rax\n shr rdx, 32\n mov ecx, 0x176\n wrmsr
      sysenter
      mov r14, 0xbad
      jmp done
    entry:
      mov rsi, rsp\n lea rdi, [rip]
    done:
      ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r14).toBe(0n);
    expect(r.rsi).toBe(HIGH_ALIAS + SYSENTER_STACK);
    expect(r.rdi >> 32n).toBe(HIGH_ALIAS >> 32n);
  });

  it('CS <- IA32_SYSENTER_CS AND FFFCH and SS <- CS + 8 use all 16 selector bits', () => {
    const { td, outcome } = runTdGuest(`
      ${GDT_UP_TO_0X110}
      ${wrmsr(0x174, 0x10bn)}
      ${wrmsr(0x175, SYSENTER_STACK)}
      ${msrToEntry(0x176)}
      sysenter
      mov r14, 0xbad
      jmp done
    entry:
      mov bx, cs\n movzx ebx, bx\n mov bp, ss\n movzx ebp, bp
    done:
      ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r14, r.rbx, r.rbp]).toEqual([0n, 0x108n, 0x110n]);
  });

  it('from compatibility mode at CPL 0 (a change of code size alone) stops the run as not modelled, rather than staying in that mode', () => {
    const { outcome } = runTdGuest(`${wrmsr(0x174, 0x8n)}\n ${TO_COMPAT_MODE}\n .byte 0x0f, 0x34\n ${HALT}`);
    expect(outcome.outcome).toBe('fault');
    expect(outcome.reason).toMatch(/SYSENTER .*compatibility mode at CPL 0.*not modelled/);
  });

  it('from compatibility mode at CPL 2: 64-bit code at CPL 0 at SYSENTER_EIP (SDM Vol. 2B "SYSENTER": CS.L <- 1 in IA-32e mode)', () => {
    const { td, outcome } = runTdGuest(`
      ${wrmsr(0x174, 0x8n)}
      ${wrmsr(0x175, SYSENTER_STACK)}
      ${msrToEntry(0x176)}
      ${toCpl(2, { codeBits: 32 })}
    .code32
      sysenter
      mov esi, 0xbad
    .code64
    entry:
      mov bx, cs\n movzx ebx, bx\n mov bp, ss\n movzx ebp, bp\n mov rsi, rsp\n lea rdi, [rip]
      ${HALT}`);
    // HALT is a TDCALL, #GP below CPL 0: done says CPL 0, and RIP-relative LEA says 64-bit code.
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.rbx, r.rbp, r.rsi]).toEqual([0x08n, 0x10n, SYSENTER_STACK]);
    expect(r.rdi > CODE_BASE).toBe(true);
  });

  it('from CPL 2: CPL 0 at SYSENTER_EIP on SYSENTER_ESP (the TDCALL there is allowed), CS <- SYSENTER_CS & ~3, SS <- CS + 8', () => {
    const { td, outcome } = runTdGuest(`
      ${wrmsr(0x174, 0xbn)}
      ${wrmsr(0x175, SYSENTER_STACK)}
      ${msrToEntry(0x176)}
      ${toCpl(2)}
      sysenter
      mov r14, 0xbad
    entry:
      mov bx, cs\n movzx ebx, bx\n mov bp, ss\n movzx ebp, bp\n mov rsi, rsp
      ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r14, r.rbx, r.rbp, r.rsi]).toEqual([0n, 0x08n, 0x10n, SYSENTER_STACK]);
  });

  it('clears RF (SDM Vol. 2B "SYSENTER", Operation: RFLAGS.RF <- 0): an INT3 at the entry point pushes RF = 0', () => {
    // IRETQ loads RF from its frame, so the SYSENTER runs with RF = 1; a trap's frame holds RFLAGS
    // as the instruction before it left it (SDM Vol. 3 §6.12.1, §18.3.1.1).
    const { td, outcome } = runTdGuest(`
      ${wrmsr(0x174, 0x8n)}
      ${wrmsr(0x175, SYSENTER_STACK)}
      ${msrToEntry(0x176)}
      ${IRETQ_WITH_RF}
      sysenter
      mov r14, 0xbad
    entry:
      int3
      ${HALT}`, { extra: `mov r13, [rsp + 16]\n mov r15, 3\n ${HALT}`, idt: { 3: CODE_BASE + 0x600n } });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r14]).toEqual([3n, 0n]);
    expect(r.r13 & 0x10000n).toBe(0n);
  });

  it('with IA32_SYSENTER_CS[15:2] = 0: #GP(0)', () => {
    const { td, outcome } = runTdGuest(`${wrmsr(0x174, 0x3n)}\n sysenter\n mov r14, 0xbad\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect([td.platform.machine.vcpu.regs.r15, td.platform.machine.vcpu.regs.r14]).toEqual([13n, 0n]);
  });
});

describe('SYSCALL and SYSENTER on an SNP guest (AMD; KVM passes STAR, LSTAR, CSTAR, SFMASK through: svm.c direct_access_msrs)', () => {
  // #VC handler: a WRMSR of a SYSCALL MSR must not raise one.
  const VC_SEEN = 'mov r14, 29\n hlt';

  it.each([['counting', true], ['fast', false]])('SYSCALL from 64-bit mode at CPL 0 as on Intel, with the MSRs written without a #VC (%s mode)', (_mode, countInstructions) => {
    const g = snpGuest(`${SET_SCE}\n ${SYSCALL_TO_ENTRY}\n hlt`, { vcHandler: VC_SEEN, countInstructions });
    const outcome = g.run();
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = g.vm.vcpu.regs;
    expect(r.r14).toBe(0n);
    expect([r.rbx, r.rbp]).toEqual([0x08n, 0x13n]);
    expect(r.rsi).toBe(r.r12);
    expect([r.rdi & DF, r.r13 & DF]).toEqual([DF, 0n]);
  });

  it('the SYSCALL MSRs read back what the guest wrote, without a #VC', () => {
    const g = snpGuest(`${wrmsr(0xc0000083, 0x123456789000n)}\n mov ecx, 0xc0000083\n rdmsr\n shl rdx, 32\n or rax, rdx\n mov rbx, rax\n hlt`, { vcHandler: VC_SEEN });
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.rbx, g.vm.vcpu.regs.r14]).toEqual([0x123456789000n, 0n]);
  });

  it('SYSCALL with EFER.SCE clear: #UD', () => {
    const g = snpGuest('syscall\n mov r14, 0xbad\n hlt');
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r14]).toEqual([6n, 0n]);
  });

  it('SYSENTER in long mode: #UD on an AMD CPU (APM Vol. 3 "SYSENTER", Exceptions)', () => {
    const g = snpGuest(`${wrmsr(0x174, 0x10n)}\n sysenter\n mov r14, 0xbad\n hlt`);
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r14]).toEqual([6n, 0n]);
  });

  it('SYSCALL saves RFLAGS in R11 with RF cleared (APM Vol. 3 "SYSCALL", Operation: R11 = RFLAGS with RF cleared)', () => {
    // IRETQ loads RF from its frame (APM Vol. 3 "IRET"), so the SYSCALL runs with RF = 1.
    const g = snpGuest(`
      ${SET_SCE}
      ${SYSCALL_TO_ENTRY.replace('std\n', `std\n ${IRETQ_WITH_RF}`)}
      hlt`, { vcHandler: VC_SEEN });
    const outcome = g.run();
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = g.vm.vcpu.regs;
    expect(r.r14).toBe(0n);
    expect([r.rdi & DF, r.rdi & 0x10000n]).toEqual([DF, 0n]);
  });

  it('SYSCALL from compatibility mode is legal on an AMD CPU (to CSTAR), not #UD: it stops the run as not modelled', () => {
    const g = snpGuest(`${SET_SCE}\n ${TO_COMPAT_MODE}\n .byte 0x0f, 0x05\n hlt`, { launch: SNP_GUEST_CPL3_LAUNCH });
    const outcome = g.run();
    expect(outcome.outcome).toBe('fault');
    expect(outcome.reason).toMatch(/SYSCALL outside 64-bit mode on an AMD CPU.*not modelled/);
  });

  it('SYSCALL from CPL 3 enters LSTAR at CPL 0 and SYSRET returns to CPL 3: a user program\'s system call and its return', () => {
    // STAR[63:48] = 0x23: SYSRETQ loads CS 0x23 + 16 | 3 = 0x33 and SS 0x23 + 8 | 3 = 0x2b (APM Vol. 3 "SYSRET").
    const g = snpGuest(syscallFromCpl3(STAR, 'mov r10, cs\n mov rdi, 0x6f\n hlt', 'sysretq'), { launch: SNP_GUEST_CPL3_LAUNCH });
    const outcome = g.run();
    const r = g.vm.vcpu.regs;
    expect([r.rbx, r.rbp, r.rsi, r.r8]).toEqual([0x08n, 0x13n, r.r12, r.r9]);
    // Back at CPL 3: the HLT there is the CPU's #GP(0), which the default handler records (r13 = 13).
    expect([r.r10, r.rdi, r.r13]).toEqual([0x33n, 0x6fn, 13n]);
    expect(outcome.outcome, outcome.reason).toBe('done');
  });
});

describe('SYSCALL from CPL 3 with Linux\'s STAR (__KERNEL_CS 0x10, syscall_init: STAR[47:32] = __KERNEL_CS, [63:48] = __USER32_CS 0x23), and with 0x18', () => {
  it.each([0x10n, 0x18n])('STAR[47:32] = %i: enters LSTAR at CPL 0 with CS = STAR[47:32] and SS = CS + 8 (SDM Vol. 2B "SYSCALL": CS <- STAR[47:32] AND FFFCH, SS <- STAR[47:32] + 8)', (cs) => {
    const g = snpGuest(syscallFromCpl3(0x0023000000000000n | (cs << 32n), 'hlt', 'hlt'), { launch: SNP_GUEST_CPL3_LAUNCH });
    const outcome = g.run();
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.rbx, r.rbp, r.rsi, r.r8, r.r13]).toEqual([cs, cs + 8n, r.r12, r.r9, 0n]);
  });
});

describe('SYSENTER on an SNP AP outside long mode (AMD: legal there, APM Vol. 3 "SYSENTER")', () => {
  const VMSA = 0x11000n;
  const CODE = 0x9f000n;
  /**
   * Starts vCPU 1 from a guest-written VMSA (flat 32-bit, or real mode with CS base CODE), runs
   * `code` at CODE to its SYSENTER and returns the injection the CPU makes for it.
   */
  function sysenterOnAp(realMode: boolean, code: number[]) {
    const p = SnpPlatform.create({ memoryBytes: 32n << 20n, vcpus: 2 });
    const b = flat32VmsaPage();
    if (realMode) {
      b.writeUInt16LE(Number(CODE >> 4n), 0x10);                    // CS selector = base >> 4
      b.writeUInt16LE(0x9b, 0x12);
      b.writeUInt32LE(0xffff, 0x14);
      b.writeBigUInt64LE(CODE, 0x18);                                // CS base
      b.writeBigUInt64LE(0x1000n, 0xd0);                             // EFER.SVME only
      b.writeBigUInt64LE(0x10n, 0x158);                              // CR0: PE clear
      b.writeBigUInt64LE(0n, 0x178);                                 // IP 0
    } else {
      b.writeBigUInt64LE(CODE, 0x178);
    }
    p.machine.memory.write(VMSA, b);
    expect(p.handle.rmpUpdate(VMSA, { assigned: true, pageSize: '4k', gpa: VMSA, asid: p.asid, immutable: false }).rc).toBe(0);
    p.rmp.setValidated(VMSA, true);
    p.rmp.adjustPermissions(VMSA, 1, 0, true);
    p.launchUpdateRange(CODE, 0x1000n);
    p.machine.memory.write(CODE, new Uint8Array(code));
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.machine.switchVcpu(1);
    for (let i = 0; i < 8; i++) {
      const exit = p.machine.vcpu.run();
      const step = p.handleExit(exit);
      if (exit.kind === 'system-call') return { sysenterCs: p.machine.vcpu.readMsr(0x174), injected: p.trace.ofType('inject').map((e) => e['vector']) };
      expect(step.kind, JSON.stringify(exit, (_, v) => typeof v === 'bigint' ? v.toString(16) : v)).toBe('resume');
    }
    throw new Error('no SYSENTER exit');
  }
  // WRMSR IA32_SYSENTER_CS <- 8, then SYSENTER; with an operand-size prefix in real mode.
  const wrmsrCs8 = (o16: number[]) => [...o16, 0xb9, 0x74, 0x01, 0, 0, ...o16, 0xb8, 0x08, 0, 0, 0, ...o16, 0x31, 0xd2, 0x0f, 0x30];
  const SYSENTER = [0x0f, 0x34];

  it('in real mode: #GP(0), whatever IA32_SYSENTER_CS holds (APM Vol. 3 "SYSENTER", Exceptions: #GP in real mode; SDM Vol. 2B: #GP(0) if CR0.PE = 0)', () => {
    const { sysenterCs, injected } = sysenterOnAp(true, [...wrmsrCs8([0x66]), ...SYSENTER]);
    expect([sysenterCs, injected]).toEqual([8n, [13]]);
  });

  it('in legacy protected mode with IA32_SYSENTER_CS null: #GP(0), not the long-mode #UD (APM Vol. 3 "SYSENTER", Exceptions)', () => {
    const { injected } = sysenterOnAp(false, SYSENTER);
    expect(injected).toEqual([13]);
  });
});
