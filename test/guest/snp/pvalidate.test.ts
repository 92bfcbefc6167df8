// PVALIDATE rows of tdx-snp-architecture.md B2 / APM Vol. 2 §15.36.11, through real PVALIDATE
// instructions in small guests.
import { describe, expect, it } from 'vitest';
import { RFLAGS } from '../../../src/cpu/registers.js';
import { NPF_BITS } from '../../../src/platform/snp/access-check.js';
import { C_BIT, PVALIDATE, snpGuest } from '../../helpers/snp-guest.js';
import { PT_BASE } from '../../helpers/guest-setup.js';

const T = 0x400000n; // a 2 MiB-aligned target region

function pvalidateGuest(va: bigint, size2m: boolean, validate: boolean, after = '') {
  return `
  mov rax, 0x${va.toString(16)}
  mov ecx, ${size2m ? 1 : 0}
  mov edx, ${validate ? 1 : 0}
  ${PVALIDATE}
  pushfq
  pop rbx
  mov r8, rax
  ${after}
  hlt`;
}

type Setup = 'hv-owned' | 'guest-4k' | 'guest-4k-validated' | 'guest-2m' | 'guest-2m-validated' | 'guest-4k-wrong-gpa'
  | 'guest-2m-npt-4k' | 'guest-4k-npt-2m';

function setup(g: ReturnType<typeof snpGuest>, s: Setup, at = T): void {
  const p = g.platform;
  const asid = p.asid;
  if (s === 'guest-4k' || s === 'guest-4k-validated') for (let i = 0n; i < 512n; i++) p.rmpUpdate(at + i * 0x1000n, { assigned: true, pageSize: '4k', gpa: at + i * 0x1000n, asid });
  if (s === 'guest-4k-npt-2m') for (let i = 0n; i < 512n; i++) p.rmpUpdate(at + i * 0x1000n, { assigned: true, pageSize: '4k', gpa: at + i * 0x1000n, asid });
  if (s === 'guest-2m' || s === 'guest-2m-validated' || s === 'guest-2m-npt-4k') p.rmpUpdate(at, { assigned: true, pageSize: '2m', gpa: at, asid });
  // The nested mapping: 2 MiB over a 2 MiB private page, as KVM maps it; the -npt- setups are
  // the mismatches of APM Vol. 2 §15.36.11.
  if (s === 'guest-2m' || s === 'guest-2m-validated' || s === 'guest-4k-npt-2m') p.setNptPageSize(at, '2m');
  if (s === 'guest-4k-wrong-gpa') p.rmpUpdate(at, { assigned: true, pageSize: '4k', gpa: at + 0x1000n, asid });
  if (s === 'guest-4k-validated') p.rmp.setValidated(at, true);
  if (s === 'guest-2m-validated') p.rmp.setValidated(at, true);
}

interface Row { name: string; setup: Setup; va: bigint; size2m: boolean; validate: boolean; eax: bigint; cf: boolean; validatedAfter?: boolean }

// EAX / CF rows (B2).
const ROWS: Row[] = [
  { name: 'validate 4K, Validated 0 -> 1: SUCCESS, CF=0', setup: 'guest-4k', va: T, size2m: false, validate: true, eax: 0n, cf: false, validatedAfter: true },
  { name: 'validate 4K already validated: SUCCESS, CF=1 (no update)', setup: 'guest-4k-validated', va: T, size2m: false, validate: true, eax: 0n, cf: true, validatedAfter: true },
  { name: 'rescind 4K, Validated 1 -> 0: SUCCESS, CF=0', setup: 'guest-4k-validated', va: T, size2m: false, validate: false, eax: 0n, cf: false, validatedAfter: false },
  { name: 'rescind 4K already rescinded: SUCCESS, CF=1', setup: 'guest-4k', va: T, size2m: false, validate: false, eax: 0n, cf: true, validatedAfter: false },
  { name: 'validate 2M on a 2M entry: SUCCESS, CF=0', setup: 'guest-2m', va: T, size2m: true, validate: true, eax: 0n, cf: false, validatedAfter: true },
  { name: 'validate 2M on a validated 2M entry: CF=1', setup: 'guest-2m-validated', va: T, size2m: true, validate: true, eax: 0n, cf: true, validatedAfter: true },
  { name: '2M request, GVA not 2M aligned: FAIL_INPUT', setup: 'guest-2m', va: T + 0x1000n, size2m: true, validate: true, eax: 1n, cf: false, validatedAfter: false },
  { name: '2M request on 4K RMP entries: FAIL_SIZEMISMATCH', setup: 'guest-4k', va: T, size2m: true, validate: true, eax: 6n, cf: false, validatedAfter: false },
  // Issue 9 row 10: the nested page size counts as well as the RMP's.
  { name: '2M request on a 2M RMP entry the NPT maps with 4K pages: FAIL_SIZEMISMATCH', setup: 'guest-2m-npt-4k', va: T, size2m: true, validate: true, eax: 6n, cf: false, validatedAfter: false },
];

