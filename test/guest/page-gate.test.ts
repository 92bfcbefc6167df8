import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import { acceptAll, enablePaging, installGdt, IRETQ_TO_CPL3, loadCode, runToHlt, simpleGuest } from '../helpers/guest-setup.js';

const MiB = 1n << 20n;

describe('page gate', () => {
  it('refuses a read of an unaccepted page with the precise RIP, and the retry succeeds once accepted', () => {
    const vm = simpleGuest(`
      mov rcx, 0x400000
      add rbx, 1
      add rbx, 1
      mov rax, [rcx]
      add rbx, 1
      hlt`);
    vm.gate.set('private', 0x400000n, 0x1000n, 'none');
    vm.memory.writeU64(0x400000n, 0x1122334455667788n);
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'gate-fault', gpa: 0x400000n, gva: 0x400000n, access: 'read', space: 'private', pageWalk: false });
    // The two adds before the faulting load ran exactly once; the one after did not run.
    expect(exit.rip).toBe(0x100fn);
    expect(vm.vcpu.regs.rbx).toBe(2n);
    vm.gate.set('private', 0x400000n, 0x1000n, 'readwrite');
    runToHlt(vm);
    expect(vm.vcpu.regs.rax).toBe(0x1122334455667788n);
    expect(vm.vcpu.regs.rbx).toBe(3n);
  });

  it('a refused write leaves memory unchanged; read-only pages allow reads', () => {
    const vm = simpleGuest(`
      mov rcx, 0x400000
      mov rax, [rcx]
      mov qword ptr [rcx], 0x55
      hlt`);
    vm.memory.writeU64(0x400000n, 0xaan);
    vm.gate.set('private', 0x400000n, 0x1000n, 'read');
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'gate-fault', access: 'write', gpa: 0x400000n, rip: 0x100an });
    expect(vm.vcpu.regs.rax).toBe(0xaan);
    expect(vm.memory.readU64(0x400000n)).toBe(0xaan);
  });

  it('refuses an instruction fetch from an unaccepted page', () => {
    const vm = simpleGuest('mov rax, 0x600000\njmp rax');
    vm.gate.set('private', 0x600000n, 0x1000n, 'none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: 0x600000n, rip: 0x600000n });
  });

  it('reports accesses beyond RAM as outside RAM', () => {
    const vm = simpleGuest('mov rcx, 0x4000000\nmov rax, [rcx]\nhlt');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', outsideRam: true, gpa: 0x4000000n });
  });

  it('changing the gate for many GiB is one call and is enforced at once', () => {
    const vm = new Machine({ memoryBytes: 64n << 30n });
    acceptAll(vm, 16n * MiB);
    installGdt(vm);
    loadCode(vm, 'mov rcx, 0x7ffff000\nmov rax, [rcx]\nhlt');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', gpa: 0x7ffff000n });
    vm.gate.set('private', 0n, 64n << 30n, 'readwrite');
    expect(vm.gate.count('private', 0n, 64n << 30n)).toBe((64n << 30n) / 4096n);
    runToHlt(vm);
    vm.gate.set('private', 0x40000000n, 32n << 30n, 'none');
    expect(vm.gate.count('private', 0n, 64n << 30n)).toBe((32n << 30n) / 4096n);
    expect(vm.gate.get('private', 0x40000000n)).toBe('none');
    expect(vm.gate.get('private', 0x3ffff000n)).toBe('readwrite');
  });

  it('closing part of an open range closes exactly that part, whether it ends inside a 64-page word or spans whole bitmap pages', () => {
    // One 4 KiB page of a gate bitmap covers 128 MiB of guest pages; the cleared range starts and ends mid-word.
    const vm = new Machine({ memoryBytes: 2n << 30n });
    try {
      vm.gate.set('shared', 0n, 1536n * MiB, 'readwrite');
      const from = 100n * MiB + 3n * 4096n, to = 900n * MiB - 5n * 4096n;
      vm.gate.set('shared', from, to - from, 'none');
      expect(vm.gate.count('shared', 0n, 2n << 30n)).toBe((1536n * MiB - (to - from)) / 4096n);
      expect(vm.gate.get('shared', from - 4096n)).toBe('readwrite');
      expect(vm.gate.get('shared', from)).toBe('none');
      expect(vm.gate.get('shared', 512n * MiB)).toBe('none');
      expect(vm.gate.get('shared', to - 4096n)).toBe('none');
      expect(vm.gate.get('shared', to)).toBe('readwrite');
      // Closing what was never opened, and reopening across the closed part.
      vm.gate.set('shared', 1536n * MiB, 512n * MiB, 'none');
      vm.gate.set('shared', 0n, 2n << 30n, 'read');
      expect(vm.gate.count('shared', 0n, 2n << 30n)).toBe((2n << 30n) / 4096n);
      expect(vm.gate.get('shared', 512n * MiB)).toBe('read');
    } finally {
      vm.close();
    }
  });
});

