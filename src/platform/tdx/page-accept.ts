// TDG.MEM.PAGE.ACCEPT (leaf 6), after `tdg_mem_page_accept.c` (TDX 1.5; reference A3): operand
// checks, SEPT walk, then the ACCEPT / ACCEPT_LARGER rows of the legality table decide.
import { lookupTransition, type AcceptAction } from './sept-legality.js';
import { ENTRIES_PER_TABLE, LEVEL_SIZE, SEPT_PUBLIC_STATE, decodeGpaLevel, septLockKey, type SeptLevel } from './sept-states.js';
import { OperandId, TdxStatus, withOperand } from './status.js';
import { EEQ_TYPE, type TdModule } from './td-module.js';
import type { LeafResult } from './tdcall.js';
import { EptQual } from './ve.js';

const CHUNK = 0x1000n;

/** RCX bits 51:12: the GPA of a valid operand. */
const RCX_GPA = 0x000ffffffffff000n;
const OPERAND_INVALID_RCX = withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX);
const OPERAND_BUSY_RCX = withOperand(TdxStatus.OPERAND_BUSY, OperandId.RCX);
/** What a completed accept leaves in its entry's counter. */
const ACCEPT_COUNTER_CLEARED = { acceptCounter: 0 } as const;

/**
 * RCX checks of `page_info_api_input_t` + `check_gpa_validity(PRIVATE_ONLY)`: the level to accept
 * at (0 or 1), or undefined when RCX is invalid.
 */
export function acceptOperandLevel(td: TdModule, rcx: bigint): SeptLevel | undefined {
  // 1G is rejected: verify_page_info_input(…, LVL_PT, LVL_PD). Private only: the shared bit clear.
  return decodeGpaLevel(rcx, 0, 1, td.sharedBit);
}

export function pageAccept(td: TdModule, rcx: bigint): LeafResult {
  const level = acceptOperandLevel(td, rcx);
  if (level === undefined) return { kind: 'return', status: OPERAND_INVALID_RCX };
  const gpa = rcx & RCX_GPA;
  const walk = td.sept.walk(gpa, level);
  // check_tdaccept_failure: a walk that stopped above the requested level decides (ALREADY_ACCEPTED
  // or TD exit) without locking anything; only an entry at the requested level is locked first.
  // sept_lock_acquire_guest failing: the host holds the entry (lockEntry), or another vCPU is
  // inside its own ACCEPT of it (guestLocks); api_error_with_operand_id(TDX_OPERAND_BUSY, RCX).
  // A free lock with the host-priority bit set (td-module.ts hostPriority) is let go at once:
  // OPERAND_BUSY_HOST_PRIORITY, which the dispatcher reports to the guest as OPERAND_BUSY. The
  // vCPU that holds the entry across a preemption keeps it (no fresh acquisition).
  if (walk.level === level && (td.hostLocks.size > 0 || td.guestLocks.size > 0 || td.hostPriority.size > 0)) {
    const key = septLockKey(walk.level, walk.base);
    const holder = td.guestLocks.get(key);
    if (td.hostLocks.has(key) || (holder !== undefined && holder !== td.machine.vcpuIndex) || (holder === undefined && td.hostPriority.has(key))) {
      return { kind: 'return', status: OPERAND_BUSY_RCX };
    }
  }
  const t = lookupTransition(walk.level === level ? 'ACCEPT' : 'ACCEPT_LARGER', walk.state);
  const action: AcceptAction = t.kind === 'accept' ? t.action : 'td-exit';
  switch (action) {
    case 'already-accepted':
      return { kind: 'return', status: TdxStatus.PAGE_ALREADY_ACCEPTED | BigInt(walk.level) };
    case 'size-mismatch':
      return { kind: 'return', status: TdxStatus.PAGE_SIZE_MISMATCH | BigInt(level) };
    case 'td-exit': {
      // async_tdexit_ept_violation (td_other_exits.c): EEQ ACCEPT info = req_level[2:0],
      // err_level[5:3], err_sept_state[13:6] (the public state, sept_get_arch_state), is_leaf[14].
      // The qualification is a write plus the entry's RWX, which is 0 in every state that exits here.
      // Bits 14:0 of the info, built as a number.
      const info = level | (walk.level << 3) | (SEPT_PUBLIC_STATE[walk.state] << 6) | ((walk.isLeaf ? 1 : 0) << 14);
      const step = td.tdExit({
        reason: 'ept-violation', rip: td.machine.vcpu.regs.rip, gpa, access: 'write', space: 'private',
        exitQualification: EptQual.WRITE, outsideRam: gpa >= td.machine.memoryBytes, septState: walk.state,
        eeq: { type: 'accept', raw: EEQ_TYPE.accept | (BigInt(info) << 32n), reqLevel: level, errLevel: walk.level, errState: walk.state, isLeaf: walk.isLeaf },
      });
      return { kind: 'step', step, result: 'td-exit(accept)' };
    }
    case 'zero-and-map':
      return zeroAndMap(td, gpa, level);
  }
}

