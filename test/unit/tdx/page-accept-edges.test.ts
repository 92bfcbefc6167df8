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

  it('an interrupt pending when a 2M ACCEPT resumes is due that many chunks after where it resumed, not after the page\'s start', () => {
    // The module checks after each chunk it zeroes in this call (is_interrupt_pending_guest_side).
    const m = runningTd();
    m.host.memPageAug(gpaLevel(P, 1));
    m.machine.memory.fill(P, 0x200000n, 0x55);
    m.host.postInterrupt(0x30, 100);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    m.host.postInterrupt(0x31, 50);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    expect(m.sept.entry(1, P)).toMatchObject({ state: 'PENDING', acceptCounter: 150 });
    expect(m.machine.memory.read(P, 150 * 0x1000).every((b) => b === 0)).toBe(true);
    expect(m.machine.memory.read(P + 150n * 0x1000n, 1)[0]).toBe(0x55);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
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
    expect(m.postedVectors).toEqual([0x31]);
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

// tdg_mem_page_accept.c (TDX_1.5): verify_page_info_input(gpa_mappings, LVL_PT, LVL_PD) admits
// only 4K and 2M; check_tdaccept_failure decides a walk that stopped above the requested level
// (walk_failed) before sept_lock_acquire_guest, so a lock on that larger entry is never looked at;
// and only the entry at the requested level is locked, so a lock held on another entry is no
// concern of this ACCEPT.
describe('ACCEPT: levels and which entry\'s lock counts', () => {
  const OPERAND_BUSY_RCX = 0x8000020000000001n;
  const PAGE_ALREADY_ACCEPTED = 0x00000b0a00000000n;

  it('a 1G ACCEPT (level 2) is OPERAND_INVALID|RCX, even for a 1G-aligned GPA with its levels in place', () => {
    const m = runningTd();
    expect(pageAccept(m, gpaLevel(0n, 2))).toEqual({ kind: 'return', status: OPERAND_INVALID_RCX });
    // Levels 3 to 7 of RCX[2:0] are refused alike.
    for (const level of [3n, 4n, 7n]) expect(pageAccept(m, level)).toEqual({ kind: 'return', status: OPERAND_INVALID_RCX });
  });

  it('a 4K ACCEPT inside a host-locked 2M PENDING leaf exits as an EPT violation: the walk failed, nothing is locked', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    m.host.lockEntry(P, 1);
    const r = pageAccept(m, gpaLevel(P + 0x3000n, 0));
    expect(r).toMatchObject({ kind: 'step', result: 'td-exit(accept)' });
  });

  it('a 4K ACCEPT inside a host-locked 2M MAPPED leaf is PAGE_ALREADY_ACCEPTED with the leaf\'s level', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    m.host.lockEntry(P, 1);
    expect(pageAccept(m, gpaLevel(P + 0x3000n, 0))).toEqual({ kind: 'return', status: PAGE_ALREADY_ACCEPTED | 1n });
  });

  it.each([
    ['the host holds', (m: ReturnType<typeof runningTd>, other: bigint) => m.host.lockEntry(other, 1)],
    ['another vCPU holds', (m: ReturnType<typeof runningTd>, other: bigint) => m.guestLocks.set(septLockKey(1, other), 1)],
    ['has the host-priority bit', (m: ReturnType<typeof runningTd>, other: bigint) => m.hostPriority.add(septLockKey(1, other))],
  ] as const)('an entry that %s does not stop the ACCEPT of another entry', (_what, lock) => {
    const m = runningTd();
    const other = P + 0x200000n;
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.host.memPageAug(gpaLevel(other, 1)).status).toBe(0n);
    lock(m, other);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(pageAccept(m, gpaLevel(other, 1))).toEqual({ kind: 'return', status: OPERAND_BUSY_RCX });
  });

  it('the vCPU that holds the entry across a preemption goes on with its ACCEPT and lets the lock go when it completes', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    m.guestLocks.set(septLockKey(1, P), m.machine.vcpuIndex);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.guestLocks.size).toBe(0);
  });
});

