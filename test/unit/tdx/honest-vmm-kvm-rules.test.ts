// The honest TDX VMM (src/vmm/tdx/honest-vmm.ts) against rules of KVM's TDX host code
// (arch/x86/kvm/vmx/tdx.c) and the GHCI that no other test pinned down: each test here killed a
// mutant of honest-vmm.ts that survived the rest of the suite. One TD exit at a time through
// TdxVmm.decide(), as in honest-vmm-decisions.test.ts.
import { describe, expect, it } from 'vitest';
import { acceptExit, finalizedTd, privateAccess, seamcalls, vmcallExit } from '../../helpers/tdx-vmm-exits.js';
import { pageAccept } from '../../../src/platform/tdx/page-accept.js';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { TdxStatus } from '../../../src/platform/tdx/status.js';
import { createTd, type Td } from '../../../src/vmm/tdx/run-td.js';
import { SeptMirror } from '../../../src/vmm/tdx/sept-mirror.js';

const MiB = 1n << 20n;
const GiB = 1n << 30n;
const SHARED = 1n << 47n; // GPAW 48



describe('honest TDX VMM: S-EPT levels it links for a fault-in', () => {
  // KVM's TDP MMU walks its mirror from the root and links a SEPT page at every level it finds
  // none (tdx_sept_link_private_spt, one TDH.MEM.SEPT.ADD each), top level first, before the leaf
  // (tdx_sept_set_private_spte → TDH.MEM.PAGE.AUG). Above the first 512 GiB even the PML4 entry
  // is FREE: three SEPT pages, then the 4K page.
  it('a private access above 512 GiB: SEPT.ADD at the PDPT, PD and PT levels, top first, then AUG at 4K', () => {
    const td = finalizedTd(513n * GiB);
    const gpa = 512n * GiB + 0x1000n;
    expect(td.vmm.decide(privateAccess(gpa, 'FREE'))).toEqual({ kind: 'resume' });
    expect(seamcalls(td, 'TDH_MEM_SEPT_ADD').slice(2).map((e) => [e.rcx, e.status])).toEqual([
      [gpaLevel(512n * GiB, 3), 0n], [gpaLevel(512n * GiB, 2), 0n], [gpaLevel(512n * GiB, 1), 0n],
    ]);
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG').map((e) => [e.rcx, e.status])).toEqual([[gpaLevel(gpa, 0), 0n]]);
    expect(td.platform.module.sept.walk(gpa, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: a TDH.MEM.SEPT.RD that fails', () => {
  // Every SEAMCALL error KVM does not expect is KVM_BUG_ON (tdx.c: tdx_mem_page_aug,
  // tdx_sept_link_private_spt, tdx_sept_zap_private_spte): the VM is dead, nothing goes on from a
  // result the module did not give. Only EPT_WALK_FAILED is an answer from SEPT.RD (the walk
  // stopped above the level, TDX module tdh_mem_sept_rd.c); any other error must stop the TD.
  it('with a status other than EPT_WALK_FAILED stops the TD as a VMM error, no AUG', () => {
    const td = finalizedTd();
    // A VMM that knows nothing of the S-EPT must read it; the module answers with an error.
    td.vmm.ctx.septMirror.loadState(new SeptMirror(td.platform.module.host.septTopLevel).saveState());
    const handle = td.vmm.ctx.host;
    const real = handle.memSeptRead.bind(handle);
    handle.memSeptRead = (rcx: bigint) => ({ ...real(rcx), status: TdxStatus.OPERAND_BUSY });
    const decision = td.vmm.decide(privateAccess(0x401000n, 'FREE'));
    expect(decision).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect((decision as { outcome: { reason: string } }).outcome.reason).toMatch(/TDH\.MEM\.SEPT\.RD failed/);
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toEqual([]);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA to shared takes away every private page in the range, accepted or not', () => {
  // Converting to shared zaps the private mapping whatever the guest did with it: KVM
  // (kvm_vm_set_mem_attributes → kvm_unmap_gfn_range → tdx_sept_remove_private_spte: BLOCK, TRACK,
  // REMOVE) knows nothing of acceptance, so a page AUGed and never accepted (PENDING) goes too.
  it('a PENDING 4K page the VMM learns of from TDH.MEM.SEPT.RD is blocked, tracked and removed, then mapped shared', () => {
    const td = finalizedTd();
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0x400000n, 1));
    h.memPageAug(gpaLevel(0x401000n, 0));
    // A VMM that knows nothing of the S-EPT (attached to a running TD): it reads the entry.
    td.vmm.ctx.septMirror.loadState(new SeptMirror(h.septTopLevel).saveState());
    expect(td.platform.module.sept.walk(0x401000n, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    const before = seamcalls(td).length;
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x401000n | SHARED, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(seamcalls(td).slice(before).filter((e) => e.leaf !== 'TDH_MEM_SEPT_RD').map((e) => [e.leaf, e.rcx, e.status])).toEqual([
      ['TDH_MEM_RANGE_BLOCK', gpaLevel(0x401000n, 0), 0n], ['TDH_MEM_TRACK', null, 0n], ['TDH_MEM_PAGE_REMOVE', gpaLevel(0x401000n, 0), 0n],
    ]);
    expect(td.platform.module.sept.walk(0x401000n, 0)).toMatchObject({ level: 0, state: 'FREE' });
    expect(td.platform.machine.gate.get('shared', 0x401000n)).toBe('readwrite');
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA to private over an entry a removal left', () => {
  // KVM's MapGPA to private changes memory attributes only (tdx_map_gpa → KVM_HC_MAP_GPA_RANGE →
  // QEMU kvm_convert_memory); it makes no S-EPT change then, so no S-EPT state can make it fail:
  // the private page is faulted in when the guest touches or accepts it. A VMM that AUGs
  // eagerly must answer SUCCESS all the same, and the guest's ACCEPT must then go through.
  it('a REMOVED 2M entry: SUCCESS, and a 4K ACCEPT in that range then succeeds with the VMM answering its exits', () => {
    const td = finalizedTd();
    const m = td.platform.module;
    m.sept.setState(1, 0x400000n, 'REMOVED');
    td.vmm.ctx.septMirror.loadState(new SeptMirror(m.host.septTopLevel).saveState());
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n, r13: 2n * MiB }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    for (let tries = 0; ; tries++) {
      const r = pageAccept(m, gpaLevel(0x401000n, 0));
      if (r.kind === 'return') { expect(r.status).toBe(0n); break; }
      expect(r).toMatchObject({ kind: 'step', result: 'td-exit(accept)' });
      expect(tries).toBeLessThan(3);
      const walk = m.sept.walk(0x401000n, 0);
      expect(td.vmm.decide(acceptExit(0x401000n, 0, walk.level, walk.state))).toEqual({ kind: 'resume' });
    }
    expect(m.sept.walk(0x401000n, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: fault-in where the S-EPT is not what the VMM last made it', () => {
  // TDH.MEM.PAGE.AUG maps 4K or 2M only, into a FREE or REMOVED entry at exactly the level given
  // (TDX module tdh_mem_page_aug.c; any other walk end is EPT_WALK_FAILED). So the VMM must AUG at
  // the level where the walk really stops: when the exit reports another state than its mirror
  // holds, the S-EPT changed other than by its SEAMCALLs, and it must read the entry.
  it('a REMOVED 2M entry where its mirror still holds the 2M page it AUGed: the VMM reads it and AUGs again at 2M', () => {
    const td = finalizedTd();
    const m = td.platform.module;
    td.vmm.ctx.host.memPageAug(gpaLevel(0x400000n, 1)); // through the VMM's handle: its mirror learns a 2M leaf
    m.sept.setState(1, 0x400000n, 'REMOVED');
    const reads = seamcalls(td, 'TDH_MEM_SEPT_RD').length;
    expect(td.vmm.decide(privateAccess(0x401000n, 'REMOVED'))).toEqual({ kind: 'resume' });
    expect(seamcalls(td, 'TDH_MEM_SEPT_RD').length).toBeGreaterThan(reads);
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG').slice(1).map((e) => [e.rcx, e.status])).toEqual([[gpaLevel(0x400000n, 1), 0n]]);
    expect(m.sept.walk(0x401000n, 0)).toMatchObject({ level: 1, state: 'PENDING' });
    td.platform.machine.close();
  });

  it('a private access under a REMOVED 1G entry: no AUG at 1G is tried (AUG maps 4K or 2M only), the VMM stops', () => {
    const td = finalizedTd();
    td.platform.module.sept.setState(2, 0n, 'REMOVED');
    td.vmm.ctx.septMirror.loadState(new SeptMirror(td.platform.module.host.septTopLevel).saveState());
    expect(td.vmm.decide(privateAccess(0x401000n, 'REMOVED'))).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG').filter((e) => ((e.rcx as bigint) & 7n) > 1n)).toEqual([]);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA to private closes the shared mapping before any private page is added', () => {
  // QEMU kvm_convert_memory (accel/kvm/kvm-all.c) sets the range private first
  // (kvm_set_memory_attributes_private: KVM zaps the shared mappings) and only then discards the
  // shared backing; KVM adds private pages (TDH.MEM.PAGE.AUG, tdx_sept_set_private_spte) only on
  // a later fault of the now-private GPA. Never a moment with both mappings of one GPA.
  it('the shared-EPT unmap comes before the first TDH.MEM.PAGE.AUG of the range', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x401000n | SHARED, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    const from = td.trace.events.length;
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x401000n, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    const events = td.trace.events.slice(from);
    const unmap = events.findIndex((e) => e.type === 'shared-ept' && e.mapped === false);
    const aug = events.findIndex((e) => e.type === 'seamcall' && e.leaf === 'TDH_MEM_PAGE_AUG');
    expect(unmap).toBeGreaterThanOrEqual(0);
    expect(aug).toBeGreaterThan(unmap);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA to shared over rounds where no RAM is', () => {
  // KVM hands userspace one 2 MiB round at a time (__tdx_map_gpa) and looks for a pending event
  // between rounds (tdx_complete_vmcall_map_gpa); QEMU ignores a round to shared where no memory
  // region is (kvm_convert_memory). With no event pending, all rounds past the last RAM are
  // ignored: the answer is SUCCESS, and the VMM need not go through them one by one.
  it('from the last RAM round on, with RAM ending exactly at a round boundary: the RAM round converts, the rest answer SUCCESS at once', () => {
    const td = finalizedTd(); // RAM [0, 16 MiB)
    const host = td.vmm.ctx.host;
    const pending = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Object.getPrototypeOf(host)), 'interruptPending')
      ?? Object.getOwnPropertyDescriptor(Object.getPrototypeOf(host), 'interruptPending');
    let looks = 0;
    Object.defineProperty(host, 'interruptPending', { configurable: true, get() { looks++; return pending!.get!.call(host); } });
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: (14n * MiB) | SHARED, r13: 64n * MiB }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.trace.ofType('map-gpa').map((e) => [e.gpa, e.size])).toEqual([[14n * MiB, 2n * MiB]]);
    expect(looks).toBeLessThanOrEqual(1);
    td.platform.machine.close();
  });

  /** A finalized TD with RAM [0, 8 MiB) and [HOLE_END, HOLE_END + 8 MiB), a hole of ~64 GiB between. */
  const HOLE_END = 64n * GiB;
  function tdAcrossHole(): Td {
    const td = createTd({ memoryBytes: HOLE_END + 8n * MiB, ram: [{ start: 0n, end: 8n * MiB }, { start: HOLE_END, end: HOLE_END + 8n * MiB }] });
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    h.memSeptAdd(gpaLevel(HOLE_END, 2));
    h.mrFinalize();
    return td;
  }

  it('across a hole of 64 GiB between RAM ranges: the RAM rounds on either side convert, the hole is gone past at once (SUCCESS)', () => {
    const td = tdAcrossHole();
    const host = td.vmm.ctx.host;
    const pending = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Object.getPrototypeOf(host)), 'interruptPending')
      ?? Object.getOwnPropertyDescriptor(Object.getPrototypeOf(host), 'interruptPending');
    let looks = 0;
    Object.defineProperty(host, 'interruptPending', { configurable: true, get() { looks++; return pending!.get!.call(host); } });
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: (6n * MiB) | SHARED, r13: HOLE_END - 4n * MiB }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.trace.ofType('map-gpa').map((e) => [e.gpa, e.size])).toEqual([[6n * MiB, 2n * MiB], [HOLE_END, 2n * MiB]]);
    expect(looks).toBeLessThanOrEqual(3);
    td.platform.machine.close();
  });

  // Going past the hole keeps KVM's rounds where they are: every one starts a whole number of
  // 2 MiB rounds after R12. Here the last round before RAM straddles the hole's end, and QEMU
  // fails a conversion to shared that touches RAM but is not all RAM: the TD stops.
  it('from a start 4 KiB into the hole: the round that ends 4 KiB into RAM is not all RAM, and the VMM stops the TD', () => {
    const td = tdAcrossHole();
    const start = 8n * MiB + 0x1000n;
    const decision = td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: start | SHARED, r13: HOLE_END - 8n * MiB }));
    expect(decision).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error', reason: `MapGPA to shared of 0x${(HOLE_END - 2n * MiB + 0x1000n).toString(16)} (+0x200000), not all guest RAM: the VMM stops the TD (QEMU kvm_convert_memory fails)` } });
    expect(td.trace.ofType('map-gpa')).toEqual([]);
    td.platform.machine.close();
  });
});

describe('createTd: whole-VM snapshots cover the state the caller adds above the VMM', () => {
  // run-td.ts TdOptions.extraState: "State above the VMM that whole-VM snapshots must also cover"
  // (a boot session's parser rides along this way, src/boot/boot-session.ts).
  it('a restore gives the extra part the state it had at the snapshot', () => {
    let value = 1;
    const part = { saveState: () => value, loadState: (v: number) => { value = v; } };
    const td = createTd({ memoryBytes: 16n * MiB, extraState: { part } });
    const snap = td.vm.snapshot();
    value = 2;
    td.vm.restore(snap);
    expect(value).toBe(1);
    td.platform.machine.close();
  });

  it('a restore takes back what the guest printed after the snapshot, on the TD\'s own console', () => {
    const td = createTd({ memoryBytes: 16n * MiB });
    td.console.writeBytes(Buffer.from('before\n'));
    const snap = td.vm.snapshot();
    td.console.writeBytes(Buffer.from('after\n'));
    td.vm.restore(snap);
    expect(td.console.text).toBe('before\n');
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: the edges of guest RAM (KVM memslots, QEMU memory regions)', () => {
  /** RAM [0, 8 MiB) and [12 MiB, 16 MiB): a hole [8 MiB, 12 MiB) between, as the firmware region below 4 GiB. */
  function tdWithHole(): Td {
    const td = createTd({ memoryBytes: 16n * MiB, ram: [{ start: 0n, end: 8n * MiB }, { start: 12n * MiB, end: 16n * MiB }] });
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    h.mrFinalize();
    return td;
  }

  // A RAM range [start, end) holds its last page and not the page at `end`: KVM finds no memslot
  // for a GPA past the slot's last gfn (__gfn_to_memslot), so it maps nothing there.
  it('an access or an ACCEPT of the first page past a RAM range (the hole\'s first page): no AUG, the run ends as a fault', () => {
    const td = tdWithHole();
    expect(td.vmm.decide(privateAccess(8n * MiB, 'FREE'))).toMatchObject({ kind: 'stop', outcome: { outcome: 'fault' } });
    expect(td.vmm.decide(acceptExit(8n * MiB, 0, 1, 'FREE'))).toMatchObject({ kind: 'stop', outcome: { outcome: 'fault' } });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toEqual([]);
    td.platform.machine.close();
  });

  it('an access to the last page of a TD built without a memory map: all of memoryBytes is RAM, so the VMM AUGs it', () => {
    const td = finalizedTd(); // 16 MiB, RAM by default [0, 16 MiB)
    const last = 16n * MiB - 0x1000n;
    expect(td.vmm.decide(privateAccess(last, 'FREE'))).toEqual({ kind: 'resume' });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG').map((e) => [e.rcx, e.status])).toEqual([[gpaLevel(last, 0), 0n]]);
    td.platform.machine.close();
  });

  // QEMU kvm_convert_memory: memory_region_find(start, size) finds no region for a round that
  // only ends where RAM starts ([start, start + size) does not reach it): to shared, ignored.
  it('MapGPA to shared of the hole\'s last 2 MiB, ending exactly where RAM starts again: ignored, SUCCESS', () => {
    const td = tdWithHole();
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: (10n * MiB) | SHARED, r13: 2n * MiB }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.trace.ofType('map-gpa')).toHaveLength(0);
    expect(td.trace.ofType('shared-ept')).toHaveLength(0);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: TDG.VP.VMCALL<Instruction.CPUID> operands', () => {
  // GHCI: R12 = EAX (leaf), R13 = ECX (subleaf), 32-bit values; KVM tdx_emulate_cpuid takes both
  // as u32 and answers any of them (kvm_cpuid). 0xFFFFFFFF is a leaf like any other.
  it('leaf and subleaf 0xFFFFFFFF: SUCCESS with EAX, EBX, ECX, EDX in R12..R15', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 10n, r12: 0xffffffffn, r13: 0xffffffffn }))).toEqual({ kind: 'return', regs: { r10: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n } });
    td.platform.machine.close();
  });

  it('R12 and R13 above 32 bits: their high halves are ignored (KVM reads them into u32s), SUCCESS', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 10n, r12: 0x1_4000_0000n, r13: 0xffff_ffff_0000_0000n }))).toEqual({ kind: 'return', regs: { r10: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n } });
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: which repeated HLTs count as no progress', () => {
  // GHCI 1.5 §3.6.1 TDG.VP.VMCALL<Instruction.HLT>: R12 bit 0 says interrupts are blocked. Only
  // then can no interrupt end the halt, so the same HLT again at the same RIP is no progress; with
  // interrupts open, an interrupt ends it and the guest goes on. And R10 ≠ 0 is a vendor-specific
  // call, not Instruction.HLT, whatever R11 (KVM tdx_to_vmx_exit_reason: a non-zero exit type is
  // EXIT_REASON_VMCALL, handled by tdx_emulate_vmcall as a KVM hypercall).
  it('the same HLT with interrupts open, a vendor call with R11 = 12, or a blocked HLT at another RIP is not the same fault again', () => {
    const td = finalizedTd();
    const open = { ...vmcallExit({ r11: 12n, r12: 0n }), rip: 0x1000n };
    expect(td.vmm.sameFault(open, open)).toBe(false);
    const vendor = { ...vmcallExit({ r10: 1n, r11: 12n, r12: 1n }), rip: 0x1000n };
    expect(td.vmm.sameFault(vendor, vendor)).toBe(false);
    const blocked = { ...vmcallExit({ r11: 12n, r12: 1n }), rip: 0x1000n };
    expect(td.vmm.sameFault(blocked, blocked)).toBe(true);
    // A blocked HLT at another RIP: the guest ran between the two, the resume was progress.
    expect(td.vmm.sameFault(blocked, { ...blocked, rip: 0x1004n })).toBe(false);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: a vendor-specific TDG.VP.VMCALL is never a GHCI sub-function', () => {
  // R10 ≠ 0 selects a vendor-specific call whatever R11 holds: KVM tdx_to_vmx_exit_reason makes
  // it EXIT_REASON_VMCALL (tdx_emulate_vmcall, a KVM hypercall), never handle_tdvmcall's MapGPA.
  // This VMM offers no vendor call but the stubs' console: SUBFUNC_UNSUPPORTED, nothing converted.
  it('R10 = 1 with R11 = MapGPA (0x10001): SUBFUNC_UNSUPPORTED, no conversion', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r10: 1n, r11: 0x10001n, r12: 0x400000n | SHARED, r13: 0x1000n })))
      .toEqual({ kind: 'return', regs: { r10: 0x8000000000000003n } });
    expect(td.trace.ofType('map-gpa')).toHaveLength(0);
    expect(td.trace.ofType('shared-ept')).toHaveLength(0);
    td.platform.machine.close();
  });
});
