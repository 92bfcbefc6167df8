import { describe, expect, it } from 'vitest';
import { enablePaging, runToHlt, simpleGuest, type Mapping } from '../helpers/guest-setup.js';

describe('vCPU exits', () => {
  it('stops at TDCALL with RIP at the instruction and resumes past it', () => {
    const vm = simpleGuest(`
      mov rax, 6
      mov rcx, 0x200000
      .byte 0x66, 0x0f, 0x01, 0xcc   # tdcall
      mov rbx, rax
      hlt`);
    const exit = vm.vcpu.run();
    // The code segment it ran in comes with the exit, as codeSegment() describes it (GDT 0x08, L=1).
    expect(exit).toMatchObject({ kind: 'tdcall', rip: 0x100en, length: 4, leaf: 6n, codeBits: 64, cs: 0x08 });
    expect(vm.vcpu.codeSegment()).toMatchObject({ bits: 64, selector: 0x08 });
    expect(vm.vcpu.regs.rcx).toBe(0x200000n);
    vm.vcpu.regs.rax = 0xb0a00000000n;
    vm.vcpu.complete(exit as { length: number });
    runToHlt(vm);
    expect(vm.vcpu.regs.rbx).toBe(0xb0a00000000n);
  });

  it('register writes are 64-bit: negative and wider values wrap, and the guest sees exactly what was written', () => {
    const vm = simpleGuest('mov rcx, rax\n mov rdx, rbx\n hlt');
    vm.vcpu.regs.rax = -2n;
    vm.vcpu.regs.rbx = (1n << 64n) + 5n;
    runToHlt(vm);
    expect([vm.vcpu.regs.rcx, vm.vcpu.regs.rdx]).toEqual([(1n << 64n) - 2n, 5n]);
  });

  it('reports PVALIDATE and VMGEXIT', () => {
    const vm = simpleGuest(`
      .byte 0xf2, 0x0f, 0x01, 0xff
      .byte 0xf3, 0x0f, 0x01, 0xd9
      hlt`);
    const p = vm.vcpu.run();
    expect(p).toMatchObject({ kind: 'pvalidate', rip: 0x1000n, length: 4, codeBits: 64, cs: 0x08 });
    vm.vcpu.complete(p as { length: number });
    const v = vm.vcpu.run();
    expect(v).toMatchObject({ kind: 'vmgexit', rip: 0x1004n, length: 4, codeBits: 64, cs: 0x08 });
    vm.vcpu.complete(v as { length: number });
    expect(runToHlt(vm).rip).toBe(0x1009n);
  });

  it('stops before the SVM instructions (0F 01 D8-DF) and VMCALL (0F 01 C1) run, in counting and fast mode', () => {
    // The emulator would run the SVM ones in its nested-SVM helpers and has no VMX: the platforms
    // decide (src/platform/snp/svm-insn.ts, td-module.ts). VMGEXIT (F3 0F 01 D9) stays VMGEXIT.
    const source = `
      .byte 0x0f, 0x01, 0xd8
      .byte 0x0f, 0x01, 0xd9
      .byte 0x0f, 0x01, 0xda
      .byte 0x0f, 0x01, 0xdb
      .byte 0x0f, 0x01, 0xdc
      .byte 0x0f, 0x01, 0xdd
      .byte 0x0f, 0x01, 0xde
      .byte 0x0f, 0x01, 0xdf
      .byte 0x0f, 0x01, 0xc1
      .byte 0xf3, 0x0f, 0x01, 0xd9
      hlt`;
    for (const countInstructions of [true, false]) {
      const vm = simpleGuest(source, { countInstructions });
      const seen: unknown[] = [];
      for (;;) {
        const exit = vm.vcpu.run();
        seen.push(exit.kind === 'svm' ? [exit.instruction, exit.rip, exit.length] : [exit.kind, exit.rip]);
        if (!('length' in exit)) break;
        vm.vcpu.complete(exit);
      }
      vm.close();
      expect(seen).toEqual([
        ['vmrun', 0x1000n, 3], ['vmmcall', 0x1003n, 3], ['vmload', 0x1006n, 3], ['vmsave', 0x1009n, 3], ['stgi', 0x100cn, 3],
        ['clgi', 0x100fn, 3], ['skinit', 0x1012n, 3], ['invlpga', 0x1015n, 3], ['vmcall', 0x1018n], ['vmgexit', 0x101bn], ['hlt', 0x1020n],
      ]);
    }
  });

  it('leaves to the emulator\'s #UD the forms that are invalid opcodes: LOCK on an SVM instruction, VMCALL with 66/F2/F3/F0 (SDM Vol. 3C VMCALL: they cause #UD)', () => {
    for (const bytes of ['0xf0, 0x0f, 0x01, 0xd8', '0xf0, 0x0f, 0x01, 0xd9', '0x66, 0x0f, 0x01, 0xc1', '0xf3, 0x0f, 0x01, 0xc1', '0xf2, 0x0f, 0x01, 0xc1', '0xf0, 0x0f, 0x01, 0xc1']) {
      const vm = simpleGuest(`.byte ${bytes}\n hlt`);
      expect(vm.vcpu.run(), bytes).toMatchObject({ kind: 'invalid-opcode', rip: 0x1000n });
      vm.close();
    }
  });

  it('reports other invalid opcodes with their bytes', () => {
    const vm = simpleGuest('ud2');
    const exit = vm.vcpu.run();
    expect(exit.kind).toBe('invalid-opcode');
    if (exit.kind === 'invalid-opcode') expect([...exit.bytes.slice(0, 2)]).toEqual([0x0f, 0x0b]);
  });

  it('reports the first eight bytes at an invalid opcode', () => {
    const vm = simpleGuest('ud2\n.byte 1, 2, 3, 4, 5, 6, 7');
    expect(vm.vcpu.run()).toEqual({ kind: 'invalid-opcode', rip: 0x1000n, bytes: Uint8Array.of(0x0f, 0x0b, 1, 2, 3, 4, 5, 6) });
  });

  it('intercepts CPUID before it runs, with leaf and subleaf', () => {
    const vm = simpleGuest(`
      mov eax, 0x21
      xor ecx, ecx
      cpuid
      hlt`);
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'cpuid', leaf: 0x21, subleaf: 0, length: 2 });
    vm.vcpu.regs.rbx = 0x6c65746en;
    vm.vcpu.complete(exit as { length: number });
    runToHlt(vm);
    expect(vm.vcpu.regs.rbx).toBe(0x6c65746en);
  });

  it('intercepts RDMSR and WRMSR so unknown MSRs are never silently 0 or dropped', () => {
    const vm = simpleGuest(`
      mov ecx, 0xc0010131
      rdmsr
      mov r8, rax
      mov ecx, 0xc0010130
      mov eax, 0x12345004
      mov edx, 0x1
      wrmsr
      hlt`);
    const rd = vm.vcpu.run();
    expect(rd).toMatchObject({ kind: 'rdmsr', msr: 0xc0010131, length: 2 });
    vm.vcpu.regs.rax = 7n;
    vm.vcpu.regs.rdx = 0n;
    vm.vcpu.complete(rd as { length: number });
    const wr = vm.vcpu.run();
    expect(wr).toMatchObject({ kind: 'wrmsr', msr: 0xc0010130, value: 0x112345004n });
    vm.vcpu.complete(wr as { length: number });
    runToHlt(vm);
    expect(vm.vcpu.regs.r8).toBe(7n);
  });

  it('intercepts port I/O in all its forms', () => {
    const vm = simpleGuest(`
      mov dx, 0x3f8
      mov al, 0x41
      out dx, al
      out 0x80, eax
      mov dx, 0x1000
      in ax, dx
      mov r9, rax
      hlt`);
    const o1 = vm.vcpu.run();
    expect(o1).toMatchObject({ kind: 'io', direction: 'out', port: 0x3f8, size: 1, immediate: false, value: 0x41, length: 1 });
    vm.vcpu.complete(o1 as { length: number });
    const o2 = vm.vcpu.run();
    expect(o2).toMatchObject({ kind: 'io', direction: 'out', port: 0x80, size: 4, immediate: true, length: 2 });
    vm.vcpu.complete(o2 as { length: number });
    const i1 = vm.vcpu.run();
    expect(i1).toMatchObject({ kind: 'io', direction: 'in', port: 0x1000, size: 2, immediate: false, length: 2 });
    vm.vcpu.regs.rax = (vm.vcpu.regs.rax & ~0xffffn) | 0xbeefn;
    vm.vcpu.complete(i1 as { length: number });
    runToHlt(vm);
    expect(vm.vcpu.regs.r9 & 0xffffn).toBe(0xbeefn);
  });

  it('reports string I/O as such', () => {
    const vm = simpleGuest(`
      mov dx, 0x3f8
      rep outsb
      hlt`);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'io', direction: 'out', string: true, rep: true, immediate: false, size: 1 });
  });

  it('stops at HLT with RIP after it', () => {
    const vm = simpleGuest('nop\nhlt');
    expect(vm.vcpu.run()).toEqual({ kind: 'hlt', rip: 0x1002n });
  });

  it('reports guest exceptions with their vector', () => {
    const vm = simpleGuest(`
      xor edx, edx
      xor eax, eax
      xor ecx, ecx
      div ecx
      hlt`);
    expect(vm.vcpu.run()).toMatchObject({ kind: 'exception', vector: 0, rip: 0x1006n, afterInstruction: false });
    const vm2 = simpleGuest('int 0x80\nhlt');
    expect(vm2.vcpu.run()).toMatchObject({ kind: 'exception', vector: 0x80, rip: 0x1002n, afterInstruction: true });
  });

  it('stops with a budget exit and resumes exactly where it stopped', () => {
    const vm = simpleGuest(`
      xor eax, eax
    1:
      inc rax
      cmp rax, 1000
      jne 1b
      hlt`);
    vm.vcpu.instructionLimit = 100n;
    const exit = vm.vcpu.run();
    expect(exit).toMatchObject({ kind: 'budget', instructions: 100n });
    vm.vcpu.instructionLimit = 1n << 40n;
    runToHlt(vm);
    expect(vm.vcpu.regs.rax).toBe(1000n);
    // xor + 1000 * (inc, cmp, jne) + hlt
    expect(vm.vcpu.instructions).toBe(3002n);
  });

  it('reports a jump to address 0 as fatal instead of a silent stop', () => {
    const vm = simpleGuest('xor eax, eax\njmp rax');
    expect(vm.vcpu.run()).toMatchObject({ kind: 'fatal', rip: 0n });
  });

  it('finds intercepted instructions in fast (non-counting) mode too', () => {
    const vm = simpleGuest(`
      sub rsp, 0x18        # an EC byte inside another instruction must not trap
      mov eax, 1
      cpuid
      mov ecx, 0x10
      rdmsr
      out 0x80, al
      hlt`, { countInstructions: false });
    const kinds: string[] = [];
    for (;;) {
      const exit = vm.vcpu.run();
      kinds.push(exit.kind);
      if (exit.kind === 'hlt' || !('length' in exit)) break;
      vm.vcpu.complete(exit);
    }
    expect(kinds).toEqual(['cpuid', 'rdmsr', 'io', 'hlt']);
  });
});

