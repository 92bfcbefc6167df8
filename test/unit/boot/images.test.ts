// Which image files a boot reads and how a replaced stage is put together (src/boot/images.ts), in
// process: the README's "Regression-testing your own stub" (--decompressor and --kernel replace
// one stage each; the kernel payload is appended at the decompressor's page-aligned end, boot_abi.h
// "Handovers"), and one clear error for each image that cannot be used.
import { mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BUILT_DECOMPRESSOR, BUILT_FIRMWARE, BUILT_GUEST_IMAGE, BUILT_KERNEL_PAYLOAD, GuestImageError, bootInputFiles, builtImagePaths,
  MAX_IMAGE_BYTES, isStubVariant, loadBootImages, loadLinuxImages, readImage,
} from '../../../src/boot/images.js';
import { parseElf } from '../../../src/boot/elf.js';
import { literalLz4Block } from '../../../src/boot/kernel-payload.js';
import { ABI } from '../../../src/boot/layout.js';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { PACKAGE_ROOT } from '../../../src/shared/package-root.js';
import { quoteForError } from '../../../src/shared/quote.js';
import { fakeBzImage } from '../../helpers/bzimage.js';
import { writeElf } from '../../helpers/elf-writer.js';

const scratch = (): string => mkdtempSync(join(tmpdir(), 'minivisor-images-'));
const hex = (v: bigint): string => `0x${v.toString(16)}`;

describe('builtImagePaths', () => {
  it('refuses a handover with a planted-bug variant: a handover boots the honest stubs', () => {
    expect(() => builtImagePaths('reaccept-skipped', 'kexec')).toThrow(new GuestImageError('a handover boots the honest stubs: it cannot be combined with the variant reaccept-skipped'));
  });

  it('names the build of each variant and tracking (guest/lib/variants.mk)', () => {
    const variants = (build: string) => ({
      firmware: join(PACKAGE_ROOT, 'firmware', 'build', 'variants', build, 'firmware.elf'),
      guestImage: join(PACKAGE_ROOT, 'guest', 'build', 'variants', build, 'guest-image.elf'),
    });
    expect(builtImagePaths()).toEqual({ firmware: BUILT_FIRMWARE, guestImage: BUILT_GUEST_IMAGE });
    expect(builtImagePaths('reaccept-skipped')).toEqual(variants('reaccept-skipped'));
    expect(builtImagePaths(undefined, undefined, 'memmap')).toEqual(variants('tracking-memmap'));
    expect(builtImagePaths('map-from-config', undefined, 'memmap')).toEqual(variants('tracking-memmap+map-from-config'));
    expect(builtImagePaths(undefined, 'crash')).toEqual({ firmware: BUILT_FIRMWARE, guestImage: join(PACKAGE_ROOT, 'guest', 'build', 'variants', 'handover-crash', 'guest-image.elf') });
  });
});

describe('isStubVariant', () => {
  it('names only the variants themselves, not what every object has (toString, constructor)', () => {
    expect(isStubVariant('reaccept-skipped')).toBe(true);
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) expect(isStubVariant(name), name).toBe(false);
  });
});

describe('readImage', () => {
  it('refuses an image larger than MAX_IMAGE_BYTES (32 MiB) with the sizes, before reading it', () => {
    const file = join(scratch(), 'huge.elf');
    writeFileSync(file, '');
    truncateSync(file, MAX_IMAGE_BYTES + 1);  // sparse: nothing is written
    expect(MAX_IMAGE_BYTES).toBe(32 << 20);
    expect(() => readImage(file, 'firmware image')).toThrow(new GuestImageError(`firmware image ${quoteForError(file)} is ${MAX_IMAGE_BYTES + 1} bytes, more than the ${MAX_IMAGE_BYTES} allowed`));
  });

  it('says the stubs are not installed when one of ours is missing, and that a file of the user\'s does not exist', () => {
    const ours = join(PACKAGE_ROOT, 'guest', 'build', 'no-such-stage.elf');
    expect(() => readImage(ours, 'guest image')).toThrow(new GuestImageError(`no guest is installed: ${ours} is missing (run \`npm install\`, which builds the stubs with gcc/binutils)`));
    const firmwareBuild = join(PACKAGE_ROOT, 'firmware', 'build', 'no-such.elf');
    expect(() => readImage(firmwareBuild, 'firmware image')).toThrow(/^no guest is installed: /);
    const theirs = join(scratch(), 'mine.elf');
    expect(() => readImage(theirs, 'firmware image')).toThrow(new GuestImageError(`firmware image ${quoteForError(theirs)} does not exist`));
  });
});

