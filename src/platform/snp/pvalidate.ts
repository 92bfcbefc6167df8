// PVALIDATE semantics (tdx-snp-architecture.md B2; APM Vol. 2 Table 15-40), typed like
// COCONUT-SVSM's pvalidate(): a result code, or a fault, or an NPF to the hypervisor.
// Inputs: RAX = guest-virtual address, ECX[0] = page size (0 4K, 1 2M), EDX[0] = 1 validate /
// 0 rescind. The caller (snp-cpu.ts) translates RAX with the guest page tables.
import type { NativeTranslation } from '../../native/binding.js';
import { RFLAGS } from '../../cpu/registers.js';
import { ACCESS_CHECKS, checkAccess, NPF_BITS, type GuestContext } from './access-check.js';
import { PAGE_2M, PAGE_4K, type Rmp, type RmpPageSize } from './rmp.js';

export const PVALIDATE_RC = { SUCCESS: 0, FAIL_INPUT: 1, FAIL_SIZEMISMATCH: 6 } as const;
export type PvalidateRc = (typeof PVALIDATE_RC)[keyof typeof PVALIDATE_RC];
/** Linux/EDK2 software convention for CF=1 ("no RMP update"); never in EAX. */
export const PVALIDATE_FAIL_NOUPDATE = 255;

export interface PvalidateRequest {
  gva: bigint;
  size: RmpPageSize;
  validate: boolean;
  cpl: number;
  /** Translation of the (size-aligned) GVA through the guest page tables. */
  translation: NativeTranslation;
  /** Page size of the VMM's nested mapping of a GPA (PVALIDATE checks it: APM Table 15-40). */
  nptSizeAt: (gpa: bigint) => RmpPageSize;
}

export type PvalidateOutcome =
  /** Completed: EAX = rc; CF = unchanged (only meaningful when rc = 0). */
  | { kind: 'result'; rc: PvalidateRc; unchanged: boolean; gpa?: bigint }
  /** #VMEXIT(NPF): RIP stays at PVALIDATE; the hypervisor must fix the RMP and resume. */
  | { kind: 'npf'; gpa: bigint; errorCode: bigint; reason: string }
  /** An exception in the guest. */
  | { kind: 'fault'; vector: 13 | 14 | 29; errorCode: bigint; cr2?: bigint; reason: string }
  /** The walk was refused by a gate that is only a stale cache of the RMP: resync and retry. */
  | { kind: 'retry'; gpa: bigint };

export function decodePvalidateRegs(rax: bigint, rcx: bigint, rdx: bigint): { gva: bigint; size: RmpPageSize; validate: boolean } {
  // Only bit 0 of ECX/EDX is architecturally defined (B2); other bits are ignored here (U).
  return { gva: rax, size: (rcx & 1n) === 1n ? '2m' : '4k', validate: (rdx & 1n) === 1n };
}

