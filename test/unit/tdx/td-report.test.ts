// The TDINFO part of TDREPORT_STRUCT as TDG.MR.REPORT assembles it, against intel/tdx-module
// TDX_1.5.01 include/tdx_api_defs.h: td_report_t puts TDINFO at byte 512 (after REPORTMACSTRUCT
// and TEE_TCB_INFO, 256 bytes each); td_info_t is ATTRIBUTES (8), XFAM (8), MRTD, MRCONFIGID,
// MROWNER, MROWNERCONFIG (48 each), rtmr[NUM_OF_RTMRS = 4] (48 each, from byte 208), SERVTD_HASH
// (48, byte 400) and 64 reserved bytes. The offsets are written out here, not taken from the model.
import { describe, expect, it } from 'vitest';
import { buildReport } from '../../../src/platform/tdx/mr-report.js';
import { tdxModule } from '../../helpers/tdx-module.js';

const TDINFO = 512;
const RTMR = TDINFO + 208;
const SERVTD_HASH = TDINFO + 400;

describe('TDREPORT_STRUCT TDINFO (get_tdinfo_and_teeinfohash)', () => {
  it('carries every RTMR, RTMR[3] included, each 48 bytes at 208 + 48 i; SERVTD_HASH and the reserved bytes stay 0', () => {
    const m = tdxModule();
    for (let i = 0; i < 4; i++) m.rtmr[i] = Buffer.alloc(48, 0xa0 + i);
    const report = buildReport(m, new Uint8Array(64));
    for (let i = 0; i < 4; i++) expect(report.subarray(RTMR + 48 * i, RTMR + 48 * (i + 1))).toEqual(Buffer.alloc(48, 0xa0 + i));
    expect(report.subarray(SERVTD_HASH, TDINFO + 512)).toEqual(Buffer.alloc(112));
  });
});
