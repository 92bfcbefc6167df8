// The RMP's raw writers (src/platform/snp/rmp.ts) refuse a write that would make the table
// contradict itself: 4 KiB entries inside a 2 MiB one, a PSMASH of what is not a 2 MiB entry,
// Validated or VMPL permissions on a page that has no entry. The platform never asks for one
// (its legality table and its instructions' guest-owned check come first), so these are the
// table's own guarantees: a refused write throws and leaves every entry and region version as
// it was (equal versions must keep naming equal entries).
import { describe, expect, it } from 'vitest';
import { PAGE_2M, PAGE_4K, Rmp, type RmpEntry } from '../../../src/platform/snp/rmp.js';

const ASSIGNED: RmpEntry = { assigned: true, pageSize: '4k', immutable: false, gpa: 0n, asid: 1, validated: false, vmsa: false, vmplPerms: [0x1f, 0, 0, 0] };
const at = (spa: bigint): RmpEntry => ({ ...ASSIGNED, gpa: spa });

/** Every stored entry of the first 4 regions and every region's version. */
function snapshot(rmp: Rmp): string {
  const out: string[] = [];
  for (let key = 0; key < 4; key++) out.push(`v${key}=${rmp.regionVersion(key)}`);
  for (let spa = 0n; spa < 4n * PAGE_2M; spa += PAGE_4K) {
    const e = rmp.lookup(spa);
    if (e.assigned || e.validated || e.immutable) out.push(`${spa.toString(16)}=${e.pageSize}/${e.gpa.toString(16)}/${e.validated}/${e.vmsa}/${e.vmplPerms.join(',')}`);
  }
  return out.join(' ');
}

/** Region 0 holds 4 KiB entries at 0x1000 only, region 1 one 2 MiB entry, regions 2 and 3 nothing. */
function arranged(): Rmp {
  const rmp = new Rmp(8n * PAGE_2M);
  rmp.put4k(0x1000n, at(0x1000n));
  rmp.put2m(PAGE_2M, { ...at(PAGE_2M), pageSize: '2m' });
  return rmp;
}

describe('the RMP raw writers refuse a contradictory write and change nothing', () => {
  it.each([
    ['a 4 KiB entry inside a 2 MiB one', (rmp: Rmp) => rmp.put4k(PAGE_2M + 0x3000n, at(PAGE_2M + 0x3000n)), /put4k inside a 2 MiB RMP entry/],
    ['a PSMASH of a region of 4 KiB entries', (rmp: Rmp) => rmp.split(0n), /split of a region that is not a 2 MiB entry/],
    ['a PSMASH of a region with nothing stored', (rmp: Rmp) => rmp.split(2n * PAGE_2M), /split of a region that is not a 2 MiB entry/],
    ['Validated on a page of a region with nothing stored', (rmp: Rmp) => rmp.setValidated(2n * PAGE_2M, true), /setValidated on a hypervisor-owned page/],
    ['Validated on a page with no entry beside one that has', (rmp: Rmp) => rmp.setValidated(0x2000n, true), /setValidated on a hypervisor-owned page/],
    ['permissions on a page of a region with nothing stored', (rmp: Rmp) => rmp.adjustPermissions(3n * PAGE_2M, 1, 1, false), /adjustPermissions on a hypervisor-owned page/],
    ['permissions on a page with no entry beside one that has', (rmp: Rmp) => rmp.adjustPermissions(0x2000n, 1, 1, true), /adjustPermissions on a hypervisor-owned page/],
  ] as const)('%s', (_, write, message) => {
    const rmp = arranged();
    const before = snapshot(rmp);
    const stored = rmp.storedRegions;
    expect(() => write(rmp)).toThrow(message);
    expect(snapshot(rmp)).toBe(before);
    expect(rmp.storedRegions).toBe(stored);
  });

  it('while the same writes where the entries exist go through', () => {
    const rmp = arranged();
    rmp.setValidated(0x1000n, true);
    rmp.adjustPermissions(0x1000n, 1, 3, false);
    rmp.setValidated(PAGE_2M + 0x3000n, true);
    rmp.split(PAGE_2M);
    rmp.put4k(PAGE_2M + 0x3000n, at(0x9000n));
    expect(rmp.lookup(0x1000n)).toMatchObject({ validated: true, vmplPerms: [0x1f, 3, 0, 0] });
    expect(rmp.lookup(PAGE_2M)).toMatchObject({ pageSize: '4k', validated: true, gpa: PAGE_2M });
    expect(rmp.lookup(PAGE_2M + 0x3000n)).toMatchObject({ pageSize: '4k', validated: false, gpa: 0x9000n });
  });
});
