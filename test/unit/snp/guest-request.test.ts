// SNP_GUEST_REQUEST as the firmware serves it, checked against AMD's own firmware
// (amd/AMD-ASPFW sev_mcmd.c snp_mcmd_guest_request, sev_rmp.h) with messages this test seals
// itself (test/helpers/snp-guest-message.ts) under the VMPCKs the guest's secrets page holds.
import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { keyRequest, openGuestMessage, reportRequest, sealGuestMessage, vmpckFromSecrets } from '../../helpers/snp-guest-message.js';

const SECRETS = 0x6000n;
const CODE = 0x10000n;
// psp-sev.h sev_ret_code
const SUCCESS = 0, INVALID_GUEST_STATE = 2, BAD_MEASUREMENT = 0xb, INVALID_PARAM = 0x16, AEAD_OFLOW = 0x1d, INVALID_KEY = 0x27;

let open: Machine[] = [];
afterEach(() => {
  for (const vm of open) vm.close();
  open = [];
});

/** A launched guest with a secrets page (and one code page measured), finished unless `finish` is false; `keySeed` names the VM. */
function launched(finish = true, keySeed = 7n) {
  const vm = new Machine({ memoryBytes: 16n << 20n });
  open.push(vm);
  const p = new SnpPlatform(vm, { keySeed });
  p.rmpUpdate(SECRETS, { assigned: true, pageSize: '4k', immutable: true, gpa: SECRETS, asid: p.asid });
  expect(p.launchUpdatePage(SECRETS, 'SECRETS').rc).toBe(0);
  p.launchUpdateRange(CODE, 0x1000n, 'NORMAL');
  const digest = finish ? p.launchFinish() : '';
  const secrets = vm.memory.read(SECRETS, 4096);
  return { p, digest, key: (i: number) => vmpckFromSecrets(secrets, i) };
}

const DATA = Uint8Array.from({ length: 64 }, (_, i) => i + 1);

/** Sends `request`; returns the status and the response page (pre-filled with 0xEE to see what was written). */
function send(p: SnpPlatform, request: Uint8Array) {
  const response = new Uint8Array(4096).fill(0xee);
  const status = p.guestRequest(request, response);
  return { status, response };
}

