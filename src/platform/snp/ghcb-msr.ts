// The GHCB MSR protocol (MSR 0xC0010130, GHCBInfo = bits 11:0): encode/decode only
// (tdx-snp-architecture.md B4; GHCB spec 56421 §2.3.1; Linux asm/sev-common.h).
import { MASK64 } from '../../shared/u64.js';

export const GHCB_INFO = {
  SEV_INFO_RESP: 0x001,
  SEV_INFO_REQ: 0x002,
  CPUID_REQ: 0x004,
  CPUID_RESP: 0x005,
  AP_RESET_HOLD_REQ: 0x006,
  AP_RESET_HOLD_RESP: 0x007,
  PREFERRED_GHCB_REQ: 0x010,
  PREFERRED_GHCB_RESP: 0x011,
  REGISTER_GHCB_REQ: 0x012,
  REGISTER_GHCB_RESP: 0x013,
  PSC_REQ: 0x014,
  PSC_RESP: 0x015,
  HV_FEATURES_REQ: 0x080,
  HV_FEATURES_RESP: 0x081,
  TERM_REQ: 0x100,
} as const;

/** GHCB protocol versions this model's hypervisor speaks (Linux GHCB_PROTOCOL_MIN/MAX). */
export const GHCB_PROTOCOL_MIN = 1;
export const GHCB_PROTOCOL_MAX = 2;

/** PSC operations (MSR protocol [55:52]; also the PSC NAE entry operation). */
export const PSC_OP = { PRIVATE: 1, SHARED: 2, PSMASH: 3, UNSMASH: 4 } as const;

/**
 * The PSC response's error field ([63:32]) KVM sends for any failed MSR-protocol PSC: bit 63 of
 * the MSR, "a generic error response" (Linux asm/sev-common.h GHCB_MSR_PSC_RESP_ERROR =
 * BIT_ULL(63) | GHCB_MSR_PSC_RESP; set by sev.c snp_begin_psc_msr and snp_complete_psc_msr).
 */
export const PSC_MSR_ERROR_GENERIC = 0x8000_0000;

/**
 * The GFN a GHCB GPA registration response (0x013) carries when the hypervisor refuses the GPA:
 * all ones in GHCBData[63:12] (Linux commit 0c76b1d08280, "KVM: SEV: Add support to handle GHCB
 * GPA register VMGEXIT", after the GHCB spec's "GHCB GPA Registration": "If hypervisor can work
 * with the guest requested GPA then it must respond back with the same GPA otherwise return -1").
 * KVM itself never refuses: it registers and echoes any GFN (sev_handle_vmgexit_msr_protocol).
 */
export const REGISTER_GHCB_REFUSED_GFN = (1n << 52n) - 1n;

/**
 * The GFN a preferred-GHCB-GPA response (0x011) carries when the hypervisor has no preference:
 * all ones in GHCBData[63:12] (Linux asm/sev-common.h GHCB_MSR_PREF_GPA_NONE = 0xfffffffffffff,
 * which KVM always answers: sev.c sev_handle_vmgexit_msr_protocol, GHCB_MSR_PREF_GPA_REQ).
 */
export const PREFERRED_GHCB_NONE_GFN = (1n << 52n) - 1n;

/** HV features bitmap ([63:12]). */
export const HV_FEATURE = { SNP: 1n << 0n, AP_CREATION: 1n << 1n, RESTRICTED_INJECTION: 1n << 2n } as const;

/** Termination reason sets/codes (B4, linux-unaccepted-memory.md §5). */
export const TERM_SET = { GENERAL: 0, LINUX: 1 } as const;
export const TERM_CODE_LINUX = { REGISTER: 0, PSC: 1, PVALIDATE: 2, NOT_VMPL0: 3, CPUID: 4, CPUID_HV: 5 } as const;

