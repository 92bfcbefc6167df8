// The honest TDX VMM's decisions (src/vmm/tdx/honest-vmm.ts), one TD exit at a time through
// TdxVmm.decide(): no guest runs, the exits are the ones the module would make. What each answer
// must be comes from KVM's TDX host code (arch/x86/kvm/vmx/tdx.c) and the GHCI.
import { describe, expect, it } from 'vitest';
import { acceptExit, finalizedTd, privateAccess, seamcalls, vmcallExit } from '../../helpers/tdx-vmm-exits.js';
import { pageAccept } from '../../../src/platform/tdx/page-accept.js';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import type { SeptLevel } from '../../../src/platform/tdx/sept-states.js';
import type { TdExit, VmcallRegs } from '../../../src/platform/tdx/td-module.js';
import { Console } from '../../../src/vmm/console.js';
import { honestTdxPolicy, type TdxVmmPolicy } from '../../../src/vmm/tdx/honest-vmm.js';
import { SeptMirror } from '../../../src/vmm/tdx/sept-mirror.js';
import { createTd, type Td } from '../../../src/vmm/tdx/run-td.js';

const MiB = 1n << 20n;
const SHARED = 1n << 47n; // GPAW 48
const INVALID_OPERAND = 0x8000000000000000n;
const ALIGN_ERROR = 0x8000000000000002n;


describe('honest TDX VMM: a SEAMCALL that fails', () => {
  it('stops the TD as a VMM error instead of resuming it (KVM: a failed TDH.MEM.PAGE.AUG is KVM_BUG_ON, the VM is dead)', () => {
    const td = finalizedTd();
    // An ACCEPT exit that claims FREE where the VMM has already AUGed: the AUG it answers with fails.
    td.platform.module.host.memSeptAdd(gpaLevel(0x400000n, 1));
    td.platform.module.host.memPageAug(gpaLevel(0x400000n, 0));
    const decision = td.vmm.decide(acceptExit(0x400000n, 0, 0, 'FREE'));
    expect(decision).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect((decision as { outcome: { reason: string } }).outcome.reason).toMatch(/^AUG on demand: TDH\.MEM\.PAGE\.AUG failed/);
    td.platform.machine.close();
  });
});

