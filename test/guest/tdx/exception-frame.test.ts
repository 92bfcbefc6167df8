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
// Frame with an error code: [rsp] error code, [rsp + 24] RFLAGS. R12 = CR2.
const FRAME = `mov r13, [rsp]\n mov rbx, [rsp + 24]\n mov r12, cr2\n mov r15, 13\n ${HALT}`;
// Vector 14 through the same handler as #GP: the guest copies its IDT's #GP gate into slot 14.
const PF_GATE_LIKE_GP = `
    sidt [0x30100]
    mov rdi, [0x30102]
    mov rax, [rdi + 13 * 16]
    mov rdx, [rdi + 13 * 16 + 8]
    mov [rdi + 14 * 16], rax
    mov [rdi + 14 * 16 + 8], rdx`;

// Not tested here: a #GP the emulator raises (Unicorn does not expose its error code, unicorn.md
// §4) is delivered without one, a frame one word short (the README says the code is not available; the frame is a known gap).
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
});
