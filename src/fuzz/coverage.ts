// Guest edge coverage, AFL-style: the native layer counts hits of (previous block, block) edges in
// a 64 KiB map during one execution (native/src/machine.cc, block hook); here the counts are put
// in AFL's buckets (1, 2, 3, 4–7, 8–15, 16–31, 32–127, 128+) and merged into the campaign's
// "virgin" map, so an execution is new when it hits an edge, or an edge bucket, never seen before.
export const EDGE_MAP_BYTES = 1 << 16;

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

  /** Merges one execution's hit counts; true when it hit a new edge or a new bucket of one. */
  merge(hits: Uint8Array | undefined): boolean {
    if (!hits) return false;
    let fresh = false;
    const seen = this.#seen;
    for (let i = 0; i < hits.length; i++) {
      const h = hits[i]!;
      if (h === 0) continue;
      const bit = BUCKET[h]!;
      const old = seen[i]!;
      if ((old & bit) === 0) {
        if (old === 0) this.#edges++;
        seen[i] = old | bit;
        fresh = true;
      }
    }
    return fresh;
  }
}
