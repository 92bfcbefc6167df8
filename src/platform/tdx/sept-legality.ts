// The SEPT legality table: state × operation → result, kept as data the way the TDX module keeps
// `seamcall_sept_state_lookup` / `tdcall_sept_state_lookup` (`include/auto_gen/sept_state_lookup.c`,
// generated from a spreadsheet). Code never decides legality with ad-hoc ifs: it looks it up here.
// Conditions that are not the entry's state (TD op state, TLB tracking done, 512 children uniform)
// are checked by the callers in seamcall.ts / page-accept.ts, after this lookup succeeds.
import { TdxStatus } from './status.js';
import { SEPT_STATE_NAMES, septStateIndex, type SeptStateName } from './sept-states.js';

export type SeptOperation =
  /** TDH.MEM.PAGE.ADD (before TDH.MR.FINALIZE). */
  | 'ADD'
  /** TDH.MEM.PAGE.AUG. */
  | 'AUG'
  /** TDH.MEM.SEPT.ADD: add a SEPT page below a FREE entry, making it a non-leaf. */
  | 'SEPT_ADD'
  | 'BLOCK'
  | 'UNBLOCK'
  /** TDH.MEM.PAGE.REMOVE while the TD is not yet finalized / once it runs (must be blocked). */
  | 'REMOVE' | 'REMOVE_RUNNING'
  | 'DEMOTE' | 'DEMOTE_RUNNING'
  | 'PROMOTE' | 'PROMOTE_RUNNING'
  /** TDG.MEM.PAGE.ACCEPT on the entry at the requested level. */
  | 'ACCEPT'
  /** TDG.MEM.PAGE.ACCEPT when the walk ended on a leaf (or FREE = missing level) above the requested level. */
  | 'ACCEPT_LARGER'
  /** A guest load/store/fetch through a private GPA whose walk ends on this leaf. */
  | 'ACCESS';

export type AcceptAction = 'zero-and-map' | 'already-accepted' | 'size-mismatch' | 'td-exit';
export type AccessAction = 'allowed' | 'pending' | 'ept-violation';

export type SeptTransition =
  /** Legal: the entry becomes `next` (status is SUCCESS unless `status` says otherwise). */
  | { kind: 'ok'; next: SeptStateName }
  /** Refused (or a no-op warning such as GPA_RANGE_ALREADY_BLOCKED): state unchanged. */
  | { kind: 'status'; status: bigint }
  | { kind: 'accept'; action: AcceptAction }
  | { kind: 'access'; action: AccessAction };

const ok = (next: SeptStateName): SeptTransition => ({ kind: 'ok', next });
const st = (status: bigint): SeptTransition => ({ kind: 'status', status });
const acc = (action: AcceptAction): SeptTransition => ({ kind: 'accept', action });
const mem = (action: AccessAction): SeptTransition => ({ kind: 'access', action });

const INCORRECT = st(TdxStatus.EPT_ENTRY_STATE_INCORRECT);
const NOT_BLOCKED = st(TdxStatus.GPA_RANGE_NOT_BLOCKED);
const ALREADY_BLOCKED = st(TdxStatus.GPA_RANGE_ALREADY_BLOCKED);

type Row = Record<SeptStateName, SeptTransition>;

