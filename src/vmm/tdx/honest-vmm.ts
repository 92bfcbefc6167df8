// The untrusted VMM for a TD, honest flavour (KVM-like). It sees only TD exits and acts only through
// the SEAMCALL host interface and its own shared EPT. Every decision goes through `TdxVmmPolicy`, so
// an adversarial VMM can replace any single method (e.g. `{ ...honestTdxPolicy, mapGpa: lie }`).
import { inGuestRam, userspaceConversionOutsideRam, type GuestRamRange } from '../guest-ram.js';
import type { SeamcallHost } from '../../platform/tdx/seamcall.js';
import { gpaLevel } from '../../platform/tdx/seamcall.js';
import type { TdxVmmHandle } from '../../platform/tdx/vmm-handle.js';
import { LEVEL_SIZE, type SeptLevel } from '../../platform/tdx/sept-states.js';
import { Sept } from '../../platform/tdx/sept.js';
import { SeptMirror, type MirroredWalk, type SeptMirrorState } from './sept-mirror.js';
import { OperandId, TdvmcallStatus, TdxStatus, statusName, withOperand } from '../../platform/tdx/status.js';
import { tdxSharedBit, type TdExit, type VmcallRegs } from '../../platform/tdx/td-module.js';
import { BATCHED_CONSOLE, type Console } from '../console.js';
import { HostAccessRefused } from '../../platform/host-memory.js';
import type { RunOutcome } from '../../shared/outcome.js';
import { savePolicy, type PolicyStateHook, type SavedPolicy, type VmmDriver } from '../run-vm.js';
import type { Trace, TraceValue } from '../../shared/trace.js';
import { MASK64 } from '../../shared/u64.js';

export const TdvmcallLeaf = {
  CPUID: 10n, HLT: 12n, IO: 30n, GET_TD_VM_CALL_INFO: 0x10000n, MAP_GPA: 0x10001n, GET_QUOTE: 0x10002n, REPORT_FATAL_ERROR: 0x10003n,
} as const;

export type VmmAction = { kind: 'resume' } | { kind: 'stop'; outcome: RunOutcome };
/** Resume the guest: one object, read only (most answers to an EPT violation). */
export const RESUME: VmmAction = Object.freeze({ kind: 'resume' });
/** The VMM's answer to a TDG.VP.VMCALL: registers to hand back (R10 = status, R11 = output, …) or stop the TD. */
export type VmcallDecision = { kind: 'return'; regs: Partial<VmcallRegs> } | { kind: 'stop'; outcome: RunOutcome };

export type EptViolationExit = Extract<TdExit, { reason: 'ept-violation' }>;
export type VmcallExit = Extract<TdExit, { reason: 'tdvmcall' }>;

export interface VmmContext {
  /** All the VMM can do to the TD: SEAMCALLs, its shared EPT and shared memory, interrupts. */
  host: TdxVmmHandle;
  console: Console;
  trace: Trace;
  gpaWidth: 48 | 52;
  /** The guest-physical space the machine backs. */
  memoryBytes: bigint;
  /** Where the guest has RAM (the VMM's memslots): AUG and MapGPA only there. */
  ram: readonly GuestRamRange[];
  /** The VMM's own record of the S-EPT, from what its SEAMCALLs did (saved with the VMM in snapshots). */
  septMirror: SeptMirror;
}

