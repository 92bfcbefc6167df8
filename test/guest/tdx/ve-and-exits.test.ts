// Table A6 (guest access to non-MAPPED private memory, #VE / #DF, VEINFO.GET), CPUID 0x21,
// TDCALL leaf checks (A1), VP.INFO (A2) and VM.RD/WR, through real guest instructions.
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { CONFIG_FLAGS_FLEXIBLE_PENDING_VE, TdAttributes } from '../../../src/platform/tdx/td-module.js';
import { honestTdxPolicy, type EptViolationExit, type TdxVmmPolicy } from '../../../src/vmm/tdx/honest-vmm.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, HANDLER, IRQ_VECTOR, runTdGuest, TDCALL, TO_COMPAT_MODE, tdGuest } from '../../helpers/tdx-guest.js';

const P = 0x400000n;
// #VE handler: VEINFO.GET status → R12, exit reason → RBX, qualification → R14, GLA → RBP, GPA → RSI,
// instruction length → RDI; a second GET's status → R13 (it zeroes RCX, RDX, R8–R10).
const VE_READER = `mov rax, 3\n ${TDCALL}\n mov r12, rax\n mov rbx, rcx\n mov r14, rdx\n mov rbp, r8\n mov rsi, r9\n mov edi, r10d\n mov rax, 3\n ${TDCALL}\n mov r13, rax\n mov r15, 20\n ${HALT}`;

