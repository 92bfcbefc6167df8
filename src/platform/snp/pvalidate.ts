// PVALIDATE semantics (tdx-snp-architecture.md B2; APM Vol. 2 §15.36.6 and §15.36.11 "Page
// Size Mismatch Combinations"), typed like COCONUT-SVSM's pvalidate(): a result code, or a
// fault, or an NPF to the hypervisor.
// Inputs: RAX = guest-virtual address, ECX[0] = page size (0 4K, 1 2M), EDX[0] = 1 validate /
// 0 rescind. The caller (snp-cpu.ts) translates RAX with the guest page tables.
import { RFLAGS } from '../../cpu/registers.js';
import type { GuestContext } from './access-check.js';
import type { Rmp, RmpPageSize } from './rmp.js';
import { resolveRmpInsnTarget, RMP_INSN_RC, type RmpInsnEarlyOutcome, type RmpInsnRc, type RmpInsnRequest } from './rmp-instruction.js';

export const PVALIDATE_RC = { SUCCESS: RMP_INSN_RC.SUCCESS, FAIL_INPUT: RMP_INSN_RC.FAIL_INPUT, FAIL_SIZEMISMATCH: RMP_INSN_RC.FAIL_SIZEMISMATCH } as const;
export type PvalidateRc = (typeof PVALIDATE_RC)[keyof typeof PVALIDATE_RC];
/** Linux/EDK2 software convention for CF=1 ("no RMP update"); never in EAX. */
export const PVALIDATE_FAIL_NOUPDATE = 255;

export interface PvalidateRequest extends RmpInsnRequest {
  validate: boolean;
}

export type PvalidateOutcome =
  /** Completed: EAX = rc; CF = unchanged (only meaningful when rc = 0). */
  | { kind: 'result'; rc: RmpInsnRc; unchanged: boolean; gpa?: bigint }
  | Exclude<RmpInsnEarlyOutcome, { kind: 'result' }>;

/**
 * The operands of PVALIDATE executed in code of `codeBits` bits. The address is rAX at the
 * code's address size: RAX in 64-bit mode, EAX in 32-bit code, AX in 16-bit code (LLVM
 * X86InstrSNP.td: PVALIDATE64 uses RAX, PVALIDATE32 uses EAX, "pvalidate {%eax|eax}"; the APM's
 * rAX notation). An address-size prefix (0x67) is not modelled (U).
 */
export function decodePvalidateRegs(rax: bigint, rcx: bigint, rdx: bigint, codeBits: 16 | 32 | 64 = 64): { gva: bigint; size: RmpPageSize; validate: boolean } {
  const gva = codeBits === 64 ? rax : rax & (codeBits === 32 ? 0xffffffffn : 0xffffn);
  // Only bit 0 of ECX/EDX is architecturally defined (B2); other bits are ignored here (U).
  return { gva, size: (rcx & 1n) === 1n ? '2m' : '4k', validate: (rdx & 1n) === 1n };
}

/** PVALIDATE: the checks it shares with RMPADJUST, then the update of Validated. */
export function pvalidate(rmp: Rmp, ctx: GuestContext, req: PvalidateRequest): PvalidateOutcome {
  const r = resolveRmpInsnTarget(rmp, ctx, req, 'PVALIDATE');
  if (r.kind === 'result') return { kind: 'result', rc: r.rc, unchanged: false };
  if (r.kind !== 'target') return r;
  const unchanged = r.entry.validated === req.validate;
  if (!unchanged) rmp.setValidated(r.gpa, req.validate);
  return { kind: 'result', rc: PVALIDATE_RC.SUCCESS, unchanged, gpa: r.gpa };
}

const STATUS_FLAGS = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
/** The other flags, once: `~STATUS_FLAGS` in place was a BigInt per PVALIDATE. */
const OTHER_FLAGS = ~STATUS_FLAGS;

/**
 * RFLAGS after PVALIDATE: "OF, ZF, AF, PF and SF are set based on the return code" (B2) -- we
 * read that as the flags of the 32-bit result in EAX (ZF = EAX==0, SF = bit 31, PF = parity
 * of the low byte, OF = AF = 0) (U); CF = 1 exactly when rc = 0 and Validated did not change.
 */
export function pvalidateFlags(rflags: bigint, rc: number, unchanged: boolean): bigint {
  let f = rflags & OTHER_FLAGS;
  if (rc === 0) f |= RFLAGS.ZF;
  if ((rc >>> 31) & 1) f |= RFLAGS.SF;
  let bits = rc & 0xff, ones = 0;
  while (bits) { ones += bits & 1; bits >>= 1; }
  if (ones % 2 === 0) f |= RFLAGS.PF;
  if (rc === 0 && unchanged) f |= RFLAGS.CF;
  return f;
}
