// A 4K walk answers from a memo of the levels above it (the last 2 MiB range walked), a 2M walk
// from one of the levels above 2M (the last 1 GiB range): whatever changes above those levels,
// through any path, walks and SEAMCALL reachability must follow it.
import { describe, expect, it } from 'vitest';
import { Sept } from '../../../src/platform/tdx/sept.js';

const MIB2 = 0x200000n;
const PAGE = MIB2 + 0x3000n;

/** A table with PML4, PDPT and PD present over the first 1 GiB and a MAPPED 4K leaf at PAGE. */
function mappedLeaf(): Sept {
  const sept = new Sept(16n * MIB2, 3);
  sept.setState(3, 0n, 'NL_MAPPED');
  sept.setState(2, 0n, 'NL_MAPPED');
  sept.setState(1, MIB2, 'NL_MAPPED');
  sept.setState(0, PAGE, 'MAPPED');
  return sept;
}

describe('Sept 4K walks', () => {
  it('follow every change above the 4K level: setState at each level, split, merge and restores', () => {
    const sept = mappedLeaf();
    const saved = sept.saveState();
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
    expect(sept.reachedState(PAGE, 0)).toBe('MAPPED');

    // A blocked PD non-leaf stops the walk above the page (the memo of that 2 MiB range is stale).
    sept.setState(1, MIB2, 'NL_BLOCKED');
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 1, state: 'NL_BLOCKED' });
    expect(sept.reachedState(PAGE, 0)).toBeUndefined();
    sept.setState(1, MIB2, 'NL_MAPPED');
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 0, state: 'MAPPED' });

    // Higher up too.
    sept.setState(2, 0n, 'NL_BLOCKED');
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 2, state: 'NL_BLOCKED' });
    sept.setState(2, 0n, 'NL_MAPPED');
    expect(sept.walk(PAGE, 0).state).toBe('MAPPED');

    // A merge makes the range one 2M leaf; a split makes it 512 4K leaves again.
    for (let i = 0n; i < 512n; i++) sept.setState(0, MIB2 + i * 0x1000n, 'MAPPED');
    sept.merge(1, MIB2, 'PENDING');
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 1, state: 'PENDING' });
    sept.split(1, MIB2, 'PENDING');
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 0, state: 'PENDING' });

    // A walk in another 2 MiB range (no PD there), then back.
    expect(sept.walk(4n * MIB2, 0)).toMatchObject({ level: 1, state: 'FREE' });
    expect(sept.walk(PAGE, 0).state).toBe('PENDING');

    // A restore puts the levels above back as well.
    sept.setState(1, MIB2, 'NL_BLOCKED');
    expect(sept.walk(PAGE, 0).level).toBe(1);
    sept.loadState(saved);
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
    sept.setState(2, 0n, 'FREE');
    expect(sept.walk(PAGE, 0)).toMatchObject({ level: 2, state: 'FREE' });
    sept.loadState(saved);
    expect(sept.reachedState(PAGE, 0)).toBe('MAPPED');
  });

  it('2M walks follow every change above the 2M level: setState, split of a 1G leaf, merge into one and restores', () => {
    const sept = mappedLeaf();
    const saved = sept.saveState();
    expect(sept.walk(MIB2, 1)).toMatchObject({ level: 1, state: 'NL_MAPPED' });
    expect(sept.reachedState(MIB2, 1)).toBe('NL_MAPPED');
    // Changes at the 2M level itself are seen at once (the memo covers only the levels above).
    sept.setState(1, 4n * MIB2, 'PENDING');
    expect(sept.walk(4n * MIB2, 1)).toMatchObject({ level: 1, state: 'PENDING', isLeaf: true });

    sept.setState(2, 0n, 'NL_BLOCKED');
    expect(sept.walk(MIB2, 1)).toMatchObject({ level: 2, state: 'NL_BLOCKED' });
    expect(sept.reachedState(MIB2, 1)).toBeUndefined();
    sept.setState(2, 0n, 'NL_MAPPED');
    expect(sept.walk(MIB2, 1).level).toBe(1);
    sept.setState(3, 0n, 'NL_BLOCKED');
    expect(sept.walk(MIB2, 1)).toMatchObject({ level: 3, state: 'NL_BLOCKED' });
    sept.setState(3, 0n, 'NL_MAPPED');

    // The 1G entry merged into a leaf, then split again into PENDING 2M leaves.
    sept.merge(2, 0n, 'MAPPED');
    expect(sept.walk(MIB2, 1)).toMatchObject({ level: 2, state: 'MAPPED' });
    sept.split(2, 0n, 'PENDING');
    expect(sept.walk(MIB2, 1)).toMatchObject({ level: 1, state: 'PENDING' });

    // Another 1 GiB range (no PDPT entry there), then back; a restore puts it all back.
    expect(sept.walk(1n << 30n, 1)).toMatchObject({ level: 2, state: 'FREE' });
    expect(sept.walk(MIB2, 1).state).toBe('PENDING');
    sept.loadState(saved);
    expect(sept.walk(MIB2, 1)).toMatchObject({ level: 1, state: 'NL_MAPPED' });
    sept.setState(2, 0n, 'FREE');
    expect(sept.walk(MIB2, 1)).toMatchObject({ level: 2, state: 'FREE' });
    sept.loadState(saved);
    expect(sept.reachedState(MIB2, 1)).toBe('NL_MAPPED');
  });
});