describe('A6 PENDING page with #VE enabled', () => {
  it('a load raises #VE; VEINFO.GET returns reason 48, qualification, GLA, GPA once', () => {
    const td = tdGuest(`mov rax, [0x400123]\n ${HALT}`, { ve: VE_READER });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r15).toBe(20n);
    expect(r.r12).toBe(0n);
    expect(r.rbx).toBe(48n);
    expect(r.r14).toBe(0x1n | 0x80n | 0x100n); // read, GLA valid, translated access
    expect(r.rbp).toBe(0x400123n); // exact GLA
    expect(r.rsi).toBe(0x400123n); // exact GPA
    expect(r.r13).toBe(0xc000070400000000n); // second GET: NO_VALID_VE_INFO
    expect(td.trace.ofType('ve-injected')).toHaveLength(1);
  });

  it('a second #VE while VE info is unread → #DF', () => {
    // The #VE handler does not read VE info and touches another pending page.
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`, { ve: `mov rax, [0x401000]\n ${HALT}` });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(8n);
    expect(td.trace.ofType('df-injected')).toHaveLength(1);
  });

  // The frames the module's injections leave (helpers.h): inject_ve writes VE_INTERRUPTION_INFO
  // 0x80000314 (vector 20, hardware exception, no error code); inject_df writes DF_INTERRUPTION_INFO
  // 0x80000B08 (vector 8, deliver error code) and an error code of 0 (x86_defs.h).
  it('the #VE frame has no error code (RIP of the access, then CS); the #DF frame has error code 0, then the RIP of the refused access', () => {
    const td = tdGuest(`main_access: mov rax, [0x400000]\n ${HALT}`, {
      ve: `mov rbx, [rsp]\n mov rbp, [rsp + 8]\n lea rdi, [rip + main_access]\n ve_access: mov rax, [0x401000]`,
      df: `mov r12, [rsp]\n mov r13, [rsp + 8]\n mov r14, [rsp + 16]\n lea rsi, [rip + ve_access]\n mov r15, 8\n ${HALT}`,
    });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(runTd(td).outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r15).toBe(8n);
    expect(r.rbp).toBe(0x08n);                       // CS right after the RIP: nothing pushed before it
    expect(r.rbx).toBe(r.rdi);                       // main's refused load
    expect(r.r12).toBe(0n);                          // #DF error code
    expect(r.r13).toBe(r.rsi);                       // the #VE handler's own refused load
    // The trace names where each was raised: the #VE at main's load, the #DF at the handler's.
    expect(td.trace.ofType('ve-injected')).toEqual([expect.objectContaining({ exitReason: 48, gpa: P, rip: r.rdi })]);
    expect(td.trace.ofType('df-injected')).toEqual([expect.objectContaining({ cause: 've-info-still-valid', gpa: P + 0x1000n })]);
    // A #VE is its ve-injected event alone; the #DF's delivery is an exception-injected one, with
    // the RIP it entered: the #DF handler's (as injectException records every delivery).
    expect(td.trace.ofType('exception-injected')).toEqual([expect.objectContaining({ vector: 8, errorCode: 0n, rip: HANDLER.df })]);
    expect(r.rsi).toBeGreaterThan(HANDLER.ve);
    expect(r.r14).toBe(0x08n);
  });

  it('a #VE for an instruction (HLT) while the VE info is unread is a #DF with error code 0 too, at the HLT', () => {
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`, {
      ve: `ve_hlt: hlt`,
      df: `mov r12, [rsp]\n mov r13, [rsp + 8]\n mov r14, [rsp + 16]\n lea rsi, [rip + ve_hlt]\n mov r15, 8\n ${HALT}`,
    });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(runTd(td).outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r15, r.r12, r.r13, r.r14]).toEqual([8n, 0n, r.rsi, 0x08n]);
    expect(td.trace.ofType('df-injected')).toEqual([expect.objectContaining({ cause: 've-info-still-valid', exitReason: 12 })]);
  });

  it('a #DF that cannot be delivered (the #VE handler emptied the IDT, then touched a PENDING page) is a triple fault, with no delivery recorded for it', () => {
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`, { ve: 'lidt [0x20000]\n mov rax, [0x401000]' });
    td.platform.machine.memory.fill(0x20000n, 16n, 0);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('terminated');
    expect(outcome.reason).toMatch(/^triple fault: .*vector 8/);
    expect(td.trace.ofType('df-injected')).toHaveLength(1);
    expect(td.trace.ofType('injection-failed').map((e) => e.vector)).toEqual([8]);
    expect(td.trace.ofType('exception-injected')).toEqual([]);
  });

  it('an undeliverable #VE and #DF end in a triple fault (terminated), not an exception', () => {
    const td = tdGuest(`lidt [0x20000]\n mov rax, [0x400000]\n ${HALT}`);
    td.platform.machine.memory.fill(0x20000n, 16n, 0);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('terminated');
    expect(outcome.reason).toMatch(/triple fault/);
  });
});

describe('a posted interrupt the guest cannot take', () => {
  // The interrupt is delivered at the TD entry after the VMM's answer (IF set). With the IDT empty
  // its delivery faults, the #DF too: shutdown (Intel SDM Vol. 3 §6.15, interrupt 8), a TD exit
  // with VMEXIT_REASON_TRIPLE_FAULT and TDX_NON_RECOVERABLE_VCPU (tdx_td_dispatcher.c). The vCPU
  // runs no further instruction: the HALT after the VMCALL is never reached.
  it('is a triple fault at the TD entry that would deliver it, and the guest does not run on', () => {
    const td = tdGuest(`lidt [0x20000]\n sti\n xor eax, eax\n mov ecx, 0x1c00\n xor r10, r10\n mov r11, 0x10000\n xor r12, r12\n ${TDCALL}\n ${HALT}`);
    td.platform.machine.memory.fill(0x20000n, 16n, 0);
    td.platform.handle.injectInterrupt(IRQ_VECTOR);
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('terminated');
    expect(outcome.reason).toMatch(/^triple fault: .*vector 8/);
    expect(td.trace.ofType('injection-failed').map((e) => e.vector)).toEqual([IRQ_VECTOR, 8]);
    expect(td.trace.ofType('vmm-decision')).toHaveLength(1);  // the VMCALL's answer, not the HALT
  });
});

describe('A6 PENDING page with #VE disabled → TD exit, fatal for the VMM', () => {
  it('ATTRIBUTES.SEPT_VE_DISABLE', () => {
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`, { attributes: TdAttributes.SEPT_VE_DISABLE });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    const outcome = runTd(td);
    expect(outcome).toMatchObject({ outcome: 'terminated' });
    expect(outcome.reason).toMatch(/guest access before accepting/);
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ eeqType: 'pending-ept-violation', eeq: 6n, septState: 'PENDING' });
  });

  it('TDG.VM.WR TD_CTLS.PENDING_VE_DISABLE with CONFIG_FLAGS.FLEXIBLE_PENDING_VE', () => {
    const td = tdGuest(`
      mov rax, 7\n mov rdx, 0x1110000300000016\n ${TDCALL}\n mov r12, r8
      mov rax, 8\n mov rdx, 0x1110000300000017\n mov r8, 1\n mov r9, 1\n ${TDCALL}\n mov r13, rax
      mov rax, 7\n mov rdx, 0x1110000300000017\n ${TDCALL}\n mov rbx, r8
      mov rax, [0x400000]\n ${HALT}`, { configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(runTd(td).outcome).toBe('terminated');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13, r.rbx]).toEqual([2n, 0n, 1n]);
  });

  // metadata_td.c md_td_write_element(): without FLEXIBLE_PENDING_VE, changing PENDING_VE_DISABLE is
  // FIELD_VALUE_NOT_VALID; CONFIG_FLAGS has guest_wr_mask 0 (FIELD_NOT_WRITABLE). No operand IDs.
  it('without FLEXIBLE_PENDING_VE, TD_CTLS.PENDING_VE_DISABLE cannot change and CONFIG_FLAGS is never writable', () => {
    const { td, outcome } = runTdGuest(`
      xor ecx, ecx
      mov rax, 8\n mov rdx, 0x1110000300000017\n mov r8, 1\n mov r9, 1\n ${TDCALL}\n mov r12, rax\n mov r14, r8
      mov rax, 8\n mov rdx, 0x1110000300000016\n mov r8, 2\n mov r9, 2\n ${TDCALL}\n mov r13, rax
      mov rax, 7\n mov rdx, 0x1234\n ${TDCALL}\n mov rbx, rax\n ${HALT}`);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r12).toBe(0xc0000c0300000000n);
    expect(r.r14).toBe(0n); // R8 is zeroed before any check
    expect(r.r13).toBe(0xc0000c0100000000n);
    expect(r.rbx).toBe(0xc0000c0000000000n);
    expect(td.platform.module.tdCtls).toBe(0n);
  });
});

