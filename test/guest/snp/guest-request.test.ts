// The SNP Guest Request NAE (GHCB SW_EXITCODE 0x8000_0011), from a real guest through the honest
// VMM to the firmware model: what Linux's sev-guest driver does to get an attestation report. The
// VMM is KVM's snp_handle_guest_req (torvalds/linux arch/x86/kvm/svm/sev.c at 0097f9df); the
// firmware is AMD's snp_mcmd_guest_request (amd/AMD-ASPFW). The test seals and opens the messages
// itself (test/helpers/snp-guest-message.ts) with the VMPCK0 the guest's own secrets page holds.
import { describe, expect, it } from 'vitest';
import { openGuestMessage, reportRequest, sealGuestMessage, vmpckFromSecrets } from '../../helpers/snp-guest-message.js';
import { GHCB_GPA, REGISTER_GHCB, ghcbCall, privateIdentityWithGhcb, snpGuest } from '../../helpers/snp-guest.js';

const GUEST_REQUEST = 0x80000011n;
const EXT_GUEST_REQUEST = 0x80000012n;
const SECRETS = 0x5000n;
const RES = 0x3000n;          // private: the SW_EXITINFO1/2 answers the guest saw
const REQ = 0x40000n;         // shared pages (hypervisor-owned, mapped without the C-bit)
const RESP = 0x41000n;
const RESP2 = 0x42000n;
const REQ2 = 0x45000n;
const CERTS = 0x43000n;
const DATA = Uint8Array.from({ length: 64 }, (_, i) => 0x40 + i);

/** Asm: one guest request of `req` and `resp`, then SW_EXITINFO1/2 to RES + at, RES + at + 8 (clobbers r8). */
const request = (req: bigint, resp: bigint, at: number, ext?: { rax?: bigint; rbx?: bigint }) => `
  ${ghcbCall({ exitCode: ext ? EXT_GUEST_REQUEST : GUEST_REQUEST, info1: req, info2: resp, ...ext })}
  mov r8, [rdi+0x398]
  mov [${RES + BigInt(at)}], r8
  mov r8, [rdi+0x3a0]
  mov [${RES + BigInt(at) + 8n}], r8`;

function guest(main: string) {
  const g = snpGuest(`${REGISTER_GHCB}\n${main}\n hlt`, {
    mappings: [...privateIdentityWithGhcb(), { va: REQ, pa: REQ, size: 0x6000n, pageSize: 4096n }],
    launch: [[RES, 0x1000n]], secrets: SECRETS, instructionLimit: 1_000_000n,
  });
  const key = vmpckFromSecrets(g.vm.memory.read(SECRETS, 4096), 0);
  return { ...g, key, answers: (at: number) => [g.vm.memory.readU64(RES + BigInt(at)), g.vm.memory.readU64(RES + BigInt(at) + 8n)] };
}

