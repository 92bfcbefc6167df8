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
// The check follows AMD's SEV firmware (amd/AMD-ASPFW, fw/psp_bl_uapps/sev_uapp/src/
// cpuid_lookup.c: sanitize_cpuid_list, sanitize_cpuid_entry, cpuid_entry_rule_check and the
// per-leaf lookup_table): each register of a listed leaf has a rule against the CPU's value
// ('mask': a subset of its bits; 'exact'; 'lessThan': not above it; 'unchecked'), some leaves
// have a custom rule (Fn8000_001F below); a standard or extended leaf (Fn0000_0000-Fn0000_FFFF,
// Fn8000_0000-Fn8000_FFFF) the table does not list must be all zero; leaves outside those
// ranges (the hypervisor range Fn4000_xxxx) are not checked at all; and a checked entry's
// reserved field must be zero. The firmware lists the leaves of a real part; our virtual CPU has
// four (sev-status.ts snpCpuid), so the table below lists those four with the firmware's rules
// for them, and every other standard or extended leaf takes the "not listed: zero" rule. On a
// violation the firmware writes the corrected table back and fails with INVALID_PARAM, as QEMU
// reports it ("SNP_LAUNCH_UPDATE ... fw_error=22 'Invalid parameter'", then "CPUID validation
// failed for function ... provided ... expected ...").
import type { CpuidResult } from './sev-status.js';

export const SNP_CPUID_COUNT_MAX = 64;
export const CPUID_ENTRY_BYTES = 48;
/** The table's header: COUNT u32, then 12 reserved bytes (in MSG_CPUID_RSP: STATUS u32, COUNT u32, 8 reserved). */
export const CPUID_TABLE_HEADER_BYTES = 16;
const HEADER_BYTES = CPUID_TABLE_HEADER_BYTES;
/** SEV firmware status INVALID_PARAM (Linux uapi psp-sev.h SEV_RET_INVALID_PARAM). */
export const SEV_RET_INVALID_PARAM = 0x16;

export interface CpuidEntry extends CpuidResult { eaxIn: number; ecxIn: number; xcr0In: bigint; xssIn: bigint; reserved?: bigint }

type RegisterRule = 'mask' | 'exact' | 'lessThan' | 'unchecked';
type Reg = 'eax' | 'ebx' | 'ecx' | 'edx';
const REGS: readonly Reg[] = ['eax', 'ebx', 'ecx', 'edx'];

/** What the firmware writes back for a register, and whether that register fails the table. */
interface RegisterCheck { value: number; failed: boolean }
/** A register rule, or a leaf-specific check (cpuid_lookup.c *_CUSTOM). */
type LeafRule = RegisterRule | ((proposed: number, hw: number) => RegisterCheck);
/** A check that fails exactly when it has to change the value, as every rule but one does. */
const correcting = (correct: (proposed: number, hw: number) => number) => (proposed: number, hw: number): RegisterCheck => {
  const value = correct(proposed, hw);
  return { value, failed: value !== proposed };
};

// FN8000001F_CUSTOM: EBX[5:0] C-bit position exact, [11:6] physical-address reduction unchecked,
// [15:12] number of VMPLs not above the CPU's, [31:16] reserved (zero). Its correction is the
// firmware's own, step by step: when the strict part (the C-bit and the reserved bits) differs,
// it clears [11:6] and ORs the expected C-bit in ("Clear and OR the strict part"), so a wrong
// C-bit's own bits stay set and the unchecked reduction is lost; then it caps the VMPL count
// and clears the reserved bits. Such a value may even equal the proposal and still fail.
const EBX_8000001F_UNCHECKED = 0x3f << 6;
const EBX_8000001F_VMPLS = 0xf << 12;
const EBX_8000001F_RESERVED = 0xffff0000;
function ebx8000001f(proposed: number, hw: number): RegisterCheck {
  const strict = hw & ~EBX_8000001F_UNCHECKED & ~EBX_8000001F_VMPLS & ~EBX_8000001F_RESERVED;
  let value = proposed, failed = false;
  if ((value & ~EBX_8000001F_UNCHECKED & ~EBX_8000001F_VMPLS) !== strict) {
    value = (value & ~EBX_8000001F_UNCHECKED) | strict;
    failed = true;
  }
  if ((value & EBX_8000001F_VMPLS) >>> 12 > (hw & EBX_8000001F_VMPLS) >>> 12) {
    value = (value & ~EBX_8000001F_VMPLS) | (hw & EBX_8000001F_VMPLS);
    failed = true;
  }
  if (value & EBX_8000001F_RESERVED) {
    value &= ~EBX_8000001F_RESERVED;
    failed = true;
  }
  return { value: value >>> 0, failed };
}

