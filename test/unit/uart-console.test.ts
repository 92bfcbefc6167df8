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

// QEMU's 16550A (hw/char/serial.c), the device an honest KVM VMM gives TDX and SNP guests on COM1:
// serial_reset, serial_ioport_read/write and serial_update_irq. Ports 0x3f8..0x3ff.
describe('COM1 register file (QEMU hw/char/serial.c)', () => {
  const COM1 = 0x3f8;
  const REG = { DATA: 0, IER: 1, IIR: 2, FCR: 2, LCR: 3, MCR: 4, LSR: 5, MSR: 6, SCR: 7 } as const;
  const inb = (c: Console, reg: number) => Number(c.uartRead(COM1 + reg, 1));
  const outb = (c: Console, reg: number, value: number) => c.uartWrite(COM1 + reg, value);

  it('reads the reset values: IIR no interrupt, MCR OUT2, LSR transmitter empty, MSR DCD|DSR|CTS, divisor 12 (9600 baud)', () => {
    const c = new Console();
    // serial_reset: rbr 0, ier 0, iir UART_IIR_NO_INT, lcr 0, mcr UART_MCR_OUT2, lsr TEMT|THRE,
    // msr DCD|DSR|CTS, scr 0, divider 0x0C.
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((reg) => inb(c, reg))).toEqual([0x00, 0x00, 0x01, 0x00, 0x08, 0x60, 0xb0, 0x00]);
    outb(c, REG.LCR, 0x80);
    expect([inb(c, REG.DATA), inb(c, REG.IER)]).toEqual([0x0c, 0x00]);
  });

  it("Linux's probe_baud reads the divisor and leaves DLAB as it found it, so the console still prints", () => {
    // arch/x86/boot/early_serial_console.c probe_baud: lcr = inb(LCR); outb(lcr | DLAB, LCR);
    // dll = inb(DLL); dlh = inb(DLH); outb(lcr, LCR); baud = 115200 / ((dlh << 8) | dll).
    const c = new Console();
    const lcr = inb(c, REG.LCR);
    outb(c, REG.LCR, lcr | 0x80);
    const quot = (inb(c, REG.IER) << 8) | inb(c, REG.DATA);
    outb(c, REG.LCR, lcr);
    expect(115200 / quot).toBe(9600);
    outb(c, REG.DATA, 0x41);
    expect(c.text).toBe('A');
  });

  it('keeps what is written to IER (low 4 bits), LCR, MCR (low 5 bits) and the scratch register; LSR and MSR ignore writes', () => {
    const c = new Console();
    outb(c, REG.IER, 0xff);
    outb(c, REG.LCR, 0x1b);
    outb(c, REG.MCR, 0xe3);
    outb(c, REG.SCR, 0xa5);  // the 8250 driver's scratch-register test (autoconfig)
    outb(c, REG.LSR, 0x00);
    outb(c, REG.MSR, 0x00);
    expect([inb(c, REG.IER), inb(c, REG.LCR), inb(c, REG.MCR), inb(c, REG.SCR), inb(c, REG.LSR), inb(c, REG.MSR)]).toEqual([0x0f, 0x1b, 0x03, 0xa5, 0x60, 0xb0]);
  });

  it('reports the FIFOs in IIR bits 7:6 once FCR enables them, so the 8250 driver finds a 16550A', () => {
    // serial_write_fcr: fcr = val & 0xC9, IIR |= UART_IIR_FE (0xC0) while FCR.FE; Linux 8250
    // autoconfig: serial_out(UART_FCR, UART_FCR_ENABLE_FIFO); serial_in(UART_IIR) >> 6 == 3 → 16550A.
    const c = new Console();
    outb(c, REG.FCR, 0x07);
    expect(inb(c, REG.IIR)).toBe(0xc1);
    expect(inb(c, REG.IIR) >> 6).toBe(3);
    outb(c, REG.FCR, 0x00);
    expect(inb(c, REG.IIR)).toBe(0x01);
  });

  it('raises THRE in IIR when IER enables it with THR empty and after each byte sent; reading IIR acknowledges it', () => {
    const c = new Console();
    outb(c, REG.IER, 0x02);
    expect(inb(c, REG.IIR)).toBe(0x02);
    expect(inb(c, REG.IIR)).toBe(0x01);
    outb(c, REG.DATA, 0x41);
    expect(inb(c, REG.IIR)).toBe(0x02);
    expect(inb(c, REG.IIR)).toBe(0x01);
    // Disabling THRI drops the pending interrupt; the byte went out either way.
    outb(c, REG.DATA, 0x42);
    outb(c, REG.IER, 0x00);
    outb(c, REG.IER, 0x01);
    expect(inb(c, REG.IIR)).toBe(0x01);
    expect(c.text).toBe('AB');
  });

  it('loops bytes back in loopback mode instead of sending them: data ready, RBR, MSR from the modem outputs', () => {
    // serial_xmit: MCR.LOOP → serial_receive1 (RBR, LSR.DR; a second unread byte sets LSR.OE);
    // reading RBR clears DR, reading LSR clears OE. MSR in loopback: OUT2→DCD, OUT1→RI, RTS→CTS,
    // DTR→DSR; Linux 8250 autoconfig expects 0x90 for MCR = LOOP | OUT2 | RTS.
    const c = new Console();
    outb(c, REG.MCR, 0x1a);
    expect(inb(c, REG.MSR) & 0xf0).toBe(0x90);
    outb(c, REG.IER, 0x01);
    outb(c, REG.DATA, 0x58);
    expect(c.text).toBe('');
    expect(inb(c, REG.LSR)).toBe(0x61);
    expect(inb(c, REG.IIR)).toBe(0x04);  // received data available
    outb(c, REG.DATA, 0x59);
    expect(inb(c, REG.LSR)).toBe(0x63);
    expect(inb(c, REG.LSR)).toBe(0x61);
    expect(inb(c, REG.DATA)).toBe(0x59);
    expect(inb(c, REG.LSR)).toBe(0x60);
    outb(c, REG.MCR, 0x1f);
    expect(inb(c, REG.MSR)).toBe(0xf0);
    outb(c, REG.MCR, 0x08);
    outb(c, REG.DATA, 0x5a);
    expect(c.text).toBe('Z');
  });

  it('queues looped-back bytes in the receive FIFO while FCR enables it, up to 16', () => {
    const c = new Console();
    outb(c, REG.FCR, 0x01);
    outb(c, REG.MCR, 0x10);
    for (let i = 0; i < 17; i++) outb(c, REG.DATA, 0x30 + i);
    expect(inb(c, REG.LSR)).toBe(0x63);  // the 17th overran
    const got = Array.from({ length: 16 }, () => inb(c, REG.DATA));
    expect(got).toEqual(Array.from({ length: 16 }, (_, i) => 0x30 + i));
    expect(inb(c, REG.LSR)).toBe(0x60);
    expect(inb(c, REG.DATA)).toBe(0);
  });

  it('keeps LSR.DR set while the receive FIFO still holds a byte, and clears it with the last one', () => {
    // serial_ioport_read RBR with FCR.FE: LSR.DR is cleared only when recv_fifo.num == 0.
    const c = new Console();
    outb(c, REG.FCR, 0x01);
    outb(c, REG.MCR, 0x10);
    outb(c, REG.DATA, 0x31);
    outb(c, REG.DATA, 0x32);
    expect(inb(c, REG.DATA)).toBe(0x31);
    expect(inb(c, REG.LSR)).toBe(0x61);
    expect(inb(c, REG.DATA)).toBe(0x32);
    expect(inb(c, REG.LSR)).toBe(0x60);
  });

  it('takes wider accesses a byte at a time, low byte first (serial_io_ops: impl access size 1); other ports float high', () => {
    const c = new Console();
    outb(c, REG.SCR, 0x5c);
    expect(c.uartRead(COM1 + REG.LCR, 2)).toBe(0x0800n);          // LCR, MCR
    expect(c.uartRead(COM1 + REG.LSR, 4)).toBe(0xff5cb060n);      // LSR, MSR, SCR, then port 0x400
    expect(c.uartRead(COM1 + REG.SCR, 2)).toBe(0xff5cn);
    expect(c.uartRead(0x2f8, 1)).toBe(0xffn);
    expect(c.uartRead(COM1 - 1, 1)).toBe(0xffn);                  // the port just below COM1 is not its
    c.uartWrite(COM1, 0x0241, 2);                                  // THR 'A', IER 0x02
    expect(c.text).toBe('A');
    expect(inb(c, REG.IER)).toBe(0x02);
    c.uartWriteString(COM1, Uint8Array.of(0x42, 0x00, 0x43, 0x00), 2);  // OUTSW: each element's high byte goes to IER
    expect(c.text).toBe('ABC');
    expect(inb(c, REG.IER)).toBe(0x00);
    // An OUTSW whose bytes end inside an element writes the whole elements only.
    c.uartWriteString(COM1 + REG.SCR, Uint8Array.of(0x11, 0x22, 0x33), 2);
    expect(inb(c, REG.SCR)).toBe(0x11);
  });

  it('keeps the divisor latch\'s two bytes apart: writing DLH leaves DLL, writing DLL leaves DLH', () => {
    // serial_ioport_write: divider = (divider & 0xff00) | val at DLL, (divider & 0x00ff) | (val << 8)
    // at DLH; Linux early_serial_init writes DLL, then DLH.
    const c = new Console();
    outb(c, REG.LCR, 0x83);
    outb(c, REG.DATA, 0x83);
    outb(c, REG.IER, 0x92);
    expect([inb(c, REG.DATA), inb(c, REG.IER)]).toEqual([0x83, 0x92]);  // all eight bits of each
    outb(c, REG.DATA, 0x01);
    expect([inb(c, REG.DATA), inb(c, REG.IER)]).toEqual([0x01, 0x92]);
  });

  it('reports line status in IIR only while IER enables it (IER.RLSI), above received data; reading LSR clears the overrun', () => {
    // serial_update_irq: (ier & UART_IER_RLSI) && (lsr & UART_LSR_INT_ANY) -> RLSI (0x06), before RDI (0x04).
    const c = new Console();
    outb(c, REG.MCR, 0x10);
    outb(c, REG.IER, 0x01);
    outb(c, REG.DATA, 0x41);
    outb(c, REG.DATA, 0x42);  // overrun: the first byte was not read
    expect(inb(c, REG.IIR)).toBe(0x04);
    outb(c, REG.IER, 0x05);
    expect(inb(c, REG.IIR)).toBe(0x06);
    expect(inb(c, REG.LSR)).toBe(0x63);
    expect(inb(c, REG.IIR)).toBe(0x04);
  });

  it('ranks received data above THR empty, and a read of IIR that reports received data leaves THRE pending', () => {
    // serial_update_irq: RDI before THRI; serial_ioport_read IIR: thr_ipending = 0 only when
    // (iir & UART_IIR_ID) == UART_IIR_THRI.
    const c = new Console();
    outb(c, REG.MCR, 0x10);
    outb(c, REG.IER, 0x03);
    expect(inb(c, REG.IIR)).toBe(0x02);
    outb(c, REG.DATA, 0x41);  // looped back: data ready, and THR empty again
    expect(inb(c, REG.IIR)).toBe(0x04);
    expect(inb(c, REG.IIR)).toBe(0x04);
    expect(inb(c, REG.DATA)).toBe(0x41);
    expect(inb(c, REG.IIR)).toBe(0x02);
    expect(inb(c, REG.IIR)).toBe(0x01);
  });

  it('raises THRE again only when a write to IER turns THRI on, not when it writes THRI as it was', () => {
    // serial_ioport_write IER: "if (changed & UART_IER_THRI)" re-samples LSR.THRE.
    const c = new Console();
    outb(c, REG.IER, 0x02);
    expect(inb(c, REG.IIR)).toBe(0x02);
    outb(c, REG.IER, 0x02);
    expect(inb(c, REG.IIR)).toBe(0x01);
    outb(c, REG.IER, 0x03);
    expect(inb(c, REG.IIR)).toBe(0x01);
  });

  it('flushes the receiver when FCR changes FIFO enable, even without the clear bits; clearing the transmit FIFO raises THRE', () => {
    // serial_ioport_write FCR: (val ^ fcr) & UART_FCR_FE adds XFR | RFR; RFR clears LSR.DR and the
    // receive FIFO; XFR sets LSR.THRE and thr_ipending.
    const c = new Console();
    outb(c, REG.MCR, 0x10);
    outb(c, REG.DATA, 0x41);
    expect(inb(c, REG.LSR)).toBe(0x61);
    outb(c, REG.FCR, 0x01);
    expect(inb(c, REG.LSR)).toBe(0x60);
    outb(c, REG.DATA, 0x42);
    outb(c, REG.FCR, 0x00);
    expect(inb(c, REG.LSR)).toBe(0x60);
    outb(c, REG.IER, 0x02);
    expect(inb(c, REG.IIR)).toBe(0x02);
    expect(inb(c, REG.IIR)).toBe(0x01);
    outb(c, REG.FCR, 0x04);
    expect(inb(c, REG.IIR)).toBe(0x02);
  });

  it('a wide OUT at the last COM1 port puts the bytes past it nowhere: port 0x400 is not the data port again', () => {
    const c = new Console();
    c.uartWrite(COM1 + REG.SCR, 0x4155, 2);
    expect(inb(c, REG.SCR)).toBe(0x55);
    expect(c.text).toBe('');
  });

  it('a string OUT (OUTSB) to the data port raises THRE as byte OUTs do, once it sent a byte; with DLAB or loopback its bytes are not sent', () => {
    const c = new Console();
    outb(c, REG.IER, 0x02);
    expect(inb(c, REG.IIR)).toBe(0x02);
    c.uartWriteString(COM1, Uint8Array.of(0x41, 0x42), 1);
    expect(c.text).toBe('AB');
    expect(inb(c, REG.IIR)).toBe(0x02);
    expect(inb(c, REG.IIR)).toBe(0x01);
    c.uartWriteString(COM1, new Uint8Array(0), 1);  // REP OUTSB with RCX = 0 writes nothing
    expect(inb(c, REG.IIR)).toBe(0x01);
    outb(c, REG.LCR, 0x80);
    c.uartWriteString(COM1, Uint8Array.of(0x01, 0x03), 1);
    expect(inb(c, REG.DATA)).toBe(0x03);  // each byte went to DLL
    outb(c, REG.LCR, 0x03);
    outb(c, REG.MCR, 0x10);
    c.uartWriteString(COM1, Uint8Array.of(0x58), 1);
    expect(inb(c, REG.DATA)).toBe(0x58);
    expect(c.text).toBe('AB');
  });

  it('restores the whole register file with the console state', () => {
    const c = new Console();
    outb(c, REG.SCR, 0x11);
    outb(c, REG.FCR, 0x01);
    outb(c, REG.MCR, 0x10);
    outb(c, REG.DATA, 0x61);
    const saved = c.saveState();
    outb(c, REG.SCR, 0x22);
    outb(c, REG.MCR, 0x08);
    expect(inb(c, REG.DATA)).toBe(0x61);
    c.loadState(saved);
    expect([inb(c, REG.SCR), inb(c, REG.MCR), inb(c, REG.IIR), inb(c, REG.LSR)]).toEqual([0x11, 0x10, 0xc1, 0x61]);
    expect(inb(c, REG.DATA)).toBe(0x61);
    expect(inb(c, REG.DATA)).toBe(0);
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

describe('TDVMCALL<Instruction.IO> on COM1', () => {
  // GHCI 1.5 Instruction.IO: R12 size, R13 direction (0 in, 1 out), R14 port, R15 the value out;
  // an IN returns its value in R11.
  const io = (size: bigint, direction: bigint, port: bigint, value = 0n): VmcallExit => ({
    reason: 'tdvmcall', rip: 0n, mask: 0xfffcn,
    regs: { rcx: 0n, rdx: 0n, rbx: 0n, rbp: 0n, rsi: 0n, rdi: 0n, r8: 0n, r9: 0n, r10: 0n, r11: 30n, r12: size, r13: direction, r14: port, r15: value },
  });
  it('reads and writes the register file through the honest VMM: a 2-byte OUT sets LCR and MCR, a 2-byte IN reads them back', () => {
    const ctx = { console: new Console() } as unknown as VmmContext;
    expect(honestTdxPolicy.instructionIo(ctx, io(2n, 1n, 0x3fbn, 0x1383n))).toMatchObject({ kind: 'return', regs: { r10: 0n } });
    expect(honestTdxPolicy.instructionIo(ctx, io(2n, 0n, 0x3fbn))).toMatchObject({ kind: 'return', regs: { r10: 0n, r11: 0x1383n } });
    expect(honestTdxPolicy.instructionIo(ctx, io(1n, 0n, 0x3f8n))).toMatchObject({ regs: { r11: 0x0cn } });  // DLAB: the divisor's low byte
  });
});
