// MOV to and from the debug registers (MOV r, DRn 0F 21 /r; MOV DRn, r 0F 23 /r) as real guest
// instructions, on both platforms.
// SNP: while the guest's SEV_FEATURES lack DebugSwap (ours: SNPActive only), KVM's
// sev_es_init_vmcb (arch/x86/kvm/svm/sev.c) clears the debug-register intercepts and sets
// INTERCEPT_DR7_READ and INTERCEPT_DR7_WRITE, so MOV from DR7 is #VC SVM_EXIT_READ_DR7 (0x27) and
// MOV to DR7 #VC SVM_EXIT_WRITE_DR7 (0x37), RIP at the instruction (APM Vol. 2 §15.35.5); the other
// debug registers are the CPU's. The CPU's own checks come before the intercept (APM Vol. 2 §15.9:
// #GP at CPL > 0; LOCK and REX.R are #UD, SDM Vol. 2B "MOV—Move to/from Debug Registers"). Linux
// forwards a write as GHCB NAE 0x37 with RAX = the value (vc_handle_dr7_write); KVM's
// sev_es_validate_vmgexit needs RAX valid for it (READ_DR7 needs nothing), and dr_interception
// returns at once for an SEV-ES guest: SW_EXITINFO1/2 = 0 and nothing else.
// TDX: MOV-DR exiting is clear in the TD VMCS (vmcs_defs.h PROCBASED_CTLS_INIT 0x91220088, bit 23
// neither set nor variable), so the TD runs MOV DR itself; td_vmcs_init.c sets GUEST_DR7 = 0x400.
import { describe, expect, it } from 'vitest';
import { HALT, runTdGuest } from '../helpers/tdx-guest.js';
import { GHCB_GPA, REGISTER_GHCB, SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, ghcbCall, privateIdentityWithGhcb, snpGuest } from '../helpers/snp-guest.js';
import { GHCB_ERR, GHCB_OFFSET, SVM_EXIT } from '../../src/platform/snp/ghcb-page.js';
import { CODE_BASE, simpleGuest } from '../helpers/guest-setup.js';

// #VC handler: error code -> R15, the pushed RIP -> RBX, vector -> R13.
const VC_FRAME = 'pop r15\n mov rbx, [rsp]\n mov r13, 29\n hlt';

describe('the mov-dr exit (Machine.debugRegisterIntercepts, VMCB offset 000h layout: bit n reads of DRn, bit 16 + n writes)', () => {
  it('stops before exactly the named register and direction, and reports register, GPR (ModRM.rm + REX.B) and length', () => {
    for (const countInstructions of [true, false]) {
      // mov rax, dr0 (not named); mov r9, dr7 (41 0F 21 F9); mov dr7, rdx (0F 23 FA); mov dr3, r15 (41 0F 23 DF).
      const vm = simpleGuest('mov rax, dr0\n mov r9, dr7\n mov dr7, rdx\n mov dr3, r15\n hlt', { countInstructions });
      vm.debugRegisterIntercepts = (1 << 7) | (1 << 23) | (1 << 19);
      const exits = [];
      for (let i = 0; i < 4; i++) {
        const exit = vm.vcpu.run();
        exits.push(exit);
        if (exit.kind !== 'mov-dr') break;
        vm.vcpu.complete(exit);
      }
      expect(exits, `countInstructions ${countInstructions}`).toEqual([
        { kind: 'mov-dr', rip: CODE_BASE + 3n, length: 4, write: false, dr: 7, register: 'r9' },
        { kind: 'mov-dr', rip: CODE_BASE + 7n, length: 3, write: true, dr: 7, register: 'rdx' },
        { kind: 'mov-dr', rip: CODE_BASE + 10n, length: 4, write: true, dr: 3, register: 'r15' },
        { kind: 'hlt', rip: CODE_BASE + 15n },
      ]);
      vm.close();
    }
  });
});

