// SHA-256 and SHA-384 from the native addon (native/src/digest.cc, installed by src/native/binding.ts)
// give node:crypto's bytes, copies included, and the BufferedHash built on them keeps its saved
// positions apart.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { toNativeMarker } from '../../src/memory/address-marker.js';
import { addon } from '../../src/native/binding.js';
import { BufferedHash } from '../../src/shared/buffered-hash.js';
import { chainDigest, createDigest, digestOf, provideChainDigest } from '../../src/shared/digest.js';

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);
const node = (algorithm: string, ...pieces: Uint8Array[]) => {
  const h = createHash(algorithm);
  for (const p of pieces) h.update(p);
  return h.digest('hex');
};

describe('digests', () => {
  const { NativeDigest, NativeMachine } = addon();

  it('come from the addon once it is loaded, with node:crypto\'s bytes', () => {
    expect(NativeDigest).toBeDefined();
    const a = bytes(100_000, 1), b = bytes(3, 2), empty = new Uint8Array(0);
    for (const algorithm of ['sha256', 'sha384'] as const) {
      expect(createDigest(algorithm).constructor.name).not.toBe('Hash');
      expect(digestOf(algorithm).toString('hex')).toBe(node(algorithm));
      expect(digestOf(algorithm, a, empty, b).toString('hex')).toBe(node(algorithm, a, b));
    }
  });

  it('copies go on from the same position, independently', () => {
    const d = createDigest('sha384').update(bytes(5000, 3));
    const copy = d.copy();
    d.update(bytes(10, 4));
    copy.update(bytes(11, 5));
    expect(d.digest().toString('hex')).toBe(node('sha384', bytes(5000, 3), bytes(10, 4)));
    expect(copy.digest().toString('hex')).toBe(node('sha384', bytes(5000, 3), bytes(11, 5)));
  });

  it('chain over records as node:crypto does it record by record, in the addon and without it', () => {
    const { chainDigest: nativeChain } = addon();
    expect(nativeChain).toBeDefined();
    for (const [algorithm, size] of [['sha256', 32], ['sha384', 48]] as const) {
      for (const recordBytes of [size, 0x70, 4096]) {
        const initial = bytes(size, recordBytes), records = bytes(recordBytes * 7, size);
        let expected = Buffer.from(initial).toString('hex');
        for (let at = 0; at < records.length; at += recordBytes) {
          expected = node(algorithm, Buffer.from(expected, 'hex'), records.subarray(at + size, at + recordBytes));
        }
        expect(nativeChain!(algorithm, initial, records, recordBytes).toString('hex')).toBe(expected);
        expect(chainDigest(algorithm, initial, records, recordBytes).toString('hex')).toBe(expected);
        provideChainDigest(undefined);  // the fallback: a digest per record
        try {
          expect(chainDigest(algorithm, initial, records, recordBytes).toString('hex')).toBe(expected);
        } finally {
          provideChainDigest(nativeChain);
        }
        // No records: the initial digest, unchanged.
        expect(nativeChain!(algorithm, initial, new Uint8Array(0), recordBytes).toString('hex')).toBe(Buffer.from(initial).toString('hex'));
      }
    }
    const digest48 = new Uint8Array(48);
    expect(() => nativeChain!('md5' as 'sha256', digest48, new Uint8Array(0x70), 0x70)).toThrow(TypeError);
    expect(() => nativeChain!('sha384', new Uint8Array(32), new Uint8Array(0x70), 0x70)).toThrow(RangeError);
    expect(() => nativeChain!('sha384', digest48, new Uint8Array(0x71), 0x70)).toThrow(RangeError);
    expect(() => nativeChain!('sha384', digest48, new Uint8Array(40), 40)).toThrow(RangeError);
    expect(() => nativeChain!('sha384', digest48, new Uint8Array(0x70), 0x70 + 0.5)).toThrow(RangeError);
    expect(() => nativeChain!('sha384', digest48, new Uint8Array(8192), 8192)).toThrow(RangeError);
  });

  it('refuse what they cannot hash, and a digest that has ended', () => {
    expect(() => new NativeDigest!('md5' as 'sha256')).toThrow(TypeError);
    expect(() => new NativeDigest!({} as unknown as 'sha256')).toThrow(TypeError);
    // Another class's native object is no algorithm name.
    const machine = new NativeMachine(4096n, true, new BigUint64Array(32), toNativeMarker({ kind: 'none' }));
    expect(() => new NativeDigest!(machine as unknown as 'sha256')).toThrow(TypeError);
    machine.close();
    const d = new NativeDigest!('sha256');
    expect(() => d.update('text' as unknown as Uint8Array)).toThrow(TypeError);
    d.digest();
    expect(() => d.digest()).toThrow(/ended/);
    expect(() => d.update(new Uint8Array(1))).toThrow(/ended/);
    expect(() => d.copy()).toThrow(/ended/);
    expect(() => new NativeDigest!(new NativeDigest!('sha256') as unknown as 'sha256')).toThrow(TypeError);
  });

  it('a BufferedHash saved before anything was added, and after, restores to each position', () => {
    const h = new BufferedHash('sha256');
    const empty = h.saveState();
    h.update(bytes(70_000, 6));          // more than its buffer: hashed in place
    h.update(bytes(100, 7));
    const later = h.saveState();
    h.update(bytes(5, 8));
    expect(h.peek('hex')).toBe(node('sha256', bytes(70_000, 6), bytes(100, 7), bytes(5, 8)));
    h.loadState(empty);
    expect(h.peek('hex')).toBe(node('sha256'));
    h.loadState(later);
    h.update(bytes(9, 9));
    expect(h.digest().toString('hex')).toBe(node('sha256', bytes(70_000, 6), bytes(100, 7), bytes(9, 9)));
  });

  it('a BufferedHash that has ended saves no position and stays ended, until a saved one is loaded', () => {
    const h = new BufferedHash('sha256');
    h.update(bytes(100, 1));
    const saved = h.saveState();
    h.update(bytes(10, 2));
    h.digest();
    expect(h.saveState()).toBeUndefined();
    h.loadState(undefined);
    expect(() => h.digest()).toThrow();
    h.loadState(saved);
    h.update(bytes(5, 3));
    expect(h.saveState()).toBeDefined();
    expect(h.digest().toString('hex')).toBe(node('sha256', bytes(100, 1), bytes(5, 3)));
  });

  it('a BufferedHash restored and then given more than its buffer at once peeks at all of it, and forgets its lineage', () => {
    const h = new BufferedHash('sha256');
    expect(h.lineage).toBeDefined();
    h.update(bytes(50, 4));
    h.loadState(h.saveState());
    h.update(bytes(70_000, 5));
    expect(h.peek('hex')).toBe(node('sha256', bytes(50, 4), bytes(70_000, 5)));
    const fresh = new BufferedHash('sha256');
    fresh.update(bytes(70_000, 5));
    expect(fresh.lineage).toBeUndefined();
  });
});
