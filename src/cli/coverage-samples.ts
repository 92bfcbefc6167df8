// Coverage over time for stats.json (and so DIR/report.html): a sample of the campaign's numbers
// every so often, by wall-clock time since its start. A measurement for people, like execs/s:
// nothing in an execution depends on it. At most MAX_SAMPLES are kept: when full, every other
// sample is dropped and the interval doubles, so a long campaign keeps an even picture.
import type { CampaignStats } from '../fuzz/campaign.js';
import type { CoverageSample } from '../view/fuzz-report.js';

export const MAX_SAMPLES = 512;
const FIRST_INTERVAL_MS = 250;

export class CoverageSamples {
  readonly samples: CoverageSample[] = [];
  #intervalMs = FIRST_INTERVAL_MS;
  #next = 0;

  /** Records `stats` at `ms` if the interval has passed (always when `force`, e.g. the final numbers). */
  record(stats: CampaignStats, ms: number, force = false): void {
    if (!force && ms < this.#next) return;
    this.#next = ms + this.#intervalMs;
    this.samples.push({
      ms: Math.round(ms), execs: stats.execs, edges: stats.edges, decisionKeys: stats.decisionKeys,
      corpusSize: stats.corpusSize, findings: stats.verdicts.finding,
    });
    if (this.samples.length >= MAX_SAMPLES) {
      const kept = this.samples.filter((_, i) => i % 2 === 0 || i === this.samples.length - 1);
      this.samples.splice(0, this.samples.length, ...kept);
      this.#intervalMs *= 2;
    }
  }
}
