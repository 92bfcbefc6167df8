// AcceptedRanges: the union of accepted ranges, for acceptedBytes.distinct.
import { describe, expect, it } from 'vitest';
import { AcceptedRanges } from '../../../src/boot/accepted-ranges.js';

describe('AcceptedRanges', () => {
  it('counts each byte once, whatever the order and overlap of the ranges', () => {
    const r = new AcceptedRanges();
    r.add(0x200000n, 0x400000n);
    r.add(0x400000n, 0x600000n);     // continues the last run
    r.add(0x1000n, 0x2000n);         // below everything
    r.add(0x300000n, 0x301000n);     // inside a run: nothing new
    expect(r.bytes).toBe(0x400000n + 0x1000n);
    r.add(0x0n, 0x800000n);          // covers everything and more
    expect(r.bytes).toBe(0x800000n);
    r.add(0x900000n, 0xa00000n);
    r.add(0x7ff000n, 0x901000n);     // bridges two runs
    expect(r.bytes).toBe(0xa00000n);
  });

  it('agrees with a page-by-page count on a scattered pattern', () => {
    const r = new AcceptedRanges();
    const pages = new Set<number>();
    let x = 12345;
    for (let i = 0; i < 2000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const page = x % 4096;
      const n = 1 + (x % 7);
      r.add(BigInt(page) * 0x1000n, BigInt(page + n) * 0x1000n);
      for (let p = page; p < page + n; p++) pages.add(p);
    }
    expect(r.bytes).toBe(BigInt(pages.size) * 0x1000n);
  });

  it('merges ranges that touch into one run, in whatever order they come, so its state stays a few runs, not one per accept', () => {
    const page = (n: number) => BigInt(n) * 0x1000n;
    const upwards = new AcceptedRanges();
    for (let n = 0; n < 64; n++) upwards.add(page(n), page(n + 1));
    expect(upwards.saveState()).toEqual([[0n, page(64)]]);
    // Even pages first, then the odd ones between them: each odd page closes a gap between two runs.
    const interleaved = new AcceptedRanges();
    for (let n = 0; n < 64; n += 2) interleaved.add(page(n), page(n + 1));
    expect(interleaved.saveState()).toHaveLength(32);
    for (let n = 1; n < 64; n += 2) interleaved.add(page(n), page(n + 1));
    expect(interleaved.saveState()).toEqual([[0n, page(64)]]);
    // A range that ends where a run starts, below the last run.
    const below = new AcceptedRanges();
    below.add(page(8), page(9));
    below.add(page(20), page(21));
    below.add(page(7), page(8));
    expect(below.saveState()).toEqual([[page(7), page(9)], [page(20), page(21)]]);
    expect(below.bytes).toBe(page(3));
  });

  it('saves and restores its state', () => {
    const r = new AcceptedRanges();
    r.add(0n, 0x1000n);
    const saved = r.saveState();
    r.add(0x5000n, 0x6000n);
    r.loadState(saved);
    expect(r.bytes).toBe(0x1000n);
    r.add(0x1000n, 0x2000n);
    expect(r.bytes).toBe(0x2000n);
  });

  it('loads the same state again and again, whether or not accepts changed it in between (a fuzz campaign restores one state per execution)', () => {
    const r = new AcceptedRanges();
    r.add(0n, 0x1000n);
    r.add(0x4000n, 0x5000n);
    const saved = r.saveState();
    const copy = structuredClone(saved);
    r.loadState(saved);
    r.loadState(saved); // nothing changed: the same state
    expect(r.bytes).toBe(0x2000n);
    r.add(0x1000n, 0x4000n); // merges into the runs: the loaded state must not be what changed
    expect(r.bytes).toBe(0x5000n);
    expect(saved).toEqual(copy);
    r.loadState(saved);
    expect(r.bytes).toBe(0x2000n);
    expect(r.saveState()).toEqual(copy);
    r.add(0x5000n, 0x6000n); // extends the last run in place
    r.loadState(saved);
    expect(r.saveState()).toEqual(copy);
    expect(saved).toEqual(copy);
    r.add(0x4000n, 0x5000n); // inside a run: nothing changes
    r.add(0x8000n, 0x9000n); // a new highest run
    r.loadState(saved);
    expect(r.saveState()).toEqual(copy);
    expect(r.bytes).toBe(0x2000n);
  });
});
