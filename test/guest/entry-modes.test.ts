// Architectural entry states and exception delivery in every mode a guest passes through:
// real mode (IVT), 32-bit protected mode (8-byte gates), compatibility mode and 64-bit mode
// (16-byte gates). Each guest switches modes with its own instructions.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';
import { acceptAll } from '../helpers/guest-setup.js';
import { assemble } from '../helpers/assemble.js';

const GDT = 0x10000n;
const IDT = 0x11000n;
const PML4 = 0x20000n;

function vmWith(source: string, origin: bigint): Machine {
  const vm = new Machine({ memoryBytes: 16n << 20n });
  acceptAll(vm);
  vm.memory.write(origin, assemble(source, origin));
  return vm;
}

/** 32-bit code: loads the GDT and IDT of tables32, far-jumps to flat code 0x08, SS = 0x10, ESP = 0x70000. */
const FLAT_32 = `
      .code32
      lgdt [gdtr]
      lidt [idtr]
      ljmp 0x08, offset flat_cs
    flat_cs:
      mov eax, 0x10
      mov ss, eax
      mov esp, 0x70000`;
/** The GDTR (limit `gdtLimit`) and the IDTR of 256 8-byte gates that FLAT_32 loads. */
const tables32 = (gdtLimit: number) => `
      .balign 8
    gdtr:
      .word 0x${gdtLimit.toString(16)}
      .long ${GDT}
    idtr:
      .word 0x7ff
      .long ${IDT}`;

/** Flat GDT: 0x08 32-bit code, 0x10 data, 0x18 64-bit code, 0x20 16-bit code base 0. */
function writeGdt(vm: Machine): void {
  const gdt = Buffer.alloc(0x28);
  gdt.writeBigUInt64LE(0x00cf9b000000ffffn, 0x08);
  gdt.writeBigUInt64LE(0x00cf93000000ffffn, 0x10);
  gdt.writeBigUInt64LE(0x00af9b000000ffffn, 0x18);
  gdt.writeBigUInt64LE(0x00009b000000ffffn, 0x20);
  vm.memory.write(GDT, gdt);
}

/** Identity map of the first 1 GiB with 2 MiB pages at PML4. */
function writeIdentityMap(vm: Machine): void {
  vm.memory.writeU64(PML4, (PML4 + 0x1000n) | 3n);
  vm.memory.writeU64(PML4 + 0x1000n, (PML4 + 0x2000n) | 3n);
  for (let i = 0n; i < 512n; i++) vm.memory.writeU64(PML4 + 0x2000n + i * 8n, (i << 21n) | 0x83n);
}

/** Runs, answering WRMSR of EFER as the hardware does, until an exit of `kind`. */
function runTo(vm: Machine, kind: string) {
  for (;;) {
    const exit = vm.vcpu.run();
    if (exit.kind === 'wrmsr' && exit.msr === 0xc0000080) {
      vm.vcpu.writeMsr(exit.msr, exit.value);
      vm.vcpu.complete(exit);
      continue;
    }
    if (exit.kind !== kind) throw new Error(`expected ${kind}, got ${JSON.stringify(exit, (_, v) => typeof v === 'bigint' ? `0x${v.toString(16)}` : v)}`);
    return exit;
  }
}

describe('entry states', () => {
  it('protected32 decodes 32-bit code with paging off (0x40 is INC, not REX)', () => {
    const vm = vmWith('.code32\nxor eax, eax\ninc eax\ninc eax\nhlt', 0x1000n);
    vm.vcpu.enter({ mode: 'protected32' });
    vm.vcpu.regs.rip = 0x1000n;
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.rax).toBe(2n);
    expect(vm.vcpu.readSpecial('cr0') & 0x80000001n).toBe(1n);
    expect(vm.vcpu.readSpecial('efer') & 0x400n).toBe(0n);  // LMA
  });

  it('a guest starting in protected32 switches itself to long mode', () => {
    const vm = vmWith(`
      .code32
      lgdt [gdtr]
      mov eax, 0x10
      mov ds, eax
      mov ss, eax
      mov eax, cr4
      or eax, 0x20
      mov cr4, eax
      mov eax, ${PML4}
      mov cr3, eax
      mov ecx, 0xc0000080
      xor edx, edx
      mov eax, 0x100
      wrmsr
      mov eax, cr0
      or eax, 0x80000000
      mov cr0, eax
      ljmp 0x18, offset long
      .code64
    long:
      mov rax, 0x123456789
      inc r8
      hlt
      .balign 8
    gdtr:
      .word 0x27
      .long ${GDT}`, 0x1000n);
    writeGdt(vm);
    writeIdentityMap(vm);
    vm.vcpu.enter({ mode: 'protected32' });
    vm.vcpu.regs.rip = 0x1000n;
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.rax).toBe(0x123456789n);
    expect(vm.vcpu.regs.r8).toBe(1n);
    expect(vm.vcpu.readSpecial('efer') & 0x500n).toBe(0x500n);
  });

  it('real16 starts at CS:IP with the hidden base the VMSA gives, not selector << 4', () => {
    const vm = vmWith('.code16\nmov ax, cs\nmov bx, 0x1234\ninc bx\nhlt', 0x301000n);
    vm.vcpu.enter({ mode: 'real16', csSelector: 0xf000, csBase: 0x300000n });
    vm.vcpu.regs.rip = 0x1000n;
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.rax & 0xffffn).toBe(0xf000n);
    expect(vm.vcpu.regs.rbx & 0xffffn).toBe(0x1235n);
    expect(vm.vcpu.readSpecial('cr0') & 1n).toBe(0n);
  });
});

