// Unicorn's QEMU aborts the whole process when its memory map reaches 4,096 sections
// (qemu/exec.c phys_section_add: assert sections_nb < TARGET_PAGE_SIZE), and every GiB of guest
// RAM the page gate opens is mapped as one (native/src/machine.cc, kMaxMappedChunks). A 64 TiB
// TDX guest accepting eagerly with a large budget reached it and took node down (exit 134). Past
// the limit the machine refuses with an error and stays usable; a machine without a page gate,
// which maps all of its RAM at once, is refused up front.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../src/cpu/machine.js';

const GiB = 1n << 30n;
const LIMIT = 3840;

describe('a huge guest and the emulator\'s memory map', () => {
  // ~10 s: QEMU rebuilds its flat memory view at every mapping, so mapping n chunks costs n^2.
  it(`opening pages in more than ${LIMIT} distinct GiB is a RangeError, not an abort, and what was opened still works`, { timeout: 120_000 }, () => {
    const m = new Machine({ memoryBytes: 64n << 40n });
    try {
      for (let n = 0; n < LIMIT; n++) m.gate.set('private', BigInt(n) * GiB, 0x1000n, 'readwrite');
      expect(() => m.gate.set('private', BigInt(LIMIT) * GiB, 0x1000n, 'readwrite')).toThrow(/cannot map this much more of a huge guest's RAM.*4,096 sections/);
      // Nothing changed for the refused page; closing pages still works, and so does the guest.
      expect(m.gate.get('private', BigInt(LIMIT) * GiB)).toBe('none');
      m.gate.set('private', BigInt(LIMIT) * GiB, 0x1000n, 'none');
      expect(m.gate.get('private', BigInt(LIMIT - 1) * GiB)).toBe('readwrite');
      m.gate.set('private', 0n, 0x2000n, 'readwrite');
      m.memory.write(0x1000n, Uint8Array.from([0x90, 0xf4]));
      m.vcpu.regs.rip = 0x1000n;
      expect(m.vcpu.run().kind).toBe('hlt');
    } finally {
      m.close();
    }
  });

  it('a machine without a page gate maps all its RAM, so one above the limit is refused when it is made', () => {
    expect(() => new Machine({ memoryBytes: BigInt(LIMIT + 1) * GiB, pageGate: false })).toThrow(`guest RAM without a page gate is mapped whole, and more than ${LIMIT} GiB of it is more than the emulator can map`);
  });
});