describe('intercepted instructions behind redundant prefixes', () => {
  // A prefix an instruction ignores is still legal, up to the 15-byte limit (Intel SDM Vol. 2
  // §2.1.1), and the CPU still traps the instruction: neither its length nor its prefix count may
  // let it run unseen. 2E/3E (segment overrides, ignored in 64-bit mode) and 66 pad them here.
  const PADDED = `
      mov eax, 0x21
      xor ecx, ecx
      .byte 0x66, 0x66, 0x66, 0x66, 0x0f, 0xa2                              # CPUID, 6 bytes
      .byte ${Array(13).fill('0x2e').join(', ')}, 0x0f, 0xa2      # CPUID, 15 bytes
      mov ecx, 0x10
      .byte 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x0f, 0x32                        # RDMSR, 7 bytes
      .byte 0x2e, 0x2e, 0x2e, 0x2e, 0x2e, 0xe6, 0x80                        # OUT 0x80, AL, 7 bytes
      .byte ${Array(12).fill('0x3e').join(', ')}, 0x0f, 0x01, 0xd9      # VMMCALL, 15 bytes
      .byte 0x2e, 0x66, 0x0f, 0x01, 0xd8                                    # VMRUN, 5 bytes
      .byte 0x2e, 0x2e, 0x0f, 0x01, 0xc1                                    # VMCALL, 5 bytes
      hlt`;
  const EXPECTED = [['cpuid', 6], ['cpuid', 15], ['rdmsr', 7], ['io', 7], ['svm', 15], ['svm', 5], ['vmcall', 5], ['hlt', undefined]];

  function exits(vm: ReturnType<typeof simpleGuest>): (string | number | undefined)[][] {
    const seen: (string | number | undefined)[][] = [];
    try {
      for (;;) {
        const exit = vm.vcpu.run();
        seen.push([exit.kind, 'length' in exit ? exit.length : undefined]);
        if (exit.kind === 'hlt' || !('length' in exit)) return seen;
        vm.vcpu.complete(exit);
      }
    } finally {
      vm.close();
    }
  }

  it('counting mode traps them, on a cold page and on one hot enough to have code bits', () => {
    expect(exits(simpleGuest(PADDED))).toEqual(EXPECTED);
    expect(exits(simpleGuest(`
        mov ecx, 5000
      hot:
        dec ecx
        jnz hot
      ${PADDED}`))).toEqual(EXPECTED);
  });

  it('fast mode traps them', () => {
    expect(exits(simpleGuest(PADDED, { countInstructions: false }))).toEqual(EXPECTED);
  });
});

