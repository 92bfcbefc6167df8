// Boots build/@STAGE@.elf in place of minivisor's @STAGE@ on both platforms and checks that the
// boot reported done and that the guest's acceptance record matches the hardware's page states;
// then sets the fuzzer's hostile VMM on it: 150 executions a platform, the same every run (a
// finding is kept in fuzz-out/ with its `npx minivisor replay` command).
import { test } from 'vitest';
import { assertCleanBoot, assertNoFindings, bootStub, fuzzStub } from 'minivisor/testing';
test('my @STAGE@ stage boots clean on TDX and SNP', () => {
  for (const platform of ['tdx', 'snp']) assertCleanBoot(bootStub({ platform, @STAGE@: 'build/@STAGE@.elf', memory: '512M' }));
}, 60_000);
test('my @STAGE@ stage stops a hostile VMM on TDX and SNP', async () => {
  for (const platform of ['tdx', 'snp']) assertNoFindings(await fuzzStub({ platform, @STAGE@: 'build/@STAGE@.elf', runs: 150, out: `fuzz-out/${platform}` }));
}, 60_000);
