// Exception delivery to a more privileged handler in IA-32e mode (Intel SDM Vol. 3 §6.14.4
// "Stack Switching in IA-32e Mode", §6.12.1.1; AMD APM Vol. 2 §8.9.3 "Interrupt Stack Frame"):
// the handler runs at its code segment's DPL, on the stack the TSS names for that CPL (RSPn, or
// the IST one if the gate names it), with SS = NULL (RPL = the new CPL); the frame holds the
// interrupted SS, RSP, RFLAGS, CS and RIP. A TD's #VE and an SNP guest's #VC from user code come
// this way, as every exception a user program takes does.
import { describe, expect, it } from 'vitest';
import { IDT_BASE, loadTss } from '../helpers/guest-setup.js';
import { SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, snpGuest, snpGuestToCpl3 } from '../helpers/snp-guest.js';

const RSP0 = 0x80000n;
const IST1 = 0x7f800n;

/** #UD handler: r10 = SS, r11 = CS, r12 = RSP at entry, rbx/rsi/rdi/rbp/r9 = the frame's RIP, CS, RFLAGS, RSP, SS. */
const RECORD_FRAME = `
  mov r10, ss
  mov r11, cs
  mov r12, rsp
  mov rbx, [rsp]
  mov rsi, [rsp + 8]
  mov rdi, [rsp + 16]
  mov rbp, [rsp + 24]
  mov r9, [rsp + 32]
  hlt`;

