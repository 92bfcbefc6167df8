// SnpPlatform.batchGateSync (issue 11): host operations inside a batch leave the page gate exactly
// as the same operations resynchronised one by one do, with fewer gate updates.
import { describe, expect, it, vi } from 'vitest';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { PAGE_2M, PAGE_4K, VMPL_PERM } from '../../../src/platform/snp/rmp.js';
import type { Space } from '../../../src/memory/address-marker.js';

const MEMORY = 32n << 20n;
const FIRST = 0x400000n;

/** What a PSC of many entries does, and the other region-wide changes a VMM makes between guest runs. */
function hostWork(p: SnpPlatform): void {
  const asid = p.asid;
  // Eight neighbouring 2 MiB regions made private and mapped 2 MiB (an eager acceptance's PSC).
  for (let i = 0n; i < 8n; i++) {
    const gpa = FIRST + i * PAGE_2M;
    expect(p.rmpUpdate(gpa, { assigned: true, pageSize: '2m', gpa, asid }).rc).toBe(0);
    p.setNptPageSize(gpa, '2m');
  }
  // One of them split again, and one page of it made shared (4 KiB entries inside the run).
  const split = FIRST + 3n * PAGE_2M;
  expect(p.psmash(split).rc).toBe(0);
  p.setNptPageSize(split, '4k');
  expect(p.rmpUpdate(split + PAGE_4K, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 }).rc).toBe(0);
  // A region with a few 4 KiB private pages under a 2 MiB nested mapping (shared writes refused).
  const mixed = FIRST + 10n * PAGE_2M;
  for (const k of [0n, 1n, 7n]) expect(p.rmpUpdate(mixed + k * PAGE_4K, { assigned: true, pageSize: '4k', gpa: mixed + k * PAGE_4K, asid }).rc).toBe(0);
  p.setNptPageSize(mixed, '2m');
  // The last region, which ends at the end of RAM.
  const last = MEMORY - PAGE_2M;
  expect(p.rmpUpdate(last, { assigned: true, pageSize: '2m', gpa: last, asid }).rc).toBe(0);
  p.setNptPageSize(last, '2m');
}

function gateOf(p: SnpPlatform): string[] {
  const out: string[] = [];
  for (let page = 0n; page < MEMORY; page += PAGE_4K) {
    for (const space of ['private', 'shared'] as Space[]) out.push(p.machine.gate.get(space, page));
    out.push(p.machine.gate.fetch('private', page));
  }
  return out;
}

