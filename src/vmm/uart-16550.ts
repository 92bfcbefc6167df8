// The COM1 UART's register file, as the honest VMM's device model (QEMU's 16550A, hw/char/serial.c,
// which serves COM1 to TDX and SNP guests under KVM) gives it: reset values, the divisor latch,
// the FIFO-enable bits IIR reports, loopback, and the interrupt identification a polling driver
// reads. Transmission is instant: THR is empty again as soon as a byte is written. No interrupt is
// raised (the VMM injects none), nothing is ever received from outside, and the FIFO holds at most
// 16 bytes looped back.
import type { Snapshottable } from '../shared/snapshottable.js';

/** Register offsets from the base port (16550 data sheet; Linux include/uapi/linux/serial_reg.h). */
export const UART_REG = { DATA: 0, IER: 1, IIR_FCR: 2, LCR: 3, MCR: 4, LSR: 5, MSR: 6, SCR: 7 } as const;

const LCR_DLAB = 0x80;
const IER_RDI = 0x01, IER_THRI = 0x02, IER_RLSI = 0x04;
const IIR_NO_INT = 0x01, IIR_THRI = 0x02, IIR_RDI = 0x04, IIR_RLSI = 0x06, IIR_FIFO_ENABLED = 0xc0;
const FCR_FIFO_ENABLE = 0x01, FCR_CLEAR_RECEIVE = 0x02, FCR_CLEAR_TRANSMIT = 0x04;
const MCR_LOOP = 0x10;
/** MSR with DCD, DSR and CTS asserted: what serial_reset sets and nothing here changes (no modem line moves). */
const MSR_LINES_UP = 0xb0;
const LSR_DATA_READY = 0x01, LSR_OVERRUN = 0x02, LSR_ERRORS = 0x1e, LSR_THR_EMPTY = 0x20, LSR_TRANSMITTER_EMPTY = 0x40;
const RECEIVE_FIFO_BYTES = 16;

export interface UartState {
  divisor: number; ier: number; fcr: number; lcr: number; mcr: number; lsr: number; scr: number;
  rbr: number; received: number[]; thrInterruptPending: boolean;
}

/** serial_reset: 9600 baud (divisor 12), LCR 0, OUT2 set, the transmitter empty (MSR: MSR_LINES_UP). */
function resetState(): UartState {
  return {
    divisor: 0x0c, ier: 0, fcr: 0, lcr: 0, mcr: 0x08, lsr: LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY, scr: 0,
    rbr: 0, received: [], thrInterruptPending: false,
  };
}

export class Uart16550 implements Snapshottable<UartState> {
  #s = resetState();
  readonly #transmit: (byte: number) => void;

  /** `transmit` takes each byte sent on the line (not those looped back). */
  constructor(transmit: (byte: number) => void) {
    this.#transmit = transmit;
  }

