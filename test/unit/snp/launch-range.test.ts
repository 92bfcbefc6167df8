// SnpPlatform.launchRange (KVM_SEV_SNP_LAUNCH_UPDATE over a range) against the page-by-page
// sequence it stands for (RMPUPDATE pre-guest, then SNP_LAUNCH_UPDATE, per page): the same launch
// digest, RMP entries, memory and page gate; one event pair with `pages` for a fresh range
// (trace schema 3), the per-page events otherwise.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { LaunchDigest, type LaunchPageType, type LaunchVmplPerms } from '../../../src/platform/snp/launch.js';

const PAGE = 0x1000n;
const BASE = 0x3fe000n; // straddles a 2 MiB boundary
const PAGES = 5;

function platform(): SnpPlatform {
  return new SnpPlatform(new Machine({ memoryBytes: 16n << 20n, countInstructions: false }));
}

function source(): Uint8Array {
  return Uint8Array.from({ length: PAGES * 4096 }, (_, i) => (i * 7 + (i >> 12)) & 0xff);
}

function pageByPage(p: SnpPlatform, type: LaunchPageType, bytes: Uint8Array | undefined, perms: LaunchVmplPerms): void {
  for (let i = 0; i < PAGES; i++) {
    const gpa = BASE + BigInt(i) * PAGE;
    expect(p.rmpUpdate(gpa, { assigned: true, pageSize: '4k', immutable: true, gpa, asid: p.asid }).rc).toBe(0);
    expect(p.launchUpdatePage(gpa, type, bytes?.subarray(i * 4096, (i + 1) * 4096), perms).rc).toBe(0);
  }
}

/** Everything the launch leaves behind that the guest or the digest can see. */
function observe(p: SnpPlatform) {
  const pages = Array.from({ length: PAGES + 2 }, (_, i) => BASE + BigInt(i - 1) * PAGE);
  return {
    digest: p.launchFinish(),
    rmp: pages.map((gpa) => p.rmp.lookup(gpa)),
    gate: pages.map((gpa) => [p.machine.gate.get('private', gpa), p.machine.gate.get('shared', gpa)]),
    memory: Buffer.from(p.machine.memory.read(BASE - PAGE, (PAGES + 2) * 4096)).toString('hex'),
  };
}

