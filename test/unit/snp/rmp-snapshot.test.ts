// An RMP restore of the state it last saved or loaded puts back only the regions changed since;
// restoring must give exactly the table a full copy would, however it was changed.
import { describe, expect, it } from 'vitest';
import { PAGE_2M, PAGE_4K, Rmp, type RmpEntry } from '../../../src/platform/snp/rmp.js';

const ASSIGNED: RmpEntry = { assigned: true, pageSize: '4k', immutable: false, gpa: 0n, asid: 1, validated: false, vmsa: false, vmplPerms: [0xf, 0, 0, 0] };
const at = (spa: bigint): RmpEntry => ({ ...ASSIGNED, gpa: spa });

function table(rmp: Rmp): string {
  const out: string[] = [];
  for (let spa = 0n; spa < 6n * PAGE_2M; spa += PAGE_4K) {
    const e = rmp.lookup(spa);
    if (e.assigned || e.validated || e.immutable) out.push(`${spa.toString(16)}=${e.pageSize}/${e.gpa.toString(16)}/${e.validated}/${e.vmsa}/${e.vmplPerms.join('')}`);
  }
  return `${rmp.storedRegions} ${out.join(' ')}`;
}

describe('Rmp snapshots', () => {
  it('restore the saved table after every kind of write, again and again', () => {
    const rmp = new Rmp(8n * PAGE_2M);
    rmp.put4k(0x1000n, at(0x1000n));
    rmp.put2m(PAGE_2M, { ...at(PAGE_2M), pageSize: '2m' });
    rmp.put2m(2n * PAGE_2M, { ...at(2n * PAGE_2M), pageSize: '2m', validated: true });
    const saved = rmp.saveState();
    const before = table(rmp);
    for (let round = 0; round < 3; round++) {
      rmp.setValidated(0x1000n, true);
      rmp.put4k(0x1000n + PAGE_4K, at(0x2000n));
      rmp.put4k(0x1000n, { ...ASSIGNED, assigned: false });  // back to the reset state: forgotten
      rmp.setValidated(PAGE_2M, true);
      rmp.split(2n * PAGE_2M);
      rmp.adjustPermissions(2n * PAGE_2M + 0x5000n, 1, 0x3, true);
      rmp.put4k(4n * PAGE_2M + 0x7000n, at(0x7000n));  // a region nobody had
      if (round === 1) rmp.put2m(PAGE_2M, { ...ASSIGNED, assigned: false });
      expect(table(rmp)).not.toBe(before);
      rmp.loadState(saved);
      expect(table(rmp)).toBe(before);
    }
    // The saved state itself was never changed, and loading another state copies it whole.
    const other = new Rmp(8n * PAGE_2M);
    other.loadState(saved);
    expect(table(other)).toBe(before);
    other.put4k(5n * PAGE_2M, at(5n * PAGE_2M));
    const second = other.saveState();
    rmp.loadState(second);
    rmp.split(2n * PAGE_2M);
    rmp.loadState(second);
    expect(table(rmp)).toBe(table(other));
    rmp.loadState(saved);
    expect(table(rmp)).toBe(before);
  });
});

describe('Rmp saved states', () => {
  it('a state loaded into another table stays as saved, whatever that table writes next', () => {
    // Every later load of a saved state must put back what was saved (the fuzzer restores one
    // snapshot per execution, into any table of the thread), so a table must not write through
    // to the state it loaded: in a 4 KiB region or a 2 MiB entry.
    const source = new Rmp(6n * PAGE_2M);
    source.put4k(PAGE_2M + PAGE_4K, at(PAGE_2M + PAGE_4K));
    source.put2m(2n * PAGE_2M, { ...at(2n * PAGE_2M), pageSize: '2m' });
    const saved = source.saveState();
    const expected = table(source);
    const user = new Rmp(6n * PAGE_2M);
    user.loadState(saved);
    user.setValidated(PAGE_2M + PAGE_4K, true);
    user.put4k(PAGE_2M + 2n * PAGE_4K, at(PAGE_2M + 2n * PAGE_4K));
    user.adjustPermissions(2n * PAGE_2M, 1, 0x3, false);
    user.setValidated(2n * PAGE_2M, true);
    expect(table(user)).not.toBe(expected);
    const other = new Rmp(6n * PAGE_2M);
    other.loadState(saved);
    expect(table(other)).toBe(expected);
    user.loadState(saved);
    expect(table(user)).toBe(expected);
  });
});

