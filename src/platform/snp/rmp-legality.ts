// Legality of every host (hypervisor / AMD-SP firmware) operation on the RMP, as data: the
// TDX module keeps its SEPT legality in a generated table (sept_state_lookup.c); we do the same
// so tests can walk every cell. Rows: the operation; columns: the state of the target range.
//
// Sources: tdx-snp-architecture.md B2/B3 (RMPUPDATE always clears Validated, FAIL_OVERLAP;
// PSMASH keeps Validated, FAIL_INUSE 3); Linux arch/x86/include/asm/sev.h
// (RMPUPDATE_FAIL_OVERLAP 4 "RMPUPDATE detected 4K page and 2MB page overlap",
// PSMASH_FAIL_INUSE 3); KVM sev.c snp_launch_update (pages are made private with
// immutable=true, i.e. "pre-guest", before SNP_LAUNCH_UPDATE validates them).
// Cells marked (U) are our reading where the APM text was not available.
import { PAGE_2M, type Rmp } from './rmp.js';
import { u64ToNumber } from '../../shared/u64.js';

/** Host operations on the RMP. */
export const HOST_OPS = ['rmpupdate-4k', 'rmpupdate-2m', 'psmash', 'launch-update'] as const;
export type HostOp = (typeof HOST_OPS)[number];

/** The state of the target range as the legality table sees it. */
export const TARGET_STATES = [
  /** The address is not aligned to the operation's size. */
  'misaligned',
  /** Any entry in the range is Immutable (firmware pages, pre-guest launch pages). */
  'immutable',
  /** All entries in the range are hypervisor-owned. */
  'hv-owned',
  /** 4 KiB target: an assigned 4 KiB entry. 2 MiB target: some 4 KiB entries assigned. */
  'assigned-4k',
  /** The target lies in (4 KiB op) or is (2 MiB op) an assigned 2 MiB entry. */
  'assigned-2m',
] as const;
export type TargetState = (typeof TARGET_STATES)[number];

/**
 * Return codes shared by RMPUPDATE / PSMASH (APM; Linux sev.h; MS __rmpupdate/__psmash).
 * FAIL_BADADDR is PSMASH's "the page doesn't meet the requirements for expansion" (MS __psmash:
 * 7). AMD's first SNP host patches (2021 RFC, asm/sev.h) numbered a PSMASH_FAIL_BADADDR 4,
 * which is RMPUPDATE's FAIL_OVERLAP in the same code space; the current documentation says 7.
 */
export const RMP_RC = { SUCCESS: 0, FAIL_INPUT: 1, FAIL_PERMISSION: 2, FAIL_INUSE: 3, FAIL_OVERLAP: 4, FAIL_BADADDR: 7 } as const;
export type RmpRcName = keyof typeof RMP_RC;
/**
 * SNP firmware statuses SNP_LAUNCH_UPDATE returns (Linux uapi psp-sev.h SEV_RET_*; which check
 * gives which: AMD's firmware, amd/AMD-ASPFW sev_mcmd.c snp_mcmd_launch_update). INVALID_PARAM
 * is also a CPUID page the firmware had to correct (cpuid-page.ts).
 */
export const LAUNCH_STATUS = {
  INVALID_GUEST_STATE: 0x02, INVALID_PARAM: 0x16, INVALID_PAGE_SIZE: 0x19, INVALID_PAGE_STATE: 0x1a, INVALID_PAGE_OWNER: 0x1c,
} as const;
export type LaunchStatusName = keyof typeof LAUNCH_STATUS;
/** SNP firmware status for SNP_LAUNCH_UPDATE on a page not in the pre-guest state. */
export const LAUNCH_INVALID_PAGE_STATE = LAUNCH_STATUS.INVALID_PAGE_STATE;
export type HostResult = RmpRcName | LaunchStatusName;

