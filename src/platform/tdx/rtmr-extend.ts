// TDG.MR.RTMR.EXTEND (leaf 2), after `tdg_mr_rtmr_extend.c` (TDX module 1.5): RCX = the GPA of
// 48 bytes of extension data (64-byte aligned, private), RDX = the RTMR index. RTMR[i] becomes
// SHA-384(RTMR[i] || data): what TDVF and Linux extend their boot measurements with.
import { digestOf } from '../../shared/digest.js';
import { checkGuestSideGpa } from './guest-side-gpa.js';
import { OperandId, TdxStatus, withOperand } from './status.js';
import { RTMR_COUNT, SHA384_BYTES, type TdModule } from './td-module.js';
import type { LeafResult } from './tdcall.js';

/** is_addr_aligned_pwr_of_2(extension_data_gpa, 64). */
const EXTENSION_DATA_ALIGN_MASK = 63n;

export function rtmrExtend(td: TdModule): LeafResult {
  const regs = td.machine.vcpu.regs;
  const gpa = regs.rcx;
  const index = regs.rdx;
  // The checks in the handler's order: alignment, then the mapping (which may end the TDCALL in
  // a #VE or TD exit, before the index is looked at), then the index.
  if ((gpa & EXTENSION_DATA_ALIGN_MASK) !== 0n) return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX) };
  const refused = checkGuestSideGpa(td, gpa, 'read', OperandId.RCX);
  if (refused) return refused;
  if (index >= BigInt(RTMR_COUNT)) return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RDX) };
  const i = Number(index);
  // 48 bytes at a 64-byte-aligned GPA never cross a page.
  const data = td.machine.memory.read(gpa, SHA384_BYTES);
  td.rtmr[i] = digestOf('sha384', td.rtmr[i]!, data);
  td.record('rtmr-extended', { index: i, gpa, rtmr: td.rtmr[i]!.toString('hex') });
  return { kind: 'return', status: TdxStatus.SUCCESS };
}