// KVM kills the VM on a failed SEAMCALL in the middle of a conversion too: the zap path's
// TDH.MEM.RANGE.BLOCK (tdx_sept_zap_private_spte) and the map path's TDH.MEM.PAGE.AUG
// (tdx_mem_page_aug) are each KVM_BUG_ON(err) in arch/x86/kvm/vmx/tdx.c, so the MapGPA never
// returns to the guest. To make a SEAMCALL fail, the S-EPT is changed behind the VMM's back,
// after its mirror (tdp_mmu) learned the entry: the VMM then asks the module for what it believes
// it can do.
describe('honest TDX VMM: a SEAMCALL that fails in the middle of a MapGPA', () => {
  it('to shared: the first 2 MiB round is converted, BLOCK fails in the second, and the TD stops as a VMM error (no SUCCESS, no RETRY)', () => {
    const td = finalizedTd();
    const h = td.platform.module.host;
    h.memPageAug(gpaLevel(0x400000n, 1));
    h.memPageAug(gpaLevel(0x600000n, 1));
    td.platform.module.sept.setState(1, 0x600000n, 'FREE'); // the mirror still holds a 2M leaf there
    const decision = td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n | SHARED, r13: 4n * MiB }));
    expect(decision).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect((decision as { outcome: { reason: string } }).outcome.reason).toMatch(/^MapGPA: TDH\.MEM\.RANGE\.BLOCK failed/);
    // The first round went through: its 2M page removed and shared; the failed round is not reported converted.
    expect(td.platform.module.sept.walk(0x400000n, 1)).toMatchObject({ level: 1, state: 'FREE' });
    expect(h.isSharedMapped(0x400000n)).toBe(true);
    expect(h.isSharedMapped(0x600000n)).toBe(false);
    expect(td.trace.events.filter((e) => e.type === 'map-gpa').map((e) => e.gpa)).toEqual([0x400000n]);
    td.platform.machine.close();
  });

  it('to private: the first 2 MiB round is AUGed, AUG fails in the second, and the TD stops as a VMM error', () => {
    const td = finalizedTd();
    const h = td.platform.module.host;
    // The VMM learns that 0x600000 is FREE at 2M (it AUGs and removes a page there), then the entry changes unseen.
    h.memPageAug(gpaLevel(0x600000n, 1));
    h.memRangeBlock(gpaLevel(0x600000n, 1));
    h.memTrack();
    expect(h.memPageRemove(gpaLevel(0x600000n, 1)).status).toBe(0n);
    td.platform.module.sept.setState(1, 0x600000n, 'PENDING');
    const decision = td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n, r13: 4n * MiB }));
    expect(decision).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect((decision as { outcome: { reason: string } }).outcome.reason).toMatch(/^MapGPA: TDH\.MEM\.PAGE\.AUG failed/);
    expect(td.platform.module.sept.walk(0x400000n, 1)).toMatchObject({ level: 1, state: 'PENDING' });
    expect(td.trace.events.filter((e) => e.type === 'map-gpa').map((e) => e.gpa)).toEqual([0x400000n]);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: what it does not know of the S-EPT', () => {
  it('reads an entry once and remembers it (KVM asks only its mirror): a fault-in needs one TDH.MEM.SEPT.RD', () => {
    const td = finalizedTd();
    // A VMM that starts knowing nothing (as one attached to a running TD would).
    td.vmm.ctx.septMirror.loadState(new SeptMirror(td.platform.module.host.septTopLevel).saveState());
    const fault = privateAccess(0x401000n, 'FREE');
    expect(td.vmm.decide(fault)).toEqual({ kind: 'resume' });
    // The leaf read stops at the FREE PD entry (EPT_WALK_FAILED) and tells of every level above it.
    expect(seamcalls(td, 'TDH_MEM_SEPT_RD')).toHaveLength(1);
    expect(seamcalls(td, 'TDH_MEM_SEPT_ADD').at(-1)).toMatchObject({ rcx: gpaLevel(0x400000n, 1), status: 0n });
    expect(td.platform.module.sept.walk(0x401000n, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    // The next fault-in in that 2 MiB range is answered from what the VMM knows: no read at all.
    expect(td.vmm.decide(privateAccess(0x402000n, 'FREE'))).toEqual({ kind: 'resume' });
    expect(seamcalls(td, 'TDH_MEM_SEPT_RD')).toHaveLength(1);
    expect(td.platform.module.sept.walk(0x402000n, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    td.platform.machine.close();
  });

  it('an ACCEPT it knows nothing about: each upper level is read at that level\'s alignment, then SEPT.ADD and AUG', () => {
    const td = finalizedTd();
    td.vmm.ctx.septMirror.loadState(new SeptMirror(td.platform.module.host.septTopLevel).saveState());
    // 4K ACCEPT of 0x401000 under a FREE PD entry (tdg_mem_page_accept.c: err_level 1).
    expect(td.vmm.decide(acceptExit(0x401000n, 0, 1, 'FREE'))).toEqual({ kind: 'resume' });
    // TDH.MEM.SEPT.RD takes a GPA aligned to its level (tdh_mem_sept_rd.c): any other is OPERAND_INVALID.
    const reads = seamcalls(td, 'TDH_MEM_SEPT_RD').map((e) => e.rcx as bigint);
    expect(reads.length).toBeGreaterThan(0);
    for (const rcx of reads) expect(rcx & ((1n << (12n + 9n * (rcx & 7n))) - 1n) & ~7n).toBe(0n);
    expect(seamcalls(td, 'TDH_MEM_SEPT_ADD').at(-1)).toMatchObject({ rcx: gpaLevel(0x400000n, 1), status: 0n });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toMatchObject([{ rcx: gpaLevel(0x401000n, 0), status: 0n }]);
    // The trace says what the VMM did for the guest's ACCEPT (a VMM event of trace-event-types.ts).
    expect(td.trace.ofType('vmm-accept-assist')).toMatchObject([{ gpa: 0x401000n, reqLevel: 0, errLevel: 1, errState: 'FREE' }]);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: TDG.VP.VMCALL operands', () => {
  it('GetTdVmCallInfo with R12 ≠ 0 → INVALID_OPERAND (KVM tdx_get_td_vm_call_info; GHCI: R12 must be 0)', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 0x10000n, r12: 2n }))).toEqual({ kind: 'return', regs: { r10: INVALID_OPERAND } });
    expect(td.vmm.decide(vmcallExit({ r11: 0x10000n, r12: 0n }))).toEqual({ kind: 'return', regs: { r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n } });
    td.platform.machine.close();
  });

  it.each([
    ['size 3', 3n, 1n], ['size 8', 8n, 0n], ['direction 2 (reserved, neither read nor write)', 1n, 2n],
  ])('Instruction.IO with %s → INVALID_OPERAND, nothing written (KVM tdx_emulate_io)', (_what, size, direction) => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 30n, r12: size, r13: direction, r14: 0x3f8n, r15: 0x41n }))).toEqual({ kind: 'return', regs: { r10: INVALID_OPERAND } });
    expect(td.console.text).toBe('');
    td.platform.machine.close();
  });

  it('Instruction.IO of a port above 0xFFFF goes to its low 16 bits (KVM tdx_emulate_io passes R14 to pio_out_emulated\'s unsigned short port); OUT to the COM1 data port puts the low byte of R15', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 30n, r12: 1n, r13: 1n, r14: 0x103f8n, r15: 0x41n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.console.text).toBe('A');
    expect(td.vmm.decide(vmcallExit({ r11: 30n, r12: 1n, r13: 1n, r14: 0x3f8n, r15: 0x1242n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.vmm.decide(vmcallExit({ r11: 30n, r12: 4n, r13: 1n, r14: 0x3f8n, r15: 0x0an }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.console.text).toBe('AB\n');
    // The last port there is: no device, all ones.
    expect(td.vmm.decide(vmcallExit({ r11: 30n, r12: 1n, r13: 0n, r14: 0xffffn }))).toEqual({ kind: 'return', regs: { r10: 0n, r11: 0xffn } });
    td.platform.machine.close();
  });

  it('Instruction.IO IN of a port with no device reads all ones at the access size (QEMU unassigned_io_read)', () => {
    const td = finalizedTd();
    const read = (size: bigint) => td.vmm.decide(vmcallExit({ r11: 30n, r12: size, r13: 0n, r14: 0x80n }));
    expect([1n, 2n, 4n].map(read)).toEqual([0xffn, 0xffffn, 0xffffffffn].map((r11) => ({ kind: 'return', regs: { r10: 0n, r11 } })));
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA operands (KVM tdx_map_gpa)', () => {
  // KVM checks the range first (INVALID_OPERAND: gpa + size <= gpa, either end not a legal GPA,
  // the ends on two sides of the shared bit), the alignment only then (ALIGN_ERROR), and hands R12
  // back in R11 with either. The guest's MAXPHYADDR is GPAW (48 here): KVM sets it to the shared
  // bit + 1 (tdx_read_cpuid for 0x80000008, from gfn_direct_bits).
  const END_OF_SPACE = 1n << 48n;
  it.each([
    ['a GPA not 4K aligned', 0x400800n | SHARED, 0x1000n, ALIGN_ERROR],
    ['a size not 4K aligned', 0x400000n | SHARED, 0x800n, ALIGN_ERROR],
    ['size 0 (gpa + size <= gpa), even at an aligned GPA', 0x400000n | SHARED, 0n, INVALID_OPERAND],
    ['size 0 at an unaligned GPA: the range check comes first', 0x400800n | SHARED, 0n, INVALID_OPERAND],
    ['a size that wraps the 64-bit space', 0x400000n | SHARED, (1n << 64n) - 0x1000n, INVALID_OPERAND],
    ['an end beyond the guest\'s 48-bit physical space', END_OF_SPACE - 0x1000n, 0x2000n, INVALID_OPERAND],
    ['from low memory to a last byte just past the 48-bit space (bit 47 clear at both ends), the size unaligned too', 0x1000n, END_OF_SPACE - 0x1000n + 1n, INVALID_OPERAND],
    ['from low memory to past the 48-bit space (bit 47 clear at both ends)', 0x1000n, END_OF_SPACE, INVALID_OPERAND],
    ['a GPA beyond the 48-bit physical space, unaligned too', END_OF_SPACE + 0x800n, 0x1000n, INVALID_OPERAND],
    ['a private start with a shared end (straddles bit 47)', SHARED - 0x1000n, 0x2000n, INVALID_OPERAND],
  ])('%s → refused, nothing converted', (_what, gpa, size, status) => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: gpa, r13: size }))).toEqual({ kind: 'return', regs: { r10: status, r11: gpa } });
    expect(td.trace.ofType('map-gpa')).toHaveLength(0);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA outside RAM (QEMU kvm_convert_memory, one KVM round at a time)', () => {
  // KVM checks no memslot: it hands userspace rounds of at most 2 MiB from map_gpa_next
  // (tdx.c __tdx_map_gpa, TDX_MAP_GPA_MAX_LEN). QEMU accel/kvm/kvm-all.c kvm_convert_memory, for a
  // round where memory_region_find finds no region: to shared is ignored and done ("Ignore
  // converting non-assigned region to shared"), to private returns an error. A round that starts
  // in RAM and runs past its region fails either way (physmem.c ram_block_discard_range "Overrun
  // block"; ram-block-attributes.c ram_block_attributes_is_valid_range). A failed round is a
  // negative exit-handler result: kvm_cpu_exec stops the VM (RUN_STATE_INTERNAL_ERROR); QEMU never
  // sets hypercall.ret, so KVM's INVALID_OPERAND answer (tdx_complete_vmcall_map_gpa) is not reached.
  const vmStopped = { kind: 'stop', outcome: { outcome: 'vmm-error' } };
  /** RAM [0, 8 MiB) and [12 MiB, 16 MiB): a hole [8 MiB, 12 MiB) between, as the firmware region below 4 GiB. */
  function tdWithHole(): Td {
    const td = createTd({ memoryBytes: 16n * MiB, ram: [{ start: 0n, end: 8n * MiB }, { start: 12n * MiB, end: 16n * MiB }] });
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    h.mrFinalize();
    return td;
  }
  const mapGpa = (td: Td, gpa: bigint, size: bigint) => td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: gpa, r13: size }));
  const converted = (td: Td) => td.trace.ofType('map-gpa').map((m) => [m.gpa, m.size]);

  it('above the end of RAM, to shared: ignored, SUCCESS, nothing converted', () => {
    const td = finalizedTd();
    expect(mapGpa(td, (32n * MiB) | SHARED, 0x1000n)).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.trace.ofType('map-gpa')).toHaveLength(0);
    expect(td.trace.ofType('shared-ept')).toHaveLength(0);
    td.platform.machine.close();
  });

  it('above the end of RAM, to private: the VMM stops the TD (kvm_convert_memory fails)', () => {
    const td = finalizedTd();
    expect(mapGpa(td, 32n * MiB, 0x1000n)).toMatchObject(vmStopped);
    td.platform.machine.close();
  });

  it('a round running past the end of RAM, to shared: the VMM stops the TD, nothing converted', () => {
    const td = finalizedTd();
    expect(mapGpa(td, (15n * MiB) | SHARED, 2n * MiB)).toMatchObject(vmStopped);
    expect(td.trace.ofType('shared-ept')).toHaveLength(0);
    td.platform.machine.close();
  });

  it('wholly in a hole between RAM ranges, to shared: ignored, SUCCESS (no region there, as above RAM)', () => {
    const td = tdWithHole();
    expect(mapGpa(td, (8n * MiB) | SHARED, 4n * MiB)).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.trace.ofType('shared-ept')).toHaveLength(0);
    td.platform.machine.close();
  });

  it('wholly in a hole between RAM ranges, to private: the VMM stops the TD', () => {
    const td = tdWithHole();
    expect(mapGpa(td, 8n * MiB, 0x1000n)).toMatchObject(vmStopped);
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toEqual([]);
    td.platform.machine.close();
  });

  it('to shared across the hole, in rounds that each lie in RAM or in the hole: RAM rounds converted, hole rounds ignored, SUCCESS', () => {
    const td = tdWithHole();
    expect(mapGpa(td, (6n * MiB) | SHARED, 8n * MiB)).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(converted(td)).toEqual([[6n * MiB, 2n * MiB], [12n * MiB, 2n * MiB]]);
    td.platform.machine.close();
  });

  it('to shared, a round that starts in RAM and runs into the hole: the rounds before it are converted, then the VMM stops the TD', () => {
    const td = tdWithHole();
    expect(mapGpa(td, (5n * MiB) | SHARED, 4n * MiB)).toMatchObject(vmStopped);
    expect(converted(td)).toEqual([[5n * MiB, 2n * MiB]]);
    td.platform.machine.close();
  });

  it('to private, RAM then the hole: the RAM round is converted (AUGed), then the VMM stops the TD', () => {
    const td = tdWithHole();
    expect(mapGpa(td, 6n * MiB, 4n * MiB)).toMatchObject(vmStopped);
    expect(converted(td)).toEqual([[6n * MiB, 2n * MiB]]);
    expect(td.platform.module.sept.walk(6n * MiB, 1).state).toBe('PENDING');
    td.platform.machine.close();
  });

  it('with an event pending, an ignored round in the hole still ends the call: RETRY, R11 = the next round', () => {
    const td = tdWithHole();
    td.platform.module.host.injectInterrupt(0x30);
    expect(mapGpa(td, (8n * MiB) | SHARED, 6n * MiB)).toEqual({ kind: 'return', regs: { r10: 1n, r11: (10n * MiB) | SHARED } });
    expect(td.trace.ofType('map-gpa')).toHaveLength(0);
    td.platform.machine.close();
  });

  it('all of the 48-bit space past RAM, to shared, answers SUCCESS at once, not in 2^26 rounds', () => {
    const td = finalizedTd();
    // Rounds counted, not timed: between two rounds the VMM looks for a pending event
    // (tdx_complete_vmcall_map_gpa), so the looks count the rounds it went through one by one.
    const host = td.platform.module.host;
    const pending = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(host), 'interruptPending')!.get!;
    let looks = 0;
    Object.defineProperty(host, 'interruptPending', { configurable: true, get() { looks++; return pending.call(host); } });
    expect(mapGpa(td, (16n * MiB) | SHARED, SHARED - 16n * MiB)).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(looks).toBeLessThanOrEqual(1);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA of more than 2 MiB (KVM tdx_complete_vmcall_map_gpa)', () => {
  it('converts every 2 MiB round in one call when no event is pending: SUCCESS, no RETRY', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n | SHARED, r13: 5n * MiB }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.trace.ofType('map-gpa').map((m) => [m.gpa, m.size])).toEqual([[0x400000n, 2n * MiB], [0x600000n, 2n * MiB], [0x800000n, MiB]]);
    td.platform.machine.close();
  });

  it('with an interrupt pending, stops after the first round: RETRY, R11 = the next GPA with the shared bit as given', () => {
    const td = finalizedTd();
    td.platform.module.host.injectInterrupt(0x30);
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n | SHARED, r13: 5n * MiB }))).toEqual({ kind: 'return', regs: { r10: 1n, r11: 0x600000n | SHARED } });
    expect(td.trace.ofType('map-gpa').map((m) => m.gpa)).toEqual([0x400000n]);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: MapGPA conversions', () => {
  it('to private, of 4K inside a 2 MiB private page: nothing to do, SUCCESS, the 2M leaf stays (KVM: "Nothing to do if the entire range has the desired attributes")', () => {
    const td = finalizedTd();
    const h = td.platform.module.host;
    h.memPageAug(gpaLevel(0x400000n, 1));
    const before = td.trace.events.length;
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x401000n, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.platform.module.sept.walk(0x401000n, 0)).toMatchObject({ level: 1, state: 'PENDING' });
    // No SEAMCALL that changes the S-EPT was made (and none failed).
    const calls = td.trace.events.slice(before).filter((e) => e.type === 'seamcall');
    expect(calls.filter((e) => e.leaf !== 'TDH_MEM_SEPT_RD')).toEqual([]);
    td.platform.machine.close();
  });

  it('to shared, of a page the host left BLOCKED: BLOCK answers ALREADY_BLOCKED and the VMM goes on to TRACK and REMOVE it', () => {
    const td = finalizedTd();
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0x400000n, 1));
    h.memPageAug(gpaLevel(0x401000n, 0));
    expect(h.memRangeBlock(gpaLevel(0x401000n, 0)).status).toBe(0n);
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x401000n | SHARED, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(seamcalls(td, 'TDH_MEM_PAGE_REMOVE')).toMatchObject([{ rcx: gpaLevel(0x401000n, 0), status: 0n }]);
    expect(td.platform.module.sept.walk(0x401000n, 0)).toMatchObject({ level: 0, state: 'FREE' });
    expect(td.platform.machine.gate.get('shared', 0x401000n)).toBe('readwrite');
    td.platform.machine.close();
  });

  // KVM zaps exactly the converted range: a huge leaf that straddles an end of it is split first
  // (tdx_sept_split_private_spt / TDH.MEM.PAGE.DEMOTE), a whole one is removed at its own level.
  const leafOps = (td: Td) => td.trace.events.filter((e) => e.type === 'seamcall' && (e.leaf === 'TDH_MEM_PAGE_DEMOTE' || e.leaf === 'TDH_MEM_PAGE_REMOVE'))
    .map((e) => [e.leaf, e.rcx]);
  const privateLeafTo2M = (td: Td) => {
    td.platform.module.host.memPageAug(gpaLevel(0x400000n, 1));
    return td.trace.events.length;
  };

  it.each([
    ['its first 4K', 0x400000n],
    ['its last 4K', 0x5ff000n],
  ])('to shared, of %s of a 2 MiB private page: DEMOTE, then REMOVE of that 4K only; the other 511 pages stay private', (_what, page) => {
    const td = finalizedTd();
    privateLeafTo2M(td);
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: page | SHARED, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(leafOps(td)).toEqual([['TDH_MEM_PAGE_DEMOTE', gpaLevel(0x400000n, 1)], ['TDH_MEM_PAGE_REMOVE', gpaLevel(page, 0)]]);
    const other = page === 0x400000n ? 0x5ff000n : 0x400000n;
    expect(td.platform.module.sept.walk(other, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    td.platform.machine.close();
  });

  it('to shared, of a whole 2 MiB private page: one REMOVE at 2M, no DEMOTE', () => {
    const td = finalizedTd();
    privateLeafTo2M(td);
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n | SHARED, r13: 0x200000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(leafOps(td)).toEqual([['TDH_MEM_PAGE_REMOVE', gpaLevel(0x400000n, 1)]]);
    td.platform.machine.close();
  });

  it('to shared, over a REMOVED 2M entry: there is no private page to take away, so no BLOCK (tdh_mem_range_block.c: an entry that maps nothing cannot be blocked)', () => {
    const td = finalizedTd();
    privateLeafTo2M(td);
    // The entry changes behind the VMM's back (as a test may set it): it reads it, as KVM would find it zapped.
    td.platform.module.sept.setState(1, 0x400000n, 'REMOVED');
    td.vmm.ctx.septMirror.loadState(new SeptMirror(td.platform.module.host.septTopLevel).saveState());
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n | SHARED, r13: 0x200000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(seamcalls(td, 'TDH_MEM_RANGE_BLOCK')).toEqual([]);
    td.platform.machine.close();
  });

  it('to private, of an aligned 2 MiB range: the SEPT page it needs, then one 2M AUG (the largest mapping the range allows)', () => {
    // A TD with no PD page yet over its first GiB: only the PML4 entry exists.
    const td = createTd({ memoryBytes: 16n * MiB });
    td.platform.module.host.memSeptAdd(gpaLevel(0n, 3));
    td.platform.module.host.mrFinalize();
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n, r13: 0x200000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(seamcalls(td, 'TDH_MEM_SEPT_ADD').at(-1)).toMatchObject({ rcx: gpaLevel(0n, 2), status: 0n });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toMatchObject([{ rcx: gpaLevel(0x400000n, 1), status: 0n }]);
    // The entries of a SEPT page it added are FREE, and the VMM knows it (KVM links and maps from its own tables): no read.
    expect(seamcalls(td, 'TDH_MEM_SEPT_RD')).toEqual([]);
    expect(td.platform.module.sept.walk(0x5ff000n, 0)).toMatchObject({ level: 1, state: 'PENDING' });
    td.platform.machine.close();
  });

  it('to private, of 2 MiB that is not 2M aligned: 512 AUGs at 4K (no 2M leaf can cover it)', () => {
    const td = finalizedTd();
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x401000n, r13: 0x200000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    const augs = seamcalls(td, 'TDH_MEM_PAGE_AUG');
    expect(augs).toHaveLength(512);
    expect(augs.every((e) => e.status === 0n && ((e.rcx as bigint) & 7n) === 0n)).toBe(true);
    expect([0x401000n, 0x5ff000n, 0x600000n].map((gpa) => td.platform.module.sept.walk(gpa, 0).state)).toEqual(['PENDING', 'PENDING', 'PENDING']);
    expect(td.platform.module.sept.walk(0x400000n, 0).state).toBe('FREE');
    td.platform.machine.close();
  });

  it('to shared and back to private: the shared mapping opens, then closes again (QEMU kvm_convert_memory discards the shared side)', () => {
    const td = finalizedTd();
    const page = 0x401000n;
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: page | SHARED, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.platform.module.host.isSharedMapped(page)).toBe(true);
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: page, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.platform.module.host.isSharedMapped(page)).toBe(false);
    expect(td.platform.machine.gate.get('shared', page)).toBe('none');
    expect(td.platform.module.sept.walk(page, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    td.platform.machine.close();
  });

  it('to private, over a REMOVED 4K entry: AUG takes REMOVED as it takes FREE (tdh_mem_page_aug.c), the page is PENDING', () => {
    const td = finalizedTd();
    td.platform.module.host.memSeptAdd(gpaLevel(0x400000n, 1));
    td.platform.module.sept.setState(0, 0x401000n, 'REMOVED');
    td.vmm.ctx.septMirror.loadState(new SeptMirror(td.platform.module.host.septTopLevel).saveState());
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x401000n, r13: 0x1000n }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toMatchObject([{ rcx: gpaLevel(0x401000n, 0), status: 0n }]);
    expect(td.platform.module.sept.walk(0x401000n, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: ACCEPT exits it satisfies (the entry the walk stopped at, made acceptable; then the guest\'s ACCEPT succeeds)', () => {
  // Each case: the S-EPT as the host's SEAMCALLs leave it, the exit TDG.MEM.PAGE.ACCEPT makes on it
  // (its walk, tdg_mem_page_accept.c), the VMM's answer, and then the same ACCEPT goes through.
  const PAGE = 0x401000n, REGION = 0x400000n;
  const acceptOn = (td: Td, gpa: bigint, reqLevel: SeptLevel): TdExit => {
    const walk = td.platform.module.sept.walk(gpa, reqLevel);
    return acceptExit(gpa, reqLevel, walk.level, walk.state);
  };
  /** A REMOVED entry (TDH.MEM.PAGE.REMOVE leaves FREE; REMOVED is set directly), the VMM's mirror reset as it does not know it. */
  const removed = (td: Td, gpa: bigint, level: SeptLevel) => {
    td.platform.module.sept.setState(level, gpa, 'REMOVED');
    td.vmm.ctx.septMirror.loadState(new SeptMirror(td.platform.module.host.septTopLevel).saveState());
  };
  const leaves = (td: Td, leaf: string, from = 0) => seamcalls(td, leaf).slice(from).map((e) => e.rcx);

  it.each([
    // A removed page is AUGed again at its own size (TDH.MEM.PAGE.AUG maps 4K or 2M); a 4K ACCEPT
    // in a removed 2M range then meets a PENDING 2M page, and the VMM demotes it (next exit).
    ['a REMOVED 4K page', 0 as SeptLevel, 'TDH_MEM_PAGE_AUG', gpaLevel(PAGE, 0), (td: Td) => {
      td.platform.module.host.memSeptAdd(gpaLevel(REGION, 1));
      removed(td, PAGE, 0);
    }],
    ['a REMOVED 2M page', 1 as SeptLevel, 'TDH_MEM_PAGE_AUG', gpaLevel(REGION, 1), (td: Td) => {
      removed(td, REGION, 1);
    }],
    // A 4K ACCEPT in a PENDING 2M page: BLOCK, TRACK, DEMOTE at 2M (then 512 PENDING 4K pages).
    ['a PENDING 2M page, accepted at 4K', 1 as SeptLevel, 'TDH_MEM_PAGE_DEMOTE', gpaLevel(REGION, 1), (td: Td) => {
      td.platform.module.host.memPageAug(gpaLevel(REGION, 1));
    }],
    // A blocked entry: TRACK, then UNBLOCK at the level the walk stopped at.
    ['a PENDING_BLOCKED 4K page', 0 as SeptLevel, 'TDH_MEM_RANGE_UNBLOCK', gpaLevel(PAGE, 0), (td: Td) => {
      td.platform.module.host.memSeptAdd(gpaLevel(REGION, 1));
      td.platform.module.host.memPageAug(gpaLevel(PAGE, 0));
      td.platform.module.host.memRangeBlock(gpaLevel(PAGE, 0));
    }],
    ['an NL_BLOCKED 4K table', 1 as SeptLevel, 'TDH_MEM_RANGE_UNBLOCK', gpaLevel(REGION, 1), (td: Td) => {
      td.platform.module.host.memSeptAdd(gpaLevel(REGION, 1));
      td.platform.module.host.memPageAug(gpaLevel(PAGE, 0));
      td.platform.module.host.memRangeBlock(gpaLevel(REGION, 1));
    }],
  ])('%s: the VMM resumes after its SEAMCALL, and the 4K ACCEPT then succeeds', (_what, errLevel, leaf, rcx, setUp) => {
    const td = finalizedTd();
    setUp(td);
    const m = td.platform.module;
    let exit = acceptOn(td, PAGE, 0);
    expect((exit as { eeq: { errLevel: number } }).eeq.errLevel).toBe(errLevel);
    const before = seamcalls(td, leaf).length;
    expect(td.vmm.decide(exit)).toEqual({ kind: 'resume' });
    expect(leaves(td, leaf, before)).toEqual([rcx]);
    // The ACCEPT again, with the VMM answering each exit it makes, until it succeeds (at most twice).
    for (let tries = 0; ; tries++) {
      const r = pageAccept(m, gpaLevel(PAGE, 0));
      if (r.kind === 'return') { expect(r.status).toBe(0n); break; }
      expect(r).toMatchObject({ kind: 'step', result: 'td-exit(accept)' });
      expect(tries).toBeLessThan(2);
      exit = acceptOn(td, PAGE, 0);
      expect(td.vmm.decide(exit)).toEqual({ kind: 'resume' });
    }
    expect(m.sept.walk(PAGE, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
    td.platform.machine.close();
  });

  it('a MAPPED (accepted, then BLOCKED) 4K page: TRACK and UNBLOCK at 4K', () => {
    const td = finalizedTd();
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(REGION, 1));
    h.memPageAug(gpaLevel(PAGE, 0));
    expect(pageAccept(td.platform.module, gpaLevel(PAGE, 0))).toMatchObject({ status: 0n });
    h.memRangeBlock(gpaLevel(PAGE, 0));
    const exit = acceptOn(td, PAGE, 0);
    expect(exit).toMatchObject({ eeq: { errLevel: 0, errState: 'BLOCKED' } });
    expect(td.vmm.decide(exit)).toEqual({ kind: 'resume' });
    expect(leaves(td, 'TDH_MEM_RANGE_UNBLOCK')).toEqual([gpaLevel(PAGE, 0)]);
    expect(td.platform.module.sept.walk(PAGE, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
    td.platform.machine.close();
  });

  it('an access (not an ACCEPT) to a REMOVED 2M page: AUG again at 2M (KVM faults in at the largest level the range allows), PENDING', () => {
    const td = finalizedTd();
    removed(td, REGION, 1);
    const access = privateAccess(PAGE, 'REMOVED');
    expect(td.vmm.decide(access)).toEqual({ kind: 'resume' });
    expect(leaves(td, 'TDH_MEM_PAGE_AUG')).toEqual([gpaLevel(REGION, 1)]);
    expect(td.platform.module.sept.walk(PAGE, 0)).toMatchObject({ level: 1, state: 'PENDING' });
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: ACCEPT exits it cannot or must not satisfy', () => {
  it('an EPT violation on a BLOCKED private GPA: nothing for the VMM to map there, it stops without an AUG', () => {
    const td = finalizedTd();
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0x400000n, 1));
    h.memPageAug(gpaLevel(0x401000n, 0));
    h.memRangeBlock(gpaLevel(0x401000n, 0));
    const before = seamcalls(td, 'TDH_MEM_PAGE_AUG').length;
    const access = privateAccess(0x401000n, 'BLOCKED', 'write');
    expect(td.vmm.decide(access)).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toHaveLength(before);
    td.platform.machine.close();
  });

  it('the ACCEPT handler given an exit without an ACCEPT qualification stops rather than resume', () => {
    const td = finalizedTd();
    const exit = { ...acceptExit(0x400000n, 0, 0, 'FREE'), eeq: { type: 'none', raw: 0n } } as Extract<TdExit, { reason: 'ept-violation' }>;
    expect(honestTdxPolicy.onAcceptViolation(td.vmm.ctx, exit)).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    td.platform.machine.close();
  });

  it('an ACCEPT or an access in a hole between RAM ranges: no AUG there (no memslot), the run ends as a fault', () => {
    const td = createTd({ memoryBytes: 16n * MiB, ram: [{ start: 0n, end: 8n * MiB }, { start: 12n * MiB, end: 16n * MiB }] });
    td.platform.module.host.memSeptAdd(gpaLevel(0n, 3));
    td.platform.module.host.memSeptAdd(gpaLevel(0n, 2));
    td.platform.module.host.mrFinalize();
    expect(td.vmm.decide(acceptExit(0x900000n, 0, 1, 'FREE'))).toMatchObject({ kind: 'stop', outcome: { outcome: 'fault' } });
    // So is a plain access there.
    const access = privateAccess(0x900000n, 'FREE', 'write');
    expect(td.vmm.decide(access)).toMatchObject({ kind: 'stop', outcome: { outcome: 'fault' } });
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toEqual([]);
    td.platform.machine.close();
  });

  it('a REMOVED 1G entry above the request: the VMM makes no AUG at 1G (TDH.MEM.PAGE.AUG maps 4K or 2M only) and stops', () => {
    const td = finalizedTd();
    const decision = td.vmm.decide(acceptExit(0x400000n, 0, 2, 'REMOVED'));
    expect(decision).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect((decision as { outcome: { reason: string } }).outcome.reason).toMatch(/^cannot satisfy ACCEPT of 0x400000: entry REMOVED at level 2/);
    expect(seamcalls(td, 'TDH_MEM_PAGE_AUG')).toEqual([]);
    td.platform.machine.close();
  });

  it('PENDING at the requested level (an exit the module never makes: tdg_mem_page_accept.c accepts that page itself): no DEMOTE, the VMM stops', () => {
    const td = finalizedTd();
    td.platform.module.host.memPageAug(gpaLevel(0x400000n, 1));
    expect(td.vmm.decide(acceptExit(0x400000n, 1, 1, 'PENDING'))).toMatchObject({ kind: 'stop', outcome: { outcome: 'vmm-error' } });
    expect(seamcalls(td, 'TDH_MEM_PAGE_DEMOTE')).toEqual([]);
    expect(td.platform.module.sept.walk(0x400000n, 0)).toMatchObject({ level: 1, state: 'PENDING' });
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: the stubs\' batched console (vendor TDG.VP.VMCALL R10 = 0x4d56, guest/include/minivisor/boot_abi.h)', () => {
  const PAGE = 0x400000n;
  /** A TD whose page PAGE is shared (converted by MapGPA) and holds `text` at `offset`. */
  const withSharedText = (text: string, offset: bigint, options: { ram?: { start: bigint; end: bigint }[] } = {}) => {
    const td = createTd({ memoryBytes: 16n * MiB, ...options });
    const h = td.platform.module.host;
    h.memSeptAdd(gpaLevel(0n, 3));
    h.memSeptAdd(gpaLevel(0n, 2));
    h.mrFinalize();
    td.platform.module.host.setShared(PAGE, 0x1000n, true);
    td.platform.module.host.hostMemory.write(PAGE + offset, Buffer.from(text, 'latin1'));
    return td;
  };
  const batch = (td: Td, gpa: bigint, count: bigint, r11 = 1n) => td.vmm.decide(vmcallExit({ r10: 0x4d56n, r11, r12: gpa, r13: count }));

  it('a batch that ends exactly at the end of its page is printed', () => {
    const td = withSharedText('0123456789abcde\n', 0xff0n);
    expect(batch(td, (PAGE + 0xff0n) | SHARED, 0x10n)).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.console.text).toBe('0123456789abcde\n');
    td.platform.machine.close();
  });

  it('another sub-function of that vendor call → SUBFUNC_UNSUPPORTED, nothing printed', () => {
    const td = withSharedText('Hi\n', 0n);
    expect(batch(td, PAGE | SHARED, 3n, 2n)).toEqual({ kind: 'return', regs: { r10: 0x8000000000000003n } });
    expect(td.console.text).toBe('');
    td.platform.machine.close();
  });

  it('a batch in a page the host cannot read (private: no shared mapping) → INVALID_OPERAND, nothing printed', () => {
    const td = withSharedText('Hi\n', 0n);
    td.platform.module.host.setShared(PAGE, 0x1000n, false);
    td.platform.module.host.memSeptAdd(gpaLevel(PAGE, 1));
    td.platform.module.host.memPageAug(gpaLevel(PAGE, 0));
    expect(batch(td, PAGE | SHARED, 3n)).toEqual({ kind: 'return', regs: { r10: INVALID_OPERAND } });
    expect(td.console.text).toBe('');
    td.platform.machine.close();
  });

  it('a batch that runs one byte into the next page, is longer than MV_CONSOLE_BATCH_MAX (0x7f0), or names a private GPA (no shared bit) → INVALID_OPERAND, nothing printed', () => {
    const td = withSharedText('x'.repeat(0x800), 0n);
    expect(batch(td, (PAGE + 0xff0n) | SHARED, 0x11n)).toEqual({ kind: 'return', regs: { r10: INVALID_OPERAND } });
    expect(batch(td, PAGE | SHARED, 0x7f1n)).toEqual({ kind: 'return', regs: { r10: INVALID_OPERAND } });
    expect(batch(td, PAGE, 3n)).toEqual({ kind: 'return', regs: { r10: INVALID_OPERAND } });
    expect(td.console.text).toBe('');
    // The largest batch the ABI allows is printed whole.
    expect(batch(td, PAGE | SHARED, 0x7f0n)).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.console.text).toBe('x'.repeat(0x7f0));
    td.platform.machine.close();
  });

  it('another vendor leaf (R10 other than 0x4d56) → SUBFUNC_UNSUPPORTED, nothing printed', () => {
    const td = withSharedText('Hi\n', 0n);
    expect(td.vmm.decide(vmcallExit({ r10: 0x4d57n, r11: 1n, r12: PAGE | SHARED, r13: 3n }))).toEqual({ kind: 'return', regs: { r10: 0x8000000000000003n } });
    expect(td.console.text).toBe('');
    td.platform.machine.close();
  });

  it('a batch in a hole between RAM ranges → INVALID_OPERAND, nothing printed', () => {
    const td = withSharedText('Hi\n', 0n, { ram: [{ start: 0n, end: PAGE }, { start: PAGE + 0x200000n, end: 16n * MiB }] });
    expect(batch(td, PAGE | SHARED, 3n)).toEqual({ kind: 'return', regs: { r10: INVALID_OPERAND } });
    expect(td.console.text).toBe('');
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: what counts as the same fault again (the run loop\'s no-progress guard)', () => {
  it('an EPT violation is the same fault only at the same RIP and GPA', () => {
    const td = finalizedTd();
    const fault = (rip: bigint, gpa: bigint): TdExit => ({
      reason: 'ept-violation', rip, gpa, access: 'read', space: 'private', exitQualification: 0n, outsideRam: false, eeq: { type: 'none', raw: 0n },
    });
    expect(td.vmm.sameFault(fault(0x1000n, 0x400000n), fault(0x1000n, 0x400000n))).toBe(true);
    // A loop touching one page from different instructions makes progress.
    expect(td.vmm.sameFault(fault(0x1000n, 0x400000n), fault(0x1004n, 0x400000n))).toBe(false);
    expect(td.vmm.sameFault(fault(0x1000n, 0x400000n), fault(0x1000n, 0x401000n))).toBe(false);
    // A HLT with interrupts blocked repeats only after the same HLT, not after a fault at its RIP.
    const hlt = { ...vmcallExit({ r11: 12n, r12: 1n }), rip: 0x1000n };
    expect(td.vmm.sameFault(hlt, hlt)).toBe(true);
    expect(td.vmm.sameFault(fault(0x1000n, 0x400000n), hlt)).toBe(false);
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: its part of a run and of a snapshot', () => {
  it('the end of a run shows a last console line that has no newline yet', () => {
    const echoed: string[] = [];
    const td = createTd({ memoryBytes: 16n * MiB, console: new Console((text) => echoed.push(text)) });
    for (const b of Buffer.from('last words')) td.console.write(b);
    td.vmm.finish();
    expect(echoed).toEqual(['last words']);
    td.platform.machine.close();
  });

  it('a restore gives a policy with state of its own the state it had at the snapshot', () => {
    let count = 0;
    const counting: TdxVmmPolicy = { ...honestTdxPolicy, saveState: () => count, loadState: (state) => { count = state as number; } };
    const td = createTd({ memoryBytes: 16n * MiB, policy: counting });
    count = 5;
    const saved = td.vmm.saveState();
    count = 9;
    td.vmm.loadState(saved);
    expect(count).toBe(5);
    td.platform.machine.close();
  });
});


describe('honest TDX VMM: a MapGPA to private cut short by a pending event (GHCI 1.5 §3.2 TDG.VP.VMCALL_RETRY)', () => {
  // KVM tdx_complete_vmcall_map_gpa answers RETRY between 2 MiB rounds when an event is pending,
  // R11 = the GPA to go on from; Linux's guest (arch/x86/coco/tdx/tdx.c tdx_map_gpa) checks R11
  // against its own start and end, which for a conversion to private carry no shared bit.
  it('R11 has no shared bit; only the first round is converted; the retry from R11 converts the rest', () => {
    const td = finalizedTd();
    td.platform.module.host.injectInterrupt(0x30);
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x400000n, r13: 4n * MiB }))).toEqual({ kind: 'return', regs: { r10: 1n, r11: 0x600000n } });
    expect(td.platform.module.sept.walk(0x400000n, 1).state).toBe('PENDING');
    expect(td.platform.module.sept.walk(0x600000n, 1).state).toBe('FREE');
    expect(td.vmm.decide(vmcallExit({ r11: 0x10001n, r12: 0x600000n, r13: 2n * MiB }))).toEqual({ kind: 'return', regs: { r10: 0n } });
    expect(td.platform.module.sept.walk(0x600000n, 1).state).toBe('PENDING');
    td.platform.machine.close();
  });
});

describe('honest TDX VMM: ReportFatalError and accesses it cannot serve', () => {
  /** `text` as Linux tdx_panic packs it: 64 bytes over R14, R15, RBX, RDI, RSI, R8, R9, RDX, NUL-padded. */
  const packed = (text: string): Partial<VmcallRegs> => {
    const buf = Buffer.alloc(64);
    buf.write(text, 'latin1');
    const regs = ['r14', 'r15', 'rbx', 'rdi', 'rsi', 'r8', 'r9', 'rdx'] as const;
    return Object.fromEntries(regs.map((r, i) => [r, buf.readBigUInt64LE(i * 8)]));
  };

  // tdx_panic: "VMM assumes '\0' in byte 65, if the message took all 64 bytes".
  it('a message of all 64 bytes is read whole; a shorter one ends at its NUL', () => {
    const td = finalizedTd();
    const full = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    expect(full).toHaveLength(64);
    expect(td.vmm.decide(vmcallExit({ r11: 0x10003n, r12: 0x1234n, ...packed(full) })))
      .toEqual({ kind: 'stop', outcome: { outcome: 'guest-fatal', reason: `ReportFatalError 0x1234: ${full}` } });
    expect(td.vmm.decide(vmcallExit({ r11: 0x10003n, r12: 0n, ...packed('oops') })))
      .toEqual({ kind: 'stop', outcome: { outcome: 'guest-fatal', reason: 'ReportFatalError 0x0: oops' } });
    td.platform.machine.close();
  });

  it('a shared access outside guest RAM ends the run as a fault naming the GPA and RIP, with no conversion', () => {
    const td = finalizedTd();
    const exit: TdExit = {
      reason: 'ept-violation', rip: 0x301000n, gpa: SHARED | 0x4000_0000n, access: 'read', space: 'shared', exitQualification: 1n,
      outsideRam: true, eeq: { type: 'none', raw: 0n },
    };
    const decision = td.vmm.decide(exit);
    expect(decision).toMatchObject({ kind: 'stop', outcome: { outcome: 'fault' } });
    expect((decision as { outcome: { reason: string } }).outcome.reason).toMatch(/outside its RAM at RIP 0x301000$/);
    expect(td.trace.ofType('map-gpa')).toHaveLength(0);
    td.platform.machine.close();
  });
});