// The exact results of check_tdaccept_failure's cases (tdg_mem_page_accept.c, TDX_1.5):
// ALREADY_ACCEPTED and SIZE_MISMATCH are api_error_with_operand_id(status, ept_level), the level
// the walk reached; a VIOLATION is async_tdexit_ept_violation (td_other_exits.c), whose extended
// exit qualification (vmx_ext_exit_qual_t, vmcs_defs.h) is type VMX_EEQ_ACCEPT (1) in bits 3:0 and
// tdaccept_vmx_eeq_info_t (tdx_api_defs.h) in bits 63:32: req_sept_level[2:0],
// err_sept_level[5:3], err_sept_state[13:6] (sept_get_arch_state: FREE 0, BLOCKED 1, PENDING 2,
// PENDING_BLOCKED 3, MAPPED 4; include/auto_gen/sept_state_lookup.c public_state), err_sept_is_leaf[14]; exit_qual.data_write = 1 and the entry's RWX (0 here).
describe('ACCEPT: the exact statuses and exit qualifications of each failure', () => {
  const PAGE_ALREADY_ACCEPTED = 0x00000b0a00000000n;
  const PAGE_SIZE_MISMATCH = 0xc0000b0b00000000n;

  function eeqOf(r: ReturnType<typeof pageAccept>) {
    if (r.kind !== 'step' || r.step.kind !== 'td-exit' || r.step.exit.reason !== 'ept-violation') throw new Error(`no EPT-violation TD exit: ${JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
    return r.step.exit;
  }

  it('a 4K ACCEPT of a MAPPED 4K page is PAGE_ALREADY_ACCEPTED with level 0 in bits 31:0', () => {
    const m = runningTd();
    expect(m.host.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.host.memPageAug(gpaLevel(P, 0)).status).toBe(0n);
    expect(pageAccept(m, gpaLevel(P, 0))).toEqual({ kind: 'return', status: 0n });
    expect(pageAccept(m, gpaLevel(P, 0))).toEqual({ kind: 'return', status: PAGE_ALREADY_ACCEPTED });
  });

  it('a 2M ACCEPT where a SEPT page maps the range as 4K pages is PAGE_SIZE_MISMATCH|1', () => {
    const m = runningTd();
    expect(m.host.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: PAGE_SIZE_MISMATCH | 1n });
  });

  it('a 4K ACCEPT inside a 2M PENDING leaf: EEQ info req 0, err level 1, state PENDING (2), leaf', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    const exit = eeqOf(pageAccept(m, gpaLevel(P + 0x5000n, 0)));
    const info = 0n | (1n << 3n) | (2n << 6n) | (1n << 14n);
    expect(exit.eeq).toEqual({ type: 'accept', raw: 1n | (info << 32n), reqLevel: 0, errLevel: 1, errState: 'PENDING', isLeaf: true });
    expect(exit).toMatchObject({ gpa: P + 0x5000n, access: 'write', space: 'private', exitQualification: 2n, septState: 'PENDING', outsideRam: false });
  });

  it('a 2M ACCEPT of a BLOCKED 2M leaf: EEQ info req 1, err level 1, state BLOCKED (1), leaf', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.host.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    const exit = eeqOf(pageAccept(m, gpaLevel(P, 1)));
    const info = 1n | (1n << 3n) | (1n << 6n) | (1n << 14n);
    expect(exit.eeq).toEqual({ type: 'accept', raw: 1n | (info << 32n), reqLevel: 1, errLevel: 1, errState: 'BLOCKED', isLeaf: true });
  });

  // sept_state_lookup.c: encoding 0x78 (SEPT_STATE_PEND_BLOCKED) has public_state 3.
  for (const [request, reqLevel] of [['a 2M ACCEPT of', 1], ['a 4K ACCEPT inside', 0]] as const) {
    it(`${request} a PENDING_BLOCKED 2M leaf: EEQ info req ${reqLevel}, err level 1, state PENDING_BLOCKED (3), leaf`, () => {
      const m = runningTd();
      expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
      expect(m.host.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
      const exit = eeqOf(pageAccept(m, gpaLevel(P + (reqLevel === 0 ? 0x3000n : 0n), reqLevel)));
      const info = BigInt(reqLevel) | (1n << 3n) | (3n << 6n) | (1n << 14n);
      expect(exit.eeq).toEqual({ type: 'accept', raw: 1n | (info << 32n), reqLevel, errLevel: 1, errState: 'PENDING_BLOCKED', isLeaf: true });
    });
  }

  it('a 4K ACCEPT whose 2M entry is a blocked SEPT page (NL_BLOCKED, RWX 0: the walk stops there): EEQ info req 0, err level 1, state 0x81, not a leaf', () => {
    // sept_state_lookup.c: encoding 0x08 (SEPT_STATE_NL_BLOCKED) has public_state 129; NL_MAPPED (0x00) 132.
    const m = runningTd();
    expect(m.host.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.host.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    const exit = eeqOf(pageAccept(m, gpaLevel(P + 0x1000n, 0)));
    const info = 0n | (1n << 3n) | (0x81n << 6n);
    expect(exit.eeq).toEqual({ type: 'accept', raw: 1n | (info << 32n), reqLevel: 0, errLevel: 1, errState: 'NL_BLOCKED', isLeaf: false });
  });

  it('a 4K ACCEPT whose 2M entry is FREE (no SEPT page below it): EEQ info req 0, err level 1, state FREE (0), not a leaf', () => {
    const m = runningTd();
    const exit = eeqOf(pageAccept(m, gpaLevel(P + 0x1000n, 0)));
    const info = (1n << 3n);
    expect(exit.eeq).toEqual({ type: 'accept', raw: 1n | (info << 32n), reqLevel: 0, errLevel: 1, errState: 'FREE', isLeaf: false });
  });

  it('a 4K ACCEPT whose 4K entry is FREE (a SEPT page below the 2M entry, nothing AUGed there): EEQ info req 0, err level 0, state FREE (0), not a leaf', () => {
    // A FREE entry's encoding (SEPT_STATE_FREE_ENCODING 0xe, sept_state_lookup.h) has no PS bit:
    // is_secure_ept_leaf_entry is 0 at the 4K level as at any other.
    const m = runningTd();
    expect(m.host.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.host.memPageAug(gpaLevel(P, 0)).status).toBe(0n); // a neighbour in the same 2 MiB range
    expect(pageAccept(m, gpaLevel(P, 0))).toEqual({ kind: 'return', status: 0n });
    const exit = eeqOf(pageAccept(m, gpaLevel(P + 0x1000n, 0)));
    expect(exit.eeq).toEqual({ type: 'accept', raw: 1n, reqLevel: 0, errLevel: 0, errState: 'FREE', isLeaf: false });
    expect(exit).toMatchObject({ gpa: P + 0x1000n, septState: 'FREE' });
  });
});

// tdg_mem_page_accept.c: a 2M ACCEPT zeroes its page 4 KiB at a time and keeps its progress in the
// entry's accept_counter; the re-executed TDCALL goes on from there. The chunks zeroed across the
// calls are exactly the 2M page's: nothing below it or past it.
describe('an interrupted 2M ACCEPT resumed', () => {
  it('leaves the whole 2M page zero and the memory on either side of it as it was', () => {
    const m = runningTd();
    const below = P - 0x200000n, above = P + 0x200000n;
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    m.machine.memory.fill(below, 0x600000n, 0x5a);
    m.host.postInterrupt(0x30, 100);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    const afterFirst = m.machine.memory.read(P, 0x200000);
    expect(afterFirst.subarray(0, 100 * 4096).every((b) => b === 0)).toBe(true);
    expect(afterFirst.subarray(100 * 4096).every((b) => b === 0x5a)).toBe(true);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.machine.memory.read(P, 0x200000).every((b) => b === 0)).toBe(true);
    expect(m.machine.memory.read(below, 0x200000).every((b) => b === 0x5a)).toBe(true);
    expect(m.machine.memory.read(above, 0x200000).every((b) => b === 0x5a)).toBe(true);
  });

  // block_sept_entry (tdh_mem_range_block.c) calls sept_cleanup_if_pending first (sept_manager.h):
  // an entry in a state with any_pending_and_guest_acceptable (PENDING; sept_state_lookup.c) at
  // LVL_PD has its accept_counter zeroed. UNBLOCK (sept_unblock) leaves it so.
  it('a BLOCK of the interrupted PENDING 2M leaf clears its progress: after the UNBLOCK the ACCEPT starts again from the first chunk', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    m.host.postInterrupt(0x30, 100);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    expect(m.sept.entry(1, P)).toMatchObject({ state: 'PENDING', acceptCounter: 100 });
    expect(m.host.memRangeBlock(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.entry(1, P)).toMatchObject({ state: 'PENDING_BLOCKED', acceptCounter: 0 });
    expect(m.host.memTrack().status).toBe(0n);
    expect(m.host.memRangeUnblock(gpaLevel(P, 1)).status).toBe(0n);
    expect(m.sept.entry(1, P)).toMatchObject({ state: 'PENDING', acceptCounter: 0 });
    // Interrupted again 30 chunks in: 30 chunks from 0, not from 100.
    m.host.postInterrupt(0x30, 30);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    expect(m.trace.ofType('accept-interrupted').at(-1)).toMatchObject({ gpa: P, level: 1, acceptCounter: 30, resumedFrom: 0 });
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.trace.ofType('accept-resumed-complete')).toEqual([expect.objectContaining({ gpa: P, level: 1, resumedFrom: 30 })]);
  });
});

// Several vCPUs: the scheduler may end a vCPU's turn between two chunks of its 2M ACCEPT. On
// hardware it stays inside TDG.MEM.PAGE.ACCEPT holding the entry's lock (sept_lock_acquire_guest,
// tdx_locks.h) while the others run; the model returns to the TD without writing RAX, with the
// lock in guestLocks under this vCPU, and records an accept-preempted event (docs/trace-schema.md).
describe('a 2M ACCEPT the vCPU scheduler preempts', () => {
  it('keeps the entry locked by this vCPU, leaves it PENDING with its progress, and records where it stopped', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    m.preemptAccept = (done) => (done < 300 ? 300 : undefined);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'step', step: { kind: 'resume' }, result: 'preempted' });
    expect(m.guestLocks.get(septLockKey(1, P))).toBe(m.machine.vcpuIndex);
    expect(m.sept.entry(1, P)).toMatchObject({ state: 'PENDING', acceptCounter: 300 });
    expect(m.trace.ofType('accept-preempted')).toEqual([expect.objectContaining({ gpa: P, level: 1, acceptCounter: 300, resumedFrom: 0 })]);
    // Re-executed on its next turn: it goes on from 300, completes and lets the lock go.
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.guestLocks.size).toBe(0);
    expect(m.trace.ofType('accept-resumed-complete')).toEqual([expect.objectContaining({ gpa: P, level: 1, resumedFrom: 300 })]);
  });

  it('an ACCEPT resumed after its first chunk records accept-resumed-complete from 1', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    m.host.postInterrupt(0x30, 1);
    expect(pageAccept(m, gpaLevel(P, 1))).toMatchObject({ kind: 'step', result: 'interrupted' });
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.trace.ofType('accept-resumed-complete')).toEqual([expect.objectContaining({ gpa: P, level: 1, resumedFrom: 1 })]);
  });

  it('an ACCEPT that completes in one call records no accept-resumed-complete', () => {
    const m = runningTd();
    expect(m.host.memPageAug(gpaLevel(P, 1)).status).toBe(0n);
    expect(pageAccept(m, gpaLevel(P, 1))).toEqual({ kind: 'return', status: 0n });
    expect(m.trace.ofType('accept-resumed-complete')).toEqual([]);
    expect(m.trace.ofType('accept-preempted')).toEqual([]);
  });
});

describe('ACCEPT at and past the end of guest RAM', () => {
  it('the TD exit of an ACCEPT of the first GPA past RAM says the GPA is outside RAM; the last page inside says it is not', () => {
    const m = runningTd();
    const past = pageAccept(m, gpaLevel(RAM, 0));
    expect(past).toMatchObject({ kind: 'step', step: { kind: 'td-exit', exit: { gpa: RAM, outsideRam: true } } });
    const inside = pageAccept(m, gpaLevel(RAM - 0x1000n, 0));
    expect(inside).toMatchObject({ kind: 'step', step: { kind: 'td-exit', exit: { gpa: RAM - 0x1000n, outsideRam: false } } });
  });

  it('a PENDING entry past RAM (which no honest AUG makes) is refused with OPERAND_INVALID|RCX, not zeroed', () => {
    const m = runningTd();
    // AUG refuses a GPA past RAM (OPERAND_ADDR_RANGE_ERROR): the entry is planted in the S-EPT directly.
    expect(m.host.memPageAug(gpaLevel(RAM, 1)).status).toBe(0xc000010100000001n);
    m.sept.setState(1, RAM, 'PENDING');
    expect(pageAccept(m, gpaLevel(RAM, 1))).toEqual({ kind: 'return', status: OPERAND_INVALID_RCX });
    expect(m.sept.stateAt(1, RAM)).toBe('PENDING');
  });
});
