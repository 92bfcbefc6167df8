// The frame a TD guest's exception pushes, for exceptions the CPU raises on the guest's own
// instructions (exits of kind 'exception', which the TDX module hands back to the guest: a TD's
// #PF and #GP are delivered through its own IDT, tdx_td_dispatcher.c passes them on). Intel SDM
// Vol. 3A §6.13: #PF pushes an error code; §4.7: a #PF loads CR2 with the linear address;
// §18.3.1.1 (Resume Flag): for a fault-class exception the RFLAGS image saved on the stack has RF = 1.
import { describe, expect, it } from 'vitest';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, tdGuest } from '../../helpers/tdx-guest.js';

const RF = 1n << 16n;
/** Far from every mapping the helper makes (RAM identity-mapped, and its shared alias at 256 GiB). */
const UNMAPPED = 0x8000000000n;
// Frame with an error code: [rsp] error code, [rsp + 8] RIP, [rsp + 24] RFLAGS. R12 = CR2.
const FRAME = `mov r13, [rsp]\n mov r9, [rsp + 8]\n mov rbx, [rsp + 24]\n mov r12, cr2\n mov r15, 13\n ${HALT}`;
// Vector 14 through the same handler as #GP: the guest copies its IDT's #GP gate into slot 14.
const PF_GATE_LIKE_GP = `
    sidt [0x30100]
    mov rdi, [0x30102]
    mov rax, [rdi + 13 * 16]
    mov rdx, [rdi + 13 * 16 + 8]
    mov [rdi + 14 * 16], rax
    mov [rdi + 14 * 16 + 8], rdx`;

// Not tested here: a #GP that Unicorn raises itself (a bad selector, say) is delivered without
// its error code, a frame one word short (Unicorn does not expose it, unicorn.md §4): a known gap.
describe('the exception frame of a TD guest', () => {
  it('#PF of a write to an unmapped address: error code 2 (W, not present), CR2 the address, RIP at the store, RF = 1', () => {
    const td = tdGuest(`${PF_GATE_LIKE_GP}
      mov rax, 0x${UNMAPPED.toString(16)}
    store:
      mov qword ptr [rax], 1
      ${HALT}`, { gp: FRAME });
    expect(runTd(td)).toMatchObject({ outcome: 'done' });
    const r = td.platform.machine.vcpu.regs;
    expect(r.r15).toBe(13n);
    expect(r.r13).toBe(2n);
    expect(r.r12).toBe(UNMAPPED);
    expect(r.rbx & RF).toBe(RF);
    td.platform.machine.close();
  });

  it('#GP(0) of a read at a non-canonical address (bits 63:47 not all equal, SDM Vol. 3A §3.3.7.1), RIP at the read, RF = 1: not a read of the low address it would alias', () => {
    const td = tdGuest(`
      mov qword ptr [0x30200], 0x1234
      xor edx, edx
      lea r8, [rip + read]
      mov rax, 0x8000000000030200
    read:
      mov rdx, [rax]
      ${HALT}`, { gp: FRAME });
    expect(runTd(td)).toMatchObject({ outcome: 'done' });
    const r = td.platform.machine.vcpu.regs;
    expect(r.r15).toBe(13n);
    expect([r.r13, r.r9, r.rdx]).toEqual([0n, r.r8, 0n]);
    expect(r.rbx & RF).toBe(RF);
    td.platform.machine.close();
  });
});
