// The SNP CPUID page: a table of CPUID answers the VMM proposes at launch (SNP_LAUNCH_UPDATE,
// page type CPUID) and the AMD-SP firmware checks against what the CPU really offers before
// the page becomes guest memory; the guest then answers CPUID from it instead of asking the
// hypervisor (SEV-SNP Firmware ABI §8.17.2 / Linux arch/x86/boot/startup/sev-shared.c
// snp_cpuid(): "the CPUID table ... validated through firmware").
//
// Layout (Firmware ABI Table 14, Linux struct snp_cpuid_table): u32 count, u32 + u64 reserved,
// then up to 64 entries of 48 bytes {u32 eax_in, ecx_in; u64 xcr0_in, xss_in; u32 eax, ebx,
// ecx, edx; u64 reserved}.
//
// The check (our reading of the ABI's CPUID policy, simplified and documented here): every
// register of every entry must be a subset of what the CPU returns for that leaf ('subset':
// features may be hidden, never added), except the registers below that must equal it
// ('exact': vendor string, C-bit position) or may only be lower ('max': highest leaf). On a
// violation the firmware writes the corrected table back and fails with INVALID_PARAM, as QEMU
// reports it ("SNP_LAUNCH_UPDATE ... fw_error=22 'Invalid parameter'", then "CPUID validation
// failed for function ... provided ... expected ...").
import type { CpuidResult } from './sev-status.js';

export const SNP_CPUID_COUNT_MAX = 64;
export const CPUID_ENTRY_BYTES = 48;
const HEADER_BYTES = 16;
/** SEV firmware status INVALID_PARAM (Linux uapi psp-sev.h SEV_RET_INVALID_PARAM). */
export const SEV_RET_INVALID_PARAM = 0x16;

export interface CpuidEntry extends CpuidResult { eaxIn: number; ecxIn: number; xcr0In: bigint; xssIn: bigint }

type RegisterRule = 'subset' | 'exact' | 'max';
type Reg = 'eax' | 'ebx' | 'ecx' | 'edx';
const REGS: readonly Reg[] = ['eax', 'ebx', 'ecx', 'edx'];

/** Registers whose rule is not 'subset', by leaf. */
export const CPUID_POLICY: Readonly<Record<number, Partial<Record<Reg, RegisterRule>>>> = {
  0x0: { eax: 'max', ebx: 'exact', ecx: 'exact', edx: 'exact' },
  0x80000000: { eax: 'max', ebx: 'exact', ecx: 'exact', edx: 'exact' },
  // EBX[5:0] C-bit position, [11:6] physical-address reduction (APM Vol. 3 Fn8000_001F).
  0x8000001f: { ebx: 'exact' },
};

export function decodeCpuidPage(page: Uint8Array): { count: number; entries: CpuidEntry[] } {
  const b = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const count = b.readUInt32LE(0);
  const entries: CpuidEntry[] = [];
  for (let i = 0; i < Math.min(count, SNP_CPUID_COUNT_MAX); i++) {
    const o = HEADER_BYTES + i * CPUID_ENTRY_BYTES;
    entries.push({
      eaxIn: b.readUInt32LE(o), ecxIn: b.readUInt32LE(o + 4), xcr0In: b.readBigUInt64LE(o + 8), xssIn: b.readBigUInt64LE(o + 16),
      eax: b.readUInt32LE(o + 24), ebx: b.readUInt32LE(o + 28), ecx: b.readUInt32LE(o + 32), edx: b.readUInt32LE(o + 36),
    });
  }
  return { count, entries };
}

export function encodeCpuidPage(entries: readonly CpuidEntry[]): Uint8Array {
  const b = Buffer.alloc(4096);
  b.writeUInt32LE(entries.length, 0);
  entries.forEach((e, i) => {
    const o = HEADER_BYTES + i * CPUID_ENTRY_BYTES;
    b.writeUInt32LE(e.eaxIn >>> 0, o);
    b.writeUInt32LE(e.ecxIn >>> 0, o + 4);
    b.writeBigUInt64LE(e.xcr0In, o + 8);
    b.writeBigUInt64LE(e.xssIn, o + 16);
    b.writeUInt32LE(e.eax >>> 0, o + 24);
    b.writeUInt32LE(e.ebx >>> 0, o + 28);
    b.writeUInt32LE(e.ecx >>> 0, o + 32);
    b.writeUInt32LE(e.edx >>> 0, o + 36);
  });
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function allowed(rule: RegisterRule, proposed: number, hw: number): number {
  switch (rule) {
    case 'subset': return (proposed & hw) >>> 0;
    case 'exact': return hw >>> 0;
    case 'max': return Math.min(proposed >>> 0, hw >>> 0);
  }
}

/**
 * The firmware's check of a proposed CPUID page against the CPU (`hardware(leaf, subleaf)`).
 * `ok` when nothing had to change; `corrected` is the table the firmware writes back.
 */
export function validateCpuidPage(page: Uint8Array, hardware: (leaf: number, subleaf: number) => CpuidResult): { ok: boolean; corrected: Uint8Array; mismatches: number[] } {
  const { count, entries } = decodeCpuidPage(page);
  const mismatches: number[] = [];
  const fixed = entries.map((e) => {
    const hw = hardware(e.eaxIn, e.ecxIn);
    const rules = CPUID_POLICY[e.eaxIn] ?? {};
    const out: CpuidEntry = { ...e };
    for (const r of REGS) out[r] = allowed(rules[r] ?? 'subset', e[r], hw[r]);
    if (REGS.some((r) => out[r] !== (e[r] >>> 0))) mismatches.push(e.eaxIn);
    return out;
  });
  const corrected = encodeCpuidPage(fixed);
  const headerOk = count > 0 && count <= SNP_CPUID_COUNT_MAX && Buffer.from(page.subarray(4, HEADER_BYTES)).every((x) => x === 0);
  const bodyOk = Buffer.compare(Buffer.from(corrected), Buffer.from(page)) === 0;
  return { ok: headerOk && bodyOk && mismatches.length === 0, corrected, mismatches };
}
