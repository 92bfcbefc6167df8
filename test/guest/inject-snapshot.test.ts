import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import { InjectionError } from '../../src/cpu/errors.js';
import { acceptAll, installGdt, installIdt, loadCode, runToHlt, simpleGuest, STACK_TOP } from '../helpers/guest-setup.js';

const HANDLERS = `
  .org 0x1000
handler_ve:          # vector 20, no error code: count and return
  inc r14
  iretq
  .org 0x1100
handler_vc:          # vector 29, error code: record it, pop it, return
  pop r15
  iretq
  .org 0x1200
handler_fatal:
  hlt
`;

describe('event injection', () => {
  it('delivers through the guest IDT with a 64-bit frame and iretq returns to the interrupted code', () => {
    const vm = simpleGuest(`
      mov rbx, 1
      .byte 0x66, 0x0f, 0x01, 0xcc
      mov rbx, 2
      .byte 0x66, 0x0f, 0x01, 0xcc
      mov rbx, 3
      hlt
      ${HANDLERS}`);
    installIdt(vm, { 20: 0x2000n, 29: 0x2100n, 8: 0x2200n });
    let exit = vm.vcpu.run();
    expect(exit.kind).toBe('tdcall');
    const rsp = vm.vcpu.regs.rsp;
    vm.vcpu.regs.rflags = vm.vcpu.regs.rflags | 0x200n;  // IF set, to see it cleared
    vm.vcpu.complete(exit as { length: number });
    vm.vcpu.inject(20);
    expect(vm.vcpu.regs.rip).toBe(0x2000n);
    expect(vm.vcpu.regs.rflags & 0x200n).toBe(0n);  // interrupt gate clears IF
    const frame = vm.memory.read(vm.vcpu.regs.rsp, 40);
    const view = Buffer.from(frame);
    expect(view.readBigUInt64LE(0)).toBe(0x100bn);      // RIP after the TDCALL
    expect(view.readBigUInt64LE(8)).toBe(0x08n);        // CS
    expect(view.readBigUInt64LE(24)).toBe(rsp);         // old RSP
    exit = vm.vcpu.run();                                // handler runs, iretq, next TDCALL
    expect(exit).toMatchObject({ kind: 'tdcall', rip: 0x1012n });
    expect(vm.vcpu.regs.r14).toBe(1n);
    expect(vm.vcpu.regs.rbx).toBe(2n);
    expect(vm.vcpu.regs.rsp).toBe(rsp);
    expect(vm.vcpu.regs.rflags & 0x200n).toBe(0x200n);  // restored by iretq
    vm.vcpu.complete(exit as { length: number });
    vm.vcpu.inject(29, 0x404n);
    runToHlt(vm);
    expect(vm.vcpu.regs.r15).toBe(0x404n);
    expect(vm.vcpu.regs.rbx).toBe(3n);
  });

  it('uses the IST stack from the TSS when the gate names one', () => {
    const vm = simpleGuest(`nop\nhlt\n${HANDLERS}`);
    installIdt(vm, { 20: 0x2000n }, { ist: 1 });
    const tss = 0x30000n;
    vm.memory.writeU64(tss + 0x24n, 0x70000n);  // IST1
    vm.vcpu.writeSpecial('trBase', tss);
    vm.vcpu.writeSpecial('trLimit', 0x67n);  // a 64-bit TSS; IST1 beyond the limit is #TS (SDM Vol. 3 §6.14.5)
    vm.vcpu.inject(20);
    expect(vm.vcpu.regs.rsp).toBe(0x70000n - 40n);
  });

  it('refuses cleanly when the IDT or GDT cannot take the event', () => {
    const vm = simpleGuest('hlt');
    expect(() => vm.vcpu.inject(20)).toThrow(InjectionError);           // no IDT loaded
    installIdt(vm, { 14: 0x2000n });
    expect(() => vm.vcpu.inject(20)).toThrow(/not present/);
    vm.vcpu.writeSpecial('gdtrLimit', 7n);                              // CS 0x08 outside the GDT
    expect(() => vm.vcpu.inject(14, 0n)).toThrow(/outside the GDT/);
    installGdt(vm);
    vm.vcpu.regs.rsp = 0x3ff0000n;                                      // beyond RAM
    expect(() => vm.vcpu.inject(14, 0n)).toThrow(/exception frame/);
    expect(() => vm.vcpu.inject(256)).toThrow(RangeError);
  });

  // The frame is pushed through the hardware's gate as the CPU's own stores are: a stack page the
  // gate lets the guest read but not write (an SNP VMPL's read-only grant) takes no frame, however
  // writable the page tables make it, and nothing of the delivery happens.
  it('refuses to push the frame onto a stack page the gate makes read-only, and changes nothing', () => {
    const vm = simpleGuest(`nop\nhlt\n${HANDLERS}`);
    try {
      installIdt(vm, { 20: 0x2000n });
      const stackPage = (STACK_TOP - 1n) & ~0xfffn;
      vm.gate.set('private', stackPage, 0x1000n, 'read');
      const before = { rip: vm.vcpu.regs.rip, rsp: vm.vcpu.regs.rsp, stack: [...vm.memory.read(STACK_TOP - 40n, 40)] };
      expect(() => vm.vcpu.inject(20)).toThrow(/exception frame.*not writable/);
      expect({ rip: vm.vcpu.regs.rip, rsp: vm.vcpu.regs.rsp, stack: [...vm.memory.read(STACK_TOP - 40n, 40)] }).toEqual(before);
      vm.gate.set('private', stackPage, 0x1000n, 'readwrite');
      vm.vcpu.inject(20);
      expect(vm.vcpu.regs.rip).toBe(0x2000n);
    } finally {
      vm.close();
    }
  });
});

