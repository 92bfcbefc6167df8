// TDX module status values (TDX 1.5 `include/auto_gen/tdx_error_codes_defs.h`, reference A4) and
// TDG.VP.VMCALL status values (GHCI, Linux `asm/shared/tdx.h`), with one decoder that turns a raw
// RAX into a typed result (COCONUT-SVSM `tdx_result` style).

/** Operand IDs placed in bits 31:0 of an error status (`api_error_with_operand_id`). */
export const OperandId = {
  RAX: 0n, RCX: 1n, RDX: 2n, R8: 8n, R9: 9n, TDR: 0x80n, SEPT_TREE: 0x92n, SEPT_ENTRY: 0x93n, TD_EPOCH: 0xa9n,
} as const;

export const TdxStatus = {
  SUCCESS: 0n,
  OPERAND_INVALID: 0xc000010000000000n,
  OPERAND_ADDR_RANGE_ERROR: 0xc000010100000000n,
  OPERAND_BUSY: 0x8000020000000000n,
  PREVIOUS_TLB_EPOCH_BUSY: 0x8000020100000000n,
  OPERAND_BUSY_HOST_PRIORITY: 0x8000020400000000n,
  HOST_PRIORITY_BUSY_TIMEOUT: 0x9000020500000000n,
  INTERRUPTED_RESUMABLE: 0x8000000300000000n,
  INTERRUPTED_RESTARTABLE: 0x8000000400000000n,
  OP_STATE_INCORRECT: 0xc000060800000000n,
  NO_VALID_VE_INFO: 0xc000070400000000n,
  EPT_WALK_FAILED: 0xc0000b0000000000n,
  EPT_ENTRY_FREE: 0xc0000b0100000000n,
  EPT_ENTRY_NOT_FREE: 0xc0000b0200000000n,
  EPT_ENTRY_NOT_PRESENT: 0xc0000b0300000000n,
  EPT_ENTRY_NOT_LEAF: 0xc0000b0400000000n,
  EPT_ENTRY_LEAF: 0xc0000b0500000000n,
  GPA_RANGE_NOT_BLOCKED: 0xc0000b0600000000n,
  GPA_RANGE_ALREADY_BLOCKED: 0x00000b0700000000n,
  TLB_TRACKING_NOT_DONE: 0xc0000b0800000000n,
  EPT_INVALID_PROMOTE_CONDITIONS: 0xc0000b0900000000n,
  PAGE_ALREADY_ACCEPTED: 0x00000b0a00000000n,
  PAGE_SIZE_MISMATCH: 0xc0000b0b00000000n,
  GPA_RANGE_BLOCKED: 0xc0000b0c00000000n,
  EPT_ENTRY_STATE_INCORRECT: 0xc0000b0d00000000n,
  METADATA_FIELD_ID_INCORRECT: 0xc0000c0000000000n,
  METADATA_FIELD_NOT_WRITABLE: 0xc0000c0100000000n,
  METADATA_FIELD_NOT_READABLE: 0xc0000c0200000000n,
  METADATA_FIELD_VALUE_NOT_VALID: 0xc0000c0300000000n,
  INVALID_REPORTMACSTRUCT: 0xc000100100000000n,
  /** Not an error: TDG.VM.RD version 1 of the null field ID returns the first field ID in RDX. */
  METADATA_FIRST_FIELD_ID_IN_CONTEXT: 0x00000c0b00000000n,
} as const;
export type TdxStatusName = keyof typeof TdxStatus;

/** TDG.VP.VMCALL status returned to the guest in R10 (GHCI 1.5 table 2-x; Linux tdx.h). */
export const TdvmcallStatus = {
  SUCCESS: 0n,
  RETRY: 1n,
  INVALID_OPERAND: 0x8000000000000000n,
  GPA_INUSE: 0x8000000000000001n,
  ALIGN_ERROR: 0x8000000000000002n,
  SUBFUNC_UNSUPPORTED: 0x8000000000000003n,
} as const;

const CLASS_MASK = 0xffffffff00000000n;
const NAME_BY_CLASS = new Map<bigint, TdxStatusName>(
  (Object.entries(TdxStatus) as [TdxStatusName, bigint][]).map(([name, value]) => [value, name]),
);

/** A status with its operand / detail field (bits 31:0) filled in. */
export function withOperand(status: bigint, operand: bigint): bigint {
  return (status & CLASS_MASK) | (operand & 0xffffffffn);
}

export type DecodedTdxStatus =
  | { kind: 'success' }
  /** bit 63 clear but non-zero: informational (e.g. PAGE_ALREADY_ACCEPTED carries the level). */
  | { kind: 'warning'; name: TdxStatusName | 'UNKNOWN'; detail: bigint; raw: bigint }
  | { kind: 'error'; name: TdxStatusName | 'UNKNOWN'; operand: bigint; recoverable: boolean; fatal: boolean; raw: bigint };

/** Decodes a raw status (RAX after TDCALL/SEAMCALL): layout [63] error, [62] non-recoverable, [61] fatal, [47:32] class/details, [31:0] operand. */
export function decodeTdxStatus(raw: bigint): DecodedTdxStatus {
  raw = BigInt.asUintN(64, raw);
  if (raw === 0n) return { kind: 'success' };
  const name = NAME_BY_CLASS.get(raw & CLASS_MASK) ?? 'UNKNOWN';
  if ((raw >> 63n) === 0n) return { kind: 'warning', name, detail: raw & 0xffffffffn, raw };
  return {
    kind: 'error', name, operand: raw & 0xffffffffn,
    recoverable: ((raw >> 62n) & 1n) === 0n, fatal: ((raw >> 61n) & 1n) === 1n, raw,
  };
}

export function statusName(raw: bigint): string {
  if (raw === 0n) return 'SUCCESS';  // the common case, without decoding (one per exit)
  const d = decodeTdxStatus(raw);
  return d.kind === 'success' ? 'SUCCESS' : d.name;
}
