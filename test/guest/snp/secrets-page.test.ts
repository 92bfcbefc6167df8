// SNP_LAUNCH_UPDATE of page type SECRETS: the firmware writes the secrets page itself (SEV-SNP
// Firmware ABI §8.17.2; Linux struct snp_secrets_page), whatever the host proposed, and the page
// is validated guest memory like any launched page. The VMPCKs are the VM's own.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { SecretsPage } from '../../../src/platform/snp/secrets-page.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';

const GPA = 0x6000n;

function launchSecrets(keySeed: bigint, proposed = new Uint8Array(4096).fill(0xaa)) {
  const vm = new Machine({ memoryBytes: 16n << 20n });
  const p = new SnpPlatform(vm, { keySeed });
  p.rmpUpdate(GPA, { assigned: true, pageSize: '4k', immutable: true, gpa: GPA, asid: p.asid });
  const r = p.launchUpdatePage(GPA, 'SECRETS', proposed);
  const page = vm.memory.read(GPA, 4096);
  const entry = p.rmp.lookup(GPA);
  vm.close();
  return { r, page, entry };
}

const vmpck = (page: Uint8Array, vmpl: number) => Buffer.from(page.subarray(SecretsPage.VMPCK0 + vmpl * 32, SecretsPage.VMPCK0 + (vmpl + 1) * 32)).toString('hex');

describe('the SNP secrets page', () => {
  it('is written by the firmware: version, family/model/stepping, four distinct VMPCKs, an empty OS area; validated', () => {
    const { r, page, entry } = launchSecrets(0n);
    expect(r.rc).toBe(0);
    expect(entry).toMatchObject({ validated: true, immutable: false });
    const view = new DataView(page.buffer, page.byteOffset);
    expect(view.getUint32(SecretsPage.VERSION, true)).toBe(3);  // amd/AMD-ASPFW sev_mcmd.h SNP_LAUNCH_UPDATE_SECRETS_PAGE_VERSION
    expect(view.getUint32(SecretsPage.FMS, true)).toBe(0x00a10f11);
    const keys = [0, 1, 2, 3].map((v) => vmpck(page, v));
    expect(new Set(keys).size).toBe(4);
    for (const k of keys) expect(k).not.toMatch(/^(00)+$/);
    expect([...page.subarray(SecretsPage.OS_AREA, SecretsPage.OS_AREA + 0x60)].every((b) => b === 0)).toBe(true);
    expect([...page.subarray(0x140, 0x160)].every((b) => b === 0)).toBe(true); // no SVSM
    // TSC_FACTOR at 0x160 (AMD-ASPFW sev_mcmd.h snp_launch_update_secrets_page_t; Linux struct
    // snp_secrets_page): 200 on Genoa, as AMD's firmware writes it (TSC_FACTOR_GENOA =
    // (100000 - 99600) / 2); the rest of the page zero.
    expect(view.getUint32(0x160, true)).toBe(200);
    expect([...page.subarray(0x164)].every((b) => b === 0)).toBe(true);
  });

  it('the same VM gets the same keys; another key seed other keys', () => {
    expect(vmpck(launchSecrets(3n).page, 0)).toBe(vmpck(launchSecrets(3n, new Uint8Array(4096)).page, 0));
    expect(vmpck(launchSecrets(3n).page, 0)).not.toBe(vmpck(launchSecrets(4n).page, 0));
  });
});
