// Little-endian 8/16/32/64-bit accessors over any byte-addressed guest-physical view, so the
// VM's own memory and the host's guarded view of it share one implementation.
import { u64FromWords } from '../shared/u64.js';

export abstract class TypedAccess {
  abstract read(gpa: bigint, length: number): Uint8Array;
  /** Copies `data` before it returns: the writers below hand it the same scratch bytes every time. */
  abstract write(gpa: bigint, data: Uint8Array): void;

  /**
   * The writers' bytes, made once: a Buffer allocated per write was one of the larger
   * allocations of an SNP exit (GHCB and PSC fields; issue 10).
   */
  readonly #scratch = Buffer.alloc(8);
  readonly #scratch1 = this.#scratch.subarray(0, 1);
  readonly #scratch2 = this.#scratch.subarray(0, 2);
  readonly #scratch4 = this.#scratch.subarray(0, 4);

  /**
   * read() of at most 8 bytes into bytes that stay valid only until the next such read: the typed
   * readers below decode them at once. By default read() itself; a view that can read into bytes
   * of its own instead saves the allocation, on every GHCB and PSC field an SNP VMM reads (issue 10).
   */
  readTransient(gpa: bigint, length: 1 | 2 | 4 | 8): Uint8Array { return this.read(gpa, length); }

  readU8(gpa: bigint): number { return this.readTransient(gpa, 1)[0]!; }
  // Decoded from the bytes read, not from a Buffer copy of them (a second allocation per read).
  readU16(gpa: bigint): number { const b = this.readTransient(gpa, 2); return b[0]! | (b[1]! << 8); }
  readU32(gpa: bigint): number { const b = this.readTransient(gpa, 4); return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0; }
  // Through u64FromWords: a DataView per read was an allocation more, and getBigUint64 a builtin call.
  readU64(gpa: bigint): bigint {
    const b = this.readTransient(gpa, 8);
    return u64FromWords((b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0, (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0);
  }

  writeU8(gpa: bigint, value: number): void { this.#scratch1[0] = value & 0xff; this.write(gpa, this.#scratch1); }
  writeU16(gpa: bigint, value: number): void { this.#scratch.writeUInt16LE(value & 0xffff); this.write(gpa, this.#scratch2); }
  writeU32(gpa: bigint, value: number): void { this.#scratch.writeUInt32LE(value >>> 0); this.write(gpa, this.#scratch4); }
  writeU64(gpa: bigint, value: bigint): void { this.#scratch.writeBigUInt64LE(BigInt.asUintN(64, value)); this.write(gpa, this.#scratch); }
}