describe('SNP_GUEST_REQUEST: MSG_REPORT_REQ', () => {
  it('answers MSG_SEQNO + 1 with MSG_REPORT_RSP under the same VMPCK, holding the launch digest and REPORT_DATA', () => {
    const { p, digest, key } = launched();
    const { status, response } = send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n }));
    expect(status).toBe(SUCCESS);
    const rsp = openGuestMessage(key(0), response);
    expect(rsp).toMatchObject({ seqno: 2n, algo: 1, hdrVersion: 1, hdrSize: 0x60, type: 6, version: 1, size: 0x4c0, vmpck: 0 });
    // Only the header and the message are written (hdr_size + msg_size bytes).
    expect(response[0x60 + 0x4c0]).toBe(0xee);
    const body = rsp.plain;
    expect(body.readUInt32LE(0)).toBe(SUCCESS);        // STATUS
    expect(body.readUInt32LE(4)).toBe(0x4a0);          // REPORT_SIZE
    const report = body.subarray(0x20);
    expect(report.readUInt32LE(0x00)).toBe(2);         // VERSION (SNP_GMSG_MAX_REPORT_VERSION)
    expect(report.readBigUInt64LE(0x08)).toBe(0x30000n); // POLICY
    expect(report.readUInt32LE(0x30)).toBe(0);         // VMPL
    expect(report.readUInt32LE(0x34)).toBe(1);         // SIGNATURE_ALGO: ECDSA P-384 with SHA-384
    // FLAGS: MASK_CHIP_KEY, SIGNING_KEY = 7 (none): nothing signs, the signature stays zero.
    expect(report.readUInt32LE(0x48)).toBe((1 << 1) | (7 << 2));
    expect([...report.subarray(0x50, 0x90)]).toEqual([...DATA]);
    expect(report.subarray(0x90, 0xc0).toString('hex')).toBe(digest);
    expect(report.subarray(0x140, 0x160).every((b) => b === 0)).toBe(false);  // REPORT_ID, drawn at launch
    expect(report.subarray(0x160, 0x180).every((b) => b === 0xff)).toBe(true); // REPORT_ID_MA: no migration agent
    expect(report.subarray(0x1a0, 0x1e0).every((b) => b === 0)).toBe(true);   // CHIP_ID masked
    expect(report.subarray(0x2a0, 0x4a0).every((b) => b === 0)).toBe(true);   // SIGNATURE
    // CURRENT_TCB, REPORTED_TCB, COMMITTED_TCB and LAUNCH_TCB: one TCB, the one key requests are
    // bounded by (boot loader 7, SNP 0x16, microcode 0x48; see MSG_KEY_REQ below).
    for (const at of [0x38, 0x180, 0x1e0, 0x1f0]) expect(report.readBigUInt64LE(at), `TCB at 0x${at.toString(16)}`).toBe(0x4816000000000007n);
    // CURRENT_BUILD and COMMITTED_BUILD: BUILD, API minor, API major, a reserved byte (the model's firmware: API 1.55, build 0).
    for (const at of [0x1e8, 0x1ec]) expect([...report.subarray(at, at + 4)], `build at 0x${at.toString(16)}`).toEqual([0, 55, 1, 0]);
  });

  it('REPORT_ID names the guest: the same for every report of one VM, another for a VM launched with another key seed', () => {
    const reportId = (vm: ReturnType<typeof launched>) => {
      const r = send(vm.p, sealGuestMessage(vm.key(0), reportRequest(DATA), { seqno: 1n }));
      expect(r.status).toBe(SUCCESS);
      return openGuestMessage(vm.key(0), r.response).plain.subarray(0x20 + 0x140, 0x20 + 0x160).toString('hex');
    };
    const first = reportId(launched());
    expect(reportId(launched())).toBe(first);
    expect(reportId(launched(true, 8n))).not.toBe(first);
  });

  it('counts per VMPCK: the next request must carry MSG_SEQNO + 2; a replay or a skip is AEAD_OFLOW with nothing written', () => {
    const { p, key } = launched();
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n })).status).toBe(SUCCESS);
    for (const seqno of [1n, 2n, 5n]) {
      const r = send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno }));
      expect(r.status, `seqno ${seqno}`).toBe(AEAD_OFLOW);
      expect(r.response.every((b) => b === 0xee)).toBe(true);
    }
    const next = send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 3n }));
    expect(next.status).toBe(SUCCESS);
    expect(openGuestMessage(key(0), next.response).seqno).toBe(4n);
    // VMPCK1 has a count of its own, and a report it asks for may say VMPL 1 (not 0).
    const v1 = send(p, sealGuestMessage(key(1), reportRequest(DATA, 1), { seqno: 1n, vmpck: 1 }));
    expect(v1.status).toBe(SUCCESS);
    const rsp = openGuestMessage(key(1), v1.response);
    expect(rsp.vmpck).toBe(1);
    expect(rsp.plain.subarray(0x20).readUInt32LE(0x30)).toBe(1);
  });

  it('a message the host changed, or sealed with another VMPCK than MSG_VMPCK names, is BAD_MEASUREMENT and does not count', () => {
    const { p, key } = launched();
    const good = sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n });
    for (const at of [0x05, 0x3d, 0x70]) {  // tag, AAD (reserved header byte), ciphertext
      const bad = Buffer.from(good);
      bad[at]! ^= 1;
      expect(send(p, bad).status, `byte 0x${at.toString(16)}`).toBe(BAD_MEASUREMENT);
    }
    expect(send(p, sealGuestMessage(key(1), reportRequest(DATA), { seqno: 1n, vmpck: 0 })).status).toBe(BAD_MEASUREMENT);
    expect(send(p, good).status).toBe(SUCCESS);
  });

  it('header checks come first: HDR_VERSION 1, HDR_SIZE 0x60, ALGO 1, MSG_SIZE a non-zero multiple of 16 within the page, MSG_VMPCK 0-3', () => {
    const { p, key } = launched();
    const cases: Array<[string, Parameters<typeof sealGuestMessage>[2]]> = [
      // sev_mcmd.c: hdr_version != 1 is refused, below as above.
      ['hdr version 0', { seqno: 1n, hdrVersion: 0 }], ['hdr version 2', { seqno: 1n, hdrVersion: 2 }], ['hdr size 0x61', { seqno: 1n, hdrSize: 0x61 }], ['algo 0', { seqno: 1n, algo: 0 }],
      ['msg size 0', { seqno: 1n, msgSize: 0 }], ['msg size 0x58', { seqno: 1n, msgSize: 0x58 }], ['msg size 0xfb0', { seqno: 1n, msgSize: 0xfb0 }],
      ['vmpck 4', { seqno: 1n, vmpck: 4 }],
    ];
    for (const [name, f] of cases) expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), f)).status, name).toBe(INVALID_PARAM);
    // MSG_VERSION is checked after the sequence number: a bad version with a stale MSG_SEQNO is AEAD_OFLOW.
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 9n, version: 2 })).status).toBe(AEAD_OFLOW);
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n, version: 2 })).status).toBe(INVALID_PARAM);
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n, version: 0 })).status).toBe(INVALID_PARAM);
    // None of them counted.
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n })).status).toBe(SUCCESS);
  });

  it('a request the firmware refuses inside the message is a valid response with STATUS set, and it counts', () => {
    const { p, key } = launched();
    let seqno = 1n;
    const status = (payload: Uint8Array, vmpck = 0) => {
      const r = send(p, sealGuestMessage(key(vmpck), payload, { seqno, vmpck }));
      expect(r.status).toBe(SUCCESS);
      const rsp = openGuestMessage(key(vmpck), r.response);
      expect(rsp.seqno).toBe(seqno + 1n);
      seqno += 2n;
      return { status: rsp.plain.readUInt32LE(0), report: rsp.plain.subarray(0x20) };
    };
    const reserved = reportRequest(DATA);
    reserved[0x50] = 1;
    expect(status(reserved).status).toBe(INVALID_PARAM);
    expect(status(reportRequest(DATA, 0, 1 << 2)).status).toBe(INVALID_PARAM);  // a reserved bit next to KEY_SEL
    expect(status(reportRequest(DATA, 0, 3)).status).toBe(INVALID_KEY);         // KEY_SEL reserved
    expect(status(reportRequest(DATA, 0, 2)).status).toBe(INVALID_KEY);         // VLEK only: none installed
    expect(status(reportRequest(DATA, 0, 1)).status).toBe(SUCCESS);             // VCEK only
    expect(status(reportRequest(DATA, 0)).status).toBe(SUCCESS);
    // A more privileged VMPL than the VMPCK's is refused, and the report is left zero; a VMPL above 3 is copied as it is.
    seqno = 1n;
    const up = status(reportRequest(DATA, 0), 2);
    expect(up.status).toBe(INVALID_PARAM);
    expect(up.report.every((b) => b === 0)).toBe(true);
    // One level more privileged is refused too (report_req->vmpl < msg_vmpck); the VMPCK's own level is not.
    expect(status(reportRequest(DATA, 1), 2).status).toBe(INVALID_PARAM);
    expect(status(reportRequest(DATA, 2), 2).status).toBe(SUCCESS);
    const odd = status(reportRequest(DATA, 9), 2);
    expect([odd.status, odd.report.readUInt32LE(0x30)]).toEqual([SUCCESS, 9]);
  });

  it('is refused before SNP_LAUNCH_FINISH (the guest is not RUNNING)', () => {
    const { p, key } = launched(false);
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n })).status).toBe(INVALID_GUEST_STATE);
  });

  it('a count that one more request and its response would overflow (UINT64_MAX - 1) takes no request, AEAD_OFLOW with nothing written', () => {
    // sev_mcmd.c: "the max we store before an overflow is (UINT64_MAX-1)"; MSG_SEQNO UINT64_MAX is
    // otherwise the one the count asks for. The other VMPCKs' counts are not affected.
    const { p, key } = launched();
    const max = (1n << 64n) - 1n;
    const state = p.saveState();
    p.loadState({ ...state, guestMessageCounts: [max - 1n, max - 3n, 0n, 0n] });
    const r = send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: max }));
    expect(r.status).toBe(AEAD_OFLOW);
    expect(r.response.every((b) => b === 0xee)).toBe(true);
    const v1 = send(p, sealGuestMessage(key(1), reportRequest(DATA, 1), { seqno: max - 2n, vmpck: 1 }));
    expect(v1.status).toBe(SUCCESS);
    expect(openGuestMessage(key(1), v1.response).seqno).toBe(max - 1n);
  });

  it('the message counts are part of the whole-VM snapshot', () => {
    const { p, key } = launched();
    const state = p.saveState();
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n })).status).toBe(SUCCESS);
    p.loadState(state);
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n })).status).toBe(SUCCESS);
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n })).status).toBe(AEAD_OFLOW);
  });
});