/** Every decision the TDX VMM makes. */
export interface TdxVmmPolicy extends PolicyStateHook {
  /** TDG.MEM.PAGE.ACCEPT TD-exited (FREE/REMOVED/BLOCKED entry, missing level, PENDING at a larger level). */
  onAcceptViolation(ctx: VmmContext, exit: EptViolationExit): VmmAction;
  /** A guest access to a private GPA whose leaf is FREE/REMOVED/BLOCKED. */
  onPrivateEptViolation(ctx: VmmContext, exit: EptViolationExit): VmmAction;
  /** A guest access to a PENDING private GPA with #VE disabled (EEQ PENDING_EPT_VIOLATION). */
  onPendingAccess(ctx: VmmContext, exit: EptViolationExit): VmmAction;
  /** A shared access the shared EPT does not map, or an access outside guest RAM. */
  onSharedEptViolation(ctx: VmmContext, exit: EptViolationExit): VmmAction;
  mapGpa(ctx: VmmContext, call: VmcallExit): VmcallDecision;
  reportFatalError(ctx: VmmContext, call: VmcallExit): VmcallDecision;
  getTdVmCallInfo(ctx: VmmContext, call: VmcallExit): VmcallDecision;
  instructionIo(ctx: VmmContext, call: VmcallExit): VmcallDecision;
  /** CPUID emulation request (TDVMCALL leaf 10): the leaves the TDX module leaves to the VMM. */
  instructionCpuid(ctx: VmmContext, call: VmcallExit): VmcallDecision;
  /** HLT emulation request (TDVMCALL leaf 12). */
  instructionHlt(ctx: VmmContext, call: VmcallExit): VmcallDecision;
  /** Anything else (vendor-specific R10 ≠ 0, unknown sub-functions). */
  otherVmcall(ctx: VmmContext, call: VmcallExit): VmcallDecision;
}

const ret = (r10: bigint, more?: Partial<VmcallRegs>): VmcallDecision => ({ kind: 'return', regs: more === undefined ? { r10 } : { r10, ...more } });
const stop = (outcome: RunOutcome['outcome'], reason: string): { kind: 'stop'; outcome: RunOutcome } => ({ kind: 'stop', outcome: { outcome, reason } });
const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** Thrown inside the honest helpers when a SEAMCALL fails; becomes a vmm-error outcome. */
class SeamcallFailed extends Error {}
const NOTHING_ALLOWED: readonly bigint[] = [];
function check(name: string, r: { status: bigint }, allow: readonly bigint[] = NOTHING_ALLOWED): void {
  if (r.status !== TdxStatus.SUCCESS && !allow.includes(r.status)) throw new SeamcallFailed(`${name} failed: ${statusName(r.status)} (${hex(r.status)})`);
}

const WALK_FAILED: readonly bigint[] = [withOperand(TdxStatus.EPT_WALK_FAILED, OperandId.RCX)];
const ALREADY_BLOCKED: readonly bigint[] = [withOperand(TdxStatus.GPA_RANGE_ALREADY_BLOCKED, OperandId.RCX)];

/**
 * Where the walk to `gpa` stops at `level`, and in which state: what the VMM's mirror knows, or
 * else what TDH.MEM.SEPT.RD reports (a walk that stops above `level` says where), remembered.
 * KVM asks its mirror only: a VMM without one (the launch's setup, a test's) reads every time.
 */
function septRead(host: SeamcallHost, gpa: bigint, level: SeptLevel, mirror?: SeptMirror): MirroredWalk {
  return mirror?.walk(gpa, level) ?? readSept(host, gpa, level, mirror);
}

/** TDH.MEM.SEPT.RD of the entry at `level` (a walk that stops above it reports where), remembered in `mirror`. */
function readSept(host: SeamcallHost, gpa: bigint, level: SeptLevel, mirror?: SeptMirror): MirroredWalk {
  const aligned = Sept.alignDown(gpa, level);
  const r = host.memSeptRead(gpaLevel(aligned, level));
  check('TDH.MEM.SEPT.RD', r, WALK_FAILED);
  mirror?.learn(aligned, r);
  return r;
}

/**
 * Adds SEPT pages (TDH.MEM.SEPT.ADD), top level first, so that `gpa` can be mapped at `level`:
 * only the root exists when the TD is created (`tdh_mem_sept_add.c`: levels PD..ept_pwl).
 * With the VMM's `mirror`, levels it knows are not read (TDH.MEM.SEPT.RD), as KVM's TDP MMU walks
 * its own tables and links a SEPT page only where they have none (tdx_sept_link_private_spt).
 */
