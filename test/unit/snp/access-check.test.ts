// The RMP checks of a guest access (APM Vol. 2 §15.36.10 "RMP Memory Access Checks"; tdx-snp-architecture.md B3)
// on entries the guest-level tests do not build: another guest's page, VMPL permissions below
// VMPL0, a PSMASHed region under a 2 MiB nested mapping, an immutable 2 MiB page.
import { describe, expect, it } from 'vitest';
import { checkAccess, failedCheck, NPF_BITS, type AccessRequest, type GuestContext } from '../../../src/platform/snp/access-check.js';
import { classifyTarget } from '../../../src/platform/snp/rmp-legality.js';
import { Rmp, VMPL_PERM, VMPL_PERM_ALL, type RmpEntry } from '../../../src/platform/snp/rmp.js';
import { Machine } from '../../../src/cpu/machine.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';

const MEMORY = 16n << 20n;
const T = 0x400000n;
const VMPL0: GuestContext = { asid: 1, vmpl: 0 };

function entry(fields: Partial<RmpEntry> = {}): RmpEntry {
  return { assigned: true, pageSize: '4k', immutable: false, gpa: T, asid: 1, validated: true, vmsa: false, vmplPerms: [VMPL_PERM_ALL, 0, 0, 0], ...fields };
}

function privateAccess(access: AccessRequest['access'], more: Partial<AccessRequest> = {}): AccessRequest {
  return { gpa: T, space: 'private', access, pageWalk: false, nptSize: '4k', ...more };
}

