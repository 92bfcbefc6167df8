// How scripts/linux-kernel.mjs finds the package holding vmlinuz, on canned apt output and fake
// package roots; nothing here touches the network or the machine's apt.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dependsOf, findVmlinuz, localKernel, resolveKernelPackage } from '../../scripts/linux-kernel.mjs';

const depends: Record<string, string> = {
  'linux-image-cloud-amd64': 'linux-image-cloud-amd64\n  Depends: linux-base-cloud-amd64\n  Depends: linux-image-7.2.12+deb14-cloud-amd64\n',
  'linux-image-7.2.12+deb14-cloud-amd64': 'linux-image-7.2.12+deb14-cloud-amd64\n |Depends: dracut\n  Depends: initramfs-tools\n  Depends: linux-binary-7.2.12+deb14-cloud-amd64\n  Depends: linux-modules-7.2.12+deb14-cloud-amd64\n',
};

describe('resolving the cloud kernel package', () => {
  it('reads Depends lines, alternatives and virtual packages included', () => {
    expect(dependsOf(' |Depends: dracut\n  Depends: <linux-initramfs-tool>\n  Recommends: x\n')).toEqual(['dracut', 'linux-initramfs-tool']);
  });

  it('follows the meta-package to the linux-binary package of its ABI (testing)', () => {
    expect(resolveKernelPackage((n) => dependsOf(depends[n] ?? ''))).toEqual({
      abi: '7.2.12+deb14', image: 'linux-image-7.2.12+deb14-cloud-amd64', binary: 'linux-binary-7.2.12+deb14-cloud-amd64',
    });
  });

  it('takes the image package itself where there is no linux-binary package (older suites)', () => {
    const old: Record<string, string> = { 'linux-image-cloud-amd64': '  Depends: linux-image-6.1.0-28-cloud-amd64\n', 'linux-image-6.1.0-28-cloud-amd64': '  Depends: kmod\n' };
    expect(resolveKernelPackage((n) => dependsOf(old[n] ?? ''))).toMatchObject({ abi: '6.1.0-28', binary: 'linux-image-6.1.0-28-cloud-amd64' });
  });

  it('explains a meta-package without an image dependency', () => {
    expect(resolveKernelPackage(() => [])).toMatch(/depends on no linux-image-<abi>-cloud-amd64/);
  });

  it('finds vmlinuz in usr/lib/modules/<abi>/ or boot/, and no cached kernel in an empty folder', () => {
    const a = mkdtempSync(join(tmpdir(), 'minivisor-linux-'));
    mkdirSync(join(a, 'usr/lib/modules/7.2.12+deb14-cloud-amd64'), { recursive: true });
    writeFileSync(join(a, 'usr/lib/modules/7.2.12+deb14-cloud-amd64/vmlinuz'), '');
    expect(findVmlinuz(a)).toBe(join(a, 'usr/lib/modules/7.2.12+deb14-cloud-amd64/vmlinuz'));
    const b = mkdtempSync(join(tmpdir(), 'minivisor-linux-'));
    mkdirSync(join(b, 'boot'));
    writeFileSync(join(b, 'boot/vmlinuz-6.1.0-28-cloud-amd64'), '');
    expect(findVmlinuz(b)).toBe(join(b, 'boot/vmlinuz-6.1.0-28-cloud-amd64'));
    expect(findVmlinuz(mkdtempSync(join(tmpdir(), 'minivisor-linux-')))).toBeNull();
    expect(localKernel(mkdtempSync(join(tmpdir(), 'minivisor-linux-')))).toBeNull();
  });
});