export function ensureSeptLevels(host: SeamcallHost, gpa: bigint, level: SeptLevel, mirror?: SeptMirror): void {
  // The mirror's walk reaches a present non-leaf just above `level`: every level above it is one
  // too (a walk passes only those), so the loop below would find nothing to add. One walk then,
  // not one from the top per level (an AUG on demand made three).
  if (level < host.septTopLevel) {
    const known = mirror?.walk(gpa, (level + 1) as SeptLevel);
    if (known !== undefined && known.level === level + 1 && known.state === 'NL_MAPPED') return;
  }
  for (let l = host.septTopLevel; l > level; l = (l - 1) as SeptLevel) {
    const r = septRead(host, gpa, l, mirror);
    if (r.level !== l) continue; // the walk stopped above: a leaf there, nothing to add
    if (r.state === 'FREE') check('TDH.MEM.SEPT.ADD', host.memSeptAdd(gpaLevel(Sept.alignDown(gpa, l), l)));
  }
}

/** BLOCK (tolerating already-blocked) + TRACK: what REMOVE/DEMOTE/UNBLOCK on a running TD need first. */
function blockAndTrack(host: SeamcallHost, gpa: bigint, level: SeptLevel): void {
  check('TDH.MEM.RANGE.BLOCK', host.memRangeBlock(gpaLevel(gpa, level)), ALREADY_BLOCKED);
  check('TDH.MEM.TRACK', host.memTrack());
}

/**
 * Removes every private page in [base, end) (splitting larger leaves that straddle the range).
 * With the VMM's `mirror`, where each leaf is comes from it (KVM zaps the leaves its mirror
 * holds: tdx_sept_remove_private_spte, BLOCK + TRACK + REMOVE each), not from TDH.MEM.SEPT.RD.
 */
export function removePrivateRange(host: SeamcallHost, base: bigint, end: bigint, mirror?: SeptMirror): void {
  let gpa = base;
  while (gpa < end) {
    const r = septRead(host, gpa, 0, mirror);
    const blockBase = Sept.alignDown(gpa, r.level);
    const size = LEVEL_SIZE[r.level];
    if (r.state === 'FREE' || r.state === 'REMOVED') { gpa = blockBase + size; continue; }
    if (r.level > 0 && (blockBase < base || blockBase + size > end)) {
      blockAndTrack(host, blockBase, r.level);
      check('TDH.MEM.PAGE.DEMOTE', host.memPageDemote(gpaLevel(blockBase, r.level)));
      continue;
    }
    blockAndTrack(host, blockBase, r.level);
    check('TDH.MEM.PAGE.REMOVE', host.memPageRemove(gpaLevel(blockBase, r.level)));
    gpa = blockBase + size;
  }
}

/** AUGs every FREE page of [base, end) (2M where a whole aligned 2M is free, else 4K); `mirror` as for removePrivateRange. */
export function augRange(host: SeamcallHost, base: bigint, end: bigint, mirror?: SeptMirror): void {
  let gpa = base;
  while (gpa < end) {
    const twoM = LEVEL_SIZE[1];
    if (gpa % twoM === 0n && gpa + twoM <= end) {
      ensureSeptLevels(host, gpa, 1, mirror);
      const r = septRead(host, gpa, 1, mirror);
      if (r.level === 1 && r.state === 'FREE') { check('TDH.MEM.PAGE.AUG', host.memPageAug(gpaLevel(gpa, 1))); gpa += twoM; continue; }
      if (r.level === 1 && r.state !== 'NL_MAPPED') { gpa += twoM; continue; } // already a 2M leaf
    }
    ensureSeptLevels(host, gpa, 0, mirror);
    const r = septRead(host, gpa, 0, mirror);
    if (r.state === 'FREE' || r.state === 'REMOVED') check('TDH.MEM.PAGE.AUG', host.memPageAug(gpaLevel(gpa, 0)));
    gpa = Sept.alignDown(gpa, r.level === 0 || r.state === 'FREE' ? 0 : r.level) + LEVEL_SIZE[r.level === 0 || r.state === 'FREE' ? 0 : r.level];
  }
}

