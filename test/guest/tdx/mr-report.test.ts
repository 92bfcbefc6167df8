// TDG.MR.REPORT (leaf 4) through real guest TDCALLs, checked against the TDX module 1.5 source:
// `tdg_mr_report.c` (operand checks and their order, PRIVATE_OR_SHARED mappings), `helpers.c`
// get_tdinfo_and_teeinfohash (TDINFO, TEE_INFO_HASH = SHA-384 of it), and the layouts of
// `tdx_api_defs.h` (td_report_t = REPORTMACSTRUCT 256 + TEE_TCB_INFO 256 + TDINFO 512 bytes).
// The offsets below are written out from those structs, not taken from the model.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { TdAttributes } from '../../../src/platform/tdx/td-module.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, IRQ_VECTOR, TDCALL, runTdGuest, tdGuest } from '../../helpers/tdx-guest.js';

const DATA = 0x90000n;
const REPORT = 0x90400n;
const PENDING_2M = 0x400000n;
const SHARED_BIT = 1n << 47n;
const OPERAND_INVALID = 0xc000010000000000n;
const sha384 = (b: Uint8Array) => createHash('sha384').update(b).digest();

/** 64 bytes of REPORTDATA, qword i = 0x5eed0000 + i. */
const storeReportData = (gpa: bigint) =>
  Array.from({ length: 8 }, (_, i) => `mov rax, ${0x5eed0000 + i}\n mov [0x${(gpa + BigInt(8 * i)).toString(16)}], rax`).join('\n');
function reportData(): Buffer {
  const b = Buffer.alloc(64);
  for (let i = 0; i < 8; i++) b.writeBigUInt64LE(BigInt(0x5eed0000 + i), 8 * i);
  return b;
}
const report = (rcx: bigint, rdx: bigint, r8 = 0n) => `mov rax, 4\n mov rcx, 0x${rcx.toString(16)}\n mov rdx, 0x${rdx.toString(16)}\n mov r8, ${r8}\n ${TDCALL}`;