// MSG_KEY_REQ (sev_mcmd.c case SNP_MSG_KEY_REQ): the key is nist_kdf (nist_kdf.c: HMAC-SHA-256 of
// i = 1 || "gmsg-keyreq" || 0 || snp_mix_data_t || L = 256, integers little-endian) under the root
// key. The platform masks the chip key, so only the VMRK may be the root; a guest context's VMRK is
// zero until a migration agent sets one.
describe('SNP_GUEST_REQUEST: MSG_KEY_REQ', () => {
  /** snp_mix_data_t (packed, 168 bytes) as the firmware fills it for a VMRK-rooted request with no ID block. */
  function mixData(f: { fields: bigint; vmpl: number; measurement?: Uint8Array; policy?: bigint; tcb?: bigint }): Buffer {
    const m = Buffer.alloc(168);
    m.writeUInt32LE(1, 0);                 // ROOT_KEY_SELECT = 1 (VMRK), IDBLOCK_KEY_SELECT = 0
    m.writeBigUInt64LE(f.fields, 8);       // GFS
    m.writeUInt32LE(f.vmpl, 16);
    if (f.tcb !== undefined) m.writeBigUInt64LE(f.tcb, 24);
    if (f.policy !== undefined) m.writeBigUInt64LE(f.policy, 32);
    if (f.measurement) m.set(f.measurement.subarray(0, 32), 72);
    return m;
  }
  const kdf = (mix: Buffer) => {
    const u32 = (v: number) => Buffer.from(Uint32Array.of(v).buffer);
    return createHmac('sha256', Buffer.alloc(32)).update(u32(1)).update('gmsg-keyreq').update(Buffer.of(0)).update(mix).update(u32(256)).digest();
  };

  /** Sends MSG_KEY_REQ `payload` (MSG_SEQNO `seqno`, VMPCK `vmpck`); returns STATUS and DERIVED_KEY of the MSG_KEY_RSP. */
  function keyOf(p: SnpPlatform, key: (i: number) => Uint8Array, payload: Uint8Array, seqno: bigint, vmpck = 0) {
    const r = send(p, sealGuestMessage(key(vmpck), payload, { seqno, type: 3, vmpck }));
    expect(r.status).toBe(SUCCESS);
    const rsp = openGuestMessage(key(vmpck), r.response);
    expect(rsp).toMatchObject({ seqno: seqno + 1n, type: 4, version: 1, size: 0x40 });
    return { status: rsp.plain.readUInt32LE(0), derived: rsp.plain.subarray(0x20, 0x40) };
  }

  it('derives from the VMRK what the firmware derives: the mix data with the fields GUEST_FIELD_SELECT names', () => {
    const { p, digest, key } = launched();
    const plain = keyOf(p, key, keyRequest({ flags: 1 }), 1n);
    expect(plain.status).toBe(SUCCESS);
    expect(plain.derived.equals(kdf(mixData({ fields: 0n, vmpl: 0 })))).toBe(true);
    // Policy (bit 0), measurement (bit 3), TCB_VERSION (bit 5), at VMPL 2 asked through VMPCK 1.
    const tcb = 0x4810000000000005n;  // not above the committed TCB (boot loader 7, SNP 0x16, microcode 0x48)
    const mixed = keyOf(p, key, keyRequest({ flags: 1, fields: 0x29n, vmpl: 2, tcb }), 1n, 1);
    expect(mixed.status).toBe(SUCCESS);
    expect(mixed.derived.equals(kdf(mixData({ fields: 0x29n, vmpl: 2, measurement: Buffer.from(digest, 'hex'), policy: 0x30000n, tcb })))).toBe(true);
    expect(mixed.derived.equals(plain.derived)).toBe(false);
    // Each field on its own mixes in only itself.
    const measured = keyOf(p, key, keyRequest({ flags: 1, fields: 0x8n, vmpl: 2 }), 3n, 1);
    expect(measured.derived.equals(kdf(mixData({ fields: 0x8n, vmpl: 2, measurement: Buffer.from(digest, 'hex') })))).toBe(true);
    const policy = keyOf(p, key, keyRequest({ flags: 1, fields: 0x1n, vmpl: 2 }), 5n, 1);
    expect(policy.derived.equals(kdf(mixData({ fields: 0x1n, vmpl: 2, policy: 0x30000n })))).toBe(true);
    // KEY_SEL (bits 2:1) only picks the chip key (root_key_select 0); with the VMRK as root it is
    // checked nowhere and mixed into nothing: the mix data's bits 2:1 are IDBLOCK_KEY_SELECT, 0 here.
    for (const [keySel, seqno] of [[1, 3n], [2, 5n], [3, 7n]] as const) {
      const r = keyOf(p, key, keyRequest({ flags: 1 | (keySel << 1) }), seqno);
      expect([r.status, r.derived.equals(plain.derived)], `KEY_SEL ${keySel}`).toEqual([SUCCESS, true]);
    }
  });

  it('refuses, as STATUS in a valid response: a VCEK root (chip key masked), reserved bits, a VMPL above the VMPCK\'s, unknown fields, a GUEST_SVN or TCB above the guest\'s', () => {
    const { p, key } = launched();
    let seqno = 1n;
    const status = (payload: Uint8Array) => {
      const s = keyOf(p, key, payload, seqno).status;
      seqno += 2n;
      return s;
    };
    expect(status(keyRequest({ flags: 0 }))).toBe(INVALID_KEY);
    expect(status(keyRequest({ flags: 1 | (1 << 3) }))).toBe(INVALID_PARAM);
    expect(status(keyRequest({ flags: 1, fields: 1n << 6n }))).toBe(INVALID_PARAM);
    expect(status(keyRequest({ flags: 1, fields: 1n << 4n, guestSvn: 1 }))).toBe(INVALID_PARAM);
    expect(status(keyRequest({ flags: 1, fields: 1n << 4n, guestSvn: 0 }))).toBe(SUCCESS);
    expect(status(keyRequest({ flags: 1, fields: 1n << 5n, tcb: 0x4816000000000008n }))).toBe(INVALID_PARAM);  // boot loader 8 > 7
    // Each field of TCB_VERSION on its own (boot loader, TEE, SNP, microcode), and each reserved byte.
    for (const tcb of [0x4816000000000107n, 0x4817000000000007n, 0x4916000000000007n]) {
      expect(status(keyRequest({ flags: 1, fields: 1n << 5n, tcb })), `tcb ${tcb.toString(16)}`).toBe(INVALID_PARAM);
    }
    for (const byte of [2, 3, 4, 5]) {
      expect(status(keyRequest({ flags: 1, fields: 1n << 5n, tcb: 0x4816000000000007n | (1n << BigInt(8 * byte)) })), `reserved byte ${byte}`).toBe(INVALID_PARAM);
    }
    // The u32 after the flags word is reserved too (snp_msg_key_req_t reserved2).
    const reserved2 = keyRequest({ flags: 1 });
    reserved2.writeUInt32LE(1, 4);
    expect(status(reserved2)).toBe(INVALID_PARAM);
    const v = keyOf(p, key, keyRequest({ flags: 1, vmpl: 0 }), 1n, 2);
    expect(v.status).toBe(INVALID_PARAM);
    expect(v.derived.every((b) => b === 0)).toBe(true);
    // One level more privileged than the VMPCK is refused as well (key_req->vmpl < msg_vmpck).
    expect(keyOf(p, key, keyRequest({ flags: 1, vmpl: 1 }), 3n, 2).status).toBe(INVALID_PARAM);
    expect(keyOf(p, key, keyRequest({ flags: 1, vmpl: 2 }), 5n, 2).status).toBe(SUCCESS);
  });
});

