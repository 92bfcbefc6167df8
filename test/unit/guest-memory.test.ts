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
});