describe('page gate: its ranges (README: every range is 4 KiB aligned and inside guest RAM)', () => {
  it('a range that is not 4 KiB aligned, runs past the end of RAM or is negative is a RangeError naming it, for every operation', () => {
    const end = 16n * MiB;
    const vm = new Machine({ memoryBytes: end });
    try {
      // The error says what is wrong with which range (the native layer's own check says neither).
      const misaligned = (gpa: bigint) => new RegExp(`4 KiB aligned \\(gpa 0x${gpa.toString(16)}`);
      const outside = (gpa: bigint) => new RegExp(`range 0x${gpa.toString(16)}\\+.* is outside guest RAM`);
      const bad: [bigint, bigint, RegExp][] = [
        [0x1800n, 0x1000n, misaligned(0x1800n)], [0x1000n, 0x800n, misaligned(0x1000n)],
        [end - 0x1000n, 0x2000n, outside(end - 0x1000n)], [end, 0x1000n, outside(end)],
        [-0x1000n, 0x1000n, outside(-0x1000n)], [0x1000n, -0x1000n, outside(0x1000n)],
        [-0x2000n, 0x3000n, outside(-0x2000n)], [0x3000n, -0x1000n, outside(0x3000n)],
      ];
      for (const [gpa, length, error] of bad) {
        expect(() => vm.gate.set('private', gpa, length, 'read'), `set ${gpa} +${length}`).toThrow(error);
        expect(() => vm.gate.count('shared', gpa, length), `count ${gpa} +${length}`).toThrow(error);
      }
      for (const gpa of [end, -0x1000n]) {
        expect(() => vm.gate.get('private', gpa)).toThrow(outside(gpa));
        expect(() => vm.gate.fetch('shared', gpa)).toThrow(outside(gpa));
        expect(() => vm.gate.writeShadow(gpa, new Uint8Array(4096))).toThrow(outside(gpa));
      }
      expect(() => vm.gate.get('private', end + 0x10n)).toThrow(outside(end));
      expect(() => vm.gate.writeShadow(0x1800n, new Uint8Array(4096))).toThrow(misaligned(0x1800n));
      // The whole of RAM, and an empty range anywhere in it (its end included), are ranges.
      vm.gate.set('shared', 0n, end, 'read');
      expect(vm.gate.count('shared', 0n, end)).toBe(end / 4096n);
      vm.gate.set('shared', end, 0n, 'none');
      vm.gate.set('shared', 0x1000n, 0n, 'none');
      expect(vm.gate.count('shared', 0x1000n, 0n)).toBe(0n);
      expect(vm.gate.count('shared', 0n, end)).toBe(end / 4096n);
    } finally {
      vm.close();
    }
  });

  it('get and fetch of any address in a page answer for that page', () => {
    const vm = new Machine({ memoryBytes: 16n * MiB });
    try {
      vm.gate.set('private', 0x5000n, 0x1000n, 'read', 'supervisor');
      vm.gate.set('private', 0x6000n, 0x1000n, 'readwrite');
      expect([vm.gate.get('private', 0x5fffn), vm.gate.fetch('private', 0x5abcn)]).toEqual(['read', 'supervisor']);
      expect([vm.gate.get('private', 0x6001n), vm.gate.fetch('private', 0x6ff8n)]).toEqual(['readwrite', 'any']);
      expect([vm.gate.get('private', 0x4fffn), vm.gate.fetch('private', 0x4fffn)]).toEqual(['none', 'none']);
      // The last page of RAM, by an address inside it.
      vm.gate.set('shared', 16n * MiB - 0x1000n, 0x1000n, 'readwrite', 'user');
      expect([vm.gate.get('shared', 16n * MiB - 1n), vm.gate.fetch('shared', 16n * MiB - 0x800n)]).toEqual(['readwrite', 'user']);
    } finally {
      vm.close();
    }
  });
});

