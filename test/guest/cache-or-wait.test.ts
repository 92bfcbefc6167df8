// INVD, WBINVD, WBNOINVD, MONITOR and MWAIT as real guest instructions. The emulator alone runs them
// as NOPs; both platforms intercept them. A TD takes #VE with the VMX exit reason
// (tdx_td_dispatcher.c: td_generic_ve_exit for VMEXIT_REASON_INVD 13, MWAIT 36, MONITOR 39,
// WBINVD 54; Linux Documentation/arch/x86/tdx.rst lists them as #VE-inducing instructions). An SNP
// guest takes #VC with the SVM exit code (KVM init_vmcb sets the intercepts; APM Vol. 2 §15.35.5),
// and KVM answers the GHCB request for WBINVD, MONITOR and MWAIT by doing nothing (Linux
// vc_handle_wbinvd, vc_handle_monitor, vc_handle_mwait; KVM sev_es_validate_vmgexit).
import { describe, expect, it } from 'vitest';
import { HALT, TDCALL, runTdGuest, toCpl } from '../helpers/tdx-guest.js';
import { GHCB_GPA, REGISTER_GHCB, SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, ghcbCall, privateIdentityWithGhcb, snpGuest } from '../helpers/snp-guest.js';
import { GHCB_ERR, GHCB_OFFSET, SVM_EXIT } from '../../src/platform/snp/ghcb-page.js';

// #VE handler: TDG.VP.VEINFO.GET; exit reason -> R13, qualification -> RBP, instruction length ->
// RDI; counts in R12; steps over the instruction and returns.
const VE_SKIP = `
  push rax\n push rcx\n push rdx\n push r8\n push r9\n push r10
  mov rax, 3\n ${TDCALL}
  mov r13, rcx\n mov rbp, rdx\n mov edi, r10d\n inc r12
  pop r10\n pop r9\n pop r8\n pop rdx\n pop rcx\n pop rax
  add [rsp], rdi
  iretq`;

const INSTRUCTIONS = [
  ['INVD', 'invd', 13n, 2n, SVM_EXIT.INVD],
  ['WBINVD', 'wbinvd', 54n, 2n, SVM_EXIT.WBINVD],
  ['WBNOINVD', '.byte 0xf3, 0x0f, 0x09', 54n, 3n, SVM_EXIT.WBINVD],
  ['MONITOR', 'monitor', 39n, 3n, SVM_EXIT.MONITOR],
  ['MWAIT', 'mwait', 36n, 3n, SVM_EXIT.MWAIT],
] as const;

describe('in a TD: #VE with the exit reason, RIP at the instruction (td_generic_ve_exit)', () => {
  it.each(INSTRUCTIONS)('%s (%s): #VE, exit reason %d, instruction length %d, qualification 0', (_name, insn, reason, length) => {
    const { td, outcome } = runTdGuest(`xor r12, r12\n mov rbp, -1\n lea rax, [rip]\n xor ecx, ecx\n xor edx, edx\n ${insn}\n mov r14, 0x77\n ${HALT}`, { ve: VE_SKIP });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13, r.rdi, r.rbp, r.r14]).toEqual([1n, reason, length, 0n, 0x77n]);
  });

  // SDM Vol. 2A "INVD", Vol. 2B "WBINVD", "WBNOINVD": #GP(0) "If the current privilege level is not
  // 0"; Vol. 2B "MONITOR", "MWAIT": #UD "If current privilege level is not 0". Such faults come
  // before the VM exit (SDM Vol. 3C §26.1.1), so the module sees no exit and the TD no #VE. CPL 1
  // and 2, not only 3: the check is CPL > 0.
  it.each(INSTRUCTIONS.flatMap(([name, insn]) => [[name, insn, 1], [name, insn, 2]] as const))('%s (%s) at CPL %s: the CPU\'s fault, not #VE', (name, insn, cpl) => {
    const { td, outcome } = runTdGuest(`xor r12, r12\n ${toCpl(cpl)}\n ${insn}\n mov r14, 0xbad\n ${HALT}`, { ve: VE_SKIP });
    expect(outcome.outcome, outcome.reason).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r12, r.r14]).toEqual([name === 'MONITOR' || name === 'MWAIT' ? 6n : 13n, 0n, 0n]);
    expect(td.platform.trace.ofType('exception-injected')).toMatchObject([{ vector: name === 'MONITOR' || name === 'MWAIT' ? 6 : 13 }]);
  });

  it('with a LOCK prefix: #UD, not #VE', () => {
    const { td, outcome } = runTdGuest(`xor r12, r12\n .byte 0xf0, 0x0f, 0x09\n ${HALT}`, { ve: VE_SKIP });
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect([td.platform.machine.vcpu.regs.r15, td.platform.machine.vcpu.regs.r12]).toEqual([6n, 0n]);
  });
});

