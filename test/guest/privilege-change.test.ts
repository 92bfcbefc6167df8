// Exception delivery to a more privileged handler in IA-32e mode (Intel SDM Vol. 3 §6.14.4
// "Stack Switching in IA-32e Mode", §6.12.1.1; AMD APM Vol. 2 §8.9.3 "Interrupt Stack Frame"):
// the handler runs at its code segment's DPL, on the stack the TSS names for that CPL (RSPn, or
// the IST one if the gate names it), with SS = NULL (RPL = the new CPL); the frame holds the
// interrupted SS, RSP, RFLAGS, CS and RIP. A TD's #VE and an SNP guest's #VC from user code come
// this way, as every exception a user program takes does.
import { describe, expect, it } from 'vitest';
import { IDT_BASE, TSS_BASE, loadTss } from '../helpers/guest-setup.js';
import { C_BIT, SNP_GUEST_CPL3_LAUNCH, SNP_GUEST_TO_CPL3, snpGuest, snpGuestToCpl3 } from '../helpers/snp-guest.js';
import { toCpl } from '../helpers/tdx-guest.js';

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

/**
 * A run whose #UD in 32-bit user code (compatibility mode, CS 0x3b, ESP 0x70000, SS 0x23) reached
 * RECORD_FRAME at CPL 0 (CS 0x08, SS 0) on RSP0, the frame's RIP `rip`, or by default the address
 * the guest put in R8.
 */
function expectCompatUserUd(g: ReturnType<typeof snpGuest>, rip?: bigint): void {
  expect(g.run().outcome).toBe('done');
  const r = g.vm.vcpu.regs;
  expect([r.r11, r.r10, r.r12]).toEqual([0x08n, 0n, RSP0 - 40n]);
  expect([r.rbx, r.rsi, r.rbp, r.r9]).toEqual([rip ?? r.r8, 0x3bn, 0x70000n, 0x23n]);
}

/**
 * Asm: a GDT with user data (slot 0x20, DPL 3) and 32-bit user code (slot 0x38, DPL 3:
 * `userCode`), `extra` descriptor writes before it is loaded with limit `gdtLimit`, the TSS with
 * RSP0, and an IRETQ frame's SS 0x23, RSP 0x70000, RFLAGS 0x2 and CS 0x3b pushed: the caller
 * pushes the RIP and runs IRETQ into compatibility mode at CPL 3.
 */
