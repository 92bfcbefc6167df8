// A TD's own VMX and SVM instructions, run as real guest instructions. VMCALL is a VM exit in VMX
// non-root operation at any CPL and in any mode (SDM Vol. 3C VMCALL, Operation), and the TDX
// module answers it as it answers HLT: td_generic_ve_exit, #VE with exit reason 18
// (intel/tdx-module tdx_1.5 src/td_dispatcher/tdx_td_dispatcher.c). Every other VMX instruction
// (VMCLEAR, VMLAUNCH, VMPTRLD, VMPTRST, VMREAD, VMRESUME, VMWRITE, VMXOFF, VMXON, INVEPT, INVVPID,
// VMFUNC) #UDs in the TD or exits to the module, which injects #UD (the same switch: inject_ud()).
// The SVM instructions (0F 01 D8-DF) are AMD's: #UD on an Intel CPU.
import { describe, expect, it } from 'vitest';
import { HALT, TDCALL, TO_COMPAT_MODE, runTdGuest } from '../../helpers/tdx-guest.js';

// #VE handler: VEINFO.GET's exit reason -> RBX, qualification -> R14, instruction length -> RDI,
// the interrupted RIP -> R9; it steps over the instruction and returns.
const VE_STEP_OVER = `mov rax, 3\n ${TDCALL}\n mov rbx, rcx\n mov r14, rdx\n mov edi, r10d\n mov r9, [rsp]\n add [rsp], rdi\n iretq`;

function vmcall(bytes: string, options: { countInstructions?: boolean; before?: string } = {}) {
  const { td, outcome } = runTdGuest(`${options.before ?? ''}
      lea r13, [rip + 1f]
    1: .byte ${bytes}
      mov r15, 0x600d
      ${HALT}`, { ve: VE_STEP_OVER, ...(options.countInstructions !== undefined ? { countInstructions: options.countInstructions } : {}) });
  const r = td.platform.machine.vcpu.regs;
  return { td, outcome, reason: r.rbx, qual: r.r14, length: r.rdi, veRip: r.r9, insnRip: r.r13, after: r.r15 };
}

describe('VMCALL in a TD: #VE reason 18, RIP at the VMCALL, not a TD exit', () => {
  it('0F 01 C1: qualification 0, length 3; the guest steps over it and goes on', () => {
    const { td, outcome, reason, qual, length, veRip, insnRip, after } = vmcall('0x0f, 0x01, 0xc1');
    expect(outcome.outcome).toBe('done');
    expect([reason, qual, length, veRip, after]).toEqual([18n, 0n, 3n, insnRip, 0x600dn]);
    expect(td.trace.ofType('ve-injected')).toMatchObject([{ exitReason: 18 }]);
    expect(td.trace.ofType('td-exit')).toHaveLength(1); // only the final TDVMCALL<HLT>
  });

  it('behind redundant prefixes (15 bytes), in counting and fast mode: the instruction length is all 15', () => {
    const padded = `${Array(12).fill('0x2e').join(', ')}, 0x0f, 0x01, 0xc1`;
    for (const countInstructions of [true, false]) {
      const { outcome, reason, length, veRip, insnRip, after } = vmcall(padded, { countInstructions });
      expect(outcome.outcome).toBe('done');
      expect([reason, length, veRip, after]).toEqual([18n, 15n, insnRip, 0x600dn]);
    }
  });

  it('in compatibility mode as well (a VM exit in any mode)', () => {
    const { td } = runTdGuest(`${TO_COMPAT_MODE}\n .byte 0x0f, 0x01, 0xc1\n hlt`, { ve: `mov r15, 20\n ${HALT}` });
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n);
    expect(td.trace.ofType('ve-injected')).toMatchObject([{ exitReason: 18 }]);
  });
});

describe('#UD in a TD', () => {
  const UD = [
    ['VMCALL with 66 (SDM: operand size causes #UD)', '0x66, 0x0f, 0x01, 0xc1'],
    ['VMLAUNCH', '0x0f, 0x01, 0xc2'], ['VMRESUME', '0x0f, 0x01, 0xc3'], ['VMXOFF', '0x0f, 0x01, 0xc4'], ['VMFUNC', '0x0f, 0x01, 0xd4'],
    ['VMPTRLD [rax]', '0x0f, 0xc7, 0x30'], ['VMCLEAR [rax]', '0x66, 0x0f, 0xc7, 0x30'], ['VMXON [rax]', '0xf3, 0x0f, 0xc7, 0x30'],
    ['VMPTRST [rax]', '0x0f, 0xc7, 0x38'], ['VMREAD rcx, rax', '0x0f, 0x78, 0xc1'], ['VMWRITE rax, rcx', '0x0f, 0x79, 0xc1'],
    ['INVEPT rax, [rax]', '0x66, 0x0f, 0x38, 0x80, 0x00'], ['INVVPID rax, [rax]', '0x66, 0x0f, 0x38, 0x81, 0x00'],
    ['VMRUN', '0x0f, 0x01, 0xd8'], ['VMMCALL', '0x0f, 0x01, 0xd9'], ['VMLOAD', '0x0f, 0x01, 0xda'], ['VMSAVE', '0x0f, 0x01, 0xdb'],
    ['STGI', '0x0f, 0x01, 0xdc'], ['CLGI', '0x0f, 0x01, 0xdd'], ['SKINIT', '0x0f, 0x01, 0xde'], ['INVLPGA', '0x0f, 0x01, 0xdf'],
  ] as const;
  it.each(UD)('%s', (_name, bytes) => {
    const { td, outcome } = runTdGuest(`mov rax, 0x100000\n .byte ${bytes}\n mov r15, 0xbad\n ${HALT}`);
    expect(outcome.outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(6n);
    expect(td.trace.ofType('ve-injected')).toEqual([]);
  });
});