describe('guest access checks', () => {
  it("another guest's page (assigned, other ASID): NPF from the Guest-Owned check, before Validated", () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, entry({ asid: 2 }));
    expect(checkAccess(rmp, privateAccess('read'), VMPL0)).toMatchObject({ kind: 'npf', check: 'guest-owned' });
    rmp.put4k(T, entry({ asid: 2, validated: false }));
    expect(checkAccess(rmp, privateAccess('read'), VMPL0)).toMatchObject({ kind: 'npf', check: 'guest-owned' });
    // Not assigned, though the VMM wrote the guest's ASID into it (RMPUPDATE takes any ASID): not the guest's.
    rmp.put4k(T, entry({ assigned: false }));
    expect(checkAccess(rmp, privateAccess('read'), VMPL0)).toMatchObject({ kind: 'npf', check: 'guest-owned' });
    rmp.put4k(T, entry());
    expect(checkAccess(rmp, privateAccess('read'), VMPL0)).toEqual({ kind: 'ok' });
  });

  it('Reverse-Map compares the page of the access, not its byte: any offset in a 4 KiB entry\'s page, or in a 2 MiB entry\'s region, passes (§15.36.10: the entry\'s Guest_Physical_Address is the GPA of the page it maps)', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, entry());
    for (const offset of [0x1n, 0x7ffn, 0xfffn]) {
      expect(checkAccess(rmp, privateAccess('read', { gpa: T + offset }), VMPL0)).toEqual({ kind: 'ok' });
    }
    rmp.put2m(T + 0x200000n, entry({ pageSize: '2m', gpa: T + 0x200000n }));
    for (const offset of [0x1n, 0x3fffn, 0x1fffffn]) {
      expect(checkAccess(rmp, privateAccess('write', { gpa: T + 0x200000n + offset, nptSize: '2m' }), VMPL0)).toEqual({ kind: 'ok' });
    }
  });

  it('VMPL permissions: a fetch needs execute-supervisor, a write needs write (§15.36.7, §15.36.10); failures set the VMPL bit', () => {
    const rmp = new Rmp(MEMORY);
    const vmpl1: GuestContext = { asid: 1, vmpl: 1 };
    rmp.put4k(T, entry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.read | VMPL_PERM.execUser, 0, 0] }));
    expect(checkAccess(rmp, privateAccess('read'), vmpl1)).toEqual({ kind: 'ok' });
    const fetch = checkAccess(rmp, privateAccess('fetch'), vmpl1);
    expect(fetch).toMatchObject({ kind: 'npf', check: 'vmpl-permission' });
    expect((fetch as { errorCode: bigint }).errorCode & (NPF_BITS.vmpl | NPF_BITS.rmp | NPF_BITS.fetch)).toBe(NPF_BITS.vmpl | NPF_BITS.rmp | NPF_BITS.fetch);
    expect(checkAccess(rmp, privateAccess('write'), vmpl1)).toMatchObject({ kind: 'npf', check: 'vmpl-permission' });
    rmp.put4k(T, entry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.read | VMPL_PERM.execSupervisor, 0, 0] }));
    expect(checkAccess(rmp, privateAccess('fetch'), vmpl1)).toEqual({ kind: 'ok' });
  });

  // APM Vol. 2 §15.36.7 "VMPL Permission Mask Definition": bit 2 Execute-User, "0:
  // execution at CPL 3 causes #VMEXIT(NPF)"; bit 3 Execute-Supervisor, the same for CPL < 3.
  it.each([
    ['ExeU only', VMPL_PERM.read | VMPL_PERM.execUser, [false, false, false, true]],
    ['ExeS only', VMPL_PERM.read | VMPL_PERM.execSupervisor, [true, true, true, false]],
    ['both', VMPL_PERM.read | VMPL_PERM.execUser | VMPL_PERM.execSupervisor, [true, true, true, true]],
    ['neither', VMPL_PERM.read, [false, false, false, false]],
  ] as const)('VMPL1 mask with %s: a fetch at CPL 3 needs Execute-User, at CPL 0-2 Execute-Supervisor', (_what, perms, allowedAtCpl) => {
    const rmp = new Rmp(MEMORY);
    const vmpl1: GuestContext = { asid: 1, vmpl: 1 };
    rmp.put4k(T, entry({ vmplPerms: [VMPL_PERM_ALL, perms, 0, 0] }));
    const fetchAllowed = [0, 1, 2, 3].map((cpl) => checkAccess(rmp, privateAccess('fetch', { cpl }), vmpl1).kind === 'ok');
    expect(fetchAllowed).toEqual(allowedAtCpl);
    // Data accesses do not depend on the CPL: Read alone decides a read.
    expect([0, 3].map((cpl) => checkAccess(rmp, privateAccess('read', { cpl }), vmpl1).kind)).toEqual(['ok', 'ok']);
  });

  it('a fetch refused for its CPL is an NPF of the VMPL check, with the fetch, RMP and VMPL bits', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, entry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.read | VMPL_PERM.execSupervisor, 0, 0] }));
    const r = checkAccess(rmp, privateAccess('fetch', { cpl: 3 }), { asid: 1, vmpl: 1 });
    expect(r).toEqual({ kind: 'npf', check: 'vmpl-permission', errorCode: NPF_BITS.present | NPF_BITS.fetch | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp | NPF_BITS.vmpl });
  });

  it('NPF error code: present, write/fetch as the access, final-GPA or page-table, ENC for private accesses (B3)', () => {
    const rmp = new Rmp(MEMORY);  // T hypervisor-owned: every private access fails Guest-Owned
    const code = (req: AccessRequest) => (checkAccess(rmp, req, VMPL0) as { errorCode: bigint }).errorCode;
    expect(code(privateAccess('read'))).toBe(NPF_BITS.present | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp);
    expect(code(privateAccess('write'))).toBe(NPF_BITS.present | NPF_BITS.write | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp);
    expect(code(privateAccess('fetch'))).toBe(NPF_BITS.present | NPF_BITS.fetch | NPF_BITS.finalGpa | NPF_BITS.enc | NPF_BITS.rmp);
    expect(code(privateAccess('read', { pageWalk: true }))).toBe(NPF_BITS.present | NPF_BITS.pageTable | NPF_BITS.enc | NPF_BITS.rmp);
    rmp.put4k(T, entry());
    expect(code({ gpa: T, space: 'shared', access: 'write', pageWalk: false, nptSize: '4k' })).toBe(NPF_BITS.present | NPF_BITS.write | NPF_BITS.finalGpa | NPF_BITS.rmp);
  });

  it('failedCheck names the check checkAccess reports, for every kind of entry and access', () => {
    const rmp = new Rmp(MEMORY);
    const entries: (RmpEntry | undefined)[] = [
      undefined, entry(), entry({ asid: 2 }), entry({ gpa: T + 0x1000n }), entry({ immutable: true }), entry({ validated: false }),
      entry({ vmplPerms: [VMPL_PERM.write, 0, 0, 0] }), entry({ vmplPerms: [VMPL_PERM.read | VMPL_PERM.execUser, 0, 0, 0] }), entry({ assigned: false, validated: true }),
    ];
    let failures = 0;
    for (const e of entries) {
      rmp.put4k(T, e ?? entry({ assigned: false, validated: false }));
      for (const space of ['private', 'shared'] as const) {
        for (const access of ['read', 'write', 'fetch'] as const) {
          for (const more of [{}, { nptSize: '2m' as const }, { cpl: 3 }, { pageWalk: true }, { gpa: MEMORY }]) {
            const req = privateAccess(access, { space, ...more });
            const result = checkAccess(rmp, req, VMPL0);
            expect(failedCheck(rmp, req, VMPL0)).toBe(result.kind === 'ok' ? undefined : result.check);
            if (result.kind !== 'ok') failures++;
          }
        }
      }
    }
    expect(failures).toBeGreaterThan(100);
  });

  it('NPF_BITS are the APM EXITINFO1 positions (B3)', () => {
    expect(NPF_BITS).toEqual({
      present: 1n, write: 2n, user: 4n, fetch: 16n, rmp: 1n << 31n, finalGpa: 1n << 32n, pageTable: 1n << 33n, enc: 1n << 34n, sizeMismatch: 1n << 35n, vmpl: 1n << 36n,
    });
  });

  it('shared reads are not RMP-checked; shared writes need a hypervisor-owned page (§15.36.10)', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, entry());
    expect(checkAccess(rmp, { gpa: T, space: 'shared', access: 'read', pageWalk: false, nptSize: '4k' }, VMPL0)).toEqual({ kind: 'ok' });
    expect(checkAccess(rmp, { gpa: T, space: 'shared', access: 'write', pageWalk: false, nptSize: '4k' }, VMPL0)).toMatchObject({ kind: 'npf', check: 'shared-write-hv-owned' });
    expect(checkAccess(rmp, { gpa: T + 0x1000n, space: 'shared', access: 'write', pageWalk: false, nptSize: '4k' }, VMPL0)).toEqual({ kind: 'ok' });
  });

  it('a shared write through a 2 MiB nested mapping of a PSMASHed guest region: NPF (every 4K entry under it must be hypervisor-owned)', () => {
    const vm = new Machine({ memoryBytes: MEMORY });
    const p = new SnpPlatform(vm);
    expect(p.rmpUpdate(T, { assigned: true, pageSize: '2m', gpa: T, asid: p.asid }).rc).toBe(0);
    expect(p.psmash(T).rc).toBe(0);
    const sharedWrite: AccessRequest = { gpa: T, space: 'shared', access: 'write', pageWalk: false, nptSize: '2m' };
    expect(checkAccess(p.rmp, sharedWrite, p.ctx)).toMatchObject({ kind: 'npf', check: 'shared-write-hv-owned' });
    expect(p.rmpUpdate(T, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 }).rc).toBe(0);  // the first page shared again
    expect(checkAccess(p.rmp, sharedWrite, p.ctx)).toMatchObject({ kind: 'npf', check: 'shared-write-hv-owned' });
    expect(checkAccess(p.rmp, { ...sharedWrite, nptSize: '4k' }, p.ctx)).toEqual({ kind: 'ok' });
    vm.close();
  });

  it('a 2 MiB entry whose GPA is not the 2 MiB page the access maps: NPF from the Reverse-Map check, before Validated (§15.36.10)', () => {
    // The Reverse-Map check compares the entry's Guest_Physical_Address with the GPA of the access,
    // for a 2 MiB entry too: a 2 MiB page the VMM assigned at another GPA is not this GPA's page.
    const rmp = new Rmp(MEMORY);
    const base = 0x600000n;
    rmp.put2m(base, entry({ pageSize: '2m', gpa: base + 0x200000n, validated: false }));
    for (const offset of [0n, 0x1234n, 0x1ff000n]) {
      expect(checkAccess(rmp, privateAccess('read', { gpa: base + offset, nptSize: '2m' }), VMPL0)).toMatchObject({ kind: 'npf', check: 'reverse-map' });
    }
    rmp.put2m(base, entry({ pageSize: '2m', gpa: base, validated: false }));
    expect(checkAccess(rmp, privateAccess('read', { gpa: base + 0x1234n, nptSize: '2m' }), VMPL0)).toMatchObject({ kind: 'vc', check: 'validated' });
  });

  it('the checks come in the APM order: Reverse-Map before Mutable before Page-Size, Validated (#VC) before the VMPL permissions (§15.36.10; B3)', () => {
    const rmp = new Rmp(MEMORY);
    // An immutable page at another GPA: both Reverse-Map and Mutable fail; Reverse-Map is reported.
    rmp.put4k(T, entry({ immutable: true, gpa: T + 0x1000n }));
    expect(checkAccess(rmp, privateAccess('read'), VMPL0)).toMatchObject({ kind: 'npf', check: 'reverse-map' });
    // An immutable 4 KiB page under a 2 MiB nested mapping: Mutable and Page-Size both fail; Mutable
    // comes first in Table 15-39 (RMP-Covered, Guest-Owned, Reverse-Map, Mutable, Page-Size).
    rmp.put4k(T, entry({ immutable: true }));
    expect(checkAccess(rmp, privateAccess('read', { nptSize: '2m' }), VMPL0)).toMatchObject({ kind: 'npf', check: 'mutable' });
    expect(failedCheck(rmp, privateAccess('write', { nptSize: '2m' }), VMPL0)).toBe('mutable');
    // A page neither validated nor permitted to VMPL1: the #VC comes first, the guest sees it.
    rmp.put4k(T, entry({ validated: false, vmplPerms: [VMPL_PERM_ALL, 0, 0, 0] }));
    for (const access of ['read', 'write', 'fetch'] as const) {
      expect(checkAccess(rmp, privateAccess(access), { asid: 1, vmpl: 1 })).toEqual({ kind: 'vc', check: 'validated', errorCode: 0x404n });
    }
  });

  it('a private access past the end of the RMP fails RMP-Covered, the first check (§15.36.10)', () => {
    const rmp = new Rmp(MEMORY);
    for (const access of ['read', 'write', 'fetch'] as const) {
      expect(checkAccess(rmp, privateAccess(access, { gpa: MEMORY + 0x1000n }), VMPL0)).toMatchObject({ kind: 'npf', check: 'rmp-covered' });
    }
    // A shared write there is not RMP-checked against an entry: no page of the RMP is assigned there.
    expect(checkAccess(rmp, { gpa: MEMORY + 0x1000n, space: 'shared', access: 'write', pageWalk: false, nptSize: '4k' }, VMPL0)).toEqual({ kind: 'ok' });
  });

  it('Write without Read refuses data accesses only: an instruction fetch is decided by the execute bits (§15.36.7)', () => {
    // APM Vol. 2 §15.36.7, after the VMPL permission mask table: Write without Read is illegal and
    // "a data access to a page so configured causes #VMEXIT(NPF)"; an instruction fetch is not a
    // data access and needs only Execute-Supervisor (CPL < 3) or Execute-User (CPL 3).
    const rmp = new Rmp(MEMORY);
    const vmpl1: GuestContext = { asid: 1, vmpl: 1 };
    rmp.put4k(T, entry({ vmplPerms: [VMPL_PERM_ALL, VMPL_PERM.write | VMPL_PERM.execSupervisor, 0, 0] }));
    expect(checkAccess(rmp, privateAccess('fetch'), vmpl1)).toEqual({ kind: 'ok' });
    expect(checkAccess(rmp, privateAccess('fetch', { cpl: 3 }), vmpl1)).toMatchObject({ kind: 'npf', check: 'vmpl-permission' });
    expect(checkAccess(rmp, privateAccess('read'), vmpl1)).toMatchObject({ kind: 'npf', check: 'vmpl-permission' });
    expect(checkAccess(rmp, privateAccess('write'), vmpl1)).toMatchObject({ kind: 'npf', check: 'vmpl-permission' });
  });

  it('a region whose last guest page went back to the hypervisor is hypervisor-owned again', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(T, entry());
    rmp.put4k(T + 0x1000n, { ...entry(), assigned: false, asid: 0, immutable: true, validated: false, gpa: 0n, vmplPerms: [0, 0, 0, 0] });
    expect(rmp.regionHypervisorOwned(T)).toBe(false);
    rmp.put4k(T, { assigned: false, pageSize: '4k', immutable: false, gpa: 0n, asid: 0, validated: false, vmsa: false, vmplPerms: [0, 0, 0, 0] });
    expect(rmp.regionHypervisorOwned(T)).toBe(true);
  });
});

