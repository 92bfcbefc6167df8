// What the guest's RMP instructions (PVALIDATE, RMPADJUST) check before they change an RMP
// entry, in order: CPL (and, for PVALIDATE, VMPL0), alignment, the guest page walk of RAX, RMP
// ownership, page size (APM Vol. 2 §15.36.6-.11: "RMP Memory Access Checks" in §15.36.10,
// "Page Size Mismatch Combinations" in §15.36.11; tdx-snp-architecture.md B2). The caller
// (snp-cpu.ts) translates RAX with the guest page tables.
import type { NativeTranslation } from '../../native/binding.js';
import { ACCESS_CHECKS, checkAccess, NPF_BITS, VC_PAGE_NOT_VALIDATED, type GuestContext } from './access-check.js';
import { PAGE_2M, PAGE_4K_BASE, type Rmp, type RmpEntry, type RmpPageSize } from './rmp.js';

/** Return codes shared by PVALIDATE and RMPADJUST (APM; Linux sev.h; MS __rmpadjust docs). */
export const RMP_INSN_RC = { SUCCESS: 0, FAIL_INPUT: 1, FAIL_PERMISSION: 2, FAIL_SIZEMISMATCH: 6 } as const;
export type RmpInsnRc = (typeof RMP_INSN_RC)[keyof typeof RMP_INSN_RC];

export interface RmpInsnRequest {
  gva: bigint;
  size: RmpPageSize;
  cpl: number;
  /** Translation of the (size-aligned) GVA through the guest page tables. */
  translation: NativeTranslation;
  /** Page size of the VMM's nested mapping of a GPA (checked as well as the RMP's: §15.36.11). */
  nptSizeAt: (gpa: bigint) => RmpPageSize;
}

export type RmpInsnEarlyOutcome =
  /** Completed without touching the RMP: EAX = rc. */
  | { kind: 'result'; rc: RmpInsnRc }
  /** #VMEXIT(NPF): RIP stays at the instruction; the hypervisor must fix the RMP/NPT and resume. */
  | { kind: 'npf'; gpa: bigint; errorCode: bigint; reason: string }
  /** An exception in the guest. */
  | { kind: 'fault'; vector: 13 | 14 | 29; errorCode: bigint; cr2?: bigint; reason: string }
  /** The walk was refused by a gate that is only a stale cache of the RMP: resync and retry. */
  | { kind: 'retry'; gpa: bigint };

export type RmpInsnTarget = { kind: 'target'; gpa: bigint; entry: Readonly<RmpEntry> };

/** NPF error codes of the instruction's own checks, made once (BigInt ORs allocated on every refused instruction). */
const NPF_NOT_COVERED = NPF_BITS.present | NPF_BITS.finalGpa | NPF_BITS.rmp;
const NPF_RMP_CHECK = NPF_BITS.present | NPF_BITS.write | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp;
const NPF_SIZE_MISMATCH = NPF_RMP_CHECK | NPF_BITS.sizeMismatch;

/**
 * `insn` names the instruction in fault reasons. `operandRc`, the instruction's own checks of
 * its register operands, runs after the CPL and alignment checks and before RAX is translated:
 * a result code it returns ends the instruction there.
 */
