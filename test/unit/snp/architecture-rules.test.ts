// SEV-SNP rules pinned against their primary sources, one test per rule, the expected values
// taken from the source the test names (not from our code):
// - APM Vol. 2 §15.36 (read through the faithful Chinese translation in the code corpus, "APM-SEV"):
//   Table 15-34 RMP entry fields, Table 15-35 owners, §15.36.6 validation, §15.36.7 VMPL masks,
//   Table 15-39 access checks in priority order, §15.36.10 error bits, §15.36.11 PSMASH,
//   Table 15-40 size mismatch, Table 15-41 VMRUN page checks;
// - the return codes of each instruction as Microsoft's intrinsics document them (learn.microsoft.com
//   __pvalidate, __rmpadjust, __rmpupdate, __psmash: each names the APM instruction it wraps);
// - the formal model microsoft/verismo (source/verismo/src/arch/rmp/access_s.rs, mem/db_p.rs
//   op_rmpadjust), written against APM Vol. 3, for the order of RMPADJUST's checks;
// - AMD's SEV firmware, amd/AMD-ASPFW fw/psp_bl_uapps/sev_uapp/src/sev_mcmd.c
//   snp_mcmd_launch_update and sev_rmp.c rmp_entry_get_state, for SNP_LAUNCH_UPDATE.
import { describe, expect, it } from 'vitest';
import type { NativeTranslation } from '../../../src/native/binding.js';
import { checkAccess, NPF_BITS, VC_PAGE_NOT_VALIDATED, type AccessRequest, type GuestContext } from '../../../src/platform/snp/access-check.js';
import { Rmp, VMPL_PERM, VMPL_PERM_ALL, type RmpEntry } from '../../../src/platform/snp/rmp.js';

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

describe('guest accesses (APM Vol. 2 §15.36.10, Table 15-39)', () => {
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

describe('VMPL permission masks (APM Vol. 2 §15.36.7, Table 15-36)', () => {
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
