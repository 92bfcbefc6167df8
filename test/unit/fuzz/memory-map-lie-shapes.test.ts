// What each memory-map lie (src/fuzz/memory-map-lies.ts) makes of a map, checked against the
// rules an honest E820 / UEFI memory map keeps and the lie breaks: entries sorted by address and
// disjoint (Linux e820__update_table sorts and de-overlaps a firmware's table because it may not
// be), page-aligned (UEFI spec, EFI_MEMORY_DESCRIPTOR: PhysicalStart 4 KiB aligned, pages of
// 4 KiB), of a known type, inside the RAM the VM has, and each byte either accepted RAM or
// unaccepted memory, never both. In process, no guest: the guest test
// (test/guest/fuzz/memory-map-lies.test.ts) shows the decompressor refusing each.
import { describe, expect, it } from 'vitest';
import { ABI, E820_TYPE } from '../../../src/boot/layout.js';
import type { MemoryRange } from '../../../src/fuzz/attack-program.js';
import { MAP_LIES, honestMemoryMap, type MapLie } from '../../../src/fuzz/memory-map-lies.js';
import { Prng } from '../../../src/shared/prng.js';

const MiB = 1n << 20n;
const TWO_MB = 2n * MiB;
const RAM = 128n * MiB;
const { ram: RAM_TYPE, reserved: RESERVED, unaccepted: UNACCEPTED } = E820_TYPE;
const honest = honestMemoryMap(RAM, 64n * MiB);
const lie = (name: string): MapLie => MAP_LIES.find((l) => l.name === name)!;
const SEEDS = Array.from({ length: 60 }, (_, i) => BigInt(i + 1));
const end = (r: MemoryRange): bigint => r.addr + r.size;

/** Bytes that an entry of type `a` and one of type `b` both describe. */
function overlap(map: readonly MemoryRange[], a: number, b: number): bigint {
  let n = 0n;
  for (const x of map) for (const y of map) {
    if (x === y || x.type !== a || y.type !== b) continue;
    const lo = x.addr > y.addr ? x.addr : y.addr;
    const hi = end(x) < end(y) ? end(x) : end(y);
    if (hi > lo) n += hi - lo;
  }
  return n;
}

describe('the honest memory map (firmware/main.c e820_add_ram)', () => {
  it('is accepted RAM to the pre-accepted end, the firmware reserved range carved out, then unaccepted memory', () => {
    expect(honest).toEqual([
      { addr: 0n, size: ABI.MV_FIRMWARE_RESERVED_GPA, type: RAM_TYPE },
      { addr: ABI.MV_FIRMWARE_RESERVED_GPA, size: ABI.MV_FIRMWARE_RESERVED_END - ABI.MV_FIRMWARE_RESERVED_GPA, type: RESERVED },
      { addr: ABI.MV_FIRMWARE_RESERVED_END, size: 64n * MiB - ABI.MV_FIRMWARE_RESERVED_END, type: RAM_TYPE },
      { addr: 64n * MiB, size: 64n * MiB, type: UNACCEPTED },
    ]);
  });

  it('rounds the pre-accepted end up to 2 MiB, never past RAM, and has no unaccepted memory when all is pre-accepted', () => {
    expect(honestMemoryMap(RAM, 5n * MiB).at(-2)).toEqual({ addr: ABI.MV_FIRMWARE_RESERVED_END, size: 6n * MiB - ABI.MV_FIRMWARE_RESERVED_END, type: RAM_TYPE });
    expect(honestMemoryMap(RAM, 'all').map((r) => r.type)).toEqual([RAM_TYPE, RESERVED, RAM_TYPE]);
    expect(honestMemoryMap(RAM, 'all')).toEqual(honestMemoryMap(RAM, 512n * MiB));
  });

  it('leaves out the hole below 4 GiB and describes the RAM above it as one unaccepted range', () => {
    const map = honestMemoryMap(6n << 30n, 64n * MiB);
    expect(map.at(-2)).toEqual({ addr: 64n * MiB, size: ABI.MV_RAM_HOLE_GPA - 64n * MiB, type: UNACCEPTED });
    expect(map.at(-1)).toEqual({ addr: ABI.MV_RAM_HOLE_END, size: (6n << 30n) - ABI.MV_RAM_HOLE_END, type: UNACCEPTED });
  });

  it('keeps the rules every lie breaks: sorted, disjoint, aligned, known types, inside RAM', () => {
    for (let i = 1; i < honest.length; i++) expect(honest[i]!.addr).toBeGreaterThanOrEqual(end(honest[i - 1]!));
    expect(honest.every((r) => r.addr % 0x1000n === 0n && r.size % 0x1000n === 0n && r.size > 0n && end(r) <= RAM)).toBe(true);
  });
});

