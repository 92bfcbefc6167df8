// Status values and layout: TDX 1.5 include/auto_gen/tdx_error_codes_defs.h (api_error_with_operand_id
// puts the operand ID in bits 31:0) and the GHCI TDG.VP.VMCALL statuses (reference A4, A7).
import { describe, expect, it } from 'vitest';
import { OperandId, TdvmcallStatus, TdxStatus, decodeTdxStatus, statusName, withOperand } from '../../../src/platform/tdx/status.js';

describe('withOperand', () => {
  it('fills bits 31:0 (the whole operand / detail field) and keeps the class', () => {
    expect(withOperand(TdxStatus.OPERAND_INVALID, 0x1234_5678n)).toBe(0xc0000100_12345678n);
    expect(withOperand(TdxStatus.TLB_TRACKING_NOT_DONE, OperandId.SEPT_TREE)).toBe(0xc0000b08_00000092n);
    // A status that already carries an operand gets the new one instead.
    expect(withOperand(0xc0000100_00000001n, OperandId.R9)).toBe(0xc0000100_00000009n);
  });
});

describe('TDG.VP.VMCALL statuses (R10; GHCI 1.5, Linux asm/shared/tdx.h)', () => {
  it('match reference A7', () => {
    expect(TdvmcallStatus).toEqual({
      SUCCESS: 0n, RETRY: 1n, INVALID_OPERAND: 0x8000000000000000n, GPA_INUSE: 0x8000000000000001n,
      ALIGN_ERROR: 0x8000000000000002n, SUBFUNC_UNSUPPORTED: 0x8000000000000003n,
    });
  });
});

// Every value below is transcribed from intel/tdx-module TDX_1.5 include/auto_gen/tdx_error_codes_defs.h
// (the TDX_* and OPERAND_ID_* defines), not from the model.
describe('TDX module status values (tdx_error_codes_defs.h)', () => {
  it('each TdxStatus is the TDX_<name> define of the module source', () => {
    expect(TdxStatus).toEqual({
      SUCCESS: 0x0000000000000000n,
      OPERAND_INVALID: 0xC000010000000000n,
      OPERAND_ADDR_RANGE_ERROR: 0xC000010100000000n,
      OPERAND_BUSY: 0x8000020000000000n,
      PREVIOUS_TLB_EPOCH_BUSY: 0x8000020100000000n,
      OPERAND_BUSY_HOST_PRIORITY: 0x8000020400000000n,
      HOST_PRIORITY_BUSY_TIMEOUT: 0x9000020500000000n,
      INTERRUPTED_RESUMABLE: 0x8000000300000000n,
      INTERRUPTED_RESTARTABLE: 0x8000000400000000n,
      OP_STATE_INCORRECT: 0xC000060800000000n,
      NO_VALID_VE_INFO: 0xC000070400000000n,
      EPT_WALK_FAILED: 0xC0000B0000000000n,
      EPT_ENTRY_FREE: 0xC0000B0100000000n,
      EPT_ENTRY_NOT_FREE: 0xC0000B0200000000n,
      EPT_ENTRY_NOT_PRESENT: 0xC0000B0300000000n,
      EPT_ENTRY_NOT_LEAF: 0xC0000B0400000000n,
      EPT_ENTRY_LEAF: 0xC0000B0500000000n,
      GPA_RANGE_NOT_BLOCKED: 0xC0000B0600000000n,
      GPA_RANGE_ALREADY_BLOCKED: 0x00000B0700000000n,
      TLB_TRACKING_NOT_DONE: 0xC0000B0800000000n,
      EPT_INVALID_PROMOTE_CONDITIONS: 0xC0000B0900000000n,
      PAGE_ALREADY_ACCEPTED: 0x00000B0A00000000n,
      PAGE_SIZE_MISMATCH: 0xC0000B0B00000000n,
      GPA_RANGE_BLOCKED: 0xC0000B0C00000000n,
      EPT_ENTRY_STATE_INCORRECT: 0xC0000B0D00000000n,
      METADATA_FIELD_ID_INCORRECT: 0xC0000C0000000000n,
      METADATA_FIELD_NOT_WRITABLE: 0xC0000C0100000000n,
      METADATA_FIELD_NOT_READABLE: 0xC0000C0200000000n,
      METADATA_FIELD_VALUE_NOT_VALID: 0xC0000C0300000000n,
      INVALID_REPORTMACSTRUCT: 0xC000100100000000n,
      METADATA_FIRST_FIELD_ID_IN_CONTEXT: 0x00000C0B00000000n,
    });
  });

  it('each OperandId is the OPERAND_ID_<name> define (decimal there)', () => {
    expect(OperandId).toEqual({ RAX: 0n, RCX: 1n, RDX: 2n, R8: 8n, R9: 9n, TDR: 128n, SEPT_TREE: 146n, SEPT_ENTRY: 147n, TD_EPOCH: 169n });
  });
});

