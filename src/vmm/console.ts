// The guest's console: bytes the VMM received through the platform's I/O path (TDVMCALL
// Instruction.IO, GHCB IOIO, or a plain OUT to the COM1 data port).
import type { Snapshottable } from '../shared/snapshottable.js';
import { Uart16550, type UartState } from './uart-16550.js';

export const COM1_DATA_PORT = 0x3f8;
/**
 * The stubs' batched console, any number of lines per exit (guest/include/minivisor/boot_abi.h,
 * console; src/boot/layout.ts mirrors the numbers and a test keeps them equal): at most BATCH_MAX
 * bytes; on TDX a vendor-specific TDG.VP.VMCALL (R10 = VMCALL, R11 = WRITE, R12 = shared GPA,
 * R13 = count), on SNP the GHCB IOIO NAE with string semantics. The count comes from the guest:
 * the VMM checks it against BATCH_MAX and the page before reading anything.
 */
export const BATCHED_CONSOLE = { BATCH_MAX: 0x7f0, VMCALL: 0x4d56n, VMCALL_WRITE: 0x1n } as const;

export interface ConsoleState { bytes: number; line: string; uart: UartState }

/** COM1's eight registers (0x3f8..0x3ff). */
const COM1_PORTS = 8;

export class Console implements Snapshottable<ConsoleState> {
  /**
   * Every byte written, in [0, #length) of a buffer grown by doubling. A restore only moves
   * #length back, so a fuzz execution that prints what the last one printed allocates nothing: a
   * number[] truncated by each restore gave its backing store up and grew it again, ~10% of what
   * an honest SNP execution allocated (issue 10).
   */
  #bytes = new Uint8Array(256);
  #length = 0;
  readonly #echo: ((text: string) => void) | undefined;
  #line = '';
  /** COM1: what the guest reads and writes at 0x3f8..0x3ff; the bytes it transmits come here. */
  readonly #uart = new Uart16550((byte) => this.write(byte));

  constructor(echo?: (text: string) => void) {
    this.#echo = echo;
  }

  /**
   * write() of each byte, a line at a time: the line's text is decoded at once (latin1, what
   * write() makes of a byte) rather than grown by a string concatenation per byte, which with
   * the byte loop was ~1.4% of a TDX fuzz campaign's CPU time (issue 10).
   */
  writeBytes(bytes: Uint8Array): void {
    let from = 0;
    while (from < bytes.length) {
      const newline = bytes.indexOf(0x0a, from);
      const to = newline < 0 ? bytes.length : newline + 1;
      this.#append(bytes, from, to);
      this.#line += Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('latin1');
      if (newline < 0) return;
      this.#echo?.(this.#line);
      this.#line = '';
      from = to;
    }
  }

  #reserve(more: number): void {
    const need = this.#length + more;
    if (need <= this.#bytes.length) return;
    let capacity = this.#bytes.length * 2;
    while (capacity < need) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }

  #append(bytes: Uint8Array, from: number, to: number): void {
    this.#reserve(to - from);
    this.#bytes.set(bytes.subarray(from, to), this.#length);
    this.#length += to - from;
  }

  write(byte: number): void {
    this.#reserve(1);
    this.#bytes[this.#length++] = byte & 0xff;
    const ch = String.fromCharCode(byte & 0xff);
    this.#line += ch;
    if (ch === '\n') {
      this.#echo?.(this.#line);
      this.#line = '';
    }
  }

  /**
   * An OUT of `size` bytes to `port`. QEMU's UART takes one byte at a time (serial_io_ops: impl
   * min and max access size 1), so a wider OUT is that many byte writes to consecutive ports, low
   * byte first; bytes outside COM1 go nowhere. The data port transmits unless LCR.DLAB selects
   * the divisor latch (Linux's early_serial_init writes the baud divisor there,
   * arch/x86/boot/early_serial_console.c) or MCR.LOOP loops it back (uart-16550.ts).
   */
  uartWrite(port: number, value: number | bigint, size = 1): void {
    const v = BigInt(value);
    for (let i = 0; i < size; i++) this.#writePort(port + i, Number((v >> BigInt(8 * i)) & 0xffn));
  }

  /**
   * A string OUT (OUTS) of `data`, elements of `size` bytes, to `port`: each element as uartWrite
   * takes it. Bytes to a COM1 data port that transmits go to the console in one piece.
   */
  uartWriteString(port: number, data: Uint8Array, size: number): void {
    if (port === COM1_DATA_PORT && size === 1 && this.#uart.transmitsOnLine) {
      this.writeBytes(data);
      if (data.length > 0) this.#uart.noteTransmitted();
      return;
    }
    for (let i = 0; i + size <= data.length; i += size) {
      for (let k = 0; k < size; k++) this.#writePort(port + k, data[i + k]!);
    }
  }

  /**
   * What an IN of `size` bytes from `port` reads: byte by byte as uartWrite, COM1's registers with
   * their read side effects, and any other port floating high (QEMU unassigned_io_read).
   */
  uartRead(port: number, size: number): bigint {
    let value = 0n;
    for (let i = 0; i < size; i++) value |= BigInt(this.#readPort(port + i)) << BigInt(8 * i);
    return value;
  }

  /** One byte to one port: COM1's register there, or nowhere. */
  #writePort(port: number, byte: number): void {
    const offset = port - COM1_DATA_PORT;
    if (offset >= 0 && offset < COM1_PORTS) this.#uart.write(offset, byte);
  }

  #readPort(port: number): number {
    const offset = port - COM1_DATA_PORT;
    return offset >= 0 && offset < COM1_PORTS ? this.#uart.read(offset) : 0xff;
  }

  flush(): void {
    if (this.#line) this.#echo?.(this.#line);
    this.#line = '';
  }

  saveState(): ConsoleState {
    return { bytes: this.#length, line: this.#line, uart: this.#uart.saveState() };
  }

  loadState(state: ConsoleState): void {
    // Bytes past the saved count were written after the state was saved: dropped (overwritten by
    // the next writes). A state with more bytes than this console holds reads zeros for the rest,
    // as the number[] this replaced did.
    if (state.bytes > this.#length) {
      this.#reserve(state.bytes - this.#length);
      this.#bytes.fill(0, this.#length, state.bytes);
    }
    this.#length = state.bytes;
    this.#line = state.line;
    this.#uart.loadState(state.uart);
  }

  get text(): string {
    return Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset, this.#length).toString('latin1');
  }
}