// FN00000001_CUSTOM: EAX family/model/stepping not above the CPU's (compare_FMS, in that order,
// with cpuid_lookup.h's FMS_FAMILY and FMS_MODEL: the base and extended fields added, the extended
// model EAX[19:16] to the base model EAX[7:4] as it is, not as its high nibble), then EAX's
// reserved bits [31:28] and [15:12] zero (FN00000001_EAX_RESERVED); EBX the CLFLUSH size [15:8]
// exact, [7:0] zero (FN00000001_EBX_RESERVED), the rest unchecked; ECX OSXSAVE [27] and the
// hypervisor bit [31] unchecked, the rest a subset of the CPU's; EDX a subset (the 'mask' rule).
const fms = (eax: number) => [((eax >>> 8) & 0xf) + ((eax >>> 20) & 0xff), ((eax >>> 4) & 0xf) + ((eax >>> 16) & 0xf), eax & 0xf] as const;
const EAX_00000001_RESERVED = 0xf000f000;
const eax00000001 = correcting((proposed, hw) => {
  const [p, h] = [fms(proposed), fms(hw)];
  const notAbove = p[0] < h[0] || (p[0] === h[0] && (p[1] < h[1] || (p[1] === h[1] && p[2] <= h[2])));
  return ((notAbove ? proposed : hw) & ~EAX_00000001_RESERVED) >>> 0;
});
const EBX_00000001_CLFLUSH = 0xff << 8;
const EBX_00000001_RESERVED = 0xff;
const ebx00000001 = correcting((proposed, hw) => ((proposed & ~EBX_00000001_CLFLUSH & ~EBX_00000001_RESERVED) | (hw & EBX_00000001_CLFLUSH)) >>> 0);
const ECX_00000001_UNCHECKED = (1 << 27) | (1 << 31);
const ecx00000001 = correcting((proposed, hw) => ((proposed & (hw | ECX_00000001_UNCHECKED))) >>> 0);

/** The firmware's rules for the leaves our virtual CPU has (cpuid_lookup.c lookup_table). */
export const CPUID_POLICY: Readonly<Record<number, Record<Reg, LeafRule>>> = {
  // Fn0000_0000: the highest standard leaf not above the CPU's; the vendor string unchecked.
  0x0: { eax: 'lessThan', ebx: 'unchecked', ecx: 'unchecked', edx: 'unchecked' },
  0x1: { eax: eax00000001, ebx: ebx00000001, ecx: ecx00000001, edx: 'mask' },
  0x80000000: { eax: 'lessThan', ebx: 'unchecked', ecx: 'unchecked', edx: 'unchecked' },
  // Fn8000_001F: EAX a subset of the CPU's features; ECX (encrypted guests) and EDX (minimum
  // ASID) unchecked.
  0x8000001f: { eax: 'mask', ebx: ebx8000001f, ecx: 'unchecked', edx: 'unchecked' },
};

/** Leaves the firmware checks: the standard and extended ranges (sanitize_cpuid_list). */
function isChecked(leaf: number): boolean {
  return leaf <= 0xffff || (leaf >= 0x80000000 && leaf <= 0x8000ffff);
}

