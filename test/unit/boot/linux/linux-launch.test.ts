// The launch plan of a bzImage: what is accepted before startup_64 and what the bitmap leaves
// to the decompressor (src/boot/linux/linux-launch.ts).
import { describe, expect, it } from 'vitest';
import {
  bitmapRanges, BootDataOffset, BootParams, buildLinuxBootData, E820, EFI_MEMORY_WB, EfiInfo, EfiMemoryType, UNACCEPTED_HEADER_SIZE,
} from '../../../../src/boot/linux/boot-params.js';
import { parseBzImage } from '../../../../src/boot/linux/bzimage.js';
import { complement, LinuxLaunchError, mergeRanges, planLinuxLaunch } from '../../../../src/boot/linux/linux-launch.js';
import { fakeBzImage } from '../../../helpers/bzimage.js';

const M = 0x100000n;
// A 13 MiB kernel with a 60 MiB init_size, like Debian's cloud kernel.
const image = parseBzImage(fakeBzImage({ kernelBytes: 13 * 0x100000 + 0x1234, initSize: 60 * 0x100000 }));

describe('planLinuxLaunch', () => {
  const plan = planLinuxLaunch({ image, memoryBytes: 512n * M, preAccept: 16n * M });

  it('loads at pref_address and enters at startup_64 (+0x200)', () => {
    expect(plan.loadAddress).toBe(16n * M);
    expect(plan.entry).toBe(16n * M + 0x200n);
    expect(plan.kernelRange).toEqual({ start: 16n * M, end: 30n * M });
  });

  it('accepts the end of the init_size buffer where the decompressor copies itself', () => {
    // load + init_size = 76M; minus the kernel (13M+) and 4M of work space, rounded down to 2M.
    expect(plan.workRange).toEqual({ start: 58n * M, end: 76n * M });
  });

  it('leaves the decompression output between them, and all RAM above, unaccepted in the bitmap', () => {
    expect(plan.unaccepted).toEqual([{ start: 30n * M, end: 58n * M }, { start: 76n * M, end: 512n * M }]);
    expect(bitmapRanges(plan.bitmap, plan.bitmap.bits)).toEqual(plan.unaccepted);
    expect(plan.accepted).toEqual([{ start: 0n, end: 30n * M }, { start: 58n * M, end: 76n * M }]);
  });

  it('describes all of RAM in an EFI memory map: reserved firmware range, the kernel and its work area as loader code/data, accepted RAM conventional, the rest unaccepted', () => {
    const T = EfiMemoryType;
    const types = plan.efiMemoryMap.map((d) => [d.start / M, (d.start + d.pages * 0x1000n) / M, d.type]);
    expect(types).toEqual([
      [0n, 2n, T.CONVENTIONAL], [2n, 4n, T.RESERVED], [4n, 16n, T.CONVENTIONAL], [16n, 30n, T.LOADER_CODE],
      [30n, 58n, T.UNACCEPTED], [58n, 76n, T.LOADER_DATA], [76n, 512n, T.UNACCEPTED],
    ]);
    expect(plan.efiMemoryMap.every((d) => d.attribute === EFI_MEMORY_WB)).toBe(true);
    // The unaccepted descriptors are exactly the bitmap's ranges.
    expect(plan.efiMemoryMap.filter((d) => d.type === T.UNACCEPTED).map((d) => ({ start: d.start, end: d.start + d.pages * 0x1000n }))).toEqual(plan.unaccepted);
  });

  it('refuses a pre-accept that reaches the launched kernel (a double accept) and too little memory', () => {
    expect(() => planLinuxLaunch({ image, memoryBytes: 512n * M, preAccept: 64n * M })).toThrow(/double accept/);
    expect(() => planLinuxLaunch({ image, memoryBytes: 512n * M, preAccept: 'all' })).toThrow(LinuxLaunchError);
    expect(() => planLinuxLaunch({ image, memoryBytes: 64n * M, preAccept: 16n * M })).toThrow(/at least 76 MiB/);
    expect(() => planLinuxLaunch({ image, memoryBytes: 512n * M + 4096n, preAccept: 16n * M })).toThrow(/multiple of 2 MiB/);
  });
});

