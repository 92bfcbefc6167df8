// `fuzz --jobs N` starts N worker threads, each with a whole emulator. More jobs than the memory
// available holds would be killed part way by the OOM killer, losing the campaign: they are
// refused before any execution, as a usage error (exit 2) that says how many fit and why. More
// jobs than CPUs only share them: a warning, and the run is the same.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { availableParallelism, freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOB_MEMORY_BYTES } from '../../src/fuzz/parallel.js';

/** What the CLI compares with (process.availableMemory is Node 20.13+). */
const availableMemory = (): number => (typeof process.availableMemory === 'function' ? process.availableMemory() : freemem());

function minivisor(args: string[]) {
  return spawnSync(process.execPath, ['bin/minivisor.js', ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('fuzz --jobs and the machine', () => {
  it('more jobs than the available memory holds are refused, with the number that fits, before anything is written', () => {
    // Each job's kernel writes its 4 GiB workload (the most the stub kernel runs): 256 of them, 1.1 TiB, fit on no test machine.
    const out = join(mkdtempSync(join(tmpdir(), 'minivisor-jobs-')), 'out');
    const r = minivisor(['fuzz', '--jobs', '256', '--memory', '8G', '--workload', '4G', '--runs', '256', '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const m = new RegExp(
      '^minivisor fuzz: --jobs 256 needs about 256 × 4\\.5 GiB of memory and [\\d.]+ [MGT]iB is available: at most (\\d+) jobs? fits? ' +
      '\\(a job holds an emulator with its snapshots and corpus, about 512 MiB, plus the guest memory its --workload writes\\); ' +
      'give --jobs (\\d+)(?: or fewer)?, or split the run over machines with --shard\\n$').exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(m![2]).toBe(m![1]);
    expect(Number(m![1])).toBeLessThan(256);
    expect(existsSync(out)).toBe(false);
  });

  const cpus = availableParallelism();
  // Not on a machine with many CPUs (it would start that many emulators) or too little memory for one more job than CPUs.
  it.skipIf(cpus + 1 > 8 || cpus + 1 > Math.floor(availableMemory() / (JOB_MEMORY_BYTES + 2 ** 20)))('more jobs than CPUs run, with a warning that they share them', () => {
    const jobs = cpus + 1;
    const r = minivisor(['fuzz', '--jobs', String(jobs), '--runs', String(jobs), '--out', mkdtempSync(join(tmpdir(), 'minivisor-jobs-')), '--json']);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^minivisor fuzz: warning: --jobs ${jobs}: ${jobs} jobs share ${cpus} CPUs?, so each runs slower \\(a --runs campaign still finds the same\\)$`, 'm'));
    expect(JSON.parse(r.stdout)).toMatchObject({ jobs, execs: jobs });
  }, 60_000);
});
