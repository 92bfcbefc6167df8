// TDG.MR.RTMR.EXTEND (leaf 2) through real guest TDCALLs, checked against the TDX module 1.5
// source (`tdg_mr_rtmr_extend.c`, `helpers.c` check_walk_and_map_guest_side_gpa): RTMR[i] becomes
// SHA-384(RTMR[i] || the 48 bytes at RCX); the RTMRs start at zero (tdh_mng_init.c) and TDG.VM.RD
// reads them (field RTMR, 0x1310000300000040, 4 × 6 elements).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { TdAttributes } from '../../../src/platform/tdx/td-module.js';
import { honestTdxPolicy, type EptViolationExit, type TdxVmmPolicy } from '../../../src/vmm/tdx/honest-vmm.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, TDCALL, runTdGuest, tdGuest } from '../../helpers/tdx-guest.js';

const DATA = 0x90000n;
const PENDING_2M = 0x400000n;
const OPERAND_INVALID_RCX = 0xc000010000000001n;
const OPERAND_INVALID_RDX = 0xc000010000000002n;
const RTMR_FIELD = 0x1310000300000040n;

/** Stores 48 bytes (six qwords `seed`, `seed + 1`, …) at `gpa`. */
function storeData(gpa: bigint, seed: number): string {
  return Array.from({ length: 6 }, (_, i) => `mov rax, ${seed + i}\n mov [0x${(gpa + BigInt(8 * i)).toString(16)}], rax`).join('\n');
}
function dataBytes(seed: number): Buffer {
  const b = Buffer.alloc(48);
  for (let i = 0; i < 6; i++) b.writeBigUInt64LE(BigInt(seed + i), 8 * i);
  return b;
}
const extend = (gpa: bigint, index: number) => `mov rax, 2\n mov rcx, 0x${gpa.toString(16)}\n mov rdx, ${index}\n ${TDCALL}`;
/** TDG.VM.RD of RTMR element `element` (RTMR[element / 6], qword element % 6) into R8. */
const readRtmr = (element: number) => `mov rax, 7\n xor ecx, ecx\n mov rdx, 0x${(RTMR_FIELD + BigInt(element)).toString(16)}\n ${TDCALL}`;
const sha384 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha384')).digest();
const ZERO48 = Buffer.alloc(48);