/** Checks that PVALIDATE makes before touching the RMP, and the update itself. */
export function pvalidate(rmp: Rmp, ctx: GuestContext, req: PvalidateRequest): PvalidateOutcome {
  // CPL must be 0 (B2, (U)): #GP(0).
  if (req.cpl !== 0) return { kind: 'fault', vector: 13, errorCode: 0n, reason: 'PVALIDATE at CPL>0' };
  // 2M request with a GVA that is not 2 MiB aligned: FAIL_INPUT (B2).
  if (req.size === '2m' && req.gva % PAGE_2M !== 0n) return { kind: 'result', rc: PVALIDATE_RC.FAIL_INPUT, unchanged: false };
  const t = req.translation;
  // GVA not mapped: the walk faults. EDK2 says #GP; we raise the walk's #PF with CR2 = RAX,
  // as for any linear-address access (U: APM Vol. 3 page not found).
  if (t.status === 'page-fault') return { kind: 'fault', vector: 14, errorCode: BigInt(t.pfError), cr2: req.gva, reason: 'GVA not mapped' };
  if (t.status === 'table-blocked') {
    // PVALIDATE's own walk reads guest page-table pages as private memory, so Table 15-39
    // applies to them as to a load's walk: not validated -> #VC 0x404 with CR2 = the linear
    // address; not guest-owned (etc.) -> NPF with the page-table bit (APM Vol. 2 §15.36.10).
    const walk = checkAccess(rmp, { gpa: t.gpa, space: 'private', access: 'read', pageWalk: true, nptSize: req.nptSizeAt(t.gpa) }, ctx);
    if (walk.kind === 'vc') return { kind: 'fault', vector: 29, errorCode: walk.errorCode, cr2: req.gva, reason: `page walk through 0x${t.gpa.toString(16)}: ${walk.check}` };
    if (walk.kind === 'npf') return { kind: 'npf', gpa: t.gpa, errorCode: walk.errorCode, reason: walk.check };
    return { kind: 'retry', gpa: t.gpa };
  }
  const gpa = t.gpa & ~(PAGE_4K - 1n);
  // A 2 MiB request must land on a 2 MiB-aligned GPA (U: the GVA check mirrored on the GPA).
  if (req.size === '2m' && gpa % PAGE_2M !== 0n) return { kind: 'result', rc: PVALIDATE_RC.FAIL_INPUT, unchanged: false };
  if (!rmp.covers(gpa)) return { kind: 'npf', gpa, errorCode: NPF_BITS.present | NPF_BITS.finalGpa | NPF_BITS.rmp, reason: 'rmp-covered' };
  const entry = rmp.lookup(gpa);
  // Ownership, reverse map and mutability as in Table 15-39 -> NPF (B2: (U), by analogy).
  const accessReq = { gpa, space: 'private' as const, access: 'write' as const, pageWalk: false, nptSize: entry.pageSize };
  for (const check of ACCESS_CHECKS) {
    if (check.name !== 'guest-owned' && check.name !== 'reverse-map' && check.name !== 'mutable') continue;
    if (!check.passes(entry, accessReq, ctx, rmp)) {
      return { kind: 'npf', gpa, errorCode: NPF_BITS.present | NPF_BITS.write | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp, reason: check.name };
    }
  }
  // Size mismatch (APM Table 15-40), against the RMP entry AND the nested page table: a 4K
  // request where either maps 2M -> NPF with SIZEM (the hypervisor PSMASHes / splits its NPT
  // and resumes: KVM sev_handle_rmp_fault); a 2M request where either maps 4K ->
  // FAIL_SIZEMISMATCH (the guest falls back to 4K: Linux pval_pages).
  const nptSize = req.nptSizeAt(gpa);
  if (req.size === '4k' && (entry.pageSize === '2m' || nptSize === '2m')) {
    return { kind: 'npf', gpa, errorCode: NPF_BITS.present | NPF_BITS.write | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp | NPF_BITS.sizeMismatch, reason: 'size-mismatch' };
  }
  if (req.size === '2m' && (entry.pageSize === '4k' || nptSize === '4k')) return { kind: 'result', rc: PVALIDATE_RC.FAIL_SIZEMISMATCH, unchanged: false };
  const unchanged = entry.validated === req.validate;
  if (!unchanged) rmp.setValidated(gpa, req.validate);
  return { kind: 'result', rc: PVALIDATE_RC.SUCCESS, unchanged, gpa };
}

const STATUS_FLAGS = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;

/**
 * RFLAGS after PVALIDATE: "OF, ZF, AF, PF and SF are set based on the return code" (B2) -- we
 * read that as the flags of the 32-bit result in EAX (ZF = EAX==0, SF = bit 31, PF = parity
 * of the low byte, OF = AF = 0) (U); CF = 1 exactly when rc = 0 and Validated did not change.
 */
export function pvalidateFlags(rflags: bigint, rc: number, unchanged: boolean): bigint {
  let f = rflags & ~STATUS_FLAGS;
  if (rc === 0) f |= RFLAGS.ZF;
  if ((rc >>> 31) & 1) f |= RFLAGS.SF;
  let bits = rc & 0xff, ones = 0;
  while (bits) { ones += bits & 1; bits >>= 1; }
  if (ones % 2 === 0) f |= RFLAGS.PF;
  if (rc === 0 && unchanged) f |= RFLAGS.CF;
  return f;
}
