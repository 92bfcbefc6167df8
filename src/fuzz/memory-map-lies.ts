// The memory description a hostile VMM hands the firmware, lie by lie: a dictionary of the
// structured ways a memory map can be wrong (AFL dictionary tokens for an E820 table). Each lie
// starts from a map (the honest one the firmware would build, or a parent's already hostile one,
// so lies stack over generations) and changes one thing in it, at a place and by an amount the
// campaign's seeded PRNG picks. The list is the threat model's, not any stub's: a VMM controls
// every field of every entry, so it can describe memory twice, beyond RAM, over the firmware's
// own memory, out of order, with empty, wrapping or unaligned ranges and unknown types.
//
// Deliberately absent: a map that is sorted, disjoint, aligned and inside RAM but moves the line
// between accepted and unaccepted RAM. No check of the map alone can tell it from the truth;
// only the firmware that did the accepting can, and the map-from-config fixture firmware that
// passes the VMM's map through skips exactly that by design (guest/DEFENCES.md). A campaign that
// "found" it would be reporting the fixture, not the stubs under test.
import { ABI, E820_TYPE, guestRamRanges } from '../boot/layout.js';
import type { MemoryRange } from './attack-program.js';
import type { Prng } from '../shared/prng.js';
import { U64_LIMIT } from '../shared/u64.js';

const PAGE = 0x1000n;
const TWO_MB = 0x200000n;
/** E820 types no stub knows: ACPI, NVS, unusable, persistent memory, a vendor type, 0 and all-ones. */
const UNKNOWN_TYPES = [0, 3, 4, 5, 7, 20, 0xffffffff];

const alignUp = (v: bigint, a: bigint) => ((v + a - 1n) / a) * a;
const min = (a: bigint, b: bigint) => (a < b ? a : b);
const max = (a: bigint, b: bigint) => (a > b ? a : b);

/**
 * The map the honest firmware builds (firmware/main.c firmware_main, e820_add_ram): RAM
 * (layout.ts guestRamRanges) split where its pre-acceptance ends (rounded up to 2 MiB, never past
 * RAM) into accepted RAM and unaccepted memory, with the firmware's reserved range carved out.
 * The VMM knows it: memory size and pre-accepted size are its own configuration.
 */
export function honestMemoryMap(memoryBytes: bigint, preAccept: bigint | 'all'): MemoryRange[] {
  const acceptedEnd = preAccept === 'all' ? memoryBytes : min(alignUp(min(preAccept, memoryBytes), TWO_MB), memoryBytes);
  const map: MemoryRange[] = [];
  const add = (start: bigint, end: bigint, type: number) => {
    // No two entries it adds meet with one type: the carve puts reserved between RAM, the split
    // puts unaccepted after accepted, and RAM ranges have the hole between them.
    if (start < end) map.push({ addr: start, size: end - start, type });
  };
  const addRam = (start: bigint, end: bigint) => {
    const split = min(max(acceptedEnd, start), end);
    add(start, split, E820_TYPE.ram);
    add(split, end, E820_TYPE.unaccepted);
  };
  for (const ram of guestRamRanges(memoryBytes)) {
    if (ram.start < ABI.MV_FIRMWARE_RESERVED_END && ram.end > ABI.MV_FIRMWARE_RESERVED_GPA) {
      addRam(ram.start, ABI.MV_FIRMWARE_RESERVED_GPA);
      add(ABI.MV_FIRMWARE_RESERVED_GPA, ABI.MV_FIRMWARE_RESERVED_END, E820_TYPE.reserved);
      addRam(ABI.MV_FIRMWARE_RESERVED_END, ram.end);
    } else {
      addRam(ram.start, ram.end);
    }
  }
  return map;
}

export interface MapLie {
  name: string;
  /** What the map says about which memory is accepted, or the form of the table itself. */
  about: 'acceptance' | 'shape';
  /** The map with this lie told in it (a new array; `map` is left alone), or undefined where the map gives it no place. */
  tell(rng: Prng, map: readonly MemoryRange[], memoryBytes: bigint): MemoryRange[] | undefined;
}

/** 1–4 units of 2 MiB: how far a lie moves a boundary (the acceptance unit, so whole units change). */
const someUnits = (rng: Prng) => TWO_MB * BigInt(1 + rng.below(4));
/**
 * 2–4 units: the size of a range described again. A guest accepts an unaccepted range shorter
 * than two units at once instead of recording it (Linux process_unaccepted_memory, and
 * guest/decompressor/main.c after it), so a shorter lie is only ever a lie about one accept.
 */
const someRecordedUnits = (rng: Prng) => TWO_MB * BigInt(2 + rng.below(3));

const copy = (map: readonly MemoryRange[]) => map.map((r) => ({ ...r }));
const usable = (type: number) => type === E820_TYPE.ram || type === E820_TYPE.unaccepted;

/** Entries i-1, i where accepted RAM meets unaccepted memory (either order): where the map says what is accepted. */
function acceptanceLines(map: readonly MemoryRange[]): number[] {
  const lines: number[] = [];
  for (let i = 1; i < map.length; i++) {
    const types = [map[i - 1]!.type, map[i]!.type];
    if (types.includes(E820_TYPE.ram) && types.includes(E820_TYPE.unaccepted)) lines.push(i);
  }
  return lines;
}

/**
 * `map` with the `type` entry at one of its acceptance lines reaching 1–4 units into the entry
 * beside it (the later one starting early, or the earlier one running on): that memory is then
 * described as both accepted and unaccepted.
 */
