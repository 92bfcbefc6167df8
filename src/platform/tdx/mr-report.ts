// TDG.MR.REPORT (leaf 4), after `tdg_mr_report.c` (TDX module 1.5): RCX = the GPA of a 1024-byte
// TDREPORT_STRUCT to write (1024-aligned), RDX = the GPA of 64 bytes of REPORTDATA (64-aligned),
// R8 = the report subtype (0). Both GPAs may be private or shared. The layouts are
// tdx_api_defs.h's: REPORTMACSTRUCT (256 bytes), TEE_TCB_INFO (256), TDINFO (512).
//
// What the module takes from the TD is exact: TDINFO (ATTRIBUTES, XFAM, MRTD, MRCONFIGID, MROWNER,
// MROWNERCONFIG, RTMR[0..3], SERVTD_HASH), TEE_INFO_HASH = SHA-384(TDINFO)
// (get_tdinfo_and_teeinfohash), REPORTTYPE and REPORTDATA. What the CPU adds in SEAMOPS
// (SEAMDB_REPORT) is not: the model has no SEAM module measurement or CPU key, so CPUSVN and
// TEE_TCB_INFO are zero (TEE_TCB_INFO.VALID = 0: no field populated), TEE_TCB_INFO_HASH is the
// SHA-384 of that TEE_TCB_INFO, and the MAC is an HMAC-SHA-256 under a key only this model holds,
// which nothing outside it (TDG.MR.VERIFYREPORT, a quoting enclave) can check.
import { digestOf, nodeCrypto } from '../../shared/digest.js';
import { checkGuestSideGpa } from './guest-side-gpa.js';
import { OperandId, TdxStatus, withOperand } from './status.js';
import { TD_XFAM } from './td-cpuid.js';
import { RTMR_COUNT, SHA384_BYTES, type TdModule } from './td-module.js';
import type { LeafResult } from './tdcall.js';

/** SIZE_OF_TD_REPORT_STRUCT_IN_BYTES and SIZE_OF_TD_REPORT_DATA_STRUCT_IN_BYTES. */
export const TDREPORT_BYTES = 1024;
export const REPORTDATA_BYTES = 64;
/** TDX_REPORT_TYPE, TDX_REPORT_SUBTYPE, TDX_REPORT_VERSION_NO_SERVTDS (the model binds no service TD). */
const TDX_REPORT_TYPE = 0x81;
const TDX_REPORT_SUBTYPE = 0n;
const TDX_REPORT_VERSION_NO_SERVTDS = 0;

/** Offsets in TDREPORT_STRUCT (td_report_t) and its parts. */
export const TDREPORT = {
  reportType: 0, cpusvn: 16, teeTcbInfoHash: 32, teeInfoHash: 80, reportData: 128, mac: 224,
  teeTcbInfo: 256, teeTcbInfoBytes: 256,
  tdInfo: 512, tdInfoBytes: 512,
} as const;
/** Offsets in TDINFO_STRUCT (td_info_t). */
export const TDINFO = { attributes: 0, xfam: 8, mrtd: 16, mrconfigid: 64, mrowner: 112, mrownerconfig: 160, rtmr: 208, servtdHash: 400 } as const;

/** The MAC's key: the model's stand-in for the CPU's report key. Made at the first report, not when the module loads. */
let reportMacKey: Buffer | undefined;

