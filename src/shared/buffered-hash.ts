// A hash fed through a 64 KiB buffer that callers write into directly: one native update per
// 64 KiB instead of one per small piece, which dominated the trace hash and the TDX measurement
// (issue 11). The digest is the same as hashing every piece in order.
import { createHash, type Hash } from 'node:crypto';
import type { Snapshottable } from './snapshottable.js';

const BUFFER_BYTES = 1 << 16;

/** A saved hash position; undefined once the digest was taken (nothing can be added after that). */
export type BufferedHashState = Hash | undefined;

export class BufferedHash implements Snapshottable<BufferedHashState> {
  static readonly capacity = BUFFER_BYTES;
  readonly buf = Buffer.allocUnsafe(BUFFER_BYTES);
  readonly view = new DataView(this.buf.buffer, this.buf.byteOffset, BUFFER_BYTES);
  /** Next free byte of `buf`; advance it after writing there. */
  pos = 0;
  readonly #algorithm: string;
  #hash: Hash;
  #digested = false;

  constructor(algorithm: string) {
    this.#algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }

  saveState(): BufferedHashState {
    if (this.#digested) return undefined;
    this.flush();
    return this.#hash.copy();
  }

  loadState(state: BufferedHashState): void {
    this.pos = 0;
    this.#digested = state === undefined;
    this.#hash = state ? state.copy() : createHash(this.#algorithm);
  }

  /** Makes room for `bytes` (at most `capacity`) at `pos`. */
  room(bytes: number): void {
    if (this.pos + bytes > BUFFER_BYTES) this.flush();
  }

  flush(): void {
    if (this.pos === 0) return;
    this.#hash.update(this.buf.subarray(0, this.pos));
    this.pos = 0;
  }

  update(data: Uint8Array): void {
    if (data.byteLength > BUFFER_BYTES) {
      this.flush();
      this.#hash.update(data);
      return;
    }
    this.room(data.byteLength);
    this.buf.set(data, this.pos);
    this.pos += data.byteLength;
  }

  /** The digest so far; hashing can go on. */
  peek(encoding: 'hex'): string {
    return this.#hash.copy().update(this.buf.subarray(0, this.pos)).digest(encoding);
  }

  digest(): Buffer {
    this.flush();
    this.#digested = true;
    return this.#hash.digest();
  }
}
