// Secure-EPT entry states and their encodings (TDX 1.5 `include/auto_gen/sept_state_lookup.h`,
// reference A5). The encoding is the module's packed state field; we keep it so traces and
// TD-exit qualifications (err_sept_state) carry the real values.

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

const NAME_BY_VALUE = new Map<number, SeptStateName>(SEPT_STATE_NAMES.map((n) => [SeptState[n], n]));
export function septStateByValue(value: number): SeptStateName | undefined {
  return NAME_BY_VALUE.get(value);
}

/** SEPT levels as the module numbers them (TDX_PS_4K/2M/1G in Linux `asm/shared/tdx.h`). */
export type SeptLevel = 0 | 1 | 2;
export const LEVEL_SIZE: Record<SeptLevel, bigint> = { 0: 0x1000n, 1: 0x200000n, 2: 0x40000000n };
export const LEVEL_SHIFT: Record<SeptLevel, bigint> = { 0: 12n, 1: 21n, 2: 30n };
export const LEVEL_NAME: Record<SeptLevel, string> = { 0: '4K', 1: '2M', 2: '1G' };
export const ENTRIES_PER_TABLE = 512;

export function isNonLeaf(state: SeptStateName): boolean {
  return state === 'NL_MAPPED' || state === 'NL_BLOCKED';
}

/** A non-leaf with present children (the walk continues below it). */
export function isPresentNonLeaf(state: SeptStateName): boolean {
  return isNonLeaf(state);
}