function runAtCpl3(user: string, options: { rsp0?: bigint; tssLimit?: number; ist?: boolean } = {}) {
  const tss = loadTss(`0x${(options.rsp0 ?? RSP0).toString(16)}`, { ist1: IST1, ...(options.tssLimit !== undefined ? { limit: options.tssLimit } : {}) });
  const g = snpGuest(`
      ${snpGuestToCpl3(tss)}
      lea r8, [rip]
      ${user}
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
  if (options.ist) g.vm.memory.write(IDT_BASE + 6n * 16n + 4n, Uint8Array.of(1));
  const outcome = g.run();
  return { g, outcome, r: g.vm.vcpu.regs };
}

describe('exception delivery from CPL 3 in IA-32e mode', () => {
  it('runs the handler at CPL 0 on the TSS RSP0 stack, SS = NULL, with the user SS:RSP and CS:RIP in the frame', () => {
    const { outcome, r } = runAtCpl3('ud2');
    expect(outcome.outcome).toBe('done');
    expect(r.r11).toBe(0x08n);
    expect(r.r10).toBe(0n);
    expect(r.r12).toBe(RSP0 - 40n);
    expect(r.rbx).toBe(r.r8);  // the UD2 (LEA r8, [rip] names the next instruction)
    expect(r.rsi).toBe(0x1bn);
    expect(r.rbp).toBe(0x70000n);
    expect(r.r9).toBe(0x23n);
  });

  it('aligns RSP0 down to 16 bytes before pushing', () => {
    const { r } = runAtCpl3('ud2', { rsp0: RSP0 - 8n });
    expect(r.r12).toBe(RSP0 - 16n - 40n);
    expect(r.r11).toBe(0x08n);
  });

  it('takes the IST stack when the gate names one, even on a privilege change', () => {
    const { r } = runAtCpl3('ud2', { ist: true });
    expect(r.r12).toBe(IST1 - 40n);
    expect(r.r11).toBe(0x08n);
    expect(r.r10).toBe(0n);
  });

  it('a TSS too short for RSP0 ends the run with the #TS the CPU would raise, not a handler on the user stack', () => {
    const { outcome } = runAtCpl3('ud2', { tssLimit: 3 });
    expect(outcome.outcome).not.toBe('done');
    expect(outcome.reason).toMatch(/TSS has no stack for the new CPL/);
    // RSP0 is bytes 4-11: a limit of 0xA leaves its last byte out, 0xB holds it (the limit is the last byte's offset).
    expect(runAtCpl3('ud2', { tssLimit: 0xa }).outcome.reason).toMatch(/TSS has no stack for the new CPL/);
    const fits = runAtCpl3('ud2', { tssLimit: 0xb });
    expect(fits.outcome.outcome).toBe('done');
    expect(fits.r.r12).toBe(RSP0 - 40n);
  });

  it('a conforming handler code segment runs at CPL 3, on the user stack, with no privilege change (SDM Vol. 3 §6.12.1.1)', () => {
    const g = snpGuest(`
      mov rax, 0x00af9f000000ffff      # 64-bit code, DPL 0, conforming (type 0xF)
      mov [0x10038], rax
      ${snpGuestToCpl3().replace('mov word ptr [0x30000], 55', 'mov word ptr [0x30000], 63')}
      lea r8, [rip]
      ud2
      hlt`, { launch: [...SNP_GUEST_CPL3_LAUNCH, [0x6f000n, 0x1000n]], udHandler: RECORD_FRAME });  // the user stack too
    g.vm.memory.write(IDT_BASE + 6n * 16n + 2n, Uint8Array.of(0x38, 0));  // #UD gate -> CS 0x38
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    // CS takes RPL = CPL 3 (0x3b), SS stays the user's, and the frame is pushed on the user stack.
    expect([r.r11, r.r10, r.r12]).toEqual([0x3bn, 0x23n, 0x70000n - 40n]);
    expect([r.rbx, r.rsi]).toEqual([r.r8, 0x1bn]);
  });

  it('from 32-bit user code (compatibility mode): the 64-bit handler at CPL 0 on RSP0, the 32-bit CS in the frame', () => {
    const g = snpGuest(`
      mov rax, 0x00affb000000ffff      # user code, DPL 3, L=1
      mov [0x10018], rax
      mov rax, 0x00cff3000000ffff      # user data, DPL 3
      mov [0x10020], rax
      mov rax, 0x00cffb000000ffff      # 32-bit user code, DPL 3, D=1
      mov [0x10038], rax
      mov word ptr [0x30000], 63
      mov qword ptr [0x30002], 0x10000
      lgdt [0x30000]
      ${loadTss(`0x${RSP0.toString(16)}`)}
      push 0x23
      push 0x70000
      push 0x2
      push 0x3b
      lea rax, [rip + user32]
      push rax
      lea r8, [rip + user32]
      iretq
    .code32
    user32:
      ud2
    .code64`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r11, r.r10, r.r12]).toEqual([0x08n, 0n, RSP0 - 40n]);
    expect([r.rbx, r.rsi, r.rbp, r.r9]).toEqual([r.r8, 0x3bn, 0x70000n, 0x23n]);
  });

  it('a handler in a less privileged code segment than CPL is refused (SDM Vol. 3 §6.12.1.1: #GP), not entered', () => {
    const g = snpGuest(`
      mov rax, 0x00affb000000ffff      # user code, DPL 3, L=1
      mov [0x10018], rax
      mov word ptr [0x30000], 31
      mov qword ptr [0x30002], 0x10000
      lgdt [0x30000]
      ud2
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    g.vm.memory.write(IDT_BASE + 6n * 16n + 2n, Uint8Array.of(0x18, 0));  // #UD gate -> CS 0x18 (DPL 3)
    const outcome = g.run();
    expect(outcome.outcome).not.toBe('done');
    expect(outcome.reason).toMatch(/code segment 0x18 has DPL 3, above CPL 0/);
  });

  it('the handler returns to CPL 3 with IRETQ and the user code goes on', () => {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      ud2
      mov r14, cs
      ud2`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: `
        cmp r15, 1
        je 2f
        mov r15, 1
        add qword ptr [rsp], 2
        iretq
      2:
        mov r13, rsp
        hlt` });
    expect(g.run().outcome).toBe('done');
    expect(g.vm.vcpu.regs.r14).toBe(0x1bn);
    expect(g.vm.vcpu.regs.r13).toBe(RSP0 - 40n);
  });
});

describe('software interrupts from CPL 3 (SDM Vol. 3 §6.12.1.1: the gate\'s DPL must be at least CPL for INT n, INT3, INTO)', () => {
  /** An IDT entry for `vector` pointing at the #UD handler (RECORD_FRAME), with gate DPL `dpl`. */
  function gateToRecordFrame(g: ReturnType<typeof snpGuest>, vector: number, dpl: number): void {
    const ud = g.vm.memory.read(IDT_BASE + 6n * 16n, 16);
    ud[5] = 0x8e | (dpl << 5);
    g.vm.memory.write(IDT_BASE + BigInt(vector) * 16n, ud);
  }

  it('INT 80h through a DPL 0 gate: #GP with error code 80h * 8 + 2 (IDT), RIP at the INT, the handler at CPL 0', () => {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      lea r8, [rip + 1f]
    1: int 0x80
      mov r14, 0xbad
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    gateToRecordFrame(g, 0x80, 0);
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    // The default #GP handler: R13 = 13, R15 = the error code, [RSP] then the pushed RIP.
    expect([r.r13, r.r15, r.r14]).toEqual([13n, 0x402n, 0n]);
    expect(g.trace.ofType('inject')[0]).toMatchObject({ vector: 13, errorCode: 0x402n, rip: r.r8 });
  });

  it('INT 80h through a DPL 3 gate: the handler at CPL 0, the frame\'s RIP after the INT (a trap)', () => {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      lea r8, [rip + 1f]
      int 0x80
    1: hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    gateToRecordFrame(g, 0x80, 3);
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r11, r.r12, r.rbx, r.rsi]).toEqual([0x08n, RSP0 - 40n, r.r8, 0x1bn]);
  });

  it('INT3 through a DPL 0 gate: #GP(3 * 8 + 2) at the INT3', () => {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      lea r8, [rip + 1f]
    1: int3
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    gateToRecordFrame(g, 3, 0);
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15]).toEqual([13n, 0x1an]);
    expect(g.trace.ofType('inject')[0]).toMatchObject({ vector: 13, rip: g.vm.vcpu.regs.r8 });
  });

  it('at CPL 0 a DPL 0 gate is fine: INT 80h enters its handler', () => {
    const g = snpGuest(`
      lea r8, [rip + 1f]
      int 0x80
    1: hlt`, { udHandler: RECORD_FRAME });
    gateToRecordFrame(g, 0x80, 0);
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.rbx, g.vm.vcpu.regs.r13]).toEqual([g.vm.vcpu.regs.r8, 0n]);
  });
});
