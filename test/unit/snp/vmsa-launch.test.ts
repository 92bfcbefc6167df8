// What VMRUN accepts from a guest-written VMSA, and the launch digest once LAUNCH_FINISH fixed it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LaunchDigest, pageInfo } from '../../../src/platform/snp/launch.js';
import { decodeVmsaPage, vmsaEntryState } from '../../../src/platform/snp/vmsa.js';
import { flat32VmsaPage } from '../../helpers/snp-guest.js';

describe('VMSA entry state', () => {
  it('flat 32-bit protected mode needs CS base 0 with D=1 and L=0; other code segments are refused', () => {
    const flat = decodeVmsaPage(flat32VmsaPage());
    expect(vmsaEntryState(flat)).toEqual({ mode: 'protected32' });
    expect(vmsaEntryState({ ...flat, cs: { ...flat.cs, base: 0x10000n } })).toHaveProperty('refused');
    expect(vmsaEntryState({ ...flat, cs: { ...flat.cs, attrib: flat.cs.attrib & ~(1 << 10) } })).toHaveProperty('refused');  // D=0: 16-bit
    expect(vmsaEntryState({ ...flat, cs: { ...flat.cs, attrib: flat.cs.attrib | (1 << 9) } })).toHaveProperty('refused');  // L=1: 64-bit
    expect(vmsaEntryState({ ...flat, cr0: 0x10n })).toEqual({ mode: 'real16' });
  });
});

describe('launch digest', () => {
  it('a VMSA page is measured by its contents, page type 2 (Firmware ABI §8.17 PAGE_INFO)', () => {
    const sha384 = (b: Uint8Array) => createHash('sha384').update(b).digest();
    const vmsa = new Uint8Array(4096).fill(0x5a);
    const d = new LaunchDigest();
    d.extend('VMSA', 0xfffffffff000n, vmsa);
    const info = pageInfo(new Uint8Array(48), sha384(vmsa), 'VMSA', 0xfffffffff000n);
    expect(info[0x62]).toBe(2);
    expect(d.hex).toBe(sha384(info).toString('hex'));
  });
});

describe('launch digest after SNP_LAUNCH_FINISH', () => {
  it('refuses every further page, measured or not, and keeps the digest (Firmware ABI §8.17: LAUNCH_UPDATE only before LAUNCH_FINISH)', () => {
    const d = new LaunchDigest();
    d.extend('NORMAL', 0x1000n, new Uint8Array(4096).fill(7));
    const digest = d.finish();
    expect(() => d.extend('ZERO', 0x2000n, undefined)).toThrow(/finished/);
    expect(() => d.extendRange('ZERO', 0x2000n, 2, undefined)).toThrow(/finished/);
    expect(d.hex).toBe(digest);
    expect(d.finished).toBe(true);
  });
});
