// The host's (C=0) view of SNP guest memory (src/platform/host-memory.ts through SnpVmmHandle):
// hypervisor-owned pages as written, assigned pages as their ciphertext (AMD APM Vol. 2 §15.34.5:
// a C=0 access to an encrypted page sees the encrypted bytes), writes to assigned pages refused
// (§15.36.10, an RMP violation) and nothing written outside guest RAM.
import { describe, expect, it } from 'vitest';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { HostAccessRefused } from '../../../src/platform/host-memory.js';
import { PAGE_4K } from '../../../src/platform/snp/rmp.js';

const MEMORY = 16n << 20n;
const HV = 0x400000n;            // hypervisor-owned
const GUEST = HV + PAGE_4K;       // assigned to the guest
const HV_AFTER = GUEST + PAGE_4K; // hypervisor-owned again

function setUp() {
  const p = SnpPlatform.create({ memoryBytes: MEMORY, countInstructions: false });
  const host = p.handle.hostMemory;
  host.write(HV, Buffer.alloc(0x1000, 0x11));
  host.write(HV_AFTER, Buffer.alloc(0x1000, 0x33));
  p.launchUpdateRange(GUEST, PAGE_4K); // assigned, validated: the guest's page from now on
  p.machine.memory.write(GUEST, Buffer.alloc(0x1000, 0x22)); // the guest's plaintext
  return { p, host };
}

describe('host reads across page boundaries', () => {
  it('a read spanning a host page, a guest page and a host page is each page\'s own view, byte for byte', () => {
    const { p, host } = setUp();
    const cipher = Buffer.from(host.read(GUEST, 0x1000));
    expect(cipher.equals(Buffer.alloc(0x1000, 0x22))).toBe(false); // not the plaintext
    const span = Buffer.from(host.read(HV + 0xff8n, 0x1010));
    expect(span.subarray(0, 8).equals(Buffer.alloc(8, 0x11))).toBe(true);
    expect(span.subarray(8, 0x1008).equals(cipher)).toBe(true);
    expect(span.subarray(0x1008).equals(Buffer.alloc(8, 0x33))).toBe(true);
    // Ending inside the guest page: the host page's tail, then the guest page's head.
    const head = Buffer.from(host.read(HV + 0xff8n, 0x10));
    expect(head.subarray(8).equals(cipher.subarray(0, 8))).toBe(true);
    // Starting inside the guest page: its tail, then the host page after it.
    const tail = Buffer.from(host.read(GUEST + 0xffcn, 8));
    expect(tail.subarray(0, 4).equals(cipher.subarray(0xffc))).toBe(true);
    expect(tail.subarray(4).equals(Buffer.alloc(4, 0x33))).toBe(true);
    p.machine.close();
  });

  it('SnpPlatform.hostRead from inside a page across the next ones gives every byte: the same bytes as the page-by-page view', () => {
    const { p, host } = setUp();
    for (const [gpa, length] of [[HV + 0xff8n, 0x10], [GUEST + 0xffcn, 8], [HV + 0x800n, 0x1900]] as const) {
      expect(Buffer.from(p.hostRead(gpa, length)).equals(Buffer.from(host.read(gpa, length)))).toBe(true);
    }
    p.machine.close();
  });
});

