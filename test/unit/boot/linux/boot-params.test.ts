// The zero page, EFI system table and unaccepted-memory table as Linux reads them
// (bootparam.h, efi.h; arch/x86/boot/compressed/efi.c and mem.c), on synthetic inputs.
import { describe, expect, it } from 'vitest';
import {
  BootDataOffset, BootParams, BootParamsError, CC_BLOB_SEV_HDR_MAGIC, CcBlob, E820, EFI_CC_BLOB_GUID, EFI_SYSTEM_TABLE_SIGNATURE, EfiInfo,
  bitmapRanges, buildLinuxBootData, crc32, LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID, unacceptedBitmap,
} from '../../../../src/boot/linux/boot-params.js';
import { parseBzImage, SetupHeader } from '../../../../src/boot/linux/bzimage.js';
import { fakeBzImage } from '../../../helpers/bzimage.js';

const M = 0x100000n;

describe('unacceptedBitmap', () => {
  it('starts at the lowest unaccepted unit and sets one bit per 2 MiB unit (set = unaccepted)', () => {
    const b = unacceptedBitmap([{ start: 30n * M, end: 36n * M }, { start: 100n * M, end: 104n * M }]);
    expect(b.physBase).toBe(30n * M);
    expect(b.unitSize).toBe(2n * M);
    // units 0..36 relative to 30M: 37 units -> 5 bytes
    expect(b.sizeBytes).toBe(5n);
    expect([...b.bits]).toEqual([0b111, 0, 0, 0, 0b11000]);
    expect(bitmapRanges(b, b.bits)).toEqual([{ start: 30n * M, end: 36n * M }, { start: 100n * M, end: 104n * M }]);
  });

  it('is empty when everything is accepted, and refuses ranges off the unit', () => {
    expect(unacceptedBitmap([]).sizeBytes).toBe(0n);
    expect(() => unacceptedBitmap([{ start: 3n * M, end: 6n * M }])).toThrow(/not aligned/);
  });
});