describe('host writes to code that already ran', () => {
  // The code at 0x2000 (NOPs, then `inc rbx; ret`) runs twice in the first run; then the host
  // writes CPUID over its NOPs and the guest enters it again: fast mode must intercept it.
  const CALLEE = `
      .org 0x1000
      nop
      nop
      inc rbx
      ret`;
  function expectRewrittenCodeIntercepted(callers: string, mappings?: Mapping[]): void {
    const vm = simpleGuest(`${callers}\n      hlt${CALLEE}`, { countInstructions: false });
    try {
      if (mappings) enablePaging(vm, mappings);
      expect(vm.vcpu.run().kind).toBe('hlt');
      expect(vm.vcpu.regs.rbx).toBe(2n);
      vm.memory.write(0x2000n, Uint8Array.from([0x0f, 0xa2])); // cpuid
      vm.vcpu.regs.rip = 0x1000n;
      expect(vm.vcpu.run()).toMatchObject({ kind: 'cpuid', rip: 0x2000n });
    } finally {
      vm.close();
    }
  }

  it('fast mode intercepts an instruction the host wrote over code the guest runs again (its page is scanned anew)', () => {
    // Entered again through its still-cached translation of the page.
    expectRewrittenCodeIntercepted(`
      mov rax, 0x2000
      call rax
      call rax`);
  });

  it('fast mode intercepts an instruction the host wrote over code that ran at two linear addresses', () => {
    // The page also appears at 0x400000 and runs through both, the alias last; after the write
    // the guest runs it again through 0x2000 first.
    expectRewrittenCodeIntercepted(`
      mov rax, 0x2000
      call rax
      mov rax, 0x400000
      call rax`, [
      { va: 0n, pa: 0n, size: 0x200000n, pageSize: 4096n },
      { va: 0x400000n, pa: 0x2000n, size: 0x1000n, pageSize: 4096n },
    ]);
  });
});

