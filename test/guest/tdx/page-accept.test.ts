// Table A3 (TDG.MEM.PAGE.ACCEPT), every row through a real TDCALL in a tiny TD.
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { TdxStatus } from '../../../src/platform/tdx/status.js';
import { runTd, type Td } from '../../../src/vmm/tdx/run-td.js';
import { acceptAsm, HALT, IRQ_VECTOR, tdGuest } from '../../helpers/tdx-guest.js';

/** Runs until an instruction budget `n` instructions from now (the guest spins on R13 meanwhile). */
function runFor(td: Td, n: bigint) {
  td.platform.machine.vcpu.instructionLimit = td.platform.machine.vcpu.instructions + n;
  return runTd(td);
}

const P = 0x400000n; // a 2M-aligned GPA above the boot image
const OPERAND_INVALID_RCX = 0xc000010000000001n;

/** Runs `main`, which ends with the ACCEPT status in RBX; returns it. */
function acceptStatus(td: Td): bigint {
  const outcome = runTd(td);
  expect(outcome.outcome, outcome.reason).toBe('done');
  return td.platform.machine.vcpu.regs.rbx;
}
/** ACCEPT `rcx`, status → RBX, then `after` (e.g. a load), then halt. */
const acceptThenHalt = (rcx: bigint, after = '') => `mov rax, 6\n mov rcx, 0x${rcx.toString(16)}\n .byte 0x66,0x0f,0x01,0xcc\n mov rbx, rax\n ${after}\n ${HALT}`;
const tdExits = (td: Td) => td.trace.ofType('td-exit').filter((e) => e.eeqType === 'accept');

describe('A3 RCX operand checks → OPERAND_INVALID(RCX), no #GP', () => {
  const rows: [string, bigint][] = [
    ['reserved bits 11:3', P | 0x8n],
    ['reserved bits 63:52', P | (1n << 52n)],
    ['level 2 (1G) is rejected', 0x40000000n | 2n],
    ['level 3', P | 3n],
    ['level 7', P | 7n],
    ['2M request not 2M-aligned', (P + 0x1000n) | 1n],
    ['shared bit (47) set', P | (1n << 47n)],
    ['GPA bit 48 with GPAW 48', P | (1n << 48n)],
  ];
  it.each(rows)('%s', (_name, rcx) => {
    const td = tdGuest(acceptThenHalt(rcx));
    expect(acceptStatus(td)).toBe(OPERAND_INVALID_RCX);
    expect(td.platform.machine.vcpu.regs.r15).toBe(0n); // no exception handler ran
  });
});

