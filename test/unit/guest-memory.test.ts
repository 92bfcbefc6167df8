// GuestMemory's host-side contract (src/memory/guest-memory.ts header): writes through a window
// are not seen by the dirty tracking, the code cache and the zero-fill bookkeeping until
// noteHostWrite tells them; after it, a zero fill (what a TDX ACCEPT or SNP_LAUNCH_UPDATE ZERO
// does to a page) really zeroes what the window wrote.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';

const P = 0x400000n;

describe('GuestMemory host access', () => {
  it('a window write followed by noteHostWrite does not survive a zero fill', () => {
    const m = new Machine({ memoryBytes: 16n << 20n, countInstructions: false });
    m.memory.fill(P, 0x200000n, 0);
    const w = m.memory.window(P, 0x2000);
    w.fill(0xaa);
    m.memory.noteHostWrite(P, 0x2000n);
    expect(m.memory.read(P + 0x1ffen, 2)).toEqual(Buffer.from([0xaa, 0xaa]));
    m.memory.fill(P, 0x200000n, 0);
    expect(Buffer.from(m.memory.read(P, 0x2000)).equals(Buffer.alloc(0x2000))).toBe(true);
    m.close();
  });

  it('noteHostWrite, read, window and fill of a range outside guest RAM are RangeErrors naming the range', () => {
    const size = 16n << 20n;
    const m = new Machine({ memoryBytes: size, countInstructions: false });
    expect(() => m.memory.noteHostWrite(size - 0x1000n, 0x2000n)).toThrow(`guest-physical range 0x${(size - 0x1000n).toString(16)}+0x2000 is outside guest RAM (0x1000000 bytes)`);
    expect(() => m.memory.read(size, 1)).toThrow(RangeError);
    expect(() => m.memory.window(-0x1000n, 0x1000)).toThrow(RangeError);
    expect(() => m.memory.fill(size - 1n, 2n, 0)).toThrow(RangeError);
    // The last byte is inside.
    expect(m.memory.read(size - 1n, 1)).toHaveLength(1);
    m.close();
  });

  it('reads (from the RAM views) give what was written, up to the last byte, and throw once the VM is closed', () => {
    const size = 16n << 20n;
    const m = new Machine({ memoryBytes: size, countInstructions: false });
    const bytes = Uint8Array.from({ length: 100 }, (_, i) => (i * 37 + 1) & 0xff);
    m.memory.write(size - 100n, bytes);
    expect(m.memory.read(size - 100n, 100)).toEqual(Buffer.from(bytes));
    expect(m.memory.read(size - 8n, 8)).toEqual(Buffer.from(bytes.subarray(92)));
    expect(m.memory.readU64(size - 8n)).toBe(Buffer.from(bytes.subarray(92)).readBigUInt64LE());
    expect(m.memory.readU32(size - 4n)).toBe(Buffer.from(bytes.subarray(96)).readUInt32LE());
    expect(m.memory.readU16(size - 2n)).toBe(Buffer.from(bytes.subarray(98)).readUInt16LE());
    expect(m.memory.readU8(size - 1n)).toBe(bytes[99]);
    expect(m.memory.read(0n, 0)).toHaveLength(0);
    expect(m.memory.read(size, 0)).toHaveLength(0);
    expect(() => m.memory.readU64(size - 4n)).toThrow(RangeError);
    expect(() => m.memory.read(size - 1n, 2)).toThrow(RangeError);
    expect(() => m.memory.read(0n, -1)).toThrow(RangeError);
    m.close();
    expect(() => m.memory.readU8(0n)).toThrow('the VM is closed');
    expect(() => m.memory.read(0n, 64)).toThrow('the VM is closed');
  });

  it('reads across a boundary of the RAM views (64 KiB chunks) and of RAM pieces (1 GiB) give what was written', () => {
    const m = new Machine({ memoryBytes: 2n << 30n, countInstructions: false });
    const at = (1n << 30n) - 4n;
    m.memory.write(at, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    expect(m.memory.readU64(at)).toBe(0x0807060504030201n);
    expect(m.memory.readU32(at + 4n)).toBe(0x08070605);
    expect(m.memory.read(at - 60n, 72).subarray(60)).toEqual(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]));
    // readInto fills the caller's buffer, every byte of it, across two views (and RAM pieces) or inside one.
    const into = Buffer.alloc(12, 0xee);
    expect(m.memory.readInto(at - 8n, into)).toBe(into);
    expect(into).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]));
    expect(m.memory.readInto(0x10000n - 20n, into.fill(0xee))).toEqual(Buffer.alloc(12));
    m.close();
  });
});