describe('hang guard in fast mode', () => {
  it('ends a guest that never exits with a fatal timeout instead of hanging the process', () => {
    const fast = simpleGuest('1: jmp 1b', { countInstructions: false, wallClockTimeoutMs: 200 });
    expect(fast.vcpu.run()).toMatchObject({ kind: 'fatal', reason: expect.stringMatching(/timeout/) });
    fast.close();
  });

  it('times each run from its own start: short runs before and a pause between runs are no timeout', () => {
    // The guard is one thread per machine (native/src/run_watchdog.h): a deadline armed for an
    // earlier run must neither stop a later one early nor be reported by a run that ended in time.
    const fast = simpleGuest('hlt\n hlt\n hlt\n 1: jmp 1b', { countInstructions: false, wallClockTimeoutMs: 200 });
    try {
      expect(fast.vcpu.run().kind).toBe('hlt');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300); // past the first run's deadline
      expect(fast.vcpu.run().kind).toBe('hlt');
      expect(fast.vcpu.run().kind).toBe('hlt');
      const start = performance.now();
      expect(fast.vcpu.run()).toMatchObject({ kind: 'fatal', reason: expect.stringMatching(/timeout/) });
      expect(performance.now() - start).toBeGreaterThanOrEqual(190);
    } finally {
      fast.close();
    }
  });
});