// The layout of a status: api_error_code_t (TDX_1.5 include/tdx_api_defs.h): operand in bits 31:0,
// details_l1 39:32, class 47:40, bit 61 fatal, bit 62 non_recoverable, bit 63 error.
describe('decodeTdxStatus (api_error_code_t)', () => {
  it('SUCCESS is 0, and statusName names it without decoding', () => {
    expect(decodeTdxStatus(0n)).toEqual({ kind: 'success' });
    expect(statusName(0n)).toBe('SUCCESS');
  });

  it('bit 63 clear and non-zero is a warning: PAGE_ALREADY_ACCEPTED carries the level in bits 31:0', () => {
    const raw = 0x00000B0A00000001n; // TDX_PAGE_ALREADY_ACCEPTED | level 1 (tdg_mem_page_accept.c)
    expect(decodeTdxStatus(raw)).toEqual({ kind: 'warning', name: 'PAGE_ALREADY_ACCEPTED', detail: 1n, raw });
    expect(statusName(raw)).toBe('PAGE_ALREADY_ACCEPTED');
    expect(statusName(0x00000B0700000001n)).toBe('GPA_RANGE_ALREADY_BLOCKED');
  });

  it('bit 63 set is an error: the operand in bits 31:0, recoverable while bit 62 is clear, fatal with bit 61', () => {
    // TDX_OPERAND_BUSY | OPERAND_ID_RCX: recoverable (the host retries), not fatal.
    expect(decodeTdxStatus(0x8000020000000001n)).toEqual({
      kind: 'error', name: 'OPERAND_BUSY', operand: 1n, recoverable: true, fatal: false, raw: 0x8000020000000001n,
    });
    // TDX_EPT_WALK_FAILED | OPERAND_ID_RCX: bit 62 set, non-recoverable.
    expect(decodeTdxStatus(0xC0000B0000000001n)).toMatchObject({ kind: 'error', name: 'EPT_WALK_FAILED', operand: 1n, recoverable: false, fatal: false });
    // TDX_TLB_TRACKING_NOT_DONE | OPERAND_ID_SEPT_TREE (146): the whole 32-bit operand field.
    expect(decodeTdxStatus(0xC0000B0800000092n)).toMatchObject({ name: 'TLB_TRACKING_NOT_DONE', operand: 146n });
    // TDX_TD_FATAL 0xE000060400000000: bits 63, 62 and 61 all set.
    expect(decodeTdxStatus(0xE000060400000000n)).toMatchObject({ kind: 'error', recoverable: false, fatal: true });
    // TDX_HOST_PRIORITY_BUSY_TIMEOUT sets bit 60 (host_recoverability_hint), not 61: not fatal.
    expect(decodeTdxStatus(0x9000020500000000n)).toMatchObject({ kind: 'error', name: 'HOST_PRIORITY_BUSY_TIMEOUT', recoverable: true, fatal: false });
    expect(statusName(0xC000060800000000n)).toBe('OP_STATE_INCORRECT');
  });

  it('takes RAX as an unsigned 64-bit value (a negative BigInt is its two\'s complement)', () => {
    expect(decodeTdxStatus(-0x3fffff0000000000n)).toMatchObject({ kind: 'error', name: 'OPERAND_INVALID', operand: 0n, raw: 0xC000010000000000n });
    expect(decodeTdxStatus(-(1n << 64n) + 0x00000B0A00000002n)).toEqual({ kind: 'warning', name: 'PAGE_ALREADY_ACCEPTED', detail: 2n, raw: 0x00000B0A00000002n });
  });
});
