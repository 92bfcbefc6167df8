// Status values and layout: TDX 1.5 include/auto_gen/tdx_error_codes_defs.h (api_error_with_operand_id
// puts the operand ID in bits 31:0) and the GHCI TDG.VP.VMCALL statuses (reference A4, A7).
import { describe, expect, it } from 'vitest';
import { OperandId, TdvmcallStatus, TdxStatus, withOperand } from '../../../src/platform/tdx/status.js';

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