function guarded(ctx: VmmContext, what: string, body: () => VmmAction): VmmAction {
  try {
    return body();
  } catch (err) {
    if (err instanceof SeamcallFailed) return stop('vmm-error', `${what}: ${err.message}`);
    throw err;
  }
}

// The bodies that `guarded` runs are module-level functions, not inline closures made per call:
// as such closures, these big bodies were observed going back through TurboFan again and again in
// a steady fuzz campaign (--trace-opt), with no deopt.

/** The honest answer to an ACCEPT exit: AUG, demote or unblock so that the guest's ACCEPT can succeed. */
function augOnDemand(ctx: VmmContext, exit: EptViolationExit, eeq: Extract<EptViolationExit['eeq'], { type: 'accept' }>): VmmAction {
  const { reqLevel, errLevel, errState } = eeq;
  const host = ctx.host;
  if (exit.outsideRam || !inGuestRam(ctx.ram, exit.gpa)) return stop('fault', `guest accepted GPA ${hex(exit.gpa)} outside its RAM`);
  if (errState === 'FREE') {
    ensureSeptLevels(host, exit.gpa, reqLevel, ctx.septMirror);
    check('TDH.MEM.PAGE.AUG', host.memPageAug(gpaLevel(Sept.alignDown(exit.gpa, reqLevel), reqLevel)));
  } else if (errState === 'REMOVED' && errLevel <= 1) {
    // Re-AUG the removed page at its own size; a smaller ACCEPT then demotes it (next exit).
    check('TDH.MEM.PAGE.AUG', host.memPageAug(gpaLevel(Sept.alignDown(exit.gpa, errLevel), errLevel)));
  } else if (errState === 'PENDING' && errLevel > reqLevel) {
    const base = Sept.alignDown(exit.gpa, errLevel);
    blockAndTrack(host, base, errLevel);
    check('TDH.MEM.PAGE.DEMOTE', host.memPageDemote(gpaLevel(base, errLevel)));
  } else if (errState === 'BLOCKED' || errState === 'PENDING_BLOCKED' || errState === 'NL_BLOCKED') {
    check('TDH.MEM.TRACK', host.memTrack());
    check('TDH.MEM.RANGE.UNBLOCK', host.memRangeUnblock(gpaLevel(Sept.alignDown(exit.gpa, errLevel), errLevel)));
  } else {
    return stop('vmm-error', `cannot satisfy ACCEPT of ${hex(exit.gpa)}: entry ${errState} at level ${errLevel}`);
  }
  ctx.trace.record('vmm', 'vmm-accept-assist', { gpa: exit.gpa, reqLevel, errLevel, errState });
  return RESUME;
}

/** The honest answer to an EPT violation on a FREE or REMOVED private GPA: AUG a page there. */
function faultIn(ctx: VmmContext, exit: EptViolationExit): VmmAction {
  // The exit reports the state the walk stopped on. A mirror that says otherwise missed a
  // change made other than by the VMM's SEAMCALLs (a test setting the S-EPT directly): the
  // VMM reads the entry instead, and its mirror learns it.
  const known = ctx.septMirror.walk(exit.gpa, 0);
  const r = known !== undefined && known.state === exit.septState ? known : readSept(ctx.host, exit.gpa, 0, ctx.septMirror);
  // A REMOVED leaf is re-AUGed at its own level; a FREE range gets SEPT pages and a 4K page.
  const level: SeptLevel = r.state === 'REMOVED' && r.level <= 1 ? r.level : 0;
  if (level === 0) ensureSeptLevels(ctx.host, exit.gpa, 0, ctx.septMirror);
  check('TDH.MEM.PAGE.AUG', ctx.host.memPageAug(gpaLevel(Sept.alignDown(exit.gpa, level), level)));
  return RESUME;
}

/**
 * Converts [base, end) as the VMM does for MapGPA: to shared, the private pages are removed
 * (BLOCK + TRACK + REMOVE) before the shared mapping opens; to private, the shared mapping closes
 * and the range is AUGed: PENDING again, so the guest must accept it.
 */
