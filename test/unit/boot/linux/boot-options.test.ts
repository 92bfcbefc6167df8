// `boot --linux` flags: defaults that keep the firmware off the launched kernel, and clear refusals.
import { describe, expect, it } from 'vitest';
import { BootOptionError, DEFAULT_LINUX_CMDLINE, parseBootOptions } from '../../../../src/cli/boot-options.js';
import { GuestImageError, loadLinuxImages } from '../../../../src/boot/images.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeBzImage } from '../../../helpers/bzimage.js';

describe('boot --linux options', () => {
  it('pre-accepts 16M by default (up to LOAD_PHYSICAL_ADDR) and boots with a serial console, nokaslr', () => {
    const config = parseBootOptions({ linux: 'vmlinuz' });
    expect(config.preAccept).toBe(16n << 20n);
    expect(config.linux).toEqual({ kernelFile: 'vmlinuz', cmdline: DEFAULT_LINUX_CMDLINE });
    expect(DEFAULT_LINUX_CMDLINE).toMatch(/earlyprintk=serial/);
    expect(parseBootOptions({}).preAccept).toBe(64n << 20n);
  });

  it('--fast turns instruction counting off', () => {
    expect(parseBootOptions({ linux: 'vmlinuz', fast: true }).countInstructions).toBe(false);
    expect(() => parseBootOptions({ fast: true, maxInstructions: '5' })).toThrow(BootOptionError);
  });

  it('takes both platforms; refuses a stub variant, and --cmdline without --linux', () => {
    expect(parseBootOptions({ linux: 'vmlinuz', platform: 'snp' })).toMatchObject({ platform: 'snp', linux: { kernelFile: 'vmlinuz' } });
    expect(() => parseBootOptions({ linux: 'vmlinuz', variant: 'e820-unchecked' })).toThrow(BootOptionError);
    expect(() => parseBootOptions({ cmdline: 'quiet' })).toThrow(/needs --linux/);
  });

  it('a bad kernel file or a plan that cannot fit is a GuestImageError naming the problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-linux-'));
    const notKernel = join(dir, 'not-a-kernel');
    writeFileSync(notKernel, 'hello');
    expect(() => loadLinuxImages(parseBootOptions({ linux: notKernel }))).toThrow(GuestImageError);
    expect(() => loadLinuxImages(parseBootOptions({ linux: join(dir, 'missing') }))).toThrow(GuestImageError);
    const kernel = join(dir, 'vmlinuz');
    writeFileSync(kernel, fakeBzImage({ initSize: 0x4000000 }));
    expect(() => loadLinuxImages(parseBootOptions({ linux: kernel, memory: '128M', preAccept: '64M' }))).toThrow(/double accept/);
    const images = loadLinuxImages(parseBootOptions({ linux: kernel, memory: '128M' }))!;
    expect(images.plan.entry).toBe(0x1000200n);
    expect(images.bootData.gpa).toBe(0x340000n);
  });
});
