// A fuzzing run split into jobs (src/fuzz/parallel.ts), in process: statistics summed over the
// jobs, findings deduplicated by signature in job order, each finding with the trace of its replay,
// and a run aborted before it starts returning what its jobs have (nothing). Its header promises
// that the same seed and runs give the same findings however the worker threads were scheduled.
import { describe, expect, it } from 'vitest';
import { runFuzz, sumStats } from '../../../src/fuzz/parallel.js';
import { HonestRunOverBudgetError, emptyStats, findingSignature, type CampaignStats } from '../../../src/fuzz/campaign.js';
import { plantedBugTarget } from '../../../src/fuzz/planted-bugs.js';
import type { StoredFinding } from '../../../src/fuzz/finding-file.js';
import { traceSha256OfJsonLines } from '../../../src/shared/trace.js';
import { deriveSeed } from '../../../src/shared/prng.js';

// SNP with PSC errors ignored: the planted bug a campaign finds in a few executions (README).
const TARGET = plantedBugTarget('snp', 'psc-error-ignored');

describe('sumStats', () => {
  it('adds the counts, merges the categories, and keeps the largest job\'s edges and decision keys', () => {
    const a: CampaignStats = {
      ...emptyStats(), execs: 3, verdicts: { detected: 1, benign: 1, finding: 1 }, findingsByCategory: { 'double-acceptance': 1 },
      corpusSize: 2, edges: 10, decisionKeys: 7, instructions: 100n, vmmExits: 5, shrinkExecs: 4, recalled: 1, launches: 1,
    };
    const b: CampaignStats = {
      ...emptyStats(), execs: 5, verdicts: { detected: 2, benign: 3, finding: 0 }, findingsByCategory: { 'double-acceptance': 2, liveness: 1 },
      corpusSize: 1, edges: 8, decisionKeys: 9, instructions: (1n << 62n), vmmExits: 6, shrinkExecs: 0, recalled: 2, launches: 2,
    };
    // The largest edges and decision keys neither first nor last.
    const c: CampaignStats = { ...emptyStats(), execs: 1, edges: 9, decisionKeys: 8 };
    expect(sumStats([c, a, b, c])).toEqual({
      execs: 10, verdicts: { detected: 3, benign: 4, finding: 1 }, findingsByCategory: { 'double-acceptance': 3, liveness: 1 },
      corpusSize: 3, edges: 10, decisionKeys: 9, instructions: (1n << 62n) + 100n, vmmExits: 11, shrinkExecs: 4, recalled: 3, launches: 3,
    });
    expect(sumStats([])).toEqual(emptyStats());
  });
});

describe('runFuzz', () => {
  it('with one job reports each finding as it is found, with the trace its hash names', async () => {
    const reported: { finding: StoredFinding; traceLines: string[] }[] = [];
    const r = await runFuzz({ target: TARGET, seed: 1n, runs: 30, jobs: 1, shrinkBudget: 20, onFinding: (finding, traceLines) => reported.push({ finding, traceLines }) });
    expect(r.jobs).toBe(1);
    expect(r.stats.execs).toBe(30);
    expect(r.findings.length).toBeGreaterThan(0);
    expect(reported.map((f) => f.finding.id)).toEqual(r.findings.map((f) => f.finding.id));
    for (const { finding, traceLines } of r.findings) {
      expect(finding.job).toBe(0);
      expect(finding.target).toEqual(TARGET);
      expect(traceSha256OfJsonLines(traceLines.join('\n'))).toBe(finding.traceSha256);
    }
  }, 120_000);

  it('with two jobs sums their statistics and keeps each finding once, the same on a second run', async () => {
    const reported: string[] = [];
    const run = () => runFuzz({ target: TARGET, seed: 1n, runs: 30, jobs: 2, shrinkBudget: 20, onFinding: (f) => reported.push(f.id) });
    const first = await run();
    // Several jobs report their findings at the end, in job order: those of the result.
    expect(reported).toEqual(first.findings.map((f) => f.finding.id));
    expect(first.jobs).toBe(2);
    expect(first.stats.execs).toBe(30);
    const signatures = first.findings.map((f) => findingSignature(f.finding));
    expect(new Set(signatures).size).toBe(signatures.length);
    expect(first.findings.length).toBeGreaterThan(0);
    for (const { finding, traceLines } of first.findings) expect(traceSha256OfJsonLines(traceLines.join('\n'))).toBe(finding.traceSha256);
    const second = await run();
    expect(second.findings.map((f) => [f.finding.id, f.finding.job])).toEqual(first.findings.map((f) => [f.finding.id, f.finding.job]));
  }, 120_000);

  it('runs one job of a shard as that global job: its derived seed, findings named with it, its shrink budget, its final statistics reported', async () => {
    const progress: CampaignStats[] = [];
    const r = await runFuzz({ target: TARGET, seed: 1n, runs: 30, jobs: 1, shard: { index: 1, count: 2 }, shrinkBudget: 0, onProgress: (stats) => progress.push(stats) });
    expect(r.findings.length).toBeGreaterThan(0);
    for (const { finding } of r.findings) expect([finding.job, finding.seed]).toEqual([1, deriveSeed(1n, 1)]);
    expect(r.stats.shrinkExecs).toBe(0);
    expect(progress.at(-1)).toEqual(r.stats);
  }, 120_000);

  it('with two jobs that find the same thing keeps it once, and merges the corpora in job order', async () => {
    const found = (await runFuzz({ target: TARGET, seed: 1n, runs: 30, jobs: 1, shrinkBudget: 20 })).findings[0]!.finding;
    // Both jobs start from the program that found it: both find it again at their second execution.
    const r = await runFuzz({ target: TARGET, seed: 1n, runs: 4, jobs: 2, shrinkBudget: 0, seeds: [found.program] });
    expect(r.stats.findingsByCategory[found.category]).toBe(2);
    expect(r.findings.map((f) => [f.finding.category, f.finding.job])).toEqual([[found.category, 0]]);
    // Each job's corpus begins with the honest program; the seed program reached more.
    expect(r.corpus.map((p) => p.decisions.length === 0)).toEqual([true, false, true, false]);
  }, 120_000);

  it('with one job stops at its time', async () => {
    const r = await runFuzz({ target: TARGET, seed: 1n, timeMs: 1, jobs: 1 });
    expect(r.stats.execs).toBeLessThan(10);
  }, 120_000);

  it('fails with HonestRunOverBudgetError, in the calling thread and from a worker, when the honest run outgrows the budget', async () => {
    const tight = { ...TARGET, maxInstructions: 10_000n };
    await expect(runFuzz({ target: tight, seed: 1n, runs: 5, jobs: 1 })).rejects.toBeInstanceOf(HonestRunOverBudgetError);
    await expect(runFuzz({ target: tight, seed: 1n, runs: 5, jobs: 2 })).rejects.toBeInstanceOf(HonestRunOverBudgetError);
  }, 120_000);

  // The stop reaches a worker between two executions (worker.ts), so each job may have run its
  // first (the honest execution) when it sees it.
  it('aborted before it starts, each job stops after at most its first execution and the run returns as a finished one', async () => {
    const abort = new AbortController();
    abort.abort();
    for (const jobs of [2, 1]) {
      const r = await runFuzz({ target: TARGET, seed: 1n, runs: 200, jobs, signal: abort.signal });
      expect(r.jobs).toBe(jobs);
      expect(r.stats.execs).toBeLessThanOrEqual(jobs);
      expect(r.stats.verdicts.finding).toBe(0);
      expect(r.findings).toEqual([]);
    }
  }, 120_000);
});