describe('buildLinuxBootData', () => {
  const image = parseBzImage(fakeBzImage({ initSize: 0x900000 }));
  const bitmap = unacceptedBitmap([{ start: 64n * M, end: 128n * M }]);
  const e820 = [{ addr: 0n, size: 2n * M, type: E820.RAM }, { addr: 2n * M, size: 2n * M, type: E820.RESERVED }, { addr: 4n * M, size: 124n * M, type: E820.RAM }];
  const data = buildLinuxBootData({ gpa: 0x340000n, setupHeader: image.header, cmdlineSize: image.cmdlineSize, cmdline: 'console=ttyS0 nokaslr', e820, bitmap });
  const view = new DataView(data.bytes.buffer);
  const u64 = (o: number) => view.getBigUint64(o, true);
  const u32 = (o: number) => view.getUint32(o, true);
  const at = (gpa: bigint) => Number(gpa - data.gpa);

  it('copies the setup header and fills in the loader fields', () => {
    expect(u32(SetupHeader.HEADER)).toBe(0x53726448);
    expect(u32(SetupHeader.INIT_SIZE)).toBe(0x900000);
    expect(view.getUint8(SetupHeader.TYPE_OF_LOADER)).toBe(0xff);
    expect(u32(SetupHeader.CMD_LINE_PTR)).toBe(0x341000);
    expect(Buffer.from(data.bytes.subarray(at(data.cmdlineGpa), at(data.cmdlineGpa) + 22)).toString('latin1')).toBe('console=ttyS0 nokaslr\0');
    expect(view.getUint8(BootParams.SENTINEL)).toBe(0);
  });

  it('writes the E820 table as packed 20-byte entries', () => {
    expect(view.getUint8(BootParams.E820_ENTRIES)).toBe(3);
    const e = BootParams.E820_TABLE + 2 * BootParams.E820_ENTRY_SIZE;
    expect([u64(e), u64(e + 8), u32(e + 16)]).toEqual([4n * M, 124n * M, E820.RAM]);
  });

  it('hands over as a 64-bit EFI loader whose system table lists the unaccepted-memory table', () => {
    expect(Buffer.from(data.bytes.subarray(BootParams.EFI_INFO, BootParams.EFI_INFO + 4)).toString('latin1')).toBe('EL64');
    const systab = BigInt(u32(BootParams.EFI_INFO + EfiInfo.SYSTAB)) | (BigInt(u32(BootParams.EFI_INFO + EfiInfo.SYSTAB_HI)) << 32n);
    expect(systab).toBe(data.systemTableGpa);
    const st = at(systab);
    expect(u64(st)).toBe(EFI_SYSTEM_TABLE_SIGNATURE);
    const header = Uint8Array.from(data.bytes.subarray(st, st + 0x78));
    header.fill(0, 16, 20);
    expect(u32(st + 16)).toBe(crc32(header));
    expect(u32(st + 0x68)).toBe(1);
    const cfg = at(u64(st + 0x70));
    expect([...data.bytes.subarray(cfg, cfg + 16)]).toEqual([...LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID]);
    expect(u64(cfg + 16)).toBe(data.unacceptedTableGpa);
  });

  it('lays out struct efi_unaccepted_memory: version 1, unit, phys_base, size, then the bitmap', () => {
    const t = at(data.unacceptedTableGpa);
    expect(t).toBe(BootDataOffset.UNACCEPTED);
    expect([u32(t), u32(t + 4), u64(t + 8), u64(t + 16)]).toEqual([1, 0x200000, 64n * M, 4n]);
    expect([...data.bytes.subarray(t + 24, t + 28)]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });

  it('the GUID bytes are EFI_GUID(0xd5d1de3c, 0x105c, 0x44f9, ...) in memory order', () => {
    expect(Buffer.from(LINUX_EFI_UNACCEPTED_MEM_TABLE_GUID).toString('hex')).toBe('3cded1d55c10f9449ea9bcef98120031');
  });

  it('for SEV-SNP, adds the CC blob (EFI_CC_BLOB_GUID) naming the CPUID page and a secrets page after the unaccepted table', () => {
    const snp = buildLinuxBootData({ gpa: 0x340000n, setupHeader: image.header, cmdlineSize: image.cmdlineSize, cmdline: 'x', e820, bitmap, snp: { cpuidPageGpa: 0x27f000n } });
    const v = new DataView(snp.bytes.buffer);
    const st = BootDataOffset.SYSTAB;
    expect(v.getUint32(st + 0x68, true)).toBe(2);
    const second = BootDataOffset.CONFIG_TABLE + 24;
    expect([...snp.bytes.subarray(second, second + 16)]).toEqual([...EFI_CC_BLOB_GUID]);
    expect(v.getBigUint64(second + 16, true)).toBe(snp.ccBlobGpa);
    const c = Number(snp.ccBlobGpa! - snp.gpa);
    expect(v.getUint32(c + CcBlob.MAGIC, true)).toBe(CC_BLOB_SEV_HDR_MAGIC);
    expect([v.getBigUint64(c + CcBlob.CPUID_PHYS, true), v.getUint32(c + CcBlob.CPUID_LEN, true)]).toEqual([0x27f000n, 0x1000]);
    expect([v.getBigUint64(c + CcBlob.SECRETS_PHYS, true), v.getUint32(c + CcBlob.SECRETS_LEN, true)]).toEqual([snp.secretsPageGpa, 0x1000]);
    // The secrets page is the block's last page, after the unaccepted table's; the TDX block has neither.
    expect(snp.secretsPageGpa).toBe(snp.gpa + BigInt(snp.bytes.byteLength) - 0x1000n);
    expect(snp.secretsPageGpa! > snp.unacceptedTableGpa).toBe(true);
    expect(snp.bytes.byteLength).toBe(data.bytes.byteLength + 0x1000);
    expect([data.ccBlobGpa, data.secretsPageGpa]).toEqual([undefined, undefined]);
    expect(Buffer.from(EFI_CC_BLOB_GUID).toString('hex')).toBe('5f1f7b0626cfc5448554 93d777912d42'.replace(' ', ''));
  });

  it('hands the EFI memory map over in efi_info: 48-byte descriptors, version 1, at the block\'s memmap offset', () => {
    const efiMemoryMap = [{ type: 7, start: 0n, pages: 512n, attribute: 8n }, { type: 15, start: 2n * M, pages: 1024n, attribute: 8n }];
    const withMap = buildLinuxBootData({ gpa: 0x340000n, setupHeader: image.header, cmdlineSize: image.cmdlineSize, cmdline: 'x', e820, bitmap, efiMemoryMap });
    const v = new DataView(withMap.bytes.buffer);
    const info = BootParams.EFI_INFO;
    expect([v.getUint32(info + EfiInfo.MEMDESC_SIZE, true), v.getUint32(info + EfiInfo.MEMDESC_VERSION, true), v.getUint32(info + EfiInfo.MEMMAP_SIZE, true)]).toEqual([48, 1, 96]);
    const memmap = BigInt(v.getUint32(info + EfiInfo.MEMMAP, true)) | (BigInt(v.getUint32(info + EfiInfo.MEMMAP_HI, true)) << 32n);
    expect(memmap).toBe(0x340000n + BigInt(BootDataOffset.EFI_MEMMAP));
    const second = BootDataOffset.EFI_MEMMAP + 48;
    expect([v.getUint32(second, true), v.getBigUint64(second + 8, true), v.getBigUint64(second + 16, true), v.getBigUint64(second + 24, true), v.getBigUint64(second + 32, true)])
      .toEqual([15, 2n * M, 0n, 1024n, 8n]);
    // Without a map the fields stay zero (the test block above has none).
    expect(u32(info + EfiInfo.MEMDESC_SIZE)).toBe(0);
    const tooMany = Array.from({ length: 65 }, (_, i) => ({ type: 7, start: BigInt(i) * 0x1000n, pages: 1n, attribute: 8n }));
    expect(() => buildLinuxBootData({ gpa: 0x340000n, setupHeader: image.header, cmdlineSize: image.cmdlineSize, cmdline: 'x', e820, bitmap, efiMemoryMap: tooMany })).toThrow(BootParamsError);
  });

  it('refuses a command line longer than the kernel takes', () => {
    expect(() => buildLinuxBootData({ gpa: 0x340000n, setupHeader: image.header, cmdlineSize: 8, cmdline: 'console=ttyS0', e820, bitmap })).toThrow(BootParamsError);
  });

  it('crc32 is the IEEE CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });
});
