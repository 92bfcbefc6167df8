// A SEPT restore of the state it last saved or loaded puts back only the entries changed since;
// restoring must give exactly the tables a full copy would, however they were changed.
import { describe, expect, it } from 'vitest';
import { Sept } from '../../../src/platform/tdx/sept.js';
import type { SeptLevel } from '../../../src/platform/tdx/sept-states.js';

const MIB2 = 0x200000n;

function tables(sept: Sept): string {
  const out: string[] = [];
  for (let level = 0; level <= sept.topLevel; level++) {
    for (let gpa = 0n; gpa < 8n * MIB2; gpa += level === 0 ? 0x1000n : MIB2) {
      const e = sept.entry(level as SeptLevel, gpa);
      if (e) out.push(`${level}:${gpa.toString(16)}=${e.state}/${e.acceptCounter}/${e.blockEpoch}`);
    }
  }
  return out.join(' ');
}

describe('Sept snapshots', () => {
  it('restore the saved tables after setState, split, merge and in-place counter updates, again and again', () => {
    const sept = new Sept(16n * MIB2, 3);
    sept.setState(3, 0n, 'NL_MAPPED');
    sept.setState(2, 0n, 'NL_MAPPED');
    sept.setState(1, 0n, 'PENDING');
    sept.setState(1, MIB2, 'MAPPED');
    const saved = sept.saveState();
    const before = tables(sept);
    for (let round = 0; round < 3; round++) {
      sept.setState(1, 0n, 'PENDING', { acceptCounter: 7 + round });  // a 2M ACCEPT's progress
      sept.split(1, MIB2, 'MAPPED');
      sept.setState(0, MIB2 + 0x3000n, 'BLOCKED', { blockEpoch: 5n });
      sept.setState(0, MIB2 + 0x4000n, 'FREE');
      sept.setState(1, 2n * MIB2, 'PENDING');
      sept.setState(1, 4n * MIB2, 'NL_MAPPED');
      sept.setFreeLeaves(4n * MIB2 + 0x5000n, 3, 'MAPPED');  // a launch's PAGE.ADD range
      if (round === 1) sept.merge(1, MIB2, 'BLOCKED');
      expect(tables(sept)).not.toBe(before);
      sept.loadState(saved);
      expect(tables(sept)).toBe(before);
    }
    // The saved state itself was never changed: a fresh table loaded from it is the same.
    const other = new Sept(16n * MIB2, 3);
    other.loadState(saved);
    expect(tables(other)).toBe(before);
    // Loading another state copies it whole, and later restores of that one work the same way.
    other.setState(1, 3n * MIB2, 'PENDING');
    const second = other.saveState();
    sept.loadState(second);
    sept.setState(1, 3n * MIB2, 'FREE');
    sept.loadState(second);
    expect(tables(sept)).toBe(tables(other));
    sept.loadState(saved);
    expect(tables(sept)).toBe(before);
  });
});