describe('TDG.MR.RTMR.EXTEND', () => {
  it('extends RTMR[2] twice as SHA-384(RTMR || data); TDG.VM.RD reads it, the other RTMRs stay 0', () => {
    const { td, outcome } = runTdGuest(`
      ${storeData(DATA, 0x1000)}
      ${storeData(DATA + 0x40n, 0x2000)}
      ${extend(DATA, 2)}\n mov r12, rax
      ${extend(DATA + 0x40n, 2)}\n mov r13, rax
      ${readRtmr(12)}\n mov r14, r8
      ${readRtmr(17)}\n mov rbx, r8
      ${readRtmr(0)}\n mov rsi, r8
      ${readRtmr(23)}\n mov rdi, r8
      ${HALT}`);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13]).toEqual([0n, 0n]);
    const expected = sha384(sha384(ZERO48, dataBytes(0x1000)), dataBytes(0x2000));
    expect(r.r14).toBe(expected.readBigUInt64LE(0));
    expect(r.rbx).toBe(expected.readBigUInt64LE(40));
    expect([r.rsi, r.rdi]).toEqual([0n, 0n]);
    expect(td.platform.module.rtmr.map((b) => b.toString('hex'))).toEqual([ZERO48, ZERO48, expected, ZERO48].map((b) => b.toString('hex')));
    expect(td.trace.ofType('rtmr-extended')).toEqual([
      expect.objectContaining({ index: 2, gpa: DATA }),
      expect.objectContaining({ index: 2, gpa: DATA + 0x40n, rtmr: expected.toString('hex') }),
    ]);
  });

  it('refuses a GPA not 64-byte aligned, a shared GPA, one past GPAW and an index above 3, changing nothing', () => {
    const { td, outcome } = runTdGuest(`
      ${storeData(DATA, 1)}
      ${extend(DATA + 0x20n, 0)}\n mov r12, rax
      ${extend(DATA | (1n << 47n), 0)}\n mov r13, rax
      ${extend(DATA | (1n << 50n), 0)}\n mov r14, rax
      ${extend(DATA, 4)}\n mov rbx, rax
      ${HALT}`);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13, r.r14, r.rbx]).toEqual([OPERAND_INVALID_RCX, OPERAND_INVALID_RCX, OPERAND_INVALID_RCX, OPERAND_INVALID_RDX]);
    expect(td.platform.module.rtmr.every((b) => b.equals(ZERO48))).toBe(true);
    expect(td.trace.ofType('rtmr-extended')).toEqual([]);
  });

  it('data on a PENDING page: #VE at the TDCALL (reason 48, read, exact GPA, no GLA, length 4); accepted, the TDCALL re-executes and hashes the zeroed page', () => {
    // #VE handler: the frame's RIP into RBX; VE info into R12 (status), [0x90100] (reason), R14
    // (qualification), RBP (GLA), RSI (GPA), RDI (instruction length); then ACCEPT the 2M page
    // (status in R15) and IRETQ with the TDCALL's operands as they were.
    const td = tdGuest(`
      mov rax, 2\n mov rcx, 0x${(PENDING_2M + 0x40n).toString(16)}\n mov rdx, 1
      tdcall_site: ${TDCALL}
      mov r13, rax
      lea r9, [rip + tdcall_site]
      ${HALT}`, {
      ve: `mov rbx, [rsp]\n push rax\n push rcx\n push rdx
           mov rax, 3\n ${TDCALL}\n mov r12, rax\n mov [0x90100], rcx\n mov r14, rdx\n mov rbp, r8\n mov rsi, r9\n mov rdi, r10
           mov rax, 6\n mov rcx, 0x${(PENDING_2M | 1n).toString(16)}\n ${TDCALL}\n mov r15, rax
           pop rdx\n pop rcx\n pop rax\n iretq`,
    });
    td.platform.module.host.memPageAug(gpaLevel(PENDING_2M, 1));
    expect(runTd(td).outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect(r.r12).toBe(0n);
    expect(td.platform.machine.memory.readU64(0x90100n)).toBe(48n);
    expect(r.r14).toBe(0x1n);
    expect(r.rbp).toBe(0n);
    expect(r.rsi).toBe(PENDING_2M + 0x40n);
    expect(r.rdi).toBe(4n); // instruction length 4, instruction information 0 (R10 bits 63:32)
    expect(r.rbx).toBe(r.r9); // the #VE's RIP is the TDCALL's: it did not complete
    expect(r.r15).toBe(0n); // the ACCEPT
    expect(r.r13).toBe(0n); // the re-executed TDCALL
    expect(td.trace.ofType('rtmr-extended')).toHaveLength(1);
    expect(td.platform.module.rtmr[1]!.equals(sha384(ZERO48, ZERO48))).toBe(true);
  });

  it('the mapping is checked before the index: a PENDING page with index 4 is a #VE, not OPERAND_INVALID', () => {
    const td = tdGuest(`${extend(PENDING_2M, 4)}\n mov r13, rax\n ${HALT}`);
    td.platform.module.host.memPageAug(gpaLevel(PENDING_2M, 1));
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n); // the default #VE handler halts with 20
    expect(td.trace.ofType('ve-injected')).toEqual([expect.objectContaining({ exitReason: 48, gpa: PENDING_2M })]);
    // The trace says why the TDCALL did not complete: a #VE, not a TD exit.
    expect(td.trace.ofType('tdcall')[0]).toMatchObject({ leaf: 'MR_RTMR_EXTEND', result: 've(guest-side-gpa)' });
  });

  it('with SEPT_VE_DISABLE a PENDING page is an EPT-violation TD exit (read, private, PENDING_EPT_VIOLATION), RIP at the TDCALL', () => {
    const td = tdGuest(`${extend(PENDING_2M + 0x80n, 0)}\n ${HALT}`, { attributes: TdAttributes.SEPT_VE_DISABLE });
    td.platform.module.host.memPageAug(gpaLevel(PENDING_2M, 1));
    runTd(td);
    const [exit] = td.trace.ofType('td-exit');
    expect(exit).toMatchObject({ reason: 'ept-violation', gpa: PENDING_2M, access: 'read', space: 'private', qual: 1n, eeqType: 'pending-ept-violation', septState: 'PENDING' });
    expect(td.trace.ofType('tdcall')).toEqual([expect.objectContaining({ leaf: 'MR_RTMR_EXTEND', result: 'td-exit(guest-side-gpa)', rip: exit!.rip })]);
    expect(td.platform.module.rtmr[0]!.equals(ZERO48)).toBe(true);
  });

  it('data on a page the VMM never added is an EPT-violation TD exit with no extended qualification', () => {
    const td = tdGuest(`${extend(PENDING_2M, 0)}\n ${HALT}`);
    runTd(td);
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ reason: 'ept-violation', gpa: PENDING_2M, access: 'read', space: 'private', qual: 1n, eeqType: 'none', eeq: 0n, septState: 'FREE' });
  });

  it('GPA 0 is a valid operand; the shared bit alone (GPA 2^47) is not', () => {
    const { td, outcome } = runTdGuest(`${extend(0n, 1)}\n mov r12, rax\n ${extend(1n << 47n, 1)}\n mov r13, rax\n ${HALT}`);
    expect(outcome.outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.r12, r.r13]).toEqual([0n, OPERAND_INVALID_RCX]);
    expect(td.platform.module.rtmr[1]!.equals(sha384(ZERO48, Buffer.from(td.platform.machine.memory.read(0n, 48))))).toBe(true);
  });

  it('data at the first GPA past RAM: an EPT-violation TD exit that tells the VMM it is outside RAM', () => {
    // The exit's outsideRam, as the VMM's policy receives it (td-module.ts TdExit), for the GPA
    // that is RAM's size exactly, and for the last page inside RAM (the driver hands an exit
    // outside RAM to onSharedEptViolation, as it has no private page there).
    const seen: EptViolationExit[] = [];
    const policy: TdxVmmPolicy = {
      ...honestTdxPolicy,
      onPrivateEptViolation(ctx, exit) { seen.push(exit); return honestTdxPolicy.onPrivateEptViolation(ctx, exit); },
      onSharedEptViolation(ctx, exit) { seen.push(exit); return honestTdxPolicy.onSharedEptViolation(ctx, exit); },
    };
    const inside = tdGuest(`${extend((32n << 20n) - 0x1000n, 0)}\n ${HALT}`, { policy });
    runTd(inside);
    const td = tdGuest(`${extend(32n << 20n, 0)}\n ${HALT}`, { policy });
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('fault');
    expect(outcome.reason).toMatch(/outside its RAM/);
    expect(td.trace.ofType('td-exit')[0]).toMatchObject({ gpa: 32n << 20n, space: 'private' });
    expect(seen.map((e) => [e.gpa, e.outsideRam])).toEqual([[(32n << 20n) - 0x1000n, false], [32n << 20n, true]]);
  });

  it('the RTMRs are part of the module state a snapshot keeps', () => {
    const { td } = runTdGuest(`${storeData(DATA, 7)}\n ${extend(DATA, 3)}\n ${HALT}`);
    const module = td.platform.module;
    const extended = module.rtmr[3]!;
    const saved = module.saveState();
    module.rtmr[3] = Buffer.alloc(48, 0xaa);
    module.loadState(saved);
    expect(module.rtmr[3]!.equals(extended)).toBe(true);
    expect(extended.equals(sha384(ZERO48, dataBytes(7)))).toBe(true);
  });
});