describe('snapshot and restore', () => {
  it('restores CPU state, RAM written by the guest and by the host, and the page gate', () => {
    const vm = simpleGuest(`
      mov rcx, 0x400000
    1:
      mov [rcx], rcx
      add rcx, 8
      cmp rcx, 0x500000
      jne 1b
      inc rbx
      hlt`);
    vm.memory.writeU64(0x400000n, 0x1234n);
    const snap = vm.snapshot();
    runToHlt(vm);
    expect(vm.memory.readU64(0x4ffff8n)).toBe(0x4ffff8n);
    expect(vm.dirtyPages()).toBe(256);
    vm.memory.writeU64(0x900000n, 9n);
    vm.gate.set('private', 0x800000n, 0x100000n, 'none');
    vm.restore(snap);
    expect(vm.memory.readU64(0x400000n)).toBe(0x1234n);
    expect(vm.memory.readU64(0x4ffff8n)).toBe(0n);
    expect(vm.memory.readU64(0x900000n)).toBe(0n);
    expect(vm.gate.get('private', 0x800000n)).toBe('readwrite');
    expect(vm.vcpu.regs.rip).toBe(0x1000n);
    expect(vm.dirtyPages()).toBe(0);
    // The same run again gives the same result.
    runToHlt(vm);
    expect(vm.vcpu.regs.rbx).toBe(1n);
    vm.restore(snap);
    expect(vm.vcpu.regs.rbx).toBe(0n);
  });

  it('restores code the guest overwrote, and re-runs the original code', () => {
    const vm = simpleGuest(`
      mov rax, 1
      lea rcx, [rip + target]
      mov byte ptr [rcx + 3], 7    # patch "mov rbx, 5" into "mov rbx, 7"
    target:
      mov rbx, 5
      hlt`);
    const snap = vm.snapshot();
    runToHlt(vm);
    expect(vm.vcpu.regs.rbx).toBe(7n);
    vm.restore(snap);
    vm.vcpu.regs.rip = 0x1012n;  // jump straight to target: must see the restored 5
    runToHlt(vm);
    expect(vm.vcpu.regs.rbx).toBe(5n);
  });

  it('restores an older snapshot after a newer one was taken', () => {
    const vm = simpleGuest('hlt');
    vm.memory.writeU64(0x300000n, 1n);
    const first = vm.snapshot();
    vm.memory.writeU64(0x300000n, 2n);
    const second = vm.snapshot();
    vm.memory.writeU64(0x300000n, 3n);
    vm.restore(first);
    expect(vm.memory.readU64(0x300000n)).toBe(1n);
    vm.restore(second);
    expect(vm.memory.readU64(0x300000n)).toBe(2n);
  });

  it('restores pages of every kind byte for byte: zeros, a few non-zero qwords anywhere, and dense content', () => {
    // A snapshot keeps pages with at most 32 non-zero qwords as those qwords only (native
    // Snapshot::Add); the guest then overwrites every qword of all five pages.
    const vm = simpleGuest(`
      mov rcx, 0x400000
    1:
      mov [rcx], rcx
      add rcx, 8
      cmp rcx, 0x405000
      jne 1b
      hlt`);
    const page = (i: number) => 0x400000n + BigInt(i) * 0x1000n;
    const images = [new Uint8Array(4096)];                       // all zeros
    const tagged = new Uint8Array(4096);                          // the workload's shape: first and last qword
    tagged.set([1, 2, 3, 4, 5, 6, 7, 8], 0);
    tagged.set([0xff, 0, 0, 0, 0, 0, 0, 0x80], 4088);
    images.push(tagged);
    const scattered = new Uint8Array(4096);                       // 32 non-zero qwords: still sparse
    for (let q = 0; q < 32; q++) scattered[q * 127 * 8 % 4096 + (q % 8)] = q + 1;
    images.push(scattered);
    const dense = new Uint8Array(4096);                           // 33 non-zero qwords: held whole
    for (let q = 0; q < 33; q++) dense[q * 8 + 7] = 0x40 + q;
    images.push(dense);
    images.push(Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff));
    images.forEach((bytes, i) => vm.memory.write(page(i), bytes));
    const snap = vm.snapshot();
    for (let round = 0; round < 2; round++) {
      vm.vcpu.regs.rip = 0x1000n;
      runToHlt(vm);
      expect(vm.memory.readU64(page(1))).toBe(page(1));
      vm.restore(snap);
      images.forEach((bytes, i) => expect(Buffer.from(vm.memory.read(page(i), 4096)).equals(Buffer.from(bytes))).toBe(true));
    }
  });

  it('restores an older snapshot: the gate and guest-written RAM of that moment, whatever changed since', () => {
    // Guest: write rax to [rcx] for rcx in [0x400000, 0x410000) step 0x1000 (16 pages).
    const vm = simpleGuest(`
      mov rcx, 0x400000
    1:
      mov [rcx], rax
      add rcx, 0x1000
      cmp rcx, 0x410000
      jne 1b
      hlt`, { memoryBytes: 256n << 20n });  // two gate-bitmap pages (128 MiB each)
    vm.vcpu.regs.rax = 0x11n;
    runToHlt(vm);
    vm.gate.set('private', 0x800000n, 0x2000n, 'read');
    const first = vm.snapshot();
    vm.gate.set('private', 0x800000n, 0x2000n, 'none');
    vm.gate.set('private', 0x10000000n - 0x1000n, 0x1000n, 'none');
    vm.vcpu.regs.rip = 0x1000n;
    vm.vcpu.regs.rax = 0x22n;
    runToHlt(vm);
    const second = vm.snapshot();
    vm.gate.set('shared', 0x900000n, 0x1000n, 'readwrite');
    vm.memory.writeU64(0x9000000n, 5n);
    vm.restore(first);
    expect(vm.memory.readU64(0x40f000n)).toBe(0x11n);
    expect(vm.memory.readU64(0x9000000n)).toBe(0n);
    expect(vm.gate.get('private', 0x800000n)).toBe('read');
    expect(vm.gate.get('private', 0x10000000n - 0x1000n)).toBe('readwrite');
    expect(vm.gate.get('shared', 0x900000n)).toBe('none');
    vm.restore(second);
    expect(vm.memory.readU64(0x40f000n)).toBe(0x22n);
    expect(vm.gate.get('private', 0x801000n)).toBe('none');
    expect(vm.gate.get('private', 0x10000000n - 0x1000n)).toBe('none');
    expect(vm.gate.get('private', 0x400000n)).toBe('readwrite');
  });
});