describe('Sept snapshots of merged and split ranges', () => {
  it('a restore gives back the 4K leaves a merge (PROMOTE) took away, and the 2M children of a split 1G leaf', () => {
    const sept = new Sept(1024n * MIB2, 3);
    sept.setState(3, 0n, 'NL_MAPPED');
    sept.setState(2, 0n, 'NL_MAPPED');
    sept.setState(1, MIB2, 'MAPPED');
    sept.split(1, MIB2, 'MAPPED');                       // 512 MAPPED 4K leaves under an NL_MAPPED PD entry
    sept.setState(0, MIB2 + 0x3000n, 'PENDING');
    sept.setState(2, 1n << 30n, 'PENDING');              // a 1G leaf
    const saved = sept.saveState();
    const before = tables(sept);
    const counts = sept.entryCounts();
    expect(counts[0]).toBe(512);
    for (let round = 0; round < 2; round++) {
      sept.merge(1, MIB2, 'MAPPED');
      // tdh_mem_page_promote.c frees the child SEPT page: no 4K entry is left under the new 2M leaf.
      expect(sept.entryCounts()[0]).toBe(0);
      sept.split(2, 1n << 30n, 'PENDING');
      expect(sept.walk((1n << 30n) + 5n * MIB2, 1)).toMatchObject({ level: 1, state: 'PENDING' });
      // tdh_mem_page_demote.c: the new SEPT page's 512 entries split the 1G range, the last one too.
      expect(sept.walk((1n << 30n) + 511n * MIB2 + 0x1000n, 1)).toMatchObject({ level: 1, state: 'PENDING', base: (1n << 30n) + 511n * MIB2 });
      expect(sept.entryCounts()[1]).toBe(counts[1]! + 512);
      sept.merge(2, 1n << 30n, 'PENDING');
      expect(sept.entryCounts()[1]).toBe(counts[1]);
      sept.loadState(saved);
      expect(tables(sept)).toBe(before);
      expect(sept.entryCounts()).toEqual(counts);
      expect(sept.walk(MIB2 + 0x3000n, 0)).toMatchObject({ level: 0, state: 'PENDING' });
      expect(sept.walk(MIB2 + 0x4000n, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
    }
    // Counts are of entries, not of table slots: a leaf made FREE in a table that stays is one fewer.
    sept.setState(0, MIB2 + 0x3000n, 'FREE');
    expect(sept.entryCounts()[0]).toBe(511);
  });
});

// A saved state is a value: whatever the table that saved it, or a table that loaded it, does
// afterwards (a new 4K leaf in an existing leaf table, one in a new table, one made FREE), a
// table loading it later gets exactly what was saved (a fuzz campaign restores one saved state
// into many machines, each changing its own copy).
describe('Sept saved states stay as saved', () => {
  /** PML4, PDPT and two PDs present; 4K leaves in the first 2 MiB range. */
  function build(): Sept {
    const sept = new Sept(16n * MIB2, 3);
    sept.setState(3, 0n, 'NL_MAPPED');
    sept.setState(2, 0n, 'NL_MAPPED');
    sept.setState(1, 0n, 'NL_MAPPED');
    sept.setState(1, MIB2, 'NL_MAPPED');
    sept.setState(0, 0x1000n, 'MAPPED');
    sept.setState(0, 0x2000n, 'PENDING');
    return sept;
  }
  const change = (sept: Sept) => {
    sept.setState(0, 0x3000n, 'MAPPED');           // a new leaf in the existing leaf table
    sept.setState(0, 0x1000n, 'FREE');             // a leaf of it made FREE
    sept.setState(0, MIB2 + 0x5000n, 'PENDING');    // a leaf in a new leaf table
    sept.setState(1, 2n * MIB2, 'PENDING');         // an entry above 4K
  };

  it('changes after a save do not reach the saved state', () => {
    const sept = build();
    const before = tables(sept);
    const saved = sept.saveState();
    change(sept);
    const other = new Sept(16n * MIB2, 3);
    other.loadState(saved);
    expect(tables(other)).toBe(before);
  });

  it('changes after loading a state another table saved do not reach that state', () => {
    const saved = build().saveState();
    const before = tables(build());
    const first = new Sept(16n * MIB2, 3);
    first.loadState(saved);
    change(first);
    const second = new Sept(16n * MIB2, 3);
    second.loadState(saved);
    expect(tables(second)).toBe(before);
  });

  it('a restore returns to the latest save, not to an earlier one', () => {
    const sept = build();
    sept.setState(1, 2n * MIB2, 'PENDING');
    sept.saveState();
    sept.setState(1, 2n * MIB2, 'MAPPED');
    sept.setState(0, 0x3000n, 'MAPPED');
    const latest = sept.saveState();
    const atLatest = tables(sept);
    sept.setState(1, 2n * MIB2, 'BLOCKED');
    sept.setState(0, 0x3000n, 'FREE');
    sept.loadState(latest);
    expect(tables(sept)).toBe(atLatest);
  });
});
