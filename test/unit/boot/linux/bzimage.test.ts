// The bzImage setup-header parser (Documentation/arch/x86/boot.rst) on synthetic images (the
// fetched Debian kernel's header is checked in test/linux/, which fetches it).
import { describe, expect, it } from 'vitest';
import { BzImageError, parseBzImage, Xlf } from '../../../../src/boot/linux/bzimage.js';
import { fakeBzImage } from '../../../helpers/bzimage.js';

describe('parseBzImage', () => {
  it('decodes the fields a 64-bit loader needs and splits off the protected-mode kernel', () => {
    const image = parseBzImage(fakeBzImage({ setupSects: 6, kernelBytes: 0x4000, prefAddress: 0x2000000n, initSize: 0x900000, version: '6.1.0-test (x@y) #1' }));
    expect(image.protocol).toBe(0x20f);
    expect(image.setupSects).toBe(6);
    expect(image.kernel.byteLength).toBe(0x4000);
    expect(image.kernel[1]).toBe(7); // the first protected-mode byte sits after (6+1)*512 bytes
    expect(image.prefAddress).toBe(0x2000000n);
    expect(image.initSize).toBe(0x900000n);
    expect(image.kernelAlignment).toBe(0x200000n);
    expect(image.relocatable).toBe(true);
    expect(image.xloadflags & Xlf.KERNEL_64).toBe(Xlf.KERNEL_64);
    expect(image.version).toBe('6.1.0-test (x@y) #1');
    expect(image.header.byteLength).toBe(0x26c - 0x1f1);
  });

  it('reads setup_sects 0 as 4, as boot.rst says', () => {
    expect(parseBzImage(fakeBzImage({ setupSects: 0 })).kernel.byteLength).toBe(fakeBzImage({ setupSects: 0 }).byteLength - 5 * 512);
  });

  const bad: Array<[string, Uint8Array, RegExp]> = [
    ['a short file', new Uint8Array(100), /shorter than the setup header/],
    ['no boot flag', (() => { const b = fakeBzImage(); b[0x1fe] = 0; return b; })(), /boot_flag/],
    ['no HdrS', (() => { const b = fakeBzImage(); b[0x202] = 0x41; return b; })(), /HdrS/],
    ['an old protocol', fakeBzImage({ protocol: 0x20a }), /2\.10 is too old/],
    ['a zImage', fakeBzImage({ loadflags: 0 }), /zImage/],
    ['a 32-bit kernel', fakeBzImage({ xloadflags: 0 }), /XLF_KERNEL_64/],
    ['a truncated file', fakeBzImage().subarray(0, 0x1000), /truncated|past the end/],
    ['a bad alignment', fakeBzImage({ kernelAlignment: 0x300000 }), /power of two/],
    ['an init_size below the image', fakeBzImage({ initSize: 0x100 }), /init_size/],
  ];
  it.each(bad)('refuses %s with a clear error', (_name, bytes, message) => {
    expect(() => parseBzImage(bytes)).toThrow(BzImageError);
    expect(() => parseBzImage(bytes)).toThrow(message);
  });
});
