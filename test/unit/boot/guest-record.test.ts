// The host's reading of the guest's own acceptance record (src/boot/guest-record.ts): struct
// mv_boot_params at MV_BOOT_PARAMS_GPA (guest/include/minivisor/boot_abi.h) with its E820 map and
// the bitmap it names (set = unaccepted, one bit per unit from GPA 0, units past it accepted, as
// Linux's EFI unaccepted-memory table). Guest memory is hostile input: a record that does not
// hold together reads as absent. Each test here killed a hand mutation of the reader that the
// boots and fuzz campaigns did not notice.
import { describe, expect, it } from 'vitest';
import { readGuestMemoryRecord } from '../../../src/boot/guest-record.js';
import { E820_TYPE } from '../../../src/boot/layout.js';
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

  it('a record with no bitmap, or with one reaching past guest memory, is no record; one ending at the end of memory is read', () => {
    const e820 = [unaccepted(0n, MEMORY)];
    expect(readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: [], e820 }))).toBeUndefined();
    const atEnd = (bitmapGpa: bigint) => readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: [0b10, 0, 0, 0, 0, 0, 0, 0], bitmapGpa, e820 }));
    expect(atEnd(MEMORY - 8n)?.runs).toEqual([
      { start: 0n, end: 2n * MiB, accepted: true }, { start: 2n * MiB, end: 4n * MiB, accepted: false }, { start: 4n * MiB, end: MEMORY, accepted: true },
    ]);
    expect(atEnd(MEMORY - 7n)).toBeUndefined();
  });

  it('memory that ends inside a unit has that unit too: a bitmap one 64-bit word longer for it is still a record', () => {
    // 4 MiB + 2 KiB in 4 KiB units: 1025 units (the last one half in memory), 17 words (136 bytes).
    const memory = 4n * MiB + 0x800n;
    const record = (bytes: number) => readGuestMemoryRecord(memoryWith({ unit: 0x1000n, bitmap: new Array<number>(bytes).fill(0), memory, e820: [unaccepted(0n, memory)] }));
    expect(record(136)?.runs).toEqual([{ start: 0n, end: memory, accepted: true }]);
    expect(record(144)).toBeUndefined();
  });

  it('RAM entries with a gap between them stay apart; reserved entries are no RAM', () => {
    const record = readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: [0, 0, 0, 0, 0, 0, 0, 0], e820: [ram(0n, 4n * MiB), { addr: 4n * MiB, size: 2n * MiB, type: E820_TYPE.reserved }, ram(8n * MiB, 4n * MiB)] }));
    expect(record?.runs).toEqual([{ start: 0n, end: 4n * MiB, accepted: true }, { start: 8n * MiB, end: 12n * MiB, accepted: true }]);
  });

  it('an unaccepted entry ends where it ends, even inside a bitmap byte whose units are all unaccepted; an entry past memory is left out', () => {
    // 2 MiB units: the first byte covers 16 MiB, all set; the entry covers only its first 4 MiB.
    const record = readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: [0xff, 0, 0, 0, 0, 0, 0, 0], e820: [unaccepted(0n, 4n * MiB), ram(4n * MiB, 12n * MiB), ram(MEMORY + 2n * MiB, 2n * MiB)] }));
    expect(record?.runs).toEqual([{ start: 0n, end: 4n * MiB, accepted: false }, { start: 4n * MiB, end: MEMORY, accepted: true }]);
  });

  it('an unaccepted entry that ends inside a unit ends there too', () => {
    const record = readGuestMemoryRecord(memoryWith({ unit: 0x200000n, bitmap: [0b01, 0, 0, 0, 0, 0, 0, 0], e820: [unaccepted(0n, 3n * MiB)] }));
    expect(record?.runs).toEqual([{ start: 0n, end: 2n * MiB, accepted: false }, { start: 2n * MiB, end: 3n * MiB, accepted: true }]);
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