export function convertRange(ctx: VmmContext, base: bigint, end: bigint, toShared: boolean): void {
  if (toShared) {
    removePrivateRange(ctx.host, base, end, ctx.septMirror);
    ctx.host.setShared(base, end - base, true);
  } else {
    ctx.host.setShared(base, end - base, false);
    augRange(ctx.host, base, end, ctx.septMirror);
  }
}

/**
 * The bytes KVM converts per round before it looks for pending events (tdx.c TDX_MAP_GPA_MAX_LEN,
 * one KVM_HC_MAP_GPA_RANGE exit to userspace each): between rounds, tdx_complete_vmcall_map_gpa
 * answers RETRY with R11 = the next GPA if the vCPU has an event pending, else goes on.
 */
export const MAP_GPA_CHUNK = 0x200000n;

export const honestTdxPolicy: TdxVmmPolicy = {
  onAcceptViolation(ctx, exit) {
    const eeq = exit.eeq;
    if (eeq.type !== 'accept') return stop('vmm-error', 'ACCEPT exit without an ACCEPT qualification');
    return guarded(ctx, 'AUG on demand', () => augOnDemand(ctx, exit, eeq));
  },

  onPrivateEptViolation(ctx, exit) {
    if (exit.outsideRam || !inGuestRam(ctx.ram, exit.gpa)) return stop('fault', `guest access to GPA ${hex(exit.gpa)} outside its RAM`);
    if (exit.septState !== 'FREE' && exit.septState !== 'REMOVED') {
      return stop('vmm-error', `EPT violation on ${exit.septState} private GPA ${hex(exit.gpa)}`);
    }
    // Like KVM: fault the page in (PENDING); the guest then takes #VE or the pending-access exit.
    return guarded(ctx, 'fault-in', () => faultIn(ctx, exit));
  },

  onPendingAccess(_ctx, exit) {
    // KVM tdx_is_sept_violation_unexpected_pending(): "Guest access before accepting" kills the TD.
    return stop('terminated', `guest access before accepting: ${exit.access} of PENDING GPA ${hex(exit.gpa)} at RIP ${hex(exit.rip)} with #VE disabled`);
  },

  onSharedEptViolation(_ctx, exit) {
    return stop('fault', exit.outsideRam
      ? `guest access to GPA ${hex(exit.gpa)} outside its RAM at RIP ${hex(exit.rip)}`
      : `guest ${exit.access} of shared GPA ${hex(exit.gpa)} that the VMM does not map (MMIO is not modelled) at RIP ${hex(exit.rip)}`);
  },

  mapGpa(ctx, call) {
    // KVM tdx_map_gpa, in its order: an empty or wrapping range, an end beyond the guest's
    // physical-address width (GPAW: KVM reports guest MAXPHYADDR = shared bit + 1) or a range
    // that straddles the shared bit is INVALID_OPERAND; only then is misalignment ALIGN_ERROR.
    // Every refusal hands R12 back in R11.
    const sharedBit = tdxSharedBit(ctx.gpaWidth);
    const start = call.regs.r12;
    const size = call.regs.r13;
    const refuse = (status: bigint): VmcallDecision => ret(status, { r11: start });
    const last = (start + size - 1n) & MASK64;
    const limit = 1n << BigInt(ctx.gpaWidth);
    if (((start + size) & MASK64) <= start || start >= limit || last >= limit || (start & sharedBit) !== (last & sharedBit)) {
      return refuse(TdvmcallStatus.INVALID_OPERAND);
    }
    if (start % 0x1000n !== 0n || size % 0x1000n !== 0n) return refuse(TdvmcallStatus.ALIGN_ERROR);
    const toShared = (start & sharedBit) !== 0n;
    const base = start & ~sharedBit;
    const end = base + size;
    // KVM hands userspace one round at a time (__tdx_map_gpa: at most TDX_MAP_GPA_MAX_LEN from
    // map_gpa_next), so QEMU judges each round on its own: a round in RAM converts, one outside
    // is ignored or stops the VM (userspaceConversionOutsideRam), whatever the rounds before did.
    for (let next = base; ;) {
      const chunkEnd = end - next > MAP_GPA_CHUNK ? next + MAP_GPA_CHUNK : end;
      if (!inGuestRam(ctx.ram, next, chunkEnd - next)) {
        if (userspaceConversionOutsideRam(ctx.ram, next, chunkEnd - next, !toShared) === 'vm-stopped') {
          return stop('vmm-error', `MapGPA to ${toShared ? 'shared' : 'private'} of ${hex(next)} (+${hex(chunkEnd - next)}), not all guest RAM: the VMM stops the TD (QEMU kvm_convert_memory fails)`);
        }
      } else {
        try {
          convertRange(ctx, next, chunkEnd, toShared);
        } catch (err) {
          if (err instanceof SeamcallFailed) return { kind: 'stop', outcome: { outcome: 'vmm-error', reason: `MapGPA: ${err.message}` } };
          throw err;
        }
        ctx.trace.record('vmm', 'map-gpa', { gpa: next, size: chunkEnd - next, toShared, requestedEnd: end });
      }
      if (chunkEnd >= end) return ret(TdvmcallStatus.SUCCESS);
      next = chunkEnd;
      // tdx_complete_vmcall_map_gpa: a pending event ends the call here, the guest resumes from R11.
      if (ctx.host.interruptPending) return ret(TdvmcallStatus.RETRY, { r11: next | (toShared ? sharedBit : 0n) });
      // Rounds to shared that reach no RAM are all ignored and leave no trace: go past them at
      // once (a MapGPA of terabytes of MMIO is one step here, not millions of rounds).
      if (toShared) {
        const ramAhead = ctx.ram.reduce<bigint | undefined>((first, r) => (r.end > next && (first === undefined || r.start < first) ? r.start : first), undefined);
        if (ramAhead === undefined || ramAhead >= end) return ret(TdvmcallStatus.SUCCESS);
        if (ramAhead > next) next += ((ramAhead - next) / MAP_GPA_CHUNK) * MAP_GPA_CHUNK;
      }
    }
  },

  reportFatalError(_ctx, call) {
    // Linux tdx_panic(): R12 = error code, 64-byte message in R14, R15, RBX, RDI, RSI, R8, R9, RDX.
    const r = call.regs;
    const buf = Buffer.alloc(64);
    [r.r14, r.r15, r.rbx, r.rdi, r.rsi, r.r8, r.r9, r.rdx].forEach((v, i) => buf.writeBigUInt64LE(v, i * 8));
    const nul = buf.indexOf(0);
    const message = buf.subarray(0, nul < 0 ? 64 : nul).toString('latin1');
    return { kind: 'stop', outcome: { outcome: 'guest-fatal', reason: `ReportFatalError ${hex(r.r12)}: ${message}` } };
  },

  getTdVmCallInfo(_ctx, call) {
    if (call.regs.r12 !== 0n) return ret(TdvmcallStatus.INVALID_OPERAND);
    return ret(TdvmcallStatus.SUCCESS, { r11: 0n, r12: 0n, r13: 0n, r14: 0n });
  },

  instructionIo(ctx, call) {
    const { r12: size, r13: direction, r15: value } = call.regs;
    // KVM tdx_emulate_io refuses only a bad size or direction; it hands R14 to
    // pio_*_emulated(..., unsigned short port, ...), so the port is its low 16 bits.
    const port = call.regs.r14 & 0xffffn;
    if ((size !== 1n && size !== 2n && size !== 4n) || direction > 1n) return ret(TdvmcallStatus.INVALID_OPERAND);
    if (direction === 1n) {
      ctx.console.uartWrite(Number(port), value, Number(size) as 1 | 2 | 4);
      return ret(TdvmcallStatus.SUCCESS);
    }
    return ret(TdvmcallStatus.SUCCESS, { r11: ctx.console.uartRead(Number(port), Number(size) as 1 | 2 | 4) });
  },

  instructionCpuid(_ctx, call) {
    // GHCI TDG.VP.VMCALL<Instruction.CPUID>: R12 = EAX (leaf), R13 = ECX (subleaf) in; R12..R15 =
    // EAX, EBX, ECX, EDX out. Linux asks only for the hypervisor range 0x4000_0000-0x4FFF_FFFF
    // (arch/x86/coco/tdx/tdx.c handle_cpuid); this VMM offers no paravirtual interface there, so
    // every leaf reads as 0, which Linux's hypervisor detection takes as "none". KVM
    // tdx_emulate_cpuid reads R12 and R13 into u32s: their high halves are ignored, never refused.
    return ret(TdvmcallStatus.SUCCESS, { r12: 0n, r13: 0n, r14: 0n, r15: 0n });
  },

  instructionHlt() {
    return { kind: 'stop', outcome: { outcome: 'done', reason: 'guest halted (TDVMCALL HLT)' } };
  },

  otherVmcall(ctx, call) {
    const { r10, r11, r12: gpa, r13: count } = call.regs;
    if (r10 !== BATCHED_CONSOLE.VMCALL || r11 !== BATCHED_CONSOLE.VMCALL_WRITE) return ret(TdvmcallStatus.SUBFUNC_UNSUPPORTED);
    // The stubs' console batch (boot_abi.h): shared memory within one page, read as the host sees it.
    const sharedBit = tdxSharedBit(ctx.gpaWidth);
    const base = gpa & ~sharedBit;
    if ((gpa & sharedBit) === 0n || count > BigInt(BATCHED_CONSOLE.BATCH_MAX) || (base & 0xfffn) + count > 0x1000n || !inGuestRam(ctx.ram, base, count)) {
      return ret(TdvmcallStatus.INVALID_OPERAND);
    }
    try {
      ctx.console.writeBytes(ctx.host.hostMemory.read(base, Number(count)));
    } catch (err) {
      if (err instanceof HostAccessRefused) return ret(TdvmcallStatus.INVALID_OPERAND);
      throw err;
    }
    return ret(TdvmcallStatus.SUCCESS);
  },
};