describe('SNP launchRange', () => {
  for (const [type, perms] of [['NORMAL', [0, 0, 0]], ['NORMAL', [0xf, 1, 0]], ['ZERO', [0, 0, 0]], ['UNMEASURED', [0, 0, 0]]] as const) {
    it(`a fresh ${type} range (VMPL perms ${perms.join(',')}) ends as the page-by-page launch, with one rmpupdate and one launch-update event`, () => {
      const a = platform(), b = platform();
      // Something already in memory: ZERO must clear it, UNMEASURED with a source overwrite it.
      for (const p of [a, b]) p.machine.memory.write(BASE, new Uint8Array(4096).fill(0xee));
      const r = a.launchRange(BASE, BigInt(PAGES) * PAGE, type, source(), perms);
      pageByPage(b, type, source(), perms);
      expect(r).toMatchObject({ rc: 0, result: 'SUCCESS', at: BASE + BigInt(PAGES - 1) * PAGE, op: 'launch-update' });
      expect(observe(a)).toEqual(observe(b));
      expect(a.trace.events.map((e) => [e.type, e.pages])).toEqual([['rmpupdate', PAGES], ['launch-update', PAGES], ['launch-finish', undefined]]);
      expect(a.trace.events[0]).toMatchObject({ spa: BASE, gpa: BASE, assigned: true, pageSize: '4k', immutable: true, state: 'hv-owned', result: 'SUCCESS' });
      expect(a.trace.events[1]).toMatchObject({ gpa: BASE, pageType: type, state: 'immutable', result: 'SUCCESS' });
      expect(b.trace.ofType('launch-update')).toHaveLength(PAGES);
    });
  }

  for (const type of ['NORMAL', 'UNMEASURED'] as const) {
    it(`a ${type} range given by its non-zero pages launches as the same bytes given whole; RAM under a page it leaves out reads zero`, () => {
      const bytes = source();
      bytes.fill(0, 0, 4096);
      bytes.fill(0, 3 * 4096, 4 * 4096);
      const pages = new Map<number, Uint8Array>([1, 2, 4].map((i) => [i * 4096, bytes.subarray(i * 4096, (i + 1) * 4096)]));
      const a = platform(), b = platform();
      for (const p of [a, b]) p.machine.memory.write(BASE, new Uint8Array(4096).fill(0xee));
      const r = a.launchRange(BASE, BigInt(PAGES) * PAGE, type, { byteLength: PAGES * 4096, pages });
      expect(r).toEqual(b.launchRange(BASE, BigInt(PAGES) * PAGE, type, bytes));
      expect(a.trace.events).toEqual(b.trace.events);
      expect(Buffer.from(a.machine.memory.read(BASE, PAGES * 4096)).equals(bytes)).toBe(true);
      expect(observe(a)).toEqual(observe(b));
    });
  }

  it('a NORMAL range without a source measures and keeps what memory holds', () => {
    const a = platform(), b = platform();
    for (const p of [a, b]) p.machine.memory.write(BASE, source());
    a.launchRange(BASE, BigInt(PAGES) * PAGE, 'NORMAL');
    pageByPage(b, 'NORMAL', undefined, [0, 0, 0]);
    expect(observe(a)).toEqual(observe(b));
  });

  // SNP_LAUNCH_UPDATE of a VMSA page sets the page's RMP VMSA bit (AMD-ASPFW sev_mcmd.c
  // snp_mcmd_launch_update: "Set the RMP.VMSA of the page to 1h") and measures the page's bytes,
  // type VMSA (Firmware ABI §8.17 PAGE_INFO), whichever way the range is launched.
  it('a VMSA range: every page measured by its bytes as type VMSA and given the RMP VMSA bit, as page by page', () => {
    const a = platform(), b = platform();
    expect(a.launchRange(BASE, BigInt(PAGES) * PAGE, 'VMSA', source())).toMatchObject({ rc: 0, op: 'launch-update', at: BASE + BigInt(PAGES - 1) * PAGE });
    pageByPage(b, 'VMSA', source(), [0, 0, 0]);
    const expected = new LaunchDigest();
    for (let i = 0; i < PAGES; i++) expected.extend('VMSA', BASE + BigInt(i) * PAGE, source().subarray(i * 4096, (i + 1) * 4096));
    expect(a.launch.hex).toBe(expected.hex);
    for (let i = 0; i < PAGES; i++) expect(a.rmp.lookup(BASE + BigInt(i) * PAGE)).toMatchObject({ vmsa: true, validated: true, immutable: false });
    expect(observe(a)).toEqual(observe(b));
  });

  // The firmware encrypts a launched page in place (Firmware ABI §8.17), and RMPUPDATE writes the
  // RMP, not memory (APM Vol. 3 "RMPUPDATE"): DRAM keeps that ciphertext under the guest's key at
  // this address (APM Vol. 2 §15.34.1). A page the guest rescinds (PVALIDATE, Validated clear) and
  // the host takes back unwritten and assigns again reads as launched.
  it('a page the host wrote before its launch, rescinded, taken back unwritten and assigned again, reads as launched', () => {
    const p = platform();
    const bytes = source().subarray(0, 4096);
    p.handle.hostMemory.write(BASE, bytes);
    expect(p.launchRange(BASE, PAGE, 'NORMAL')).toMatchObject({ rc: 0 });
    expect(Buffer.from(p.machine.memory.read(BASE, 4096)).equals(bytes)).toBe(true);
    p.rmp.setValidated(BASE, false);
    expect(p.rmpUpdate(BASE, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 }).rc).toBe(0);
    expect(p.rmpUpdate(BASE, { assigned: true, pageSize: '4k', gpa: BASE, asid: p.asid }).rc).toBe(0);
    expect(Buffer.from(p.machine.memory.read(BASE, 4096)).equals(bytes)).toBe(true);
  });

  it('a one-page range has the per-page events exactly (no pages field)', () => {
    const a = platform(), b = platform();
    a.launchRange(BASE, PAGE, 'ZERO');
    b.rmpUpdate(BASE, { assigned: true, pageSize: '4k', immutable: true, gpa: BASE, asid: b.asid });
    b.launchUpdatePage(BASE, 'ZERO');
    expect(a.trace.events).toEqual(b.trace.events);
    expect(a.trace.sha256()).toBe(b.trace.sha256());
  });

  it('a range over a page the host changed first: per-page events, stopping at the page that fails', () => {
    const p = platform();
    const third = BASE + 2n * PAGE;
    p.rmpUpdate(third, { assigned: true, pageSize: '4k', immutable: true, gpa: third, asid: p.asid });
    const r = p.launchRange(BASE, BigInt(PAGES) * PAGE, 'NORMAL', source());
    expect(r).toMatchObject({ rc: 2, result: 'FAIL_PERMISSION', at: third, op: 'rmpupdate' });
    expect(p.trace.events.slice(1).map((e) => [e.type, e.spa ?? e.gpa, e.result, e.pages])).toEqual([
      ['rmpupdate', BASE, 'SUCCESS', undefined], ['launch-update', BASE, 'SUCCESS', undefined],
      ['rmpupdate', BASE + PAGE, 'SUCCESS', undefined], ['launch-update', BASE + PAGE, 'SUCCESS', undefined],
      ['rmpupdate', third, 'FAIL_PERMISSION', undefined],
    ]);
    expect(p.rmp.lookup(BASE + PAGE).validated).toBe(true);
    expect(p.rmp.lookup(BASE + 3n * PAGE).assigned).toBe(false);
  });

  it('CPUID pages and finished launches go page by page, with the firmware\'s answers', () => {
    const p = platform();
    const r = p.launchRange(BASE, PAGE, 'CPUID', new Uint8Array(4096).fill(0xff));
    expect(r).toMatchObject({ result: 'INVALID_PARAM', op: 'launch-update', at: BASE });
    p.launchFinish();
    expect(p.launchRange(BASE + 4n * PAGE, 2n * PAGE, 'ZERO')).toMatchObject({ result: 'INVALID_GUEST_STATE', op: 'launch-update', at: BASE + 4n * PAGE });
  });

  it('LaunchDigest.extendRange is extend() of each page in turn', () => {
    const bytes = source();
    for (const type of ['NORMAL', 'ZERO', 'UNMEASURED'] as const) {
      const a = new LaunchDigest(), b = new LaunchDigest();
      a.extendRange(type, 0x7000n, PAGES, type === 'NORMAL' ? bytes : undefined, [1, 2, 3]);
      for (let i = 0; i < PAGES; i++) b.extend(type, 0x7000n + BigInt(i) * PAGE, bytes.subarray(i * 4096, (i + 1) * 4096), [1, 2, 3]);
      expect(a.hex).toBe(b.hex);
    }
    expect(() => new LaunchDigest().extendRange('NORMAL', 0n, 2, new Uint8Array(4096))).toThrow(/measured by their contents/);
  });

  it('LaunchDigest.extendRange kept from one launch to the next only for the same digest before, range and bytes', () => {
    const perPage = (start: LaunchDigest, type: 'NORMAL' | 'ZERO', gpa: bigint, bytes: Uint8Array) => {
      for (let i = 0; i < bytes.byteLength / 4096; i++) start.extend(type, gpa + BigInt(i) * PAGE, bytes.subarray(i * 4096, (i + 1) * 4096));
      return start.hex;
    };
    const bytes = source();
    const ranged = () => new LaunchDigest();
    const first = ranged(), second = ranged();
    first.extendRange('NORMAL', 0x9000n, PAGES, bytes);
    second.extendRange('NORMAL', 0x9000n, PAGES, bytes);
    const expected = perPage(new LaunchDigest(), 'NORMAL', 0x9000n, bytes);
    expect([first.hex, second.hex]).toEqual([expected, expected]);
    const changed = Uint8Array.from(bytes);
    changed[3 * 4096 + 17] ^= 1;
    const third = ranged();
    third.extendRange('NORMAL', 0x9000n, PAGES, changed);
    expect(third.hex).toBe(perPage(new LaunchDigest(), 'NORMAL', 0x9000n, changed));
    // The same range after another one: from another digest.
    const after = ranged(), reference = new LaunchDigest();
    after.extendRange('ZERO', 0x1000n, 2, undefined);
    reference.extendRange('ZERO', 0x1000n, 2, undefined);
    after.extendRange('NORMAL', 0x9000n, PAGES, bytes);
    expect(after.hex).toBe(perPage(reference, 'NORMAL', 0x9000n, bytes));
    expect(after.hex).not.toBe(expected);
    // Other VMPL permissions or another GPA: measured, not kept.
    const perms = ranged();
    perms.extendRange('NORMAL', 0x9000n, PAGES, bytes, [1, 0, 0]);
    const permsReference = new LaunchDigest();
    for (let i = 0; i < PAGES; i++) permsReference.extend('NORMAL', 0x9000n + BigInt(i) * PAGE, bytes.subarray(i * 4096, (i + 1) * 4096), [1, 0, 0]);
    expect(perms.hex).toBe(permsReference.hex);
    const moved = ranged();
    moved.extendRange('NORMAL', 0xa000n, PAGES, bytes);
    expect(moved.hex).toBe(perPage(new LaunchDigest(), 'NORMAL', 0xa000n, bytes));
  });
});