describe('RMP coverage and immutable 2 MiB entries (host operations)', () => {
  it('the RMP covers [0, memory): the first byte after it is not covered', () => {
    const rmp = new Rmp(MEMORY);
    expect(rmp.covers(MEMORY - 0x1000n)).toBe(true);
    expect(rmp.covers(MEMORY)).toBe(false);
    expect(classifyTarget(rmp, 'rmpupdate-4k', MEMORY)).toBe('misaligned');
  });

  it('an immutable 2 MiB entry refuses RMPUPDATE and PSMASH with FAIL_PERMISSION, and stays as it was', () => {
    const vm = new Machine({ memoryBytes: MEMORY });
    const p = new SnpPlatform(vm);
    expect(p.rmpUpdate(T, { assigned: true, pageSize: '2m', immutable: true, gpa: T, asid: p.asid }).rc).toBe(0);
    const before = p.rmp.lookup(T);
    expect(p.rmpUpdate(T, { assigned: false, pageSize: '2m', gpa: 0n, asid: 0 })).toMatchObject({ result: 'FAIL_PERMISSION', state: 'immutable' });
    expect(p.rmpUpdate(T + 0x3000n, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 })).toMatchObject({ result: 'FAIL_PERMISSION', state: 'immutable' });
    expect(p.psmash(T)).toMatchObject({ result: 'FAIL_PERMISSION', state: 'immutable' });
    expect(p.rmp.lookup(T)).toEqual(before);
    vm.close();
  });
});
