// A user's kernel ELF as our decompressor's payload: a literal-only LZ4 block that the host decoder
// (the same rules as guest/decompressor/lz4.c) decodes back to the flat image, a header that says
// what the decompressor checks, and one clear error for each kernel it cannot take.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, decodeLz4Block } from '../../../src/boot/lz4.js';
import { KERNEL_LOAD_WINDOW, KernelPayloadError, kernelPayload, literalLz4Block } from '../../../src/boot/kernel-payload.js';
import { parseElf, type ElfImage, type ElfSegment } from '../../../src/boot/elf.js';
import { ABI } from '../../../src/boot/layout.js';

const segment = (gpa: bigint, bytes: number[], memSize = BigInt(bytes.length)): ElfSegment =>
  ({ gpa, vaddr: gpa, data: Uint8Array.from(bytes), memSize, readable: true, writable: false, executable: true });

describe('literalLz4Block', () => {
  it.each([0, 1, 14, 15, 16, 269, 270, 271, 5000])('round-trips %i bytes through the strict decoder', (n) => {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);
    const block = literalLz4Block(data);
    expect(decodeLz4Block(block, n, { strict: true })).toEqual(data);
    expect(block.byteLength).toBe(1 + n + (n >= 15 ? Math.floor((n - 15) / 255) + 1 : 0));
  });
});

describe('kernelPayload', () => {
  it('writes the header the decompressor checks and the flat image with gaps zero-filled', () => {
    const load = ABI.MV_KERNEL_LOAD_GPA;
    const kernel: ElfImage = { entry: load + 1n, segments: [segment(load + 0x10n, [9, 9], 0x20n), segment(load, [0xf4, 0x90])] };
    const payload = Buffer.from(kernelPayload(kernel));
    const image = Uint8Array.from([0xf4, 0x90, ...new Array<number>(14).fill(0), 9, 9]);
    expect(payload.readUInt32LE(0x00)).toBe(Number(ABI.MV_PAYLOAD_MAGIC));
    expect(payload.readUInt32LE(0x08)).toBe(image.length);
    expect(payload.readUInt32LE(0x0c)).toBe(0x30);  // memory: through the second segment's bss
    expect(payload.readBigUInt64LE(0x10)).toBe(load);
    expect(payload.readBigUInt64LE(0x18)).toBe(load + 1n);
    expect(payload.readUInt32LE(0x20)).toBe(crc32(image));
    expect(payload.readUInt32LE(0x24)).toBe(0);
    const block = payload.subarray(Number(ABI.MV_PAYLOAD_HEADER_SIZE));
    expect(payload.readUInt32LE(0x04)).toBe(block.length);
    expect(decodeLz4Block(block, image.length, { strict: true })).toEqual(image);
  });

  it('takes our own kernel.elf: the same image, entry and CRC mkpayload.py put in kernel.mvkz', () => {
    const elf = parseElf(readFileSync(join(process.cwd(), 'guest/build/kernel.elf')), { physicalBytes: 1n << 32n, windows: [KERNEL_LOAD_WINDOW] });
    const ours = Buffer.from(kernelPayload(elf));
    const built = readFileSync(join(process.cwd(), 'guest/build/kernel.mvkz'));
    // magic, image bytes, memory bytes, load, entry, crc, reserved agree; only the block differs.
    for (const offset of [0x00, 0x08, 0x0c, 0x20, 0x24]) expect(ours.readUInt32LE(offset), `offset ${offset}`).toBe(built.readUInt32LE(offset));
    for (const offset of [0x10, 0x18]) expect(ours.readBigUInt64LE(offset)).toBe(built.readBigUInt64LE(offset));
  });

  it('refuses a kernel linked elsewhere, one without segments, and an entry outside its bytes', () => {
    const load = ABI.MV_KERNEL_LOAD_GPA;
    expect(() => kernelPayload({ entry: 0x2000000n, segments: [segment(0x2000000n, [1])] }))
      .toThrow(new KernelPayloadError('must be linked at 0x1000000 (MV_KERNEL_LOAD_GPA), its first segment starts at 0x2000000'));
    expect(() => kernelPayload({ entry: load, segments: [] })).toThrow(/has no PT_LOAD segment/);
    expect(() => kernelPayload({ entry: load + 8n, segments: [segment(load, [1, 2], 0x100n)] }))
      .toThrow(/entry point 0x1000008 is not inside its loaded bytes \[0x1000000, 0x1000002\)/);
    // [load, image end): the byte after the image is outside, and so is the byte before the load address.
    expect(() => kernelPayload({ entry: load + 2n, segments: [segment(load, [1, 2])] })).toThrow(/entry point 0x1000002 is not inside/);
    expect(() => kernelPayload({ entry: load - 1n, segments: [segment(load, [1, 2])] })).toThrow(/entry point 0xffffff is not inside/);
  });

  it('ends the flat image at the last file byte: a segment of bss only, above it, adds memory and no image bytes', () => {
    const load = ABI.MV_KERNEL_LOAD_GPA;
    const payload = Buffer.from(kernelPayload({ entry: load, segments: [segment(load, [0xf4, 0x90]), segment(load + 0x2000n, [], 0x1000n)] }));
    expect(payload.readUInt32LE(0x08)).toBe(2);       // image bytes
    expect(payload.readUInt32LE(0x0c)).toBe(0x3000);  // memory bytes: through the bss
  });
});
