// Virtualization exceptions: the per-vCPU VE_INFO area, #VE delivery and the #DF rule
// (`td_ept_violation.c` / `tdx_inject_ve`; reference A6), and TDG.VP.VEINFO.GET's outputs
// (`tdg_vp_veinfo_get.c`).

import type { IoExit } from '../../cpu/exits.js';
import type { Snapshottable } from '../../shared/snapshottable.js';


/** VMX basic exit reasons (SDM Vol. 3D Appendix C) that the module reports in VE_INFO.EXIT_REASON for the #VEs it injects. */
export const ExitReason = {
  CPUID: 10, HLT: 12, INVD: 13, VMCALL: 18, IO: 30, RDMSR: 31, WRMSR: 32, MWAIT: 36, MONITOR: 39, EPT_VIOLATION: 48,
  /** WBINVD or WBNOINVD. */
  WBINVD: 54,
} as const;

/** VMCS EPT-violation exit qualification bits (SDM Vol. 3 Table 28-7). */
export const EptQual = { READ: 1n << 0n, WRITE: 1n << 1n, FETCH: 1n << 2n, GLA_VALID: 1n << 7n, TRANSLATED: 1n << 8n } as const;

/**
 * Exit-qualification bits 12:7 (GLA valid, translated access, user/writable/NX linear address,
 * NMI unblocking) that `tdx_ept_violation_exit_to_vmm` (`td_other_exits.c`) clears before an
 * EPT-violation TD exit: the VMM learns nothing about the guest's linear address.
 */
export const TD_EXIT_QUAL_CLEARED = 0x1f80n;

/**
 * The exit qualification of an I/O instruction (SDM Vol. 3C Table 28-5): bits 2:0 size - 1, bit 3
 * direction (1 = IN), bit 4 string, bit 5 REP, bit 6 operand encoding (1 = imm8 port, 0 = DX),
 * bits 31:16 port.
 */
export function ioExitQualification(io: Pick<IoExit, 'size' | 'direction' | 'string' | 'rep' | 'immediate' | 'port'>): bigint {
  return BigInt((io.size - 1) | (io.direction === 'in' ? 0x8 : 0) | (io.string ? 0x10 : 0) | (io.rep ? 0x20 : 0) | (io.immediate ? 0x40 : 0))
    | (BigInt(io.port) << 16n);
}

/**
 * The VM-exit instruction-information field of an INS/OUTS exit (Intel SDM Vol. 3C, "Format of the
 * VM-Exit Instruction-Information Field as Used for INS and OUTS"): bits 9:7 the address size
 * (0 16-bit, 1 32-bit, 2 64-bit), bits 17:15 the segment register (0 ES .. 5 GS; undefined for
 * INS, reported as ES, the segment INS writes); every other bit undefined, reported 0. For IN and
 * OUT the whole field is undefined (reported 0). td_generic_ve_exit (tdx_td_dispatcher.c) reaches
 * tdx_inject_ve (td_other_exits.c), which copies the VMCS field into VE_INFO.INSTRUCTION_INFO as
 * it is; TDG.VP.VEINFO.GET returns it in R10[63:32].
 */
export function ioInstructionInformation(io: Pick<IoExit, 'string' | 'addressBits' | 'segment'>): number {
  if (!io.string) return 0;
  const addressSize = io.addressBits === 16 ? 0 : io.addressBits === 32 ? 1 : 2;
  return (addressSize << 7) | ((io.segment & 7) << 15);
}

export interface VeInfoFields {
  exitReason: number;
  exitQualification: bigint;
  gla: bigint;
  gpa: bigint;
  instructionLength: number;
  instructionInfo: number;
}

/** The VE_INFO page: valid is 0xFFFFFFFF while unread; VEINFO.GET clears it. */
export class VeInfo implements Snapshottable<{ valid: boolean; fields: VeInfoFields }> {
  saveState(): { valid: boolean; fields: VeInfoFields } {
    return { valid: this.valid, fields: { ...this.fields } };
  }

  loadState(state: { valid: boolean; fields: VeInfoFields }): void {
    this.valid = state.valid;
    this.fields = { ...state.fields };
  }

  valid = false;
  fields: VeInfoFields = { exitReason: 0, exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: 0, instructionInfo: 0 };

  /** Stores new info for a #VE; returns false (nothing stored) if the previous one is unread, so the caller raises #DF. */
  store(fields: VeInfoFields): boolean {
    if (this.valid) return false;
    this.fields = { ...fields };
    this.valid = true;
    return true;
  }

  /** TDG.VP.VEINFO.GET: the info once, then invalid. */
  take(): VeInfoFields | undefined {
    if (!this.valid) return undefined;
    this.valid = false;
    return this.fields;
  }
}
