// SYSCALL and SYSENTER as real guest instructions. Neither TDX nor SEV-SNP intercepts them: the CPU
// runs them with the MSRs the guest wrote (Intel SDM Vol. 2B "SYSCALL", "SYSENTER"; AMD APM Vol. 3
// "SYSCALL", "SYSENTER"). Unicorn alone steps over both without doing anything
// (qemu/target/i386/seg_helper.c helper_syscall, helper_sysenter), so these tests fail without
// src/cpu/fast-system-call.ts.
import { describe, expect, it } from 'vitest';
import { HALT, TO_COMPAT_MODE, runTdGuest } from '../helpers/tdx-guest.js';
import { SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, snpGuest } from '../helpers/snp-guest.js';
import { STACK_TOP } from '../helpers/guest-setup.js';

const wrmsr = (msr: number, value: bigint) =>
  `mov ecx, 0x${msr.toString(16)}\n mov eax, 0x${(value & 0xffffffffn).toString(16)}\n mov edx, 0x${(value >> 32n).toString(16)}\n wrmsr`;
/** Sets EFER.SCE, keeping the rest (the guest reads EFER; both platforms let it write SCE). */
const SET_SCE = 'mov ecx, 0xc0000080\n rdmsr\n or eax, 1\n wrmsr';
/**
 * STAR[47:32] = 0x0B, the GDT's 64-bit code selector 0x08 with RPL 3: CS takes it with RPL forced to
 * 0 (0x08), SS is it plus 8 (0x13), as both manuals' Operation sections write it.
 */
const STAR = 0x0023000b00000000n;
const DF = 0x400n;
/**
 * Points LSTAR at `entry`, masks DF (FMASK/SFMASK), sets DF and runs SYSCALL; R12 = the address
 * after the SYSCALL. At `entry`: CS -> RBX, SS -> RBP, RCX -> RSI, R11 -> RDI, RFLAGS -> R13.
 */
const SYSCALL_TO_ENTRY = `
    ${wrmsr(0xc0000081, STAR)}
    lea rax, [rip + entry]\n mov rdx, rax\n shr rdx, 32\n mov ecx, 0xc0000082\n wrmsr
    ${wrmsr(0xc0000084, DF)}
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

describe('SYSENTER in a TD (Intel: IA32_SYSENTER_CS/ESP/EIP are the TD\'s own)', () => {
  /** Inside the guest's stack page, below what the code above it pushed. */
  const SYSENTER_STACK = STACK_TOP - 0x200n;

  it('from 64-bit mode at CPL 0: RSP <- SYSENTER_ESP, RIP <- SYSENTER_EIP, CS <- SYSENTER_CS & ~3, SS <- CS + 8, IF cleared', () => {
    const { td, outcome } = runTdGuest(`
      ${wrmsr(0x174, 0xbn)}
      ${wrmsr(0x175, SYSENTER_STACK)}
      lea rax, [rip + entry]\n mov rdx, rax\n shr rdx, 32\n mov ecx, 0x176\n wrmsr
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

  it('SYSCALL from CPL 3 stops the run and says the privilege change is not modelled, rather than running on at CPL 3', () => {
    const g = snpGuest(`
      ${SET_SCE}
      ${SNP_GUEST_TO_CPL3}
      syscall
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH });
    const outcome = g.run();
    expect(outcome.outcome).toBe('fault');
    expect(outcome.reason).toMatch(/SYSCALL from CPL 3.*not modelled/);
  });
});