/** Routes TD exits to the policy and hands VMCALL answers back through the handle. */
/** The VMM in a snapshot: its policy and its mirror of the S-EPT. */
export interface SavedTdxVmm extends SavedPolicy<TdxVmmPolicy> {
  septMirror: SeptMirrorState;
}

/** TDVMCALL<Instruction.HLT> with R12 bit 0 (interrupts blocked) set (GHCI 1.5 §3.6.1). */
function isHltWithInterruptsBlocked(exit: TdExit): boolean {
  if (exit.reason !== 'tdvmcall') return false;
  const { r10, r11, r12 } = exit.regs;
  return r10 === 0n && r11 === TdvmcallLeaf.HLT && (r12 & 1n) === 1n;
}

export class TdxVmm implements VmmDriver<TdExit, SavedTdxVmm> {
  readonly ctx: VmmContext;
  /** Replaceable between runs (the fuzzer swaps in an adversary after restoring a snapshot). */
  policy: TdxVmmPolicy;

  constructor(ctx: Omit<VmmContext, 'septMirror'>, policy: TdxVmmPolicy = honestTdxPolicy) {
    const septMirror = new SeptMirror(ctx.host.septTopLevel);
    this.ctx = { ...ctx, septMirror };
    this.policy = policy;
    // Every SEAMCALL through the VMM's handle, the honest code's, an attack's or a test's, updates the mirror.
    ctx.host.observer = (leaf, rcx, status, pages) => septMirror.observe(leaf, rcx, status, pages);
  }

