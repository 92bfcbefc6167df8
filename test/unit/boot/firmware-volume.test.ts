// A firmware's segments against its two windows (src/boot/firmware-volume.ts), at the windows'
// exact edges: the initial image's [0x301000, 0x340000) and the 16 MiB firmware region below 4 GiB
// (guest/include/minivisor/boot_abi.h). The boots that refuse whole firmware files are in
// test/guest/boot/firmware-volume.test.ts.
import { describe, expect, it } from 'vitest';
import type { ElfImage } from '../../../src/boot/elf.js';
import { checkFirmwareWindows, FirmwareWindowError, firmwareVolume } from '../../../src/boot/firmware-volume.js';

const FOUR_GIB = 1n << 32n;
const INITIAL = { start: 0x301000n, end: 0x340000n };
const REGION = { start: FOUR_GIB - (16n << 20n), end: FOUR_GIB };

/** A firmware with one segment per [gpa, end) (contents do not matter here). */
const firmware = (...ranges: Array<[bigint, bigint]>): ElfImage => ({
  entry: 0xfffffff0n,
  segments: ranges.map(([gpa, end]) => ({ gpa, vaddr: gpa, data: new Uint8Array(0), memSize: end - gpa, readable: true, writable: false, executable: true })),
});

describe('firmware windows', () => {
  it('takes segments that fill either window exactly', () => {
    expect(() => checkFirmwareWindows(firmware([INITIAL.start, INITIAL.end], [REGION.start, REGION.end]))).not.toThrow();
  });

  it.each([
    ['one byte past the initial window', [INITIAL.start, INITIAL.end + 1n], /runs 1 bytes past the firmware's window/],
    ['one byte below the initial window', [INITIAL.start - 1n, INITIAL.end], /outside the firmware's windows/],
    ['one byte past 4 GiB', [REGION.start, REGION.end + 1n], /outside the firmware's windows/],
    ['one byte below the region', [REGION.start - 1n, REGION.end], /makes the firmware volume 16388 KiB \(it would start at 0xfefff000\): too large/],
  ] as const)('refuses a segment %s', (_name, range, message) => {
    expect(() => checkFirmwareWindows(firmware([range[0], range[1]]))).toThrow(FirmwareWindowError);
    expect(() => checkFirmwareWindows(firmware([range[0], range[1]]))).toThrow(message);
  });

  it('the volume runs from the lowest page a segment touches in the region to 4 GiB', () => {
    expect(firmwareVolume(firmware([INITIAL.start, INITIAL.end], [FOUR_GIB - 0x3000n, FOUR_GIB - 0x2000n], [FOUR_GIB - 0x1000n, FOUR_GIB])))
      .toEqual({ gpa: FOUR_GIB - 0x3000n, bytes: 0x3000n });
    expect(firmwareVolume(firmware([REGION.start + 0x1234n, FOUR_GIB]))).toEqual({ gpa: REGION.start + 0x1000n, bytes: (16n << 20n) - 0x1000n });
    // A segment starting on a page's last byte: the volume starts at that page, not the next.
    expect(firmwareVolume(firmware([REGION.start + 0xfffn, FOUR_GIB]))).toEqual({ gpa: REGION.start, bytes: 16n << 20n });
  });
});