export function resolveRmpInsnTarget(rmp: Rmp, ctx: GuestContext, req: RmpInsnRequest, insn: 'PVALIDATE' | 'RMPADJUST',
  operandRc?: () => RmpInsnRc | undefined): RmpInsnEarlyOutcome | RmpInsnTarget {
  // CPL must be 0 (B2, (U)): #GP(0).
  if (req.cpl !== 0) return { kind: 'fault', vector: 13, errorCode: 0n, reason: `${insn} at CPL>0` };
  // PVALIDATE only at VMPL0: "The PVALIDATE instruction can only be performed at VMPL0" (Linux
  // fcd042e86422 and EDK2's SVSM_CORE_PVALIDATE patch, both by AMD: a guest below VMPL0 asks its
  // SVSM). Below it: #GP(0), before the input checks (microsoft/verismo op_pvalidate: VMPL != 0
  // -> Unsupported -> #GP; U: the APM Vol. 3 page itself was not reachable here).
  if (insn === 'PVALIDATE' && ctx.vmpl !== 0) return { kind: 'fault', vector: 13, errorCode: 0n, reason: 'PVALIDATE below VMPL0' };
  // 2M request with a GVA that is not 2 MiB aligned: FAIL_INPUT (B2).
  if (req.size === '2m' && req.gva % PAGE_2M !== 0n) return { kind: 'result', rc: RMP_INSN_RC.FAIL_INPUT };
  const rc = operandRc?.();
  if (rc !== undefined) return { kind: 'result', rc };
  const t = req.translation;
  // GVA not mapped: the walk faults. EDK2 says #GP; we raise the walk's #PF with CR2 = RAX,
  // as for any linear-address access (U: APM Vol. 3 page not found).
  if (t.status === 'page-fault') return { kind: 'fault', vector: 14, errorCode: BigInt(t.pfError), cr2: req.gva, reason: 'GVA not mapped' };
  if (t.status === 'table-blocked') {
    // The instruction's own walk reads guest page-table pages as private memory, so the RMP
    // Memory Access Checks (§15.36.10) apply to them as to a load's walk: not validated -> #VC
    // 0x404 with CR2 = the linear address; not guest-owned (etc.) -> NPF with the page-table bit.
    const walk = checkAccess(rmp, { gpa: t.gpa, space: 'private', access: 'read', pageWalk: true, nptSize: req.nptSizeAt(t.gpa) }, ctx);
    if (walk.kind === 'vc') return { kind: 'fault', vector: 29, errorCode: walk.errorCode, cr2: req.gva, reason: `page walk through 0x${t.gpa.toString(16)}: ${walk.check}` };
    if (walk.kind === 'npf') return { kind: 'npf', gpa: t.gpa, errorCode: walk.errorCode, reason: walk.check };
    return { kind: 'retry', gpa: t.gpa };
  }
  const gpa = t.gpa & PAGE_4K_BASE;
  // A 2 MiB request must land on a 2 MiB-aligned GPA (U: the GVA check mirrored on the GPA).
  if (req.size === '2m' && gpa % PAGE_2M !== 0n) return { kind: 'result', rc: RMP_INSN_RC.FAIL_INPUT };
  if (!rmp.covers(gpa)) return { kind: 'npf', gpa, errorCode: NPF_NOT_COVERED, reason: 'rmp-covered' };
  const entry = rmp.lookup(gpa);
  // Ownership, reverse map and mutability as in the RMP Memory Access Checks -> NPF
  // (B2: (U), by analogy).
  const accessReq = { gpa, space: 'private' as const, access: 'write' as const, pageWalk: false, nptSize: entry.pageSize };
  for (const check of ACCESS_CHECKS) {
    if (check.name !== 'guest-owned' && check.name !== 'reverse-map' && check.name !== 'mutable') continue;
    if (!check.passes(entry, accessReq, ctx, rmp)) {
      return { kind: 'npf', gpa, errorCode: NPF_RMP_CHECK, reason: check.name };
    }
  }
  // Size mismatch (APM Vol. 2 §15.36.11), against the RMP entry AND the nested page table: a 4K
  // request where either maps 2M -> NPF with SIZEM (the hypervisor PSMASHes / splits its NPT
  // and resumes: KVM sev_handle_rmp_fault names PVALIDATE and RMPADJUST); a 2M request where
  // either maps 4K -> FAIL_SIZEMISMATCH (the guest falls back to 4K: Linux pval_pages).
  const nptSize = req.nptSizeAt(gpa);
  if (req.size === '4k' && (entry.pageSize === '2m' || nptSize === '2m')) {
    return { kind: 'npf', gpa, errorCode: NPF_SIZE_MISMATCH, reason: 'size-mismatch' };
  }
  // RMPADJUST needs a validated page (PVALIDATE is what validates it): after the ownership and
  // 4K-under-2M checks and before the 2M-over-4K size check, an unvalidated page is #VC 0x404
  // (PAGE_NOT_VALIDATED) with CR2 = RAX, as a private access to it would be. Source: the formal
  // SNP model of microsoft/verismo (source/verismo/src/arch/rmp/access_s.rs, RmpEntry::rmpadjust:
  // fault_rmp_update -> NestedPF, !validated -> NotValidated, then the size and permission
  // checks), written against APM Vol. 3 RMPADJUST; the APM text itself was not reachable here.
  if (insn === 'RMPADJUST' && !entry.validated) {
    return { kind: 'fault', vector: 29, errorCode: VC_PAGE_NOT_VALIDATED, cr2: req.gva, reason: 'RMPADJUST of a page that is not validated' };
  }
  if (req.size === '2m' && (entry.pageSize === '4k' || nptSize === '4k')) return { kind: 'result', rc: RMP_INSN_RC.FAIL_SIZEMISMATCH };
  return { kind: 'target', gpa, entry };
}