// SEAMCALL rows follow `seamcall_sept_state_lookup` (`include/auto_gen/sept_state_lookup.c`) and
// the refusal each handler returns (TDX 1.5: EPT_ENTRY_STATE_INCORRECT, not 1.0's EPT_ENTRY_NOT_FREE;
// `tdh_mem_page_add.c`, `tdh_mem_page_aug.c`, `tdh_mem_sept_add.c`, `tdh_mem_range_block.c`
// (GPA_RANGE_ALREADY_BLOCKED for any blocked entry), `tdh_mem_range_unblock.c`).
//                       FREE              REMOVED           NL_MAPPED              NL_BLOCKED             MAPPED                        BLOCKED                     PENDING                       PENDING_BLOCKED
export const SEPT_LEGALITY: Readonly<Record<SeptOperation, Readonly<Row>>> = {
  ADD:             { FREE: ok('MAPPED'),   REMOVED: INCORRECT,       NL_MAPPED: INCORRECT,    NL_BLOCKED: INCORRECT,    MAPPED: INCORRECT,              BLOCKED: INCORRECT,           PENDING: INCORRECT,             PENDING_BLOCKED: INCORRECT },
  AUG:             { FREE: ok('PENDING'),  REMOVED: ok('PENDING'),   NL_MAPPED: INCORRECT,    NL_BLOCKED: INCORRECT,    MAPPED: INCORRECT,              BLOCKED: INCORRECT,           PENDING: INCORRECT,             PENDING_BLOCKED: INCORRECT },
  SEPT_ADD:        { FREE: ok('NL_MAPPED'), REMOVED: INCORRECT,      NL_MAPPED: INCORRECT,    NL_BLOCKED: INCORRECT,    MAPPED: INCORRECT,              BLOCKED: INCORRECT,           PENDING: INCORRECT,             PENDING_BLOCKED: INCORRECT },
  BLOCK:           { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: ok('NL_BLOCKED'), NL_BLOCKED: ALREADY_BLOCKED, MAPPED: ok('BLOCKED'),      BLOCKED: ALREADY_BLOCKED,     PENDING: ok('PENDING_BLOCKED'), PENDING_BLOCKED: ALREADY_BLOCKED },
  UNBLOCK:         { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: INCORRECT,    NL_BLOCKED: ok('NL_MAPPED'), MAPPED: INCORRECT,            BLOCKED: ok('MAPPED'),        PENDING: INCORRECT,             PENDING_BLOCKED: ok('PENDING') },
  REMOVE:          { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: INCORRECT,    NL_BLOCKED: INCORRECT,    MAPPED: ok('FREE'),             BLOCKED: ok('FREE'),          PENDING: ok('FREE'),            PENDING_BLOCKED: ok('FREE') },
  REMOVE_RUNNING:  { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: INCORRECT,    NL_BLOCKED: INCORRECT,    MAPPED: NOT_BLOCKED,            BLOCKED: ok('FREE'),          PENDING: NOT_BLOCKED,           PENDING_BLOCKED: ok('FREE') },
  // DEMOTE: the entry becomes a non-leaf whose 512 children take the (unblocked) leaf state.
  DEMOTE:          { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: INCORRECT,    NL_BLOCKED: INCORRECT,    MAPPED: ok('NL_MAPPED'),        BLOCKED: ok('NL_MAPPED'),     PENDING: ok('NL_MAPPED'),       PENDING_BLOCKED: ok('NL_MAPPED') },
  DEMOTE_RUNNING:  { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: INCORRECT,    NL_BLOCKED: INCORRECT,    MAPPED: NOT_BLOCKED,            BLOCKED: ok('NL_MAPPED'),     PENDING: NOT_BLOCKED,           PENDING_BLOCKED: ok('NL_MAPPED') },
  // PROMOTE: `next` is a placeholder; the leaf takes the children's common state (MAPPED or PENDING).
  PROMOTE:         { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: ok('MAPPED'), NL_BLOCKED: ok('MAPPED'), MAPPED: INCORRECT,              BLOCKED: INCORRECT,           PENDING: INCORRECT,             PENDING_BLOCKED: INCORRECT },
  PROMOTE_RUNNING: { FREE: INCORRECT,      REMOVED: INCORRECT,       NL_MAPPED: NOT_BLOCKED,  NL_BLOCKED: ok('MAPPED'), MAPPED: INCORRECT,              BLOCKED: INCORRECT,           PENDING: INCORRECT,             PENDING_BLOCKED: INCORRECT },
  // tdg_mem_page_accept.c check_tdaccept_failure: PENDING → zero + MAPPED; guest-accessible leaf →
  // ALREADY_ACCEPTED; any other non-FREE non-leaf (NL_*, and REMOVED, whose PS bit is 0) →
  // SIZE_MISMATCH; anything else → EPT-violation TD exit.
  ACCEPT:          { FREE: acc('td-exit'), REMOVED: acc('size-mismatch'), NL_MAPPED: acc('size-mismatch'), NL_BLOCKED: acc('size-mismatch'), MAPPED: acc('already-accepted'), BLOCKED: acc('td-exit'), PENDING: acc('zero-and-map'), PENDING_BLOCKED: acc('td-exit') },
  // The walk stopped above the requested level (leaf, FREE, or RWX = 0): guest-accessible leaf or TD exit.
  ACCEPT_LARGER:   { FREE: acc('td-exit'), REMOVED: acc('td-exit'),  NL_MAPPED: acc('td-exit'), NL_BLOCKED: acc('td-exit'), MAPPED: acc('already-accepted'), BLOCKED: acc('td-exit'), PENDING: acc('td-exit'), PENDING_BLOCKED: acc('td-exit') },
  // td_ept_violation.c: PENDING is guest-acceptable (→ #VE or PENDING_EPT_VIOLATION exit); others exit.
  ACCESS:          { FREE: mem('ept-violation'), REMOVED: mem('ept-violation'), NL_MAPPED: mem('ept-violation'), NL_BLOCKED: mem('ept-violation'), MAPPED: mem('allowed'), BLOCKED: mem('ept-violation'), PENDING: mem('pending'), PENDING_BLOCKED: mem('ept-violation') },
};

/**
 * SEPT_LEGALITY's rows as arrays by septStateIndex, in a Map by operation: indexing the table's
 * objects by names that vary from call to call was two megamorphic property loads for each
 * SEAMCALL, ACCEPT and refused access (issue 10).
 */
const LEGALITY_ROWS: ReadonlyMap<SeptOperation, readonly SeptTransition[]> = new Map(
  (Object.entries(SEPT_LEGALITY) as [SeptOperation, Row][]).map(([op, row]) => [op, SEPT_STATE_NAMES.map((state) => row[state])]),
);

export function lookupTransition(op: SeptOperation, state: SeptStateName): SeptTransition {
  return LEGALITY_ROWS.get(op)![septStateIndex(state)]!;
}

/** The ACCESS row: what a private access (the guest's, or the module's on its behalf) to a leaf in `state` meets. */
export function accessAction(state: SeptStateName): AccessAction {
  const t = lookupTransition('ACCESS', state);
  return t.kind === 'access' ? t.action : 'ept-violation';
}
