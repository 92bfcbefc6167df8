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

export interface ConsoleState { bytes: number; line: string }

export class Console implements Snapshottable<ConsoleState> {
  readonly #bytes: number[] = [];
  readonly #echo: ((text: string) => void) | undefined;
  #line = '';

  constructor(echo?: (text: string) => void) {
    this.#echo = echo;
  }

  writeBytes(bytes: Uint8Array): void {
    for (const b of bytes) this.write(b);
  }

  write(byte: number): void {
    this.#bytes.push(byte & 0xff);
    const ch = String.fromCharCode(byte & 0xff);
    this.#line += ch;
    if (ch === '\n') {
      this.#echo?.(this.#line);
      this.#line = '';
    }
  }

  flush(): void {
    if (this.#line) this.#echo?.(this.#line);
    this.#line = '';
  }

  saveState(): ConsoleState {
    return { bytes: this.#bytes.length, line: this.#line };
  }

  loadState(state: ConsoleState): void {
    this.#bytes.length = state.bytes;
    this.#line = state.line;
  }

  get text(): string {
    return Buffer.from(this.#bytes).toString('latin1');
  }
}
