// The GHCB MSR protocol and the GHCB page layout, bit by bit against the GHCB specification
// (AMD 56421 §2.3.1 MSR protocol, §2.5 GHCB layout, §4.1.6 Page State Change) as
// tdx-snp-architecture.md B4 and Linux asm/sev-common.h / asm/svm.h give them: the round trips in
// rmp.test.ts would pass with any self-consistent layout.
import { describe, expect, it } from 'vitest';
import { decodeGhcbMsr, ghcbMsr, GHCB_INFO, GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, ghcbInfo, HV_FEATURE, PSC_OP, REGISTER_GHCB_REFUSED_GFN, TERM_CODE_LINUX, TERM_SET } from '../../../src/platform/snp/ghcb-msr.js';
import {
  AP_REQUEST, decodeIoioExitInfo, decodePscEntry, decodePscEntryWords, encodePscEntry, GHCB_ERR, GHCB_OFFSET, GHCB_RESULT, GHCB_SAVE_AREA_AND_BITMAP_BYTES, GHCB_SHARED_BUFFER_SIZE, GHCB_SIZE, IOIO,
  PSC_ERROR, PSC_MAX_ENTRIES, pscEntryAddress, SVM_EXIT, withPscCurPage,
} from '../../../src/platform/snp/ghcb-page.js';

