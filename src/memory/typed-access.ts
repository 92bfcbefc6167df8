// Little-endian 8/16/32/64-bit accessors over any byte-addressed guest-physical view, so the
// VM's own memory and the host's guarded view of it share one implementation.
export abstract class TypedAccess {
  abstract read(gpa: bigint, length: number): Uint8Array;
  abstract write(gpa: bigint, data: Uint8Array): void;

  readU8(gpa: bigint): number { return this.read(gpa, 1)[0]!; }
  // Decoded from the bytes read, not from a Buffer copy of them (a second allocation per read).
  readU16(gpa: bigint): number { const b = this.read(gpa, 2); return b[0]! | (b[1]! << 8); }
  readU32(gpa: bigint): number { const b = this.read(gpa, 4); return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0; }
  readU64(gpa: bigint): bigint { const b = this.read(gpa, 8); return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true); }

  writeU8(gpa: bigint, value: number): void { this.write(gpa, Uint8Array.of(value & 0xff)); }
  writeU16(gpa: bigint, value: number): void { const b = Buffer.alloc(2); b.writeUInt16LE(value & 0xffff); this.write(gpa, b); }
  writeU32(gpa: bigint, value: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(value >>> 0); this.write(gpa, b); }
  writeU64(gpa: bigint, value: bigint): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, value)); this.write(gpa, b); }
}
