// A guest's side of SNP guest messages, written here from the sources rather than taken from the
// model: the header layout of amd/AMD-ASPFW sev_rmp.h (snp_guest_message_header_t) and Linux's
// sev-guest driver (struct snp_guest_msg_hdr): AUTHTAG 0x00, MSG_SEQNO 0x20, ALGO 0x30,
// HDR_VERSION 0x31, HDR_SIZE 0x32, MSG_TYPE 0x34, MSG_VERSION 0x35, MSG_SIZE 0x36, MSG_VMPCK 0x3C,
// payload at 0x60; AES-256-GCM with IV = MSG_SEQNO (little-endian, zero-padded to 12 bytes), AAD =
// header bytes 0x30..0x5F, a 16-byte tag (Linux enc_payload/verify_and_dec_payload).
import { createCipheriv, createDecipheriv } from 'node:crypto';

export interface GuestMessageFields {
  seqno: bigint;
  type?: number;
  version?: number;
  vmpck?: number;
  algo?: number;
  hdrVersion?: number;
  hdrSize?: number;
  /** MSG_SIZE as written (default: the payload's length). */
  msgSize?: number;
}

const iv = (seqno: bigint) => {
  const b = Buffer.alloc(12);
  b.writeBigUInt64LE(seqno);
  return b;
};

/** A 4 KiB page holding `payload` sealed under `key` with the header `f` (MSG_REPORT_REQ version 1 by default). */
export function sealGuestMessage(key: Uint8Array, payload: Uint8Array, f: GuestMessageFields): Buffer {
  const page = Buffer.alloc(4096);
  page.writeBigUInt64LE(f.seqno, 0x20);
  page[0x30] = f.algo ?? 1;
  page[0x31] = f.hdrVersion ?? 1;
  page.writeUInt16LE(f.hdrSize ?? 0x60, 0x32);
  page[0x34] = f.type ?? 5;
  page[0x35] = f.version ?? 1;
  page.writeUInt16LE(f.msgSize ?? payload.length, 0x36);
  page[0x3c] = f.vmpck ?? 0;
  const cipher = createCipheriv('aes-256-gcm', key, iv(f.seqno));
  cipher.setAAD(page.subarray(0x30, 0x60));
  Buffer.concat([cipher.update(payload), cipher.final()]).copy(page, 0x60);
  cipher.getAuthTag().copy(page, 0);
  return page;
}

/** Opens a response page with `key`: its header fields and plaintext, or throws if the tag does not match. */
export function openGuestMessage(key: Uint8Array, page: Uint8Array) {
  const b = Buffer.from(page.buffer, page.byteOffset, page.byteLength);
  const seqno = b.readBigUInt64LE(0x20);
  const size = b.readUInt16LE(0x36);
  const decipher = createDecipheriv('aes-256-gcm', key, iv(seqno));
  decipher.setAAD(b.subarray(0x30, 0x60));
  decipher.setAuthTag(b.subarray(0, 16));
  const plain = Buffer.concat([decipher.update(b.subarray(0x60, 0x60 + size)), decipher.final()]);
  return { seqno, algo: b[0x30], hdrVersion: b[0x31], hdrSize: b.readUInt16LE(0x32), type: b[0x34], version: b[0x35], size, vmpck: b[0x3c], plain };
}

/** MSG_REPORT_REQ (snp_msg_report_req_t, 0x60 bytes): REPORT_DATA[64], VMPL, KEY_SEL (bits 1:0 of the u32 at 0x44). */
export function reportRequest(reportData: Uint8Array, vmpl = 0, keySelWord = 0): Buffer {
  const p = Buffer.alloc(0x60);
  p.set(reportData.subarray(0, 64), 0);
  p.writeUInt32LE(vmpl, 0x40);
  p.writeUInt32LE(keySelWord, 0x44);
  return p;
}

/** VMPCK `index` from a secrets page (Linux struct snp_secrets_page: vmpck0 at 0x20, 32 bytes each). */
export const vmpckFromSecrets = (secrets: Uint8Array, index: number) => secrets.slice(0x20 + 32 * index, 0x40 + 32 * index);

/**
 * MSG_KEY_REQ (snp_msg_key_req_t, 0x20 bytes): ROOT_KEY_SELECT bit 0 and KEY_SEL bits 2:1 of the
 * u32 at 0, GUEST_FIELD_SELECT u64 at 8, VMPL u32 at 0x10, GUEST_SVN u32 at 0x14, TCB_VERSION u64 at 0x18.
 */
export function keyRequest(f: { flags: number; fields?: bigint; vmpl?: number; guestSvn?: number; tcb?: bigint }): Buffer {
  const p = Buffer.alloc(0x20);
  p.writeUInt32LE(f.flags, 0);
  p.writeBigUInt64LE(f.fields ?? 0n, 8);
  p.writeUInt32LE(f.vmpl ?? 0, 0x10);
  p.writeUInt32LE(f.guestSvn ?? 0, 0x14);
  p.writeBigUInt64LE(f.tcb ?? 0n, 0x18);
  return p;
}
