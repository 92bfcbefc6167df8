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
    // Each job's kernel writes its 32 TiB workload: two of them fit on no machine.
    const out = join(mkdtempSync(join(tmpdir(), 'minivisor-jobs-')), 'out');
    const r = minivisor(['fuzz', '--jobs', '2', '--memory', '64T', '--workload', '32T', '--runs', '2', '--out', out]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(
      '^minivisor fuzz: --jobs 2 needs about 2 × 32\\.0 TiB of memory and [\\d.]+ [MGT]iB is available: at most 1 job fits ' +
      '\\(a job holds an emulator with its snapshots and corpus, about 512 MiB, plus the guest memory its --workload writes\\); ' +
      'give --jobs 1, or split the run over machines with --shard\\n$'));
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