  /** Whether a byte written to the data port now goes out on the line (neither DLAB nor loopback). */
  get transmitsOnLine(): boolean {
    return (this.#s.lcr & LCR_DLAB) === 0 && (this.#s.mcr & MCR_LOOP) === 0;
  }

  /** Bytes sent on the line by the caller itself (transmitsOnLine): THR is empty again after them. */
  noteTransmitted(): void {
    this.#s.thrInterruptPending = true;
  }

  /** serial_ioport_read: one register, with its read side effects. */
  read(offset: number): number {
    const s = this.#s;
    switch (offset & 7) {
      case UART_REG.DATA:
        if (s.lcr & LCR_DLAB) return s.divisor & 0xff;
        return this.#readReceiver();
      case UART_REG.IER:
        return s.lcr & LCR_DLAB ? (s.divisor >> 8) & 0xff : s.ier;
      case UART_REG.IIR_FCR: {
        const iir = this.#iir();
        // Reading IIR while it reports THRE acknowledges that interrupt.
        if ((iir & 0x0f) === IIR_THRI) s.thrInterruptPending = false;
        return iir;
      }
      case UART_REG.LCR:
        return s.lcr;
      case UART_REG.MCR:
        return s.mcr;
      case UART_REG.LSR: {
        const lsr = s.lsr;
        s.lsr &= ~LSR_OVERRUN;  // overrun (and break) clear when LSR is read
        return lsr;
      }
      case UART_REG.MSR:
        // In loopback the modem outputs drive the inputs: OUT2 → DCD, OUT1 → RI, RTS → CTS, DTR → DSR.
        return s.mcr & MCR_LOOP ? ((s.mcr & 0x0c) << 4) | ((s.mcr & 0x02) << 3) | ((s.mcr & 0x01) << 5) : MSR_LINES_UP;
      default:
        return s.scr;
    }
  }

  /** serial_ioport_write: one register. */
  write(offset: number, value: number): void {
    const s = this.#s;
    value &= 0xff;
    switch (offset & 7) {
      case UART_REG.DATA:
        if (s.lcr & LCR_DLAB) s.divisor = (s.divisor & 0xff00) | value;
        else this.#send(value);
        return;
      case UART_REG.IER: {
        if (s.lcr & LCR_DLAB) {
          s.divisor = (s.divisor & 0x00ff) | (value << 8);
          return;
        }
        const changed = (s.ier ^ value) & IER_THRI;
        s.ier = value & 0x0f;
        // Turning THRI on with THR empty raises it again (QEMU, after Bochs: Windows relies on it).
        if (changed) s.thrInterruptPending = (s.ier & IER_THRI) !== 0 && (s.lsr & LSR_THR_EMPTY) !== 0;
        return;
      }
      case UART_REG.IIR_FCR: {
        // Changing FIFO enable flushes both FIFOs.
        if ((value ^ s.fcr) & FCR_FIFO_ENABLE) value |= FCR_CLEAR_RECEIVE | FCR_CLEAR_TRANSMIT;
        if (value & FCR_CLEAR_RECEIVE) {
          s.lsr &= ~LSR_DATA_READY;
          s.received = [];
        }
        if (value & FCR_CLEAR_TRANSMIT) {
          s.lsr |= LSR_THR_EMPTY;
          s.thrInterruptPending = true;
        }
        s.fcr = value & 0xc9;
        return;
      }
      case UART_REG.LCR:
        s.lcr = value;
        return;
      case UART_REG.MCR:
        s.mcr = value & 0x1f;
        return;
      case UART_REG.SCR:
        s.scr = value;
        return;
      default:
        return;  // LSR and MSR are read-only
    }
  }

  #send(byte: number): void {
    const s = this.#s;
    // serial_xmit: THR moves to the shift register and is empty again, which raises THRE.
    s.thrInterruptPending = true;
    if (s.mcr & MCR_LOOP) this.#receive(byte);
    else this.#transmit(byte);
  }

  /** serial_receive1, for a byte looped back: into the FIFO when it is enabled, else RBR (overrun if unread). */
  #receive(byte: number): void {
    const s = this.#s;
    if (s.fcr & FCR_FIFO_ENABLE) {
      if (s.received.length < RECEIVE_FIFO_BYTES) s.received.push(byte);
      else s.lsr |= LSR_OVERRUN;
    } else {
      if (s.lsr & LSR_DATA_READY) s.lsr |= LSR_OVERRUN;
      s.rbr = byte;
    }
    s.lsr |= LSR_DATA_READY;
  }

  #readReceiver(): number {
    const s = this.#s;
    if (s.fcr & FCR_FIFO_ENABLE) {
      const byte = s.received.shift() ?? 0;
      if (s.received.length === 0) s.lsr &= ~LSR_DATA_READY;
      return byte;
    }
    s.lsr &= ~LSR_DATA_READY;
    return s.rbr;
  }

  /** serial_update_irq's priority: line status, received data, THR empty; the FIFO bits on top. */
  #iir(): number {
    const s = this.#s;
    let id = IIR_NO_INT;
    if (s.ier & IER_RLSI && s.lsr & LSR_ERRORS) id = IIR_RLSI;
    else if (s.ier & IER_RDI && s.lsr & LSR_DATA_READY) id = IIR_RDI;
    else if (s.ier & IER_THRI && s.thrInterruptPending) id = IIR_THRI;
    return id | (s.fcr & FCR_FIFO_ENABLE ? IIR_FIFO_ENABLED : 0);
  }

  saveState(): UartState {
    return { ...this.#s, received: [...this.#s.received] };
  }

  loadState(state: UartState): void {
    this.#s = { ...state, received: [...state.received] };
  }
}
