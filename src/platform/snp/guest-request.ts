// SNP_GUEST_REQUEST: the firmware's side of a guest message (SEV-SNP Firmware ABI §7 "Guest
// Messages" and §8 SNP_GUEST_REQUEST), in the order AMD's own firmware checks it
// (amd/AMD-ASPFW sev_mcmd.c snp_mcmd_guest_request; layouts from sev_rmp.h).
//
// The guest encrypts a request with AES-256-GCM under one of its VMPCKs (the secrets page gives
// them): IV = MSG_SEQNO (8 bytes, little-endian, then 4 zero bytes), AAD = header bytes
// 0x30..0x5F, the 16-byte tag in AUTHTAG. The hypervisor only carries the message from a shared
// page to the firmware and back, and the firmware answers only a request whose MSG_SEQNO is one
// more than its count for that VMPCK: a replayed, reordered or changed message is refused, and
// the response (MSG_SEQNO + 1) cannot be forged or replayed by the host.
//
// Two kinds of failure, as the firmware's own comment has it: a bad message (header, tag, sequence
// number, unknown type) fails the command itself (a firmware status the hypervisor passes back,
// no response written, the count unchanged); a well-formed request the firmware refuses is a
// valid, encrypted response whose STATUS says why.
//
// Message types: MSG_CPUID_REQ, MSG_REPORT_REQ, MSG_KEY_REQ and MSG_TSC_INFO_REQ. The migration
// messages (EXPORT, IMPORT, ABSORB, VMRK), which only a migration agent sends, fail the command as
// an unknown type would (INVALID_PARAM), which the real firmware does not.
import { nodeCrypto } from '../../shared/digest.js';
import type { Snapshottable } from '../../shared/snapshottable.js';
import { GUEST_POLICY, MODEL_TCB_VERSION, attestationReport, type ReportInputs } from './attestation-report.js';
import { CPUID_ENTRY_BYTES, CPUID_TABLE_HEADER_BYTES, SNP_CPUID_COUNT_MAX, sanitizeCpuidList } from './cpuid-page.js';
import type { CpuidResult } from './sev-status.js';
import { TSC_FACTOR_GENOA } from './secrets-page.js';

/** Firmware status codes (Linux include/uapi/linux/psp-sev.h sev_ret_code). */
export const SEV_RET = {
  SUCCESS: 0x00, INVALID_GUEST_STATE: 0x02, BAD_MEASUREMENT: 0x0b, INVALID_PARAM: 0x16, AEAD_OFLOW: 0x1d, INVALID_KEY: 0x27,
} as const;

/** The message header (snp_guest_message_header_t, 0x60 bytes): byte offsets. */
export const GMSG = {
  AUTHTAG: 0x00, MSG_SEQNO: 0x20, ALGO: 0x30, HDR_VERSION: 0x31, HDR_SIZE: 0x32, MSG_TYPE: 0x34, MSG_VERSION: 0x35,
  MSG_SIZE: 0x36, MSG_VMPCK: 0x3c, HEADER_BYTES: 0x60,
} as const;
export const AEAD_ALGO_AES_256_GCM = 1;
export const MSG_TYPE = { CPUID_REQ: 1, CPUID_RSP: 2, KEY_REQ: 3, KEY_RSP: 4, REPORT_REQ: 5, REPORT_RSP: 6, TSC_INFO_REQ: 0x11, TSC_INFO_RSP: 0x12 } as const;

/**
 * MSG_CPUID_REQ (snp_msg_cpuid_req_t, cpuid_lookup.h): COUNT u32, reserved u32, reserved u64, then
 * up to 64 CPUID functions laid out as in the CPUID page. MSG_CPUID_RSP (snp_msg_cpuid_rsp_t):
 * STATUS u32, COUNT u32, reserved u64, the functions.
 */
export const CPUID_REQ = { COUNT: 0x00, RESERVED: 0x04, RESERVED2: 0x08, FUNCTIONS: CPUID_TABLE_HEADER_BYTES } as const;
export const CPUID_RSP = { STATUS: 0x00, COUNT: 0x04, FUNCTIONS: CPUID_TABLE_HEADER_BYTES, BYTES: CPUID_TABLE_HEADER_BYTES + SNP_CPUID_COUNT_MAX * CPUID_ENTRY_BYTES } as const;

