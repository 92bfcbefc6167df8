// PVALIDATE and RMPADJUST as functions of the RMP, the guest context and the instruction's
// registers, without a guest: the checks and results of tdx-snp-architecture.md B2 (APM Vol. 2
// §15.36.10 "RMP Memory Access Checks", §15.36.11 "Page Size Mismatch Combinations") that the
// guest-level tests (test/guest/snp) cannot tell apart because their guests map every GVA to the
// same GPA, run at CPL0, and set only bit 0 of RCX/RDX.
import { describe, expect, it } from 'vitest';
import { RFLAGS } from '../../../src/cpu/registers.js';
import type { NativeTranslation } from '../../../src/native/binding.js';
import { NPF_BITS, type GuestContext } from '../../../src/platform/snp/access-check.js';
import { decodePvalidateRegs, pvalidate, pvalidateFlags, type PvalidateRequest } from '../../../src/platform/snp/pvalidate.js';
import { decodeRmpadjustRegs, rmpadjust, type RmpadjustRegs } from '../../../src/platform/snp/rmpadjust.js';
import { RMP_INSN_RC } from '../../../src/platform/snp/rmp-instruction.js';
import { Rmp, VMPL_PERM_ALL, type RmpEntry, type RmpPageSize } from '../../../src/platform/snp/rmp.js';

const MEMORY = 16n << 20n;
const T = 0x400000n;  // a 2 MiB-aligned GPA
const ASID = 1;
const VMPL0: GuestContext = { asid: ASID, vmpl: 0 };

/** A translation of RAX that succeeded, to `gpa`. */
function mappedTo(gpa: bigint): NativeTranslation {
  return { status: 'ok', gpa, isPrivate: true, level: 1, writable: true, executable: true, userPage: false, pfError: 0 };
}

function guestPage(gpa: bigint, size: RmpPageSize, fields: Partial<RmpEntry> = {}): RmpEntry {
  return { assigned: true, pageSize: size, immutable: false, gpa, asid: ASID, validated: false, vmsa: false, vmplPerms: [VMPL_PERM_ALL, 0, 0, 0], ...fields };
}

/** An RMP with 4 KiB guest pages at T..T+8 KiB (the first validated) and a 2 MiB guest page at T+2 MiB. */
function rmpWithGuestPages(): Rmp {
  const rmp = new Rmp(MEMORY);
  rmp.put4k(T, guestPage(T, '4k', { validated: true }));
  rmp.put4k(T + 0x1000n, guestPage(T + 0x1000n, '4k'));
  rmp.put2m(T + 0x200000n, guestPage(T + 0x200000n, '2m'));
  return rmp;
}

function pvalidateRequest(gva: bigint, size: RmpPageSize, validate: boolean, more: Partial<PvalidateRequest> = {}): PvalidateRequest {
  return { gva, size, validate, cpl: 0, translation: mappedTo(gva), nptSizeAt: (gpa) => (gpa >= T + 0x200000n ? '2m' : '4k'), ...more };
}

