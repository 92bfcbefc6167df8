// Guest access checks of an SNP-active guest, in architectural priority order (APM Vol. 2
// §15.36.10 "RMP Memory Access Checks"; tdx-snp-architecture.md B3), as a data table walked by
// one function.
//
// Private accesses (C=1 data, every instruction fetch, every page-table walk):
//   RMP-covered, guest-owned (ASID), reverse-map (GPA), mutable, page size  -> #VMEXIT(NPF)
//   Validated                                                                -> #VC 0x404
//   VMPL permissions                                                         -> #VMEXIT(NPF)
// Shared accesses (C=0 data): a write to a page that is not hypervisor-owned -> NPF; through a
// 2 MiB nested translation every 4 KiB RMP entry under it must be hypervisor-owned (APM Vol. 2
// §15.36.10). Shared reads are not RMP-checked: they read what DRAM holds, the ciphertext of an
// assigned page (memory-encryption.ts; the page gate's 'ciphertext' state).
import type { Access } from '../../cpu/exits.js';
import type { Space } from '../../memory/address-marker.js';
import { HV_OWNED_ENTRY, PAGE_2M, PAGE_4K, VMPL_PERM, type Rmp, type RmpEntry, type RmpPageSize } from './rmp.js';

/** NPF EXITINFO1 bits (APM; Linux PFERR_*; B3). */
export const NPF_BITS = {
  present: 1n << 0n,
  write: 1n << 1n,
  user: 1n << 2n,
  fetch: 1n << 4n,
  rmp: 1n << 31n,
  finalGpa: 1n << 32n,
  pageTable: 1n << 33n,
  enc: 1n << 34n,
  sizeMismatch: 1n << 35n,
  vmpl: 1n << 36n,
} as const;

/** #VC error code for an access to a page whose Validated bit is 0 (B3). */
export const VC_PAGE_NOT_VALIDATED = 0x404n;

export interface AccessRequest {
  gpa: bigint;
  space: Space;
  access: Access;
  /** The access was the guest page walk reading a page-table page. */
  pageWalk: boolean;
  /** Page size of the nested page table mapping of this GPA (the VMM's choice). */
  nptSize: RmpPageSize;
  /**
   * The CPL of an instruction fetch: it picks the VMPL execute permission (ExeU at CPL 3, ExeS
   * below). Absent means 0, where the model's guests run; data accesses do not look at it.
   */
  cpl?: number;
}

export interface GuestContext {
  asid: number;
  vmpl: 0 | 1 | 2 | 3;
}

export type AccessResult =
  | { kind: 'ok' }
  | { kind: 'npf'; check: CheckName; errorCode: bigint }
  | { kind: 'vc'; check: CheckName; errorCode: bigint };

export type CheckName =
  | 'rmp-covered' | 'guest-owned' | 'reverse-map' | 'mutable' | 'page-size' | 'validated' | 'vmpl-permission'
  | 'shared-write-hv-owned';

interface Check {
  name: CheckName;
  appliesTo: 'private' | 'shared-write';
  /** True when the access passes. */
  passes(e: Readonly<RmpEntry>, req: AccessRequest, ctx: GuestContext, rmp: Rmp): boolean;
  /** What a failure raises, and extra NPF bits. */
  fails: { raise: 'npf'; extraBits: bigint } | { raise: 'vc'; errorCode: bigint };
}

/** BigInt masks made once: BigInt arithmetic on constants allocates on every check otherwise. */
const PAGE_BASE_MASK = ~(PAGE_4K - 1n);
const OFFSET_IN_2M_MASK = PAGE_2M - PAGE_4K;

/**
 * The VMPL permission an access needs (APM Vol. 2 §15.36.7 "VMPL Permission Mask
 * Definition"): bit 2 Execute-User allows execution at CPL 3, bit 3 Execute-Supervisor at CPL < 3.
 */
function permBit(access: Access, cpl: number): number {
  if (access === 'fetch') return cpl === 3 ? VMPL_PERM.execUser : VMPL_PERM.execSupervisor;
  return access === 'write' ? VMPL_PERM.write : VMPL_PERM.read;
}

/**
 * Whether the VMPL permission mask `perms` allows `access`. Write without Read is an illegal
 * setting: "a data access to a page so configured causes #VMEXIT(NPF)" (APM Vol. 2 §15.36.7,
 * after the mask table), so such a mask allows no data access at all, not even the write.
 */
function vmplAllows(perms: number, access: Access, cpl: number): boolean {
  if (access !== 'fetch' && (perms & (VMPL_PERM.read | VMPL_PERM.write)) === VMPL_PERM.write) return false;
  return (perms & permBit(access, cpl)) !== 0;
}

