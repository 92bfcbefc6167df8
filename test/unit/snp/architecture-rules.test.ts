// SEV-SNP rules pinned against their primary sources, one test per rule, the expected values
// taken from the source the test names (not from our code):
// - APM Vol. 2 §15.36 (read through the faithful Chinese translation in the code corpus, "APM-SEV"):
//   §15.36.3 RMP entry fields, §15.36.5 owners, §15.36.6 validation, §15.36.7 VMPL masks,
//   §15.36.10 access checks in priority order and error bits, §15.36.11 PSMASH and size
//   mismatch, §15.36.12 VMRUN page checks (cited by section and table title: the translation's
//   table numbers mix APM revisions, see README "The SEV-SNP model");
// - the return codes of each instruction as Microsoft's intrinsics document them (learn.microsoft.com
//   __pvalidate, __rmpadjust, __rmpupdate, __psmash: each names the APM instruction it wraps);
// - the formal model microsoft/verismo (source/verismo/src/arch/rmp/access_s.rs, mem/db_p.rs
//   op_rmpadjust), written against APM Vol. 3, for the order of RMPADJUST's checks;
// - AMD's SEV firmware, amd/AMD-ASPFW fw/psp_bl_uapps/sev_uapp/src/sev_mcmd.c
//   snp_mcmd_launch_update and sev_rmp.c rmp_entry_get_state, for SNP_LAUNCH_UPDATE.
import { describe, expect, it } from 'vitest';
import type { NativeTranslation } from '../../../src/native/binding.js';
import { checkAccess, NPF_BITS, VC_PAGE_NOT_VALIDATED, type AccessRequest, type GuestContext } from '../../../src/platform/snp/access-check.js';
import { PVALIDATE_FAIL_NOUPDATE, PVALIDATE_RC, decodePvalidateRegs, pvalidate, pvalidateFlags } from '../../../src/platform/snp/pvalidate.js';
import { RMP_INSN_RC, type RmpInsnRequest } from '../../../src/platform/snp/rmp-instruction.js';
import { rmpadjust, type RmpadjustRegs } from '../../../src/platform/snp/rmpadjust.js';
import { Rmp, VMPL_PERM, VMPL_PERM_ALL, type RmpEntry, type RmpPageSize } from '../../../src/platform/snp/rmp.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { Machine } from '../../../src/cpu/machine.js';
import { RFLAGS } from '../../../src/cpu/registers.js';

const MEMORY = 16n << 20n;
const T = 0x400000n;  // 2 MiB aligned
const ASID = 1;
const VMPL0: GuestContext = { asid: ASID, vmpl: 0 };
const VMPL1: GuestContext = { asid: ASID, vmpl: 1 };

function guestEntry(fields: Partial<RmpEntry> = {}): RmpEntry {
  return { assigned: true, pageSize: '4k', immutable: false, gpa: T, asid: ASID, validated: true, vmsa: false, vmplPerms: [VMPL_PERM_ALL, 0, 0, 0], ...fields };
}

function access(access: AccessRequest['access'], more: Partial<AccessRequest> = {}): AccessRequest {
  return { gpa: T, space: 'private', access, pageWalk: false, nptSize: '4k', ...more };
}

describe('guest accesses (APM Vol. 2 §15.36.10 "RMP Memory Access Checks")', () => {
  it('a private access to a page whose Validated is 0: #VC with error code PAGE_NOT_VALIDATED (0x404)', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ validated: false }));
    expect(VC_PAGE_NOT_VALIDATED).toBe(0x404n);
    for (const a of ['read', 'write', 'fetch'] as const) expect(checkAccess(rmp, access(a), VMPL0)).toEqual({ kind: 'vc', check: 'validated', errorCode: 0x404n });
  });

  it('priority: Page-Size fails before Validated, so an access failing both is NPF, not #VC (the section\'s own example)', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ validated: false }));
    const r = checkAccess(rmp, access('read', { nptSize: '2m' }), VMPL0);
    expect(r).toMatchObject({ kind: 'npf', check: 'page-size' });
    // Bit 35 SIZEM is only for PVALIDATE/RMPADJUST size mismatches; bit 31 RMP for every RMP violation.
    expect((r as { errorCode: bigint }).errorCode & (NPF_BITS.rmp | NPF_BITS.sizeMismatch)).toBe(NPF_BITS.rmp);
  });

  it('Reverse-Map: an entry whose Guest_Physical_Address is not the translated GPA fails with NPF, before Validated', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ gpa: T + 0x1000n, validated: false }));
    expect(checkAccess(rmp, access('read'), VMPL0)).toMatchObject({ kind: 'npf', check: 'reverse-map' });
  });

  it('Mutable: an Immutable page of the guest (pre-guest, not yet launched) fails with NPF', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ immutable: true, validated: false }));
    expect(checkAccess(rmp, access('read'), VMPL0)).toMatchObject({ kind: 'npf', check: 'mutable' });
  });

  it('C=0: a data write needs a hypervisor-owned page; a data read is not RMP-checked (the table has no C=0 read row)', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry());
    expect(checkAccess(rmp, access('read', { space: 'shared' }), VMPL0)).toEqual({ kind: 'ok' });
    const w = checkAccess(rmp, access('write', { space: 'shared' }), VMPL0);
    expect(w).toMatchObject({ kind: 'npf', check: 'shared-write-hv-owned' });
    // ENC (bit 34) is the effective C-bit: 0 here.
    expect((w as { errorCode: bigint }).errorCode & NPF_BITS.enc).toBe(0n);
  });
});

