// What the RMP table (src/platform/snp/rmp.ts) answers about a range after each kind of write:
// the questions the legality table, the access checks and the launch fast path ask
// (rmp-legality.ts classifyTarget, access-check.ts, snp-cpu.ts launchRange). Each answer is
// recomputed here from the entries themselves, page by page, so the table's sparse bookkeeping
// (counts per region, 2 MiB entries stored once) must agree with the page-level meaning.
import { describe, expect, it } from 'vitest';
import { HV_OWNED_ENTRY, PAGE_2M, PAGE_4K, PAGES_PER_2M, Rmp, type RmpEntry } from '../../../src/platform/snp/rmp.js';

const MEMORY = 8n * PAGE_2M;
const ASSIGNED: RmpEntry = { assigned: true, pageSize: '4k', immutable: false, gpa: 0n, asid: 1, validated: false, vmsa: false, vmplPerms: [0x1f, 0, 0, 0] };
const at = (spa: bigint, fields: Partial<RmpEntry> = {}): RmpEntry => ({ ...ASSIGNED, gpa: spa, ...fields });
const RESET: RmpEntry = { ...HV_OWNED_ENTRY, vmplPerms: [0, 0, 0, 0] };
const pagesOf = (base: bigint, length: bigint): bigint[] => Array.from({ length: Number(length / PAGE_4K) }, (_, i) => base + BigInt(i) * PAGE_4K);

/** The answers, recomputed from lookup() of every page. */
function expected(rmp: Rmp, region: bigint) {
  const pages = pagesOf(region, PAGE_2M).map((spa) => rmp.lookup(spa));
  const isReset = (e: Readonly<RmpEntry>) => !e.assigned && !e.validated && !e.immutable;
  return {
    hypervisorOwned: pages.every((e) => !e.assigned),
    assigned4k: pages.filter((e) => e.pageSize === '4k' && e.assigned).length,
    allReset: pages.every(isReset),
    anyImmutable: pages.some((e) => e.immutable),
  };
}
function answered(rmp: Rmp, region: bigint) {
  return {
    hypervisorOwned: rmp.regionHypervisorOwned(region + 0x3000n),
    assigned4k: rmp.assigned4kInRegion(region + 0x3000n),
    allReset: rmp.allReset(region, PAGE_2M),
    anyImmutable: rmp.anyImmutable(region, PAGE_2M),
  };
}