describe('GHCB MSR protocol (GHCBInfo = bits 11:0)', () => {
  it('SEV information response 0x001: [63:48] max protocol, [47:32] min protocol, [31:24] C-bit position', () => {
    expect(ghcbMsr.sevInfoResp(2, 1, 51)).toBe((2n << 48n) | (1n << 32n) | (51n << 24n) | 0x001n);
    expect([GHCB_PROTOCOL_MIN, GHCB_PROTOCOL_MAX]).toEqual([1, 2]);  // Linux GHCB_PROTOCOL_MIN/MAX
  });

  it('CPUID request 0x004: [63:32] function, [31:30] register; response 0x005: [63:32] value, [31:30] register', () => {
    expect(ghcbMsr.cpuidReq(0x8000001f, 1)).toBe((0x8000001fn << 32n) | (1n << 30n) | 0x004n);
    expect(decodeGhcbMsr((0x8000001fn << 32n) | (3n << 30n) | 0x004n)).toEqual({ kind: 'cpuid', fn: 0x8000001f, reg: 3 });
    expect(ghcbMsr.cpuidResp(0xdeadbeef, 2)).toBe((0xdeadbeefn << 32n) | (2n << 30n) | 0x005n);
  });

  it('GHCB GPA registration 0x012/0x013: [63:12] GFN', () => {
    expect(decodeGhcbMsr((0x30n << 12n) | 0x012n)).toEqual({ kind: 'register-ghcb', gfn: 0x30n });
    // All 52 bits: the GFN field is not the PSC request's 40.
    expect(decodeGhcbMsr(0xfedc_ba98_7654_3012n)).toEqual({ kind: 'register-ghcb', gfn: 0xf_edcb_a987_6543n });
    expect(ghcbMsr.registerResp(0x30n)).toBe((0x30n << 12n) | 0x013n);
    // A refusal answers GFN -1: every bit of GHCBData[63:12] set (GHCB spec "GHCB GPA Registration":
    // "otherwise return -1"; Linux 0c76b1d08280).
    expect(ghcbMsr.registerResp(REGISTER_GHCB_REFUSED_GFN)).toBe(0xffff_ffff_ffff_f013n);
    expect(REGISTER_GHCB_REFUSED_GFN).toBe(0xf_ffff_ffff_ffffn);  // the 52 bits of GHCBData[63:12], as a GFN
  });

  it('Page State Change request 0x014: [51:12] GFN, [55:52] operation; response 0x015: [63:32] error', () => {
    const req = (0xfn << 52n) | (0xabcdn << 12n) | 0x014n;
    expect(decodeGhcbMsr(req)).toEqual({ kind: 'psc', gfn: 0xabcdn, op: 0xf });
    expect(decodeGhcbMsr((1n << 56n) | (2n << 52n) | (1n << 12n) | 0x014n)).toEqual({ kind: 'psc', gfn: 1n, op: PSC_OP.SHARED });
    // The GFN field is all forty bits 51:12.
    expect(decodeGhcbMsr((1n << 52n) | (0xff_ffff_ffffn << 12n) | 0x014n)).toEqual({ kind: 'psc', gfn: 0xff_ffff_ffffn, op: PSC_OP.PRIVATE });
    expect(ghcbMsr.pscReq(0xabcdn, PSC_OP.PRIVATE)).toBe((1n << 52n) | (0xabcdn << 12n) | 0x014n);
    expect(ghcbMsr.pscResp(0x80000001)).toBe((0x80000001n << 32n) | 0x015n);
    expect(PSC_OP).toEqual({ PRIVATE: 1, SHARED: 2, PSMASH: 3, UNSMASH: 4 });
  });

  // Linux asm/sev-common.h builds each request with its fields masked to their widths:
  // GHCB_CPUID_REQ: "reg & GHCB_MSR_CPUID_REG_MASK" (0x3) at 30, fn (32 bits) at 32;
  // GHCB_MSR_REG_GPA_REQ_VAL: "(v) & GENMASK_ULL(51, 0)" at 12; GHCB_MSR_PSC_REQ_GFN: "(op) & 0xf"
  // at 52, "(gfn) & GENMASK_ULL(39, 0)" at 12; GHCB_MSR_SEV_INFO: max and min "& GHCB_MSR_PROTO_MASK"
  // (0xffff) at 48 and 32, the C-bit "& GHCB_MSR_CBIT_MASK" (0xff) at 24.
  it('each encoder keeps every field to its width, all of it and no more (Linux sev-common.h masks)', () => {
    expect(ghcbMsr.cpuidReq(0xffffffff, 3)).toBe(0xffff_ffff_c000_0004n);
    expect(ghcbMsr.cpuidReq(0x80000000, 4 | 1)).toBe((0x80000000n << 32n) | (1n << 30n) | 0x004n);
    expect(ghcbMsr.cpuidResp(0xffffffff, 3)).toBe(0xffff_ffff_c000_0005n);
    expect(ghcbMsr.cpuidResp(0x12345678, 1)).toBe((0x12345678n << 32n) | (1n << 30n) | 0x005n);
    expect(ghcbMsr.registerReq(0xf_ffff_ffff_ffffn)).toBe(0xffff_ffff_ffff_f012n);
    expect(ghcbMsr.registerReq((1n << 52n) | 0x30n)).toBe((0x30n << 12n) | 0x012n);
    expect(ghcbMsr.pscReq(0xff_ffff_ffffn, 0xf)).toBe(0x00ff_ffff_ffff_f014n);
    expect(ghcbMsr.pscReq((1n << 40n) | 0xabcdn, 0x10 | PSC_OP.SHARED)).toBe((2n << 52n) | (0xabcdn << 12n) | 0x014n);
    expect(ghcbMsr.sevInfoResp(0xffff, 0xffff, 0xff)).toBe(0xffff_ffff_ff00_0001n);
    expect(ghcbMsr.sevInfoResp(0x1_0002, 0x1_0001, 0x133)).toBe(ghcbMsr.sevInfoResp(2, 1, 0x33));
  });

  it('hypervisor features response 0x081: the bitmap in [63:12] (b0 SNP, b1 AP creation, b2 restricted injection)', () => {
    expect(ghcbMsr.hvFeaturesResp(HV_FEATURE.SNP | HV_FEATURE.AP_CREATION)).toBe((3n << 12n) | 0x081n);
    expect(HV_FEATURE).toEqual({ SNP: 1n, AP_CREATION: 2n, RESTRICTED_INJECTION: 4n });
  });

  it('termination request 0x100: [15:12] reason set, [23:16] reason code', () => {
    expect(decodeGhcbMsr((0xa5n << 16n) | (0x3n << 12n) | 0x100n)).toEqual({ kind: 'terminate', reasonSet: 3, reasonCode: 0xa5 });
    // Bits 63:24 are reserved: they are no part of the code.
    expect(decodeGhcbMsr((0xffff_ffffn << 24n) | (0xa5n << 16n) | (0x3n << 12n) | 0x100n)).toEqual({ kind: 'terminate', reasonSet: 3, reasonCode: 0xa5 });
    expect(ghcbMsr.termReq(1, 0xa5)).toBe((0xa5n << 16n) | (1n << 12n) | 0x100n);
  });

  it('termination reason sets and Linux\'s codes in set 1 (Linux asm/sev-common.h SEV_TERM_SET_GEN 0, SEV_TERM_SET_LINUX 1, GHCB_TERM_REGISTER 0 .. GHCB_TERM_CPUID_HV 5)', () => {
    expect(TERM_SET).toEqual({ GENERAL: 0, LINUX: 1 });
    expect(TERM_CODE_LINUX).toEqual({ REGISTER: 0, PSC: 1, PVALIDATE: 2, NOT_VMPL0: 3, CPUID: 4, CPUID_HV: 5 });
  });

  it('GHCBInfo is all twelve bits 11:0, odd codes too: a response code the guest writes back is no request (Linux GHCB_MSR_INFO_MASK 0xfff)', () => {
    expect(ghcbInfo(0xffff_ffff_ffff_f013n)).toBe(0x013);
    expect(ghcbInfo(0xfffn)).toBe(0xfff);
    expect(decodeGhcbMsr((0x30n << 12n) | 0x013n)).toEqual({ kind: 'unknown', info: 0x013, value: (0x30n << 12n) | 0x013n });
    expect(decodeGhcbMsr(0x003n)).toMatchObject({ kind: 'unknown', info: 0x003 });
  });

  it('GHCBInfo codes (B4)', () => {
    expect(GHCB_INFO).toEqual({
      SEV_INFO_RESP: 0x001, SEV_INFO_REQ: 0x002, CPUID_REQ: 0x004, CPUID_RESP: 0x005, AP_RESET_HOLD_REQ: 0x006, AP_RESET_HOLD_RESP: 0x007,
      PREFERRED_GHCB_REQ: 0x010, PREFERRED_GHCB_RESP: 0x011, REGISTER_GHCB_REQ: 0x012, REGISTER_GHCB_RESP: 0x013, PSC_REQ: 0x014, PSC_RESP: 0x015,
      HV_FEATURES_REQ: 0x080, HV_FEATURES_RESP: 0x081, TERM_REQ: 0x100,
    });
  });
});