describe('VMPL permission masks (APM Vol. 2 §15.36.7 "VMPL Permission Mask Definition")', () => {
  it('Write without Read is illegal: any data access to such a page is #VMEXIT(NPF), the write too', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.write, 0, 0] }));
    for (const a of ['read', 'write'] as const) {
      const r = checkAccess(rmp, access(a), VMPL1);
      expect(r).toMatchObject({ kind: 'npf', check: 'vmpl-permission' });
      expect((r as { errorCode: bigint }).errorCode & (NPF_BITS.rmp | NPF_BITS.vmpl)).toBe(NPF_BITS.rmp | NPF_BITS.vmpl);
    }
    rmp.put4k(T, guestEntry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.write | VMPL_PERM.read, 0, 0] }));
    expect(checkAccess(rmp, access('write'), VMPL1)).toEqual({ kind: 'ok' });
  });

  it('bit values: Read 0, Write 1, Execute-User 2, Execute-Supervisor 3, Supervisor-Shadow-Stack 4', () => {
    expect(VMPL_PERM).toEqual({ read: 1, write: 2, execUser: 4, execSupervisor: 8, supervisorShadowStack: 16 });
  });
});

/** A translation of RAX that succeeded, to `gpa`. */
function mappedTo(gpa: bigint): NativeTranslation {
  return { status: 'ok', gpa, isPrivate: true, level: 1, writable: true, executable: true, userPage: false, pfError: 0 };
}
const unmapped: NativeTranslation = { status: 'page-fault', gpa: 0n, isPrivate: false, level: 4, writable: false, executable: false, userPage: false, pfError: 0 };

function insnRequest(gva: bigint, size: RmpPageSize, more: Partial<RmpInsnRequest> = {}): RmpInsnRequest {
  return { gva, size, cpl: 0, translation: mappedTo(gva), nptSizeAt: () => '4k', ...more };
}

