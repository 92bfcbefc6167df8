// The host's reading of the guest's own acceptance record (src/boot/guest-record.ts): struct
// mv_boot_params at MV_BOOT_PARAMS_GPA (guest/include/minivisor/boot_abi.h) with its E820 map and
// the bitmap it names (set = unaccepted, one bit per unit from GPA 0, units past it accepted, as
// Linux's EFI unaccepted-memory table). Guest memory is hostile input: a record that does not
// hold together reads as absent. Each test here killed a hand mutation of the reader that the
// boots and fuzz campaigns did not notice.
import { describe, expect, it } from 'vitest';
import { readGuestMemoryRecord } from '../../../src/boot/guest-record.js';
import { MEMORY, MiB, memoryWith, ram, unaccepted } from '../../helpers/guest-record-memory.js';

describe('the guest\'s acceptance record as the host reads it', () => {
  it('RAM entries are accepted, unaccepted ones take each unit\'s bit (set = unaccepted), neighbours of one kind merge', () => {
    // 2 MiB units: bits 3 and 5 set.
    const record = readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: [0b0010_1000, 0, 0, 0, 0, 0, 0, 0], e820: [ram(0n, 4n * MiB), unaccepted(4n * MiB, 12n * MiB)] }));
    expect(record).toEqual({
      unit: 0x200000n,
      runs: [
        { start: 0n, end: 6n * MiB, accepted: true },
        { start: 6n * MiB, end: 8n * MiB, accepted: false },
        { start: 8n * MiB, end: 10n * MiB, accepted: true },
        { start: 10n * MiB, end: 12n * MiB, accepted: false },
        { start: 12n * MiB, end: 16n * MiB, accepted: true },
      ],
    });
  });

  it('a unit other than 4 KiB or 2 MiB, or a bitmap longer than memory has units for, is no record', () => {
    const e820 = [unaccepted(0n, MEMORY)];
    expect(readGuestMemoryRecord(memoryWith({ unit: 0x10000n, bitmap: [0xff, 0, 0, 0, 0, 0, 0, 0], e820 }))).toBeUndefined();
    // 16 MiB in 2 MiB units: 8 bits, kept in one 64-bit word (8 bytes); 16 bytes is too long.
    expect(readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: new Array<number>(16).fill(0), e820 }))).toBeUndefined();
    expect(readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: new Array<number>(8).fill(0), e820 }))).toBeDefined();
  });

  it('units past the end of the bitmap count as accepted', () => {
    // 4 KiB units, a bitmap of 8 bytes: it covers 64 units (256 KiB), all unaccepted.
    const record = readGuestMemoryRecord(memoryWith({ unit: 0x1000n, bitmap: new Array<number>(8).fill(0xff), e820: [unaccepted(0n, MiB)] }));
    expect(record?.runs).toEqual([{ start: 0n, end: 0x40000n, accepted: false }, { start: 0x40000n, end: MiB, accepted: true }]);
  });

  it('entries that reach past guest memory end where memory does', () => {
    const record = readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: [0xff, 0, 0, 0, 0, 0, 0, 0], e820: [ram(0n, 12n * MiB), unaccepted(12n * MiB, 20n * MiB)] }));
    expect(record?.runs).toEqual([{ start: 0n, end: 12n * MiB, accepted: true }, { start: 12n * MiB, end: 16n * MiB, accepted: false }]);
  });
});