describe('string I/O exits carry the address size and segment of their memory operand', () => {
  // What the VM-exit instruction-information field of an INS/OUTS exit reports (Intel SDM Vol. 3C,
  // its format for INS and OUTS): the address size is the code segment's, flipped by 67, and
  // OUTS reads DS unless a segment prefix names another; INS writes ES:rDI whatever the prefixes.
  it.each([
    ['32-bit code: outsb', 'outsb', { direction: 'out', addressBits: 32, segment: 3, length: 1 }],
    ['32-bit code: 67 es outsw', '.byte 0x67, 0x26, 0x66, 0x6f', { direction: 'out', addressBits: 16, segment: 0, size: 2, length: 4 }],
    ['32-bit code: fs insd (the override is ignored)', '.byte 0x64, 0x6d', { direction: 'in', addressBits: 32, segment: 0, size: 4, length: 2 }],
    ['32-bit code: in al, dx is not a string', 'in al, dx', { direction: 'in', addressBits: 0, segment: 0, string: false }],
  ] as const)('%s', (_name, insn, expected) => {
    const vm = vmWith(`.code32\nmov edx, 0x80\n${insn}\nhlt`, 0x1000n);
    vm.vcpu.enter({ mode: 'protected32' });
    vm.vcpu.regs.rip = 0x1000n;
    expect(runTo(vm, 'io')).toMatchObject({ kind: 'io', port: 0x80, ...expected });
  });

  it('16-bit code: outsb is 16-bit addressing, 67 makes it 32-bit', () => {
    const vm = vmWith('.code16\nmov dx, 0x80\nouts dx, byte ptr [si]\n.byte 0x67, 0x6e\nhlt', 0x301000n);
    vm.vcpu.enter({ mode: 'real16', csSelector: 0xf000, csBase: 0x300000n });
    vm.vcpu.regs.rip = 0x1000n;
    const first = runTo(vm, 'io');
    expect(first).toMatchObject({ addressBits: 16, segment: 3, length: 1 });
    vm.vcpu.complete(first as { length: number });
    expect(runTo(vm, 'io')).toMatchObject({ addressBits: 32, segment: 3, length: 2 });
  });
});

