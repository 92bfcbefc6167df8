// Ctrl-C (SIGINT) or SIGTERM during `minivisor fuzz` stops the campaign at the next execution and
// keeps what it has, as libFuzzer and AFL++ do: DIR/stats.json, the corpus, the findings and the
// final summary, then the process ends by that signal (the shell's 130 or 143), so a calling
// script stops too. Each case spawns the CLI as a user would and signals it after its first
// status line.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runInterrupted, type InterruptedRun } from '../helpers/interrupted-cli.js';
import { attackProgramFromJson } from '../../src/fuzz/attack-program.js';
import { runCampaign } from '../../src/fuzz/campaign.js';
import { createExecutor } from '../../src/fuzz/create-executor.js';
import { plantedBugTarget } from '../../src/fuzz/planted-bugs.js';

/** Runs `minivisor fuzz ARGS`, sends `signals` once the first status line is on stderr, and waits for the end. */
function fuzzInterrupted(args: string[], signals: NodeJS.Signals[]): Promise<InterruptedRun> {
  return runInterrupted(['fuzz', ...args], /^fuzz: \d+ execs/m, signals);
}

function expectSavedCampaign(out: string, r: InterruptedRun, signal: 'SIGINT' | 'SIGTERM'): void {
  expect(r.afterSignalMs).toBeLessThan(15_000);
  expect(r.stderr).not.toMatch(/\n\s+at /);
  const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'));
  expect(stats.interrupted).toBe(signal);
  expect(stats.execs).toBeGreaterThan(0);
  expect(stats.coverageOverTime.at(-1).execs).toBe(stats.execs);
  const corpus = readdirSync(join(out, 'corpus'));
  expect(corpus.length).toBeGreaterThan(0);
  expect(corpus.length).toBeLessThanOrEqual(stats.corpusSize);  // jobs' corpora overlap (the honest program)
  for (const name of corpus) attackProgramFromJson(readFileSync(join(out, 'corpus', name), 'utf8'), name);
  expect(existsSync(join(out, 'report.html'))).toBe(true);
  expect(readdirSync(out).filter((n) => n.includes('.tmp-'))).toEqual([]);
  expect(r.stdout).toMatch(new RegExp(`^minivisor fuzz: interrupted \\(${signal}\\) after ${stats.execs} executions in [\\d.]+ s, \\d+ findings?; output in ${out}, report `));
}

describe('an interrupted fuzz campaign keeps what it found', () => {
  it('SIGINT: stats.json, corpus and report are written, the summary printed, and the process ends by SIGINT', async () => {
    const out = mkdtempSync(join(tmpdir(), 'minivisor-fuzz-int-'));
    const r = await fuzzInterrupted(['--time', '10m', '--out', out], ['SIGINT']);
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expect(r.stderr).toMatch(/^minivisor fuzz: SIGINT: stopping after the current execution to save the campaign \(again to quit at once\)$/m);
    expectSavedCampaign(out, r, 'SIGINT');
  });

  it('SIGTERM with several jobs: every worker stops and the merged campaign is saved', async () => {
    const out = mkdtempSync(join(tmpdir(), 'minivisor-fuzz-term-'));
    const r = await fuzzInterrupted(['--time', '10m', '--jobs', '2', '--out', out], ['SIGTERM']);
    expect([r.status, r.signal]).toEqual([null, 'SIGTERM']);
    expectSavedCampaign(out, r, 'SIGTERM');
    expect(JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8')).jobs).toBe(2);
  });

  it('a second SIGINT ends it at once, by SIGINT', async () => {
    const out = mkdtempSync(join(tmpdir(), 'minivisor-fuzz-int2-'));
    const r = await fuzzInterrupted(['--time', '10m', '--out', out], ['SIGINT', 'SIGINT']);
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(out, { recursive: true }).filter((n) => String(n).includes('.tmp-'))).toEqual([]);
  });
});

describe('stopping a campaign changes nothing that ran before the stop', () => {
  it('stopped after K executions, it is the campaign of --runs K: same stats, corpus and findings', async () => {
    // Two findings with seed 1, at executions 64 and 253 (planted-campaigns.test.ts has the variants).
    const target = plantedBugTarget('snp', 'trusts-injected-exception');
    const K = 300;
    const whole = createExecutor(target);
    const stopped = createExecutor(target);
    try {
      const expected = await runCampaign({ executor: whole, seed: 1n, runs: K });
      let execs = 0;
      const got = await runCampaign({ executor: stopped, seed: 1n, timeMs: 600_000, onExecution: (s) => { execs = s.execs; }, stop: () => execs >= K });
      expect(expected.findings.length).toBeGreaterThan(0);
      expect(got.stats).toEqual(expected.stats);
      expect(got.corpus).toEqual(expected.corpus);
      expect(got.findings).toEqual(expected.findings);
    } finally {
      whole.close();
      stopped.close();
    }
  }, 120_000);

  it('a stop during a shrink runs no more executions and keeps the finding, unshrunk, which reproduces', async () => {
    const executor = createExecutor(plantedBugTarget('tdx', 'reaccept-skipped'));
    try {
      let executions = 0;
      let stopAfter = Number.POSITIVE_INFINITY;
      const execute = executor.execute.bind(executor);
      executor.execute = (program, options) => {
        executions++;
        const e = execute(program, options);
        if (e.judgement.findings.length > 0) stopAfter = Math.min(stopAfter, executions);
        return e;
      };
      const result = await runCampaign({ executor, seed: 1n, runs: 400, stop: () => executions >= stopAfter });
      expect(result.findings).toHaveLength(1);
      const [finding] = result.findings;
      expect(result.stats.execs).toBe(finding!.execIndex + 1);
      expect(finding!.shrinkExecutions).toBe(0);
      expect(result.stats.shrinkExecs).toBe(0);
      expect(finding!.program).toEqual(finding!.unshrunk);
      // The execution that found it, and the one that confirms the program the finding reports.
      expect(executions).toBe(stopAfter + 1);
      expect(execute(finding!.program).judgement.findings.map((f) => f.category)).toContain(finding!.category);
    } finally {
      executor.close();
    }
  }, 120_000);
});
