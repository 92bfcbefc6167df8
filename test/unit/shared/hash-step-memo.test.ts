// A memoized hash step gives the digest hashing would, and is taken from the memo only from the
// same lineage (the same memoized steps from a new hash) with the same label and bytes.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BufferedHash, type HashLineage } from '../../../src/shared/buffered-hash.js';
import { feedMemoized, HashStepMemo, type BufferedHashStep } from '../../../src/shared/hash-step-memo.js';

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);
const sha384 = (...pieces: Uint8Array[]) => {
  const h = createHash('sha384');
  for (const p of pieces) h.update(p);
  return h.digest('hex');
};

describe('HashStepMemo', () => {
  it('finds a step only for bytes of the same length: zeros added or taken off the end are other bytes', () => {
    const memo = new HashStepMemo<string, string>(8);
    const page = bytes(4096, 1);
    const padded = new Uint8Array(8192);
    padded.set(page);
    memo.remember('start', 'page', page, 'one page');
    memo.remember('start', 'page', padded, 'page and zeros');
    expect(memo.find('start', 'page', page)).toBe('one page');
    expect(memo.find('start', 'page', padded)).toBe('page and zeros');
    const longer = new Uint8Array(12288);
    longer.set(page);
    expect(memo.find('start', 'page', longer)).toBeUndefined();
    expect(memo.find('start', 'page', page.subarray(0, 4095))).toBeUndefined();
  });

  it('keeps the steps used last, and never takes a step larger than its byte budget in place of others', () => {
    const memo = new HashStepMemo<string, string>(2, 8192);
    memo.remember('s', 'a', bytes(4096, 1), 'A');
    memo.remember('s', 'b', bytes(10, 2), 'B');
    expect(memo.find('s', 'a', bytes(4096, 1))).toBe('A');
    memo.remember('s', 'c', bytes(10, 3), 'C');
    expect(memo.find('s', 'b', bytes(10, 2))).toBeUndefined();
    expect(memo.find('s', 'a', bytes(4096, 1))).toBe('A');
    memo.remember('s', 'big', bytes(12288, 4), 'BIG');
    expect(memo.find('s', 'big', bytes(12288, 4))).toBeUndefined();
    expect(memo.find('s', 'a', bytes(4096, 1))).toBe('A');
    expect(memo.find('s', 'c', bytes(10, 3))).toBe('C');
  });

  /** Feeds `label`'s bytes, then `data`, through the memo; returns whether the step was hashed (not taken from the memo). */
  const step = (memo: HashStepMemo<HashLineage, BufferedHashStep>, h: BufferedHash, label: string, data: Uint8Array) => {
    let fed = false;
    feedMemoized(memo, h, label, data, () => {
      fed = true;
      h.update(Buffer.from(label));
      h.update(data);
    });
    return fed;
  };

  it('a second hash of the same steps takes them from the memo, with the digest hashing gives', () => {
    const memo = new HashStepMemo<HashLineage, BufferedHashStep>(8);
    const a = bytes(100_000, 1), b = bytes(3000, 2);
    const expected = sha384(Buffer.from('one'), a, Buffer.from('two'), b);
    const first = new BufferedHash('sha384');
    expect([step(memo, first, 'one', a), step(memo, first, 'two', b)]).toEqual([true, true]);
    expect(first.digest().toString('hex')).toBe(expected);
    const second = new BufferedHash('sha384');
    expect([step(memo, second, 'one', a), step(memo, second, 'two', b)]).toEqual([false, false]);
    expect(second.peek('hex')).toBe(expected);
    // The remembered state is shared, never changed: adding more to one hash leaves the next alone.
    second.update(bytes(10, 3));
    expect(second.digest().toString('hex')).toBe(sha384(Buffer.from('one'), a, Buffer.from('two'), b, bytes(10, 3)));
    const third = new BufferedHash('sha384');
    step(memo, third, 'one', a);
    step(memo, third, 'two', b);
    expect(third.digest().toString('hex')).toBe(expected);
  });

  it('one byte or the label different, a different step before, or other input first: hashed, not taken', () => {
    const memo = new HashStepMemo<HashLineage, BufferedHashStep>(8);
    const a = bytes(5000, 1);
    step(memo, new BufferedHash('sha384'), 'one', a);
    const changed = Uint8Array.from(a);
    changed[4321] ^= 1;
    const h1 = new BufferedHash('sha384');
    expect(step(memo, h1, 'one', changed)).toBe(true);
    expect(h1.digest().toString('hex')).toBe(sha384(Buffer.from('one'), changed));
    const h2 = new BufferedHash('sha384');
    expect(step(memo, h2, 'uno', a)).toBe(true);
    expect(h2.digest().toString('hex')).toBe(sha384(Buffer.from('uno'), a));
    // The same step after a different one: another lineage.
    const h3 = new BufferedHash('sha384');
    step(memo, h3, 'zero', bytes(10, 4));
    expect(step(memo, h3, 'one', a)).toBe(true);
    expect(h3.digest().toString('hex')).toBe(sha384(Buffer.from('zero'), bytes(10, 4), Buffer.from('one'), a));
    // Input the memo did not see forgets the lineage, through update() or writing into the buffer.
    const h4 = new BufferedHash('sha384');
    h4.update(bytes(3, 5));
    expect(step(memo, h4, 'one', a)).toBe(true);
    const h5 = new BufferedHash('sha384');
    h5.room(1);
    h5.buf[h5.pos++] = 7;
    expect(step(memo, h5, 'one', a)).toBe(true);
    expect(h5.digest().toString('hex')).toBe(sha384(Uint8Array.of(7), Buffer.from('one'), a));
    // A hash of another algorithm starts from another lineage.
    expect(step(memo, new BufferedHash('sha256'), 'one', a)).toBe(true);
  });

  it('keeps its own copy of the bytes, and only the steps used last', () => {
    const memo = new HashStepMemo<HashLineage, BufferedHashStep>(2);
    const a = Uint8Array.from(bytes(64, 1));
    step(memo, new BufferedHash('sha384'), 'a', a);
    const original = Uint8Array.from(a);
    a[0] ^= 0xff;  // the caller's buffer changes after the step
    const h = new BufferedHash('sha384');
    expect(step(memo, h, 'a', a)).toBe(true);
    expect(h.digest().toString('hex')).toBe(sha384(Buffer.from('a'), a));
    expect(step(memo, new BufferedHash('sha384'), 'a', original)).toBe(false);
    step(memo, new BufferedHash('sha384'), 'b', original);
    step(memo, new BufferedHash('sha384'), 'c', original);
    expect(step(memo, new BufferedHash('sha384'), 'a', original)).toBe(true);  // evicted
    expect(step(memo, new BufferedHash('sha384'), 'c', original)).toBe(false);
  });

  it('a mostly-zero range (kept without its zero chunks) is taken only with every byte the same, zeros included', () => {
    const memo = new HashStepMemo<HashLineage, BufferedHashStep>(8);
    const range = new Uint8Array(5 * 4096 + 100);  // a short last chunk
    range.set(bytes(300, 1), 4096 + 17);
    range[5 * 4096 + 99] = 9;
    step(memo, new BufferedHash('sha384'), 'r', range);
    expect(step(memo, new BufferedHash('sha384'), 'r', Uint8Array.from(range))).toBe(false);
    for (const at of [0, 4095, 4096 + 17, 2 * 4096 + 5, 5 * 4096, 5 * 4096 + 99]) {
      const changed = Uint8Array.from(range);
      changed[at] ^= 0x40;
      const h = new BufferedHash('sha384');
      expect(step(memo, h, 'r', changed), `byte ${at}`).toBe(true);
      expect(h.digest().toString('hex')).toBe(sha384(Buffer.from('r'), changed));
    }
    expect(step(memo, new BufferedHash('sha384'), 'r', range.subarray(0, range.byteLength - 1))).toBe(true);
    const longer = new Uint8Array(range.byteLength + 1);
    longer.set(range);
    expect(step(memo, new BufferedHash('sha384'), 'r', longer)).toBe(true);
  });

  it('counts only the chunks it copies against its byte bound', () => {
    const memo = new HashStepMemo<HashLineage, BufferedHashStep>(8, 3 * 4096);
    const sparse = new Uint8Array(3 * 4096);
    sparse[5000] = 1;  // one chunk of three to copy
    for (const label of ['a', 'b', 'c']) step(memo, new BufferedHash('sha384'), label, sparse);
    expect(['a', 'b', 'c'].map((label) => step(memo, new BufferedHash('sha384'), label, sparse))).toEqual([false, false, false]);
  });

  it('keeps no more than its byte bound of steps, and no step larger than it', () => {
    const memo = new HashStepMemo<HashLineage, BufferedHashStep>(8, 100);
    for (const label of ['a', 'b', 'c']) step(memo, new BufferedHash('sha384'), label, bytes(40, 1));
    expect(step(memo, new BufferedHash('sha384'), 'a', bytes(40, 1))).toBe(true);  // 120 bytes > 100: the oldest went
    expect(step(memo, new BufferedHash('sha384'), 'c', bytes(40, 1))).toBe(false);
    const big = new BufferedHash('sha384');
    expect([step(memo, big, 'big', bytes(101, 2)), step(memo, new BufferedHash('sha384'), 'big', bytes(101, 2))]).toEqual([true, true]);
    expect(big.digest().toString('hex')).toBe(sha384(Buffer.from('big'), bytes(101, 2)));
  });
});