describe('GHCB page', () => {
  it('save-area offsets (XCR0 after reserved_0x3b0[56]), the valid bitmap, the shared buffer and the trailer (Linux struct ghcb)', () => {
    expect(GHCB_OFFSET).toEqual({
      rax: 0x1f8, rcx: 0x308, rdx: 0x310, rbx: 0x318, swExitCode: 0x390, swExitInfo1: 0x398, swExitInfo2: 0x3a0, swScratch: 0x3a8,
      xcr0: 0x3e8, validBitmap: 0x3f0, sharedBuffer: 0x800, protocolVersion: 0xffa, usage: 0xffc,
    });
    expect(GHCB_SAVE_AREA_AND_BITMAP_BYTES).toBe(0x400);  // the 16-byte valid bitmap ends the save area
  });

  it('Page State Change: entries after the 8-byte header, at most 253 in the 2032-byte buffer; cur_page[11:0] gfn[51:12] operation[55:52] pagesize[56] reserved[63:57]', () => {
    expect(pscEntryAddress(0x30800n, 0)).toBe(0x30808n);
    expect(pscEntryAddress(0x30800n, 252)).toBe(0x30808n + 252n * 8n);
    expect(PSC_MAX_ENTRIES).toBe((0x7f0 - 8) / 8);
    const raw = (0x5n << 58n) | (1n << 56n) | (2n << 52n) | (0x123456789n << 12n) | 0xabcn;
    expect(decodePscEntry(raw)).toEqual({ curPage: 0xabc, gfn: 0x123456789n, op: 2, size2m: true, reserved: 0x5 << 1 });
    expect(decodePscEntry(1n << 57n).reserved).toBe(1);
    expect(encodePscEntry({ curPage: 0xfff, gfn: 1n, op: 1, size2m: false })).toBe((1n << 52n) | (1n << 12n) | 0xfffn);
    // struct psc_entry's bit-fields (cur_page:12, gfn:40, operation:4, pagesize:1) hold the low bits of what is stored in them.
    expect(encodePscEntry({ curPage: 0x1fff, gfn: (1n << 41n) - 1n, op: 0x1f, size2m: true })).toBe(0x01ff_ffff_ffff_ffffn);
    expect(encodePscEntry({ curPage: 0x1001, gfn: (1n << 40n) | 0x1234n, op: 0x12, size2m: false })).toBe((2n << 52n) | (0x1234n << 12n) | 1n);
  });

  it('a PSC entry read as two 32-bit halves gives the fields decodePscEntry gives, and cur_page written into the low half is encodePscEntry with that cur_page', () => {
    const halves = (v: bigint) => [Number(v & 0xffffffffn), Number(v >> 32n)] as const;
    const raws = [
      (0x5n << 58n) | (1n << 56n) | (2n << 52n) | (0x123456789n << 12n) | 0xabcn,
      (1n << 64n) - 1n,
      ((1n << 40n) - 1n) << 12n,  // the largest gfn: every bit of both halves' gfn parts
      (1n << 52n) | (0x80000n << 12n) | 0x200n,  // gfn bit 19, the top bit of the low half
      0n,
    ];
    for (const raw of raws) {
      const e = decodePscEntry(raw);
      const [low, high] = halves(raw);
      expect(decodePscEntryWords(low, high)).toEqual({ curPage: e.curPage, gfn: Number(e.gfn), op: e.op, size2m: e.size2m });
      for (const curPage of [0, 1, 512, 0xfff]) {
        expect(withPscCurPage(low, curPage)).toBe(halves(encodePscEntry({ ...e, curPage }))[0]);
      }
    }
  });

  it('the page and its shared buffer: a 4 KiB page whose shared buffer is 2032 bytes (Linux struct ghcb: shared_buffer[2032] at 0x800, then the trailer)', () => {
    expect(GHCB_SIZE).toBe(4096);
    expect(GHCB_SHARED_BUFFER_SIZE).toBe(2032);
    expect(GHCB_OFFSET.sharedBuffer + GHCB_SHARED_BUFFER_SIZE).toBe(0xff0);
  });

  it('SW_EXITINFO1 results 0 ok, 1 inject the event in EXITINFO2, 2 error (B4); errors in EXITINFO2 (Linux asm/sev-common.h GHCB_ERR_NOT_REGISTERED 1 .. GHCB_ERR_INVALID_EVENT 6); AP creation requests (uapi asm/svm.h SVM_VMGEXIT_AP_CREATE_ON_INIT 0, _CREATE 1, _DESTROY 2)', () => {
    expect(GHCB_RESULT).toEqual({ OK: 0n, INJECT_EVENT: 1n, ERROR: 2n });
    expect(GHCB_ERR).toEqual({ NOT_REGISTERED: 1n, INVALID_USAGE: 2n, INVALID_SCRATCH_AREA: 3n, MISSING_INPUT: 4n, INVALID_INPUT: 5n, INVALID_EVENT: 6n });
    expect(AP_REQUEST).toEqual({ CREATE_ON_INIT: 0, CREATE: 1, DESTROY: 2 });
  });

  it('errors in SW_EXITINFO2 and the NAE exit codes (GHCB spec §4.1.6; uapi asm/svm.h)', () => {
    expect(PSC_ERROR).toEqual({ INVALID_HEADER: (1n << 32n) | 1n, INVALID_ENTRY: (1n << 32n) | 2n, GENERIC: 0x100n << 32n });
    expect(SVM_EXIT).toMatchObject({ CPUID: 0x72, IOIO: 0x7b, MSR: 0x7c, NPF: 0x400, PSC: 0x80000010, AP_CREATION: 0x80000013, HV_FEATURES: 0x8000fffd, TERM_REQUEST: 0x8000fffe, UNSUPPORTED: 0x8000ffff });
  });

  it('IOIO EXITINFO1: port [31:16], size bits 4-6, REP 3, string 2, IN 0 (APM Vol. 2 §15.10.2)', () => {
    expect(decodeIoioExitInfo((0x3f8n << 16n) | (1n << 4n) | 1n)).toEqual({ direction: 'in', port: 0x3f8, size: 1, string: false, rep: false });
    expect(decodeIoioExitInfo((0xcf8n << 16n) | (1n << 6n) | (1n << 3n) | (1n << 2n))).toEqual({ direction: 'out', port: 0xcf8, size: 4, string: true, rep: true });
    expect(decodeIoioExitInfo((0x80n << 16n) | (1n << 5n))).toMatchObject({ size: 2 });
    // The port is all 16 bits of [31:16], up to 0xFFFF.
    expect(decodeIoioExitInfo((0xfffen << 16n) | (1n << 4n))).toMatchObject({ port: 0xfffe });
    expect(decodeIoioExitInfo(0x80n << 16n).size).toBeUndefined();
    expect(IOIO).toEqual({ TYPE_IN: 1n, STRING: 1n << 2n, REP: 1n << 3n, SZ8: 1n << 4n, SZ16: 1n << 5n, SZ32: 1n << 6n });
    expect(decodeIoioExitInfo((0x80n << 16n) | (1n << 2n) | (1n << 4n))).toMatchObject({ string: true, rep: false, size: 1 });
  });
});