export function mrReport(td: TdModule): LeafResult {
  const regs = td.machine.vcpu.regs;
  const reportGpa = regs.rcx;
  const dataGpa = regs.rdx;
  // The handler's order: the two alignments, REPORTDATA's mapping (which may end the TDCALL in a
  // #VE or TD exit), the subtype, then TDREPORT's mapping, read-write, once the report is made.
  if (reportGpa % BigInt(TDREPORT_BYTES) !== 0n) return invalid(OperandId.RCX);
  if (dataGpa % BigInt(REPORTDATA_BYTES) !== 0n) return invalid(OperandId.RDX);
  const dataRefused = checkGuestSideGpa(td, dataGpa, 'read', OperandId.RDX, 'private-or-shared');
  if (dataRefused) return dataRefused;
  if (regs.r8 !== TDX_REPORT_SUBTYPE) return invalid(OperandId.R8);
  // The interruption point, once TDINFO and TEE_INFO_HASH are computed: a host interrupt pending
  // ends the TDCALL with nothing written; the TD executes it again (td-module.ts takeHostInterrupt).
  if (td.pendingInterrupt) {
    const { vector, step } = td.takeHostInterrupt();
    td.record('report-interrupted', { vector });
    return { kind: 'step', step, result: 'interrupted' };
  }
  const report = buildReport(td, td.machine.memory.read(dataGpa & ~td.sharedBit, REPORTDATA_BYTES));
  const reportRefused = checkGuestSideGpa(td, reportGpa, 'write', OperandId.RCX, 'private-or-shared');
  if (reportRefused) return reportRefused;
  td.machine.memory.write(reportGpa & ~td.sharedBit, report);
  td.record('td-report', { gpa: reportGpa, reportData: dataGpa, teeInfoHash: Buffer.from(report.subarray(TDREPORT.teeInfoHash, TDREPORT.teeInfoHash + SHA384_BYTES)).toString('hex') });
  return { kind: 'return', status: TdxStatus.SUCCESS };
}

function invalid(operand: bigint): LeafResult {
  return { kind: 'return', status: withOperand(TdxStatus.OPERAND_INVALID, operand) };
}

/** TDREPORT_STRUCT for `reportData`, as the module assembles it and the (modelled) CPU signs it. */
export function buildReport(td: TdModule, reportData: Uint8Array): Buffer {
  const report = Buffer.alloc(TDREPORT_BYTES);
  const tdInfo = report.subarray(TDREPORT.tdInfo, TDREPORT.tdInfo + TDREPORT.tdInfoBytes);
  tdInfo.writeBigUInt64LE(td.config.attributes, TDINFO.attributes);
  tdInfo.writeBigUInt64LE(TD_XFAM, TDINFO.xfam);
  td.mrtd?.copy(tdInfo, TDINFO.mrtd);
  // MRCONFIGID, MROWNER, MROWNERCONFIG: TD_PARAMS inputs the model's TDs leave 0; SERVTD_HASH: 0
  // with no service TD bound (as TDG.VM.RD reads them, td-metadata.ts).
  for (let i = 0; i < RTMR_COUNT; i++) td.rtmr[i]!.copy(tdInfo, TDINFO.rtmr + i * SHA384_BYTES);
  const mac = report.subarray(0, TDREPORT.teeTcbInfo);
  mac.writeUInt8(TDX_REPORT_TYPE, TDREPORT.reportType);
  mac.writeUInt8(Number(TDX_REPORT_SUBTYPE), TDREPORT.reportType + 1);
  mac.writeUInt8(TDX_REPORT_VERSION_NO_SERVTDS, TDREPORT.reportType + 2);
  const teeTcbInfo = report.subarray(TDREPORT.teeTcbInfo, TDREPORT.teeTcbInfo + TDREPORT.teeTcbInfoBytes);
  digestOf('sha384', teeTcbInfo).copy(mac, TDREPORT.teeTcbInfoHash);
  digestOf('sha384', tdInfo).copy(mac, TDREPORT.teeInfoHash);
  mac.set(reportData, TDREPORT.reportData);
  reportMac(mac).copy(mac, TDREPORT.mac);
  return report;
}

/** The MAC of a REPORTMACSTRUCT: over everything before the MAC field, under the model's key. */
export function reportMac(reportMacStruct: Uint8Array): Buffer {
  reportMacKey ??= digestOf('sha256', Buffer.from('minivisor TDX REPORTMACSTRUCT key\0', 'latin1'));
  // node:crypto at the first report only: loading it was ~6 ms of every boot's start (issue 11).
  return nodeCrypto().createHmac('sha256', reportMacKey).update(reportMacStruct.subarray(0, TDREPORT.mac)).digest();
}