// MSG_TSC_INFO_REQ (sev_mcmd.c case SNP_MSG_TSC_INFO_REQ; snp_msg_tsc_info_rsp_t): 0x80 reserved
// bytes in, STATUS, GUEST_TSC_SCALE, GUEST_TSC_OFFSET and TSC_FACTOR out.
describe('SNP_GUEST_REQUEST: MSG_TSC_INFO_REQ', () => {
  it('answers scale 0 and offset 0 (no Secure TSC at launch) and Genoa\'s TSC_FACTOR 200; a reserved byte set is INVALID_PARAM', () => {
    const { p, key } = launched();
    const ask = (payload: Uint8Array, seqno: bigint) => {
      const r = send(p, sealGuestMessage(key(0), payload, { seqno, type: 0x11 }));
      expect(r.status).toBe(SUCCESS);
      const rsp = openGuestMessage(key(0), r.response);
      expect(rsp).toMatchObject({ seqno: seqno + 1n, type: 0x12, version: 1, size: 0x80 });
      return rsp.plain;
    };
    const ok = ask(Buffer.alloc(0x80), 1n);
    expect([ok.readUInt32LE(0), ok.readBigUInt64LE(8), ok.readBigUInt64LE(0x10), ok.readUInt32LE(0x18)]).toEqual([SUCCESS, 0n, 0n, 200]);
    const bad = Buffer.alloc(0x80);
    bad[0x7f] = 1;
    const refused = ask(bad, 3n);
    expect(refused.readUInt32LE(0)).toBe(INVALID_PARAM);
    expect(refused.readUInt32LE(0x18)).toBe(0);
  });
});

