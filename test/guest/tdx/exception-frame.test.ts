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
/** Guest code that copies its IDT's gate `from` into slot `to`: vector `to` then runs `from`'s handler. */
const copyGate = (from: number, to: number) => `
    sidt [0x30100]
    mov rdi, [0x30102]
    mov rax, [rdi + ${from} * 16]
    mov rdx, [rdi + ${from} * 16 + 8]
    mov [rdi + ${to} * 16], rax
    mov [rdi + ${to} * 16 + 8], rdx`;
// Vector 14 through the same handler as #GP.
const PF_GATE_LIKE_GP = copyGate(13, 14);

// A #GP that Unicorn raises itself carries error code 0 (it does not expose its own, unicorn.md
// §4): right for every #GP it raises outside a selector check, where the SDM's code names the
// selector. So the selector case below asserts only the frame's shape, not the code.
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

  it('#GP(0) that the emulated CPU raises itself (XSETBV with ECX = 1, SDM Vol. 2D XSETBV: #GP(0) if ECX is not 0): an error code of 0 under RIP, CS and RFLAGS', () => {
    const td = tdGuest(`
      lea r8, [rip + xset]
      mov rsi, cs
      mov ecx, 1
      mov eax, 3
      xor edx, edx
    xset:
      xsetbv
      ${HALT}`, { gp: `mov rdi, [rsp + 16]\n ${FRAME}` });
    expect(runTd(td)).toMatchObject({ outcome: 'done' });
    const r = td.platform.machine.vcpu.regs;
    expect(r.r15).toBe(13n);
    expect([r.r13, r.r9, r.rdi]).toEqual([0n, r.r8, r.rsi]);
    expect(r.rbx & RF).toBe(RF);
    td.platform.machine.close();
  });

  it('a #GP handler that drops the error code and IRETQs past the faulting instruction returns to the next one (SDM Vol. 3A §6.14.1: IRET pops RIP, CS, RFLAGS, RSP, SS after the handler removed the error code)', () => {
    // The faulting MOV DS is 2 bytes (8E D8); the selector is past the GDT's limit: #GP(selector).
    const td = tdGuest(`
      xor r14d, r14d
      mov rsi, cs
      lea r8, [rip + load]
      mov eax, 0xfff8
    load:
      mov ds, ax
      mov r14, 0x77
      ${HALT}`, { gp: `mov r9, [rsp + 8]\n mov rdi, [rsp + 16]\n add qword ptr [rsp + 8], 2\n add rsp, 8\n iretq` });
    expect(runTd(td)).toMatchObject({ outcome: 'done' });
    const r = td.platform.machine.vcpu.regs;
    expect(r.r14).toBe(0x77n);
    expect([r.r9, r.rdi]).toEqual([r.r8, r.rsi]);
    td.platform.machine.close();
  });

  it('a fault with RSP non-canonical cannot push its frame (SDM Vol. 3A §3.3.7.1: #SS during delivery, then #DF on the same stack): the TD shuts down instead of pushing to the low address RSP aliases', () => {
    const td = tdGuest(`
      mov rax, 0x8000000000000000
      or rsp, rax
      mov ecx, 1
      mov eax, 3
      xor edx, edx
      xsetbv
      ${HALT}`);
    const outcome = runTd(td);
    expect(outcome).toMatchObject({ outcome: 'terminated' });
    expect(outcome.reason).toMatch(/not canonical/);
    td.platform.machine.close();
  });

  describe('a non-canonical reference through SS raises #SS(0), any other #GP(0) (SDM Vol. 3A §3.3.7.1: base RSP or RBP selects SS; in 64-bit mode only FS and GS overrides apply)', () => {
    // Vector 12 through the #UD gate, whose handler here records the frame with R15 = 12.
    const SS_GATE_LIKE_UD = copyGate(6, 12);
    const SS_FRAME = `mov r13, [rsp]\n mov r9, [rsp + 8]\n mov r15, 12\n ${HALT}`;
    const NON_CANONICAL = '0x8000000000030200';
    const cases: [string, string, bigint][] = [
      ['[rbp]', `mov rbp, ${NON_CANONICAL}\n lea r8, [rip + access]\n access: mov rax, [rbp]`, 12n],
      ['[rbp] with a DS override (ignored)', `mov rbp, ${NON_CANONICAL}\n lea r8, [rip + access]\n access: mov rax, ds:[rbp]`, 12n],
      ['[rsp + rcx]', `mov rcx, 0x8000000000000000\n lea r8, [rip + access]\n access: mov rax, [rsp + rcx]`, 12n],
      ['[rbp] with an FS override (applies: FS)', `mov rbp, ${NON_CANONICAL}\n lea r8, [rip + access]\n access: mov rax, fs:[rbp]`, 13n],
      ['[rbx] with an SS override (ignored: DS)', `mov rbx, ${NON_CANONICAL}\n lea r8, [rip + access]\n access: mov rax, ss:[rbx]`, 13n],
    ];
    for (const [name, body, vector] of cases) {
      it(`${name}: vector ${vector}, error code 0, RIP at the access`, () => {
        const td = tdGuest(`${SS_GATE_LIKE_UD}
          ${body}
          ${HALT}`, { gp: FRAME, ud: SS_FRAME });
        expect(runTd(td)).toMatchObject({ outcome: 'done' });
        const r = td.platform.machine.vcpu.regs;
        expect([r.r15, r.r13, r.r9]).toEqual([vector, 0n, r.r8]);
        td.platform.machine.close();
      });
    }
  });
});