/**
 * MSG_TSC_INFO_REQ is 0x80 reserved bytes; MSG_TSC_INFO_RSP (snp_msg_tsc_info_rsp_t, 0x80 bytes):
 * STATUS u32, reserved u32, GUEST_TSC_SCALE u64, GUEST_TSC_OFFSET u64, TSC_FACTOR u32.
 */
export const TSC_INFO_REQ = { BYTES: 0x80 } as const;
export const TSC_INFO_RSP = { STATUS: 0x00, GUEST_TSC_SCALE: 0x08, GUEST_TSC_OFFSET: 0x10, TSC_FACTOR: 0x18, BYTES: 0x80 } as const;
/** MSG_REPORT_REQ (snp_msg_report_req_t): REPORT_DATA[64], VMPL u32, KEY_SEL in bits 1:0 of the next u32, reserved to 0x60. */
export const REPORT_REQ = { REPORT_DATA: 0x00, VMPL: 0x40, KEY_SEL: 0x44, RESERVED: 0x48, BYTES: 0x60 } as const;
/** MSG_REPORT_RSP (snp_msg_report_rsp_t): STATUS u32, REPORT_SIZE u32, reserved to 0x20, then the report. */
export const REPORT_RSP = { STATUS: 0x00, REPORT_SIZE: 0x04, REPORT: 0x20, BYTES: 0x4c0 } as const;
/**
 * MSG_KEY_REQ (snp_msg_key_req_t): ROOT_KEY_SELECT (bit 0) and KEY_SEL (bits 2:1) in the first u32,
 * the rest of it and the next u32 reserved, GUEST_FIELD_SELECT u64, VMPL u32, GUEST_SVN u32, TCB_VERSION u64.
 */
export const KEY_REQ = { FLAGS: 0x00, RESERVED: 0x04, GUEST_FIELD_SELECT: 0x08, VMPL: 0x10, GUEST_SVN: 0x14, TCB_VERSION: 0x18 } as const;
/** MSG_KEY_RSP (snp_msg_key_rsp_t): STATUS u32, reserved to 0x20, DERIVED_KEY[32]. */
export const KEY_RSP = { STATUS: 0x00, DERIVED_KEY: 0x20, BYTES: 0x40 } as const;
/** GUEST_FIELD_SELECT: what is mixed into a derived key (SNP_GUEST_FIELD_*). */
export const GUEST_FIELD = { POLICY: 1n << 0n, IMAGE_ID: 1n << 1n, FAMILY_ID: 1n << 2n, MEASUREMENT: 1n << 3n, GUEST_SVN: 1n << 4n, TCB_VERSION: 1n << 5n, ALL: 0x3fn } as const;
/**
 * The key derivation's context (snp_mix_data_t, packed, 168 bytes): ROOT_KEY_SELECT (bit 0) and
 * IDBLOCK_KEY_SELECT (bits 2:1), reserved u32, GFS u64, VMPL, GUEST_SVN, TCB_VERSION, GUEST_POLICY,
 * IMAGE_ID[16], FAMILY_ID[16], MEASUREMENT[32] (the launch digest's first 32 bytes), HOST_DATA[32],
 * IDBLOCK_KEY[32].
 */
const MIX = { FLAGS: 0, GFS: 8, VMPL: 16, GUEST_SVN: 20, TCB_VERSION: 24, POLICY: 32, MEASUREMENT: 72, MEASUREMENT_BYTES: 32, BYTES: 168 } as const;
/** KEY_REQ_LABEL. */
const KEY_REQ_LABEL = 'gmsg-keyreq';
/**
 * The guest's VMRK: zero in a new guest context and set only by a migration agent's messages,
 * which this model has none of. Derived keys from it are what the real firmware derives then.
 */
const VMRK = new Uint8Array(32);

