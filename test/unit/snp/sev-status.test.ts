// The SEV_STATUS MSR and the emulated CPU's CPUID answers (src/platform/snp/sev-status.ts),
// against their sources: tdx-snp-architecture.md B4 (MSR numbers, SEV_STATUS bits), Linux
// arch/x86/include/asm/msr-index.h (MSR_AMD64_SEV 0xc0010131, MSR_AMD64_SEV_ES_GHCB 0xc0010130,
// MSR_AMD64_SEV_ENABLED_BIT 0, _SEV_ES_ENABLED_BIT 1, _SEV_SNP_ENABLED_BIT 2, ...), and APM Vol. 3
// CPUID Fn0000_0000, Fn8000_0000 and Fn8000_001F. The guest-level tests read these through a
// guest, where one constant changed together with its reader would go unseen.
import { describe, expect, it } from 'vitest';
import { MSR_GHCB, MSR_SEV_STATUS, SEV_STATUS, SNP_GUEST_SEV_FEATURES, SNP_GUEST_SEV_STATUS, SNP_VMPL_COUNT, snpCpuid } from '../../../src/platform/snp/sev-status.js';

const ascii = (...regs: number[]) => Buffer.concat(regs.map((r) => { const b = Buffer.alloc(4); b.writeUInt32LE(r >>> 0); return b; })).toString('latin1');

describe('SEV_STATUS', () => {
  it('is MSR 0xC0010131, next to the GHCB MSR 0xC0010130 (B4; Linux MSR_AMD64_SEV, MSR_AMD64_SEV_ES_GHCB)', () => {
    expect(MSR_SEV_STATUS).toBe(0xc0010131);
    expect(MSR_GHCB).toBe(0xc0010130);
  });

  it('bits: 0 SEV, 1 SEV-ES, 2 SNP, 3 vTOM, 4 ReflectVC, 5 RestrictedInjection, 6 AlternateInjection (B4)', () => {
    expect(SEV_STATUS).toEqual({ SEV: 1n, SEV_ES: 2n, SNP: 4n, VTOM: 8n, REFLECT_VC: 16n, RESTRICTED_INJECTION: 32n, ALTERNATE_INJECTION: 64n });
  });

  it('an SNP guest reads SEV, SEV-ES and SNP set and none of the optional features the model does not have (B4: b0, b1, b2)', () => {
    expect(SNP_GUEST_SEV_STATUS).toBe(0b111n);
  });

  it('its VMSAs\' SEV_FEATURES: SNPActive (bit 0) alone, SEV_STATUS >> 2 as Linux builds an AP\'s (wakeup_cpu_via_vmgexit)', () => {
    expect(SNP_GUEST_SEV_FEATURES).toBe(1n);
  });
});

describe('CPUID of the emulated SNP CPU (APM Vol. 3 CPUID)', () => {
  it('Fn0000_0000 and Fn8000_0000: vendor "AuthenticAMD" in EBX, EDX, ECX; the largest extended leaf is 8000_001F', () => {
    const std = snpCpuid(0, 0, 51);
    expect(ascii(std.ebx, std.edx, std.ecx)).toBe('AuthenticAMD');
    expect(std.eax).toBeGreaterThanOrEqual(1);
    const ext = snpCpuid(0x80000000, 0, 51);
    expect(ascii(ext.ebx, ext.edx, ext.ecx)).toBe('AuthenticAMD');
    expect(ext.eax).toBe(0x8000001f);
  });

  it('Fn0000_0001 ECX: RDRAND (b30), which Linux\'s decompressor wants of an SEV guest, and hypervisor (b31) set', () => {
    expect(snpCpuid(1, 0, 51).ecx >>> 30).toBe(0b11);
  });

  it('Fn8000_001F: EAX b0 SME, b1 SEV, b3 SEV-ES, b4 SNP, b5 VMPL; EBX[5:0] C-bit position, EBX[11:6] physical-address reduction, EBX[15:12] four VMPLs (VMPL0-3)', () => {
    const r = snpCpuid(0x8000001f, 0, 51);
    for (const bit of [0, 1, 3, 4, 5]) expect((r.eax >>> bit) & 1).toBe(1);
    expect(r.ebx & 0x3f).toBe(51);
    // EBX[11:6]: "Reduction in physical address space, in bits, when memory encryption is enabled"
    // (Linux Documentation/arch/x86/amd-memory-encryption.rst): one bit on EPYC, as QEMU's SEV
    // guests are configured (sev-guest reduced-phys-bits=1).
    expect((r.ebx >>> 6) & 0x3f).toBe(1);
    expect(snpCpuid(0x8000001f, 0, 47).ebx & 0x3f).toBe(47);
    expect(SNP_VMPL_COUNT).toBe(4);
    expect((r.ebx >>> 12) & 0xf).toBe(4);
  });

  it('Fn8000_001F ECX/EDX leave ASIDs for SEV-ES and SNP guests: 1 to EDX-1, with EDX ≤ ECX (Linux KVM svm/sev.c sev_hardware_setup: max_sev_asid = ECX, min_sev_asid = EDX, SEV-ES off when EDX is 1)', () => {
    const r = snpCpuid(0x8000001f, 0, 51);
    expect(r.edx).toBeGreaterThan(1);
    expect(r.edx).toBeLessThanOrEqual(r.ecx);
  });

  it('a leaf it does not implement answers zeros', () => {
    expect(snpCpuid(0x40000000, 0, 51)).toEqual({ eax: 0, ebx: 0, ecx: 0, edx: 0 });
  });
});
