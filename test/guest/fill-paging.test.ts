// The TLB-fill hook walks a data fill with the paging registers the last fetch fill read
// (native/src/machine.cc TranslateForFill): a guest's own CR3 or CR0.WP write must still be seen
// by its next data access, which QEMU's TLB flush and the fetch fill after it make sure of.
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
});