describe('exception delivery in every mode', () => {
  it('real mode: through the IVT, with a FLAGS/CS/IP frame, and IRET returns', () => {
    const vm = vmWith(`
      .code16
      ljmp 0x3000, offset here - 0x30000
    here:
      mov sp, 0x7000
      ud2
      mov cx, 0x99
      hlt
      .org 0x30800 - 0x30000 + 0x30000
    handler:
      mov bx, cs
      push bp
      mov bp, sp
      add word ptr [bp + 2], 2
      pop bp
      iret`, 0x30000n);
    vm.memory.writeU16(6n * 4n, 0x0800);       // IVT[6] = 3000:0800
    vm.memory.writeU16(6n * 4n + 2n, 0x3000);
    vm.vcpu.enter({ mode: 'real16', csSelector: 0xf000, csBase: 0x30000n });
    vm.vcpu.regs.rip = 0n;
    const ud = runTo(vm, 'invalid-opcode');
    expect(ud.rip).toBe(0x0008n);
    vm.vcpu.inject(6);
    expect(vm.vcpu.regs.rip).toBe(0x800n);
    expect(Buffer.from(vm.memory.read(0x7000n - 6n, 6)).toJSON().data).toEqual([0x08, 0x00, 0x00, 0x30, 0x02, 0x00]);
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.rbx & 0xffffn).toBe(0x3000n);
    expect(vm.vcpu.regs.rcx & 0xffffn).toBe(0x99n);
  });

  it('32-bit protected mode: #UD through an 8-byte gate to a 32-bit handler, and IRETD returns', () => {
    const vm = vmWith(`
      ${FLAT_32}
      ud2
      mov ecx, 0x99
      hlt
      .org 0x1100
    handler:
      xor eax, eax
      inc eax
      mov ebx, cs
      add dword ptr [esp], 2
      iretd
      ${tables32(0x27)}`, 0x1000n);
    writeGdt(vm);
    vm.memory.writeU64(IDT + 6n * 8n, gate32(0x1100n, 0x08n));
    vm.vcpu.enter({ mode: 'protected32' });
    vm.vcpu.regs.rip = 0x1000n;
    vm.vcpu.regs.rflags = 0x202n;
    const ud = runTo(vm, 'invalid-opcode');
    vm.vcpu.inject(6);
    expect(vm.vcpu.regs.rip).toBe(0x1100n);
    expect(vm.vcpu.regs.rflags & 0x200n).toBe(0n);  // interrupt gate clears IF
    const frame = Buffer.from(vm.memory.read(0x70000n - 12n, 12));
    expect([frame.readUInt32LE(0), frame.readUInt32LE(4), frame.readUInt32LE(8)]).toEqual([Number(ud.rip), 0x08, 0x202]);
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.rax).toBe(1n);          // INC, so the handler ran as 32-bit code
    expect(vm.vcpu.regs.rbx).toBe(0x08n);
    expect(vm.vcpu.regs.rcx).toBe(0x99n);       // back after the UD2
    expect(vm.vcpu.regs.rsp).toBe(0x70000n);
  });

  it('32-bit protected mode: from the TD entry CS (selector 0) the CPU loads the handler CS from the GDT', () => {
    const vm = vmWith(`
      .code32
      mov esp, 0x70000
      ud2
      .org 0x1100
      inc eax
      hlt`, 0x1000n);
    writeGdt(vm);
    vm.memory.writeU64(IDT + 6n * 8n, gate32(0x1100n, 0x08n));
    vm.vcpu.enter({ mode: 'protected32' });
    for (const [r, v] of [['gdtrBase', GDT], ['gdtrLimit', 0x27n], ['idtrBase', IDT], ['idtrLimit', 0x7ffn]] as const) vm.vcpu.writeSpecial(r, v);
    vm.vcpu.regs.rip = 0x1000n;
    runTo(vm, 'invalid-opcode');
    vm.vcpu.inject(6, 0x1234n);
    expect(vm.vcpu.readSpecial('cs')).toBe(0x08n);
    const frame = Buffer.from(vm.memory.read(0x70000n - 16n, 16));
    expect([frame.readUInt32LE(0), frame.readUInt32LE(4), frame.readUInt32LE(8)]).toEqual([0x1234, 0x1005, 0]);
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.rax).toBe(1n);
  });

  it('compatibility mode: #UD in 32-bit code under long mode reaches the 64-bit handler, IRETQ returns to it', () => {
    const vm = vmWith(`
      .code64
      lgdt [rip + gdtr]
      lidt [rip + idtr]
      mov rsp, 0x70000
      push 0x08
      lea rax, [rip + compat]
      push rax
      retfq
      .code32
    compat:
      xor eax, eax
      inc eax
      ud2
      inc eax
      hlt
      .code64
      .org 0x1100
    handler:
      mov rbx, [rsp + 8]
      add qword ptr [rsp], 2
      inc r9
      iretq
      .balign 8
    gdtr:
      .word 0x27
      .quad ${GDT}
    idtr:
      .word 0xfff
      .quad ${IDT}`, 0x1000n);
    writeGdt(vm);
    vm.memory.writeU64(IDT + 6n * 16n, gate32(0x1100n, 0x18n));
    vm.memory.writeU64(IDT + 6n * 16n + 8n, 0n);
    vm.vcpu.writeSpecial('cs', 0x18n);
    vm.vcpu.regs.rip = 0x1000n;
    runTo(vm, 'invalid-opcode');
    vm.vcpu.inject(6);
    expect(vm.vcpu.regs.rip).toBe(0x1100n);
    expect(vm.vcpu.readSpecial('cs')).toBe(0x18n);
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.r9).toBe(1n);           // R9 exists: the handler ran in 64-bit mode
    expect(vm.vcpu.regs.rbx).toBe(0x08n);       // the frame's CS was the compatibility one
    expect(vm.vcpu.regs.rax).toBe(2n);          // INC after IRETQ: back in 32-bit code
  });
});

