// Which image files a boot reads and how a replaced stage is put together (src/boot/images.ts), in
// process: the README's "Regression-testing your own stub" (--decompressor and --kernel replace
// one stage each; the kernel payload is appended at the decompressor's page-aligned end, boot_abi.h
// "Handovers"), and one clear error for each image that cannot be used.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BUILT_DECOMPRESSOR, BUILT_FIRMWARE, BUILT_GUEST_IMAGE, BUILT_KERNEL_PAYLOAD, GuestImageError, bootInputFiles, builtImagePaths,
  loadBootImages, readImage,
} from '../../../src/boot/images.js';
import { parseElf } from '../../../src/boot/elf.js';
import { ABI } from '../../../src/boot/layout.js';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { PACKAGE_ROOT } from '../../../src/shared/package-root.js';
import { quoteForError } from '../../../src/shared/quote.js';
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

describe('readImage', () => {
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

  it('refuses a kernel not linked at MV_KERNEL_LOAD_GPA, naming the file (boot_abi.h: the flat image goes there)', () => {
    const dir = scratch();
    const load = ABI.MV_KERNEL_LOAD_GPA + 0x1000n;
    const file = join(dir, 'kernel.elf');
    writeFileSync(file, writeElf({ entry: load, segments: [{ gpa: load, vaddr: load, data: new Uint8Array(0x100).fill(0x90), memSize: 0x100n, readable: true, writable: false, executable: true }] }));
    expect(() => loadBootImages(parseBootOptions({ kernel: file }))).toThrow(new GuestImageError(
      `kernel image ${quoteForError(file)}: must be linked at ${hex(ABI.MV_KERNEL_LOAD_GPA)} (MV_KERNEL_LOAD_GPA), its first segment starts at ${hex(load)}`));
  });
});