/** KEY_SEL: 0 VLEK else VCEK, 1 VCEK only, 2 VLEK only, 3 reserved. */
const KEY_SEL = { VLEK_ONLY: 2, RESERVED: 3 } as const;

const PAGE_BYTES = 0x1000;
const TAG_BYTES = 16;
const UINT64_MAX = (1n << 64n) - 1n;

/** What the firmware needs of the guest it serves. */
export interface GuestRequestContext {
  /** The guest is RUNNING (SNP_LAUNCH_FINISH done); before that the command is refused. */
  running: boolean;
  /** The VMPCK the secrets page holds for `vmpck` (0..3). */
  vmpck(index: number): Uint8Array;
  /** What a report says apart from the request's own fields. */
  report: Omit<ReportInputs, 'reportData' | 'vmpl'>;
  /** The CPU's own CPUID, which MSG_CPUID_REQ's functions are checked against. */
  cpuid(leaf: number, subleaf: number): CpuidResult;
}

function gcmIv(seqno: bigint): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeBigUInt64LE(seqno, 0);
  return iv;
}

/** The firmware's guest-message state: one message count per VMPCK (GCTX MSG_COUNT0..3). */
export class GuestRequestFirmware implements Snapshottable<readonly bigint[]> {
  #counts: bigint[] = [0n, 0n, 0n, 0n];

