// The GHCB page: layout, valid bitmap, result codes and the Page State Change buffer codec
// (tdx-snp-architecture.md B4; GHCB spec 56421 §2.5/§4.1.6; Linux asm/svm.h struct ghcb,
// asm/sev-common.h struct snp_psc_desc, uapi/asm/svm.h exit codes).
export const GHCB_SIZE = 0x1000;
export const GHCB_OFFSET = {
  rax: 0x1f8,
  rcx: 0x308,
  rdx: 0x310,
  rbx: 0x318,
  swExitCode: 0x390,
  swExitInfo1: 0x398,
  swExitInfo2: 0x3a0,
  swScratch: 0x3a8,
  xcr0: 0x3e8,
  validBitmap: 0x3f0,
  sharedBuffer: 0x800,
  protocolVersion: 0xffa,
  usage: 0xffc,
} as const;
export const GHCB_SHARED_BUFFER_SIZE = 0x7f0; // 2032 bytes
/**
 * The save area, [0, 0x400), which ends with the valid bitmap (Linux asm/svm.h struct ghcb_save_area,
 * valid_bitmap at 0x3f0): every GHCB field a VMM reads apart from the shared buffer and the trailer.
 */
export const GHCB_SAVE_AREA_AND_BITMAP_BYTES = GHCB_OFFSET.validBitmap + 16;

/** SW_EXITCODE values the model's hypervisor serves (uapi/asm/svm.h, B4). */
export const SVM_EXIT = {
  /** MOV from DRn: READ_DR0 + n; MOV to DRn: WRITE_DR0 + n (DR7: 0x27, 0x37). */
  READ_DR0: 0x20,
  WRITE_DR0: 0x30,
  READ_DR7: 0x27,
  WRITE_DR7: 0x37,
  RDPMC: 0x6f,
  CPUID: 0x72,
  INVD: 0x76,
  IOIO: 0x7b,
  MSR: 0x7c,
  WBINVD: 0x89,
  MONITOR: 0x8a,
  MWAIT: 0x8b,
  NPF: 0x400,
  PSC: 0x80000010,
  /** SNP Guest Request NAE: SW_EXITINFO1 = request page GPA, SW_EXITINFO2 = response page GPA (Linux SVM_VMGEXIT_GUEST_REQUEST). */
  GUEST_REQUEST: 0x80000011,
  /** SNP Extended Guest Request NAE: the same, RAX = certificate data GPA, RBX = its pages (SVM_VMGEXIT_EXT_GUEST_REQUEST). */
  EXT_GUEST_REQUEST: 0x80000012,
  /**
   * SNP AP Creation NAE event (GHCB spec 56421, "SNP AP Creation"; its section number not checked:
   * only the spec's title page was retrievable here). Values and layout as Linux and KVM use them:
   * SVM_VMGEXIT_AP_CREATION, SW_EXITINFO1 = APIC ID << 32 | VMPL << 16 | request.
   */
  AP_CREATION: 0x80000013,
  HV_FEATURES: 0x8000fffd,
  TERM_REQUEST: 0x8000fffe,
  UNSUPPORTED: 0x8000ffff,
} as const;

/** AP Creation requests in SW_EXITINFO1[31:0] (Linux svm.h SVM_VMGEXIT_AP_CREATE_ON_INIT / _CREATE / _DESTROY). */
export const AP_REQUEST = { CREATE_ON_INIT: 0, CREATE: 1, DESTROY: 2 } as const;

/** SW_EXITINFO1[31:0] on return (B4). */
export const GHCB_RESULT = { OK: 0n, INJECT_EVENT: 1n, ERROR: 2n } as const;
/** SW_EXITINFO2 when SW_EXITINFO1 = 2 (Linux sev-common.h GHCB_ERR_*). */
export const GHCB_ERR = { NOT_REGISTERED: 1n, INVALID_USAGE: 2n, INVALID_SCRATCH_AREA: 3n, MISSING_INPUT: 4n, INVALID_INPUT: 5n, INVALID_EVENT: 6n } as const;

/** PSC NAE: at most 253 entries after the 8-byte header fill the 2032-byte shared buffer. */
export const PSC_MAX_ENTRIES = 253;
/** PSC errors in SW_EXITINFO2 (B4; GHCB spec 56421 §4.1.6). */
export const PSC_ERROR = {
  INVALID_HEADER: (1n << 32n) | 1n,
  INVALID_ENTRY: (1n << 32n) | 2n,
  GENERIC: 0x100n << 32n,
} as const;

/** IOIO EXITINFO1 layout (APM Vol. 2 §15.10.2, as the GHCB IOIO NAE uses it). */
export const IOIO = { TYPE_IN: 1n, STRING: 1n << 2n, REP: 1n << 3n, SZ8: 1n << 4n, SZ16: 1n << 5n, SZ32: 1n << 6n } as const;

export function decodeIoioExitInfo(info: bigint): { direction: 'in' | 'out'; port: number; size: 1 | 2 | 4 | undefined; string: boolean; rep: boolean } {
  const size = (info & IOIO.SZ8) ? 1 : (info & IOIO.SZ16) ? 2 : (info & IOIO.SZ32) ? 4 : undefined;
  return {
    direction: (info & IOIO.TYPE_IN) ? 'in' : 'out', port: Number((info >> 16n) & 0xffffn), size,
    string: (info & IOIO.STRING) !== 0n, rep: (info & IOIO.REP) !== 0n,
  };
}

/** One PSC entry: cur_page[11:0], gfn[51:12], operation[55:52], pagesize[56], reserved[63:57]. */
export interface PscEntry { curPage: number; gfn: bigint; op: number; size2m: boolean; reserved: number }

export function decodePscEntry(v: bigint): PscEntry {
  return {
    curPage: Number(v & 0xfffn), gfn: (v >> 12n) & ((1n << 40n) - 1n), op: Number((v >> 52n) & 0xfn),
    size2m: ((v >> 56n) & 1n) === 1n, reserved: Number(v >> 57n),
  };
}

/**
 * The fields of the PSC entry whose low and high 32-bit halves are `low` and `high` (the same
 * layout as decodePscEntry), on numbers: gfn is below 2^40, so exact. The VMM reads every entry of
 * a PSC this way; a dozen BigInt operations per entry, and as many to write cur_page back, were a
 * large share of an eager SNP boot's per-GiB cost (issue 11).
 */
export function decodePscEntryWords(low: number, high: number): { curPage: number; gfn: number; op: number; size2m: boolean } {
  return { curPage: low & 0xfff, gfn: (low >>> 12) + (high & 0xfffff) * 0x100000, op: (high >>> 20) & 0xf, size2m: ((high >>> 24) & 1) === 1 };
}

/** The low 32-bit half of a PSC entry whose low half is `low`, with cur_page (bits 11:0) set to `curPage`. */
export function withPscCurPage(low: number, curPage: number): number {
  return ((low & ~0xfff) | (curPage & 0xfff)) >>> 0;
}

export function encodePscEntry(e: Omit<PscEntry, 'reserved'> & { reserved?: number }): bigint {
  return BigInt(e.curPage & 0xfff) | ((e.gfn & ((1n << 40n) - 1n)) << 12n) | (BigInt(e.op & 0xf) << 52n)
    | ((e.size2m ? 1n : 0n) << 56n) | (BigInt(e.reserved ?? 0) << 57n);
}

export function pscEntryAddress(bufferGpa: bigint, index: number): bigint {
  return bufferGpa + 8n + BigInt(index) * 8n;
}