function compatUserFrame(options: { userCode?: string; extra?: string; gdtLimit?: number } = {}): string {
  return `
      mov rax, 0x00cff3000000ffff      # user data, DPL 3
      mov [0x10020], rax
      mov rax, ${options.userCode ?? '0x00cffb000000ffff      # 32-bit user code, DPL 3, D=1'}
      mov [0x10038], rax
      ${options.extra ?? ''}
      mov word ptr [0x30000], ${options.gdtLimit ?? 63}
      mov qword ptr [0x30002], 0x10000
      lgdt [0x30000]
      ${loadTss(`0x${RSP0.toString(16)}`)}
      push 0x23
      push 0x70000
      push 0x2
      push 0x3b`;
}

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

  it('to a handler CS of 10h (Linux\'s __KERNEL_CS): CS = 10h at CPL 0, on RSP0', () => {
    const g = snpGuest(`
      mov rax, 0x00af9b000000ffff      # 64-bit code, DPL 0, at 0x10
      mov [0x10010], rax
      ${SNP_GUEST_TO_CPL3}
      lea r8, [rip]
      ud2
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    g.vm.memory.write(IDT_BASE + 6n * 16n + 2n, Uint8Array.of(0x10, 0));  // #UD gate -> CS 0x10
    expect(g.run().outcome).toBe('done');
    const r = g.vm.vcpu.regs;
    expect([r.r11, r.r10, r.r12, r.rbx, r.rsi]).toEqual([0x10n, 0n, RSP0 - 40n, r.r8, 0x1bn]);
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

  it.each([[2, 0x7f400n], [7, 0x7f200n]] as const)('takes IST%i, at TSS byte 0x24 + 8 * (n - 1) (SDM Vol. 3 §7.7, 64-bit TSS), when the gate names it', (n, ist) => {
    const tss = loadTss(`0x${RSP0.toString(16)}`, { ist1: IST1 });
    const g = snpGuest(`
      mov rax, 0x${ist.toString(16)}
      mov [0x${(TSS_BASE + 0x24n + 8n * BigInt(n - 1)).toString(16)}], rax
      ${snpGuestToCpl3(tss)}
      ud2
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    g.vm.memory.write(IDT_BASE + 6n * 16n + 4n, Uint8Array.of(n));
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r12, g.vm.vcpu.regs.r11]).toEqual([ist - 40n, 0x08n]);
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

  it('a TSS in a page the page tables do not map ends the run, not a handler on the interrupted stack', () => {
    // The CPU reads RSPn through the TSS's linear address (SDM Vol. 3 §7.7), so a TSS it cannot
    // reach faults; the model stops there. From CPL 1 (supervisor pages, no U bit needed).
    const TSS_AT = 0x3f000n;
    const low = 0x67n | ((TSS_AT & 0xffffn) << 16n) | (((TSS_AT >> 16n) & 0xffn) << 32n) | (0x89n << 40n);
    const g = snpGuest(`
      ${toCpl(1).replace(/mov rax, 0x[0-9a-f]+(\s+mov \[0x10028\], rax)/, `mov rax, 0x${low.toString(16)}$1`)}
      ud2
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME, mappings: [
      { va: 0n, pa: 0n, size: TSS_AT, pageSize: 4096n, extraBits: C_BIT },
      { va: TSS_AT + 0x1000n, pa: TSS_AT + 0x1000n, size: 0x200000n - TSS_AT - 0x1000n, pageSize: 4096n, extraBits: C_BIT },
    ] });
    const outcome = g.run();
    expect(outcome.outcome).not.toBe('done');
    expect(outcome.reason).toMatch(/cannot read the new stack pointer from the TSS/);
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

  it('the gate selector\'s RPL is not the handler\'s: at CPL 0 through a gate naming 1Bh, CS = 18h (SDM Vol. 2A INT n, Operation: CS(RPL) := CPL)', () => {
    const g = snpGuest(`
      mov rax, 0x00af9b000000ffff      # 64-bit code, DPL 0, at 0x18
      mov [0x10018], rax
      mov word ptr [0x30000], 31
      mov qword ptr [0x30002], 0x10000
      lgdt [0x30000]
      ud2
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    g.vm.memory.write(IDT_BASE + 6n * 16n + 2n, Uint8Array.of(0x1b, 0));  // #UD gate -> selector 0x1b
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r11, g.vm.vcpu.regs.rsi]).toEqual([0x18n, 0x08n]);
  });

  it('from 32-bit user code (compatibility mode): the 64-bit handler at CPL 0 on RSP0, the 32-bit CS in the frame', () => {
    const g = snpGuest(`
      ${compatUserFrame({ extra: 'mov rax, 0x00affb000000ffff      # user code, DPL 3, L=1\n      mov [0x10018], rax' })}
      lea rax, [rip + user32]
      push rax
      lea r8, [rip + user32]
      iretq
    .code32
    user32:
      ud2
    .code64`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    expectCompatUserUd(g);
  });

  it('from 32-bit user code in a CS based at 17 MiB: the same delivery, the frame\'s RIP the offset in that CS', () => {
    const g = snpGuest(`
      ${compatUserFrame({ userCode: '0x01cffb100000ffff      # 32-bit user code, DPL 3, D=1, base 0x1100000' })}
      push 0x10
      iretq`, { launch: [...SNP_GUEST_CPL3_LAUNCH, [0x1100000n, 0x1000n]], extraCode: [[0x1100000n, '.fill 16, 1, 0x90\n ud2']], udHandler: RECORD_FRAME });
    expectCompatUserUd(g, 0x10n);
  });

  it('from 32-bit user code with DS based at 1 MiB: the same delivery (it reads no DS-relative memory, SDM Vol. 3 §6.14)', () => {
    const g = snpGuest(`
      ${compatUserFrame({ extra: 'mov rax, 0x00cff3100000ffff      # user data, DPL 3, base 0x100000\n      mov [0x10040], rax', gdtLimit: 71 })}
      lea rax, [rip + user32]
      push rax
      lea r8, [rip + fault]
      iretq
    .code32
    user32:
      mov eax, 0x43
      mov ds, eax
    fault:
      ud2
    .code64`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    expectCompatUserUd(g);
  });

  it('from 32-bit user code whose CS descriptor changed after CS was loaded: the run stops (the model cannot read the hidden base) rather than enter the handler', () => {
    const g = snpGuest(`
      ${compatUserFrame()}
      lea rax, [rip + user32]
      push rax
      iretq
    .code32
    user32:
      mov byte ptr [0x1003c], 0x10     # the descriptor's base now 0x100000; CS keeps base 0
      ud2
    .code64`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    const outcome = g.run();
    expect(outcome.outcome).not.toBe('done');
    expect(outcome.reason).toMatch(/hidden base is not the one its selector names/);
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

describe('software interrupts from CPL > 0 (SDM Vol. 3 §6.12.1.1: the gate\'s DPL must be at least CPL for INT n, INT3, INTO)', () => {
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

  it('INT 0 (CD 00) through a DPL 0 gate: #GP(0 * 8 + 2) at the INT, as for any vector the instruction names', () => {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      lea r8, [rip + 1f]
    1: int 0
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    gateToRecordFrame(g, 0, 0);
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15]).toEqual([13n, 2n]);
    expect(g.trace.ofType('inject')[0]).toMatchObject({ vector: 13, errorCode: 2n, rip: g.vm.vcpu.regs.r8 });
  });

  it('a fault is no software interrupt: HLT at CPL 3 is #GP(0) through the DPL 0 #GP gate (SDM Vol. 2A HLT), not #GP(13 * 8 + 2)', () => {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      lea r8, [rip + 1f]
    1: hlt
      mov r14, 0xbad
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH });
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15]).toEqual([13n, 0n]);
    expect(g.trace.ofType('inject')).toEqual([expect.objectContaining({ vector: 13, errorCode: 0n, rip: g.vm.vcpu.regs.r8 })]);
  });

  it.each([1, 2])('INT 80h through a DPL %i gate: #GP(80h * 8 + 2) as well, the gate\'s DPL being below CPL 3', (dpl) => {
    const g = snpGuest(`
      ${SNP_GUEST_TO_CPL3}
      lea r8, [rip + 1f]
    1: int 0x80
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    gateToRecordFrame(g, 0x80, dpl);
    expect(g.run().outcome).toBe('done');
    expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15]).toEqual([13n, 0x402n]);
  });

  it('at CPL 1, from code above 4 GiB: INT 80h through a DPL 0 gate is #GP(80h * 8 + 2) with the INT\'s whole 64-bit RIP; through a DPL 1 gate it is INT 80h', () => {
    const HIGH = 0x100000000n;  // a second mapping of the first 2 MiB, at 4 GiB
    const run = (dpl: number) => {
      const g = snpGuest(`
        ${toCpl(1)}
        lea rax, [rip + 1f]
        mov rcx, 0x${HIGH.toString(16)}
        add rax, rcx
        jmp rax
      1:
        lea r8, [rip + 2f]
      2: int 0x80
        hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME, mappings: [
        { va: 0n, pa: 0n, size: 0x200000n, pageSize: 0x200000n, extraBits: C_BIT },
        { va: HIGH, pa: 0n, size: 0x200000n, pageSize: 0x200000n, extraBits: C_BIT },
      ] });
      gateToRecordFrame(g, 0x80, dpl);
      const outcome = g.run();
      return { g, outcome, r: g.vm.vcpu.regs };
    };
    const gp = run(0);
    expect(gp.outcome.outcome, gp.outcome.reason).toBe('done');
    expect(gp.r.r8 >> 32n).toBe(1n);
    expect([gp.r.r13, gp.r.r15]).toEqual([13n, 0x402n]);
    expect(gp.g.trace.ofType('inject')[0]).toMatchObject({ vector: 13, errorCode: 0x402n, rip: gp.r.r8 });
    const int = run(1);
    expect(int.outcome.outcome, int.outcome.reason).toBe('done');
    expect([int.r.r13, int.r.rbx]).toEqual([0n, int.r.r8 + 2n]);
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

describe('exception delivery from CPL 3 to a handler of DPL 1 or 2 (SDM Vol. 3 §6.14.4, §7.7)', () => {
  // SDM Vol. 3 §6.14.4: on a privilege change in IA-32e mode the new SS is NULL with RPL = the new
  // CPL, and RSP comes from the TSS field of the new CPL; §7.7 (Figure 7-11, 64-bit TSS): RSP0 at
  // byte 4, RSP1 at 12, RSP2 at 20. A CPU raises #TS for a TSS whose limit leaves RSPn out.
  // Not asserted: that the handler cannot run CPL 0 instructions (HLT is #GP(0) at CPL 1 or 2, SDM
  // Vol. 2A HLT). Unicorn 2.1.4's 64-bit call gate loads SS with DPL 0 (seg_helper.c,
  // helper_lcall_protected), and its CPL comes from SS's DPL, so the emulated CPU runs these
  // handlers at CPL 0 while CS says 1 or 2.
  const RSPN: Record<number, bigint> = { 1: 0x7fc00n, 2: 0x7fa00n };

  function runToDpl(dpl: 1 | 2, tssLimit?: number) {
    const access = (0x9b | (dpl << 5)).toString(16);
    const g = snpGuest(`
      mov rax, 0x00af${access}000000ffff      # 64-bit code, DPL ${dpl}, non-conforming
      mov [0x10038], rax
      ${snpGuestToCpl3(loadTss(`0x${RSP0.toString(16)}`, tssLimit !== undefined ? { limit: tssLimit } : {})).replace('mov word ptr [0x30000], 55', 'mov word ptr [0x30000], 63').replace('ltr ax', `ltr ax\n mov rax, 0x${RSPN[dpl]!.toString(16)}\n mov [0x${(TSS_BASE + 4n + 8n * BigInt(dpl)).toString(16)}], rax`)}
      lea r8, [rip]
      ud2
      hlt`, { launch: SNP_GUEST_CPL3_LAUNCH, udHandler: RECORD_FRAME });
    g.vm.memory.write(IDT_BASE + 6n * 16n + 2n, Uint8Array.of(0x38, 0));  // #UD gate -> CS 0x38
    return { g, outcome: g.run(), r: g.vm.vcpu.regs };
  }

  it.each([1, 2] as const)('DPL %i: the handler runs at that CPL (CS 0x38 | CPL), SS = NULL with RPL = CPL, on RSPn of the TSS', (dpl) => {
    const { outcome, r } = runToDpl(dpl);
    expect(outcome.outcome, outcome.reason).toBe('done');
    expect([r.r11, r.r10, r.r12]).toEqual([0x38n | BigInt(dpl), BigInt(dpl), RSPN[dpl]! - 40n]);
    expect([r.rbx, r.rsi, r.rbp, r.r9]).toEqual([r.r8, 0x1bn, 0x70000n, 0x23n]);
  });

  it.each([[1, 0x13], [2, 0x1b]] as const)('DPL %i: TR limit %i (RSPn\'s last byte) holds RSPn; one less ends the run with the #TS the CPU raises', (dpl, limit) => {
    expect(runToDpl(dpl, limit - 1).outcome.reason).toMatch(/TSS has no stack for the new CPL/);
    const fits = runToDpl(dpl, limit);
    expect(fits.outcome.outcome, fits.outcome.reason).toBe('done');
    expect(fits.r.r12).toBe(RSPN[dpl]! - 40n);
  });
});