describe('PVALIDATE (APM Vol. 2 §15.36.6, §15.36.11; MS __pvalidate)', () => {
  it('return codes: 0 success, 1 an input parameter is invalid, 6 the guest page and RMP entry page sizes do not match', () => {
    expect(PVALIDATE_RC).toEqual({ SUCCESS: 0, FAIL_INPUT: 1, FAIL_SIZEMISMATCH: 6 });
    // And the software code for CF=1 (Linux asm/sev.h: "Software defined (when rFlags.CF = 1)").
    expect(PVALIDATE_FAIL_NOUPDATE).toBe(255);
  });

  it('the address is rAX at the code\'s address size: RAX in 64-bit code, EAX in 32-bit, AX in 16-bit (LLVM X86InstrSNP.td PVALIDATE64/PVALIDATE32)', () => {
    const rax = 0xdead_beef_1234_5000n;
    expect(decodePvalidateRegs(rax, 0n, 1n, 64).gva).toBe(rax);
    expect(decodePvalidateRegs(rax, 0n, 1n, 32).gva).toBe(0x1234_5000n);
    expect(decodePvalidateRegs(rax, 0n, 1n, 16).gva).toBe(0x5000n);
    // Every bit of EAX / AX is kept, the low ones too (a 4K request's offset bits are not cleared here).
    const allOnes = 0xffff_ffff_ffff_ffffn;
    expect(decodePvalidateRegs(allOnes, 0n, 1n, 64).gva).toBe(allOnes);
    expect(decodePvalidateRegs(allOnes, 0n, 1n, 32).gva).toBe(0xffff_ffffn);
    expect(decodePvalidateRegs(allOnes, 0n, 1n, 16).gva).toBe(0xffffn);
    // Without a code size, 64-bit code (long mode, where the model's guests run).
    expect(decodePvalidateRegs(rax, 0n, 1n).gva).toBe(rax);
  });

  it('sets Validated and nothing else (§15.36.3: PVALIDATE writes only the Validated flag); again: rc 0 with "validated bit not changed" (CF=1)', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ validated: false, vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.read, 0, 0] }));
    const before = rmp.lookup(T);
    expect(pvalidate(rmp, VMPL0, { ...insnRequest(T, '4k'), validate: true })).toEqual({ kind: 'result', rc: 0, unchanged: false, gpa: T });
    expect(rmp.lookup(T)).toEqual({ ...before, validated: true });
    expect(pvalidate(rmp, VMPL0, { ...insnRequest(T, '4k'), validate: true })).toEqual({ kind: 'result', rc: 0, unchanged: true, gpa: T });
    expect(pvalidateFlags(0n, 0, true) & RFLAGS.CF).toBe(RFLAGS.CF);
  });

  it('§15.36.11 size mismatch: a 4K request on a 2MB RMP entry is #VMEXIT(NPF) with SIZEM (bit 35); a 2MB request on 4KB entries is FAIL_SIZEMISMATCH', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put2m(T, guestEntry({ pageSize: '2m', validated: false }));
    const npf = pvalidate(rmp, VMPL0, { ...insnRequest(T + 0x3000n, '4k', { nptSizeAt: () => '2m' }), validate: true });
    expect(npf).toMatchObject({ kind: 'npf', gpa: T + 0x3000n });
    expect((npf as { errorCode: bigint }).errorCode & (NPF_BITS.rmp | NPF_BITS.sizeMismatch)).toBe(NPF_BITS.rmp | NPF_BITS.sizeMismatch);
    const small = new Rmp(MEMORY);
    small.put4k(T, guestEntry({ validated: false }));
    expect(pvalidate(small, VMPL0, { ...insnRequest(T, '2m'), validate: true })).toMatchObject({ kind: 'result', rc: 6 });
    expect(small.lookup(T).validated).toBe(false);
  });

  it('§15.36.6: the nested page table counts too: 4K under a 2MB NPT mapping is NPF; 2MB under 4KB NPT mappings is an error returned to the guest', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ validated: false }));
    expect(pvalidate(rmp, VMPL0, { ...insnRequest(T, '4k', { nptSizeAt: () => '2m' }), validate: true })).toMatchObject({ kind: 'npf' });
    const big = new Rmp(MEMORY);
    big.put2m(T, guestEntry({ pageSize: '2m', validated: false }));
    expect(pvalidate(big, VMPL0, { ...insnRequest(T, '2m', { nptSizeAt: () => '4k' }), validate: true })).toMatchObject({ kind: 'result', rc: 6 });
    expect(pvalidate(big, VMPL0, { ...insnRequest(T, '2m', { nptSizeAt: () => '2m' }), validate: true })).toMatchObject({ kind: 'result', rc: 0 });
    expect(big.lookup(T + 0x1ff000n).validated).toBe(true);
  });

  it('a page the guest does not own (hypervisor-owned, or after the hypervisor reassigned it): NPF, Validated untouched (RMP Memory Access Checks)', () => {
    const rmp = new Rmp(MEMORY);
    expect(pvalidate(rmp, VMPL0, { ...insnRequest(T, '4k'), validate: true })).toMatchObject({ kind: 'npf', reason: 'guest-owned' });
    rmp.put4k(T, guestEntry({ asid: ASID + 1, validated: false }));
    expect(pvalidate(rmp, VMPL0, { ...insnRequest(T, '4k'), validate: true })).toMatchObject({ kind: 'npf', reason: 'guest-owned' });
    expect(rmp.lookup(T).validated).toBe(false);
  });
});

