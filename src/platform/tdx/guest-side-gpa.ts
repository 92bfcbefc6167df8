// The module's own access to a TD's memory on the TD's behalf, for a TDCALL operand that names a
// GPA (TDG.MR.RTMR.EXTEND's data, TDG.MR.REPORT's REPORTDATA and TDREPORT):
// `check_walk_and_map_guest_side_gpa` (helpers.c, TDX module 1.5). The GPA must be valid (and
// private, where the leaf asks for PRIVATE_ONLY), and the SEPT (or for a shared GPA the VMM's
// shared EPT) must let the access through; otherwise the TDCALL does not complete: a PENDING page
// raises #VE (or, with TD_CTLS.PENDING_VE_DISABLE, an EPT-violation TD exit), and any other state
// an EPT-violation TD exit. Either way RIP stays at the TDCALL, which the TD re-executes once the
// page is there.
import { accessAction } from './sept-legality.js';
import { TdxStatus, withOperand } from './status.js';
import type { TdModule } from './td-module.js';
import type { LeafResult } from './tdcall.js';
import { EptQual, ExitReason } from './ve.js';

/** TDCALL (66 0F 01 CC): the VM-exit instruction length tdx_inject_ve copies into the VE info. */
const TDCALL_LENGTH = 4;

export type GuestSideAccess = 'read' | 'write';

/** PRIVATE_ONLY or PRIVATE_OR_SHARED: whether the leaf takes a GPA with the shared bit set. */
export type GuestSideSpaces = 'private' | 'private-or-shared';

/**
 * Whether the module may access `gpa` for a TDCALL now: `undefined` when it may, else the leaf's
 * result (OPERAND_INVALID naming `operand`, #VE or TD exit).
 */
export function checkGuestSideGpa(td: TdModule, gpa: bigint, access: GuestSideAccess, operand: bigint, spaces: GuestSideSpaces = 'private'): LeafResult | undefined {
  // check_gpa_validity: every bit above the shared bit clear (GPAW 48: bits 51:48; GPAW 52: none
  // but the 52-bit limit), and for PRIVATE_ONLY the shared bit too.
  const limit = spaces === 'private' ? td.sharedBit : td.sharedBit << 1n;
  if (gpa < 0n || gpa >= limit) return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, operand) };
  const qual = access === 'write' ? EptQual.READ | EptQual.WRITE : EptQual.READ;
  if (gpa >= td.sharedBit) {
    // The shared EPT is the VMM's (vmm-handle.ts setShared): mapped read-write, or not at all. A
    // miss is an EPT-violation TD exit with the shared GPA.
    const base = gpa & ~td.sharedBit;
    const outsideRam = base >= td.machine.memoryBytes;
    if (!outsideRam && td.machine.gate.get('shared', base & ~0xfffn) !== 'none') return undefined;
    return { kind: 'step', step: td.eptViolationExit(td.machine.vcpu.regs.rip, gpa, access, 'shared', qual, outsideRam), result: 'td-exit(guest-side-gpa)' };
  }
  const walk = td.sept.walk(gpa, 0);
  const action = accessAction(walk.state);
  if (action === 'allowed') return undefined;
  // The walk asked for read (and write for a TDX_RANGE_RW mapping) and found no permission at the
  // entry that stopped it: exit_qual's data_read/data_write bits, no GLA, not a translated access.
  const vcpu = td.machine.vcpu;
  if (action === 'pending' && td.pendingVeEnabled) {
    // inject_ve_and_return_to_td: tdx_inject_ve(EPT_VIOLATION, exit_qual, gpa, gla = 0).
    const step = td.deliverVe({ exitReason: ExitReason.EPT_VIOLATION, exitQualification: qual, gla: 0n, gpa, instructionLength: TDCALL_LENGTH, instructionInfo: 0 });
    return { kind: 'step', step, result: 've(guest-side-gpa)' };
  }
  const step = td.eptViolationExit(vcpu.regs.rip, gpa, access, 'private', qual, gpa >= td.machine.memoryBytes, walk.state, action === 'pending');
  return { kind: 'step', step, result: 'td-exit(guest-side-gpa)' };
}