export const RMP_LEGALITY: Readonly<Record<HostOp, Readonly<Record<TargetState, HostResult>>>> = {
  // RMPUPDATE of one 4 KiB entry: overwrites it (and clears Validated) unless it is immutable
  // or part of a 2 MiB entry (the host must PSMASH first: Linux/KVM do so before 4K changes).
  'rmpupdate-4k': {
    'misaligned': 'FAIL_INPUT',
    'immutable': 'FAIL_PERMISSION',
    'hv-owned': 'SUCCESS',
    'assigned-4k': 'SUCCESS',
    'assigned-2m': 'FAIL_OVERLAP',
  },
  // RMPUPDATE of a 2 MiB entry: the 511 following 4 KiB entries must not be assigned
  // (FAIL_OVERLAP, B2); replacing a 2 MiB entry by another 2 MiB state is allowed.
  'rmpupdate-2m': {
    'misaligned': 'FAIL_INPUT',
    'immutable': 'FAIL_PERMISSION',
    'hv-owned': 'SUCCESS',
    'assigned-4k': 'FAIL_OVERLAP',
    'assigned-2m': 'SUCCESS',
  },
  // PSMASH splits an assigned 2 MiB entry into 512 4 KiB entries (APM Vol. 2 §15.36.11). Its
  // input is a 2 MiB-aligned address (FAIL_INPUT otherwise); an address whose entry is not a
  // 2 MiB one "doesn't meet the requirements for expansion": FAIL_BADADDR (MS __psmash). An
  // immutable entry cannot be changed by x86 RMP instructions (§15.36.3 "Fields of an RMP
  // Entry": Immutable).
  'psmash': {
    'misaligned': 'FAIL_INPUT',
    'immutable': 'FAIL_PERMISSION',
    'hv-owned': 'FAIL_BADADDR',
    'assigned-4k': 'FAIL_BADADDR',
    'assigned-2m': 'SUCCESS',
  },
  // SNP_LAUNCH_UPDATE (AMD-SP firmware): only a pre-guest page (assigned to the guest's ASID,
  // Immutable) can be measured and pre-validated; the firmware then clears Immutable. An address
  // with bits 11:0 set fails the reserved-bits check (SNP_ADDR_RESERVED_MASK): INVALID_PARAM.
  // The rest of the firmware's checks need the entry itself (SnpPlatform.launchUpdatePage).
  'launch-update': {
    'misaligned': 'INVALID_PARAM',
    'immutable': 'SUCCESS',
    'hv-owned': 'INVALID_PAGE_STATE',
    'assigned-4k': 'INVALID_PAGE_STATE',
    'assigned-2m': 'INVALID_PAGE_STATE',
  },
};

/** Classifies the target of `op` at system-physical `spa` (columns checked in table order). */
export function classifyTarget(rmp: Rmp, op: HostOp, spa: bigint): TargetState {
  const large = op === 'rmpupdate-2m' || op === 'psmash';
  // Alignment on numbers (a BigInt remainder allocated per host operation): exact for every
  // covered address (below 2^46), and an uncovered one is 'misaligned' either way.
  if (!rmp.covers(spa) || u64ToNumber(spa) % (large ? 0x200000 : 0x1000) !== 0) return 'misaligned';
  if (!large) {
    // One look at the entry governing the page: a 2 MiB entry is the one a 2 MiB region stores
    // (Rmp.isLarge), with that page size. The 4 KiB RMPUPDATE of every page conversion asked
    // the table three times (issue 10).
    const e = rmp.lookup(spa);
    if (e.immutable) return 'immutable';
    if (e.pageSize === '2m') return 'assigned-2m';
    return e.assigned ? 'assigned-4k' : 'hv-owned';
  }
  if (rmp.anyImmutable(spa, PAGE_2M)) return 'immutable';
  if (rmp.isLarge(spa)) return 'assigned-2m';
  return rmp.assigned4kInRegion(spa) > 0 ? 'assigned-4k' : 'hv-owned';
}

export function legality(rmp: Rmp, op: HostOp, spa: bigint): { state: TargetState; result: HostResult } {
  const state = classifyTarget(rmp, op, spa);
  return { state, result: RMP_LEGALITY[op][state] };
}
