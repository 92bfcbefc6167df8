// TDG.MEM.PAGE.ACCEPT edges called on the module directly (no guest run), each against
// intel/tdx-module TDX_1.5.01 src/td_dispatcher/vm_exits/tdg_mem_page_accept.c and
// src/common/helpers/helpers.c (verify_page_info_input, check_gpa_validity).
import { describe, expect, it } from 'vitest';
import { pageAccept } from '../../../src/platform/tdx/page-accept.js';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { septLockKey } from '../../../src/platform/tdx/sept-states.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';

const RAM = 8n << 20n;
const P = 0x200000n;
const OPERAND_INVALID_RCX = 0xc000010000000001n;

/** A finalized TD with the SEPT levels above the 2M entries added. */
function runningTd() {
  const t = createTd({ memoryBytes: RAM });
  const m = t.platform.module;
  expect(m.host.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
  expect(m.host.memSeptAdd(gpaLevel(0n, 2)).status).toBe(0n);
  expect(m.host.mrFinalize().status).toBe(0n);
  return m;
}

describe('ACCEPT operand: check_gpa_validity(PRIVATE_ONLY)', () => {
  it('a GPA that is the shared bit alone (bit 47, GPAW 48) is OPERAND_INVALID|RCX, for ACCEPT and for AUG alike', () => {
    const m = runningTd();
    const shared = 1n << 47n;
    expect(pageAccept(m, shared)).toEqual({ kind: 'return', status: OPERAND_INVALID_RCX });
    expect(pageAccept(m, shared | 1n)).toEqual({ kind: 'return', status: OPERAND_INVALID_RCX });
    expect(m.host.memPageAug(shared).status).toBe(OPERAND_INVALID_RCX);
    // One page below it is a private GPA: valid, but not in this TD's RAM.
    expect(m.host.memPageAug(shared - 0x1000n).status).toBe(0xc000010100000001n); // OPERAND_ADDR_RANGE_ERROR|RCX
  });

  it('an operand that is no 64-bit register value (a hostile VMM\'s negative BigInt) is OPERAND_INVALID|RCX', () => {
    const m = runningTd();
    expect(m.host.memPageAug(-0x200000n).status).toBe(OPERAND_INVALID_RCX);
    expect(m.host.memPageAug(-0x1ff000n | 1n).status).toBe(OPERAND_INVALID_RCX);
    expect(m.host.memSeptAdd(-(1n << 39n) | 3n).status).toBe(OPERAND_INVALID_RCX);
  });
});

describe('ACCEPT of a PENDING leaf', () => {
  it.each([[0, 0x1000n], [1, 0x200000n]] as const)('the last page of RAM (level %i) is accepted and zeroed like any other', (level, size) => {
    const m = runningTd();
    const last = RAM - size;
    if (level === 0) expect(m.host.memSeptAdd(gpaLevel(RAM - 0x200000n, 1)).status).toBe(0n);
    expect(m.host.memPageAug(gpaLevel(last, level)).status).toBe(0n);
    m.machine.memory.fill(last, size, 0xee);
    expect(pageAccept(m, gpaLevel(last, level))).toEqual({ kind: 'return', status: 0n });
    expect(m.machine.memory.read(last, Number(size)).every((b) => b === 0)).toBe(true);
    expect(m.sept.walk(RAM - 0x1000n, 0)).toMatchObject({ level, state: 'MAPPED' });
  });

  it('a 2M ACCEPT zeroes at least one 4K chunk per call: the interrupt check follows each chunk (do … while)', () => {
    const m = runningTd();
    m.host.memPageAug(gpaLevel(P, 1));
    m.machine.memory.fill(P, 0x2000n, 0x55);
    m.host.postInterrupt(0x30, 0); // pending before the ACCEPT starts
    const r = pageAccept(m, gpaLevel(P, 1));
    expect(r).toMatchObject({ kind: 'step', result: 'interrupted' });
    expect(m.sept.entry(1, P)).toMatchObject({ state: 'PENDING', acceptCounter: 1 });
    expect(m.machine.memory.read(P, 4096).every((b) => b === 0)).toBe(true);
    expect(m.machine.memory.read(P + 0x1000n, 1)[0]).toBe(0x55);
  });

  it('a completed 2M ACCEPT clears the entry\'s accept_counter (tdaccept_2mb_done: accept_counter = 0)', () => {
    const m = runningTd();
    m.host.memPageAug(gpaLevel(P, 1));
    m.host.postInterrupt(0x30, 100);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    expect(m.sept.entry(1, P)?.acceptCounter).toBe(100);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.sept.entry(1, P)).toMatchObject({ state: 'MAPPED', acceptCounter: 0 });
    // Uninterrupted, too.
    m.host.memPageAug(gpaLevel(P + 0x200000n, 1));
    expect(pageAccept(m, gpaLevel(P + 0x200000n, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.sept.entry(1, P + 0x200000n)).toMatchObject({ state: 'MAPPED', acceptCounter: 0 });
  });

  it('a host interrupt due at the chunk where the vCPU\'s turn ends interrupts the ACCEPT: the lock is let go and the vector posted', () => {
    const m = runningTd();
    m.host.memPageAug(gpaLevel(P, 1));
    m.preemptAccept = () => 300;
    m.host.postInterrupt(0x31, 300);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    expect(m.sept.entry(1, P)?.acceptCounter).toBe(300);
    expect(m.guestLocks.has(septLockKey(1, P))).toBe(false);
    expect(m.pendingInterrupt).toBeUndefined();
    expect(m.postedInterrupts).toEqual([0x31]);
  });
});

// A fuzz execution starts from a restored TdModule snapshot (saveState/loadState): the SEPT entry
// locks are module state a SEAMCALL on another host CPU or a vCPU inside its ACCEPT holds across
// exits, so a restore must put back exactly the locks of the moment of the save. A guest ACCEPT of
// a locked entry is OPERAND_BUSY|RCX (tdg_mem_page_accept.c: sept_lock_acquire_guest fails; a free
// lock with the host-priority bit set is refused too, tdx_locks.h).
describe('ACCEPT after the module state is restored', () => {
  const OPERAND_BUSY_RCX = 0x8000020000000001n;
  const key = septLockKey(1, P);

  function pendingTd() {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    return m;
  }

  it.each([
    ['a host SEAMCALL\'s lock', (m: ReturnType<typeof runningTd>) => m.host.lockEntry(P, 1)],
    ['the host-priority bit', (m: ReturnType<typeof runningTd>) => m.hostPriority.add(key)],
    ['another vCPU\'s ACCEPT lock', (m: ReturnType<typeof runningTd>) => m.guestLocks.set(key, 1)],
  ] as const)('%s held when the state was saved is held again after the restore', (_what, lock) => {
    const m = pendingTd();
    lock(m);
    const saved = m.saveState();
    m.hostLocks.clear();
    m.hostPriority.clear();
    m.guestLocks.clear();
    m.loadState(saved);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: OPERAND_BUSY_RCX });
  });

  it('a lock taken after the save is gone after the restore, and the ACCEPT goes ahead', () => {
    const m = pendingTd();
    const saved = m.saveState();
    m.host.lockEntry(P, 1);
    m.hostPriority.add(key);
    m.guestLocks.set(key, 1);
    m.loadState(saved);
    expect(pageAccept(m, gpaLevel(P, 1))).not.toEqual({ kind: 'return', status: OPERAND_BUSY_RCX });
  });

  it('the TD\'s MSR values of the moment of the save come back, and later writes are undone', () => {
    const m = pendingTd();
    m.msrValues.set(0x1d9, 0x1n);
    const saved = m.saveState();
    m.msrValues.set(0x1d9, 0x2n);
    m.msrValues.set(0x10, 0x3n);
    m.loadState(saved);
    expect([...m.msrValues]).toEqual([[0x1d9, 0x1n]]);
  });
});
