// The distinct guest-physical bytes a run ever accepted: the union of every successful accept's
// range, kept as sorted, merged runs. A page accepted again after a private->shared->private
// conversion counts once here, twice in acceptedBytes.total. Accepts mostly run upwards or land
// next to earlier ones, so the list stays short (runs, not pages) even for a 64T guest.
export class AcceptedRanges {
  /** Sorted, disjoint, non-adjacent [start, end) runs. */
  #runs: Array<[bigint, bigint]> = [];
  #bytes = 0n;
  /**
   * The state last loaded, while no accept changed the runs since (cleared only where the runs
   * change: most accepts in a fuzz execution land inside a run and change nothing).
   */
  #unchangedSince: ReadonlyArray<readonly [bigint, bigint]> | undefined;

  /** Distinct bytes accepted so far. */
  get bytes(): bigint {
    return this.#bytes;
  }

  add(start: bigint, end: bigint): void {
    const runs = this.#runs;
    const last = runs[runs.length - 1];
    // The common case: at or past the end of the highest run.
    if (last === undefined || start > last[1]) {
      this.#unchangedSince = undefined;
      runs.push([start, end]);
      this.#bytes += end - start;
      return;
    }
    if (start === last[1]) {
      this.#unchangedSince = undefined;
      last[1] = end;
      this.#bytes += end - start;
      return;
    }
    // The first run that ends at or after `start` (binary search), then merge everything it touches.
    let lo = 0;
    let hi = runs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (runs[mid]![1] < start) lo = mid + 1;
      else hi = mid;
    }
    // Already inside that run (a page accepted again after a conversion, or the VMM's replay and
    // the guest's accept again): nothing changes, and nothing is spliced or allocated.
    const inside = runs[lo];
    if (inside !== undefined && inside[0] <= start && inside[1] >= end) return;
    let mergedStart = start;
    let mergedEnd = end;
    let covered = 0n;
    let i = lo;
    while (i < runs.length && runs[i]![0] <= end) {
      const [s, e] = runs[i]!;
      covered += e - s;
      if (s < mergedStart) mergedStart = s;
      if (e > mergedEnd) mergedEnd = e;
      i++;
    }
    this.#unchangedSince = undefined;
    runs.splice(lo, i - lo, [mergedStart, mergedEnd]);
    this.#bytes += (mergedEnd - mergedStart) - covered;
  }

  saveState(): Array<[bigint, bigint]> {
    return this.#runs.map(([s, e]) => [s, e]);
  }

  loadState(runs: ReadonlyArray<readonly [bigint, bigint]>): void {
    if (runs === this.#unchangedSince) return;
    this.#runs = runs.map(([s, e]) => [s, e]);
    this.#bytes = this.#runs.reduce((n, [s, e]) => n + (e - s), 0n);
    this.#unchangedSince = runs;
  }
}
