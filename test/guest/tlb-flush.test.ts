// When the machine flushes the emulator's TLB (native/src/machine.cc FlushTlb): only when an entry
// may hold what changed. Every case checks the guest-visible result as well as the flush count.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import { CR0_WP } from '../../src/cpu/registers.js';
import { acceptAll, enablePaging, installGdt, installIdt, loadCode, runToHlt, simpleGuest, type Mapping } from '../helpers/guest-setup.js';

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

  // A range of more pages than 64 per listed page is looked up in the sorted list of filled pages
  // (TlbMayHold): its last page must count as inside it.
  it('revoking a large range whose only touched page is its last one flushes', () => {
    const vm = simpleGuest(READ_RCX);
    try {
      const last = 0x5ff000n;
      expect(read(vm, last)).toMatchObject({ kind: 'hlt' });
      const before = flushes(vm);
      vm.gate.set('private', 0x400000n, 0x200000n, 'none');
      expect(flushes(vm)).toBe(before + 1);
      expect(read(vm, last)).toMatchObject({ kind: 'gate-fault', gpa: last });
    } finally {
      vm.close();
    }
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

// A revocation of a page the gate never let the guest fetch from: the fetch permissions it keeps
// cannot be what calls for the flush (a fetchable page's revocation is flushed for those alone).
describe('TLB flushes when a page that was never fetchable loses a permission', () => {
  const cases = [
    { from: 'readwrite', to: 'none', probe: 'read' },
    { from: 'read', to: 'none', probe: 'read' },
    { from: 'readwrite', to: 'read', probe: 'write' },
  ] as const;
  it.each(cases)('$from -> $to, after a $probe through the TLB: flushed, and the next $probe exits', ({ from, to, probe }) => {
    const vm = simpleGuest(`${READ_RCX}\n.org 0x100\nmov [rcx], rax\nhlt`);
    try {
      const gpa = 0x400000n;
      vm.gate.set('private', gpa, 0x1000n, from, 'none');
      const access = () => {
        vm.vcpu.regs.rip = probe === 'read' ? 0x1000n : 0x1100n;
        vm.vcpu.regs.rcx = gpa;
        return vm.vcpu.run();
      };
      expect(access()).toMatchObject({ kind: 'hlt' });
      const before = flushes(vm);
      vm.gate.set('private', gpa, 0x1000n, to, 'none');
      expect(flushes(vm)).toBe(before + 1);
      expect(access()).toMatchObject({ kind: 'gate-fault', gpa, access: probe });
    } finally {
      vm.close();
    }
  });
});

// A shared read of a 'ciphertext' page sees its shadow (the SNP guest key's ciphertext), of a 'read'
// page its plaintext: a change between the two changes what an entry maps, so it must go.
describe('TLB flushes between the plaintext and the ciphertext of a shared page', () => {
  const SHARED = 1n << 47n;
  const GPA = 0x500000n;
  /** A guest with the TDX shared bit as its marker (GPA | SHARED is a shared access) running `code`. */
  function sharedBitGuest(code: string): Machine {
    const vm = new Machine({ memoryBytes: 16n << 20n, marker: { kind: 'tdx-shared-bit', gpaWidth: 48 } });
    acceptAll(vm);
    installGdt(vm);
    loadCode(vm, code);
    return vm;
  }
  function sharedReader(): Machine {
    const vm = sharedBitGuest(`mov rcx, 0x${(SHARED | GPA).toString(16)}\nmov rax, [rcx]\nhlt`);
    vm.memory.writeU64(GPA, 0x77n);
    return vm;
  }
  const readAgain = (vm: Machine) => {
    vm.vcpu.regs.rip = 0x1000n;
    return vm.vcpu.run();
  };

  it('plaintext -> ciphertext: flushed, and the next read exits for the shadow, then sees it', () => {
    const vm = sharedReader();
    try {
      vm.gate.set('shared', GPA, 0x1000n, 'read', 'none');
      expect(readAgain(vm)).toMatchObject({ kind: 'hlt' });
      expect(vm.vcpu.regs.rax).toBe(0x77n);
      const before = flushes(vm);
      vm.gate.set('shared', GPA, 0x1000n, 'ciphertext', 'none');
      expect(flushes(vm)).toBe(before + 1);
      expect(readAgain(vm)).toMatchObject({ kind: 'gate-fault', space: 'shared', gpa: GPA, ciphertext: true });
      vm.gate.writeShadow(GPA, new Uint8Array(4096).fill(0xab));
      expect(readAgain(vm)).toMatchObject({ kind: 'hlt' });
      expect(vm.vcpu.regs.rax).toBe(0xababababababababn);
    } finally {
      vm.close();
    }
  });

  // A private write makes the shadow stale when its fill sees it (shared entries of the old shadow
  // may serve reads until the next flush, still ciphertext: machine.cc OnTlbFill). So a private
  // write entry filled before the shadow was computed must not outlive it, or the guest's writes
  // through it would leave the old ciphertext valid past every later flush.
  it('a shadow written while a private write entry maps the page: a later private write still makes it stale', () => {
    const vm = sharedBitGuest(`
        mov rcx, 0x${GPA.toString(16)}
        mov qword ptr [rcx], 1
        mov rdx, 0x${(SHARED | GPA).toString(16)}
        mov rax, [rdx]
        mov qword ptr [rcx], 2
        hlt
        .org 0x100
        mov rax, [rdx]
        hlt`);
    try {
      vm.gate.set('shared', GPA, 0x1000n, 'ciphertext', 'none');
      // A neighbour's shadow first: mapping the shadow's memory in the emulator (the first shadow
      // of its chunk) drops every TLB entry by itself, which would hide what is tested here.
      vm.gate.writeShadow(GPA + 0x1000n, new Uint8Array(4096));
      expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', space: 'shared', gpa: GPA, ciphertext: true });
      vm.gate.writeShadow(GPA, new Uint8Array(4096).fill(0x11));
      expect(vm.vcpu.run()).toMatchObject({ kind: 'hlt' });
      expect([vm.vcpu.regs.rax, vm.memory.readU64(GPA)]).toEqual([0x1111111111111111n, 2n]);
      const before = flushes(vm);
      vm.vcpu.writeSpecial('efer', vm.vcpu.readSpecial('efer') ^ (1n << 11n));  // any flush
      expect(flushes(vm)).toBe(before + 1);
      vm.vcpu.regs.rip = 0x1100n;
      expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', space: 'shared', gpa: GPA, ciphertext: true });
    } finally {
      vm.close();
    }
  });

  // The shared entry of the old shadow may serve reads until the next flush, and the next gate
  // change must be one (machine.cc SetGate: stale_shadow_mapping_): one that changes nothing of
  // the page's gate (an RMPUPDATE that assigns it again), or one of another page never touched.
  // After it the guest's shared read asks for the shadow of what it wrote.
  it.each([
    ['of the page, to the same gate', ['shared', GPA, 'ciphertext', 'none']],
    ['of another page, never touched', ['private', 0xa00000n, 'read', 'any']],
  ] as const)('a private write after a shared read of the shadow: the next gate change (%s) flushes, and the next read asks again', (_what, [space, gpa, access, fetch]) => {
    const vm = sharedBitGuest(`
        mov rcx, 0x${GPA.toString(16)}
        mov rdx, 0x${(SHARED | GPA).toString(16)}
        mov rax, [rdx]
        mov qword ptr [rcx], 3
        hlt
        .org 0x100
        mov rax, [rdx]
        hlt`);
    try {
      vm.gate.set('shared', GPA, 0x1000n, 'ciphertext', 'none');
      vm.gate.writeShadow(GPA, new Uint8Array(4096).fill(0x22));
      expect(vm.vcpu.run()).toMatchObject({ kind: 'hlt' });
      expect([vm.vcpu.regs.rax, vm.memory.readU64(GPA)]).toEqual([0x2222222222222222n, 3n]);
      const before = flushes(vm);
      vm.gate.set(space, gpa, 0x1000n, access, fetch);
      expect(flushes(vm)).toBe(before + 1);
      vm.vcpu.regs.rip = 0x1100n;
      expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', space: 'shared', gpa: GPA, ciphertext: true });
    } finally {
      vm.close();
    }
  });

  it('ciphertext -> plaintext: flushed, and the next read sees the plaintext', () => {
    const vm = sharedReader();
    try {
      vm.gate.set('shared', GPA, 0x1000n, 'ciphertext', 'none');
      vm.gate.writeShadow(GPA, new Uint8Array(4096).fill(0xcd));
      expect(readAgain(vm)).toMatchObject({ kind: 'hlt' });
      expect(vm.vcpu.regs.rax).toBe(0xcdcdcdcdcdcdcdcdn);
      const before = flushes(vm);
      vm.gate.set('shared', GPA, 0x1000n, 'read', 'none');
      expect(flushes(vm)).toBe(before + 1);
      expect(readAgain(vm)).toMatchObject({ kind: 'hlt' });
      expect(vm.vcpu.regs.rax).toBe(0x77n);
    } finally {
      vm.close();
    }
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

/** The guest-physical address of the 4 KiB leaf entry that maps `va` (4-level tables from CR3). */
function leafEntryAddress(vm: Machine, va: bigint): bigint {
  let table = vm.vcpu.readSpecial('cr3') & ~0xfffn;
  for (const shift of [39n, 30n, 21n]) table = vm.memory.readU64(table + ((va >> shift) & 511n) * 8n) & 0x000ffffffffff000n;
  return table + ((va >> 12n) & 511n) * 8n;
}

const LOW_2M: Mapping = { va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n };

describe('TLB across a snapshot restore (RestoreSnapshot keeps it when no entry can differ)', () => {
  it('a store through an entry the restore kept is restored again by the next restore', () => {
    const vm = simpleGuest('add qword ptr [0x400000], 1\nhlt');
    vm.memory.writeU64(0x400000n, 40n);
    const snap = vm.snapshot();
    runToHlt(vm);
    expect(vm.memory.readU64(0x400000n)).toBe(41n);
    for (let round = 0; round < 3; round++) {
      const before = { flushes: flushes(vm), fills: vm.memoryCounters().tlbFills };
      vm.restore(snap);
      expect(vm.memory.readU64(0x400000n)).toBe(40n);
      expect(vm.dirtyPages()).toBe(0);
      runToHlt(vm);                                                    // the kept write entry: no fill sees this store
      expect(vm.memory.readU64(0x400000n)).toBe(41n);
      expect({ flushes: flushes(vm), fills: vm.memoryCounters().tlbFills }).toEqual(before);
    }
    vm.restore(snap);
    expect(vm.memory.readU64(0x400000n)).toBe(40n);
  });

  it('a page the restore zeroes by Fill after a kept entry wrote it comes back whole', () => {
    const vm = simpleGuest('mov qword ptr [0x400800], 9\nhlt');
    vm.memory.writeU64(0x400000n, 1n);                                 // held sparse by the snapshot
    const snap = vm.snapshot();
    runToHlt(vm);
    vm.restore(snap);
    runToHlt(vm);                                                      // through the kept entry
    vm.memory.fill(0x400000n, 0x1000n, 0);                             // must not take the page for the snapshot's
    vm.restore(snap);
    expect([vm.memory.readU64(0x400000n), vm.memory.readU64(0x400800n)]).toEqual([1n, 0n]);
  });

  it('flushes when the restore takes back a gate permission an entry was filled with', () => {
    const vm = simpleGuest(READ_RCX);
    vm.memory.writeU64(0x400000n, 7n);
    vm.gate.set('private', 0x400000n, 0x1000n, 'none');
    const snap = vm.snapshot();
    vm.gate.set('private', 0x400000n, 0x1000n, 'read');               // adds a permission: no flush
    expect(read(vm, 0x400000n)).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(7n);
    vm.restore(snap);
    expect(read(vm, 0x400000n)).toMatchObject({ kind: 'gate-fault', gpa: 0x400000n });
  });

  it('flushes when the restore watches the content of a page an entry maps again', () => {
    // RDI set: store to the page (ending its page-granular watch), then read it; clear: read first.
    const vm = simpleGuest(`
      test rdi, rdi
      jz 1f
      mov qword ptr [0x400000], 1
    1:
      mov rbx, [0x400008]
      hlt`);
    vm.memory.writeU64(0x400008n, 0xabn);                             // someone else's content
    vm.watchContent(0x400000n, 0x1000n, true, 'page');
    const snap = vm.snapshot();
    vm.vcpu.regs.rdi = 1n;
    runToHlt(vm);
    expect(vm.takeForeignReads()).toEqual([]);                         // its own store came first
    vm.restore(snap);                                                  // RDI 0, the page watched again
    runToHlt(vm);
    expect(vm.vcpu.regs.rbx).toBe(0xabn);
    expect(vm.takeForeignReads().map((r) => r.gpa & ~0xfffn)).toEqual([0x400000n]);
  });

  it('flushes when the restore puts back a paging-structure entry a fill walked', () => {
    const vm = simpleGuest(READ_RCX);
    enablePaging(vm, [LOW_2M, { va: 0x40000000n, pa: 0x400000n, size: 0x1000n, pageSize: 4096n }]);
    vm.memory.writeU64(0x400000n, 4n);
    vm.memory.writeU64(0x500000n, 5n);
    const snap = vm.snapshot();
    const leaf = leafEntryAddress(vm, 0x40000000n);
    vm.memory.writeU64(leaf, vm.memory.readU64(leaf) + 0x100000n);    // now maps 0x500000
    expect(read(vm, 0x40000000n)).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(5n);
    vm.restore(snap);
    expect(read(vm, 0x40000000n)).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(4n);
  });

  it('flushes when the restore puts back another CR3', () => {
    const vm = simpleGuest(READ_RCX);
    vm.memory.writeU64(0x400000n, 4n);
    vm.memory.writeU64(0x500000n, 5n);
    const next = enablePaging(vm, [LOW_2M, { va: 0x40000000n, pa: 0x500000n, size: 0x1000n, pageSize: 4096n }]);
    const other = vm.vcpu.readSpecial('cr3');
    enablePaging(vm, [LOW_2M, { va: 0x40000000n, pa: 0x400000n, size: 0x1000n, pageSize: 4096n }], next);
    const snap = vm.snapshot();
    vm.vcpu.writeSpecial('cr3', other);
    expect(read(vm, 0x40000000n)).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(5n);
    vm.restore(snap);
    expect(read(vm, 0x40000000n)).toMatchObject({ kind: 'hlt' });
    expect(vm.vcpu.regs.rax).toBe(4n);
  });
});

describe('TLB across a snapshot restore, walks after a flush inside a run', () => {
  it('counts the upper-level tables a walk took from its memo after the flush', () => {
    // Reads VA 0x40000000, runs enough instructions for the code page to get its code bits (a TLB
    // flush inside the run, native/src/machine.cc CodeBitsFor), then, in the same block (no fetch
    // fill between), reads VA 0x40001000 in the same 2 MiB region: a walk that takes its upper
    // levels from the memo of the first.
    const vm = simpleGuest(`
      mov rax, [rcx]
      .rept 80
      nop
      .endr
      mov rbx, [rcx + 0x1000]
      hlt`);
    enablePaging(vm, [LOW_2M, { va: 0x40000000n, pa: 0x400000n, size: 0x2000n, pageSize: 4096n }]);
    for (const gpa of [0x400000n, 0x401000n, 0x500000n, 0x501000n]) vm.memory.writeU64(gpa, gpa);
    // A second page table for the region, mapping it to 0x500000, and the PDE that names the first.
    const ptA = leafEntryAddress(vm, 0x40000000n) & ~0xfffn;
    const ptB = 0x300000n;
    vm.memory.write(ptB, vm.memory.read(ptA, 0x1000));
    for (const i of [0n, 1n]) vm.memory.writeU64(ptB + i * 8n, vm.memory.readU64(ptA + i * 8n) + 0x100000n);
    let pde = vm.vcpu.readSpecial('cr3') & ~0xfffn;
    for (const shift of [39n, 30n]) pde = vm.memory.readU64(pde + ((0x40000000n >> shift) & 511n) * 8n) & 0x000ffffffffff000n;
    pde += ((0x40000000n >> 21n) & 511n) * 8n;
    vm.vcpu.regs.rcx = 0x40000000n;
    const snap = vm.snapshot();
    vm.memory.writeU64(pde, (vm.memory.readU64(pde) & 0xfffn) | ptB);  // this run: the region maps 0x500000
    const before = flushes(vm);
    runToHlt(vm);
    expect([vm.vcpu.regs.rax, vm.vcpu.regs.rbx]).toEqual([0x500000n, 0x501000n]);
    expect(flushes(vm)).toBeGreaterThan(before);                       // the flush inside the run
    vm.restore(snap);
    runToHlt(vm);
    expect([vm.vcpu.regs.rax, vm.vcpu.regs.rbx]).toEqual([0x400000n, 0x401000n]);
  });
});