describe('page gate with guest paging', () => {
  it('follows a non-identity mapping and reports both GVA and GPA', () => {
    const vm = simpleGuest(`
      mov rcx, 0x40000000
      mov rax, [rcx]
      mov rdx, [rcx + 0x1000]
      hlt`);
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 4n * MiB, pageSize: 0x200000n },
      { va: 0x40000000n, pa: 0x800000n, size: 0x2000n, pageSize: 4096n },
    ]);
    vm.memory.writeU64(0x800000n, 0xfeedfacen);
    vm.gate.set('private', 0x801000n, 0x1000n, 'none');
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'gate-fault', gva: 0x40001000n, gpa: 0x801000n, access: 'read' });
    expect(vm.vcpu.regs.rax).toBe(0xfeedfacen);
    expect(vm.vcpu.translate(0x40000010n)).toMatchObject({ status: 'ok', gpa: 0x800010n, level: 1 });
  });

  it('handles 1 GiB pages and a high-half alias', () => {
    const vm = new Machine({ memoryBytes: 2n << 30n });
    acceptAll(vm, 16n * MiB);
    installGdt(vm);
    loadCode(vm, `
      mov rcx, 0xffff888000200000
      mov rax, [rcx]
      hlt`);
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 1n << 30n, pageSize: 0x40000000n },
      { va: 0xffff888000000000n, pa: 0n, size: 1n << 30n, pageSize: 0x40000000n },
    ]);
    vm.memory.writeU64(0x200000n, 0xabcn);
    runToHlt(vm);
    expect(vm.vcpu.regs.rax).toBe(0xabcn);
    expect(vm.vcpu.translate(0xffff888000200008n)).toMatchObject({ gpa: 0x200008n, level: 3 });
  });

  it('turns a not-present entry into #PF with error code and CR2, and a write to a read-only page too', () => {
    const vm = simpleGuest(`
      mov rcx, 0x900000
      mov rax, [rcx]
      hlt`);
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n },
      { va: 0xa00000n, pa: 0xa00000n, size: 0x1000n, pageSize: 4096n, writable: false },
    ]);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 0n, cr2: 0x900000n, rip: 0x1007n });

    const vm2 = simpleGuest('mov rcx, 0xa00000\nmov qword ptr [rcx], 1\nhlt');
    enablePaging(vm2, [
      { va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n },
      { va: 0xa00000n, pa: 0xa00000n, size: 0x1000n, pageSize: 4096n, writable: false },
    ]);
    expect(vm2.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 3n, cr2: 0xa00000n });
  });

  it('reports reserved bits in an entry as #PF with RSVD', () => {
    const vm = simpleGuest('mov rcx, 0xc00000\nmov rax, [rcx]\nhlt', { marker: { kind: 'tdx-shared-bit', gpaWidth: 48 } });
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n },
      // bit 50 is above GPAW 48: reserved (tdx-snp-architecture.md A6)
      { va: 0xc00000n, pa: 0xc00000n, size: 0x1000n, pageSize: 4096n, extraBits: 1n << 50n },
    ]);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 0b1001n });
  });

  it('walks with the EFER.NXE the host last wrote or a restore put back', () => {
    // XD (bit 63) in an entry: with EFER.NXE clear it is a reserved bit, so even a read faults with
    // RSVD; with NXE set, reads are fine. The walk keeps the EFER it read (native ReadPaging).
    const vm = simpleGuest('mov rcx, 0xc00000\nmov rax, [rcx]\nhlt');
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n },
      { va: 0xc00000n, pa: 0xc00000n, size: 0x1000n, pageSize: 4096n, noExecute: true },
    ], undefined, { nxe: true });
    vm.memory.writeU64(0xc00000n, 0x77n);
    const withNxe = vm.snapshot();
    runToHlt(vm);
    expect(vm.vcpu.regs.rax).toBe(0x77n);
    vm.vcpu.writeSpecial('efer', vm.vcpu.readSpecial('efer') & ~(1n << 11n));
    vm.vcpu.regs.rip = 0x1000n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 14, errorCode: 0b1001n, cr2: 0xc00000n });
    vm.restore(withNxe);
    vm.vcpu.regs.rax = 0n;
    runToHlt(vm);
    expect(vm.vcpu.regs.rax).toBe(0x77n);
  });

  it('reports a page-table page the gate refuses as a page-walk gate fault', () => {
    const vm = simpleGuest('mov rcx, 0x800000\nmov rax, [rcx]\nhlt');
    const end = enablePaging(vm, [
      { va: 0n, pa: 0n, size: 8n * MiB, pageSize: 0x200000n },
      { va: 0x800000n, pa: 0x800000n, size: 0x1000n, pageSize: 4096n },
    ]);
    const lastTable = end - 0x1000n;  // the 4 KiB page table built last
    vm.gate.set('private', lastTable, 0x1000n, 'none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', pageWalk: true, gpa: lastTable, gva: 0x800000n });
  });

  it('separates private and shared accesses by the TDX shared bit', () => {
    const vm = new Machine({ memoryBytes: 16n * MiB, marker: { kind: 'tdx-shared-bit', gpaWidth: 48 } });
    acceptAll(vm);
    installGdt(vm);
    const shared = 1n << 47n;
    loadCode(vm, `
      mov rcx, 0x500000
      mov rax, [rcx]
      mov rcx, 0x${(shared | 0x500000n).toString(16)}
      mov rdx, [rcx]
      hlt`);
    vm.memory.writeU64(0x500000n, 0x77n);
    let exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'gate-fault', space: 'shared', gpa: 0x500000n, gva: shared | 0x500000n });
    expect(vm.vcpu.regs.rax).toBe(0x77n);
    vm.gate.set('shared', 0x500000n, 0x1000n, 'readwrite');
    vm.gate.set('private', 0x500000n, 0x1000n, 'none');
    runToHlt(vm);
    expect(vm.vcpu.regs.rdx).toBe(0x77n);
  });

  it('reads the SNP C-bit from the page-table entry, and treats fetches as private', () => {
    const vm = new Machine({ memoryBytes: 16n * MiB, marker: { kind: 'snp-c-bit', position: 51 } });
    acceptAll(vm);
    installGdt(vm);
    const cbit = 1n << 51n;
    loadCode(vm, `
      mov rcx, 0x600000
      mov rax, [rcx]
      mov rcx, 0x700000
      mov rdx, [rcx]
      hlt`);
    enablePaging(vm, [
      { va: 0n, pa: 0n, size: 6n * MiB, pageSize: 0x200000n, extraBits: cbit },
      { va: 0x600000n, pa: 0x600000n, size: 0x1000n, pageSize: 4096n, extraBits: cbit },
      { va: 0x700000n, pa: 0x700000n, size: 0x1000n, pageSize: 4096n },  // C=0: shared
    ]);
    vm.gate.set('shared', 0x700000n, 0x1000n, 'read');
    runToHlt(vm);
    vm.gate.set('shared', 0x700000n, 0x1000n, 'none');
    loadCode(vm, 'mov rcx, 0x700000\nmov rdx, [rcx]\nhlt', 0x2000n);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', space: 'shared', gpa: 0x700000n });
    expect(vm.vcpu.translate(0x600000n)).toMatchObject({ isPrivate: true, gpa: 0x600000n });
    expect(vm.vcpu.translate(0x700000n)).toMatchObject({ isPrivate: false });
  });
});

