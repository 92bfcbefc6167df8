// The guest's console: bytes the VMM received through the platform's I/O path (TDVMCALL
// Instruction.IO, GHCB IOIO, or a plain OUT to the COM1 data port).
export const COM1_DATA_PORT = 0x3f8;

export class Console {
  readonly #bytes: number[] = [];
  readonly #echo: ((text: string) => void) | undefined;
  #line = '';

  constructor(echo?: (text: string) => void) {
    this.#echo = echo;
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

  get text(): string {
    return Buffer.from(this.#bytes).toString('latin1');
  }
}