describe('memory-map lies', () => {
  it.each([
    ['unaccepted memory reaching into the accepted RAM beside it', UNACCEPTED],
    ['accepted RAM reaching into the unaccepted memory beside it', RAM_TYPE],
  ] as const)('%s: 1-4 units of 2 MiB described as both accepted and unaccepted, the grown entry the named one', (name, grown) => {
    for (const seed of SEEDS) {
      const out = lie(name).tell(new Prng(seed), honest, RAM)!;
      expect(out).toHaveLength(honest.length);
      const both = overlap(out, RAM_TYPE, UNACCEPTED);
      expect(both % TWO_MB).toBe(0n);
      expect(both >= TWO_MB && both <= 4n * TWO_MB).toBe(true);
      const changed = out.filter((r, i) => r.addr !== honest[i]!.addr || r.size !== honest[i]!.size);
      expect(changed).toHaveLength(1);
      expect(changed[0]!.type).toBe(grown);
      expect(changed[0]!.size).toBe(honest[out.indexOf(changed[0]!)]!.size + both);
    }
  });

  it('reaches no further than the entry beside it: the lie overlaps memory the map describes, not past it', () => {
    const short: MemoryRange[] = [{ addr: 0n, size: 64n * MiB, type: RAM_TYPE }, { addr: 64n * MiB, size: TWO_MB, type: UNACCEPTED }];
    for (const seed of SEEDS) {
      const out = lie('accepted RAM reaching into the unaccepted memory beside it').tell(new Prng(seed), short, RAM)!;
      expect(out[0]).toEqual({ addr: 0n, size: 64n * MiB + TWO_MB, type: RAM_TYPE });
      // Either way round: the earlier entry running on, the later one starting early.
      const onward = lie('unaccepted memory reaching into the accepted RAM beside it').tell(new Prng(seed), [short[1]!, { addr: 66n * MiB, size: TWO_MB, type: RAM_TYPE }], RAM)!;
      expect(onward[0]).toEqual({ addr: 64n * MiB, size: 2n * TWO_MB, type: UNACCEPTED });
      const early = lie('unaccepted memory reaching into the accepted RAM beside it').tell(new Prng(seed), [{ addr: 4n * MiB, size: TWO_MB, type: RAM_TYPE }, { addr: 6n * MiB, size: 8n * MiB, type: UNACCEPTED }], RAM)!;
      expect(early[1]).toEqual({ addr: 4n * MiB, size: 10n * MiB, type: UNACCEPTED });
    }
  });

  it('in a map already out of order, never moves an entry\'s start past its own end (no negative size)', () => {
    // An earlier lie put RAM at 0 after unaccepted memory at 18 MiB: RAM cannot start early there.
    const outOfOrder: MemoryRange[] = [{ addr: 18n * MiB, size: 4n * MiB, type: UNACCEPTED }, { addr: 0n, size: TWO_MB, type: RAM_TYPE }];
    for (const seed of SEEDS) {
      expect(lie('accepted RAM reaching into the unaccepted memory beside it').tell(new Prng(seed), outOfOrder, RAM)).toBeUndefined();
      const onward = lie('unaccepted memory reaching into the accepted RAM beside it').tell(new Prng(seed), outOfOrder, RAM)!;
      expect(onward[1]).toEqual(outOfOrder[1]);
      expect(onward[0]!.size).toBeGreaterThan(4n * MiB);
    }
  });

  it.each([
    ['part of accepted RAM described again as unaccepted', RAM_TYPE, UNACCEPTED],
    ['part of unaccepted memory described again as accepted RAM', UNACCEPTED, RAM_TYPE],
  ] as const)('%s: one more entry, right after its own, 2-4 whole units inside it', (name, from, as) => {
    for (const seed of SEEDS) {
      const out = lie(name).tell(new Prng(seed), honest, RAM)!;
      expect(out).toHaveLength(honest.length + 1);
      const k = out.findIndex((r, i) => i >= honest.length || r.addr !== honest[i]!.addr || r.type !== honest[i]!.type);
      const added = out[k]!;
      const entry = out[k - 1]!;
      expect(out.slice(0, k).concat(out.slice(k + 1))).toEqual(honest);
      expect(entry.type).toBe(from);
      expect(added.type).toBe(as);
      expect(added.addr % TWO_MB).toBe(0n);
      expect(added.addr >= entry.addr && end(added) <= end(entry)).toBe(true);
      // 2-4 units, or the rest of the entry when it is shorter.
      expect(added.size === end(entry) - added.addr || (added.size >= 2n * TWO_MB && added.size <= 4n * TWO_MB)).toBe(true);
      expect(added.size % TWO_MB).toBe(0n);
    }
  });

  it('describes again a part of any whole unit of memory, drawn over the memory (not the entries), and never an empty part', () => {
    // The honest map's accepted RAM is the 2 MiB below the reserved range (one unit) and the 60 MiB
    // above it (30 units): the part lands all over the large entry and on the small one about 1 time in 31.
    const starts = new Set<bigint>();
    let inFirstUnit = 0;
    for (const seed of SEEDS) {
      const out = lie('part of accepted RAM described again as unaccepted').tell(new Prng(seed), honest, RAM)!;
      const added = out.find((r) => r.type === UNACCEPTED && r.addr < 64n * MiB)!;
      expect(added.size).toBeGreaterThan(0n);
      starts.add(added.addr);
      if (added.addr < ABI.MV_FIRMWARE_RESERVED_GPA) inFirstUnit++;
    }
    expect(starts.size).toBeGreaterThan(10);
    expect(inFirstUnit).toBeLessThan(10);
    // An entry of exactly one unit is memory to lie about: the whole of it is described again.
    const oneUnit: MemoryRange[] = [{ addr: 0n, size: TWO_MB, type: RAM_TYPE }, { addr: TWO_MB, size: TWO_MB, type: UNACCEPTED }];
    for (const seed of SEEDS.slice(0, 5)) {
      expect(lie('part of accepted RAM described again as unaccepted').tell(new Prng(seed), oneUnit, RAM)![1]).toEqual({ addr: 0n, size: TWO_MB, type: UNACCEPTED });
      expect(lie('part of unaccepted memory described again as accepted RAM').tell(new Prng(seed), oneUnit, RAM)![2]).toEqual({ addr: TWO_MB, size: TWO_MB, type: RAM_TYPE });
    }
  });

  it("the firmware's reserved range described as usable memory: same place, usable type, nothing reserved left", () => {
    const types = new Set<number>();
    for (const seed of SEEDS) {
      const out = lie("the firmware's reserved range described as usable memory").tell(new Prng(seed), honest, RAM)!;
      expect(out.map((r) => [r.addr, r.size])).toEqual(honest.map((r) => [r.addr, r.size]));
      expect(out.some((r) => r.type === RESERVED)).toBe(false);
      types.add(out[1]!.type);
    }
    expect([...types].sort()).toEqual([RAM_TYPE, UNACCEPTED].sort());
  });

  it('a memory range beyond the end of RAM: usable memory past RAM, by 1-4 units, in the last entry or one after it', () => {
    let grew = 0;
    let added = 0;
    for (const seed of SEEDS) {
      const out = lie('a memory range beyond the end of RAM').tell(new Prng(seed), honest, RAM)!;
      const last = out.at(-1)!;
      expect([RAM_TYPE, UNACCEPTED]).toContain(last.type);
      const past = end(last) - RAM;
      expect(past % TWO_MB).toBe(0n);
      expect(past >= TWO_MB && past <= 4n * TWO_MB).toBe(true);
      if (out.length === honest.length) grew++;
      else {
        added++;
        expect(out).toHaveLength(honest.length + 1);
        expect(last.addr).toBe(RAM);
      }
    }
    expect(grew).toBeGreaterThan(0);
    expect(added).toBeGreaterThan(0);
    // RAM that is not a whole number of units: the added range starts at the next unit, whole units past RAM.
    const odd = RAM + 0x1000n;
    const starts = SEEDS.map((seed) => lie('a memory range beyond the end of RAM').tell(new Prng(seed), honestMemoryMap(odd, 64n * MiB), odd)!)
      .filter((out) => out.length === honest.length + 1).map((out) => out.at(-1)!.addr);
    expect(starts.length).toBeGreaterThan(0);
    expect(new Set(starts)).toEqual(new Set([RAM + TWO_MB]));
    // An empty map gets its one entry past RAM.
    expect(lie('a memory range beyond the end of RAM').tell(new Prng(1n), [], RAM)![0]!.addr).toBe(RAM);
  });

  it('a memory range of size zero, or one that wraps around: one entry empty, wrapping past 2^64, or of 1 TiB or more', () => {
    const kinds = new Set<string>();
    for (const seed of SEEDS) {
      const out = lie('a memory range of size zero, or one that wraps around').tell(new Prng(seed), honest, RAM)!;
      const changed = out.filter((r, i) => r.size !== honest[i]!.size);
      expect(changed).toHaveLength(1);
      const r = changed[0]!;
      const kind = r.size === 0n ? 'zero' : end(r) >= 1n << 64n ? 'wraps' : r.size >= 1n << 40n ? 'huge' : 'none';
      expect(kind).not.toBe('none');
      expect(r.size < 1n << 64n).toBe(true);
      kinds.add(kind);
    }
    expect([...kinds].sort()).toEqual(['huge', 'wraps', 'zero']);
  });

  it('memory ranges out of order: the same entries, no longer sorted by address', () => {
    for (const seed of SEEDS) {
      const out = lie('memory ranges out of order').tell(new Prng(seed), honest, RAM)!;
      const sorted = (m: readonly MemoryRange[]) => [...m].sort((a, b) => (a.addr < b.addr ? -1 : 1));
      expect(sorted(out)).toEqual(honest);
      expect(out.some((r, i) => i > 0 && r.addr < out[i - 1]!.addr)).toBe(true);
    }
    expect(lie('memory ranges out of order').tell(new Prng(1n), honest.slice(0, 1), RAM)).toBeUndefined();
  });

  it('a memory range that is not page-aligned: one usable entry with a start or size off 4 KiB', () => {
    for (const seed of SEEDS) {
      const out = lie('a memory range that is not page-aligned').tell(new Prng(seed), honest, RAM)!;
      const off = out.filter((r) => r.addr % 0x1000n !== 0n || r.size % 0x1000n !== 0n);
      expect(off).toHaveLength(1);
      expect([RAM_TYPE, UNACCEPTED]).toContain(off[0]!.type);
    }
    expect(lie('a memory range that is not page-aligned').tell(new Prng(1n), [{ addr: 0n, size: TWO_MB, type: RESERVED }], RAM)).toBeUndefined();
    // Over an entry an earlier lie left empty, the size cannot go below zero (an E820 size is unsigned).
    for (const seed of SEEDS) {
      const out = lie('a memory range that is not page-aligned').tell(new Prng(seed), [{ addr: 0n, size: 0n, type: RAM_TYPE }], RAM)!;
      expect(out[0]!.size).toBe(0n);
    }
  });

  it('a memory range of a type no guest knows: one entry neither RAM, reserved nor unaccepted', () => {
    for (const seed of SEEDS) {
      const out = lie('a memory range of a type no guest knows').tell(new Prng(seed), honest, RAM)!;
      expect(out.map((r) => [r.addr, r.size])).toEqual(honest.map((r) => [r.addr, r.size]));
      expect(out.filter((r) => ![RAM_TYPE, RESERVED, UNACCEPTED].includes(r.type as 1 | 2 | 15))).toHaveLength(1);
    }
  });

  it('gives no lie where the map has no place for it, and never changes the map it is given', () => {
    const noLine: MemoryRange[] = [{ addr: 0n, size: 64n * MiB, type: RAM_TYPE }];
    expect(lie('unaccepted memory reaching into the accepted RAM beside it').tell(new Prng(1n), noLine, RAM)).toBeUndefined();
    expect(lie('part of unaccepted memory described again as accepted RAM').tell(new Prng(1n), noLine, RAM)).toBeUndefined();
    expect(lie("the firmware's reserved range described as usable memory").tell(new Prng(1n), noLine, RAM)).toBeUndefined();
    for (const l of MAP_LIES) {
      if (l.name !== 'a memory range beyond the end of RAM') expect(l.tell(new Prng(1n), [], RAM)).toBeUndefined();
      const given = structuredClone(honest);
      for (const seed of SEEDS.slice(0, 10)) l.tell(new Prng(seed), given, RAM);
      expect(given).toEqual(honest);
    }
    // Every lie in the list is one of those checked above.
    expect(MAP_LIES).toHaveLength(10);
  });
});