/**
 * Zeroes the page(s) and maps them. A 2M accept works in 512 4K chunks with its progress in the
 * entry's accept_counter. After each chunk the module checks IA32_INTR_PENDING
 * (`is_interrupt_pending_guest_side`, helpers.h): a pending *host* interrupt, whatever the guest's
 * RFLAGS.IF. Then it returns to the TD without writing RAX or advancing RIP; the host takes its
 * interrupt and the TDCALL re-executes and resumes.
 */
function zeroAndMap(td: TdModule, gpa: bigint, level: SeptLevel): LeafResult {
  if (gpa + LEVEL_SIZE[level] > td.machine.memoryBytes) {
    // Cannot happen through the honest host (AUG refuses GPAs outside RAM); keep the guest alive.
    return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX) };
  }
  if (level === 0) {
    td.machine.memory.fill(gpa, CHUNK, 0);
    td.machine.watchContent(gpa, CHUNK, false); // zeroed by the guest's own accept (foreign-content.ts)
    td.sept.setState(0, gpa, 'MAPPED'); // only a 2M ACCEPT counts chunks: a 4K entry's counter is 0
    return { kind: 'return', status: TdxStatus.SUCCESS };
  }
  const entry = td.sept.entry(level, gpa)!;
  const start = entry.acceptCounter;
  const interrupt = td.pendingInterrupt;
  const lockKey = septLockKey(level, gpa);
  // The module zeroes 4 KiB at a time and checks for a pending interrupt after each chunk; zero
  // every chunk up to where that check would first fire in one go (same result, one host call).
  const interruptAt = interrupt ? start + Math.max(1, interrupt.afterChunks) : Infinity;
  // Several vCPUs: the others run while this one zeroes. The scheduler may end this vCPU's turn
  // between two chunks; it stays inside the TDCALL holding the entry's lock (RIP and RAX
  // untouched), and re-executing the TDCALL on its next turn goes on from accept_counter.
  const preemptAt = td.preemptAccept?.(start) ?? Infinity;
  const stop = Math.min(ENTRIES_PER_TABLE, interruptAt, preemptAt);
  td.machine.memory.fill(gpa + BigInt(start) * CHUNK, BigInt(stop - start) * CHUNK, 0);
  td.sept.setState(level, gpa, entry.state, { acceptCounter: stop });
  if (stop < ENTRIES_PER_TABLE && stop === preemptAt && stop !== interruptAt) {
    td.guestLocks.set(lockKey, td.machine.vcpuIndex);
    td.record('accept-preempted', { gpa, level, acceptCounter: stop, resumedFrom: start });
    return { kind: 'step', step: { kind: 'resume' }, result: 'preempted' };
  }
  td.guestLocks.delete(lockKey);
  if (stop < ENTRIES_PER_TABLE) {
    td.record('accept-interrupted', { gpa, level, acceptCounter: stop, resumedFrom: start, vector: interrupt!.vector });
    return { kind: 'step', step: td.takeHostInterrupt().step, result: 'interrupted' };
  }
  td.machine.watchContent(gpa, LEVEL_SIZE[level], false);
  td.sept.setState(level, gpa, 'MAPPED', ACCEPT_COUNTER_CLEARED);
  if (start > 0) td.record('accept-resumed-complete', { gpa, level, resumedFrom: start });
  return { kind: 'return', status: TdxStatus.SUCCESS };
}