export function decodeCpuidPage(page: Uint8Array): { count: number; entries: CpuidEntry[] } {
  const b = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const count = b.readUInt32LE(0);
  const entries: CpuidEntry[] = [];
  for (let i = 0; i < Math.min(count, SNP_CPUID_COUNT_MAX); i++) {
    const o = HEADER_BYTES + i * CPUID_ENTRY_BYTES;
    entries.push({
      eaxIn: b.readUInt32LE(o), ecxIn: b.readUInt32LE(o + 4), xcr0In: b.readBigUInt64LE(o + 8), xssIn: b.readBigUInt64LE(o + 16),
      eax: b.readUInt32LE(o + 24), ebx: b.readUInt32LE(o + 28), ecx: b.readUInt32LE(o + 32), edx: b.readUInt32LE(o + 36),
      reserved: b.readBigUInt64LE(o + 40),
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
    b.writeBigUInt64LE(e.reserved ?? 0n, o + 40);
  });
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

const REGISTER_RULES: Readonly<Record<RegisterRule, (proposed: number, hw: number) => RegisterCheck>> = {
  mask: correcting((proposed, hw) => (proposed & hw) >>> 0),
  exact: correcting((_proposed, hw) => hw),
  lessThan: correcting((proposed, hw) => Math.min(proposed, hw)),
  unchecked: (proposed) => ({ value: proposed, failed: false }),
};

function check(rule: LeafRule, proposed: number, hw: number): RegisterCheck {
  return (typeof rule === 'function' ? rule : REGISTER_RULES[rule])(proposed >>> 0, hw >>> 0);
}

/**
 * sanitize_cpuid_list (cpuid_lookup.c) over the first `count` entries of a CPUID table in `table`
 * (the CPUID page's layout, which MSG_CPUID_REQ and MSG_CPUID_RSP share), in place: each entry of
 * the standard or extended range gets the register outputs the firmware allows, and is counted;
 * an entry outside them is left as it is. `failed` lists the EAX_IN of each checked entry that
 * broke a rule or whose reserved field is not zero (the firmware's INVALID_PARAM).
 */
export function sanitizeCpuidList(table: Buffer, count: number, hardware: (leaf: number, subleaf: number) => CpuidResult): { checked: number; failed: number[] } {
  const failed: number[] = [];
  let checked = 0;
  for (let i = 0; i < count; i++) {
    const o = HEADER_BYTES + i * CPUID_ENTRY_BYTES;
    const eaxIn = table.readUInt32LE(o), ecxIn = table.readUInt32LE(o + 4);
    if (!isChecked(eaxIn)) continue;
    // The firmware's table is keyed by (EAX_IN, ECX_IN), an exact match whatever the leaf
    // (sanitize_cpuid_entry); ours lists sub-leaf 0 only.
    const rules = ecxIn === 0 ? CPUID_POLICY[eaxIn] : undefined;
    const hw = rules ? hardware(eaxIn, ecxIn) : undefined;
    let registerFailed = false;
    REGS.forEach((r, k) => {
      const proposed = table.readUInt32LE(o + 24 + 4 * k);
      // A leaf the table does not list: "Any architectural leaf not listed in the table must have
      // all output values equal to 0."
      const out = rules && hw ? check(rules[r], proposed, hw[r]) : { value: 0, failed: proposed !== 0 };
      if (out.failed) registerFailed = true;
      table.writeUInt32LE(out.value, o + 24 + 4 * k);
    });
    if (registerFailed || table.readBigUInt64LE(o + 40) !== 0n) failed.push(eaxIn);
    checked++;
  }
  return { checked, failed };
}

/**
 * The firmware's check of a proposed CPUID page against the CPU (`hardware(leaf, subleaf)`).
 * `ok` when no entry broke a rule. `corrected`, when the entries failed the check, is what the
 * firmware writes back to the host's page: the proposed page with the entries' register outputs
 * corrected and nothing else (AMD-ASPFW sev_mcmd.c SNP_LAUNCH_UPDATE of a CPUID page copies its
 * sanitized scratch copy back; cpuid_lookup.c rewrites only EAX..EDX, and only flags a non-zero
 * entry reserved field). A header with reserved bits set or more than 64 entries fails before
 * the entries are looked at, and nothing is written back; an empty table passes.
 */
export function validateCpuidPage(page: Uint8Array, hardware: (leaf: number, subleaf: number) => CpuidResult): { ok: boolean; corrected?: Uint8Array; mismatches: number[] } {
  const count = Buffer.from(page.buffer, page.byteOffset, page.byteLength).readUInt32LE(0);
  // COUNT 0 passes (sev_mcmd.c refuses only COUNT > 64; sanitize_cpuid_list then checks no
  // entry). A CPUID page is measured by its type only, so the launch digest does not show an
  // empty table: the guest refuses it (Linux setup_cpuid_table terminates with GHCB_TERM_CPUID).
  const headerOk = count <= SNP_CPUID_COUNT_MAX && Buffer.from(page.subarray(4, HEADER_BYTES)).every((x) => x === 0);
  if (!headerOk) return { ok: false, mismatches: [] };
  const corrected = Buffer.from(page);
  const { failed: mismatches } = sanitizeCpuidList(corrected, count, hardware);
  const ok = mismatches.length === 0;
  return ok ? { ok, mismatches } : { ok, corrected: new Uint8Array(corrected.buffer, corrected.byteOffset, corrected.byteLength), mismatches };
}