describe('SnpPlatform.batchGateSync', () => {
  it('leaves the same gate as resynchronising after every operation, with fewer gate updates', () => {
    const one = SnpPlatform.create({ memoryBytes: MEMORY });
    const batched = SnpPlatform.create({ memoryBytes: MEMORY });
    const eachSet = vi.spyOn(one.machine.gate, 'set');
    const batchSet = vi.spyOn(batched.machine.gate, 'set');
    hostWork(one);
    batched.batchGateSync(() => hostWork(batched));
    expect(gateOf(batched)).toEqual(gateOf(one));
    // The eight 2 MiB regions (less the split one) are neighbours with one gate: a few updates
    // for all of them instead of two per region per change.
    expect(batchSet.mock.calls.length).toBeLessThan(eachSet.mock.calls.length / 2);
    // And the gate is what the RMP says: a private 2 MiB page not yet validated is closed to the
    // guest's private accesses, its shared reads see ciphertext.
    expect(batched.machine.gate.get('private', FIRST)).toBe('none');
    expect(batched.machine.gate.get('shared', FIRST)).toBe('ciphertext');
    expect(batched.machine.gate.get('shared', FIRST + 3n * PAGE_2M + PAGE_4K)).toBe('readwrite');
    one.machine.close();
    batched.machine.close();
  });

  it('derives the gate when the batch ends even if the work inside it throws', () => {
    const p = SnpPlatform.create({ memoryBytes: MEMORY });
    expect(() => p.batchGateSync(() => {
      p.rmpUpdate(FIRST, { assigned: true, pageSize: '2m', gpa: FIRST, asid: p.asid });
      throw new Error('refused host write');
    })).toThrow('refused host write');
    expect(p.machine.gate.get('shared', FIRST)).toBe('ciphertext');
    p.machine.close();
  });

  it('a resynchronised region of 4 KiB entries gives every page the gate of its own RMP entry (neighbours alike share one derivation)', () => {
    const p = SnpPlatform.create({ memoryBytes: MEMORY });
    const region = FIRST;
    const asid = p.asid;
    expect(p.rmpUpdate(region, { assigned: true, pageSize: '2m', gpa: region, asid }).rc).toBe(0);
    p.rmp.setValidated(region, true);
    expect(p.psmash(region).rc).toBe(0);
    // Runs of alike entries broken by: a shared page, two pages whose reverse map points 64 KiB
    // away (alike to each other, not to their neighbours), a page not validated, one with other
    // VMPL permissions (read only; read and Execute-Supervisor; Execute-Supervisor only; read and
    // Execute-User), an immutable (pre-guest) page.
    const at = (k: bigint) => region + k * PAGE_4K;
    p.rmpUpdate(at(5n), { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
    for (const k of [9n, 10n]) {
      p.rmpUpdate(at(k), { assigned: true, pageSize: '4k', gpa: at(k) + 0x10000n, asid });
      p.rmp.setValidated(at(k), true);
    }
    p.rmpUpdate(at(11n), { assigned: true, pageSize: '4k', gpa: at(11n), asid });
    p.rmp.adjustPermissions(at(20n), 0, VMPL_PERM.read, false);
    p.rmp.adjustPermissions(at(21n), 0, VMPL_PERM.read | VMPL_PERM.execSupervisor, false);
    p.rmp.adjustPermissions(at(22n), 0, VMPL_PERM.execSupervisor, false);
    p.rmp.adjustPermissions(at(23n), 0, VMPL_PERM.read | VMPL_PERM.execUser, false);
    p.rmpUpdate(at(30n), { assigned: true, pageSize: '4k', immutable: true, gpa: at(30n), asid });
    // Reverse maps beyond 2^53 (a hostile VMM's RMPUPDATE may name any GPA): compared exactly.
    for (const k of [40n, 41n]) {
      p.rmpUpdate(at(k), { assigned: true, pageSize: '4k', gpa: (1n << 60n) + at(k), asid });
      p.rmp.setValidated(at(k), true);
    }
    p.setNptPageSize(region, '4k');  // resynchronises the region
    for (let k = 0n; k < 512n; k++) {
      const want = p.gateFor(at(k));
      expect([k, p.machine.gate.get('private', at(k)), p.machine.gate.fetch('private', at(k)), p.machine.gate.get('shared', at(k))])
        .toEqual([k, want.private, want.fetch, want.shared]);
    }
    expect(new Set(Array.from({ length: 32 }, (_, k) => p.machine.gate.get('private', at(BigInt(k))))).size).toBeGreaterThan(2);
    expect([19n, 20n, 21n, 22n, 23n].map((k) => [p.machine.gate.get('private', at(k)), p.machine.gate.fetch('private', at(k))])).toEqual([
      ['readwrite', 'any'], ['read', 'none'], ['read', 'supervisor'], ['none', 'supervisor'], ['read', 'user'],
    ]);
    p.machine.close();
  });
});

describe('SnpPlatform region gate derivation', () => {
  it('a region resynchronised again, unchanged or after a restore, gets the same gate updates as the first time', () => {
    const p = SnpPlatform.create({ memoryBytes: MEMORY });
    const region = FIRST;
    const asid = p.asid;
    expect(p.rmpUpdate(region, { assigned: true, pageSize: '2m', gpa: region, asid }).rc).toBe(0);
    p.rmp.setValidated(region, true);
    expect(p.psmash(region).rc).toBe(0);
    p.rmpUpdate(region + 5n * PAGE_4K, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
    const set = vi.spyOn(p.machine.gate, 'set');
    const resync = (): unknown[][] => {
      set.mockClear();
      p.setNptPageSize(region, '4k');
      return set.mock.calls.map((c) => [...c]);
    };
    const first = resync();
    expect(first.length).toBeGreaterThan(2);
    expect(resync()).toEqual(first);
    const saved = p.saveState();
    // A change to the region: its next derivation follows the RMP, not what was derived before.
    p.rmpUpdate(region + 9n * PAGE_4K, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 });
    const changed = resync();
    expect(changed).not.toEqual(first);
    expect(p.machine.gate.get('shared', region + 9n * PAGE_4K)).toBe('readwrite');
    p.loadState(saved);
    expect(resync()).toEqual(first);
    for (let k = 0n; k < 512n; k++) {
      const want = p.gateFor(region + k * PAGE_4K);
      expect([k, p.machine.gate.get('private', region + k * PAGE_4K), p.machine.gate.fetch('private', region + k * PAGE_4K), p.machine.gate.get('shared', region + k * PAGE_4K)])
        .toEqual([k, want.private, want.fetch, want.shared]);
    }
    // The nested page size is part of what the gate is derived from.
    set.mockClear();
    p.setNptPageSize(region, '2m');
    expect(set.mock.calls.map((c) => [...c])).not.toEqual(first);
    p.machine.close();
  });
});

// The page-size check of a private access (APM Vol. 2 §15.36.10, Table 15-39): a 2 MiB nested
// mapping needs a 2 MiB RMP entry, else #VMEXIT(NPF). PSMASH keeps each page's Validated bit
// (APM Vol. 3 "PSMASH"), so the same pages pass again once the VMM maps them at 4 KiB.
describe('the page gate across PSMASH', () => {
  it('a validated 2 MiB private page under a 2 MiB nested mapping is closed to private accesses after PSMASH, open again at 4 KiB', () => {
    const p = SnpPlatform.create({ memoryBytes: MEMORY });
    expect(p.rmpUpdate(FIRST, { assigned: true, pageSize: '2m', gpa: FIRST, asid: p.asid }).rc).toBe(0);
    p.rmp.setValidated(FIRST, true);
    p.setNptPageSize(FIRST, '2m');
    const privateGate = () => [0n, 0x1ffn].map((k) => p.machine.gate.get('private', FIRST + k * PAGE_4K));
    expect(privateGate()).toEqual(['readwrite', 'readwrite']);
    expect(p.psmash(FIRST).rc).toBe(0);
    expect(privateGate()).toEqual(['none', 'none']);
    p.setNptPageSize(FIRST, '4k');
    expect(privateGate()).toEqual(['readwrite', 'readwrite']);
    p.machine.close();
  });
});