function reachAcross(rng: Prng, map: readonly MemoryRange[], type: number): MemoryRange[] | undefined {
  // A later `type` entry can start early only if it starts after the one before it: in a map already
  // out of order (another lie) it would start at the earlier entry's address, past its own end.
  const lines = acceptanceLines(map).filter((i) => map[i]!.type !== type || map[i - 1]!.addr < map[i]!.addr);
  if (lines.length === 0) return undefined;
  const out = copy(map);
  const i = rng.pick(lines);
  const before = out[i - 1]!;
  const after = out[i]!;
  const by = someUnits(rng);
  if (after.type === type) {
    const start = max(before.addr, after.addr - min(by, after.addr));
    after.size += after.addr - start;
    after.addr = start;
  } else {
    before.size += min(by, after.size);
  }
  return out;
}

/**
 * `map` with a whole-unit part of its `type` memory described again, right after its entry, as
 * `as`: 2–4 units from one drawn uniformly over all that memory (not over entries: a large range
 * is as likely to be lied about as its size says), clipped to its entry.
 */
function describeAgain(rng: Prng, map: readonly MemoryRange[], type: number, as: number): MemoryRange[] | undefined {
  const entries = map.filter((r) => r.type === type && r.size >= TWO_MB);
  const units = entries.reduce((n, r) => n + r.size / TWO_MB, 0n);
  if (units === 0n) return undefined;
  let unit = rng.belowBig(units);
  const entry = entries.find((r) => {
    if (unit < r.size / TWO_MB) return true;
    unit -= r.size / TWO_MB;
    return false;
  })!;
  const addr = entry.addr + unit * TWO_MB;
  const out = copy(map);
  out.splice(map.indexOf(entry) + 1, 0, { addr, size: min(someRecordedUnits(rng), entry.addr + entry.size - addr), type: as });
  return out;
}

export const MAP_LIES: readonly MapLie[] = [
  // ---- acceptance lies: what the map says is accepted, where accepted RAM and unaccepted memory meet
  {
    name: 'unaccepted memory reaching into the accepted RAM beside it',
    about: 'acceptance',
    tell: (rng, map) => reachAcross(rng, map, E820_TYPE.unaccepted),
  },
  {
    name: 'accepted RAM reaching into the unaccepted memory beside it',
    about: 'acceptance',
    tell: (rng, map) => reachAcross(rng, map, E820_TYPE.ram),
  },
  {
    name: 'part of accepted RAM described again as unaccepted',
    about: 'acceptance',
    tell: (rng, map) => describeAgain(rng, map, E820_TYPE.ram, E820_TYPE.unaccepted),
  },
  {
    name: 'part of unaccepted memory described again as accepted RAM',
    about: 'acceptance',
    tell: (rng, map) => describeAgain(rng, map, E820_TYPE.unaccepted, E820_TYPE.ram),
  },

  // ---- shape lies: a table no firmware would build
  {
    // The firmware's own reserved memory (boot params, page tables) offered as usable memory.
    name: "the firmware's reserved range described as usable memory",
    about: 'shape',
    tell: (rng, map) => {
      const i = map.findIndex((r) => r.type === E820_TYPE.reserved);
      if (i < 0) return undefined;
      const out = copy(map);
      out[i]!.type = rng.pick([E820_TYPE.ram, E820_TYPE.unaccepted]);
      return out;
    },
  },
  {
    // Usable memory the VM does not have: the last entry runs past the end of RAM, or one more follows it.
    name: 'a memory range beyond the end of RAM',
    about: 'shape',
    tell: (rng, map, memoryBytes) => {
      const out = copy(map);
      const last = out[out.length - 1];
      if (last && rng.chance(1, 2)) last.size += someUnits(rng);
      else out.push({ addr: alignUp(memoryBytes, TWO_MB), size: someUnits(rng), type: rng.pick([E820_TYPE.ram, E820_TYPE.unaccepted]) });
      return out;
    },
  },
  {
    name: 'a memory range of size zero, or one that wraps around',
    about: 'shape',
    tell: (rng, map) => {
      if (map.length === 0) return undefined;
      const out = copy(map);
      const entry = out[rng.below(out.length)]!;
      switch (rng.below(3)) {
        case 0: entry.size = 0n; break;
        case 1: entry.size = U64_LIMIT - PAGE * BigInt(1 + rng.below(16)); break; // addr + size wraps past 2^64 (past the top, from 0)
        default: entry.size = 1n << BigInt(40 + rng.below(24)); break;     // huge, still below 2^64
      }
      return out;
    },
  },
  {
    name: 'memory ranges out of order',
    about: 'shape',
    tell: (rng, map) => {
      if (map.length < 2) return undefined;
      const out = copy(map);
      const i = rng.below(out.length);
      const j = (i + 1 + rng.below(out.length - 1)) % out.length;
      [out[i], out[j]] = [out[j]!, out[i]!];
      return out;
    },
  },
  {
    name: 'a memory range that is not page-aligned',
    about: 'shape',
    tell: (rng, map) => {
      const candidates = map.filter((r) => usable(r.type));
      if (candidates.length === 0) return undefined;
      const out = copy(map);
      const entry = out[map.indexOf(rng.pick(candidates))]!;
      const by = rng.pick([1n, 0x10n, 0x800n, 0xfffn]);
      if (rng.chance(1, 2)) entry.addr += by;
      else entry.size -= entry.size > by ? by : 0n;
      return out;
    },
  },
  {
    name: 'a memory range of a type no guest knows',
    about: 'shape',
    tell: (rng, map) => {
      if (map.length === 0) return undefined;
      const out = copy(map);
      out[rng.below(out.length)]!.type = rng.pick(UNKNOWN_TYPES);
      return out;
    },
  },
];
