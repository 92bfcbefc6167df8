// The secrets page the SEV-SNP firmware writes into a page launched as type SECRETS (SEV-SNP
// Firmware ABI §8.17.2 SNP_LAUNCH_UPDATE: "the firmware initializes the page with the secrets
// page format"; layout as Linux's struct snp_secrets_page, arch/x86/include/asm/sev.h):
//   0x000 VERSION u32, 0x004 IMIEN bit 0, 0x008 FMS u32, 0x010 GOSVW[16],
//   0x020/0x040/0x060/0x080 VMPCK0..3 (32 bytes each: the keys guest messages to the firmware
//   are encrypted with, one per VMPL), 0x0A0 the guest OS area (zero), 0x100 VMSA tweak bitmap,
//   0x140 SVSM fields (zero: no SVSM), 0x160 TSC_FACTOR.
// The real firmware draws the VMPCKs from its RNG; here they come from the VM's identity (its
// ASID and key seed), so runs stay a function of their config and seed, and only the hardware
// model computes them. TSC_FACTOR is the one AMD's firmware writes for Genoa, the part our CPU
// reports (family 19h model 11h): TSC_FACTOR_GENOA = (100000 - 99600) / 2 = 200 (amd/AMD-ASPFW
// sev_rmp.h; written by snp_mcmd_launch_update into snp_launch_update_secrets_page_t.tsc_factor).
import { digestOf } from '../../shared/digest.js';
import { PAGE_4K } from './rmp.js';

export const SecretsPage = { VERSION: 0x000, FMS: 0x008, VMPCK0: 0x020, VMPCK_BYTES: 32, OS_AREA: 0x0a0, SVSM_BASE: 0x140, TSC_FACTOR: 0x160 } as const;
/** The secrets page version current firmware writes (3 adds TSC_FACTOR). */
export const SECRETS_PAGE_VERSION = 3;
/** TSC_FACTOR of a Genoa part (AMD-ASPFW TSC_FACTOR_GENOA). */
export const TSC_FACTOR_GENOA = (100000 - 99600) / 2;

/** The page the firmware writes for a VM named `vmIdentity`, whose CPUID 1 EAX is `fms`. */
export function secretsPage(vmIdentity: string, fms: number): Uint8Array {
  const page = new Uint8Array(Number(PAGE_4K));
  const view = new DataView(page.buffer);
  view.setUint32(SecretsPage.VERSION, SECRETS_PAGE_VERSION, true);
  view.setUint32(SecretsPage.FMS, fms >>> 0, true);
  view.setUint32(SecretsPage.TSC_FACTOR, TSC_FACTOR_GENOA, true);
  for (let vmpl = 0; vmpl < 4; vmpl++) page.set(vmpckOf(vmIdentity, vmpl), SecretsPage.VMPCK0 + vmpl * SecretsPage.VMPCK_BYTES);
  return page;
}

/** VMPCK `index` (0..3) of the VM named `vmIdentity`: what its secrets page holds, and what the firmware's guest messages use. */
export function vmpckOf(vmIdentity: string, index: number): Buffer {
  return digestOf('sha256', Buffer.from('minivisor SEV-SNP VMPCK\0'), Buffer.from(vmIdentity), Uint8Array.of(index));
}