describe('bad input never crashes the process', () => {
  it('rejects bad machine sizes and arguments with TypeError/RangeError', () => {
    expect(() => new Machine({ memoryBytes: 0n })).toThrow(RangeError);
    expect(() => new Machine({ memoryBytes: 4097n })).toThrow(RangeError);
    expect(() => new Machine({ memoryBytes: 1n << 60n })).toThrow(RangeError);
    expect(() => new Machine({ memoryBytes: 4096 as unknown as bigint })).toThrow(TypeError);
    const vm = new Machine({ memoryBytes: 1n << 20n });
    expect(() => vm.memory.read(1n << 20n, 1)).toThrow(RangeError);
    expect(() => vm.memory.write((1n << 20n) - 4n, new Uint8Array(8))).toThrow(RangeError);
    expect(() => vm.gate.set('private', 1n, 4096n, 'read')).toThrow(RangeError);
    expect(() => vm.gate.set('private', 0n, 2n << 20n, 'read')).toThrow(RangeError);
    expect(() => vm.vcpu.writeSpecial('cr3', -1n)).not.toThrow();   // masked to 64 bits
    expect(() => new Machine({ memoryBytes: 1n << 20n, marker: { kind: 'snp-c-bit', position: 70 } })).toThrow(RangeError);
  });

  it('survives guests that run garbage, jump anywhere, or load absurd register values', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const vm = new Machine({ memoryBytes: 1n << 20n, instructionLimit: 10_000n });
      acceptAll(vm);
      let x = BigInt(seed) * 0x9e3779b97f4a7c15n;
      const junk = new Uint8Array(4096);
      for (let i = 0; i < junk.length; i++) {
        x = (x * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
        junk[i] = Number(x >> 56n);
      }
      vm.memory.write(0x1000n, junk);
      vm.vcpu.regs.rip = 0x1000n;
      vm.vcpu.regs.rsp = x;
      for (let i = 0; i < 50; i++) {
        const exit = vm.vcpu.run();
        expect(exit.kind).toMatch(/^(hlt|tdcall|pvalidate|vmgexit|invalid-opcode|cpuid|rdmsr|wrmsr|io|gate-fault|exception|budget|fatal)$/);
        if ('length' in exit) vm.vcpu.complete(exit);
        else if (exit.kind === 'hlt') continue;
        else break;
      }
      vm.close();
    }
  });

  it('throws a clear error on a closed VM, and windows outlive it safely', () => {
    const vm = new Machine({ memoryBytes: 1n << 20n });
    vm.memory.writeU32(0x100n, 0xdeadbeef);
    const window = vm.memory.window(0x100n, 16);
    vm.close();
    expect(() => vm.vcpu.run()).toThrow(/closed/);
    expect(() => vm.snapshot()).toThrow(/closed/);
    expect(Buffer.from(window).readUInt32LE(0)).toBe(0xdeadbeef);
  });

  it('creates a 1 TiB VM cheaply and runs in it', () => {
    const vm = new Machine({ memoryBytes: 1n << 40n });
    vm.gate.set('private', 0n, 2n << 20n, 'readwrite');
    vm.gate.set('private', (1n << 40n) - 0x1000n, 0x1000n, 'readwrite');
    installGdt(vm);
    loadCode(vm, `
      mov rcx, 0xfffffff000
      mov qword ptr [rcx], 42
      mov rax, [rcx]
      hlt`);
    runToHlt(vm);
    expect(vm.vcpu.regs.rax).toBe(42n);
    expect(vm.memory.readU64((1n << 40n) - 0x1000n)).toBe(42n);
    vm.close();
  });
});