describe('MOV DR on an SNP guest (DR7 intercepted, KVM sev_es_init_vmcb without DebugSwap)', () => {
  it.each([
    ['mov rax, dr7', 0x27n],
    ['mov dr7, rax', 0x37n],
    ['mov r9, dr7', 0x27n],
    ['mov dr7, r9', 0x37n],
  ])('%s: #VC with the exit code as error code (%s), RIP at the instruction, the instruction not run', (insn, code) => {
    for (const countInstructions of [true, false]) {
      const g = snpGuest(`lea r12, [rip + 1f]\n mov rax, 0x401\n mov r9, 0x401\n 1: ${insn}\n mov r13, 0xbad\n hlt`, { vcHandler: VC_FRAME, countInstructions });
      expect(g.run().outcome).toBe('done');
      const r = g.vm.vcpu.regs;
      expect([r.r13, r.r15, r.rbx], `countInstructions ${countInstructions}`).toEqual([29n, code, r.r12]);
      // Not run: a read left RAX/R9 as they were.
      expect([r.rax, r.r9]).toEqual([0x401n, 0x401n]);
    }
    expect([SVM_EXIT.READ_DR7, SVM_EXIT.WRITE_DR7]).toEqual([0x27, 0x37]);
  });

  it('DR0-DR3 and DR6 are not intercepted: they run on the CPU, with no #VC', () => {
    const g = snpGuest(`
      mov r13, 0
      mov rax, 0x1000\n mov dr0, rax\n mov rbx, dr0
      mov rax, 0x2000\n mov dr3, rax\n mov rcx, dr3
      mov rdx, dr6
      hlt`);
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.rbx, r.rcx]).toEqual([0n, 0x1000n, 0x2000n]);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });

  it('the CPU\'s checks come first: at CPL 3 #GP(0), with LOCK or REX.R #UD, and no #VC', () => {
    const atCpl3 = (insn: string, cpl3: boolean) => {
      const g = snpGuest(`${cpl3 ? SNP_GUEST_TO_CPL3 : ''}\n ${insn}\n hlt`, { launch: SNP_GUEST_CPL3_LAUNCH });
      g.run();
      return { vc: g.trace.ofType('inject-vc'), other: g.trace.ofType('inject') };
    };
    for (const insn of ['mov rax, dr7', 'mov dr7, rax']) {
      const cpl3 = atCpl3(insn, true);
      expect(cpl3.vc).toEqual([]);
      expect(cpl3.other[0]).toMatchObject({ vector: 13, errorCode: 0n });
    }
    // F0 0F 21 F8: LOCK MOV RAX, DR7 (SDM Vol. 2A §2.1.1: LOCK on an instruction not listed is #UD).
    // 44 0F 21 F8: REX.R, "DR15" (SDM Vol. 2B MOV DR: #UD if REX.R = 1). Both at CPL 0.
    for (const bytes of ['0xf0, 0x0f, 0x21, 0xf8', '0x44, 0x0f, 0x21, 0xf8', '0xf0, 0x0f, 0x23, 0xf8']) {
      const ud = atCpl3(`.byte ${bytes}`, false);
      expect(ud.vc, bytes).toEqual([]);
      expect(ud.other[0], bytes).toMatchObject({ vector: 6 });
    }
  });

  it('the honest VMM answers DR7 NAE events as KVM: WRITE_DR7 with RAX valid and READ_DR7 get SW_EXITINFO1/2 = 0; WRITE_DR7 without RAX is MISSING_INPUT', () => {
    const ask = (exitCode: number, rax: bigint | undefined) => {
      const g = snpGuest(`
        ${REGISTER_GHCB}
        mov r13, 0
        ${ghcbCall({ exitCode: BigInt(exitCode), ...(rax !== undefined ? { rax } : {}) })}
        mov rbx, [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.swExitInfo1)).toString(16)}]
        mov rsi, [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.swExitInfo2)).toString(16)}]
        mov rdx, dr7
        hlt`, { mappings: privateIdentityWithGhcb(), vcHandler: 'mov r13, 29\n hlt' });
      expect(g.run().outcome).toBe('done');
      return g.vm.vcpu.regs;
    };
    // Linux vc_handle_dr7_write: RAX = (value & 0xffff23ff) | 0x400, SW_EXITINFO1/2 = 0.
    const write = ask(SVM_EXIT.WRITE_DR7, 0x401n);
    expect([write.rbx, write.rsi]).toEqual([0n, 0n]);
    const read = ask(SVM_EXIT.READ_DR7, undefined);
    expect([read.rbx, read.rsi]).toEqual([0n, 0n]);
    const missing = ask(SVM_EXIT.WRITE_DR7, undefined);
    expect([missing.rbx, missing.rsi]).toEqual([2n, GHCB_ERR.MISSING_INPUT]);
  });
});

describe('MOV DR in a TD (MOV-DR exiting clear): the TD runs it', () => {
  it('DR7 reads 0x400 (td_vmcs_init.c GUEST_DR7) and takes a write, with no #VE', () => {
    const { td, outcome } = runTdGuest(`
      mov r15, 0
      mov r8, dr7
      mov rax, 0x500\n mov dr7, rax\n mov r9, dr7
      mov rax, 0x1000\n mov dr0, rax\n mov r12, dr0
      ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    // DR7 0x500: LE (bit 8) besides the fixed bit 10, no breakpoint enabled.
    expect([r.r15, r.r8, r.r9, r.r12]).toEqual([0n, 0x400n, 0x500n, 0x1000n]);
  });

  it('with LOCK: #UD, the CPU\'s (SDM Vol. 2A §2.1.1), where the emulator would run it', () => {
    const { td, outcome } = runTdGuest(`mov r15, 0\n .byte 0xf0, 0x0f, 0x21, 0xf8\n ${HALT}`);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(6n);
  });
});