describe('Rmp region versions', () => {
  it('never name two different tables, over every single write of the kinds whose version is remembered, from one state', () => {
    // From one saved state of a split region (all validated except every third page), each
    // PVALIDATE / rescind / reset of one of the first 24 pages, alone or followed by one of pages 24-26.
    const rmp = new Rmp(8n * PAGE_2M);
    rmp.put2m(PAGE_2M, { ...at(PAGE_2M), pageSize: '2m' });
    rmp.split(PAGE_2M);
    for (let i = 0; i < 27; i += 3) rmp.setValidated(PAGE_2M + BigInt(i) * PAGE_4K, true);
    const saved = rmp.saveState();
    const byVersion = new Map<number, string>();
    const writes: ((r: Rmp) => void)[] = [];
    for (let i = 0; i < 27; i++) {
      const page = PAGE_2M + BigInt(i) * PAGE_4K;
      writes.push((r) => r.setValidated(page, true), (r) => r.setValidated(page, false), (r) => r.put4k(page, { ...ASSIGNED, assigned: false }));
    }
    for (const first of writes.slice(0, 72)) {
      for (const second of [undefined, ...writes.slice(72)]) {
        rmp.loadState(saved);
        first(rmp);
        second?.(rmp);
        const version = rmp.regionVersion(1);
        const entries = table(rmp);
        if (byVersion.has(version)) expect(entries).toBe(byVersion.get(version));
        else byVersion.set(version, entries);
      }
    }
    expect(byVersion.size).toBeGreaterThan(100);
  });

  it('name the same entries after the same fresh assignment (4 KiB or 2 MiB, to one ASID), whatever the region held', () => {
    // RMPUPDATE's entry for a page given to a guest at its own GPA is decided by the page and the
    // ASID, so such a write gets a remembered version; any other entry gets a new one.
    const fresh = (spa: bigint, asid: number, pageSize: '4k' | '2m' = '4k'): RmpEntry =>
      ({ assigned: true, pageSize, immutable: false, gpa: spa, asid, validated: false, vmsa: false, vmplPerms: [0x1f, 0, 0, 0] });
    const rmp = new Rmp(8n * PAGE_2M);
    // Regions 1 and 4 hold nothing, 2 is split, 3 holds one page.
    rmp.put2m(2n * PAGE_2M, fresh(2n * PAGE_2M, 1, '2m'));
    rmp.split(2n * PAGE_2M);
    rmp.setValidated(2n * PAGE_2M + PAGE_4K, true);
    rmp.put4k(3n * PAGE_2M + PAGE_4K, fresh(3n * PAGE_2M + PAGE_4K, 1));
    const saved = rmp.saveState();
    const writes: ((r: Rmp) => void)[] = [];
    for (const region of [1n, 2n, 3n, 4n]) {
      const base = region * PAGE_2M;
      for (const asid of [1, 2]) {
        for (const index of [0n, 1n, 2n]) {
          const page = base + index * PAGE_4K;
          writes.push((r) => { if (!r.isLarge(page)) r.put4k(page, fresh(page, asid)); });
        }
        writes.push((r) => { if (r.assigned4kInRegion(base) === 0) r.put2m(base, fresh(base, asid, '2m')); });
      }
      // Entries that are not fresh assignments: another GPA, validated, a VMSA, other permissions,
      // and a 2 MiB entry written at an address inside the region (its GPA is not the region's).
      const page = base + PAGE_4K;
      writes.push(
        (r) => { if (!r.isLarge(page)) r.put4k(page, fresh(base + 2n * PAGE_4K, 1)); },
        (r) => { if (!r.isLarge(page)) r.put4k(page, { ...fresh(page, 1), validated: true }); },
        (r) => { if (!r.isLarge(page)) r.put4k(page, { ...fresh(page, 1), vmsa: true }); },
        (r) => { if (!r.isLarge(page)) r.put4k(page, { ...fresh(page, 1), vmplPerms: [0x1f, 1, 0, 0] }); },
        (r) => { if (r.assigned4kInRegion(base) === 0) r.put2m(page, fresh(page, 1, '2m')); },
        (r) => { if (r.isLarge(base)) r.split(base); },
        (r) => { if (!r.isLarge(page) && r.lookup(page).assigned) r.setValidated(page, true); },
        // A pre-guest page (KVM sev_gmem_post_populate: rmp_make_private(..., immutable=true)).
        (r) => { if (!r.isLarge(page)) r.put4k(page, { ...fresh(page, 1), immutable: true }); },
        // The ASIDs at the ends of what a version remembers: 0 (the hypervisor's and AMD-SP's) and 1024.
        (r) => { if (!r.isLarge(base)) r.put4k(base, fresh(base, 1024)); },
        (r) => { if (r.assigned4kInRegion(base) === 0) r.put2m(base, fresh(base, 0, '2m')); },
      );
    }
    // The pages the writes touch, and the region's last page (a 2 MiB entry or a split reaches it).
    const regionTable = (r: Rmp, region: bigint): string => {
      const out: string[] = [];
      for (const index of [0n, 1n, 2n, 3n, 511n]) {
        const spa = region * PAGE_2M + index * PAGE_4K;
        const e = r.lookup(spa);
        if (e.assigned || e.validated || e.immutable) out.push(`${spa.toString(16)}=${e.pageSize}/${e.gpa.toString(16)}/${e.asid}/${e.immutable}/${e.validated}/${e.vmsa}/${e.vmplPerms.join(',')}`);
      }
      return out.join(' ');
    };
    const byVersion = new Map<number, string>();
    let repeated = 0;
    for (const first of writes) {
      for (const second of [undefined, ...writes]) {
        rmp.loadState(saved);
        first(rmp);
        second?.(rmp);
        for (const region of [1n, 2n, 3n, 4n]) {
          const version = rmp.regionVersion(Number(region));
          const entries = regionTable(rmp, region);
          if (version === 0) expect(entries).toBe('');
          else if (byVersion.has(version)) { expect(entries).toBe(byVersion.get(version)); repeated++; }
          else byVersion.set(version, entries);
        }
      }
    }
    // Fresh assignments from the same state found their versions again.
    expect(repeated).toBeGreaterThan(writes.length * writes.length);
    // The same fresh assignment from the same state: the same version; to another ASID: another.
    const versionAfter = (write: (r: Rmp) => void): number => { rmp.loadState(saved); write(rmp); return rmp.regionVersion(1); };
    const assign = (asid: number) => (r: Rmp) => r.put4k(PAGE_2M + PAGE_4K, fresh(PAGE_2M + PAGE_4K, asid));
    expect(versionAfter(assign(1))).toBe(versionAfter(assign(1)));
    expect(versionAfter(assign(2))).not.toBe(versionAfter(assign(1)));
    const validated = (r: Rmp) => r.put4k(PAGE_2M + PAGE_4K, { ...fresh(PAGE_2M + PAGE_4K, 1), validated: true });
    expect(versionAfter(validated)).not.toBe(versionAfter(validated));
  });

  it('change with every write to a region, stay with its entries across save and load, and name the same entries', () => {
    const rmp = new Rmp(8n * PAGE_2M);
    const key = 1;
    expect(rmp.regionVersion(key)).toBe(0);  // nothing stored: the reset state
    const seen = new Map<number, string>();
    const check = (): number => {
      const version = rmp.regionVersion(key);
      const entries = table(rmp);
      if (seen.has(version)) expect(entries).toBe(seen.get(version));
      else seen.set(version, entries);
      return version;
    };
    rmp.put2m(PAGE_2M, { ...at(PAGE_2M), pageSize: '2m' });
    const large = check();
    expect(large).not.toBe(0);
    const saved = rmp.saveState();
    rmp.split(PAGE_2M);
    const split = check();
    expect(split).not.toBe(large);
    rmp.setValidated(PAGE_2M + PAGE_4K, true);
    expect(check()).not.toBe(split);
    const adjusted = (rmp.adjustPermissions(PAGE_2M, 1, 0x3, false), check());
    // Putting back the reset state of a page that has it changes nothing, so the version stays.
    rmp.put4k(PAGE_2M + PAGE_4K, { ...ASSIGNED, assigned: false });
    const reset = check();
    expect(reset).not.toBe(adjusted);
    rmp.put4k(PAGE_2M + PAGE_4K, { ...ASSIGNED, assigned: false });
    expect(check()).toBe(reset);
    rmp.loadState(saved);
    expect(check()).toBe(large);
    // The same write to the same entries gives the same version again (a fuzz execution repeats
    // the last one's from the same snapshot): a PSMASH, a page put back to the reset state, PVALIDATE.
    rmp.split(PAGE_2M);
    expect(check()).toBe(split);
    rmp.setValidated(PAGE_2M + PAGE_4K, true);
    const validated = check();
    rmp.loadState(saved);
    rmp.split(PAGE_2M);
    rmp.setValidated(PAGE_2M + PAGE_4K, true);
    expect(check()).toBe(validated);
    rmp.setValidated(PAGE_2M + PAGE_4K, false);
    expect(check()).not.toBe(validated);
    // A write the entries alone do not decide (RMPUPDATE's new entry, here with permissions other
    // than a fresh assignment's) is always a new version.
    rmp.loadState(saved);
    rmp.split(PAGE_2M);
    rmp.put4k(PAGE_2M + PAGE_4K, at(PAGE_2M + PAGE_4K));
    const put = check();
    rmp.loadState(saved);
    rmp.split(PAGE_2M);
    rmp.put4k(PAGE_2M + PAGE_4K, at(PAGE_2M + PAGE_4K));
    expect(check()).not.toBe(put);
    // Another region's writes leave this one's version alone.
    const now = rmp.regionVersion(key);
    rmp.put4k(3n * PAGE_2M, at(3n * PAGE_2M));
    expect(rmp.regionVersion(key)).toBe(now);
  });
});