// The zero page, EFI memory map and unaccepted bitmap as the kernel reads them from the built bytes.
function readBootData(memoryBytes: bigint) {
  const plan = planLinuxLaunch({ image, memoryBytes, preAccept: 16n * M });
  const data = buildLinuxBootData({ gpa: 0x340000n, setupHeader: image.header, cmdlineSize: image.cmdlineSize, cmdline: '', e820: plan.e820, bitmap: plan.bitmap, efiMemoryMap: plan.efiMemoryMap });
  const v = new DataView(data.bytes.buffer, data.bytes.byteOffset, data.bytes.byteLength);
  const e820 = Array.from({ length: v.getUint8(BootParams.E820_ENTRIES) }, (_, i) => {
    const o = BootParams.E820_TABLE + i * BootParams.E820_ENTRY_SIZE;
    const addr = v.getBigUint64(o, true);
    return [addr / M, (addr + v.getBigUint64(o + 8, true)) / M, v.getUint32(o + 16, true)];
  });
  const stride = v.getUint32(BootParams.EFI_INFO + EfiInfo.MEMDESC_SIZE, true);
  const memmapAt = Number(BigInt(v.getUint32(BootParams.EFI_INFO + EfiInfo.MEMMAP, true)) - data.gpa);
  const efi = Array.from({ length: v.getUint32(BootParams.EFI_INFO + EfiInfo.MEMMAP_SIZE, true) / stride }, (_, i) => {
    const o = memmapAt + i * stride;
    const start = v.getBigUint64(o + 8, true);
    return [start / M, (start + v.getBigUint64(o + 24, true) * 0x1000n) / M, v.getUint32(o, true)];
  });
  const u = BootDataOffset.UNACCEPTED;
  const header = { unitSize: BigInt(v.getUint32(u + 4, true)), physBase: v.getBigUint64(u + 8, true) };
  const sizeBytes = v.getBigUint64(u + 16, true);
  const unaccepted = bitmapRanges(header, data.bytes.subarray(u + UNACCEPTED_HEADER_SIZE, u + UNACCEPTED_HEADER_SIZE + Number(sizeBytes)), sizeBytes)
    .map((r) => [r.start / M, r.end / M]);
  return { e820, efi, unaccepted };
}

describe('planLinuxLaunch with --memory at and above 4 GiB: the RAM hole of the firmware region', () => {
  const G = 1024n; // in MiB
  const HOLE = 0xff000000n / M; // 4080 MiB: [MV_RAM_HOLE_GPA, 4 GiB) is the firmware region, not RAM
  const T = EfiMemoryType;

  it('4G: RAM ends at the hole, which is reserved in E820 and the EFI map and never unaccepted', () => {
    const { e820, efi, unaccepted } = readBootData(4n * G * M);
    expect(e820).toEqual([[0n, 2n, E820.RAM], [2n, 4n, E820.RESERVED], [4n, HOLE, E820.RAM], [HOLE, 4n * G, E820.RESERVED]]);
    expect(efi).toEqual([
      [0n, 2n, T.CONVENTIONAL], [2n, 4n, T.RESERVED], [4n, 16n, T.CONVENTIONAL], [16n, 30n, T.LOADER_CODE],
      [30n, 58n, T.UNACCEPTED], [58n, 76n, T.LOADER_DATA], [76n, HOLE, T.UNACCEPTED], [HOLE, 4n * G, T.RESERVED],
    ]);
    expect(unaccepted).toEqual([[30n, 58n], [76n, HOLE]]);
  });

  it('8G: RAM below the hole and RAM from 4 GiB to 8 GiB, the hole reserved between them; the bitmap spans both, not the hole', () => {
    const { e820, efi, unaccepted } = readBootData(8n * G * M);
    expect(e820).toEqual([[0n, 2n, E820.RAM], [2n, 4n, E820.RESERVED], [4n, HOLE, E820.RAM], [HOLE, 4n * G, E820.RESERVED], [4n * G, 8n * G, E820.RAM]]);
    expect(efi).toEqual([
      [0n, 2n, T.CONVENTIONAL], [2n, 4n, T.RESERVED], [4n, 16n, T.CONVENTIONAL], [16n, 30n, T.LOADER_CODE],
      [30n, 58n, T.UNACCEPTED], [58n, 76n, T.LOADER_DATA], [76n, HOLE, T.UNACCEPTED], [HOLE, 4n * G, T.RESERVED], [4n * G, 8n * G, T.UNACCEPTED],
    ]);
    expect(unaccepted).toEqual([[30n, 58n], [76n, HOLE], [4n * G, 8n * G]]);
  });

  it('512M (the default) describes no hole: RAM ends at --memory', () => {
    const { e820, unaccepted } = readBootData(512n * M);
    expect(e820).toEqual([[0n, 2n, E820.RAM], [2n, 4n, E820.RESERVED], [4n, 512n, E820.RAM]]);
    expect(unaccepted).toEqual([[30n, 58n], [76n, 512n]]);
  });
});

describe('range helpers', () => {
  it('merge overlapping and touching ranges, and complement them', () => {
    expect(mergeRanges([{ start: 4n, end: 6n }, { start: 0n, end: 2n }, { start: 2n, end: 3n }])).toEqual([{ start: 0n, end: 3n }, { start: 4n, end: 6n }]);
    expect(complement(10n, [{ start: 0n, end: 3n }, { start: 4n, end: 6n }])).toEqual([{ start: 3n, end: 4n }, { start: 6n, end: 10n }]);
  });
});