void STACK_TOP;

describe('register quirks of the emulator', () => {
  it('writing CR2 leaves CR3 alone (Unicorn 2.1.1 writes CR2 through the CR3 path)', () => {
    const vm = new Machine({ memoryBytes: 1n << 20n });
    vm.vcpu.writeSpecial('cr3', 0x5000n);
    vm.vcpu.writeSpecial('cr2', 0xdead000n);
    expect(vm.vcpu.readSpecial('cr2')).toBe(0xdead000n);
    expect(vm.vcpu.readSpecial('cr3')).toBe(0x5000n);
  });
});

describe('host fills', () => {
  it('zeroing large ranges reads back as zeros, keeps edges exact and releases memory', () => {
    const vm = new Machine({ memoryBytes: 64n << 20n });
    vm.memory.fill(0n, 64n << 20n, 0xaa);
    const rss = process.memoryUsage().rss;
    vm.memory.fill(0x1234n, (32n << 20n) - 0x2000n, 0);
    expect(vm.memory.readU8(0x1233n)).toBe(0xaa);
    expect(vm.memory.readU8(0x1234n)).toBe(0);
    expect(vm.memory.readU64(0x1000000n)).toBe(0n);
    const end = 0x1234n + (32n << 20n) - 0x2000n;
    expect(vm.memory.readU8(end - 1n)).toBe(0);
    expect(vm.memory.readU8(end)).toBe(0xaa);
    expect(process.memoryUsage().rss).toBeLessThan(rss - 16 * 2 ** 20);
    vm.close();
  });
  it('zeroing pages the guest wrote clears them, in place or returned to the kernel, and a restore brings them back', () => {
    // Guest: write rax to every 8th byte of [0x400000, 0x600000).
    const vm = simpleGuest(`
      mov rcx, 0x400000
    1:
      mov [rcx], rax
      add rcx, 8
      cmp rcx, 0x600000
      jne 1b
      hlt`);
    vm.vcpu.regs.rax = 0x77n;
    runToHlt(vm);
    const snap = vm.snapshot();
    vm.memory.fill(0x400000n, 0x2000n, 0);       // two pages: cleared in place
    vm.memory.fill(0x500000n, 0x100000n, 0);     // 256 pages: handed back to the kernel
    vm.memory.fill(0xc00000n, 0x200000n, 0);     // never written: nothing to do
    expect([vm.memory.readU64(0x400000n), vm.memory.readU64(0x401ff8n), vm.memory.readU64(0x5ffff8n)]).toEqual([0n, 0n, 0n]);
    expect(vm.memory.readU64(0x402000n)).toBe(0x77n);
    expect(vm.dirtyPages()).toBe(2 + 256);
    vm.restore(snap);
    expect([vm.memory.readU64(0x400000n), vm.memory.readU64(0x401ff8n), vm.memory.readU64(0x5ffff8n)]).toEqual([0x77n, 0x77n, 0x77n]);
  });

  it('zeroing pages that hold a few words of the snapshot, then reading or writing them, restores every byte', () => {
    // Guest: reads the first qword of page 0x400000 into rbx, adds 5 to the last qword of page
    // 0x401000, writes 9 into the middle of page 0x402000.
    const vm = simpleGuest(`
      mov rbx, [0x400000]
      add qword ptr [0x401ff8], 5
      mov qword ptr [0x402800], 9
      hlt`);
    const pages = [0x400000n, 0x401000n, 0x402000n, 0x403000n];
    for (const page of pages) {  // a few words per page: held sparse by the snapshot
      vm.memory.writeU64(page, page + 1n);
      vm.memory.writeU64(page + 0xff8n, page + 2n);
    }
    const snap = vm.snapshot();
    const check = () => {
      for (const page of pages) {
        expect([vm.memory.readU64(page), vm.memory.readU64(page + 0x800n), vm.memory.readU64(page + 0xff8n)]).toEqual([page + 1n, 0n, page + 2n]);
      }
    };
    for (let round = 0; round < 2; round++) {
      vm.memory.fill(0x400000n, 0x4000n, 0);
      for (const page of pages) expect(Buffer.from(vm.memory.read(page, 0x1000)).every((b) => b === 0)).toBe(true);
      expect(vm.dirtyPages()).toBe(4);
      runToHlt(vm);
      expect(vm.vcpu.regs.rbx).toBe(0n);
      expect([vm.memory.readU64(0x401ff8n), vm.memory.readU64(0x402800n)]).toEqual([5n, 9n]);
      vm.restore(snap);
      expect(vm.dirtyPages()).toBe(0);
      check();
      // Written by the host after the zeroing: the whole page comes back too.
      vm.memory.fill(0x403000n, 0x1000n, 0);
      vm.memory.writeU64(0x403400n, 3n);
      vm.restore(snap);
      check();
    }
  });
});