describe('the limit: Unicorn does not expose hidden segment state', () => {
  it('refuses delivery from a CS whose descriptor changed after it was loaded, instead of guessing', () => {
    // The CPU keeps CS's hidden base (0) after the guest rewrites the descriptor (base 0x10000);
    // the host can only read the descriptor, so it cannot know where the CPU really runs.
    const vm = vmWith(`
      .code32
      lgdt [gdtr]
      ljmp 0x08, offset loaded
    loaded:
      mov byte ptr [${GDT} + 0x0c], 0x01
      ud2
      .balign 8
    gdtr:
      .word 0x27
      .long ${GDT}`, 0x1000n);
    writeGdt(vm);
    vm.memory.writeU64(IDT + 6n * 8n, gate32(0x1100n, 0x08n));
    vm.vcpu.enter({ mode: 'protected32' });
    vm.vcpu.writeSpecial('idtrBase', IDT);
    vm.vcpu.writeSpecial('idtrLimit', 0x7ffn);
    vm.vcpu.regs.rip = 0x1000n;
    vm.vcpu.regs.rsp = 0x70000n;
    runTo(vm, 'invalid-opcode');
    expect(() => vm.vcpu.inject(6)).toThrow(/hidden base is not the one its selector names/);
  });
});

describe('fast mode (no instruction counting)', () => {
  it('delivers from compatibility mode and 32-bit protected mode alike', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n, countInstructions: false });
    acceptAll(vm);
    vm.memory.write(0x1000n, assemble('.code32\nmov esp, 0x70000\nud2\n.org 0x1100\ninc eax\nhlt', 0x1000n));
    writeGdt(vm);
    vm.memory.writeU64(IDT + 6n * 8n, gate32(0x1100n, 0x08n));
    vm.vcpu.enter({ mode: 'protected32' });
    for (const [r, v] of [['gdtrBase', GDT], ['gdtrLimit', 0x27n], ['idtrBase', IDT], ['idtrLimit', 0x7ffn]] as const) vm.vcpu.writeSpecial(r, v);
    vm.vcpu.regs.rip = 0x1000n;
    runTo(vm, 'invalid-opcode');
    vm.vcpu.inject(6);
    runTo(vm, 'hlt');
    expect(vm.vcpu.regs.rax).toBe(1n);
    expect(vm.vcpu.readSpecial('cs')).toBe(0x08n);
  });
});

/** An 8-byte interrupt gate (also the low half of a 16-byte one). */
function gate32(handler: bigint, selector: bigint): bigint {
  return (handler & 0xffffn) | (selector << 16n) | (0x8en << 40n) | ((handler >> 16n) << 48n);
}

