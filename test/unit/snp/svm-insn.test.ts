// An SVM instruction executed by an SEV-SNP guest (src/platform/snp/svm-insn.ts): its own
// exceptions before the intercept, #UD outside protected mode and #GP(0) at any CPL but 0 (APM
// Vol. 3 VMRUN .. INVLPGA, "Exceptions"; KVM's emulator marks them Prot | Priv), except VMMCALL,
// which has neither; then #VC with the SVM exit code (Linux uapi/asm/svm.h).
import { describe, expect, it } from 'vitest';
import { svmInstruction } from '../../../src/platform/snp/svm-insn.js';

const EXIT_CODES = { vmrun: 0x80, vmmcall: 0x81, vmload: 0x82, vmsave: 0x83, stgi: 0x84, clgi: 0x85, skinit: 0x86, invlpga: 0x7a } as const;

describe('SVM instructions in an SNP guest', () => {
  it.each(Object.entries(EXIT_CODES).filter(([insn]) => insn !== 'vmmcall'))('%s: #UD in real mode, #GP(0) at CPL 1, 2 and 3, else #VC with exit code %i', (insn, exitCode) => {
    const run = (protectedMode: boolean, cpl: number) => svmInstruction(insn as keyof typeof EXIT_CODES, { protectedMode, cpl });
    expect(run(false, 0)).toEqual({ kind: 'ud' });
    for (const cpl of [1, 2, 3]) expect(run(true, cpl), `CPL ${cpl}`).toEqual({ kind: 'gp' });
    expect(run(true, 0)).toEqual({ kind: 'vc', exitCode });
  });

  it('VMMCALL is intercepted in any mode and at any CPL', () => {
    for (const protectedMode of [false, true]) {
      for (const cpl of [0, 1, 2, 3]) expect(svmInstruction('vmmcall', { protectedMode, cpl })).toEqual({ kind: 'vc', exitCode: 0x81 });
    }
  });
});