// Vcpu.tryInjectRepeating (native/src/deliver.cc InjectRepeating): a handler whose first fetch the
// gate refuses faults again at the RIP the delivery entered, with nothing started; the same delivery
// is then made again natively until the guest's run ends otherwise (held for the next run()) or a
// delivery fails.
describe('fault storms delivered natively', () => {
  /** A guest that jumps to 0x5000, whose fetch the gate refuses; vector 20's handler is there too. */
  function stormGuest(rsp: bigint): Machine {
    const vm = simpleGuest('mov rax, 0x5000\n jmp rax');
    installIdt(vm, { 20: 0x5000n });
    vm.gate.set('private', 0x5000n, 0x1000n, 'read', 'none');
    vm.vcpu.regs.rsp = rsp;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'gate-fault', rip: 0x5000n, access: 'fetch' });
    return vm;
  }

  it('ends with the delivery that cannot push its frame: no run held, and as many repeats as the stack takes frames', () => {
    // 64-bit mode: RSP aligned down to 16, then SS, RSP, RFLAGS, CS, RIP pushed, 40 bytes (SDM Vol. 3A
    // §6.14.2). From 0x100: frames end at 0xd8, 0xa8, 0x78, 0x48, 0x18; the sixth would go below 0.
    const vm = stormGuest(0x100n);
    try {
      expect(vm.vcpu.tryInjectRepeating(20)).toMatch(/^cannot deliver vector 20: cannot push the exception frame/);
      expect([vm.vcpu.repeatedDeliveries, vm.vcpu.stormRunHeld, vm.vcpu.regs.rsp, vm.vcpu.regs.rip]).toEqual([5, false, 0x18n, 0x5000n]);
    } finally {
      vm.close();
    }
  });

  it('ends with a run that stops otherwise (the budget): that run is held, and the next run() returns its exit', () => {
    const vm = stormGuest(STACK_TOP);
    try {
      vm.vcpu.budgetLimit = vm.vcpu.instructions + vm.vcpu.budgetCharged + 1000n;
      expect(vm.vcpu.tryInjectRepeating(20)).toBeUndefined();
      expect(vm.vcpu.stormRunHeld).toBe(true);
      expect(vm.vcpu.run().kind).toBe('budget');
    } finally {
      vm.close();
    }
  });
});
