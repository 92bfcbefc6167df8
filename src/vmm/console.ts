// The guest's console: bytes the VMM received through the platform's I/O path (TDVMCALL
// Instruction.IO, GHCB IOIO, or a plain OUT to the COM1 data port).
import type { Snapshottable } from '../shared/snapshottable.js';

export const COM1_DATA_PORT = 0x3f8;
/**
 * The stubs' batched console, any number of lines per exit (guest/include/minivisor/boot_abi.h,
 * console; src/boot/layout.ts mirrors the numbers and a test keeps them equal): at most BATCH_MAX
 * bytes; on TDX a vendor-specific TDG.VP.VMCALL (R10 = VMCALL, R11 = WRITE, R12 = shared GPA,
 * R13 = count), on SNP the GHCB IOIO NAE with string semantics. The count comes from the guest:
 * the VMM checks it against BATCH_MAX and the page before reading anything.
 */
export const BATCHED_CONSOLE = { BATCH_MAX: 0x7f0, VMCALL: 0x4d56n, VMCALL_WRITE: 0x1n } as const;

export interface ConsoleState { bytes: number; line: string; divisorLatch: boolean }

/** The 16550 line control register's offset from the data port, and its divisor-latch access bit. */
const UART_LCR = 3;
const UART_LCR_DLAB = 0x80;
/** The 16550 line status register's offset from the data port, and its value with the transmitter empty (THRE | TEMT). */
const UART_LSR = 5;
const UART_LSR_TRANSMITTER_EMPTY = 0x60n;

/**
 * What an IN of `size` bytes from `port` reads: COM1's line status says the transmitter is empty,
 * so polling serial drivers go on; any other port floats high (QEMU unassigned_io_read).
 */
export function uartRead(port: number, size: 1 | 2 | 4): bigint {
  return port === COM1_DATA_PORT + UART_LSR ? UART_LSR_TRANSMITTER_EMPTY : (1n << BigInt(8 * size)) - 1n;
}

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
  /** LCR.DLAB: while set, the data port is the divisor latch (DLL), not the transmitter. */
  #divisorLatch = false;

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
   * A byte-wide OUT to the COM1 UART (ports 0x3f8..0x3ff) as a 16550 takes it: the data port
   * transmits unless LCR.DLAB selects the divisor latch (Linux's early_serial_init writes the
   * baud divisor there, arch/x86/boot/early_serial_console.c); LCR tracks DLAB; the rest is
   * configuration with nothing to show.
   */
  uartWrite(port: number, value: number): void {
    if (port === COM1_DATA_PORT && !this.#divisorLatch) this.write(value);
    else if (port === COM1_DATA_PORT + UART_LCR) this.#divisorLatch = (value & UART_LCR_DLAB) !== 0;
  }

  flush(): void {
    if (this.#line) this.#echo?.(this.#line);
    this.#line = '';
  }

  saveState(): ConsoleState {
    return { bytes: this.#length, line: this.#line, divisorLatch: this.#divisorLatch };
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
    this.#divisorLatch = state.divisorLatch;
  }

  get text(): string {
    return Buffer.from(this.#bytes.buffer, this.#bytes.byteOffset, this.#length).toString('latin1');
  }
}