  /**
   * The policy's answer to one TD exit, its SEAMCALLs' page-gate updates applied together when it
   * is done (TdxVmmHandle.batch), as on SNP.
   */
  handleExit(exit: TdExit): 'resume' | RunOutcome {
    return this.ctx.host.batch(() => this.#answer(exit));
  }

  #answer(exit: TdExit): 'resume' | RunOutcome {
    const decision = this.decide(exit);
    if (decision.kind === 'stop') return decision.outcome;
    if (exit.reason === 'tdvmcall') this.ctx.host.completeVmcall(decision.kind === 'return' ? decision.regs : {});
    return 'resume';
  }

  /**
   * The same EPT violation (RIP and GPA) over and over means the VMM is not resolving it. So does
   * a TDVMCALL<Instruction.HLT> with interrupts blocked (R12 bit 0, GHCI 1.5 §3.6.1) resumed over
   * and over: no interrupt can end that halt, so each resume only halts again (a spurious wake
   * the VMM may give, but no progress).
   */
  sameFault(previous: TdExit, exit: TdExit): boolean {
    if (exit.reason === 'ept-violation') return previous.reason === 'ept-violation' && previous.rip === exit.rip && previous.gpa === exit.gpa;
    return isHltWithInterruptsBlocked(exit) && isHltWithInterruptsBlocked(previous) && previous.rip === exit.rip;
  }