describe('host writes', () => {
  it('typed reads are read() decoded, across a page boundary too, and each keeps its value after the next', () => {
    const { p, host } = setUp();
    host.write(HV + 0xffcn, Buffer.from([1, 2, 3, 4]));
    const across = host.read(HV + 0xffcn, 8);
    const u64 = host.readU64(HV + 0xffcn);
    expect(u64).toBe(Buffer.from(across).readBigUInt64LE());
    expect(u64 & 0xffffffffn).toBe(0x04030201n); // the host page's bytes, then the guest page's ciphertext
    expect([host.readU8(HV + 0xffdn), host.readU16(HV + 0xffen), host.readU32(GUEST)]).toEqual([2, 0x0403, Buffer.from(host.read(GUEST, 4)).readUInt32LE()]);
    const first = host.readU64(HV), second = host.readU64(GUEST);
    expect([first, second]).toEqual([0x1111111111111111n, Buffer.from(host.read(GUEST, 8)).readBigUInt64LE()]);
    expect(p.machine.memory.readU32(GUEST)).toBe(0x22222222); // the VM's own view: the plaintext
    expect(() => host.readU64(MEMORY - 4n)).toThrow(RangeError);
    p.machine.close();
  });

  it('a write that reaches an assigned page is refused at that page, and writes nothing, not even its host part', () => {
    const { p, host } = setUp();
    let error: unknown;
    try {
      host.write(HV + 0xff0n, Buffer.alloc(0x20, 0xee));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(HostAccessRefused);
    expect((error as HostAccessRefused).gpa).toBe(GUEST);
    expect(String(error)).toMatch(/^HostAccessRefused: host write refused: /);
    expect(Buffer.from(p.machine.memory.read(HV + 0xff0n, 0x10)).equals(Buffer.alloc(0x10, 0x11))).toBe(true);
    expect(Buffer.from(p.machine.memory.read(GUEST, 0x10)).equals(Buffer.alloc(0x10, 0x22))).toBe(true);
    p.machine.close();
  });

  it('tryWrite is write() that returns the refusal: the same message, nothing written; an allowed write is made and returns undefined', () => {
    const { p, host } = setUp();
    let thrown: HostAccessRefused | undefined;
    try {
      host.write(HV + 0xff0n, Buffer.alloc(0x20, 0xee));
    } catch (err) {
      thrown = err as HostAccessRefused;
    }
    expect(host.tryWrite(HV + 0xff0n, Buffer.alloc(0x20, 0xee))).toBe(thrown!.message);
    expect(thrown!.message).toContain(`at 0x${GUEST.toString(16)}`);
    // Whose page it is: the guest's ASID, or the firmware's (ASID 0: APM Vol. 2 §15.36.3, the RMP's
    // ASID 0 with Assigned set is a firmware page).
    expect(thrown!.message).toContain(`RMP-protected (assigned to ASID ${p.asid})`);
    expect(p.handle.rmpUpdate(HV_AFTER, { assigned: true, pageSize: '4k', gpa: 0n, asid: 0 }).rc).toBe(0);
    expect(host.tryWrite(HV_AFTER, Buffer.alloc(8, 0xdd))).toContain('RMP-protected (firmware page)');
    expect(Buffer.from(p.machine.memory.read(HV + 0xff0n, 0x10)).equals(Buffer.alloc(0x10, 0x11))).toBe(true);
    expect(Buffer.from(p.machine.memory.read(GUEST, 0x10)).equals(Buffer.alloc(0x10, 0x22))).toBe(true);
    expect(host.tryWrite(HV + 0x10n, Buffer.alloc(0x10, 0xdd))).toBeUndefined();
    expect(Buffer.from(p.machine.memory.read(HV + 0x10n, 0x10)).equals(Buffer.alloc(0x10, 0xdd))).toBe(true);
    expect(() => host.tryWrite(MEMORY - 4n, Buffer.alloc(8, 0x55))).toThrow(RangeError);
    p.machine.close();
  });

  it('fill writes the byte, zero by default, is refused at an assigned page with nothing written, and a write or fill of nothing is no error', () => {
    const { p, host } = setUp();
    host.fill(HV + 0x10n, 0x10n);
    host.fill(HV + 0x20n, 0x10n, 0x77);
    expect(Buffer.from(p.machine.memory.read(HV, 0x40))).toEqual(Buffer.concat([Buffer.alloc(0x10, 0x11), Buffer.alloc(0x10, 0), Buffer.alloc(0x10, 0x77), Buffer.alloc(0x10, 0x11)]));
    expect(() => host.fill(HV + 0xff0n, 0x20n, 0xee)).toThrow(HostAccessRefused);
    expect(Buffer.from(p.machine.memory.read(HV + 0xff0n, 0x10))).toEqual(Buffer.alloc(0x10, 0x11));
    expect(Buffer.from(p.machine.memory.read(GUEST, 0x10))).toEqual(Buffer.alloc(0x10, 0x22));
    // An empty range inside RAM is not outside it.
    host.write(HV, new Uint8Array(0));
    expect(host.tryWrite(HV, new Uint8Array(0))).toBeUndefined();
    host.fill(HV, 0n, 0xee);
    expect(host.readU8(HV)).toBe(0x11);
    // Guest-physical page 0 is as much the host's as any other hypervisor-owned page.
    host.write(0n, Buffer.from([1, 2, 3, 4]));
    expect(Buffer.from(host.read(0n, 4))).toEqual(Buffer.from([1, 2, 3, 4]));
    p.machine.close();
  });

  // APM Vol. 2 §15.34.1: a guest's (C=1) read is its key's decryption of what DRAM holds, and
  // RMPUPDATE writes the RMP, not memory: a page the host wrote (with any write: write, tryWrite,
  // fill, one byte, the second page of a write across a boundary) reads in the guest, once
  // assigned to it, as the decryption of the host's bytes, not as them.
  it('every page any host write reaches holds DRAM bytes, which the guest reads decrypted once the page is assigned to it', () => {
    const { p, host } = setUp();
    const A = 0x500000n, B = A + PAGE_4K, C = B + PAGE_4K, D = C + PAGE_4K, E = D + PAGE_4K, F = E + PAGE_4K, G = F + PAGE_4K, H = G + PAGE_4K;
    host.write(A + 0xff0n, Buffer.alloc(0x20, 0x42));           // A's tail and B's head
    expect(host.tryWrite(C, Buffer.alloc(0x10, 0x43))).toBeUndefined();
    host.fill(D, 0x10n, 0x44);
    host.write(E + 0x10n, Buffer.from([0x45]));
    host.write(F + 0xfffn, Buffer.from([0x46, 0x46]));           // F's last byte and G's first
    // A write or fill of nothing reaches no page, wherever it starts.
    host.write(H + 0x10n, new Uint8Array(0));
    host.fill(H + 0x20n, 0n, 0x47);
    const written = [A, B, C, D, E, F, G];
    const hostView = [...written, H].map((page) => Buffer.from(p.machine.memory.read(page, 0x1000)));
    for (const page of [...written, H]) expect(p.rmpUpdate(page, { assigned: true, pageSize: '4k', gpa: page, asid: p.asid }).rc).toBe(0);
    [...written, H].forEach((page, i) => expect([page, Buffer.from(p.machine.memory.read(page, 0x1000)).equals(hostView[i]!)]).toEqual([page, page === H]));
    p.machine.close();
  });

  it('a write past the end of guest RAM, or at a negative GPA, is a RangeError and writes nothing', () => {
    const { p, host } = setUp();
    const last = MEMORY - PAGE_4K;
    host.write(last, Buffer.alloc(0x1000, 0x44));
    expect(() => host.write(MEMORY - 4n, Buffer.alloc(8, 0x55))).toThrow(RangeError);
    expect(() => host.fill(MEMORY - 4n, 8n, 0x55)).toThrow(`guest-physical range 0x${(MEMORY - 4n).toString(16)}+0x8 is outside guest RAM`);
    expect(() => host.fill(-0x1000n, 0x10n, 0x55)).toThrow(RangeError);
    expect(() => host.write(-0x1000n, Buffer.alloc(0x10, 0x55))).toThrow(/is outside guest RAM/);
    expect(() => host.write(MEMORY - 0x10n, Buffer.alloc(0x20, 0x55))).toThrow(`guest-physical range 0x${(MEMORY - 0x10n).toString(16)}+0x20 is outside guest RAM`);
    expect(Buffer.from(p.machine.memory.read(MEMORY - 4n, 4)).equals(Buffer.alloc(4, 0x44))).toBe(true);
    expect(host.size).toBe(MEMORY);
    // tryWrite too, even where its first page is one the hardware refuses (src/platform/host-memory.ts: a range outside RAM still throws).
    expect(p.rmpUpdate(last, { assigned: true, pageSize: '4k', gpa: last, asid: p.asid }).rc).toBe(0);
    expect(() => host.tryWrite(MEMORY - 4n, Buffer.alloc(8, 0x55))).toThrow(RangeError);
    p.machine.close();
  });
});

// The hypervisor may inject any vector (APM Vol. 2 §15.20, EVENTINJ.VECTOR is 8 bits), and
// nothing else: the handle refuses what no VMCB field can hold instead of passing it on.
describe('event injection through the VMM handle', () => {
  it('takes vectors 0 to 255 and refuses anything else with a RangeError', () => {
    const { p } = setUp();
    for (const bad of [-1, 256, 1.5, Number.NaN]) expect(() => p.handle.inject(bad), String(bad)).toThrow(new RangeError(`vector must be 0..255, not ${bad}`));
    for (const ok of [0, 255]) expect(() => p.handle.inject(ok), String(ok)).not.toThrow();
    p.machine.close();
  });
});
