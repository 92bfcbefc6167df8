// AFL-style edge buckets merged into the campaign's map (src/fuzz/coverage.ts).
import { describe, expect, it } from 'vitest';
import { EDGE_MAP_BYTES, EdgeCoverage } from '../../../src/fuzz/coverage.js';

describe('EdgeCoverage', () => {
  it('is new for a new edge or a new bucket of a known edge, not for a repeat', () => {
    const cov = new EdgeCoverage();
    const hits = new Uint8Array(EDGE_MAP_BYTES);
    hits[5] = 1;
    hits[EDGE_MAP_BYTES - 1] = 200;
    expect(cov.merge(hits)).toBe(true);
    expect(cov.count).toBe(2);
    expect(cov.merge(hits)).toBe(false);
    hits[5] = 3; // bucket 3 (was 1)
    expect(cov.merge(hits)).toBe(true);
    hits[5] = 2;
    expect(cov.merge(hits)).toBe(true);
    hits[5] = 7; // 4..7, one bucket
    expect(cov.merge(hits)).toBe(true);
    hits[5] = 4;
    expect(cov.merge(hits)).toBe(false);
    expect(cov.count).toBe(2);
    hits[6] = 1; // a neighbour in the same 32-bit word
    expect(cov.merge(hits)).toBe(true);
    expect(cov.count).toBe(3);
  });

  it('puts hit counts in AFL\'s buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128-255 (afl-fuzz count_class_lookup8)', () => {
    const buckets = [[1, 1], [2, 2], [3, 3], [4, 7], [8, 15], [16, 31], [32, 127], [128, 255]];
    const hits = new Uint8Array(EDGE_MAP_BYTES);
    const cov = new EdgeCoverage();
    for (const [first, last] of buckets) {
      // The bucket's first count is new; every other count in it is not; its last is not either.
      hits[100] = first!;
      expect(cov.merge(hits)).toBe(true);
      for (let n = first!; n <= last!; n++) {
        hits[100] = n;
        expect(cov.merge(hits)).toBe(false);
      }
    }
    expect(cov.count).toBe(1);
  });

  it('reads a map that is not 4-byte aligned the same way', () => {
    const backing = new Uint8Array(EDGE_MAP_BYTES + 1);
    const hits = backing.subarray(1);
    hits[0] = 1;
    hits[EDGE_MAP_BYTES - 1] = 9;
    const cov = new EdgeCoverage();
    expect(cov.merge(hits)).toBe(true);
    expect(cov.count).toBe(2);
    expect(cov.merge(hits)).toBe(false);
    hits[1000] = 1;
    expect(cov.merge(hits)).toBe(true);
    expect(cov.count).toBe(3);
  });

  it('a scan finds a single hit wherever it is: right after a run of empty words it skips, and at the map\'s two ends', () => {
    // The scan skips 16 empty bytes at a time (merge): a hit in the 4 bytes after such a run, or in
    // the last bytes of the map, where no whole run of 16 fits, must still count.
    const positions = [...Array.from({ length: 64 }, (_, i) => i), ...Array.from({ length: 64 }, (_, i) => EDGE_MAP_BYTES - 64 + i), 4096, 4100, 40003];
    for (const p of positions) {
      const hits = new Uint8Array(EDGE_MAP_BYTES);
      hits[p] = 1;
      const cov = new EdgeCoverage();
      expect(cov.merge(hits), `slot ${p}`).toBe(true);
      expect(cov.count, `slot ${p}`).toBe(1);
      hits[p] = 2;  // a new bucket of the same edge: new, and not a new edge
      expect(cov.merge(hits), `slot ${p}`).toBe(true);
      expect(cov.count, `slot ${p}`).toBe(1);
    }
  });

  it('reads maps at any byte offset of their buffer the same way', () => {
    for (const offset of [1, 2, 3, 5, 8]) {
      const hits = new Uint8Array(EDGE_MAP_BYTES + 8).subarray(offset, offset + EDGE_MAP_BYTES);
      hits[17] = 1;
      hits[EDGE_MAP_BYTES - 2] = 40;
      const cov = new EdgeCoverage();
      expect(cov.merge(hits), `offset ${offset}`).toBe(true);
      expect(cov.count, `offset ${offset}`).toBe(2);
    }
  });

  it('with the list of slots hit, visits only those (and finds what a scan finds)', () => {
    const hits = new Uint8Array(EDGE_MAP_BYTES);
    hits[7] = 1;
    hits[40000] = 130;
    const slots = new Uint32Array(EDGE_MAP_BYTES + 1);
    slots.set([2, 40000, 7]);
    const cov = new EdgeCoverage();
    expect(cov.merge(hits, slots)).toBe(true);
    expect(cov.count).toBe(2);
    expect(cov.merge(hits, slots)).toBe(false);
    // A slot the list does not name is not looked at: the list is the executor's word for what was hit.
    hits[9] = 1;
    expect(cov.merge(hits, slots)).toBe(false);
    expect(cov.merge(hits)).toBe(true);
    expect(cov.count).toBe(3);
  });

  it('an execution without an edge map is never new', () => {
    expect(new EdgeCoverage().merge(undefined)).toBe(false);
  });
});