  describeFault(exit: TdExit): string {
    if (exit.reason === 'ept-violation') return `RIP 0x${exit.rip.toString(16)} GPA 0x${exit.gpa.toString(16)}`;
    if (isHltWithInterruptsBlocked(exit)) return `HLT with interrupts blocked at RIP 0x${exit.rip.toString(16)}`;
    return `TDVMCALL at RIP 0x${exit.rip.toString(16)}`;
  }

  finish(): void {
    this.ctx.console.flush();
  }

  saveState(): SavedTdxVmm {
    return { ...savePolicy(this.policy), septMirror: this.ctx.septMirror.saveState() };
  }

  loadState(state: SavedTdxVmm): void {
    this.ctx.septMirror.loadState(state.septMirror);
    this.policy = state.policy;
    state.policy.loadState?.(state.state);
  }

  /** The policy's decision for one TD exit (recorded as a `vmm-decision` event). */
  decide(exit: TdExit): VmmAction | VmcallDecision {
    const p = this.policy;
    const ctx = this.ctx;
    let decision: VmmAction | VmcallDecision;
    switch (exit.reason) {
      case 'ept-violation':
        if (exit.eeq.type === 'accept') decision = p.onAcceptViolation(ctx, exit);
        else if (exit.eeq.type === 'pending-ept-violation') decision = p.onPendingAccess(ctx, exit);
        else if (exit.space === 'shared' || exit.outsideRam) decision = p.onSharedEptViolation(ctx, exit);
        else decision = p.onPrivateEptViolation(ctx, exit);
        break;
      case 'tdvmcall': decision = this.#vmcall(exit); break;
    }
    // One literal per kind, keys in the trace's order (no Object.assign onto a shared prefix).
    const fields: Record<string, TraceValue> = decision.kind === 'stop'
      ? { exit: exit.reason, decision: decision.kind, outcome: decision.outcome.outcome, reason: decision.outcome.reason }
      : decision.kind === 'return'
        ? { exit: exit.reason, decision: decision.kind, r10: decision.regs.r10 ?? null, r11: decision.regs.r11 ?? null }
        : { exit: exit.reason, decision: decision.kind };
    ctx.trace.record('vmm', 'vmm-decision', fields);
    return decision;
  }

  #vmcall(call: VmcallExit): VmcallDecision {
    const p = this.policy;
    const { r10, r11 } = call.regs;
    if (r10 !== 0n) return p.otherVmcall(this.ctx, call); // vendor-specific (e.g. KVM hypercalls)
    switch (r11) {
      case TdvmcallLeaf.MAP_GPA: return p.mapGpa(this.ctx, call);
      case TdvmcallLeaf.REPORT_FATAL_ERROR: return p.reportFatalError(this.ctx, call);
      case TdvmcallLeaf.GET_TD_VM_CALL_INFO: return p.getTdVmCallInfo(this.ctx, call);
      case TdvmcallLeaf.IO: return p.instructionIo(this.ctx, call);
      case TdvmcallLeaf.HLT: return p.instructionHlt(this.ctx, call);
      case TdvmcallLeaf.CPUID: return p.instructionCpuid(this.ctx, call);
      default: return p.otherVmcall(this.ctx, call);
    }
  }
}