describe('RMPADJUST (APM Vol. 2 §15.36.7; MS __rmpadjust; verismo op_rmpadjust / RmpEntry::rmpadjust)', () => {
  const regs = (targetVmpl: number, perms: number, vmsa = false): RmpadjustRegs => ({ gva: T, size: '4k', targetVmpl, perms, vmsa });

  it('return codes: 0 success, 1 invalid input, 2 the current VMPL has insufficient permissions, 6 page sizes do not match', () => {
    expect(RMP_INSN_RC).toEqual({ SUCCESS: 0, FAIL_INPUT: 1, FAIL_PERMISSION: 2, FAIL_SIZEMISMATCH: 6 });
  });

  it('a VMPL cannot adjust itself or a more privileged VMPL: FAIL_PERMISSION from the registers alone, before RAX is translated or the RMP checked', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ validated: false }));  // unvalidated: a walk to it would be #VC
    for (const target of [0, 1]) {
      expect(rmpadjust(rmp, VMPL1, { ...insnRequest(T, '4k'), ...regs(target, VMPL_PERM.read) })).toEqual({ kind: 'result', rc: 2 });
      expect(rmpadjust(rmp, VMPL1, { ...insnRequest(T, '4k', { translation: unmapped }), ...regs(target, VMPL_PERM.read) })).toEqual({ kind: 'result', rc: 2 });
      expect(rmpadjust(new Rmp(MEMORY), VMPL1, { ...insnRequest(T, '4k'), ...regs(target, VMPL_PERM.read) })).toEqual({ kind: 'result', rc: 2 });
    }
    expect(rmp.lookup(T).vmplPerms).toEqual([VMPL_PERM_ALL, 0, 0, 0]);
  });

  it('cannot grant more than the current VMPL holds: VMPL1 without Write cannot give VMPL2 Write (the section\'s example)', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.read, 0, 0] }));
    expect(rmpadjust(rmp, VMPL1, { ...insnRequest(T, '4k'), ...regs(2, VMPL_PERM.read | VMPL_PERM.write) })).toMatchObject({ kind: 'result', rc: 2 });
    expect(rmpadjust(rmp, VMPL1, { ...insnRequest(T, '4k'), ...regs(2, VMPL_PERM.read) })).toMatchObject({ kind: 'result', rc: 0 });
    expect(rmp.lookup(T).vmplPerms).toEqual([VMPL_PERM_ALL, VMPL_PERM.read, VMPL_PERM.read, 0]);
  });

  it('the VMSA bit is honoured at VMPL0 only ("Ignored when the current VMPL != 0")', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, guestEntry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM_ALL, 0, 0] }));
    expect(rmpadjust(rmp, VMPL1, { ...insnRequest(T, '4k'), ...regs(2, VMPL_PERM.read, true) })).toMatchObject({ rc: 0 });
    expect(rmp.lookup(T).vmsa).toBe(false);
    expect(rmpadjust(rmp, VMPL0, { ...insnRequest(T, '4k'), ...regs(1, VMPL_PERM.read, true) })).toMatchObject({ rc: 0 });
    expect(rmp.lookup(T).vmsa).toBe(true);
  });

  it('§15.36.11 size mismatch applies to RMPADJUST too: 4K on a 2MB entry is NPF with SIZEM, 2MB on 4KB entries FAIL_SIZEMISMATCH; an unvalidated page is #VC 0x404', () => {
    const big = new Rmp(MEMORY);
    big.put2m(T, guestEntry({ pageSize: '2m' }));
    const npf = rmpadjust(big, VMPL0, { ...insnRequest(T, '4k', { nptSizeAt: () => '2m' }), ...regs(1, VMPL_PERM.read) });
    expect((npf as { errorCode: bigint }).errorCode & NPF_BITS.sizeMismatch).toBe(NPF_BITS.sizeMismatch);
    const small = new Rmp(MEMORY);
    small.put4k(T, guestEntry());
    expect(rmpadjust(small, VMPL0, { ...insnRequest(T, '2m'), ...regs(1, VMPL_PERM.read), size: '2m' })).toMatchObject({ kind: 'result', rc: 6 });
    small.put4k(T, guestEntry({ validated: false }));
    expect(rmpadjust(small, VMPL0, { ...insnRequest(T, '4k'), ...regs(1, VMPL_PERM.read) })).toMatchObject({ kind: 'fault', vector: 29, errorCode: 0x404n, cr2: T });
  });
});