describe('PVALIDATE result codes and flags', () => {
  for (const row of ROWS) {
    it(row.name, () => {
      const g = snpGuest(pvalidateGuest(row.va, row.size2m, row.validate));
      setup(g, row.setup);
      expect(g.run()).toMatchObject({ outcome: 'done' });
      const regs = g.vm.vcpu.regs;
      expect(regs.r8).toBe(row.eax);
      expect((regs.rbx & RFLAGS.CF) !== 0n).toBe(row.cf);
      expect((regs.rbx & RFLAGS.ZF) !== 0n).toBe(row.eax === 0n);
      if (row.validatedAfter !== undefined) expect(g.platform.rmp.lookup(T).validated).toBe(row.validatedAfter);
      const ev = g.trace.ofType('pvalidate');
      expect(ev.at(-1)).toMatchObject({ rc: Number(row.eax), cf: row.cf });
    });
  }

  it('4K request inside a 2M RMP entry: NPF with SIZEM, the VMM PSMASHes, PVALIDATE re-executes', () => {
    const g = snpGuest(pvalidateGuest(T + 0x3000n, false, true));
    setup(g, 'guest-2m-validated');
    g.platform.rmp.setValidated(T, false);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const npf = g.trace.ofType('npf')[0]!;
    expect((npf.errorCode as bigint) & NPF_BITS.sizeMismatch).toBe(NPF_BITS.sizeMismatch);
    expect(g.trace.ofType('psmash')).toHaveLength(1);
    // Same RIP twice: NPF (not advanced), then success.
    const pv = g.trace.ofType('pvalidate');
    expect(pv).toHaveLength(2);
    expect(pv[0]!.rip).toBe(pv[1]!.rip);
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.platform.rmp.lookup(T + 0x3000n)).toMatchObject({ pageSize: '4k', validated: true });
    expect(g.platform.rmp.lookup(T)).toMatchObject({ pageSize: '4k', validated: false });
  });

  it('4K request on 4K RMP entries under a 2M NPT mapping: NPF with SIZEM, the VMM splits its NPT, PVALIDATE re-executes', () => {
    const g = snpGuest(pvalidateGuest(T + 0x3000n, false, true));
    setup(g, 'guest-4k-npt-2m');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const npf = g.trace.ofType('npf')[0]!;
    expect(npf).toMatchObject({ cause: 'pvalidate', reason: 'size-mismatch' });
    expect((npf.errorCode as bigint) & NPF_BITS.sizeMismatch).toBe(NPF_BITS.sizeMismatch);
    expect(g.trace.ofType('psmash')).toHaveLength(0); // the RMP was already 4K: only the NPT was wrong
    expect(g.trace.ofType('npf-handled')[0]).toMatchObject({ action: 'split-npt' });
    expect(g.platform.nptPageSize(T)).toBe('4k');
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.platform.rmp.lookup(T + 0x3000n).validated).toBe(true);
  });

  it('PSMASH keeps Validated of a validated 2M page', () => {
    const g = snpGuest(pvalidateGuest(T + 0x5000n, false, true));
    setup(g, 'guest-2m-validated');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect((g.vm.vcpu.regs.rbx & RFLAGS.CF) !== 0n).toBe(true); // already validated after the split
  });

  it('hypervisor-owned page: NPF (guest-owned check), honest VMM converts, PVALIDATE succeeds', () => {
    const g = snpGuest(pvalidateGuest(T, false, true));
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.trace.ofType('npf')[0]).toMatchObject({ reason: 'guest-owned' });
    expect(g.vm.vcpu.regs.r8).toBe(0n);
  });

  it('reverse-map mismatch: NPF the honest VMM cannot resolve', () => {
    const g = snpGuest(pvalidateGuest(T, false, true));
    setup(g, 'guest-4k-wrong-gpa');
    expect(g.run()).toMatchObject({ outcome: 'vmm-error' });
    expect(g.trace.ofType('npf')[0]).toMatchObject({ reason: 'reverse-map' });
  });

  it('immutable page: NPF (mutable check)', () => {
    const g = snpGuest(pvalidateGuest(T, false, true));
    g.platform.rmpUpdate(T, { assigned: true, pageSize: '4k', immutable: true, gpa: T, asid: g.platform.asid });
    expect(g.run()).toMatchObject({ outcome: 'vmm-error' });
    expect(g.trace.ofType('npf')[0]).toMatchObject({ reason: 'mutable' });
  });

  it('translates RAX through the guest page tables', () => {
    const VA = 0x40000000n;
    const g = snpGuest(pvalidateGuest(VA + 0x2000n, false, true), {
      mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: VA, pa: T, size: 0x200000n, pageSize: 0x200000n, extraBits: C_BIT }],
    });
    setup(g, 'guest-4k');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.platform.rmp.lookup(T + 0x2000n).validated).toBe(true);
  });

  // Issue 9 row 13: PVALIDATE's own walk is checked like a load's (§15.36.10).
  describe('PVALIDATE whose page walk goes through a page-table page that is not validated', () => {
    const VA = 0x40000000n;
    // enablePaging allocates PML4, PDPT, PD(0), PT(0) and then the PD of VA: PT_BASE + 0x4000.
    const PD_OF_VA = PT_BASE + 0x4000n;
    const mappings = [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n as const, extraBits: C_BIT }, { va: VA, pa: T, size: 0x200000n, pageSize: 0x200000n as const, extraBits: C_BIT }];
    const viaPvalidate = pvalidateGuest(VA + 0x2000n, false, true);
    const viaLoad = `mov rbx, [0x${(VA + 0x2000n).toString(16)}]\nhlt`;

    for (const [name, source] of [['PVALIDATE', viaPvalidate], ['a load', viaLoad]] as const) {
      it(`${name}: #VC 0x404 with CR2 = the linear address, not #GP`, () => {
        const g = snpGuest(source, { mappings });
        setup(g, 'guest-4k');
        // The VMM reassigns the PD page: RMPUPDATE clears Validated (B2).
        g.platform.rmpUpdate(PD_OF_VA, { assigned: true, pageSize: '4k', gpa: PD_OF_VA, asid: g.platform.asid });
        expect(g.run()).toMatchObject({ outcome: 'done' });
        expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15, g.vm.vcpu.regs.r14]).toEqual([29n, 0x404n, VA + 0x2000n]);
        expect(g.platform.rmp.lookup(T + 0x2000n).validated).toBe(false);
      });
    }

    // The gate is a cache of the RMP checks: a walk it refuses through a page-table page they allow
    // resynchronises it and PVALIDATE runs again (rmp-instruction.ts 'retry'). A resync that does
    // not open it would retry until the budget ends: the same refusal straight after its resync
    // ends the run as a hardware-model error (src/platform/gate-resync.ts).
    it('a stale gate on a validated page-table page: resynchronised and retried; one the resync cannot open ends the run as a hardware-model error', () => {
      const g = snpGuest(viaPvalidate, { mappings });
      setup(g, 'guest-4k');
      const gate = g.platform.machine.gate;
      gate.set('private', PD_OF_VA, 0x1000n, 'none');
      expect(g.run()).toMatchObject({ outcome: 'done' });
      expect(g.vm.vcpu.regs.r8).toBe(0n);  // SUCCESS once the gate was resynchronised
      const stuck = snpGuest(viaPvalidate, { mappings });
      setup(stuck, 'guest-4k');
      stuck.platform.machine.gate.set('private', PD_OF_VA, 0x1000n, 'none');
      stuck.platform.machine.gate.set = () => {};  // a resync that does not take
      expect(stuck.run()).toMatchObject({ outcome: 'vmm-error', reason: expect.stringMatching(/^internal error: hardware model: the page gate still refuses the private read of 0x[0-9a-f]+ at RIP /) });
    });

    it('a page-table page that is not guest-owned: NPF (page-table bit), the VMM converts it, then #VC 0x404', () => {
      const g = snpGuest(viaPvalidate, { mappings });
      setup(g, 'guest-4k');
      g.platform.rmpUpdate(PD_OF_VA, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
      expect(g.run()).toMatchObject({ outcome: 'done' });
      const npf = g.trace.ofType('npf')[0]!;
      expect(npf).toMatchObject({ gpa: PD_OF_VA, reason: 'guest-owned' });
      expect((npf.errorCode as bigint) & NPF_BITS.pageTable).toBe(NPF_BITS.pageTable);
      expect([g.vm.vcpu.regs.r13, g.vm.vcpu.regs.r15, g.vm.vcpu.regs.r14]).toEqual([29n, 0x404n, VA + 0x2000n]);
    });
  });

  it('unmapped GVA: #PF in the guest with CR2 = RAX', () => {
    const g = snpGuest(pvalidateGuest(0x7000000000n, false, true), {
      mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }],
    });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r13).toBe(14n);
    expect(g.vm.vcpu.regs.r14).toBe(0x7000000000n);
  });
});

