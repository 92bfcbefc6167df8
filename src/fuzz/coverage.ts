// Guest edge coverage, AFL-style: the native layer counts hits of (previous block, block) edges in
// a 64 KiB map during one execution (native/src/machine.cc, block hook); here the counts are put
// in AFL's buckets (1, 2, 3, 4–7, 8–15, 16–31, 32–127, 128+) and merged into the campaign's
// "virgin" map, so an execution is new when it hits an edge, or an edge bucket, never seen before.
import { EDGE_MAP_BYTES } from '../cpu/machine.js';

export { EDGE_MAP_BYTES };

const BUCKET = new Uint8Array(256);
for (let n = 0; n < 256; n++) {
  BUCKET[n] = n === 0 ? 0 : n === 1 ? 1 : n === 2 ? 2 : n === 3 ? 4 : n < 8 ? 8 : n < 16 ? 16 : n < 32 ? 32 : n < 128 ? 64 : 128;
}

export class EdgeCoverage {
  /** Bucket bits seen so far, per edge. */
  readonly #seen = new Uint8Array(EDGE_MAP_BYTES);
  #edges = 0;

  /** Edges ever hit. */
  get count(): number {
    return this.#edges;
  }

  /**
   * Merges one execution's hit counts; true when it hit a new edge or a new bucket of one.
   * `slots`, the list of the slots hit (`[n, slot1, …, slotn]`, Machine.edgeSlots), when the
   * executor has it: then only those are visited, not the whole map.
   */
  merge(hits: Uint8Array | undefined, slots?: Uint32Array): boolean {
    if (!hits) return false;
    if (slots) {
      let fresh = false;
      for (let k = 1, n = slots[0]!; k <= n; k++) fresh = this.#mergeSlot(hits, slots[k]!) || fresh;
      return fresh;
    }
    let fresh = false;
    // Without the list: an execution hits a few hundred of the 65,536 slots, so skip the empty
    // ones sixteen at a time (byte by byte was ~0.7 ms of every execution; even so ~15 us).
    const words = wordsOf(hits);
    for (let w = 0; w < words.length; w++) {
      if ((w & 3) === 0 && w + 3 < words.length && (words[w]! | words[w + 1]! | words[w + 2]! | words[w + 3]!) === 0) {
        w += 3;
        continue;
      }
      if (words[w] === 0) continue;
      for (let i = w * 4; i < w * 4 + 4; i++) if (hits[i] !== 0) fresh = this.#mergeSlot(hits, i) || fresh;
    }
    return fresh;
  }

  /** Merges slot `i` (hit at least once); true when its bucket is new. */
  #mergeSlot(hits: Uint8Array, i: number): boolean {
    const bit = BUCKET[hits[i]!]!;
    const seen = this.#seen;
    const old = seen[i]!;
    if ((old & bit) !== 0) return false;
    if (old === 0) this.#edges++;
    seen[i] = old | bit;
    return true;
  }
}

const wordViews = new WeakMap<Uint8Array, Uint32Array>();

/** `hits` as 32-bit words (the same memory; a copy if it is not 4-byte aligned). */
function wordsOf(hits: Uint8Array): Uint32Array {
  const cached = wordViews.get(hits);
  if (cached) return cached;
  const length = Math.ceil(hits.length / 4);
  if (hits.byteOffset % 4 !== 0 || hits.length % 4 !== 0) {
    const copy = new Uint32Array(length);
    new Uint8Array(copy.buffer).set(hits);
    return copy;
  }
  const view = new Uint32Array(hits.buffer, hits.byteOffset, length);
  wordViews.set(hits, view);
  return view;
}
