// Secure-EPT entry states and their encodings (TDX 1.5 `include/auto_gen/sept_state_lookup.h`,
// reference A5). The encoding is the module's packed state field; we keep it so traces and
// TD-exit qualifications (err_sept_state) carry the real values.

import { u64ToNumber } from '../../shared/u64.js';

export const SeptState = {
  FREE: 0x0e,
  REMOVED: 0x0c,
  NL_MAPPED: 0x00,
  NL_BLOCKED: 0x08,
  MAPPED: 0x60,
  BLOCKED: 0x68,
  PENDING: 0x70,
  PENDING_BLOCKED: 0x78,
} as const;
export type SeptStateName = keyof typeof SeptState;
export type SeptStateValue = (typeof SeptState)[SeptStateName];

export const SEPT_STATE_NAMES = Object.keys(SeptState) as SeptStateName[];

/**
 * The architectural (public) state the module reports outside itself, e.g. the err_sept_state of
 * an ACCEPT TD exit and TDH.MEM.SEPT.RD's state: `sept_get_arch_state` reads `public_state` from
 * `sept_special_flags_lookup` (`include/auto_gen/sept_state_lookup.c`); KVM `tdx_arch.h`
 * `enum tdx_sept_entry_state` has FREE 0 … PRESENT(MAPPED) 4.
 */
export const SEPT_PUBLIC_STATE: Readonly<Record<SeptStateName, number>> = {
  FREE: 0, BLOCKED: 1, PENDING: 2, PENDING_BLOCKED: 3, MAPPED: 4, REMOVED: 5, NL_BLOCKED: 0x81, NL_MAPPED: 0x84,
};

/** Encoding bit 6 becomes the entry's PS bit (SEPT_STATE_ENC_TO_MASK, `sept_manager.h`). */
const ENCODING_PS_BIT = 0x40;

/**
 * A state's position in SEPT_STATE_NAMES, for tables indexed by state on hot paths (every
 * SEAMCALL, ACCEPT, walk and refused access). By comparisons with the literal names, which are
 * pointer compares: an object indexed by a state that varies from call to call (SeptState[state])
 * is a megamorphic load, and a Map hashes.
 */
export function septStateIndex(state: SeptStateName): number {
  switch (state) {
    case 'FREE': return 0;
    case 'REMOVED': return 1;
    case 'NL_MAPPED': return 2;
    case 'NL_BLOCKED': return 3;
    case 'MAPPED': return 4;
    case 'BLOCKED': return 5;
    case 'PENDING': return 6;
    case 'PENDING_BLOCKED': return 7;
  }
}

/** Whether each state (by septStateIndex) has the PS bit in its encoding. */
const IS_LEAF: readonly boolean[] = SEPT_STATE_NAMES.map((state) => (SeptState[state] & ENCODING_PS_BIT) !== 0);

/** The entry maps a page (`is_secure_ept_leaf_entry`: PS = 1). FREE and REMOVED are not leaves. */
export function isLeafState(state: SeptStateName): boolean {
  return IS_LEAF[septStateIndex(state)]!;
}

/**
 * SEPT levels as the module numbers them (`ept_level_t`: LVL_PT 0, LVL_PD 1, LVL_PDPT 2, LVL_PML4 3,
 * LVL_PML5 4; TDX_PS_4K/2M/1G in Linux `asm/shared/tdx.h`). Entries at 3 and 4 are non-leaf only.
 */
export type SeptLevel = 0 | 1 | 2 | 3 | 4;
export const LEVEL_SIZE: Record<SeptLevel, bigint> = { 0: 0x1000n, 1: 0x200000n, 2: 0x40000000n, 3: 1n << 39n, 4: 1n << 48n };

/** Each level's size as a number (exact: at most 2^48). */
export const LEVEL_BYTES: readonly number[] = [0, 1, 2, 3, 4].map((l) => Number(LEVEL_SIZE[l as SeptLevel]));

/**
 * Decodes a `gpa | level` operand (`page_info_api_input_t`: level in bits 2:0, bits 11:3 and
 * 63:52 reserved, the GPA aligned to the level) whose level must lie in [min, max] and whose GPA
 * must be below `sharedBit` (the shared bit GPAW-1 and every bit above it clear): the level, or
 * undefined for OPERAND_INVALID. RCX below the shared bit has bits 63:52 clear too, and is exact
 * as a number: the rest is checked on that, not with a dozen BigInt masks and shifts per call
 * (SEAMCALLs and ACCEPTs of every fuzz exit; issue 10). A reserved bit in 11:3 leaves the GPA
 * unaligned at every level.
 */
export function decodeGpaLevel(rcx: bigint, min: SeptLevel, max: SeptLevel, sharedBit: bigint): SeptLevel | undefined {
  if (rcx < 0n || rcx >= sharedBit) return undefined; // below 0: only a hostile VMM's BigInt
  return operandLevel(u64ToNumber(rcx), min, max);
}

/** decodeGpaLevel's level and alignment checks of an operand already found below the shared bit, as a number. */
export function operandLevel(operand: number, min: SeptLevel, max: SeptLevel): SeptLevel | undefined {
  const level = operand % 8;
  if (level < min || level > max || (operand - level) % LEVEL_BYTES[level]! !== 0) return undefined;
  return level as SeptLevel;
}

/** Each level as RCX's bits 2:0, a BigInt made once. */
export const LEVEL_BITS: readonly bigint[] = [0n, 1n, 2n, 3n, 4n];

/** The map key of the entry at `level` that covers `gpa` (a GPA as a number): the S-EPT's and the VMM's mirror's. */
export function septEntryKey(gpa: number, level: SeptLevel): number {
  return Math.floor(gpa / LEVEL_BYTES[level]!);
}
/**
 * Names the entry at `level` whose range starts at `gpa` (aligned to the level) in the module's
 * SEPT entry locks (td-module.ts hostLocks, guestLocks, hostPriority): the GPA with the level in
 * its low bits, as a number (exact: GPAs are below 2^52), like a SEAMCALL's RCX operand. A
 * template string per lookup was built on every 2M ACCEPT and on every SEAMCALL while any lock was held.
 */
export function septLockKey(level: SeptLevel, gpa: bigint): number {
  return u64ToNumber(gpa) + level;
}
export const ENTRIES_PER_TABLE = 512;

/**
 * The highest SEPT level with entries: the TD's EPT page-walk length minus one (EPTP.ept_pwl:
 * 4-level for GPAW 48, 5-level for GPAW 52). The root page above it always exists (TDH.MNG.INIT);
 * every level from here down to a leaf is added with TDH.MEM.SEPT.ADD (`tdh_mem_sept_add.c`
 * accepts levels LVL_PD..ept_pwl).
 */
export function septTopLevel(gpaWidth: 48 | 52): SeptLevel {
  return gpaWidth === 52 ? 4 : 3;
}

/**
 * The SEPT walk continues below this entry: a present (RWX ≠ 0) non-leaf. A blocked non-leaf has
 * RWX cleared (`block_sept_entry`), so `secure_ept_walk` (`sept_manager.c`) stops on it.
 */
export function walkContinuesBelow(state: SeptStateName): boolean {
  return state === 'NL_MAPPED';
}