// The fetch permission apart from the read permission (an SEV-SNP VMPL's Execute-Supervisor and
// Execute-User, AMD APM Vol. 2 §15.36.7): the TLB-fill hook decides each fetch at the CPL it runs at.
describe('page gate: fetch permission', () => {
  const Q = 0x600000n;
  /** A guest whose main code calls Q (`add r9, 1; ret`) and halts; at 0x1100: reads Q, calls it again. */
  function callerOfQ(): Machine {
    const vm = simpleGuest(`
      mov rcx, 0x600000
      call rcx
      hlt
    .org 0x100
      mov rcx, 0x600000
      mov rax, [rcx]
      call rcx
      hlt`);
    loadCode(vm, 'add r9, 1\nret', Q);
    vm.vcpu.regs.rip = 0x1000n;
    return vm;
  }
  const Q_BYTES = 0xc3_01_c1_83_49n;  // add r9, 1; ret (little-endian, the low 5 bytes)

  it('a readable page the gate does not let the CPU fetch from: reads pass, the jump exits as a refused fetch', () => {
    const vm = callerOfQ();
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'none');
    expect(vm.gate.fetch('private', Q)).toBe('none');
    vm.vcpu.regs.rip = 0x1100n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: Q, rip: Q, space: 'private' });
    expect(vm.vcpu.regs.rax & 0xff_ffff_ffffn).toBe(Q_BYTES);
    expect(vm.vcpu.regs.r9).toBe(0n);
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'supervisor');
    runToHlt(vm);
    expect(vm.vcpu.regs.r9).toBe(1n);
  });

  it('by default a page is fetchable at every CPL exactly when it is readable', () => {
    const vm = callerOfQ();
    vm.gate.set('private', Q, 0x1000n, 'read');
    expect(vm.gate.fetch('private', Q)).toBe('any');
    vm.gate.set('private', Q, 0x1000n, 'none');
    expect(vm.gate.fetch('private', Q)).toBe('none');
  });

  it('taking the fetch permission away drops what the TLB holds, and a read of the page after it grants no execute', () => {
    const vm = callerOfQ();
    runToHlt(vm);  // Q ran: its page is code, and a data fill of a code page may grant execute
    expect(vm.vcpu.regs.r9).toBe(1n);
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'none');
    vm.vcpu.regs.rip = 0x1100n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: Q, rip: Q });
    expect(vm.vcpu.regs.rax & 0xff_ffff_ffffn).toBe(Q_BYTES);
    expect(vm.vcpu.regs.r9).toBe(1n);
  });

  // The supervisor bit alone taken away (an SNP VMPL's Execute-Supervisor cleared, Execute-User
  // kept): the entry the CPL 0 fetch filled grants execute, so it must go too.
  it('taking only the supervisor fetch permission away drops what the TLB holds', () => {
    const vm = callerOfQ();
    runToHlt(vm);
    expect(vm.vcpu.regs.r9).toBe(1n);
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'user');
    vm.vcpu.regs.rip = 0x1000n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: Q, rip: Q });
    expect(vm.vcpu.regs.r9).toBe(1n);
  });

  it('CPL 0 fetches need the supervisor permission: the user one alone is refused', () => {
    const vm = callerOfQ();
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'user');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: Q, rip: Q });
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'any');
    runToHlt(vm);
    expect(vm.vcpu.regs.r9).toBe(1n);
  });

  it('a page fetchable but not readable runs, and a read of it exits', () => {
    const vm = callerOfQ();
    vm.gate.set('private', Q, 0x1000n, 'none', 'supervisor');
    runToHlt(vm);
    expect(vm.vcpu.regs.r9).toBe(1n);
    vm.vcpu.regs.rip = 0x1100n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'read', gpa: Q });
  });

  it('snapshots hold the fetch permission: a restore puts it back either way', () => {
    const vm = callerOfQ();
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'none');
    const refused = vm.snapshot();
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'any');
    const allowed = vm.snapshot();  // the base snapshot: its restore follows the changed gate pages
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'none');
    vm.restore(allowed);
    expect(vm.gate.fetch('private', Q)).toBe('any');
    runToHlt(vm);
    expect(vm.vcpu.regs.r9).toBe(1n);
    vm.restore(refused);  // not the base: every touched gate page is copied back
    expect(vm.gate.fetch('private', Q)).toBe('none');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: Q });
    vm.restore(allowed);
    runToHlt(vm);
    expect(vm.vcpu.regs.r9).toBe(1n);
  });
});