// SDM Vol. 3 §6.12.1.1: for INT n, INT3 and INTO the processor checks the DPL of the gate against
// CPL and raises #GP with error code vector * 8 + 2 (IDT bit) when CPL is greater; the 8-byte
// gates of protected mode (§6.11) are checked as the 16-byte ones of IA-32e mode are. Real-address
// mode has no privilege levels (§20.1.4: the IVT entry is taken as it is), whatever the low bits
// of the CS value.
describe('outside IA-32e mode: the gate DPL check of software interrupts, and the handler\'s privilege', () => {
  /**
   * A 32-bit protected-mode guest that IRETDs to CPL 3 and runs `user` there: user code 0x2b (DPL 3,
   * base `userBase`), user data 0x33 (DPL 3), stack 0x60000; the GDT is writeGdt's with those two.
   */
  function atCpl3(user: string, userBase = 0n): Machine {
    const vm = vmWith(`
      ${FLAT_32}
      push 0x33
      push 0x60000
      push 0x202
      push 0x2b
      push offset user - ${userBase}
      iretd
    user:
      ${user}
      ${tables32(0x37)}`, 0x1000n);
    writeGdt(vm);
    vm.memory.writeU64(GDT + 0x28n, 0x00cffb000000ffffn | ((userBase & 0xffffffn) << 16n) | ((userBase >> 24n) << 56n));
    vm.memory.writeU64(GDT + 0x30n, 0x00cff3000000ffffn);
    vm.vcpu.enter({ mode: 'protected32' });
    vm.vcpu.regs.rip = 0x1000n;
    return vm;
  }

  it('32-bit protected mode at CPL 3: INT 40h through a DPL 0 gate is #GP(40h * 8 + 2) at the INT (its offset in CS, base 100h); INT 41h through a DPL 3 gate is INT 41h', () => {
    const vm = atCpl3('int 0x40\n int 0x41\n hlt', 0x100n);
    vm.memory.writeU64(IDT + 0x40n * 8n, gate32(0x1100n, 0x08n));
    vm.memory.writeU64(IDT + 0x41n * 8n, gate32(0x1100n, 0x08n) | (3n << 45n));
    const gp = runTo(vm, 'exception');
    expect(vm.vcpu.readSpecial('cs')).toBe(0x2bn);
    expect(gp).toMatchObject({ vector: 13, errorCode: 0x40n * 8n + 2n, afterInstruction: false });
    expect([...vm.memory.read(0x100n + gp.rip, 2)]).toEqual([0xcd, 0x40]);
    vm.vcpu.regs.rip = gp.rip + 2n;
    expect(runTo(vm, 'exception')).toMatchObject({ vector: 0x41, afterInstruction: true, rip: gp.rip + 4n });
  });

  it('32-bit protected mode at CPL 3: a handler in a non-conforming DPL 0 segment needs the TSS stack switch (§6.12.1.1), which the model refuses rather than run it on the user stack', () => {
    const vm = atCpl3('int 0x40');
    vm.memory.writeU64(IDT + 13n * 8n, gate32(0x1100n, 0x08n));
    vm.memory.writeU64(IDT + 0x40n * 8n, gate32(0x1100n, 0x08n));
    expect(runTo(vm, 'exception')).toMatchObject({ vector: 13, errorCode: 0x202n });
    expect(() => vm.vcpu.inject(13, 0x202n)).toThrow(/DPL 0, below CPL 3: a protected-mode privilege change is not modelled/);
    expect(vm.vcpu.regs.rsp).toBe(0x60000n);
  });

  it('32-bit protected mode at CPL 0: a handler in a DPL 2 code segment is refused, the #GP the CPU raises (§6.12.1.1: never a less privileged handler)', () => {
    const vm = vmWith('.code32\n hlt', 0x1000n);
    writeGdt(vm);
    vm.memory.writeU64(GDT + 0x28n, 0x00cfdb000000ffffn);  // 32-bit code, DPL 2
    vm.memory.writeU64(IDT + 6n * 8n, gate32(0x1100n, 0x28n));
    vm.vcpu.enter({ mode: 'protected32' });
    for (const [r, v] of [['gdtrBase', GDT], ['gdtrLimit', 0x2fn], ['idtrBase', IDT], ['idtrLimit', 0x7ffn]] as const) vm.vcpu.writeSpecial(r, v);
    vm.vcpu.regs.rip = 0x1000n;
    expect(() => vm.vcpu.inject(6)).toThrow(/code segment 0x28 has DPL 2, above CPL 0 \(the CPU raises #GP\)/);
    expect(vm.vcpu.regs.rip).toBe(0x1000n);
  });

  it('real mode: INT 10h with CS = 2FF3h (low bits 3) is INT 10h, no gate DPL check', () => {
    const vm = vmWith(`
      .code16
      ljmp 0x2ff3, offset here - 0x2ff30
    here:
      mov sp, 0x7000
      int 0x10
      hlt`, 0x30000n);
    // IVT entry 21h = 0000:8E00. Read as half of an 8-byte protected-mode gate for vector 10h
    // (bytes 80h-87h), byte 85h would be a present DPL 0 interrupt gate: real mode reads no gate.
    vm.memory.writeU16(0x21n * 4n, 0x8e00);
    vm.vcpu.enter({ mode: 'real16', csSelector: 0xf000, csBase: 0x30000n });
    vm.vcpu.regs.rip = 0n;
    const exit = runTo(vm, 'exception');
    expect(vm.vcpu.readSpecial('cs')).toBe(0x2ff3n);
    expect(exit).toMatchObject({ vector: 0x10, afterInstruction: true });
    expect([...vm.memory.read(0x2ff30n + exit.rip - 2n, 2)]).toEqual([0xcd, 0x10]);
  });
});