describe('TDG.MR.REPORT', () => {
  it('writes TDREPORT_STRUCT: REPORTTYPE 0x81, the REPORTDATA, TDINFO with ATTRIBUTES, XFAM, MRTD and the extended RTMR, and SHA-384 hashes of TDINFO and TEE_TCB_INFO', () => {
    const { td, outcome } = runTdGuest(`
      ${storeReportData(DATA)}
      mov rax, 2\n mov rcx, 0x${DATA.toString(16)}\n xor edx, edx\n ${TDCALL}\n mov r12, rax
      ${report(REPORT, DATA)}\n mov r13, rax
      mov rax, 7\n xor ecx, ecx\n mov rdx, 0x1110000300000001\n ${TDCALL}\n mov r14, r8
      ${HALT}`, { attributes: TdAttributes.DEBUG });
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13]).toEqual([0n, 0n]);
    const rep = Buffer.from(td.platform.machine.memory.read(REPORT, 1024));
    expect(td.trace.ofType('td-report')).toEqual([expect.objectContaining({ gpa: REPORT, reportData: DATA, teeInfoHash: sha384(rep.subarray(512)).toString('hex') })]);
    // REPORTMACSTRUCT
    expect([...rep.subarray(0, 4)]).toEqual([0x81, 0, 0, 0]); // TDX, subtype 0, version 0 (no service TDs)
    expect(rep.subarray(4, 32).equals(Buffer.alloc(28))).toBe(true); // reserved, CPUSVN (none modelled)
    expect(rep.subarray(128, 192).equals(reportData())).toBe(true);
    expect(rep.subarray(192, 224).equals(Buffer.alloc(32))).toBe(true);
    const tdInfo = rep.subarray(512, 1024);
    expect(rep.subarray(80, 128).equals(sha384(tdInfo))).toBe(true); // TEE_INFO_HASH
    expect(rep.subarray(32, 80).equals(sha384(rep.subarray(256, 512)))).toBe(true); // TEE_TCB_INFO_HASH
    // TDINFO
    expect(tdInfo.readBigUInt64LE(0)).toBe(TdAttributes.DEBUG); // the TD's ATTRIBUTES (DEBUG)
    expect(tdInfo.readBigUInt64LE(8)).toBe(r.r14); // XFAM, as TDG.VM.RD reads it
    expect(tdInfo.subarray(16, 64).equals(td.platform.module.mrtd!)).toBe(true);
    expect(tdInfo.subarray(64, 208).equals(Buffer.alloc(144))).toBe(true); // MRCONFIGID, MROWNER, MROWNERCONFIG
    const data48 = Buffer.from(td.platform.machine.memory.read(DATA, 48));
    expect(tdInfo.subarray(208, 256).equals(createHash('sha384').update(Buffer.alloc(48)).update(data48).digest())).toBe(true); // RTMR[0]
    expect(tdInfo.subarray(256, 512).equals(Buffer.alloc(256))).toBe(true); // RTMR[1..3], SERVTD_HASH, reserved
    expect(rep.subarray(224, 256).equals(Buffer.alloc(32))).toBe(false); // a MAC is there
  });

  it('takes shared GPAs for both: REPORTDATA the VMM wrote and a TDREPORT the VMM can read', () => {
    const td = tdGuest(`${report(REPORT | SHARED_BIT, DATA | SHARED_BIT)}\n mov r13, rax\n ${HALT}`);
    const host = td.platform.module.host;
    host.setShared(DATA | SHARED_BIT, 0x1000n, true);
    td.platform.machine.memory.write(DATA, reportData());
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r13).toBe(0n);
    const rep = Buffer.from(td.platform.machine.memory.read(REPORT, 1024));
    expect(rep[0]).toBe(0x81);
    expect(rep.subarray(128, 192).equals(reportData())).toBe(true);
  });

  it('a shared GPA the VMM has not mapped is an EPT-violation TD exit on the shared GPA', () => {
    const td = tdGuest(`${report(REPORT, DATA | SHARED_BIT)}\n ${HALT}`);
    runTd(td);
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ reason: 'ept-violation', gpa: DATA | SHARED_BIT, access: 'read', space: 'shared', qual: 1n, eeqType: 'none', eeq: 0n });
  });

  it('the shared bit alone names shared page 0, and 2^48 is past GPAW 48 (OPERAND_INVALID naming RDX)', () => {
    const td = tdGuest(`${report(REPORT, 1n << 48n)}\n mov r12, rax\n ${report(REPORT, SHARED_BIT)}\n ${HALT}`);
    runTd(td);
    expect(td.platform.machine.vcpu.regs.r12).toBe(OPERAND_INVALID | 2n);
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ reason: 'ept-violation', gpa: SHARED_BIT, space: 'shared' });
  });

  it('a shared GPA just past RAM is a TD exit the VMM sees as outside RAM', () => {
    const td = tdGuest(`${report(REPORT, SHARED_BIT | (32n << 20n))}\n ${HALT}`);
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('fault');
    expect(outcome.reason).toMatch(/outside its RAM/);
  });

  it('refuses a misaligned TDREPORT (RCX), a misaligned or out-of-range REPORTDATA (RDX) and a subtype other than 0 (R8), writing nothing', () => {
    const { td, outcome } = runTdGuest(`
      ${report(REPORT + 0x200n, DATA)}\n mov r12, rax
      ${report(REPORT, DATA + 0x20n)}\n mov r13, rax
      ${report(REPORT, DATA | (1n << 48n))}\n mov r14, rax
      ${report(REPORT, DATA, 1n)}\n mov rbx, rax
      ${report(REPORT, DATA, 0x100n)}\n mov rsi, rax
      ${HALT}`);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13, r.r14, r.rbx, r.rsi]).toEqual([OPERAND_INVALID | 1n, OPERAND_INVALID | 2n, OPERAND_INVALID | 2n, OPERAND_INVALID | 8n, OPERAND_INVALID | 8n]);
    expect(Buffer.from(td.platform.machine.memory.read(REPORT, 1024)).equals(Buffer.alloc(1024))).toBe(true);
    expect(td.trace.ofType('td-report')).toEqual([]);
  });

  it('REPORTDATA on a PENDING page: #VE (read) before the subtype is looked at', () => {
    const td = tdGuest(`${report(REPORT, PENDING_2M, 1n)}\n ${HALT}`);
    td.platform.module.host.memPageAug(gpaLevel(PENDING_2M, 1));
    runTd(td);
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n);
    expect(td.trace.ofType('ve-injected')).toEqual([expect.objectContaining({ exitReason: 48, qual: 1n, gpa: PENDING_2M, gla: 0n })]);
  });

  // tdg_mr_report.c "Interruption Point", after TDINFO and TEE_INFO_HASH: a host interrupt pending
  // (is_interrupt_pending_guest_side, whatever RFLAGS.IF) ends the TDCALL with interrupt_occurred
  // set, and td_call then neither writes RAX nor advances RIP: the TD executes it again.
  it.each([['sti', 1n], ['cli', 0n]])('a host interrupt pending stops it at its interruption point with %s: nothing written, RIP and RAX kept, the vector posted', (ifInsn, handlerRuns) => {
    const td = tdGuest(`${ifInsn}\n ${storeReportData(DATA)}\n ${report(REPORT, DATA)}\n mov r13, rax\n ${HALT}`);
    td.platform.handle.postInterrupt(IRQ_VECTOR, 1);
    expect(runTd(td).outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r13, r.r14]).toEqual([0n, handlerRuns]);
    expect(td.trace.ofType('report-interrupted')).toEqual([expect.objectContaining({ vector: IRQ_VECTOR })]);
    const calls = td.trace.ofType('tdcall').filter((c) => c.leaf === 'MR_REPORT');
    expect(calls.map((c) => c.result)).toEqual(['interrupted', 'SUCCESS']);
    expect(calls[1]!.rip).toBe(calls[0]!.rip);
    expect(calls[1]!.rax).toBe(4n);
    expect(td.trace.ofType('td-report')).toHaveLength(1);
    // With IF clear the vector waits, posted.
    expect(td.platform.module.postedVectors).toEqual(handlerRuns ? [] : [IRQ_VECTOR]);
  });

  it('a misaligned operand is refused before the interruption point: the interrupt stays pending on the host', () => {
    const td = tdGuest(`${report(REPORT + 0x200n, DATA)}\n mov r13, rax\n ${HALT}`);
    td.platform.handle.postInterrupt(IRQ_VECTOR, 1);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r13).toBe(OPERAND_INVALID | 1n);
    expect(td.trace.ofType('report-interrupted')).toEqual([]);
    expect(td.platform.module.pendingInterrupt).toEqual({ vector: IRQ_VECTOR, afterChunks: 1 });
  });

  it('TDREPORT on a PENDING page: #VE for a write (qualification 0x3), nothing written', () => {
    const td = tdGuest(`${storeReportData(DATA)}\n ${report(PENDING_2M + 0x400n, DATA)}\n ${HALT}`);
    td.platform.module.host.memPageAug(gpaLevel(PENDING_2M, 1));
    runTd(td);
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n);
    expect(td.trace.ofType('ve-injected')).toEqual([expect.objectContaining({ exitReason: 48, qual: 3n, gpa: PENDING_2M + 0x400n })]);
    expect(td.trace.ofType('td-report')).toEqual([]);
  });
});

