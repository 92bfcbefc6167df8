// Boots build/@STAGE@.elf in place of minivisor's @STAGE@ on both platforms and checks that the
// boot reported done and that the guest's acceptance record matches the hardware's page states.
import { test } from 'vitest';
import { assertCleanBoot, bootStub } from 'minivisor/testing';
test('my @STAGE@ stage boots clean on TDX and SNP', () => {
  for (const platform of ['tdx', 'snp']) assertCleanBoot(bootStub({ platform, @STAGE@: 'build/@STAGE@.elf', memory: '512M' }));
}, 60_000);