describe('bootInputFiles', () => {
  it('lists the firmware and the guest image, or the two stages a replaced stage is made of', () => {
    const base = parseBootOptions({});
    expect(bootInputFiles(base)).toEqual([BUILT_FIRMWARE, BUILT_GUEST_IMAGE]);
    expect(bootInputFiles({ ...base, firmwareFile: 'fw.elf' })).toEqual(['fw.elf', BUILT_GUEST_IMAGE]);
    expect(bootInputFiles({ ...base, decompressorFile: 'd.elf' })).toEqual([BUILT_FIRMWARE, 'd.elf', BUILT_KERNEL_PAYLOAD]);
    expect(bootInputFiles({ ...base, kernelFile: 'k.elf' })).toEqual([BUILT_FIRMWARE, BUILT_DECOMPRESSOR, 'k.elf']);
    expect(bootInputFiles({ ...base, linux: { kernelFile: 'bzImage', cmdline: '' } })).toEqual([BUILT_FIRMWARE, 'bzImage', BUILT_GUEST_IMAGE]);
  });
});

describe('loadBootImages with a replaced stage', () => {
  const ourDecompressor = () => parseElf(new Uint8Array(readFileSync(BUILT_DECOMPRESSOR)), { physicalBytes: 1n << 32n });

  it('appends our kernel payload at the decompressor\'s page-aligned end, as one more read-only segment', () => {
    const dir = scratch();
    const decompressor = ourDecompressor();
    const file = join(dir, 'decompressor.elf');
    writeFileSync(file, writeElf(decompressor));
    const images = loadBootImages(parseBootOptions({ decompressor: file }));
    const end = decompressor.segments.reduce((e, s) => (s.gpa + s.memSize > e ? s.gpa + s.memSize : e), 0n);
    const appended = images.guestImage.segments.at(-1)!;
    expect(images.guestImage.segments).toHaveLength(decompressor.segments.length + 1);
    expect(appended.gpa).toBe((end + 0xfffn) & ~0xfffn);
    expect(appended.memSize).toBe(BigInt(statSync(BUILT_KERNEL_PAYLOAD).size));
    expect(appended).toMatchObject({ readable: true, writable: false, executable: false });
    expect(images.guestImage.entry).toBe(decompressor.entry);
  });

  /** Our decompressor with one more 4 KiB segment ending at `end`, written to a file. */
  const decompressorEndingAt = (end: bigint): string => {
    const decompressor = ourDecompressor();
    decompressor.segments.push({ gpa: end - 0x1000n, vaddr: end - 0x1000n, data: new Uint8Array(0x1000), memSize: 0x1000n, readable: true, writable: true, executable: false });
    const file = join(scratch(), 'decompressor.elf');
    writeFileSync(file, writeElf(decompressor));
    return file;
  };

  it('appends the payload right at a decompressor end that is already page-aligned', () => {
    const end = (ABI.MV_GUEST_IMAGE_LIMIT - BigInt(statSync(BUILT_KERNEL_PAYLOAD).size)) & ~0xfffn;
    expect(loadBootImages(parseBootOptions({ decompressor: decompressorEndingAt(end) })).guestImage.segments.at(-1)!.gpa).toBe(end);
  });

  it('takes a payload that ends exactly at the guest-image window\'s end, and refuses one a byte past it', () => {
    // A kernel whose payload (header + one literal LZ4 block) is a whole number of pages.
    let bytes = 0x2000;
    while ((Number(ABI.MV_PAYLOAD_HEADER_SIZE) + literalLz4Block(new Uint8Array(bytes)).byteLength) % 0x1000 !== 0) bytes++;
    const load = ABI.MV_KERNEL_LOAD_GPA;
    const kernel = join(scratch(), 'kernel.elf');
    writeFileSync(kernel, writeElf({ entry: load, segments: [{ gpa: load, vaddr: load, data: new Uint8Array(bytes).fill(0x90), memSize: BigInt(bytes), readable: true, writable: false, executable: true }] }));
    const payloadBytes = BigInt(Number(ABI.MV_PAYLOAD_HEADER_SIZE) + literalLz4Block(new Uint8Array(bytes)).byteLength);
    const at = ABI.MV_GUEST_IMAGE_LIMIT - payloadBytes;
    const fits = loadBootImages(parseBootOptions({ decompressor: decompressorEndingAt(at), kernel }));
    expect(fits.guestImage.segments.at(-1)).toMatchObject({ gpa: at, memSize: payloadBytes });
    // One more kernel byte: the payload ends a byte past the window (less than a page past it).
    writeFileSync(kernel, writeElf({ entry: load, segments: [{ gpa: load, vaddr: load, data: new Uint8Array(bytes + 1).fill(0x90), memSize: BigInt(bytes + 1), readable: true, writable: false, executable: true }] }));
    expect(() => loadBootImages(parseBootOptions({ decompressor: decompressorEndingAt(at), kernel }))).toThrow(/does not fit: .* would end at 0x400001, past the guest-image window's end 0x400000 \(room: \d+ bytes\)$/);
  });

  // The decompressor's end is that of its highest segment, wherever the program headers list it.
  it.each(['last', 'first'] as const)('refuses a decompressor that leaves no room for the payload before the guest-image window\'s end, with the numbers (highest segment listed %s)', (where) => {
    const dir = scratch();
    const decompressor = ourDecompressor();
    // One more segment whose end (0x800 into the window's last page) rounds up to the window's end.
    const last = ABI.MV_GUEST_IMAGE_LIMIT - 0x1000n;
    const segment = { gpa: last, vaddr: last, data: new Uint8Array(0x800), memSize: 0x800n, readable: true, writable: true, executable: false };
    if (where === 'last') decompressor.segments.push(segment);
    else decompressor.segments.unshift(segment);
    const file = join(dir, 'decompressor.elf');
    writeFileSync(file, writeElf(decompressor));
    const payloadBytes = BigInt(statSync(BUILT_KERNEL_PAYLOAD).size);
    const at = ABI.MV_GUEST_IMAGE_LIMIT;
    expect(() => loadBootImages(parseBootOptions({ decompressor: file }))).toThrow(new GuestImageError(
      `our kernel payload ${quoteForError(BUILT_KERNEL_PAYLOAD)} does not fit: ${payloadBytes} bytes appended at ${hex(at)} (after the decompressor `
      + `${quoteForError(file)}) would end at ${hex(at + payloadBytes)}, past the guest-image window's end ${hex(ABI.MV_GUEST_IMAGE_LIMIT)} (room: 0 bytes)`));
  });

  it('holds each replaced stage to its own ABI window: the decompressor to the guest-image window, the kernel to the kernel window', () => {
    const load = ABI.MV_KERNEL_LOAD_GPA;
    const segment = (gpa: bigint) => ({ gpa, vaddr: gpa, data: new Uint8Array(0x100).fill(0x90), memSize: 0x100n, readable: true, writable: false, executable: true });
    // A decompressor with a segment at the kernel's load address, outside the guest-image window.
    const decompressor = ourDecompressor();
    decompressor.segments.push(segment(load));
    const decompressorFile = join(scratch(), 'decompressor.elf');
    writeFileSync(decompressorFile, writeElf(decompressor));
    expect(() => loadBootImages(parseBootOptions({ decompressor: decompressorFile }))).toThrow(/^decompressor image .*: .* is outside the ABI window \[0x340000, 0x400000\)$/);
    // A kernel linked at its load address with one more segment in the guest-image window.
    const kernelFile = join(scratch(), 'kernel.elf');
    writeFileSync(kernelFile, writeElf({ entry: load, segments: [segment(load), segment(ABI.MV_GUEST_IMAGE_GPA)] }));
    expect(() => loadBootImages(parseBootOptions({ kernel: kernelFile }))).toThrow(/^kernel image .*: .* is outside the ABI window \[0x1000000, 0x17f0000\)$/);
  });

  it('refuses a kernel not linked at MV_KERNEL_LOAD_GPA, naming the file (boot_abi.h: the flat image goes there)', () => {
    const dir = scratch();
    const load = ABI.MV_KERNEL_LOAD_GPA + 0x1000n;
    const file = join(dir, 'kernel.elf');
    writeFileSync(file, writeElf({ entry: load, segments: [{ gpa: load, vaddr: load, data: new Uint8Array(0x100).fill(0x90), memSize: 0x100n, readable: true, writable: false, executable: true }] }));
    expect(() => loadBootImages(parseBootOptions({ kernel: file }))).toThrow(new GuestImageError(
      `kernel image ${quoteForError(file)}: must be linked at ${hex(ABI.MV_KERNEL_LOAD_GPA)} (MV_KERNEL_LOAD_GPA), its first segment starts at ${hex(load)}`));
  });
});

describe('loadBootImages with a user firmware', () => {
  const ourFirmware = () => parseElf(new Uint8Array(readFileSync(BUILT_FIRMWARE)), { physicalBytes: 1n << 32n });
  const written = (image: ReturnType<typeof ourFirmware>): string => {
    const file = join(scratch(), 'firmware.elf');
    writeFileSync(file, writeElf(image));
    return file;
  };

  it('refuses a firmware whose e_entry is not the reset vector, where the vCPU starts whatever e_entry says', () => {
    const firmware = ourFirmware();
    const file = written({ ...firmware, entry: ABI.MV_FIRMWARE_LOAD_GPA });
    expect(() => loadBootImages(parseBootOptions({ firmware: file }))).toThrow(new GuestImageError(
      `firmware image ${quoteForError(file)}: e_entry 0x301000 is not the reset vector 0xfffffff0 (the last 16 bytes of the firmware volume, where the vCPU starts)`));
  });

  it('refuses a firmware segment outside both of its windows (the initial image\'s and the firmware region)', () => {
    const firmware = ourFirmware();
    const gpa = ABI.MV_KERNEL_LOAD_GPA;
    firmware.segments.push({ gpa, vaddr: gpa, data: new Uint8Array(0x10), memSize: 0x10n, readable: true, writable: false, executable: false });
    const file = written(firmware);
    expect(() => loadBootImages(parseBootOptions({ firmware: file }))).toThrow(/^firmware image .*: .* is outside the firmware's windows /);
  });
});

describe('the firmware config loadBootImages encodes', () => {
  const field = (bytes: Uint8Array, offset: bigint) => Buffer.from(bytes).readUInt32LE(Number(offset));
  const entryOf = (bytes: Uint8Array) => Buffer.from(bytes).readBigUInt64LE(Number(ABI.MV_FW_CONFIG_OFF_GUEST_IMAGE_ENTRY));

  it('takes the unit, a CPU table only for several vCPUs, and our firmware below 4 GiB of RAM too', () => {
    const config = parseBootOptions({ memory: '512M', workload: '64M' });
    const one = loadBootImages(config).config;
    expect(one.gpa).toBe(ABI.MV_FW_CONFIG_GPA);
    expect(field(one.bytes, ABI.MV_FW_CONFIG_OFF_ACCEPT_UNIT)).toBe(0x200000);
    expect(one.bytes.byteLength).toBe(Number(ABI.MV_FW_CONFIG_SIZE));
    expect(field(loadBootImages({ ...config, unitBytes: 4096n }).config.bytes, ABI.MV_FW_CONFIG_OFF_ACCEPT_UNIT)).toBe(4096);
    // vcpus: 1 is the one-vCPU page, byte for byte (no CPU table).
    expect(loadBootImages({ ...config, vcpus: 1 }).config.bytes).toEqual(one.bytes);
    expect(loadBootImages({ ...config, vcpus: 2 }).config.bytes.byteLength).toBe(Number(ABI.MV_CPU_TABLE_OFFSET) + 8);
  });

  it('a Linux boot: the Linux flag and startup_64 (load address + 0x200, boot.rst "64-bit boot protocol") as the entry', () => {
    const kernelFile = join(scratch(), 'bzImage');
    writeFileSync(kernelFile, fakeBzImage());
    const config = { ...parseBootOptions({ memory: '1G', preAccept: '16M' }), linux: { kernelFile, cmdline: '' } };
    const bytes = loadBootImages(config).config.bytes;
    expect(field(bytes, ABI.MV_FW_CONFIG_OFF_FLAGS)).toBe(Number(ABI.MV_FW_CONFIG_FLAG_LINUX));
    expect(entryOf(bytes)).toBe(0x1000000n + 0x200n);
    expect(field(loadBootImages(parseBootOptions({ memory: '1G' })).config.bytes, ABI.MV_FW_CONFIG_OFF_FLAGS)).toBe(0);
  });

  it('refuses a Linux boot whose zero page, EFI tables and bitmap do not fit in the guest-image window (a bitmap for 16 TiB)', () => {
    const kernelFile = join(scratch(), 'bzImage');
    writeFileSync(kernelFile, fakeBzImage());
    expect(() => loadLinuxImages({ ...parseBootOptions({ preAccept: '16M' }), memoryBytes: 16n << 40n, linux: { kernelFile, cmdline: '' } }))
      .toThrow(/^Linux kernel .*: the zero page and EFI tables take 0x[0-9a-f]+ bytes, more than the guest-image window holds \(a bitmap for this much memory is too large\)$/);
  });
});