describe('guest accesses (RMP Memory Access Checks)', () => {
  it('an access to a guest-owned page with Validated=0 raises #VC 0x404 with CR2', () => {
    const g = snpGuest(`
      mov rax, 0x${(T + 0x10n).toString(16)}
      mov rbx, [rax]
      hlt`);
    setup(g, 'guest-4k');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r13).toBe(29n);
    expect(g.vm.vcpu.regs.r15).toBe(0x404n);
    expect(g.vm.vcpu.regs.r14).toBe(T + 0x10n); // exact faulting GVA
    expect(g.trace.ofType('inject-vc')[0]).toMatchObject({ errorCode: 0x404n });
  });

  // Each refused access is its own #VC, with its own fault address: the trace's reason names the
  // GPA of the access it was raised for, not the one before it (both fail the same check).
  it('two reads of two unvalidated pages: two #VC 0x404, each with its own CR2 and its own GPA in the trace', () => {
    const g = snpGuest(`
      mov rax, 0x${(T + 0x10n).toString(16)}
      mov rbx, [rax]
      mov rax, 0x${(T + 0x1010n).toString(16)}
      mov rbx, [rax]
      mov r12, 1
      hlt`, { vcHandler: 'add qword ptr [rsp + 8], 3\n add rsp, 8\n iretq' });  // skip the 3-byte MOV
    setup(g, 'guest-4k');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r12).toBe(1n);
    const vcs = g.trace.ofType('inject-vc');
    expect(vcs.map((e) => [e.errorCode, e.cr2])).toEqual([[0x404n, T + 0x10n], [0x404n, T + 0x1010n]]);
    expect(vcs.map((e) => /gpa 0x([0-9a-f]+)/.exec(String(e.reason))?.[1])).toEqual([(T + 0x10n).toString(16), (T + 0x1010n).toString(16)]);
  });

  it('validate then access works; rescind then access raises #VC 0x404', () => {
    const g = snpGuest(pvalidateGuest(T, false, true, `
      mov qword ptr [0x${T.toString(16)}], 0x1234
      mov r9, [0x${T.toString(16)}]
      mov rax, 0x${T.toString(16)}
      xor ecx, ecx
      xor edx, edx
      ${PVALIDATE}
      mov r10, [0x${T.toString(16)}]`));
    setup(g, 'guest-4k');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r9).toBe(0x1234n);
    expect(g.vm.vcpu.regs.r13).toBe(29n);
    expect(g.vm.vcpu.regs.r15).toBe(0x404n);
  });

  it('a shared (C=0) write to a guest-owned page is an NPF; the honest VMM makes it shared', () => {
    const g = snpGuest(`
      mov rax, 0x${T.toString(16)}
      mov qword ptr [rax], 7
      mov rbx, [rax]
      hlt`, { mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: T, pa: T, size: 0x1000n, pageSize: 4096n }] });
    setup(g, 'guest-4k');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.trace.ofType('npf')[0]).toMatchObject({ reason: 'shared-write-hv-owned', space: 'shared' });
    expect(g.vm.vcpu.regs.rbx).toBe(7n);
    expect(g.platform.rmp.lookup(T).assigned).toBe(false);
  });

  it('shared reads of a guest-owned page are not RMP-checked', () => {
    const g = snpGuest(`mov rbx, [0x${T.toString(16)}]\nhlt`, {
      mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: T, pa: T, size: 0x1000n, pageSize: 4096n }],
    });
    setup(g, 'guest-4k');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.trace.ofType('npf')).toHaveLength(0);
  });

  it('VMPL permission missing: NPF with the VMPL bit', () => {
    const g = snpGuest(`mov rbx, [0x${T.toString(16)}]\nhlt`);
    setup(g, 'guest-4k-validated');
    // Only the hardware (RMPADJUST) changes permissions; the test pokes the entry directly.
    const e = g.platform.rmp.lookup(T);
    g.platform.rmp.put4k(T, { ...e, vmplPerms: [0, 0, 0, 0] });
    g.platform.setNptPageSize(T, '4k'); // resyncs the gate
    expect(g.run()).toMatchObject({ outcome: 'vmm-error' });
    const npf = g.trace.ofType('npf')[0]!;
    expect(npf.reason).toBe('vmpl-permission');
    expect((npf.errorCode as bigint) & NPF_BITS.vmpl).toBe(NPF_BITS.vmpl);
  });

  // Issue 9 row 11: an ordinary page-size fault is an RMP NPF without SIZEM (bit 35 is only
  // for PVALIDATE/RMPADJUST), and the honest VMM resolves it from the RMP and its own NPT.
  it('2M NPT mapping over 4K RMP entries: page-size NPF without SIZEM, the VMM maps 4K and the access completes', () => {
    const g = snpGuest(`mov rbx, [0x${T.toString(16)}]\nhlt`);
    setup(g, 'guest-4k-validated');
    g.platform.setNptPageSize(T, '2m');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const npf = g.trace.ofType('npf')[0]!;
    expect(npf).toMatchObject({ reason: 'page-size', cause: 'access' });
    expect((npf.errorCode as bigint) & NPF_BITS.rmp).toBe(NPF_BITS.rmp);
    expect((npf.errorCode as bigint) & NPF_BITS.sizeMismatch).toBe(0n);
    expect(g.platform.nptPageSize(T)).toBe('4k');
  });

  it('4K NPT mapping inside a 2M RMP entry: page-size NPF without SIZEM, the VMM PSMASHes (KVM case 2)', () => {
    const g = snpGuest(`mov rbx, [0x${(T + 0x5000n).toString(16)}]\nhlt`);
    setup(g, 'guest-2m-validated');
    g.platform.setNptPageSize(T, '4k');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const npf = g.trace.ofType('npf')[0]!;
    expect(npf).toMatchObject({ reason: 'page-size' });
    expect((npf.errorCode as bigint) & NPF_BITS.sizeMismatch).toBe(0n);
    expect(g.trace.ofType('psmash')).toHaveLength(1);
    expect(g.vm.vcpu.regs.r13).toBe(0n); // no exception: the load completed on the validated page
  });

  // Issue 9 row 12: a shared write through a 2M nested translation needs every 4K RMP entry
  // under it hypervisor-owned.
  it('a shared write through a 2M NPT mapping over one guest-owned 4K page is an NPF; the VMM splits its NPT', () => {
    const S = T + 0x8000n; // hypervisor-owned; T itself is guest-owned
    const g = snpGuest(`
      mov rax, 0x${S.toString(16)}
      mov qword ptr [rax], 9
      mov rbx, [rax]
      hlt`, { mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: T, pa: T, size: 0x200000n, pageSize: 0x200000n }] });
    g.platform.rmpUpdate(T, { assigned: true, pageSize: '4k', gpa: T, asid: g.platform.asid });
    g.platform.setNptPageSize(T, '2m');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const npf = g.trace.ofType('npf')[0]!;
    expect(npf).toMatchObject({ reason: 'shared-write-hv-owned', space: 'shared', access: 'write' });
    expect(g.trace.ofType('npf-handled')[0]).toMatchObject({ action: 'split-npt' });
    expect(g.vm.vcpu.regs.rbx).toBe(9n);
    expect(g.platform.rmp.lookup(T).assigned).toBe(true); // the other page stayed private
  });

  it('a shared write through a 2M NPT mapping of a wholly hypervisor-owned region needs no exit', () => {
    const S = T + 0x8000n;
    const g = snpGuest(`mov qword ptr [0x${S.toString(16)}], 9\nhlt`, {
      mappings: [{ va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n, extraBits: C_BIT }, { va: T, pa: T, size: 0x200000n, pageSize: 0x200000n }],
    });
    g.platform.setNptPageSize(T, '2m');
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.trace.ofType('npf')).toHaveLength(0);
  });
});

describe('the page gate of a region with 4K RMP entries', () => {
  it('is what each page\'s own RMP entry and NPT size give, page by page, after PSMASH and mixed updates', () => {
    const g = snpGuest('hlt');
    const p = g.platform;
    const asid = p.asid;
    p.rmpUpdate(T, { assigned: true, pageSize: '2m', gpa: T, asid });
    expect(p.psmash(T).rc).toBe(0);
    // Runs of different states: a hypervisor-owned page and a page mapped at another GPA among guest pages…
    p.rmpUpdate(T + 0x5000n, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
    p.rmpUpdate(T + 0x9000n, { assigned: true, pageSize: '4k', gpa: T + 0xa000n, asid });
    // …and validated pages among unvalidated ones (what PVALIDATE does to the entry), before the
    // NPT change below re-derives the region's gate.
    for (const off of [0x10000n, 0x11000n, 0x12000n, 0x40000n]) p.rmp.setValidated(T + off, true);
    p.setNptPageSize(T, '4k');
    for (let page = T; page < T + 0x200000n; page += 0x1000n) {
      const want = p.gateFor(page);
      expect([page, p.machine.gate.get('private', page), p.machine.gate.get('shared', page)]).toEqual([page, want.private, want.shared]);
    }
  });
});