describe('host RMP instructions (APM Vol. 2 §15.36.5/§15.36.6/§15.36.11; MS __rmpupdate, __psmash)', () => {
  const R = 0x400000n;

  it('RMPUPDATE assigning a page: VMPL0 gets every permission, the other VMPLs none, Validated 0 (§15.36.6 "all pages start unvalidated", §15.36.7)', () => {
    const vm = new Machine({ memoryBytes: MEMORY });
    const p = new SnpPlatform(vm);
    expect(p.rmpUpdate(R, { assigned: true, pageSize: '4k', gpa: R, asid: p.asid })).toMatchObject({ rc: 0 });
    expect(p.rmp.lookup(R)).toEqual({ assigned: true, pageSize: '4k', immutable: false, gpa: R, asid: p.asid, validated: false, vmsa: false, vmplPerms: [VMPL_PERM_ALL, 0, 0, 0] });
    vm.close();
  });

  it('RMPUPDATE of a validated page clears Validated, even when it rewrites the same owner and GPA (§15.36.6: deallocating, reassigning or remapping with RMPUPDATE makes the page unvalidated)', () => {
    const vm = new Machine({ memoryBytes: MEMORY });
    const p = new SnpPlatform(vm);
    p.rmpUpdate(R, { assigned: true, pageSize: '4k', gpa: R, asid: p.asid });
    p.rmp.setValidated(R, true);
    expect(p.rmpUpdate(R, { assigned: true, pageSize: '4k', gpa: R, asid: p.asid })).toMatchObject({ rc: 0 });
    expect(p.rmp.lookup(R).validated).toBe(false);
    vm.close();
  });

  it('RMPUPDATE: 2 for an immutable entry, 4 for overlapping 4KB and 2MB entries, 1 for an address not aligned to the new size', () => {
    const vm = new Machine({ memoryBytes: MEMORY });
    const p = new SnpPlatform(vm);
    p.rmpUpdate(R + 0x5000n, { assigned: true, pageSize: '4k', gpa: R + 0x5000n, asid: p.asid });
    expect(p.rmpUpdate(R, { assigned: true, pageSize: '2m', gpa: R, asid: p.asid })).toMatchObject({ rc: 4, result: 'FAIL_OVERLAP' });
    expect(p.rmpUpdate(R + 0x1000n, { assigned: true, pageSize: '2m', gpa: R, asid: p.asid })).toMatchObject({ rc: 1, result: 'FAIL_INPUT' });
    p.rmpUpdate(R + 0x6000n, { assigned: true, pageSize: '4k', immutable: true, gpa: R + 0x6000n, asid: p.asid });
    expect(p.rmpUpdate(R + 0x6000n, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 })).toMatchObject({ rc: 2, result: 'FAIL_PERMISSION' });
    vm.close();
  });

  it('PSMASH: 512 4KB entries with consecutive GPAs, Page_Size 0, every other field copied, Validated kept (§15.36.11)', () => {
    const vm = new Machine({ memoryBytes: MEMORY });
    const p = new SnpPlatform(vm);
    p.rmpUpdate(R, { assigned: true, pageSize: '2m', gpa: R, asid: p.asid });
    p.rmp.setValidated(R, true);
    p.rmp.adjustPermissions(R, 1, VMPL_PERM.read, true);
    expect(p.psmash(R)).toMatchObject({ rc: 0 });
    for (const i of [0n, 1n, 511n]) {
      expect(p.rmp.lookup(R + i * 0x1000n)).toEqual({ assigned: true, pageSize: '4k', immutable: false, gpa: R + i * 0x1000n, asid: p.asid, validated: true, vmsa: true, vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.read, 0, 0] });
    }
    vm.close();
  });

  it('PSMASH: 1 for an address not 2MB aligned; 7 (FAIL_BADADDR) where there is no 2MB entry to expand; nothing changes', () => {
    const vm = new Machine({ memoryBytes: MEMORY });
    const p = new SnpPlatform(vm);
    p.rmpUpdate(R, { assigned: true, pageSize: '4k', gpa: R, asid: p.asid });
    const before = p.rmp.lookup(R);
    expect(p.psmash(R)).toMatchObject({ rc: 7, result: 'FAIL_BADADDR' });
    expect(p.psmash(R + 0x200000n)).toMatchObject({ rc: 7, result: 'FAIL_BADADDR' });  // hypervisor-owned
    expect(p.psmash(R + 0x1000n)).toMatchObject({ rc: 1, result: 'FAIL_INPUT' });
    expect(p.rmp.lookup(R)).toEqual(before);
    vm.close();
  });
});