describe('PVALIDATE', () => {
  it('at CPL>0: #GP(0), Validated unchanged (APM Vol. 3 PVALIDATE: CPL must be 0; MS __pvalidate: "kernel mode only")', () => {
    const rmp = rmpWithGuestPages();
    for (const cpl of [1, 3]) {
      expect(pvalidate(rmp, VMPL0, pvalidateRequest(T + 0x1000n, '4k', true, { cpl }))).toMatchObject({ kind: 'fault', vector: 13, errorCode: 0n });
    }
    expect(rmp.lookup(T + 0x1000n).validated).toBe(false);
  });

  it('below VMPL0: #GP(0) before the other checks, Validated unchanged (Linux fcd042e86422: "PVALIDATE can only be performed at VMPL0"; verismo op_pvalidate)', () => {
    const rmp = rmpWithGuestPages();
    rmp.adjustPermissions(T + 0x1000n, 1, VMPL_PERM_ALL, false);
    for (const vmpl of [1, 2, 3] as const) {
      expect(pvalidate(rmp, { asid: ASID, vmpl }, pvalidateRequest(T + 0x1000n, '4k', true))).toMatchObject({ kind: 'fault', vector: 13, errorCode: 0n });
      // Even a request that would be FAIL_INPUT at VMPL0.
      expect(pvalidate(rmp, { asid: ASID, vmpl }, pvalidateRequest(T + 0x1000n, '2m', true))).toMatchObject({ kind: 'fault', vector: 13 });
    }
    expect(rmp.lookup(T + 0x1000n).validated).toBe(false);
  });

  it('a page-table page of the walk that the guest does not own: NPF on that page with the page-table bit; one it owns and validated: retry (the gate was stale)', () => {
    const rmp = rmpWithGuestPages();
    const ptPage = T + 0x5000n;  // hypervisor-owned
    const blocked = (gpa: bigint): NativeTranslation => ({ status: 'table-blocked', gpa, isPrivate: true, level: 2, writable: false, executable: false, userPage: false, pfError: 0 });
    const out = pvalidate(rmp, VMPL0, pvalidateRequest(0x7000000000n, '4k', true, { translation: blocked(ptPage) }));
    expect(out).toMatchObject({ kind: 'npf', gpa: ptPage, reason: 'guest-owned' });
    expect((out as { errorCode: bigint }).errorCode & (NPF_BITS.pageTable | NPF_BITS.finalGpa)).toBe(NPF_BITS.pageTable);
    expect(pvalidate(rmp, VMPL0, pvalidateRequest(0x7000000000n, '4k', true, { translation: blocked(T) }))).toEqual({ kind: 'retry', gpa: T });
  });

  it('a page-table page of the walk that the guest owns but has not validated: #VC 0x404 with CR2 = RAX, as for a load (B3: "When PVALIDATE\'s own page walk goes through an unvalidated guest page-table page, it gets #VC 0x404"); the target is untouched', () => {
    const rmp = rmpWithGuestPages();
    const ptPage = T + 0x1000n;  // guest-owned, not validated
    const blocked: NativeTranslation = { status: 'table-blocked', gpa: ptPage, isPrivate: true, level: 2, writable: false, executable: false, userPage: false, pfError: 0 };
    expect(pvalidate(rmp, VMPL0, pvalidateRequest(0x7000000000n, '4k', true, { translation: blocked })))
      .toMatchObject({ kind: 'fault', vector: 29, errorCode: 0x404n, cr2: 0x7000000000n });
    expect(rmp.lookup(ptPage).validated).toBe(false);
  });

  it('2M request with a GVA that is not 2M aligned: FAIL_INPUT, even when it maps to a 2M-aligned GPA (B2)', () => {
    const rmp = rmpWithGuestPages();
    const out = pvalidate(rmp, VMPL0, pvalidateRequest(0x7000001000n, '2m', true, { translation: mappedTo(T + 0x200000n) }));
    expect(out).toEqual({ kind: 'result', rc: RMP_INSN_RC.FAIL_INPUT, unchanged: false });
    expect(rmp.lookup(T + 0x200000n).validated).toBe(false);
  });

  it('2M request with a 2M-aligned GVA that maps to a GPA that is not 2M aligned: FAIL_INPUT (U: the GVA rule mirrored on the GPA)', () => {
    const rmp = rmpWithGuestPages();
    const out = pvalidate(rmp, VMPL0, pvalidateRequest(0x7000000000n, '2m', true, { translation: mappedTo(T + 0x201000n) }));
    expect(out).toMatchObject({ kind: 'result', rc: RMP_INSN_RC.FAIL_INPUT });
    expect(rmp.lookup(T + 0x200000n).validated).toBe(false);
  });

  it("GVA not mapped: #PF with the walk's error code and CR2 = RAX", () => {
    const rmp = rmpWithGuestPages();
    const notPresentWrite = 0x2;
    const translation: NativeTranslation = { status: 'page-fault', gpa: 0n, isPrivate: false, level: 4, writable: false, executable: false, userPage: false, pfError: notPresentWrite };
    expect(pvalidate(rmp, VMPL0, pvalidateRequest(0x7000000000n, '4k', true, { translation })))
      .toMatchObject({ kind: 'fault', vector: 14, errorCode: BigInt(notPresentWrite), cr2: 0x7000000000n });
  });

  it('a GPA the RMP does not cover: NPF from the RMP-Covered check, with the RMP bit (RMP Memory Access Checks)', () => {
    const rmp = rmpWithGuestPages();
    const out = pvalidate(rmp, VMPL0, pvalidateRequest(MEMORY + 0x1000n, '4k', true));
    expect(out).toMatchObject({ kind: 'npf', gpa: MEMORY + 0x1000n, reason: 'rmp-covered' });
    expect((out as { errorCode: bigint }).errorCode & NPF_BITS.rmp).toBe(NPF_BITS.rmp);
  });

  it('NPF error codes of its own RMP checks (EXITINFO1, B3): RMP bit 31 and final-GPA bit 32, never page-table bit 33; the ownership and size checks of the private target also P (bit 0, the nested page is present: a protection fault, as in a #PF error code) and ENC (bit 34, the effective C-bit)', () => {
    const rmp = rmpWithGuestPages();
    const notCovered = pvalidate(rmp, VMPL0, pvalidateRequest(MEMORY + 0x1000n, '4k', true)) as { errorCode: bigint };
    expect(notCovered.errorCode & (NPF_BITS.rmp | NPF_BITS.finalGpa | NPF_BITS.pageTable)).toBe(NPF_BITS.rmp | NPF_BITS.finalGpa);
    const targetBits = NPF_BITS.present | NPF_BITS.rmp | NPF_BITS.finalGpa | NPF_BITS.enc;
    // A hypervisor-owned page (the Guest-Owned check).
    const notOwned = pvalidate(rmp, VMPL0, pvalidateRequest(T + 0x5000n, '4k', true));
    expect(notOwned).toMatchObject({ kind: 'npf', gpa: T + 0x5000n, reason: 'guest-owned' });
    expect((notOwned as { errorCode: bigint }).errorCode & (targetBits | NPF_BITS.pageTable | NPF_BITS.sizeMismatch)).toBe(targetBits);
    // A 4K request inside the 2 MiB entry: the same bits and SIZEM (bit 35).
    const sizem = pvalidate(rmp, VMPL0, pvalidateRequest(T + 0x201000n, '4k', true));
    expect(sizem).toMatchObject({ kind: 'npf', gpa: T + 0x201000n, reason: 'size-mismatch' });
    expect((sizem as { errorCode: bigint }).errorCode & (targetBits | NPF_BITS.pageTable | NPF_BITS.sizeMismatch)).toBe(targetBits | NPF_BITS.sizeMismatch);
  });

  it('validates only the entry RAX translates to', () => {
    const rmp = rmpWithGuestPages();
    expect(pvalidate(rmp, VMPL0, pvalidateRequest(0x7000000000n, '4k', true, { translation: mappedTo(T + 0x1000n) })))
      .toEqual({ kind: 'result', rc: 0, unchanged: false, gpa: T + 0x1000n });
    expect(rmp.lookup(T + 0x1000n).validated).toBe(true);
    expect(rmp.lookup(T).validated).toBe(true);
  });

  it('rescinds a 2M page as a whole', () => {
    const rmp = rmpWithGuestPages();
    rmp.setValidated(T + 0x200000n, true);
    expect(pvalidate(rmp, VMPL0, pvalidateRequest(T + 0x200000n, '2m', false))).toMatchObject({ kind: 'result', rc: 0, unchanged: false });
    expect(rmp.lookup(T + 0x3ff000n).validated).toBe(false);
  });

  it('only bit 0 of RCX (page size) and of RDX (validate) count (B2; the other bits are ignored, U)', () => {
    expect(decodePvalidateRegs(T, 2n, 2n)).toEqual({ gva: T, size: '4k', validate: false });
    expect(decodePvalidateRegs(T, 3n, 3n)).toEqual({ gva: T, size: '2m', validate: true });
  });

  it('flags: ZF and PF from EAX, CF=1 only for a success that changed nothing, other flags kept (B2)', () => {
    const others = RFLAGS.ZF | RFLAGS.CF | RFLAGS.PF | (1n << 9n);  // stale status flags and IF
    // SUCCESS (0): ZF=1, PF=1 (no bits set: even parity).
    expect(pvalidateFlags(others, 0, false) & (RFLAGS.ZF | RFLAGS.PF | RFLAGS.CF)).toBe(RFLAGS.ZF | RFLAGS.PF);
    expect(pvalidateFlags(0n, 0, true) & RFLAGS.CF).toBe(RFLAGS.CF);
    // FAIL_INPUT (1): one bit set, odd parity: PF=0.
    expect(pvalidateFlags(others, RMP_INSN_RC.FAIL_INPUT, false) & (RFLAGS.ZF | RFLAGS.PF | RFLAGS.CF)).toBe(0n);
    // FAIL_SIZEMISMATCH (6 = 0b110): even parity, PF=1.
    expect(pvalidateFlags(0n, RMP_INSN_RC.FAIL_SIZEMISMATCH, false) & (RFLAGS.ZF | RFLAGS.PF | RFLAGS.CF)).toBe(RFLAGS.PF);
    expect(pvalidateFlags(others, 0, false) & (1n << 9n)).toBe(1n << 9n);
  });

  it('flags: SF, OF and AF are 0 after every return code, whatever they were before (B2: "OF, ZF, AF, PF and SF are set based on the return code"; every code is a small positive EAX)', () => {
    const stale = RFLAGS.SF | RFLAGS.OF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.PF | RFLAGS.CF;
    for (const rc of [RMP_INSN_RC.SUCCESS, RMP_INSN_RC.FAIL_INPUT, RMP_INSN_RC.FAIL_SIZEMISMATCH]) {
      for (const unchanged of [false, true]) {
        expect(pvalidateFlags(stale, rc, unchanged) & (RFLAGS.SF | RFLAGS.OF | RFLAGS.AF)).toBe(0n);
        expect(pvalidateFlags(0n, rc, unchanged) & (RFLAGS.SF | RFLAGS.OF | RFLAGS.AF)).toBe(0n);
      }
    }
    // CF=1 only for a success that changed nothing: a failure with "unchanged" set has CF=0.
    expect(pvalidateFlags(stale, RMP_INSN_RC.FAIL_INPUT, true) & RFLAGS.CF).toBe(0n);
  });
});

