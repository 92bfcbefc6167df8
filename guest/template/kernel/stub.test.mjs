// Boots build/kernel.elf behind minivisor's firmware and decompressor on both platforms and
// checks that it reported done and that its acceptance record matches the hardware's page states.
import { test } from 'vitest';
import { assertCleanBoot, bootStub } from 'minivisor/testing';
test('my kernel stage boots clean on TDX and SNP', () => {
  for (const platform of ['tdx', 'snp']) assertCleanBoot(bootStub({ platform, kernel: 'build/kernel.elf', memory: '512M' }));
}, 60_000);