describe('A3 SEPT situations', () => {
  it('PENDING 4K leaf → page zeroed, MAPPED, RAX=0', () => {
    const td = tdGuest(acceptThenHalt(P, 'mov rdx, [0x400ff8]'));
    td.platform.module.host.memSeptAdd(gpaLevel(P, 1));
    expect(td.platform.module.host.memPageAug(gpaLevel(P, 0)).status).toBe(0n);
    td.platform.machine.memory.fill(P, 0x1000n, 0xaa); // stale content must not survive
    expect(acceptStatus(td)).toBe(0n);
    expect(td.platform.machine.vcpu.regs.rdx).toBe(0n);
    expect(td.platform.module.sept.walk(P, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
  });

  it('PENDING 2M leaf → 512 pages zeroed, MAPPED, RAX=0', () => {
    const td = tdGuest(acceptThenHalt(P | 1n));
    expect(td.platform.module.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    td.platform.machine.memory.fill(P, 0x200000n, 0x55);
    expect(acceptStatus(td)).toBe(0n);
    expect(td.platform.machine.memory.read(P + 0x1ff000n, 4096).every((b) => b === 0)).toBe(true);
    expect(td.platform.machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(512n);
  });

  it('already accepted 4K → PAGE_ALREADY_ACCEPTED | 0, content not zeroed', () => {
    const td = tdGuest(`mov qword ptr [0x400010], 0x1234\n ${acceptThenHalt(P, 'mov rdx, [0x400010]')}`);
    td.platform.module.host.memSeptAdd(gpaLevel(P, 1));
    td.platform.module.host.memPageAug(gpaLevel(P, 0));
    td.platform.module.sept.setState(0, P, 'MAPPED');
    expect(acceptStatus(td)).toBe(0x00000b0a00000000n);
    expect(td.platform.machine.vcpu.regs.rdx).toBe(0x1234n);
  });

  it('already accepted 2M, 2M request → PAGE_ALREADY_ACCEPTED | 1', () => {
    const td = tdGuest(`${acceptAsm(P, 1)}\n ${acceptThenHalt(P | 1n)}`);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(acceptStatus(td)).toBe(0x00000b0a00000001n);
  });

  it('accessible leaf at a larger level (2M MAPPED, 4K request) → PAGE_ALREADY_ACCEPTED | 1', () => {
    const td = tdGuest(`${acceptAsm(P, 1)}\n ${acceptThenHalt(P + 0x5000n)}`);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(acceptStatus(td)).toBe(0x00000b0a00000001n);
  });

  it('non-leaf at the requested level (2M request, range mapped as 4K) → PAGE_SIZE_MISMATCH | 1', () => {
    const td = tdGuest(acceptThenHalt(P | 1n));
    td.platform.module.host.memSeptAdd(gpaLevel(P, 1));
    td.platform.module.host.memPageAug(gpaLevel(P, 0));
    expect(acceptStatus(td)).toBe(0xc0000b0b00000001n);
  });

  it('FREE at requested level → TD exit (EEQ ACCEPT), VMM AUGs, TDCALL re-executes and succeeds', () => {
    const td = tdGuest(acceptThenHalt(P | 1n));
    expect(acceptStatus(td)).toBe(0n);
    const [exit] = tdExits(td);
    expect(exit).toMatchObject({ reason: 'ept-violation', gpa: P, eeqType: 'accept', septState: 'FREE', qual: 2n });
    // EEQ: type 1, info = req_level 1 | err_level 1 << 3 | public state FREE (0) << 6 | is_leaf 0
    expect(exit!.eeq).toBe(1n | ((1n | (1n << 3n) | (0n << 6n)) << 32n));
    // Same RIP for the exit and the successful retry.
    const calls = td.trace.ofType('tdcall');
    expect(calls.map((c) => c.result)).toEqual(['td-exit(accept)', 'SUCCESS', 'td-exit(tdvmcall)']);
    expect(calls[0]!.rip).toBe(calls[1]!.rip);
  });

  it('missing level (2M range FREE, 4K request) → TD exit err_level 1; VMM adds the SEPT page and AUGs 4K', () => {
    const td = tdGuest(acceptThenHalt(P + 0x3000n));
    expect(acceptStatus(td)).toBe(0n);
    expect(tdExits(td)[0]!.eeq).toBe(1n | ((0n | (1n << 3n) | (0n << 6n)) << 32n));
    expect(td.platform.module.sept.walk(P, 1).state).toBe('NL_MAPPED');
  });

  it('REMOVED entry above the request → TD exit (state 5, is_leaf 0); the VMM re-AUGs it, then demotes', () => {
    const td = tdGuest(acceptThenHalt(P + 0x3000n));
    td.platform.module.sept.setState(1, P, 'REMOVED');
    expect(acceptStatus(td)).toBe(0n);
    const [removed, pending] = tdExits(td);
    // sept_get_arch_state: REMOVED is public state 5; its PS bit is 0, so is_leaf = 0.
    expect(removed!.eeq).toBe(1n | ((0n | (1n << 3n) | (5n << 6n) | (0n << 14n)) << 32n));
    expect(pending).toMatchObject({ septState: 'PENDING' });
    expect(td.platform.module.sept.walk(P + 0x3000n, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
  });

  it('REMOVED entry at the requested level → PAGE_SIZE_MISMATCH (a non-FREE entry without PS, tdg_mem_page_accept.c)', () => {
    const td = tdGuest(acceptThenHalt(P | 1n));
    td.platform.module.sept.setState(1, P, 'REMOVED');
    expect(acceptStatus(td)).toBe(0xc0000b0b00000001n);
    expect(tdExits(td)).toHaveLength(0);
  });

  it('BLOCKED leaf → TD exit with is_leaf; VMM unblocks; retry → ALREADY_ACCEPTED', () => {
    const td = tdGuest(`${acceptAsm(P, 1)}\n mov rax, 0x100\n 1: dec rax\n jnz 1b\n ${acceptThenHalt(P | 1n)}`);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    // Block the page once the first accept has made it MAPPED (during the loop): use a policy-free approach:
    td.platform.machine.vcpu.instructionLimit = 10n;
    const first = runTd(td);
    expect(first.outcome).toBe('budget');
    expect(td.platform.module.sept.walk(P, 1).state).toBe('MAPPED');
    expect(td.platform.module.host.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    td.platform.machine.vcpu.instructionLimit = 1n << 40n;
    expect(acceptStatus(td)).toBe(0x00000b0a00000001n);
    const exit = tdExits(td)[0]!;
    expect(exit.septState).toBe('BLOCKED');
    // Public state BLOCKED = 1 (not the internal encoding 0x68); a leaf.
    expect(exit.eeq).toBe(1n | ((1n | (1n << 3n) | (1n << 6n) | (1n << 14n)) << 32n));
  });

  it('PENDING_BLOCKED leaf → TD exit; VMM unblocks; retry accepts', () => {
    const td = tdGuest(acceptThenHalt(P | 1n));
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    td.platform.module.host.memRangeBlock(gpaLevel(P, 1));
    expect(acceptStatus(td)).toBe(0n);
    expect(tdExits(td)[0]).toMatchObject({ septState: 'PENDING_BLOCKED' });
    // Public state PENDING_BLOCKED = 3 (internal encoding 0x78), a leaf.
    expect(tdExits(td)[0]!.eeq).toBe(1n | ((1n | (1n << 3n) | (3n << 6n) | (1n << 14n)) << 32n));
  });

  it('PENDING at a larger level (2M PENDING, 4K request) → TD exit; VMM demotes; only the 4K page is accepted', () => {
    const td = tdGuest(acceptThenHalt(P + 0x7000n));
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(acceptStatus(td)).toBe(0n);
    expect(tdExits(td)[0]).toMatchObject({ septState: 'PENDING' });
    expect(td.platform.module.sept.walk(P + 0x7000n, 0).state).toBe('MAPPED');
    expect(td.platform.module.sept.walk(P + 0x8000n, 0).state).toBe('PENDING');
    expect(td.trace.ofType('seamcall').map((e) => e.leaf)).toContain('TDH_MEM_PAGE_DEMOTE');
  });

  it('entry locked by the host → OPERAND_BUSY | RCX', () => {
    const td = tdGuest(acceptThenHalt(P | 1n));
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    td.platform.module.host.lockEntry(P, 1);
    expect(acceptStatus(td)).toBe(0x8000020000000001n);
    expect(TdxStatus.OPERAND_BUSY | 1n).toBe(0x8000020000000001n);
  });

  // sept_lock_acquire_guest only fails while another holder has the entry: once the host's
  // SEAMCALL lets go (lockEntry(..., false)), the guest's retried ACCEPT takes it and completes.
  it('entry unlocked by the host → the retried ACCEPT succeeds and maps the page', () => {
    const td = tdGuest(`${acceptAsm(P, 1)}\n mov r12, rax\n 1: pause\n cmp r13, 0\n je 1b\n ${acceptAsm(P, 1)}\n mov rbx, rax\n ${HALT}`);
    const host = td.platform.module.host;
    host.memPageAug(gpaLevel(P, 1));
    host.lockEntry(P, 1);
    td.platform.machine.vcpu.instructionLimit = 200n;
    expect(runTd(td).outcome).toBe('budget');
    expect(td.platform.machine.vcpu.regs.r12).toBe(TdxStatus.OPERAND_BUSY | 1n);
    expect(td.platform.module.sept.walk(P, 1).state).toBe('PENDING');
    host.lockEntry(P, 1, false);
    td.platform.machine.vcpu.regs.r13 = 1n;
    td.platform.machine.vcpu.instructionLimit = 1n << 40n;
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0n);
    expect(td.platform.module.sept.walk(P, 1).state).toBe('MAPPED');
  });

  // The SEPT lock is per entry (sept_lock_acquire_guest on the entry the walk reached): the host
  // holding one 2 MiB entry does not stop an ACCEPT of its neighbour.
  it('entry locked by the host → an ACCEPT of another entry is not blocked', () => {
    const td = tdGuest(acceptThenHalt((P + 0x200000n) | 1n));
    const host = td.platform.module.host;
    host.memPageAug(gpaLevel(P, 1));
    host.memPageAug(gpaLevel(P + 0x200000n, 1));
    host.lockEntry(P, 1);
    expect(acceptStatus(td)).toBe(0n);
    expect(td.platform.module.sept.walk(P + 0x200000n, 1).state).toBe('MAPPED');
    expect(td.platform.module.sept.walk(P, 1).state).toBe('PENDING');
  });

  it('the walk result comes before the lock: 4K ACCEPT under a locked, accepted 2M leaf → ALREADY_ACCEPTED|1', () => {
    // tdg_mem_page_accept.c check_tdaccept_failure: a walk that stopped above the requested level
    // returns without taking the entry lock; only the 2M request itself meets the lock.
    const td = tdGuest(`${acceptAsm(P, 1)}\n mov r12, rax\n 1: pause\n cmp r13, 0\n je 1b
      ${acceptAsm(P + 0x3000n)}\n mov rbx, rax\n ${acceptAsm(P, 1)}\n mov rsi, rax\n ${HALT}`);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    td.platform.machine.vcpu.instructionLimit = 200n;
    expect(runTd(td).outcome).toBe('budget');
    expect(td.platform.machine.vcpu.regs.r12).toBe(0n);
    td.platform.module.host.lockEntry(P, 1);
    td.platform.machine.vcpu.regs.r13 = 1n;
    td.platform.machine.vcpu.instructionLimit = 1n << 40n;
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0x00000b0a00000001n);
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0x8000020000000001n);
  });
});

describe('a blocked non-leaf entry blocks everything below it (tdh_mem_range_block.c, sept_manager.c)', () => {
  it('ACCEPT below NL_BLOCKED → TD exit at that entry (err_level 1, state 0x81, is_leaf 0); the VMM unblocks', () => {
    const td = tdGuest(acceptThenHalt(P + 0x5000n));
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(P, 1));
    h.memPageAug(gpaLevel(P + 0x5000n, 0));
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(acceptStatus(td)).toBe(0n);
    const [exit] = tdExits(td);
    expect(exit).toMatchObject({ septState: 'NL_BLOCKED', gpa: P + 0x5000n });
    expect(exit!.eeq).toBe(1n | ((0n | (1n << 3n) | (0x81n << 6n) | (0n << 14n)) << 32n));
    expect(td.trace.ofType('seamcall').map((e) => e.leaf)).toContain('TDH_MEM_RANGE_UNBLOCK');
    expect(td.platform.module.sept.walk(P + 0x5000n, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
  });

  it('any guest access below NL_BLOCKED → an EPT-violation TD exit, for the whole 2M range', () => {
    const td = tdGuest(`${acceptAsm(P)}\n ${acceptAsm(P + 0x1ff000n)}\n mov qword ptr [0x5ff000], 7\n 1: pause\n cmp r13, 0\n je 1b
      mov rax, [0x5ff000]\n ${HALT}`);
    expect(runFor(td, 400n).outcome).toBe('budget');
    expect(td.platform.machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(2n);
    const h = td.platform.module.host;
    expect(h.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n); // the non-leaf above both pages
    h.memTrack();
    expect(td.platform.machine.gate.count('private', P, 0x200000n, 'readwrite')).toBe(0n);
    td.platform.machine.vcpu.regs.r13 = 1n;
    td.platform.machine.vcpu.instructionLimit = 1n << 40n;
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('vmm-error'); // the honest VMM never blocks a non-leaf itself
    expect(td.trace.ofType('td-exit').at(-1)).toMatchObject({ reason: 'ept-violation', septState: 'NL_BLOCKED', gpa: 0x5ff000n, eeqType: 'none' });
  });
});

describe('A3 2M accept interruptibility (tdg_mem_page_accept.c, helpers.h is_interrupt_pending_guest_side)', () => {
  // The module polls IA32_INTR_PENDING: a pending *host* interrupt, whatever the guest's RFLAGS.IF.
  // The VMM posts the interrupt's vector to the guest: it runs the handler only when IF is set.
  it.each([['sti', 1n], ['cli', 0n]])('a host interrupt after 200 chunks stops the ACCEPT with %s: no RAX, no RIP advance; the retry resumes', (ifInsn, handlerRuns) => {
    const td = tdGuest(`${ifInsn}\n ${acceptThenHalt(P | 1n)}`);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    td.platform.machine.memory.fill(P, 0x200000n, 0x77);
    td.platform.handle.postInterrupt(IRQ_VECTOR, 200);
    expect(acceptStatus(td)).toBe(0n);
    expect(td.platform.machine.vcpu.regs.r14).toBe(handlerRuns);
    const [intr] = td.trace.ofType('accept-interrupted');
    expect(intr).toMatchObject({ acceptCounter: 200, resumedFrom: 0 });
    expect(td.trace.ofType('accept-resumed-complete')[0]).toMatchObject({ resumedFrom: 200 });
    const calls = td.trace.ofType('tdcall');
    expect(calls.map((c) => c.result)).toEqual(['interrupted', 'SUCCESS', 'td-exit(tdvmcall)']);
    expect(calls[1]!.rip).toBe(calls[0]!.rip); // the same TDCALL re-executed
    expect(calls[1]!.rax).toBe(6n); // RAX was not written by the interrupted call
    expect(td.platform.machine.memory.read(P, 4096).every((b) => b === 0)).toBe(true);
    expect(td.platform.machine.memory.read(P + 0x1ff000n, 4096).every((b) => b === 0)).toBe(true);
  });

  it('without a host interrupt the 2M ACCEPT completes in one call', () => {
    const td = tdGuest(`sti\n ${acceptThenHalt(P | 1n)}`);
    td.platform.module.host.memPageAug(gpaLevel(P, 1));
    expect(acceptStatus(td)).toBe(0n);
    expect(td.trace.ofType('accept-interrupted')).toHaveLength(0);
  });
});