function rmpadjustRequest(gva: bigint, regs: Partial<RmpadjustRegs>, more: Partial<PvalidateRequest> = {}) {
  return { gva, size: '4k' as const, targetVmpl: 1, perms: 0, vmsa: false, cpl: 0, translation: mappedTo(gva), nptSizeAt: () => '4k' as const, ...regs, ...more };
}

describe('RMPADJUST', () => {
  it('at CPL>0: #GP(0), the permissions unchanged', () => {
    const rmp = rmpWithGuestPages();
    expect(rmpadjust(rmp, VMPL0, rmpadjustRequest(T, { perms: 1 }, { cpl: 3 }))).toMatchObject({ kind: 'fault', vector: 13 });
    expect(rmp.lookup(T).vmplPerms).toEqual([VMPL_PERM_ALL, 0, 0, 0]);
  });

  it('sets the target VMPL only; VMPL3 is the last that exists (B2: RDX[7:0] target VMPL)', () => {
    const rmp = rmpWithGuestPages();
    expect(rmpadjust(rmp, VMPL0, rmpadjustRequest(T, { targetVmpl: 3, perms: 0x5 }))).toMatchObject({ kind: 'result', rc: 0 });
    expect(rmp.lookup(T).vmplPerms).toEqual([VMPL_PERM_ALL, 0, 0, 0x5]);
    expect(rmpadjust(rmp, VMPL0, rmpadjustRequest(T, { targetVmpl: 4, perms: 0x1 }))).toMatchObject({ rc: RMP_INSN_RC.FAIL_INPUT });
  });

  it('a permission bit that does not exist (above b4 supervisor shadow stack): FAIL_INPUT (U)', () => {
    const rmp = rmpWithGuestPages();
    expect(rmpadjust(rmp, VMPL0, rmpadjustRequest(T, { perms: 0x20 }))).toMatchObject({ rc: RMP_INSN_RC.FAIL_INPUT });
    expect(rmp.lookup(T).vmplPerms).toEqual([VMPL_PERM_ALL, 0, 0, 0]);
  });

  it('decodes RDX: [7:0] target VMPL, [15:8] permission mask, [16] VMSA (B2)', () => {
    expect(decodeRmpadjustRegs(T, 1n, 0x1_1f_02n)).toEqual({ gva: T, size: '2m', targetVmpl: 2, perms: 0x1f, vmsa: true });
    expect(decodeRmpadjustRegs(T, 0n, 0x0_f0_04n)).toEqual({ gva: T, size: '4k', targetVmpl: 4, perms: 0xf0, vmsa: false });
    expect(decodeRmpadjustRegs(T, 0n, 0x2_00_01n)).toMatchObject({ vmsa: false });
  });
});