// TDG.MR.VERIFYREPORT (leaf 22, tdg_mr_verifyreport.c): RCX = a 256-aligned private
// REPORTMACSTRUCT, whose MAC the CPU checks: SUCCESS, or TDX_INVALID_REPORTMACSTRUCT
// (0xC000100100000000, tdx_error_codes_defs.h) for one that was changed.
describe('TDG.MR.VERIFYREPORT', () => {
  const verify = (rcx: bigint) => `mov rax, 22\n mov rcx, 0x${rcx.toString(16)}\n ${TDCALL}`;
  it('accepts the REPORTMACSTRUCT of a TDREPORT the TD just got, and refuses it once a REPORTDATA byte is changed', () => {
    const { td, outcome } = runTdGuest(`
      ${storeReportData(DATA)}
      ${report(REPORT, DATA)}\n mov r12, rax
      ${verify(REPORT)}\n mov r13, rax
      xor byte ptr [${REPORT + 130n}], 1
      ${verify(REPORT)}\n mov r14, rax
      ${verify(REPORT + 0x80n)}\n mov rbx, rax
      ${HALT}`);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13, r.r14, r.rbx]).toEqual([0n, 0n, 0xc000100100000000n, OPERAND_INVALID | 1n]);
  });

  it('the MAC covers the whole REPORTMACSTRUCT before it: a change to its first or its last byte, or to the MAC\'s last byte (255), is refused', () => {
    const { td } = runTdGuest(`
      ${storeReportData(DATA)}
      ${report(REPORT, DATA)}
      xor byte ptr [${REPORT}], 1
      ${verify(REPORT)}\n mov r13, rax
      xor byte ptr [${REPORT}], 1
      xor byte ptr [${REPORT + 223n}], 1
      ${verify(REPORT)}\n mov r14, rax
      xor byte ptr [${REPORT + 223n}], 1
      xor byte ptr [${REPORT + 255n}], 1
      ${verify(REPORT)}\n mov r15, rax
      xor byte ptr [${REPORT + 255n}], 1
      ${verify(REPORT)}\n mov rbx, rax
      ${HALT}`);
    const r = td.platform.machine.vcpu.regs;
    expect([r.r13, r.r14, r.r15, r.rbx]).toEqual([0xc000100100000000n, 0xc000100100000000n, 0xc000100100000000n, 0n]);
  });

  it('a REPORTMACSTRUCT on a shared GPA is OPERAND_INVALID (PRIVATE_ONLY)', () => {
    const { td } = runTdGuest(`${verify(REPORT | SHARED_BIT)}\n mov r13, rax\n ${HALT}`);
    expect(td.platform.machine.vcpu.regs.r13).toBe(OPERAND_INVALID | 1n);
  });
});