describe('page gate: fetch permission at CPL 3', () => {
  const Q = 0x600000n;
  /** A guest that IRETQs to CPL 3 (user code 0x1b, user data 0x23) and calls Q there (`add r9, 1; hlt`: #GP at CPL 3). */
  function userCallerOfQ(): Machine {
    const vm = simpleGuest(`
      ${IRETQ_TO_CPL3}
      mov rcx, 0x600000
      call rcx`);
    const gdt = Buffer.alloc(40);
    gdt.writeBigUInt64LE(0x00af9b000000ffffn, 8);   // kernel code, L=1
    gdt.writeBigUInt64LE(0x00cf93000000ffffn, 16);  // kernel data
    gdt.writeBigUInt64LE(0x00affb000000ffffn, 24);  // user code, DPL 3, L=1
    gdt.writeBigUInt64LE(0x00cff3000000ffffn, 32);  // user data, DPL 3
    vm.memory.write(0x10000n, gdt);
    vm.vcpu.writeSpecial('gdtrLimit', 39n);
    loadCode(vm, 'add r9, 1\nhlt', Q);
    vm.vcpu.regs.rip = 0x1000n;
    return vm;
  }

  it('a CPL 3 fetch needs the user permission: the supervisor one alone is refused, and the CPL 0 code around it still runs', () => {
    const vm = userCallerOfQ();
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'supervisor');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: Q, rip: Q });
    expect(vm.vcpu.codeSegment().selector).toBe(0x1b);
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'user');
    // HLT at CPL 3 is #GP(0): Q ran up to it.
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 13 });
    expect(vm.vcpu.regs.r9).toBe(1n);
  });

  // The user bit alone taken away (Execute-User cleared, Execute-Supervisor kept): the entry the
  // CPL 3 fetch filled grants execute, so it must go too.
  it('taking only the user fetch permission away drops what the TLB holds', () => {
    const vm = userCallerOfQ();
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'any');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 13 });  // Q's HLT at CPL 3
    expect(vm.vcpu.regs.r9).toBe(1n);
    vm.gate.set('private', Q, 0x1000n, 'readwrite', 'supervisor');
    vm.vcpu.regs.rip = Q;  // still at CPL 3
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', access: 'fetch', gpa: Q, rip: Q });
    expect(vm.vcpu.regs.r9).toBe(1n);
  });
});
