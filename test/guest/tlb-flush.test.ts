// When the machine flushes the emulator's TLB (native/src/machine.cc FlushTlb): only when an entry
// may hold what changed. Every case checks the guest-visible result as well as the flush count.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import { CR0_WP } from '../../src/cpu/registers.js';
import { enablePaging, installIdt, runToHlt, simpleGuest } from '../helpers/guest-setup.js';

const flushes = (vm: Machine) => vm.memoryCounters().tlbFlushes;

/** Code at 0x1000 that reads the qword at RCX; read() runs it for one guest-physical address. */
const READ_RCX = 'mov rax, [rcx]\nhlt';
function read(vm: Machine, gpa: bigint) {
  vm.vcpu.regs.rip = 0x1000n;
  vm.vcpu.regs.rcx = gpa;
  return vm.vcpu.run();
}

describe('TLB flushes on gate changes', () => {
  it('revoking pages no TLB entry maps needs no flush, and is enforced all the same', () => {
    const vm = simpleGuest(READ_RCX);
    vm.memory.writeU64(0x400000n, 7n);
    expect(read(vm, 0x400000n)).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(7n);
    const before = flushes(vm);
    vm.gate.set('private', 0x500000n, 0x200000n, 'none');           // never touched: no flush
    expect(flushes(vm)).toBe(before);
    expect(read(vm, 0x5ff000n)).toMatchObject({ kind: 'gate-fault', gpa: 0x5ff000n });
    vm.gate.set('private', 0x400000n, 0x1000n, 'none');             // mapped by the TLB: flushed
    expect(flushes(vm)).toBe(before + 1);
    expect(read(vm, 0x400000n)).toMatchObject({ kind: 'gate-fault', gpa: 0x400000n });
  });

  it('a revocation after a flush needs no other flush for pages touched only before it', () => {
    const vm = simpleGuest(READ_RCX);
    expect(read(vm, 0x400000n)).toMatchObject({ kind: 'hlt' });
    const snap = vm.snapshot();                                      // flushes
    const before = flushes(vm);
    vm.gate.set('private', 0x400000n, 0x1000n, 'read');               // touched before the flush only
    expect(flushes(vm)).toBe(before);
    vm.restore(snap);
  });

  it('keeps a large revocation exact when the run touched more pages than it lists', () => {
    // 65,536 pages are listed between two flushes (kMaxTlbPages); the guest reads one qword of each
    // of 69,632 pages from 0x1000000 on, so the last ones are not listed and must still be flushed.
    const vm = simpleGuest(`
      mov rcx, 0x1000000
      mov rdx, 0x1000000 + 69632 * 0x1000
    1:
      mov rax, [rcx]
      add rcx, 0x1000
      cmp rcx, rdx
      jne 1b
      hlt
      .org 0x100
      mov rax, [rcx]
      hlt`, { memoryBytes: 512n << 20n });
    runToHlt(vm);
    const last = 0x1000000n + 69631n * 0x1000n;
    const before = flushes(vm);
    vm.gate.set('private', last, 0x1000n, 'none');
    expect(flushes(vm)).toBe(before + 1);
    vm.vcpu.regs.rip = 0x1100n;
    vm.vcpu.regs.rcx = last;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', gpa: last });
  });
});

describe('TLB flushes on register writes', () => {
  it('flushes when CR0, CR3, CR4 or EFER changes, not for other registers or the same value', () => {
    const vm = simpleGuest('mov qword ptr [rcx], 5\nhlt');
    // VA 0x40000000 maps GPA 0x400000 read-only; with CR0.WP clear, supervisor writes ignore that.
    enablePaging(vm, [{ va: 0x40000000n, pa: 0x400000n, size: 0x1000n, pageSize: 4096n, writable: false },
      { va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n }]);
    const cr0 = vm.vcpu.readSpecial('cr0');
    vm.vcpu.writeSpecial('cr0', cr0 & ~CR0_WP);
    vm.vcpu.regs.rcx = 0x40000000n;
    runToHlt(vm);
    expect(vm.memory.readU64(0x400000n)).toBe(5n);
    let before = flushes(vm);
    vm.vcpu.writeSpecial('gsBase', 0x1234000n);
    vm.vcpu.writeSpecial('idtrLimit', 0xfffn);
    vm.vcpu.writeSpecial('cr3', vm.vcpu.readSpecial('cr3'));
    vm.vcpu.writeSpecial('cr2', 0xdead000n);
    expect(flushes(vm)).toBe(before);
    expect(vm.vcpu.readSpecial('cr2')).toBe(0xdead000n);
    vm.vcpu.writeSpecial('cr0', cr0);                                 // WP back on: the write entry must go
    expect(flushes(vm)).toBe(before + 1);
    vm.vcpu.regs.rip = 0x1000n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14 });
    before = flushes(vm);
    vm.vcpu.writeSpecial('efer', vm.vcpu.readSpecial('efer') | (1n << 11n));
    expect(flushes(vm)).toBe(before + 1);
  });
});

describe('TLB across event injection', () => {
  it('delivering a #PF with CR2 keeps the emulator TLB: a second delivery refills nothing, and the handler reads CR2', () => {
    const vm = simpleGuest(`
    1:
      mov rax, [rcx]
      .byte 0x66, 0x0f, 0x01, 0xcc     # TDCALL: an exit to the host
      jmp 1b
      .org 0x1000
      add rsp, 8                       # the error code
      mov rdx, cr2
      mov rax, [rcx]
      iretq`);
    installIdt(vm, { 14: 0x2000n });
    enablePaging(vm, [{ va: 0n, pa: 0n, size: 16n << 20n, pageSize: 0x200000n }]);
    vm.vcpu.regs.rcx = 0x400000n;
    const deliver = (cr2: bigint) => {
      const exit = vm.vcpu.run();
      expect(exit.kind).toBe('tdcall');
      vm.vcpu.complete(exit as { length: number });
      vm.vcpu.inject(14, 0n, cr2);
      expect(vm.vcpu.readSpecial('cr2')).toBe(cr2);
    };
    deliver(0xdead000n);
    deliver(0xbeef000n);                                               // every page the loop and handler use is in the TLB now
    const fills = vm.memoryCounters().tlbFills;
    expect(vm.vcpu.run().kind).toBe('tdcall');
    expect(vm.vcpu.regs.rdx).toBe(0xbeef000n);
    expect(vm.memoryCounters().tlbFills).toBe(fills);
  });
});