// secure_ept_walk (sept_manager.c) returns the entry it stopped on; the walk's result names that
// entry's GPA range, aligned to the level it stopped at, whatever byte of the range was asked.
describe('Sept walks: the base of the entry reached', () => {
  it('is the GPA aligned to the level the walk ended at, for a walk to 4K, to 2M and one that stops above', () => {
    const sept = mappedLeaf();
    sept.setState(1, 2n * MIB2, 'PENDING');
    expect(sept.walk(PAGE + 0x123n, 0)).toEqual({ level: 0, requestedLevel: 0, state: 'MAPPED', base: PAGE, isLeaf: true });
    expect(sept.walk(2n * MIB2 + 0x5123n, 1)).toEqual({ level: 1, requestedLevel: 1, state: 'PENDING', base: 2n * MIB2, isLeaf: true });
    expect(sept.walk(2n * MIB2 + 0x5123n, 0)).toEqual({ level: 1, requestedLevel: 0, state: 'PENDING', base: 2n * MIB2, isLeaf: true });
    expect(sept.walk(MIB2 + 0x1234n, 1)).toEqual({ level: 1, requestedLevel: 1, state: 'NL_MAPPED', base: MIB2, isLeaf: false });
  });
});

// The module aligns a GPA to an entry's range with the IA32E_*_ADDR_MASK constants of
// src/common/x86_defs/x86_defs.h (TDX module 1.5): 0x000FFFFFFFFFF000 (4K), 0x000FFFFFFFE00000
// (2M), 0x000FFFFFC0000000 (1G), 0x000FFF8000000000 (512G, a PML4 entry) and 0x000F000000000000
// (256T, a PML5 entry). Each level's range is 512 of the level below (Intel SDM Vol. 3C §29.3.2).
describe('Sept walks that stop above the 1G level', () => {
  const MASKS = [0x000ffffffffff000n, 0x000fffffffe00000n, 0x000fffffc0000000n, 0x000fff8000000000n, 0x000f000000000000n] as const;
  const GPA = (0x3n << 48n) | (0x5n << 39n) | (0x7n << 30n) | (0x9n << 21n) | (0xbn << 12n) | 0x123n;

  it('align a GPA to each level as the module masks it', () => {
    for (let level = 0; level <= 4; level++) expect(Sept.alignDown(GPA, level as 0 | 1 | 2 | 3 | 4)).toBe(GPA & MASKS[level]!);
  });

  it('name the PML5 and PML4 entry they stop at by its 256 TiB or 512 GiB range (GPAW 52)', () => {
    const sept = new Sept(16n * MIB2, 4);
    expect(sept.walk(GPA, 0)).toEqual({ level: 4, requestedLevel: 0, state: 'FREE', base: GPA & MASKS[4], isLeaf: false });
    sept.setState(4, GPA, 'NL_MAPPED');
    expect(sept.walk(GPA, 0)).toEqual({ level: 3, requestedLevel: 0, state: 'FREE', base: GPA & MASKS[3], isLeaf: false });
    sept.setState(3, GPA, 'NL_MAPPED');
    expect(sept.walk(GPA, 1)).toEqual({ level: 2, requestedLevel: 1, state: 'FREE', base: GPA & MASKS[2], isLeaf: false });
    // The entry one PML4 range further on is another entry: FREE, and the walk to it stops there.
    expect(sept.walk(GPA + (1n << 39n), 0)).toMatchObject({ level: 3, state: 'FREE', base: (GPA & MASKS[3]) + (1n << 39n) });
  });
});