// MSG_CPUID_REQ (sev_mcmd.c case SNP_MSG_CPUID_REQ; layouts snp_msg_cpuid_req_t / _rsp_t in
// cpuid_lookup.h): the request's functions go through sanitize_cpuid_list, the CPUID page's check
// (cpuid_lookup.c), and come back corrected in a response as long as the request. The CPU's own
// values are the model's CPUID (sev-status.ts snpCpuid, with the platform's C-bit position).
describe('SNP_GUEST_REQUEST: MSG_CPUID_REQ', () => {
  interface Fn { eaxIn: number; ecxIn?: number; eax: number; ebx: number; ecx: number; edx: number; reserved?: bigint }
  /** COUNT, its two reserved fields, then 48-byte functions {EAX_IN, ECX_IN, XCR0_IN, XSS_IN, EAX..EDX, reserved}. */
  function cpuidRequest(fns: Fn[], header: { count?: number; reserved?: number; reserved2?: bigint } = {}): Buffer {
    const b = Buffer.alloc(16 + fns.length * 48);
    b.writeUInt32LE(header.count ?? fns.length, 0);
    b.writeUInt32LE(header.reserved ?? 0, 4);
    b.writeBigUInt64LE(header.reserved2 ?? 0n, 8);
    fns.forEach((f, i) => {
      const o = 16 + i * 48;
      b.writeUInt32LE(f.eaxIn >>> 0, o);
      b.writeUInt32LE(f.ecxIn ?? 0, o + 4);
      [f.eax, f.ebx, f.ecx, f.edx].forEach((v, k) => b.writeUInt32LE(v >>> 0, o + 24 + 4 * k));
      b.writeBigUInt64LE(f.reserved ?? 0n, o + 40);
    });
    return b;
  }
  const fnAt = (body: Buffer, i: number) => {
    const o = 16 + i * 48;
    return { eaxIn: body.readUInt32LE(o), regs: [0, 1, 2, 3].map((k) => body.readUInt32LE(o + 24 + 4 * k)), reserved: body.readBigUInt64LE(o + 40) };
  };
  function ask(payload: Buffer) {
    const { p, key } = launched();
    const r = send(p, sealGuestMessage(key(0), payload, { seqno: 1n, type: 1 }));
    expect(r.status).toBe(SUCCESS);
    const rsp = openGuestMessage(key(0), r.response);
    expect(rsp).toMatchObject({ seqno: 2n, type: 2, version: 1, size: payload.length });
    return { body: rsp.plain, cBit: p.cBit, response: r.response };
  }
  // Our CPU's values (snpCpuid): leaf 0 EAX = 0xd (the highest standard leaf), Fn8000_001F EAX =
  // 0x3b (SME, SEV, PageFlush, SEV-ES, SNP).
  const LEAF0 = { eax: 0xd, ebx: 0x68747541, ecx: 0x444d4163, edx: 0x69746e65 };

  it('gives back the functions the CPU agrees with: STATUS SUCCESS, COUNT the checked ones (not the hypervisor range), MSG_SIZE the request\'s', () => {
    const honest = cpuidRequest([
      { eaxIn: 0, ...LEAF0 },
      { eaxIn: 0x40000001, eax: 0x12345678, ebx: 1, ecx: 2, edx: 3 },  // outside both ranges: not checked, copied
      { eaxIn: 0x80000000, eax: 0x8000001f, ebx: 0, ecx: 0, edx: 0 },
    ]);
    const { body, response } = ask(honest);
    expect(body.readUInt32LE(0)).toBe(SUCCESS);
    expect(body.readUInt32LE(4)).toBe(2);
    expect(body.subarray(16)).toEqual(honest.subarray(16));
    expect(response[0x60 + honest.length]).toBe(0xee);  // only hdr_size + msg_size bytes are written
  });

  it('corrects what the CPU does not offer and says INVALID_PARAM: a feature mask beyond the CPU\'s, a leaf above its highest, an unlisted leaf not zero, a reserved field set', () => {
    const cBit = 51;  // the platform's default C-bit position
    const wrong: Fn[] = [
      { eaxIn: 0x8000001f, eax: 0xffffffff, ebx: cBit | (1 << 6) | (4 << 12), ecx: 1006, edx: 100 },  // 'mask' rule on EAX
      { eaxIn: 0, ...LEAF0, eax: 0x20 },                                                            // 'lessThan' rule on EAX
      { eaxIn: 7, eax: 0, ebx: 0x209, ecx: 0, edx: 0 },                                             // not listed: all zero
      { eaxIn: 0x80000000, eax: 0x8000001f, ebx: 0, ecx: 0, edx: 0, reserved: 5n },                 // right values, reserved set
    ];
    // Each one alone fails the request.
    for (const fn of wrong) expect(ask(cpuidRequest([fn])).body.readUInt32LE(0), `leaf 0x${fn.eaxIn.toString(16)}`).toBe(INVALID_PARAM);
    const { body, cBit: platformCBit } = ask(cpuidRequest(wrong));
    expect(platformCBit).toBe(cBit);
    expect(body.readUInt32LE(0)).toBe(INVALID_PARAM);
    expect(body.readUInt32LE(4)).toBe(4);
    expect(fnAt(body, 0).regs).toEqual([0x3b, cBit | (1 << 6) | (4 << 12), 1006, 100]);
    expect(fnAt(body, 1).regs).toEqual([0xd, LEAF0.ebx, LEAF0.ecx, LEAF0.edx]);
    expect(fnAt(body, 2)).toEqual({ eaxIn: 7, regs: [0, 0, 0, 0], reserved: 0n });
    expect(fnAt(body, 3)).toEqual({ eaxIn: 0x80000000, regs: [0x8000001f, 0, 0, 0], reserved: 5n });  // flagged, not cleared
  });

  it('a reserved header field or COUNT above 64 is STATUS INVALID_PARAM with COUNT 0 and no functions', () => {
    const fns = [{ eaxIn: 0, ...LEAF0 }];
    for (const header of [{ reserved: 1 }, { reserved2: 1n << 63n }, { count: 65 }]) {
      const { body } = ask(cpuidRequest(fns, header));
      expect(body.readUInt32LE(0), JSON.stringify(header, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}` : v))).toBe(INVALID_PARAM);
      expect(body.subarray(4).every((b) => b === 0)).toBe(true);
    }
  });

  it('a short request gets a response as short; a function past MSG_SIZE reads as zero, a leaf 0 with zero outputs', () => {
    const two = cpuidRequest([{ eaxIn: 0, ...LEAF0 }, { eaxIn: 0x80000000, eax: 0x8000001f, ebx: 0, ecx: 0, edx: 0 }]);
    const { body } = ask(two.subarray(0, 0x40));  // COUNT 2, but only the first function sent
    expect(body.length).toBe(0x40);
    expect(body.readUInt32LE(0)).toBe(SUCCESS);
    expect(body.readUInt32LE(4)).toBe(2);
    expect(fnAt(body, 0).regs).toEqual([LEAF0.eax, LEAF0.ebx, LEAF0.ecx, LEAF0.edx]);
  });

  it('MSG_VERSION above 1 fails the command (SNP_GMSG_MAX_MSG_VERSION_CPUID_REQ)', () => {
    const { p, key } = launched();
    const payload = cpuidRequest([{ eaxIn: 0, ...LEAF0 }]);
    expect(send(p, sealGuestMessage(key(0), payload, { seqno: 1n, type: 1, version: 2 })).status).toBe(INVALID_PARAM);
    expect(send(p, sealGuestMessage(key(0), payload, { seqno: 1n, type: 1 })).status).toBe(SUCCESS);
  });
});

describe('SNP_GUEST_REQUEST: the migration messages', () => {
  it('MSG_EXPORT_REQ, IMPORT, ABSORB, VMRK and ABSORB_NOMA (a migration agent\'s) fail the command, as an unknown type does, and do not count', () => {
    const { p, key } = launched();
    for (const type of [7, 9, 11, 13, 15, 0, 2, 0x13]) {
      expect(send(p, sealGuestMessage(key(0), Buffer.alloc(0x40), { seqno: 1n, type })).status, `type ${type}`).toBe(INVALID_PARAM);
    }
    expect(send(p, sealGuestMessage(key(0), reportRequest(DATA), { seqno: 1n })).status).toBe(SUCCESS);
  });
});