describe('A6 FREE / BLOCKED / REMOVED private GPAs → EPT-violation TD exit', () => {
  it('FREE: TD exit, the VMM AUGs, the guest re-faults onto PENDING and takes #VE', () => {
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`, { ve: VE_READER });
    expect(runTd(td).outcome).toBe('done');
    const exits = td.trace.ofType('td-exit');
    expect(exits[0]).toMatchObject({ reason: 'ept-violation', eeqType: 'none', septState: 'FREE', access: 'read' });
    expect(td.platform.machine.vcpu.regs.rbx).toBe(48n);
  });

  it('the VMM sees the page only: GPA bits 11:0 and qualification bits 12:7 cleared, no GLA (td_other_exits.c)', () => {
    const seen: EptViolationExit[] = [];
    const policy: TdxVmmPolicy = { ...honestTdxPolicy, onPrivateEptViolation(ctx, exit) { seen.push(exit); return honestTdxPolicy.onPrivateEptViolation(ctx, exit); } };
    const td = tdGuest(`mov rcx, 0x400000\n mov byte ptr [rcx + 0x123], 1\n ${HALT}`, { ve: VE_READER, policy });
    expect(runTd(td).outcome).toBe('done');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ gpa: 0x400000n, exitQualification: 0x2n, access: 'write' });
    expect('gla' in seen[0]!).toBe(false);
    // The guest's own #VE for the same access (after the VMM's AUG) keeps the exact addresses and bits 7/8.
    const r = td.platform.machine.vcpu.regs;
    expect([r.rbx, r.r14, r.rbp, r.rsi]).toEqual([48n, 0x2n | 0x80n | 0x100n, 0x400123n, 0x400123n]);
  });

  it('BLOCKED: TD exit; the honest VMM cannot explain it and stops', () => {
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    td.platform.module.sept.setState(1, P, 'MAPPED');
    td.platform.module.host.memRangeBlock(gpaLevel(P, 1));
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('vmm-error');
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ septState: 'BLOCKED', eeqType: 'none' });
  });

  it('REMOVED: TD exit; the VMM re-AUGs; the page is PENDING again (#VE)', () => {
    const td = tdGuest(`mov byte ptr [0x400000], 1\n ${HALT}`, { ve: VE_READER });
    td.platform.module.sept.setState(1, P, 'REMOVED');
    expect(runTd(td).outcome).toBe('done');
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ septState: 'REMOVED', access: 'write' });
    expect(td.platform.machine.vcpu.regs.r14 & 2n).toBe(2n);
  });

  it('a shared GPA the VMM does not map → TD exit (fault outcome)', () => {
    const { td, outcome } = runTdGuest(`mov rax, 0x4000400000\n mov rax, [rax]\n ${HALT}`);
    expect(outcome.outcome).toBe('fault');
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ space: 'shared', gpa: (1n << 47n) | P });
  });
});

describe('HLT in a TD (tdx_td_dispatcher.c: td_generic_ve_exit)', () => {
  it('raises #VE with reason 12, qualification 0, length 1 and RIP at the HLT; it is not a TD exit', () => {
    // The handler reads VE info, records the interrupted RIP (R9), steps over the HLT and returns.
    const ve = `mov rax, 3\n ${TDCALL}\n mov rbx, rcx\n mov r14, rdx\n mov edi, r10d\n mov r9, [rsp]\n add [rsp], rdi\n iretq`;
    const { td, outcome } = runTdGuest(`lea r13, [rip + 1f]\n 1: hlt\n mov r15, 0x600d\n ${HALT}`, { ve });
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.rbx, r.r14, r.rdi]).toEqual([12n, 0n, 1n]);
    expect(r.r9).toBe(r.r13); // #VE is fault-like: the saved RIP is the HLT itself
    expect(r.r15).toBe(0x600dn); // execution continued after the HLT
    expect(td.trace.ofType('td-exit')).toHaveLength(1); // only the final TDVMCALL<HLT>
    expect(td.trace.ofType('ve-injected')[0]).toMatchObject({ exitReason: 12 });
  });
});

describe('CPUID and TDCALL leaf rules', () => {
  it('CPUID 0x21 reports "IntelTDX    " in EBX, EDX, ECX', () => {
    const { td, outcome } = runTdGuest(`mov eax, 0x21\n xor ecx, ecx\n cpuid\n mov esi, ecx\n ${HALT}`);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    const s = Buffer.alloc(12);
    s.writeUInt32LE(Number(r.rbx), 0); s.writeUInt32LE(Number(r.rdx), 4); s.writeUInt32LE(Number(r.rsi), 8);
    expect(s.toString('latin1')).toBe('IntelTDX    ');
  });

  it.each([
    ['RAX bits 63:24 set', 0x1000001n, 0xc000010000000000n],
    ['version 1 on VP.INFO', 0x10001n, 0xc000010000000000n],
    ['version 2 on VM.RD', 0x20007n, 0xc000010000000000n],
    ['unknown leaf 99', 99n, 0xc000010000000000n],
    ['unmodelled leaf VP.RD', 9n, 0xc000010000000000n],
    ['VEINFO.GET with nothing pending', 3n, 0xc000070400000000n],
  ])('%s', (_n, rax, status) => {
    const { td, outcome } = runTdGuest(`mov rax, 0x${rax.toString(16)}\n ${TDCALL}\n mov rbx, rax\n ${HALT}`);
    expect(outcome.outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(status);
  });

  it('VM.RD version 1 is allowed', () => {
    const { td } = runTdGuest(`mov rax, 0x10007\n mov rdx, 0x1110000300000017\n ${TDCALL}\n mov rbx, rax\n ${HALT}`);
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0n);
  });

  it('TDG.VP.INFO: GPAW, ATTRIBUTES, vCPU counts, index', () => {
    const attributes = TdAttributes.DEBUG | TdAttributes.SEPT_VE_DISABLE;
    const { td } = runTdGuest(`mov rax, 1\n ${TDCALL}\n mov rbx, rax\n mov rsi, rcx\n ${HALT}`, { attributes, numVcpus: 1, maxVcpus: 4 });
    const r = td.platform.machine.vcpu.regs;
    expect([r.rbx, r.rsi, r.rdx, r.r8, r.r9]).toEqual([0n, 48n, attributes, 1n | (4n << 32n), 0n]);
  });

  it('TDCALL outside 64-bit mode (compatibility-mode CS) → #GP(0)', () => {
    // Far-return into a 32-bit code segment (GDT slot 0x18) and TDCALL there.
    const { td, outcome } = runTdGuest(`
      ${TO_COMPAT_MODE}
      .byte 0xb8, 0x06, 0, 0, 0      # mov eax, 6 (32-bit encoding)
      ${TDCALL}
      ${HALT}`);
    // The module decides #GP(0); the vCPU delivers it from compatibility mode to the 64-bit
    // handler like the CPU does (IA-32e frame with the 32-bit CS, error code 0).
    expect(td.trace.ofType('tdcall')[0]).toMatchObject({ result: '#GP(0)', cause: 'not-64-bit' });
    // The tdcall event is the #GP's record: its delivery adds no exception-injected event.
    expect(td.trace.ofType('exception-injected').filter((e) => e.vector === 13)).toEqual([]);
    expect(outcome.outcome).not.toBe('terminated');
    const vcpu = td.platform.machine.vcpu;
    expect(vcpu.regs.r15).toBe(13n);
    expect(vcpu.codeSegment().bits).toBe(64);
    const frame = Buffer.from(td.platform.machine.memory.read(vcpu.regs.rsp, 24));
    expect([frame.readBigUInt64LE(0), frame.readBigUInt64LE(16)]).toEqual([0n, 0x18n]);  // error code, CS
  });

  it('a TDCALL after CS moved to a compatibility-mode segment is #GP(0) even though the one before succeeded', () => {
    // The module may remember the mode of a CS it has seen, but not across a CS change.
    const { td } = runTdGuest(`
      mov rax, 1
      ${TDCALL}
      ${TO_COMPAT_MODE}
      .byte 0xb8, 0x01, 0, 0, 0      # mov eax, 1 (32-bit encoding)
      ${TDCALL}
      hlt`);
    const calls = td.trace.ofType('tdcall');
    expect(calls[0]).toMatchObject({ leaf: 'VP_INFO', status: 0n });
    expect(calls[1]).toMatchObject({ result: '#GP(0)', cause: 'not-64-bit' });
  });

  it('port I/O in a TD raises #VE (reason 30)', () => {
    const { td } = runTdGuest(`mov dx, 0x3f8\n mov al, 0x41\n out dx, al\n ${HALT}`, { ve: VE_READER });
    expect(td.platform.machine.vcpu.regs.rbx).toBe(30n);
  });
});

describe('what the guest reads after a #VE for string I/O (tdx_inject_ve: VMCS exit qualification, length and information)', () => {
  // Handler: VEINFO.GET; RCX → RBX, RDX → R14, R8 → RBP, R9 → RSI, R10 (length | info << 32) → RDI.
  const VE_ALL = `mov rax, 3\n ${TDCALL}\n mov r12, rax\n mov rbx, rcx\n mov r14, rdx\n mov rbp, r8\n mov rsi, r9\n mov rdi, r10\n mov r15, 20\n ${HALT}`;

  it('gs rep outsb with an address-size prefix in 64-bit code: 32-bit address, GS, length 4', () => {
    // Exit qualification (SDM Vol. 3C, I/O instructions): size 1 → 0, OUT → bit 3 clear, string
    // bit 4, REP bit 5, DX operand → bit 6 clear, port 0x80 in 31:16. Instruction information
    // (the INS/OUTS format): address size 1 (32-bit) in 9:7, segment 5 (GS) in 17:15. GLA and GPA
    // are 0: td_generic_ve_exit passes neither. Linux handle_io then refuses a string #VE (-EIO).
    const { td, outcome } = runTdGuest(`mov edx, 0x80\n mov ecx, 3\n xor esi, esi\n .byte 0x65, 0x67, 0xf3, 0x6e\n ${HALT}`, { ve: VE_ALL });
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.rbx, r.r14, r.rbp, r.rsi]).toEqual([0n, 30n, 0x80_0030n, 0n, 0n]);
    expect(r.rdi & 0xffffffffn).toBe(4n);
    expect(r.rdi >> 32n).toBe((1n << 7n) | (5n << 15n));
  });

  it('insw: 64-bit address, ES (INS writes ES:RDI), length 2; a plain OUT reports no information', () => {
    const ins = runTdGuest(`mov edx, 0x71\n xor edi, edi\n .byte 0x66, 0x6d\n ${HALT}`, { ve: VE_ALL });
    const r = ins.td.platform.machine.vcpu.regs;
    expect([r.rbx, r.r14]).toEqual([30n, 0x71_0019n]); // size 2 → 1, IN (bit 3), string (bit 4)
    expect(r.rdi).toBe((2n << 7n) << 32n | 2n);
    const out = runTdGuest(`mov edx, 0x3f8\n mov al, 0x41\n out dx, al\n ${HALT}`, { ve: VE_ALL });
    expect(out.td.platform.machine.vcpu.regs.rdi).toBe(1n);
  });
});

describe('RFLAGS.RF in the frame of an exception the TDX module injects (tdx_inject_ve, inject_gp: rflags.rf = 1)', () => {
  // The handler keeps the pushed RFLAGS (RSP + 16: RIP, CS, RFLAGS; #VE has no error code, #GP
  // has one) in RBX and its own RFLAGS in RBP. PUSHFQ never copies RF (SDM PUSHF), so the own
  // value is read back through the frame of an INT3 the handler raises itself: a trap, RF as it is.
  const RF = 1n << 16n;

  it('#VE for a PENDING page: the frame has RF set (IRET then skips the instruction breakpoint)', () => {
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`, { ve: `mov rbx, [rsp + 16]\n mov r15, 20\n ${HALT}` });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n);
    expect(td.platform.machine.vcpu.regs.rbx & RF).toBe(RF);
  });

  it('#VE for HLT and #DF for a second #VE: RF set in both frames; a posted interrupt\'s frame has it clear', () => {
    const hlt = runTdGuest(`hlt\n ${HALT}`, { ve: `mov rbx, [rsp + 16]\n mov r15, 20\n ${HALT}` });
    expect(hlt.td.platform.machine.vcpu.regs.rbx & RF).toBe(RF);
    const td = tdGuest(`mov rax, [0x400000]\n ${HALT}`, { ve: 'mov rax, [0x401000]', df: `mov rbx, [rsp + 24]\n mov r15, 8\n ${HALT}` });
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(8n);
    expect(td.platform.machine.vcpu.regs.rbx & RF).toBe(RF); // #DF pushes an error code (0) first
    // Posted before the run: delivered at the TD entry after the next TD exit (a TDVMCALL
    // <GetTdVmCallInfo>) once IF is set.
    const irq = tdGuest(`xor r14, r14\n sti\n xor eax, eax\n mov ecx, 0x1c00\n xor r10, r10\n mov r11, 0x10000\n xor r12, r12\n ${TDCALL}\n ${HALT}`, { irq: 'mov rbx, [rsp + 16]\n inc r14\n iretq' });
    irq.platform.handle.injectInterrupt(IRQ_VECTOR);
    expect(runTd(irq).outcome).toBe('done');
    expect(irq.platform.machine.vcpu.regs.r14).toBe(1n);
    expect(irq.platform.machine.vcpu.regs.rbx & RF).toBe(0n);
  });

  it('#GP(0) the module injects for a TDCALL outside 64-bit mode has RF set', () => {
    const { td } = runTdGuest(`${TO_COMPAT_MODE}\n .byte 0x66, 0x0f, 0x01, 0xcc\n hlt`, { gp: `mov rbx, [rsp + 24]\n mov r15, 13\n ${HALT}` });
    expect(td.platform.machine.vcpu.regs.r15).toBe(13n);
    expect(td.platform.machine.vcpu.regs.rbx & RF).toBe(RF);
  });
});