describe('on an SNP guest: #VC with the SVM exit code, RIP at the instruction', () => {
  // #VC handler: error code -> R15, the pushed RIP -> RBX, vector -> R13.
  const VC_FRAME = 'pop r15\n mov rbx, [rsp]\n mov r13, 29\n hlt';

  it.each(INSTRUCTIONS)('%s (%s): #VC', (_name, insn, _reason, _length, exitCode) => {
    const g = snpGuest(`lea r12, [rip + 1f]\n lea rax, [rip]\n xor ecx, ecx\n xor edx, edx\n 1: ${insn}\n mov r13, 0xbad\n hlt`, { vcHandler: VC_FRAME });
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15, r.rbx]).toEqual([29n, BigInt(exitCode), r.r12]);
  });

  it('at CPL 3: WBINVD and INVD raise #GP(0), MONITOR and MWAIT #UD, before any intercept', () => {
    const atCpl3 = (insn: string) => {
      const g = snpGuest(`
        ${SNP_GUEST_TO_CPL3}
        ${insn}
        hlt`, { launch: SNP_GUEST_CPL3_LAUNCH });
      g.run();
      expect(g.trace.ofType('inject-vc'), insn).toEqual([]);
      return g.trace.ofType('inject')[0];
    };
    expect(atCpl3('wbinvd')).toMatchObject({ vector: 13, errorCode: 0n, reason: 'wbinvd at CPL > 0' });
    expect(atCpl3('invd')).toMatchObject({ vector: 13, errorCode: 0n, reason: 'invd at CPL > 0' });
    expect(atCpl3('monitor')).toMatchObject({ vector: 6, reason: 'monitor at CPL > 0' });
    expect(atCpl3('mwait')).toMatchObject({ vector: 6, reason: 'mwait at CPL > 0' });
  });

  it('the honest VMM answers the GHCB requests for WBINVD, INVD, MONITOR and MWAIT with success, and MONITOR without RDX with MISSING_INPUT', () => {
    const ask = (exitCode: number, extra: string) => {
      const g = snpGuest(`
        ${REGISTER_GHCB}
        ${extra}
        ${ghcbCall({ exitCode: BigInt(exitCode), rax: 0x1000n })}
        mov rbx, [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.swExitInfo1)).toString(16)}]
        mov rsi, [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.swExitInfo2)).toString(16)}]
        hlt`, { mappings: privateIdentityWithGhcb() });
      expect(g.run().outcome).toBe('done');
      return [g.vm.vcpu.regs.rbx, g.vm.vcpu.regs.rsi];
    };
    // The field's valid bit is bit offset/8 of the bitmap (ghcbCall leaves it as it is).
    const valid = (field: 'rcx' | 'rdx') => {
      const bit = GHCB_OFFSET[field] / 8;
      return `mov qword ptr [0x${(GHCB_GPA + BigInt(GHCB_OFFSET[field])).toString(16)}], 0\n`
        + `or byte ptr [0x${(GHCB_GPA + BigInt(GHCB_OFFSET.validBitmap + (bit >> 3))).toString(16)}], ${1 << (bit & 7)}`;
    };
    expect(ask(SVM_EXIT.WBINVD, '')).toEqual([0n, 0n]);
    expect(ask(SVM_EXIT.INVD, '')).toEqual([0n, 0n]);
    expect(ask(SVM_EXIT.MWAIT, valid('rcx'))).toEqual([0n, 0n]);
    expect(ask(SVM_EXIT.MONITOR, `${valid('rcx')}\n ${valid('rdx')}`)).toEqual([0n, 0n]);
    expect(ask(SVM_EXIT.MONITOR, valid('rcx'))).toEqual([2n, GHCB_ERR.MISSING_INPUT]);
  });
});