  saveState(): readonly bigint[] { return [...this.#counts]; }
  loadState(state: readonly bigint[]): void { this.#counts = [...state]; }

  /** The message count of VMPCK `index`: the last response's MSG_SEQNO. */
  count(index: number): bigint { return this.#counts[index]!; }

  /**
   * SNP_GUEST_REQUEST with the request message in `request` (the hypervisor's page); a response
   * goes into `response` (its header and payload; the rest of the page untouched). Returns the
   * command's firmware status.
   */
  handle(ctx: GuestRequestContext, request: Uint8Array, response: Uint8Array): number {
    if (request.length < PAGE_BYTES || response.length < PAGE_BYTES) throw new RangeError('guest request and response are 4 KiB pages');
    if (!ctx.running) return SEV_RET.INVALID_GUEST_STATE;
    const req = new DataView(request.buffer, request.byteOffset, PAGE_BYTES);
    const msgSize = req.getUint16(GMSG.MSG_SIZE, true);
    if (request[GMSG.HDR_VERSION] !== 1 || req.getUint16(GMSG.HDR_SIZE, true) !== GMSG.HEADER_BYTES
      || request[GMSG.ALGO] !== AEAD_ALGO_AES_256_GCM || msgSize === 0 || msgSize % 16 !== 0) return SEV_RET.INVALID_PARAM;
    if (GMSG.HEADER_BYTES + msgSize > PAGE_BYTES) return SEV_RET.INVALID_PARAM;
    const vmpckIndex = request[GMSG.MSG_VMPCK]!;
    if (vmpckIndex > 3) return SEV_RET.INVALID_PARAM;
    const seqno = req.getBigUint64(GMSG.MSG_SEQNO, true);
    const key = ctx.vmpck(vmpckIndex);
    // The payload decrypts into a scratch page the firmware zeroes after every request: what a
    // short MSG_SIZE leaves out of a message's fields reads as zero.
    const payload = new Uint8Array(PAGE_BYTES);
    try {
      const decipher = nodeCrypto().createDecipheriv('aes-256-gcm', key, gcmIv(seqno));
      decipher.setAAD(request.subarray(GMSG.ALGO, GMSG.HEADER_BYTES));
      decipher.setAuthTag(request.subarray(GMSG.AUTHTAG, GMSG.AUTHTAG + TAG_BYTES));
      payload.set(decipher.update(request.subarray(GMSG.HEADER_BYTES, GMSG.HEADER_BYTES + msgSize)));
      decipher.final();
    } catch {
      // aes256gcm_authenticated_decrypt: a tag that does not match is BAD_MEASUREMENT.
      return SEV_RET.BAD_MEASUREMENT;
    }
    const count = this.#counts[vmpckIndex]!;
    if (count === UINT64_MAX - 1n || seqno !== count + 1n) return SEV_RET.AEAD_OFLOW;
    const msgType = request[GMSG.MSG_TYPE]!, msgVersion = request[GMSG.MSG_VERSION]!;
    const served = SERVED_REQUESTS.get(msgType);
    if (msgVersion === 0 || served === undefined || msgVersion > served.maxVersion) return SEV_RET.INVALID_PARAM;
    const body = served.respond(ctx, payload, vmpckIndex, msgSize);

    const header = new Uint8Array(GMSG.HEADER_BYTES);
    const h = new DataView(header.buffer);
    h.setBigUint64(GMSG.MSG_SEQNO, seqno + 1n, true);
    header[GMSG.ALGO] = AEAD_ALGO_AES_256_GCM;
    header[GMSG.HDR_VERSION] = 1;
    h.setUint16(GMSG.HDR_SIZE, GMSG.HEADER_BYTES, true);
    header[GMSG.MSG_TYPE] = msgType + 1;  // SERVED_REQUESTS: each response type follows its request's
    header[GMSG.MSG_VERSION] = 1;
    h.setUint16(GMSG.MSG_SIZE, body.length, true);
    header[GMSG.MSG_VMPCK] = vmpckIndex;
    const cipher = nodeCrypto().createCipheriv('aes-256-gcm', key, gcmIv(seqno + 1n));
    cipher.setAAD(header.subarray(GMSG.ALGO));
    const sealed = Buffer.concat([cipher.update(body), cipher.final()]);
    header.set(cipher.getAuthTag(), GMSG.AUTHTAG);
    // The request and the response both count: the next request must carry MSG_SEQNO + 2.
    this.#counts[vmpckIndex] = count + 2n;
    response.set(header, 0);
    response.set(sealed, GMSG.HEADER_BYTES);
    return SEV_RET.SUCCESS;
  }
}

/** MSG_REPORT_RSP for the decrypted MSG_REPORT_REQ `payload`: a report, or STATUS saying why not. */
function reportResponse(ctx: GuestRequestContext, payload: Uint8Array, vmpckIndex: number): Uint8Array {
  const body = new Uint8Array(REPORT_RSP.BYTES);
  const out = new DataView(body.buffer);
  out.setUint32(REPORT_RSP.REPORT_SIZE, REPORT_RSP.BYTES - REPORT_RSP.REPORT, true);
  const p = new DataView(payload.buffer);
  const keySelWord = p.getUint32(REPORT_REQ.KEY_SEL, true);
  const status = (() => {
    if (payload.subarray(REPORT_REQ.RESERVED, REPORT_REQ.BYTES).some((b) => b !== 0) || (keySelWord & ~0x3) !== 0) return SEV_RET.INVALID_PARAM;
    // No VLEK is installed, and the VCEK is not disabled for this guest: only a VLEK-only or a
    // reserved KEY_SEL is refused (with the chip key masked, nothing signs either way).
    const keySel = keySelWord & 0x3;
    if (keySel === KEY_SEL.RESERVED || keySel === KEY_SEL.VLEK_ONLY) return SEV_RET.INVALID_KEY;
    // A report may not claim a more privileged VMPL than the VMPCK that asked for it. A VMPL
    // above 3 is not refused: the firmware copies it as it is.
    const vmpl = p.getUint32(REPORT_REQ.VMPL, true);
    if (vmpl < vmpckIndex) return SEV_RET.INVALID_PARAM;
    body.set(attestationReport({ ...ctx.report, reportData: payload.subarray(REPORT_REQ.REPORT_DATA, REPORT_REQ.REPORT_DATA + 64), vmpl }), REPORT_RSP.REPORT);
    return SEV_RET.SUCCESS;
  })();
  out.setUint32(REPORT_RSP.STATUS, status, true);
  return body;
}

/**
 * MSG_KEY_RSP for the decrypted MSG_KEY_REQ `payload` (sev_mcmd.c, case SNP_MSG_KEY_REQ): a key
 * derived from the VMRK, or STATUS saying why not. The chip key is masked on this platform, so a
 * key rooted in the VCEK (ROOT_KEY_SELECT 0) is INVALID_KEY, as the firmware's first check makes it.
 */
function keyResponse(ctx: GuestRequestContext, payload: Uint8Array, vmpckIndex: number): Uint8Array {
  const body = new Uint8Array(KEY_RSP.BYTES);
  const p = new DataView(payload.buffer);
  const status = (() => {
    const flags = p.getUint32(KEY_REQ.FLAGS, true);
    if ((flags >>> 3) !== 0 || p.getUint32(KEY_REQ.RESERVED, true) !== 0) return SEV_RET.INVALID_PARAM;
    if ((flags & 1) === 0) return SEV_RET.INVALID_KEY;
    const mix = new Uint8Array(MIX.BYTES);
    const m = new DataView(mix.buffer);
    // ROOT_KEY_SELECT 1; IDBLOCK_KEY_SELECT 0 (no ID block); HOST_DATA and IDBLOCK_KEY zero.
    m.setUint32(MIX.FLAGS, 1, true);
    const vmpl = p.getUint32(KEY_REQ.VMPL, true);
    if (vmpl < vmpckIndex) return SEV_RET.INVALID_PARAM;
    const gfs = p.getBigUint64(KEY_REQ.GUEST_FIELD_SELECT, true);
    if ((gfs & ~GUEST_FIELD.ALL) !== 0n) return SEV_RET.INVALID_PARAM;
    m.setUint32(MIX.VMPL, vmpl, true);
    m.setBigUint64(MIX.GFS, gfs, true);
    if (gfs & GUEST_FIELD.TCB_VERSION) {
      // Not above the committed TCB, field by field (boot loader, TEE, SNP, microcode), reserved bytes zero.
      const tcb = payload.subarray(KEY_REQ.TCB_VERSION, KEY_REQ.TCB_VERSION + 8);
      const committed = new Uint8Array(8);
      new DataView(committed.buffer).setBigUint64(0, MODEL_TCB_VERSION, true);
      if ([0, 1, 6, 7].some((i) => tcb[i]! > committed[i]!) || [2, 3, 4, 5].some((i) => tcb[i] !== 0)) return SEV_RET.INVALID_PARAM;
      mix.set(tcb, MIX.TCB_VERSION);
    }
    if (gfs & GUEST_FIELD.GUEST_SVN) {
      // Not above the ID block's GUEST_SVN, which is 0 without an ID block.
      const svn = p.getUint32(KEY_REQ.GUEST_SVN, true);
      if (svn > 0) return SEV_RET.INVALID_PARAM;
      m.setUint32(MIX.GUEST_SVN, svn, true);
    }
    if (gfs & GUEST_FIELD.MEASUREMENT) mix.set(ctx.report.measurement.subarray(0, MIX.MEASUREMENT_BYTES), MIX.MEASUREMENT);
    // FAMILY_ID and IMAGE_ID come from an ID block: zero here.
    if (gfs & GUEST_FIELD.POLICY) m.setBigUint64(MIX.POLICY, GUEST_POLICY, true);
    body.set(nistKdfSha256(VMRK, KEY_REQ_LABEL, mix), KEY_RSP.DERIVED_KEY);
    return SEV_RET.SUCCESS;
  })();
  new DataView(body.buffer).setUint32(KEY_RSP.STATUS, status, true);
  return body;
}

/**
 * NIST SP 800-108 counter-mode KDF with HMAC-SHA-256 for one 32-byte block, as the firmware's
 * nist_kdf builds its input: i = 1 (u32), the label, a zero byte, the context, L = 256 (u32), both
 * integers in the PSP's (little-endian) byte order.
 */
function nistKdfSha256(key: Uint8Array, label: string, context: Uint8Array): Buffer {
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  return nodeCrypto().createHmac('sha256', key).update(u32(1)).update(label).update(Uint8Array.of(0)).update(context).update(u32(256)).digest();
}

/**
 * MSG_TSC_INFO_RSP (sev_mcmd.c case SNP_MSG_TSC_INFO_REQ): reserved bytes must be zero, else
 * STATUS = INVALID_PARAM; otherwise GUEST_TSC_SCALE = calc_tsc_scale(the launch's desired TSC
 * frequency, the reference clock), which is 0 for a guest launched without Secure TSC (desired
 * frequency 0), as this model's are; GUEST_TSC_OFFSET = 0 (set so at guest context creation and by
 * nothing after it but migration); TSC_FACTOR = Genoa's.
 */
function tscInfoResponse(payload: Uint8Array): Uint8Array {
  const body = new Uint8Array(TSC_INFO_RSP.BYTES);
  const out = new DataView(body.buffer);
  if (payload.subarray(0, TSC_INFO_REQ.BYTES).some((b) => b !== 0)) {
    out.setUint32(TSC_INFO_RSP.STATUS, SEV_RET.INVALID_PARAM, true);
    return body;
  }
  out.setUint32(TSC_INFO_RSP.TSC_FACTOR, TSC_FACTOR_GENOA, true);
  return body;
}

/**
 * MSG_CPUID_RSP for the decrypted MSG_CPUID_REQ `payload` (sev_mcmd.c case SNP_MSG_CPUID_REQ), as
 * long as the request (the firmware sets the response's MSG_SIZE to the request's): reserved
 * fields set or COUNT above 64 is STATUS INVALID_PARAM with COUNT 0 and no functions; otherwise
 * the request's functions run through sanitize_cpuid_list as a CPUID page's do (cpuid-page.ts),
 * COUNT says how many of them it checked (those of the standard and extended ranges), and STATUS
 * is INVALID_PARAM when one had to be corrected, with the corrected values in the response.
 */
function cpuidResponse(ctx: GuestRequestContext, payload: Uint8Array, msgSize: number): Uint8Array {
  const rsp = Buffer.alloc(Math.max(CPUID_RSP.BYTES, msgSize));
  const req = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const count = req.readUInt32LE(CPUID_REQ.COUNT);
  let status: number = SEV_RET.INVALID_PARAM;
  if (req.readUInt32LE(CPUID_REQ.RESERVED) === 0 && req.readBigUInt64LE(CPUID_REQ.RESERVED2) === 0n && count <= SNP_CPUID_COUNT_MAX) {
    rsp.set(req.subarray(CPUID_REQ.FUNCTIONS, CPUID_REQ.FUNCTIONS + count * CPUID_ENTRY_BYTES), CPUID_RSP.FUNCTIONS);
    const { checked, failed } = sanitizeCpuidList(rsp, count, (leaf, subleaf) => ctx.cpuid(leaf, subleaf));
    rsp.writeUInt32LE(checked, CPUID_RSP.COUNT);
    status = failed.length === 0 ? SEV_RET.SUCCESS : SEV_RET.INVALID_PARAM;
  }
  rsp.writeUInt32LE(status, CPUID_RSP.STATUS);
  return new Uint8Array(rsp.buffer, rsp.byteOffset, msgSize);
}

type Responder = (ctx: GuestRequestContext, payload: Uint8Array, vmpckIndex: number, msgSize: number) => Uint8Array;
/**
 * The requests this firmware serves, by MSG_TYPE: the highest MSG_VERSION it takes of each
 * (SNP_GMSG_MAX_MSG_VERSION_*) and its response (whose MSG_TYPE is the request's + 1).
 */
const SERVED_REQUESTS: ReadonlyMap<number, { maxVersion: number; respond: Responder }> = new Map<number, { maxVersion: number; respond: Responder }>([
  [MSG_TYPE.CPUID_REQ, { maxVersion: 1, respond: (ctx, payload, _vmpck, msgSize) => cpuidResponse(ctx, payload, msgSize) }],
  [MSG_TYPE.KEY_REQ, { maxVersion: 1, respond: keyResponse }],
  [MSG_TYPE.REPORT_REQ, { maxVersion: 1, respond: reportResponse }],
  [MSG_TYPE.TSC_INFO_REQ, { maxVersion: 1, respond: (_ctx, payload) => tscInfoResponse(payload) }],
]);