describe('SNP guest request: an attestation report through KVM and the firmware', () => {
  it('the guest gets MSG_REPORT_RSP with its launch digest and REPORT_DATA; a replay is refused with AEAD_OFLOW', () => {
    const g = guest(`${request(REQ, RESP, 0)}\n${request(REQ, RESP2, 0x10)}`);
    g.vm.memory.write(REQ, sealGuestMessage(g.key, reportRequest(DATA), { seqno: 1n }));
    expect(g.run().outcome).toBe('done');
    // SW_EXITINFO1 = 0, SW_EXITINFO2 = SNP_GUEST_ERR(0, firmware status).
    expect(g.answers(0)).toEqual([0n, 0n]);
    const rsp = openGuestMessage(g.key, g.vm.memory.read(RESP, 4096));
    expect(rsp).toMatchObject({ seqno: 2n, type: 6, vmpck: 0 });
    const report = rsp.plain.subarray(0x20);
    expect([...report.subarray(0x50, 0x90)]).toEqual([...DATA]);
    expect(report.subarray(0x90, 0xc0).toString('hex')).toBe(g.digest);
    // The same request again (MSG_SEQNO 1, the count is now 2): the firmware refuses it, and KVM
    // still copies its whole response buffer, which holds the previous answer, to the new page.
    expect(g.answers(0x10)).toEqual([0n, 0x1dn]);
    expect(Buffer.from(g.vm.memory.read(RESP2, 4096)).equals(Buffer.from(g.vm.memory.read(RESP, 4096)))).toBe(true);
    expect(g.trace.ofType('guest-message').map((e) => e.status)).toEqual([0, 0x1d]);
  });

  it('GPAs not page aligned, or one page for both, are GHCB_ERR_MISSING_INPUT before the firmware is asked', () => {
    const g = guest(`${request(REQ + 8n, RESP, 0)}\n${request(REQ, RESP + 0x10n, 0x10)}\n${request(REQ, REQ, 0x20)}`);
    expect(g.run().outcome).toBe('done');
    for (const at of [0, 0x10, 0x20]) expect(g.answers(at), `answer ${at}`).toEqual([2n, 4n]);
    expect(g.trace.ofType('guest-message')).toEqual([]);
  });

  it('a private response page: KVM writes through the host mapping, the guest sees success and its page unchanged', () => {
    const g = guest(request(REQ, RES, 0x800));
    g.vm.memory.write(REQ, sealGuestMessage(g.key, reportRequest(DATA), { seqno: 1n }));
    g.vm.memory.write(RES + 0x100n, Uint8Array.of(0xa5));
    expect(g.run().outcome).toBe('done');
    expect(g.answers(0x800)).toEqual([0n, 0n]);
    expect(g.trace.ofType('guest-response-lost')).toHaveLength(1);
    expect(g.vm.memory.read(RES + 0x100n, 1)[0]).toBe(0xa5);
  });

  it('a request page outside guest RAM fails the exit (-EIO): the VM stops', () => {
    const g = guest(request(0x7fff000000n, RESP, 0));
    const outcome = g.run();
    expect(outcome).toMatchObject({ outcome: 'vmm-error' });
    expect(outcome.reason).toMatch(/not guest RAM/);
  });

  it('the Extended Guest Request: KVM with no certificates writes the empty table (24 zero bytes) at RAX when RBX > 0, then serves the request', () => {
    const g = guest(`${request(REQ, RESP, 0, { rax: CERTS, rbx: 1n })}\n${request(REQ2, RESP2, 0x10, { rax: CERTS + 0x1000n, rbx: 0n })}`);
    g.vm.memory.write(REQ, sealGuestMessage(g.key, reportRequest(DATA), { seqno: 1n }));
    g.vm.memory.write(REQ2, sealGuestMessage(g.key, reportRequest(DATA), { seqno: 3n }));
    g.vm.memory.write(CERTS, new Uint8Array(0x2000).fill(0xaa));
    expect(g.run().outcome).toBe('done');
    expect([g.answers(0), g.answers(0x10)]).toEqual([[0n, 0n], [0n, 0n]]);
    expect(openGuestMessage(g.key, g.vm.memory.read(RESP2, 4096)).seqno).toBe(4n);
    expect([...g.vm.memory.read(CERTS, 25)]).toEqual([...new Array(24).fill(0), 0xaa]);
    expect(g.vm.memory.read(CERTS + 0x1000n, 1)[0]).toBe(0xaa);  // RBX = 0: nothing written
  });

  it('an Extended Guest Request for a report without RAX and RBX, with RAX but not RBX, or with RAX not page aligned, is GHCB_ERR_INVALID_INPUT', () => {
    // KVM snp_handle_ext_guest_req: both RAX and RBX must be marked valid. The VMM's answer to the
    // second request marked RBX valid (sev_es_sync_to_ghcb), so the guest clears that bit (valid
    // bitmap bit 99: byte 0x3fc, bit 3) before the third, as Linux's vc_ghcb_invalidate clears them all.
    const clearRbxValid = `mov rdi, 0x${GHCB_GPA.toString(16)}\n  and byte ptr [rdi+0x3fc], 0xf7`;
    const g = guest(`${request(REQ, RESP, 0, {})}\n${request(REQ, RESP, 0x10, { rax: CERTS + 8n, rbx: 1n })}\n${clearRbxValid}\n${request(REQ, RESP, 0x20, { rax: CERTS })}`);
    g.vm.memory.write(REQ, sealGuestMessage(g.key, reportRequest(DATA), { seqno: 1n }));
    expect(g.run().outcome).toBe('done');
    expect([g.answers(0), g.answers(0x10), g.answers(0x20)]).toEqual([[2n, 5n], [2n, 5n], [2n, 5n]]);
    expect(g.trace.ofType('guest-message')).toEqual([]);
  });
});
