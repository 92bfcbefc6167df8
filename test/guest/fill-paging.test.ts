// The TLB-fill hook walks a data fill with the paging registers the last fetch fill read
// (native/src/machine.cc TranslateForFill): a guest's own CR3 or CR0.WP write must still be seen
// by its next data access, which QEMU's TLB flush and the fetch fill after it make sure of. And
// it starts a walk below the upper entries of the last one in the same 2 MiB (WalkMemo,
// native/src/page_walk.h) only while they hold the same values, and reads a PTE from the table
// the last one read without asking the page gate again only within the same emulation.
import { describe, expect, it } from 'vitest';
import { PT_BASE, enablePaging, simpleGuest } from '../helpers/guest-setup.js';

const VA = 0x40000000n;
const CODE = { va: 0n, pa: 0n, size: 0x200000n, pageSize: 0x200000n } as const;

describe('paging registers the TLB-fill hook keeps between fills', () => {
  it('a guest MOV to CR3 changes what the next data access translates to', () => {
    const vm = simpleGuest(`
      mov rax, [rcx]
      mov cr3, rdx
      mov rbx, [rcx]
      hlt`);
    vm.memory.writeU64(0x400000n, 0x1111n);
    vm.memory.writeU64(0x500000n, 0x2222n);
    const tablesB = enablePaging(vm, [CODE, { va: VA, pa: 0x400000n, size: 0x1000n, pageSize: 4096n }]);
    enablePaging(vm, [CODE, { va: VA, pa: 0x500000n, size: 0x1000n, pageSize: 4096n }], tablesB);
    vm.vcpu.writeSpecial('cr3', PT_BASE);
    vm.vcpu.regs.rcx = VA;
    vm.vcpu.regs.rdx = tablesB;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(0x1111n);
    expect(vm.vcpu.regs.rbx).toBe(0x2222n);
  });

  it('after a guest MOV to CR3, no walk starts from the old tables\' entries, though they still hold the same values', () => {
    // The last fill before the switch and the fetch fill after it are in the same 2 MiB as the
    // next data access, which tables B map elsewhere.
    const vm = simpleGuest(`
      mov rax, [0x3000]
      mov cr3, rdx
      mov rbx, [0x3000]
      hlt`);
    vm.memory.writeU64(0x3000n, 0x1111n);
    vm.memory.writeU64(0x403000n, 0x2222n);
    const tablesB = enablePaging(vm, [CODE]);
    enablePaging(vm, [{ va: 0n, pa: 0n, size: 0x3000n, pageSize: 4096n }, { va: 0x3000n, pa: 0x403000n, size: 0x1000n, pageSize: 4096n },
      { va: 0x4000n, pa: 0x4000n, size: 0x1fc000n, pageSize: 4096n }], tablesB);
    vm.vcpu.writeSpecial('cr3', PT_BASE);
    vm.vcpu.regs.rdx = tablesB;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(0x1111n);
    expect(vm.vcpu.regs.rbx).toBe(0x2222n);
  });

  it('a guest MOV to CR0 that clears and sets WP changes whether a read-only page can be written', () => {
    const vm = simpleGuest(`
      mov rax, cr0
      btr rax, 16
      mov cr0, rax
      mov qword ptr [rcx], 5
      bts rax, 16
      mov cr0, rax
      mov qword ptr [rcx + 8], 6
      hlt`);
    enablePaging(vm, [CODE, { va: VA, pa: 0x400000n, size: 0x1000n, pageSize: 4096n, writable: false }]);
    vm.vcpu.regs.rcx = VA;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14 });
    expect(vm.memory.readU64(0x400000n)).toBe(5n);
    expect(vm.memory.readU64(0x400008n)).toBe(0n);
  });

  it('a guest that rewrites a PDE sees the new page table at its next fill in that 2 MiB, with no INVLPG', () => {
    const vm = simpleGuest(`
      mov [rdx], rdi
      mov rax, [rcx]
      mov [rdx], rsi
      mov rbx, [rcx + 0x1000]
      hlt`);
    vm.memory.writeU64(0x400000n, 0x3333n);
    vm.memory.writeU64(0x400000n, 0x3333n);
    vm.memory.writeU64(0x401000n, 0x1111n);
    vm.memory.writeU64(0x501000n, 0x2222n);
    const free = enablePaging(vm, [CODE, { va: VA, pa: 0x400000n, size: 0x2000n, pageSize: 4096n }]);
    const next = (table: bigint, index: bigint) => vm.memory.readU64(table + index * 8n) & 0x000ffffffffff000n;
    const pd = next(next(PT_BASE, (VA >> 39n) & 511n), (VA >> 30n) & 511n);
    const pde = pd + ((VA >> 21n) & 511n) * 8n;
    const tableB = free;                                             // maps VA + 0x1000 to 0x501000
    vm.memory.fill(tableB, 0x1000n, 0);
    vm.memory.writeU64(tableB + 8n, 0x501000n | 3n);
    vm.vcpu.regs.rcx = VA;
    vm.vcpu.regs.rdx = pde;                                          // identity-mapped by CODE
    vm.vcpu.regs.rdi = vm.memory.readU64(pde);                       // first the same value: its page's fill comes first
    vm.vcpu.regs.rsi = tableB | 3n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(0x3333n);
    expect(vm.vcpu.regs.rbx).toBe(0x2222n);
  });

  it('a page table the gate closes between runs blocks the next walk through it, though the last walk read it', () => {
    const vm = simpleGuest('mov rax, [rcx]\nhlt');
    vm.memory.writeU64(0x400000n, 0x1111n);
    enablePaging(vm, [CODE, { va: VA, pa: 0x400000n, size: 0x2000n, pageSize: 4096n }]);
    const next = (table: bigint, index: bigint) => vm.memory.readU64(table + index * 8n) & 0x000ffffffffff000n;
    const pt = next(next(next(PT_BASE, (VA >> 39n) & 511n), (VA >> 30n) & 511n), (VA >> 21n) & 511n);
    const run = (va: bigint) => {
      vm.vcpu.regs.rip = 0x1000n;
      vm.vcpu.regs.rcx = va;
      return vm.vcpu.run();
    };
    expect(run(VA)).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(0x1111n);
    // No TLB entry maps the table page itself, so this needs no flush; the next PTE read from it
    // (another page of the same table) must still be refused.
    vm.gate.set('private', pt, 0x1000n, 'none');
    expect(run(VA + 0x1000n)).toMatchObject({ kind: 'gate-fault', pageWalk: true, gpa: pt, gva: VA + 0x1000n });
  });
});
