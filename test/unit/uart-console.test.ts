// The VMM's COM1 UART as a 16550 takes byte writes: with LCR.DLAB set the data port is the
// divisor latch, so Linux's early_serial_init does not print its baud divisor.
import { describe, expect, it } from 'vitest';
import { Console } from '../../src/vmm/console.js';
import { honestTdxPolicy, type VmcallExit, type VmmContext } from '../../src/vmm/tdx/honest-vmm.js';

describe('COM1 UART', () => {
  it('sends data-port bytes to the console unless LCR.DLAB selects the divisor latch', () => {
    const c = new Console();
    c.uartWrite(0x3f8, 0x41);
    c.uartWrite(0x3fb, 0x83); // 8N1 + DLAB
    c.uartWrite(0x3f8, 0x01); // divisor low byte (115200 baud)
    c.uartWrite(0x3f9, 0x00);
    c.uartWrite(0x3fb, 0x03); // DLAB off
    c.uartWrite(0x3f8, 0x42);
    c.uartWrite(0x3fc, 0x0b); // MCR: configuration, nothing to show
    expect(c.text).toBe('AB');
    const saved = c.saveState();
    c.uartWrite(0x3fb, 0x80);
    c.loadState(saved);
    c.uartWrite(0x3f8, 0x43);
    expect(c.text).toBe('ABC');
  });

  it('a state saved with LCR.DLAB set restores it: the data port is still the divisor latch', () => {
    // 16550: while LCR bit 7 (DLAB) is set, offset 0 is the divisor latch low byte (Linux
    // arch/x86/boot/early_serial_console.c: DLL 0, written between outb(c | DLAB) and outb(c & ~DLAB)).
    const c = new Console();
    c.uartWrite(0x3fb, 0x83);
    const saved = c.saveState();
    c.uartWrite(0x3fb, 0x03);
    c.loadState(saved);
    c.uartWrite(0x3f8, 0x01);
    expect(c.text).toBe('');
    c.uartWrite(0x3fb, 0x03);
    c.uartWrite(0x3f8, 0x41);
    expect(c.text).toBe('A');
  });

  it('a byte-wide OUT carries one byte: a wider value is its low byte, in the text and in the line echoed', () => {
    // OUT DX, AL writes AL (Intel SDM Vol. 2B OUT); the VMMs pass the value on as a number.
    const echoed: string[] = [];
    const c = new Console((line) => echoed.push(line));
    c.write(0x141);
    c.write(0x10a);
    expect(echoed).toEqual(['A\n']);
    expect(c.text).toBe('A\n');
  });

  it('takes a batch of bytes as it takes each byte in turn: the same lines echoed, text and state', () => {
    const batch = Buffer.from([0x61, 0x0a, 0x0a, 0xe9, 0x00, 0x62, 0x0a, 0x63, 0x64]);
    const perByte: string[] = [], batched: string[] = [];
    const one = new Console((line) => perByte.push(line)), all = new Console((line) => batched.push(line));
    for (const c of [one, all]) c.write(0x7a);
    for (const b of batch) one.write(b);
    all.writeBytes(batch.subarray(0, 4));
    all.writeBytes(batch.subarray(4));
    all.writeBytes(new Uint8Array(0));
    expect(batched).toEqual(['za\n', '\n', '\u00e9\u0000b\n']);
    expect(batched).toEqual(perByte);
    expect(all.text).toBe(one.text);
    expect(all.saveState()).toEqual(one.saveState());
  });
});

describe('TDVMCALL<Instruction.CPUID>', () => {
  const call = (leaf: bigint): VmcallExit => ({
    reason: 'tdvmcall', rip: 0n, mask: 0xfffcn,
    regs: { rcx: 0n, rdx: 0n, rbx: 0n, rbp: 0n, rsi: 0n, rdi: 0n, r8: 0n, r9: 0n, r10: 0n, r11: 10n, r12: leaf, r13: 0n, r14: 0n, r15: 0n },
  });
  it('answers the hypervisor leaves with zeros (no paravirtual interface), and a leaf wider than 32 bits as its low 32 bits (KVM tdx_emulate_cpuid reads a u32)', () => {
    const ctx = {} as VmmContext;
    const zeros = { kind: 'return', regs: { r10: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n } };
    expect(honestTdxPolicy.instructionCpuid(ctx, call(0x40000000n))).toEqual(zeros);
    expect(honestTdxPolicy.instructionCpuid(ctx, call((1n << 33n) | 0x40000000n))).toEqual(zeros);
  });
});