/** The RMP Memory Access Checks (§15.36.10) in priority order. */
export const ACCESS_CHECKS: readonly Check[] = [
  { name: 'rmp-covered', appliesTo: 'private', passes: (_e, r, _c, rmp) => rmp.covers(r.gpa), fails: { raise: 'npf', extraBits: NPF_BITS.rmp } },
  { name: 'guest-owned', appliesTo: 'private', passes: (e, _r, c) => e.assigned && e.asid === c.asid, fails: { raise: 'npf', extraBits: NPF_BITS.rmp } },
  {
    name: 'reverse-map', appliesTo: 'private',
    passes: (e, r) => {
      const page = r.gpa & PAGE_BASE_MASK;
      return e.pageSize === '2m' ? e.gpa + (r.gpa & OFFSET_IN_2M_MASK) === page : e.gpa === page;
    },
    fails: { raise: 'npf', extraBits: NPF_BITS.rmp },
  },
  { name: 'mutable', appliesTo: 'private', passes: (e) => !e.immutable, fails: { raise: 'npf', extraBits: NPF_BITS.rmp } },
  // NPT 2M needs RMP Page_Size=1, 4K needs 0 (B3). An ordinary access that fails it is an RMP
  // NPF without SIZEM: bit 35 is only for PVALIDATE/RMPADJUST (APM Vol. 2 §15.36.10; KVM
  // sev_handle_rmp_fault, case 2 "guest access via NPT", resolves it without that bit).
  { name: 'page-size', appliesTo: 'private', passes: (e, r) => e.pageSize === r.nptSize, fails: { raise: 'npf', extraBits: NPF_BITS.rmp } },
  { name: 'validated', appliesTo: 'private', passes: (e) => e.validated, fails: { raise: 'vc', errorCode: VC_PAGE_NOT_VALIDATED } },
  {
    name: 'vmpl-permission', appliesTo: 'private',
    passes: (e, r, c) => vmplAllows(e.vmplPerms[c.vmpl]!, r.access, r.cpl ?? 0),
    fails: { raise: 'npf', extraBits: NPF_BITS.rmp | NPF_BITS.vmpl },
  },
  {
    name: 'shared-write-hv-owned', appliesTo: 'shared-write',
    // Through a 2 MiB nested translation the whole 2 MiB must be hypervisor-owned (§15.36.10).
    passes: (e, r, _c, rmp) => (r.nptSize === '2m' ? rmp.regionHypervisorOwned(r.gpa) : !e.assigned),
    fails: { raise: 'npf', extraBits: NPF_BITS.rmp },
  },
];

function baseNpfBits(req: AccessRequest): bigint {
  let bits = NPF_BITS.present;
  if (req.access === 'write') bits |= NPF_BITS.write;
  if (req.access === 'fetch') bits |= NPF_BITS.fetch;
  bits |= req.pageWalk ? NPF_BITS.pageTable : NPF_BITS.finalGpa;
  if (req.space === 'private') bits |= NPF_BITS.enc;
  return bits;
}

/**
 * The results that do not depend on the request, made once (results are read, never changed): the
 * page gate asks three checks per page it derives and the #VC path one per exit (issue 10).
 */
const OK: AccessResult = Object.freeze({ kind: 'ok' });
const VC_RESULTS: ReadonlyMap<CheckName, AccessResult> = new Map(ACCESS_CHECKS.flatMap((check) =>
  check.fails.raise === 'vc' ? [[check.name, Object.freeze({ kind: 'vc', check: check.name, errorCode: check.fails.errorCode })] as const] : []));

/** Runs the checks that apply to `req`, in order; the first failure decides. */
export function checkAccess(rmp: Rmp, req: AccessRequest, ctx: GuestContext): AccessResult {
  const check = firstFailure(rmp, req, ctx);
  if (check === undefined) return OK;
  if (check.fails.raise === 'vc') return VC_RESULTS.get(check.name)!;
  return { kind: 'npf', check: check.name, errorCode: baseNpfBits(req) | check.fails.extraBits };
}

/**
 * The name of the check `req` fails (the one checkAccess reports), or undefined when it passes:
 * for the page gate, which asks only which check, three or four times per page it derives, and
 * for which building each NPF's error code (five BigInt operations) was wasted work (issue 10).
 */
export function failedCheck(rmp: Rmp, req: AccessRequest, ctx: GuestContext): CheckName | undefined {
  return firstFailure(rmp, req, ctx)?.name;
}

function firstFailure(rmp: Rmp, req: AccessRequest, ctx: GuestContext): Check | undefined {
  const kind = req.space === 'private' ? 'private' : req.access === 'write' ? 'shared-write' : undefined;
  if (!kind) return undefined;
  const entry = rmp.covers(req.gpa) ? rmp.lookup(req.gpa) : HV_OWNED_ENTRY;
  for (const check of ACCESS_CHECKS) {
    if (check.appliesTo !== kind) continue;
    if (check.passes(entry, req, ctx, rmp)) continue;
    return check;
  }
  return undefined;
}