describe('Rmp PSMASH from a saved state', () => {
  it('splits the same 2 MiB entry into the same entries each time, and a write after one split reaches no other', () => {
    // Two tables loaded from one state (two executions, or two VMs of one thread), each split
    // again and again: the remembered split of one must not carry the other's later writes.
    const first = new Rmp(4n * PAGE_2M);
    first.put2m(PAGE_2M, { ...at(PAGE_2M), pageSize: '2m', validated: true, vmplPerms: [0x1f, 0x3, 0, 0] });
    const saved = first.saveState();
    const second = new Rmp(4n * PAGE_2M);
    second.loadState(saved);
    const fresh = new Rmp(4n * PAGE_2M);
    fresh.put2m(PAGE_2M, { ...at(PAGE_2M), pageSize: '2m', validated: true, vmplPerms: [0x1f, 0x3, 0, 0] });
    fresh.split(PAGE_2M);
    const split = table(fresh);
    for (let round = 0; round < 3; round++) {
      for (const rmp of [first, second]) {
        rmp.loadState(saved);
        rmp.split(PAGE_2M);
        expect(table(rmp)).toBe(split);
        expect(rmp.lookup(PAGE_2M + 7n * PAGE_4K).gpa).toBe(PAGE_2M + 7n * PAGE_4K);
        rmp.setValidated(PAGE_2M + BigInt(round) * PAGE_4K, false);
        rmp.adjustPermissions(PAGE_2M + 9n * PAGE_4K, 1, 0x1, true);
        rmp.put4k(PAGE_2M + 10n * PAGE_4K, { ...ASSIGNED, assigned: false });
      }
      expect(table(first)).toBe(table(second));
      expect(table(first)).not.toBe(split);
    }
  });
});