describe('RMP table answers', () => {
  it.each<[string, (rmp: Rmp, r: bigint) => void]>([
    ['nothing stored', () => {}],
    ['one assigned 4 KiB entry', (rmp, r) => rmp.put4k(r + 0x5000n, at(r + 0x5000n))],
    ['an immutable page that is not assigned', (rmp, r) => rmp.put4k(r + 0x5000n, at(r + 0x5000n, { assigned: false, immutable: true }))],
    ['an assigned page replaced by an unassigned immutable one', (rmp, r) => { rmp.put4k(r + 0x5000n, at(r + 0x5000n)); rmp.put4k(r + 0x5000n, at(r + 0x5000n, { assigned: false, immutable: true })); }],
    ['an unassigned immutable page replaced by an assigned one', (rmp, r) => { rmp.put4k(r + 0x5000n, at(r + 0x5000n, { assigned: false, immutable: true })); rmp.put4k(r + 0x5000n, at(r + 0x5000n)); }],
    ['an assigned page written twice', (rmp, r) => { rmp.put4k(r + 0x5000n, at(r + 0x5000n)); rmp.put4k(r + 0x5000n, at(r + 0x5000n, { validated: true })); }],
    ['an unassigned immutable page put back to the reset state, beside an assigned one', (rmp, r) => {
      rmp.put4k(r, at(r));
      rmp.put4k(r + 0x5000n, at(r + 0x5000n, { assigned: false, immutable: true }));
      rmp.put4k(r + 0x5000n, RESET);
    }],
    ['a reset write to a page that had nothing', (rmp, r) => rmp.put4k(r + 0x5000n, RESET)],
    ['a 2 MiB entry', (rmp, r) => rmp.put2m(r, at(r, { pageSize: '2m' }))],
    ['an immutable 2 MiB entry that is not assigned', (rmp, r) => rmp.put2m(r, at(r, { pageSize: '2m', assigned: false, immutable: true }))],
    ['a 2 MiB entry put back to the reset state', (rmp, r) => { rmp.put2m(r, at(r, { pageSize: '2m' })); rmp.put2m(r, RESET); }],
    ['a split 2 MiB entry', (rmp, r) => { rmp.put2m(r, at(r, { pageSize: '2m' })); rmp.split(r); }],
    ['an immutable page at the end of the region', (rmp, r) => rmp.put4k(r + PAGE_2M - PAGE_4K, at(r + PAGE_2M - PAGE_4K, { immutable: true }))],
  ])('%s', (_, write) => {
    const rmp = new Rmp(MEMORY);
    const region = 2n * PAGE_2M;
    write(rmp, region);
    expect(answered(rmp, region)).toEqual(expected(rmp, region));
    // The regions around it are untouched.
    expect(answered(rmp, region + PAGE_2M)).toEqual({ hypervisorOwned: true, assigned4k: 0, allReset: true, anyImmutable: false });
    expect(answered(rmp, region - PAGE_2M)).toEqual({ hypervisorOwned: true, assigned4k: 0, allReset: true, anyImmutable: false });
    // The whole table's count of assigned pages, and the one-page form of anyImmutable, recomputed
    // from the pages too (an immutable page that is not assigned is not an assigned page).
    const pages = pagesOf(region, PAGE_2M);
    expect(rmp.assignedPages()).toBe(pages.filter((spa) => rmp.lookup(spa).assigned).length);
    expect(pages.filter((spa) => rmp.anyImmutable(spa, PAGE_4K))).toEqual(pages.filter((spa) => rmp.lookup(spa).immutable));
  });

  it('forgets what is back to the reset state: nothing stored, and the reset entry read back', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put2m(PAGE_2M, at(PAGE_2M, { pageSize: '2m' }));
    rmp.put2m(PAGE_2M, RESET);
    rmp.put4k(0x5000n, at(0x5000n));
    rmp.put4k(0x5000n, RESET);
    rmp.put4k(0x6000n, RESET);
    expect(rmp.storedRegions).toBe(0);
    expect(rmp.lookup(PAGE_2M + 0x3000n)).toEqual(HV_OWNED_ENTRY);
    expect(rmp.lookup(0x5000n)).toEqual(HV_OWNED_ENTRY);
  });

  it('keeps an entry that is only Immutable, as a 4 KiB or a 2 MiB entry: it is not the reset state', () => {
    // Only Assigned=0 with Validated=0 and Immutable=0 is the reset (hypervisor-owned) state that
    // need not be stored; an Immutable entry refuses RMPUPDATE and PSMASH afterwards (APM Vol. 2
    // §15.36.3 "Immutable"; MS __rmpupdate/__psmash: 2 "the RMP entry is immutable"), so it must be kept.
    const rmp = new Rmp(MEMORY);
    rmp.put2m(PAGE_2M, at(PAGE_2M, { pageSize: '2m', assigned: false, immutable: true }));
    rmp.put4k(0x5000n, at(0x5000n, { assigned: false, immutable: true }));
    expect(rmp.storedRegions).toBe(2);
    expect(rmp.lookup(PAGE_2M + 0x3000n)).toMatchObject({ assigned: false, immutable: true, pageSize: '2m' });
    expect(rmp.lookup(0x5000n)).toMatchObject({ assigned: false, immutable: true, pageSize: '4k' });
    expect([rmp.anyImmutable(PAGE_2M, PAGE_2M), rmp.anyImmutable(0n, PAGE_2M)]).toEqual([true, true]);
  });

  it('a PSMASHed region keeps each page until that page is reset: the last of the 512 stays after the other 511 go', () => {
    // PSMASH makes 512 4 KiB entries of the 2 MiB one (APM Vol. 2 §15.36.11; MS __psmash "Expands a
    // 2-MB RMP entry into a corresponding set of contiguous 4-KB RMP entries"); an RMPUPDATE writes
    // only the entry of its own page.
    const rmp = new Rmp(MEMORY);
    rmp.put2m(PAGE_2M, at(PAGE_2M, { pageSize: '2m' }));
    rmp.split(PAGE_2M);
    const last = PAGE_2M + PAGE_2M - PAGE_4K;
    for (let spa = PAGE_2M; spa < last; spa += PAGE_4K) rmp.put4k(spa, RESET);
    expect(rmp.lookup(last)).toMatchObject({ assigned: true, gpa: last, pageSize: '4k' });
    expect([rmp.regionHypervisorOwned(PAGE_2M), rmp.assigned4kInRegion(PAGE_2M), rmp.storedRegions]).toEqual([false, 1, 1]);
    rmp.put4k(last, RESET);
    expect([rmp.lookup(last), rmp.regionHypervisorOwned(PAGE_2M), rmp.storedRegions]).toEqual([HV_OWNED_ENTRY, true, 0]);
  });

  it('allReset looks at exactly the pages of the range, across region boundaries', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(PAGE_2M + 0x4000n, at(PAGE_2M + 0x4000n));
    // Ranges that end just before the page, start just after it, or hold it.
    expect(rmp.allReset(PAGE_2M - 0x2000n, 0x6000n)).toBe(true);
    expect(rmp.allReset(PAGE_2M + 0x5000n, PAGE_2M)).toBe(true);
    expect(rmp.allReset(PAGE_2M - 0x2000n, 0x7000n)).toBe(false);
    expect(rmp.allReset(PAGE_2M + 0x4000n, PAGE_4K)).toBe(false);
    expect(rmp.allReset(0n, MEMORY)).toBe(false);
    // A 2 MiB entry anywhere in the range.
    rmp.put2m(4n * PAGE_2M, at(4n * PAGE_2M, { pageSize: '2m' }));
    expect(rmp.allReset(4n * PAGE_2M + 0x1000n, PAGE_4K)).toBe(false);
    expect(rmp.allReset(3n * PAGE_2M, PAGE_2M)).toBe(true);
  });

  it('a split 2 MiB entry gives each of its 512 pages its own GPA, and nothing beyond them', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put2m(PAGE_2M, at(0x40000000n, { pageSize: '2m', validated: true }));
    rmp.split(PAGE_2M);
    const seen: [number, bigint][] = [];
    rmp.smallEntries(1)!.forEach((e, index) => { if (e !== undefined) seen.push([index, e.gpa]); });
    expect(seen).toEqual(Array.from({ length: PAGES_PER_2M }, (_, i) => [i, 0x40000000n + BigInt(i) * PAGE_4K]));
    expect(rmp.assignedPages()).toBe(PAGES_PER_2M);
    expect(rmp.lookup(2n * PAGE_2M)).toEqual(HV_OWNED_ENTRY);
  });

  it('a table loaded from a saved state answers and walks its 4 KiB entries as the table it was saved from', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(PAGE_2M + 0x5000n, at(PAGE_2M + 0x5000n));
    rmp.put4k(PAGE_2M + 0x9000n, at(PAGE_2M + 0x9000n, { assigned: false, immutable: true }));
    const walk = (r: Rmp) => { const seen: number[] = []; r.smallEntries(1)!.forEach((e, index) => { if (e !== undefined) seen.push(index); }); return seen; };
    const other = new Rmp(MEMORY);
    other.loadState(rmp.saveState());
    expect(walk(other)).toEqual([5, 9]);
    expect(answered(other, PAGE_2M)).toEqual(answered(rmp, PAGE_2M));
  });

  it('smallEntries is a slot per page of a region of 4 KiB entries (the entries lookup gives), and nothing for other regions', () => {
    const rmp = new Rmp(MEMORY);
    rmp.put4k(PAGE_2M + 0x5000n, at(PAGE_2M + 0x5000n));
    rmp.put2m(2n * PAGE_2M, at(2n * PAGE_2M, { pageSize: '2m' }));
    const slots = rmp.smallEntries(1)!;
    expect(slots).toHaveLength(PAGES_PER_2M);
    expect(slots.flatMap((e, index) => (e === undefined ? [] : [index]))).toEqual([5]);
    expect(slots[5]).toBe(rmp.lookup(PAGE_2M + 0x5000n));
    expect([rmp.smallEntries(0), rmp.smallEntries(2)]).toEqual([undefined, undefined]);  // nothing stored; a 2 MiB entry
    rmp.split(2n * PAGE_2M);
    expect(rmp.smallEntries(2)!.every((e, index) => e === rmp.lookup(2n * PAGE_2M + BigInt(index) * PAGE_4K))).toBe(true);
  });

  it('covers exactly [0, coveredBytes)', () => {
    const rmp = new Rmp(MEMORY);
    expect([rmp.covers(-PAGE_4K), rmp.covers(0n), rmp.covers(MEMORY - PAGE_4K), rmp.covers(MEMORY)]).toEqual([false, true, true, false]);
  });
});
