// TDG.MR.VERIFYREPORT (leaf 22), after `tdg_mr_verifyreport.c` (TDX module 1.5): RCX = the GPA of
// a 256-byte REPORTMACSTRUCT (256-aligned, private); the CPU (SEAMOPS SEAMVERIFYREPORT) checks its
// MAC. Here the MAC is the model's own (mr-report.ts), so a TD can check a TDREPORT this model made
// and see any change to it refused; it cannot check a real CPU's report, nor this model's elsewhere.
import { checkGuestSideGpa } from './guest-side-gpa.js';
import { TDREPORT, reportMac } from './mr-report.js';
import { OperandId, TdxStatus, withOperand } from './status.js';
import type { TdModule } from './td-module.js';
import type { LeafResult } from './tdcall.js';

/** SIZE_OF_REPORTMAC_STRUCT_IN_BYTES. */
const REPORTMACSTRUCT_BYTES = 256;

export function mrVerifyReport(td: TdModule): LeafResult {
  const gpa = td.machine.vcpu.regs.rcx;
  // seamverifyreport_available: the modelled CPU has SEAMVERIFYREPORT.
  if (gpa % BigInt(REPORTMACSTRUCT_BYTES) !== 0n) return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, OperandId.RCX) };
  const refused = checkGuestSideGpa(td, gpa, 'read', OperandId.RCX);
  if (refused) return refused;
  const mac = td.machine.memory.read(gpa, REPORTMACSTRUCT_BYTES);
  // SEAMOPS_INVALID_CPUSVN cannot arise: the model's reports carry CPUSVN 0, the platform's own,
  // and the MAC covers it, so a changed CPUSVN is an invalid REPORTMACSTRUCT.
  const valid = reportMac(mac).equals(mac.subarray(TDREPORT.mac, TDREPORT.mac + 32));
  return { kind: 'return', status: valid ? TdxStatus.SUCCESS : TdxStatus.INVALID_REPORTMACSTRUCT };
}
