// Bounds-checked access to guest-physical RAM. Copies for small values, zero-copy windows for
// bulk work. Writes through these methods are seen by snapshot dirty tracking and drop stale
// translated code; writes through a window are not (call noteHostWrite after them). They also
// mark the pages as holding data: snapshots and zero fills skip pages never written, so a window
// write without noteHostWrite could survive a fill(…, 0) such as a TDX ACCEPT.
import type { NativeMachine } from '../native/binding.js';
import { TypedAccess } from './typed-access.js';
import { isSparsePages, type SparsePages } from '../shared/sparse-pages.js';
import { u64ToNumber } from '../shared/u64.js';

export const PAGE_SIZE = 4096n;
/** The most one read copies (1 GiB, as a window maps). */
const MAX_COPY_BYTES = 1 << 30;
/** The RAM views' size (native ramView). */
const CHUNK_BYTES = 2 ** 16;

export class GuestMemory extends TypedAccess {
  readonly size: bigint;
  readonly #native: NativeMachine;
  readonly #sizeNumber: number;

  /**
   * Guest RAM in 64 KiB chunks, zero-copy, each opened at its first read (native ramView; small,
   * as V8 counts their bytes as external memory): reads copy from these instead of calling
   * readInto, a native call of ~2,000 instructions, made ~60 times in an SNP fuzz execution (GHCB
   * and PSC fields, issue 10). Empty once the VM is closed (the native side detaches them), and
   * reads then take the native path, which says so. The last one used is looked up first.
   */
  readonly #chunks = new Map<number, Uint8Array>();
  #lastIndex = -1;
  #lastChunk: Uint8Array = new Uint8Array(0);

  constructor(native: NativeMachine, size: bigint) {
    super();
    this.#native = native;
    this.size = size;
    this.#sizeNumber = Number(size);
  }

  /**
   * The offset of [gpa, gpa+length) in the chunk it lies in, which is then #lastChunk; -1 when it
   * must be read natively (outside RAM, which the native path reports, across a chunk boundary, or
   * closed).
   */
  #locate(gpa: bigint, length: number): number {
    const g = u64ToNumber(gpa);
    if (!(g >= 0 && length > 0 && g + length <= this.#sizeNumber)) return -1;
    const index = Math.floor(g / CHUNK_BYTES);
    if (index !== this.#lastIndex) {
      this.#lastChunk = this.#chunks.get(index) ?? this.#open(index);
      this.#lastIndex = index;
    }
    const at = g - index * CHUNK_BYTES;
    return at + length <= this.#lastChunk.length ? at : -1;
  }

  #open(index: number): Uint8Array {
    const chunk = new Uint8Array(this.#native.ramView(index));
    this.#chunks.set(index, chunk);
    return chunk;
  }

  #check(gpa: bigint, length: bigint): void {
    // On numbers, which allocate nothing (BigInt sums did, on every exit): exact below 2^53, and
    // anything larger is outside RAM (at most 2^46) either way.
    const g = u64ToNumber(gpa), l = u64ToNumber(length);
    if (g < 0 || l < 0 || g + l > this.#sizeNumber) {
      throw new RangeError(`guest-physical range 0x${gpa.toString(16)}+0x${length.toString(16)} is outside guest RAM (0x${this.size.toString(16)} bytes)`);
    }
  }

  /** readTransient's bytes: one view per length over the same 8 bytes. */
  readonly #transient = ((bytes: Buffer) => [bytes, bytes.subarray(0, 1), bytes.subarray(0, 2), bytes, bytes.subarray(0, 4), bytes, bytes, bytes, bytes])(Buffer.alloc(8));

  override readTransient(gpa: bigint, length: 1 | 2 | 4 | 8): Uint8Array {
    const out = this.#transient[length]!;
    const at = this.#locate(gpa, length);
    if (at >= 0) {
      const view = this.#lastChunk;
      for (let i = 0; i < length; i++) out[i] = view[at + i]!;
      return out;
    }
    this.#check(gpa, BigInt(length));
    this.#native.readInto(gpa, out);
    return out;
  }

  read(gpa: bigint, length: number): Uint8Array {
    // A Buffer from Node's pool, every byte of it overwritten (so the pool's old contents never
    // show): a Buffer made by the addon per read cost more than the copy for the small reads a
    // VMM does on every exit (issue 10).
    if (!(Number.isInteger(length) && length >= 0 && length <= MAX_COPY_BYTES)) {
      this.#check(gpa, BigInt(length));
      throw new RangeError(`length must be an integer from 0 to ${MAX_COPY_BYTES}`);
    }
    return this.readInto(gpa, Buffer.allocUnsafe(length));
  }

  /**
   * read() into `out` (its length says how much), which it returns: a caller that reads whole
   * pages again and again (SNP's ciphertext of a page) reuses one buffer instead of a new 4 KiB
   * ArrayBuffer per read, which Node's pool does not serve.
   */
  readInto(gpa: bigint, out: Uint8Array): Uint8Array {
    const length = out.length;
    const at = this.#locate(gpa, length);
    if (at >= 0) {
      const view = this.#lastChunk;
      // Short reads byte by byte: a subarray for set() is an allocation and a builtin call more.
      if (length <= 32) for (let i = 0; i < length; i++) out[i] = view[at + i]!;
      else out.set(view.subarray(at, at + length));
      return out;
    }
    this.#check(gpa, BigInt(length));
    this.#native.readInto(gpa, out);
    return out;
  }

  write(gpa: bigint, data: Uint8Array): void {
    this.#check(gpa, BigInt(data.byteLength));
    this.#native.write(gpa, data);
  }

  fill(gpa: bigint, length: bigint, byte = 0): void {
    this.#check(gpa, length);
    this.#native.fill(gpa, length, byte);
  }

  /**
   * write() of `source`, which may come as its non-zero pages: the pages it leaves out are zeros,
   * a fill, which leaves RAM nobody wrote untouched (it reads as zeros).
   */
  writePages(gpa: bigint, source: Uint8Array | SparsePages): void {
    if (!isSparsePages(source)) return this.write(gpa, source);
    this.fill(gpa, BigInt(source.byteLength), 0);
    for (const [offset, page] of source.pages) this.write(gpa + BigInt(offset), page);
  }

  /** A zero-copy view of [gpa, gpa+length) (at most 1 GiB). It stays valid after the VM closes. */
  window(gpa: bigint, length: number): Uint8Array {
    this.#check(gpa, BigInt(length));
    return new Uint8Array(this.#native.window(gpa, length));
  }

  /** Tells dirty tracking, the code cache and the zero-fill bookkeeping that a window wrote [gpa, gpa+length). */
  noteHostWrite(gpa: bigint, length: bigint): void {
    this.#check(gpa, length);
    this.#native.noteHostWrite(gpa, length);
  }
}
