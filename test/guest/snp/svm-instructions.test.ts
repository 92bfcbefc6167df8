// The SNP guest's own SVM instructions (0F 01 D8-DF), run as real guest instructions. KVM intercepts
// all eight (svm.c init_vmcb; VMRUN's intercept is mandatory, APM Vol. 2 §15.5.1), and an
// intercepted non-automatic exit of an SEV-ES/SNP guest is #VC with the SVM exit code as its error
// code and RIP at the instruction (APM Vol. 2 §15.35.5; uapi/asm/svm.h SVM_EXIT_VMRUN 0x80 ..
// SVM_EXIT_SKINIT 0x86, SVM_EXIT_INVLPGA 0x7a). VMMCALL is the one the guest forwards (GHCB spec NAE
// 0x81; Linux vc_handle_vmmcall). CPL > 0 is #GP(0) before the intercept, except for VMMCALL
// (src/platform/snp/svm-insn.ts). VMCALL is VMX: an AMD CPU has none, #UD.
import { describe, expect, it } from 'vitest';
import { svmInstruction } from '../../../src/platform/snp/svm-insn.js';
import { SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, snpGuest } from '../../helpers/snp-guest.js';

const VC = 29n;
// #VC handler: error code -> R15, the pushed RIP -> RBX, vector -> R13.
const VC_FRAME = 'pop r15\n mov rbx, [rsp]\n mov r13, 29\n hlt';

const CASES = [
  ['vmrun', '0x0f, 0x01, 0xd8', 0x80n], ['vmmcall', '0x0f, 0x01, 0xd9', 0x81n], ['vmload', '0x0f, 0x01, 0xda', 0x82n],
  ['vmsave', '0x0f, 0x01, 0xdb', 0x83n], ['stgi', '0x0f, 0x01, 0xdc', 0x84n], ['clgi', '0x0f, 0x01, 0xdd', 0x85n],
  ['skinit', '0x0f, 0x01, 0xde', 0x86n], ['invlpga', '0x0f, 0x01, 0xdf', 0x7an],
] as const;

/** Runs `bytes` at CPL 0 (RAX pointing at a page the instruction must not touch) and returns what the #VC handler saw. */
function runAtCpl0(bytes: string, countInstructions = true) {
  const g = snpGuest(`
      mov rax, 0x400000
      lea r12, [rip + 1f]
    1: .byte ${bytes}
      mov r13, 0xbad
      hlt`, { vcHandler: VC_FRAME, countInstructions });
  const outcome = g.run();
  const r = g.vm.vcpu.regs;
  return { g, outcome, vector: r.r13, errorCode: r.r15, pushedRip: r.rbx, insnRip: r.r12 };
}

describe('SNP guest SVM instructions at CPL 0: #VC with the SVM exit code, RIP at the instruction', () => {
  for (const [name, bytes, exitCode] of CASES) {
    it(`${name} (${bytes}): #VC 0x${exitCode.toString(16)}`, () => {
      const { g, outcome, vector, errorCode, pushedRip, insnRip } = runAtCpl0(bytes);
      expect(outcome.outcome).toBe('done');
      expect([vector, errorCode, pushedRip]).toEqual([VC, exitCode, insnRip]);
      expect(g.trace.ofType('inject-vc')).toMatchObject([{ vector: 29, errorCode: exitCode, reason: name }]);
      // Nothing ran: VMSAVE did not write a "VMCB" at RAX.
      expect(g.vm.memory.read(0x400000n, 16).every((b) => b === 0)).toBe(true);
    });
  }

  it('behind redundant prefixes (15 bytes), in counting and fast mode: the same #VC', () => {
    const padded = `${Array(12).fill('0x2e').join(', ')}, 0x0f, 0x01, 0xd9`;
    for (const countInstructions of [true, false]) {
      const { outcome, vector, errorCode, pushedRip, insnRip } = runAtCpl0(padded, countInstructions);
      expect(outcome.outcome).toBe('done');
      expect([vector, errorCode, pushedRip]).toEqual([VC, 0x81n, insnRip]);
    }
    const { vector, errorCode } = runAtCpl0('0x3e, 0x66, 0x0f, 0x01, 0xd8', false);
    expect([vector, errorCode]).toEqual([VC, 0x80n]);
  });

  it('VMGEXIT (F3 0F 01 D9) is still VMGEXIT, not VMMCALL\'s #VC', () => {
    const g = snpGuest(`
      mov ecx, 0xc0010130
      mov eax, 0x004       # GHCB MSR protocol: SEV information request
      xor edx, edx
      wrmsr
      .byte 0xf3, 0x0f, 0x01, 0xd9
      hlt`, { vcHandler: VC_FRAME });
    expect(g.run().outcome).toBe('done');
    expect(g.trace.ofType('inject-vc')).toEqual([]);
    expect(g.trace.ofType('vmgexit')).toHaveLength(1);
  });

  it('VMCALL (0F 01 C1, VMX) is #UD on an AMD CPU', () => {
    const g = snpGuest('.byte 0x0f, 0x01, 0xc1\n hlt');
    expect(g.run().outcome).toBe('done');
    expect(g.vm.vcpu.regs.r13).toBe(6n);
    expect(g.trace.ofType('inject-vc')).toEqual([]);
  });
});

describe('SNP guest SVM instructions at CPL 3', () => {
  /** IRETQs to CPL 3 (user code 0x1b, user data 0x23, written into the GDT by the guest) and runs `bytes` there. */
  function atCpl3(bytes: string) {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      .byte ${bytes}
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH });
    g.run();
    return g;
  }

  it('VMRUN, VMLOAD, STGI, INVLPGA: #GP(0), checked before the intercept', () => {
    for (const [name, bytes] of [['vmrun', '0x0f, 0x01, 0xd8'], ['vmload', '0x0f, 0x01, 0xda'], ['stgi', '0x0f, 0x01, 0xdc'], ['invlpga', '0x0f, 0x01, 0xdf']]) {
      const g = atCpl3(bytes!);
      expect(g.trace.ofType('inject')[0], name).toMatchObject({ vector: 13, errorCode: 0n, reason: `${name} at CPL > 0` });
      expect(g.trace.ofType('inject-vc'), name).toEqual([]);
    }
  });

  it('VMMCALL: #VC 0x81 at CPL 3 too (Linux vc_handle_vmmcall passes the CPL on in the GHCB)', () => {
    const g = atCpl3('0x0f, 0x01, 0xd9');
    expect(g.trace.ofType('inject-vc')[0]).toMatchObject({ vector: 29, errorCode: 0x81n, reason: 'vmmcall' });
  });
});

describe('svmInstruction (the decision, for the modes the guest tests do not reach)', () => {
  it('outside protected mode every one but VMMCALL is #UD; VMMCALL is intercepted in any mode and at any CPL', () => {
    for (const [name] of CASES) {
      expect(svmInstruction(name, { protectedMode: false, cpl: 0 })).toEqual(name === 'vmmcall' ? { kind: 'vc', exitCode: 0x81 } : { kind: 'ud' });
      expect(svmInstruction(name, { protectedMode: true, cpl: 3 })).toEqual(name === 'vmmcall' ? { kind: 'vc', exitCode: 0x81 } : { kind: 'gp' });
    }
  });
});