export type GhcbMsrRequest =
  | { kind: 'ghcb-gpa'; gpa: bigint }
  | { kind: 'sev-info' }
  | { kind: 'cpuid'; fn: number; reg: 0 | 1 | 2 | 3 }
  | { kind: 'ap-reset-hold' }
  | { kind: 'preferred-ghcb' }
  | { kind: 'register-ghcb'; gfn: bigint }
  | { kind: 'psc'; gfn: bigint; op: number }
  | { kind: 'hv-features' }
  | { kind: 'terminate'; reasonSet: number; reasonCode: number }
  | { kind: 'unknown'; info: number; value: bigint };

export function ghcbInfo(value: bigint): number {
  return Number(value & 0xfffn);
}

/** Decodes a value the guest wrote to the GHCB MSR before VMGEXIT. */
export function decodeGhcbMsr(value: bigint): GhcbMsrRequest {
  const v = value & MASK64;
  const info = ghcbInfo(v);
  switch (info) {
    case 0: return { kind: 'ghcb-gpa', gpa: v };
    case GHCB_INFO.SEV_INFO_REQ: return { kind: 'sev-info' };
    case GHCB_INFO.CPUID_REQ: return { kind: 'cpuid', fn: Number(v >> 32n), reg: Number((v >> 30n) & 3n) as 0 | 1 | 2 | 3 };
    case GHCB_INFO.AP_RESET_HOLD_REQ: return { kind: 'ap-reset-hold' };
    case GHCB_INFO.PREFERRED_GHCB_REQ: return { kind: 'preferred-ghcb' };
    case GHCB_INFO.REGISTER_GHCB_REQ: return { kind: 'register-ghcb', gfn: v >> 12n };
    case GHCB_INFO.PSC_REQ: return { kind: 'psc', gfn: (v >> 12n) & ((1n << 40n) - 1n), op: Number((v >> 52n) & 0xfn) };
    case GHCB_INFO.HV_FEATURES_REQ: return { kind: 'hv-features' };
    case GHCB_INFO.TERM_REQ: return { kind: 'terminate', reasonSet: Number((v >> 12n) & 0xfn), reasonCode: Number((v >> 16n) & 0xffn) };
    default: return { kind: 'unknown', info, value: v };
  }
}

export const ghcbMsr = {
  sevInfoReq: (): bigint => BigInt(GHCB_INFO.SEV_INFO_REQ),
  sevInfoResp: (max: number, min: number, cBit: number): bigint =>
    (BigInt(max & 0xffff) << 48n) | (BigInt(min & 0xffff) << 32n) | (BigInt(cBit & 0xff) << 24n) | BigInt(GHCB_INFO.SEV_INFO_RESP),
  cpuidReq: (fn: number, reg: number): bigint => (BigInt(fn >>> 0) << 32n) | (BigInt(reg & 3) << 30n) | BigInt(GHCB_INFO.CPUID_REQ),
  cpuidResp: (value: number, reg: number): bigint => (BigInt(value >>> 0) << 32n) | (BigInt(reg & 3) << 30n) | BigInt(GHCB_INFO.CPUID_RESP),
  preferredGhcbResp: (gfn: bigint): bigint => ((gfn << 12n) & MASK64) | BigInt(GHCB_INFO.PREFERRED_GHCB_RESP),
  registerReq: (gfn: bigint): bigint => ((gfn << 12n) & MASK64) | BigInt(GHCB_INFO.REGISTER_GHCB_REQ),
  registerResp: (gfn: bigint): bigint => ((gfn << 12n) & MASK64) | BigInt(GHCB_INFO.REGISTER_GHCB_RESP),
  pscReq: (gfn: bigint, op: number): bigint => (BigInt(op & 0xf) << 52n) | ((gfn & ((1n << 40n) - 1n)) << 12n) | BigInt(GHCB_INFO.PSC_REQ),
  pscResp: (error: number): bigint => (BigInt(error >>> 0) << 32n) | BigInt(GHCB_INFO.PSC_RESP),
  hvFeaturesResp: (features: bigint): bigint => ((features << 12n) & MASK64) | BigInt(GHCB_INFO.HV_FEATURES_RESP),
  termReq: (set: number, code: number): bigint => (BigInt(code & 0xff) << 16n) | (BigInt(set & 0xf) << 12n) | BigInt(GHCB_INFO.TERM_REQ),
};
