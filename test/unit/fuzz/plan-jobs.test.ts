// How a run is split into jobs and shards (src/fuzz/parallel.ts): `--shard K/N` must give disjoint,
// deterministic slices whose union is the unsharded run of N times the jobs, each job with its own
// derived seed, and `--runs` must be split so that the jobs' runs add up to it.
import { describe, expect, it } from 'vitest';
import { JOB_MEMORY_BYTES, jobMemoryBytes, jobsThatFit, planJobs } from '../../../src/fuzz/parallel.js';
import { deriveSeed } from '../../../src/shared/prng.js';

describe('planJobs', () => {
  it('gives shards disjoint jobs whose union is the whole run, each seeded from its global job number', () => {
    const jobs = 3, count = 4, seed = 77n;
    const shards = Array.from({ length: count }, (_, index) => planJobs({ jobs, seed, shard: { index, count } }));
    const all = shards.flat();
    expect(all.map((p) => p.job)).toEqual(Array.from({ length: jobs * count }, (_, g) => g));
    for (const p of all) expect(p.seed).toBe(deriveSeed(seed, p.job));
    expect(new Set(all.map((p) => p.seed)).size).toBe(all.length);
    // Deterministic: planning again gives the same slice.
    expect(planJobs({ jobs, seed, shard: { index: 2, count } })).toEqual(shards[2]);
    // The unsharded run with the same jobs is shard 0/1.
    expect(planJobs({ jobs, seed })).toEqual(planJobs({ jobs, seed, shard: { index: 0, count: 1 } }));
  });

  it('splits --runs over the jobs so that they add up to it, the first jobs taking the remainder', () => {
    expect(planJobs({ jobs: 4, seed: 1n, runs: 10 }).map((p) => p.runs)).toEqual([3, 3, 2, 2]);
    expect(planJobs({ jobs: 2, seed: 1n }).map((p) => p.runs)).toEqual([undefined, undefined]);
  });

  it('starts no job without runs: --runs M under --jobs N > M plans M jobs, each the job (and seed) it was among N', () => {
    // Before: [1, 1, 0], a worker started (an emulator launched) for a job with nothing to run.
    expect(planJobs({ jobs: 3, seed: 1n, runs: 2 }).map((p) => p.runs)).toEqual([1, 1]);
    const among = planJobs({ jobs: 8, seed: 5n, runs: 3, shard: { index: 2, count: 4 } });
    expect(among.map((p) => p.job)).toEqual([16, 17, 18]);
    expect(among.map((p) => p.seed)).toEqual([16, 17, 18].map((g) => deriveSeed(5n, g)));
    expect(among.map((p) => p.runs)).toEqual([1, 1, 1]);
    // The runs still add up to --runs.
    expect(planJobs({ jobs: 256, seed: 1n, runs: 1 })).toEqual([{ job: 0, seed: deriveSeed(1n, 0), runs: 1 }]);
  });
});

describe('jobsThatFit', () => {
  // One job's estimate is the emulator's share plus the guest memory its workload writes.
  const target = { workloadBytes: 64n << 20n };
  const perJob = JOB_MEMORY_BYTES + 64 * 2 ** 20;

  it('counts a job\'s workload into its memory', () => {
    expect(jobMemoryBytes(target)).toBe(perJob);
    expect(jobMemoryBytes({ workloadBytes: 0n })).toBe(JOB_MEMORY_BYTES);
  });

  it('fits only whole jobs, and always one', () => {
    expect(jobsThatFit(target, 3 * perJob)).toBe(3);
    expect(jobsThatFit(target, 3 * perJob - 1)).toBe(2);
    expect(jobsThatFit(target, perJob - 1)).toBe(1);
    expect(jobsThatFit(target, 0)).toBe(1);
  });
});
