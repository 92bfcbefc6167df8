// The host-robustness fuzzer when a child dies under a batch (src/fuzz/host-campaign.ts): the
// parent observes the death instead of suffering it, runs each execution of that batch alone in
// a fresh child to find the one that does it, and writes a finding at once; the campaign goes on
// in a new child. Here the first child is killed from outside (as the OOM killer would), so no
// execution does it alone: the finding names the batch.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { platformOf } from '../../src/fuzz/host-inputs.js';

const forked = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:child_process', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:child_process')>();
  return {
    ...actual,
    fork: (...args: Parameters<typeof actual.fork>) => {
      const child = actual.fork(...args);
      // The first child gets its batch request as it starts (sent in the same tick), then is
      // killed before it can have loaded the emulator, let alone answered.
      if (forked.count++ === 0) child.once('spawn', () => child.kill('SIGKILL'));
      return child;
    },
  };
});

const { runHostFuzz } = await import('../../src/fuzz/host-campaign.js');

describe('host-robustness fuzzer, a child killed under a batch', () => {
  it('isolates the batch in fresh children, records a signal finding for the batch, and goes on in a new child', async () => {
    const outDir = join(mkdtempSync(join(tmpdir(), 'minivisor-hostfuzz-death-')), 'findings');
    const lines: string[] = [];
    const report = await runHostFuzz({ seed: 5n, executions: 9, children: 1, budget: 20_000n, batchSize: 3, outDir, log: (l) => lines.push(l) });

    // Forks: the killed child, one fresh child per execution of its batch, the child for the next batches.
    expect(forked.count).toBe(1 + 3 + 1);
    // The two later batches ran and were counted; the first's executions were only replayed alone.
    expect(Object.values(report.outcomes).reduce((a, b) => a + b, 0)).toBe(6);
    expect(report.executions).toBe(9);

    expect(report.findings).toHaveLength(1);
    const [f] = report.findings;
    expect(f).toMatchObject({
      index: 0, platform: platformOf(0), kind: 'signal', codeHex: '', minimisedHex: '',
      detail: 'killed by SIGKILL; executions 0..2 together, none alone',
    });
    expect(f!.file).toBe(join(outDir, `host-signal-${platformOf(0)}-5-0.json`));
    expect(readdirSync(outDir)).toEqual([`host-signal-${platformOf(0)}-5-0.json`]);
    const written = JSON.parse(readFileSync(f!.file, 'utf8')) as Record<string, string>;
    expect(written).toMatchObject({ kind: 'signal', index: 0, seed: '5', budget: '20000', minimisedHex: '', replay: `npm run fuzz:host -- --replay ${f!.file}` });

    expect(lines[0]).toBe(`host fuzz finding: signal on ${platformOf(0)} at execution 0 (killed by SIGKILL; executions 0..2 together, none alone); ${f!.file}`);
    expect(lines).toContain('host fuzz: shrunk signal at execution 0 from 0 to 0 bytes');
    expect(lines.some((l) => /^host fuzz: 9\/9 executions, 1 finding, \d+ s$/.test(l))).toBe(true);
  }, 60_000);

  it('writes nothing when no child dies, and tells its progress every ten batches and at the end', async () => {
    const outDir = join(mkdtempSync(join(tmpdir(), 'minivisor-hostfuzz-death-')), 'findings');
    const lines: string[] = [];
    const report = await runHostFuzz({ seed: 5n, executions: 11, children: 1, budget: 20_000n, batchSize: 1, outDir, log: (l) => lines.push(l) });
    expect(report.findings).toEqual([]);
    expect(existsSync(outDir)).toBe(false);
    expect(lines.map((l) => l.replace(/\d+ s$/, 'N s'))).toEqual(['host fuzz: 10/11 executions, 0 findings, N s', 'host fuzz: 11/11 executions, 0 findings, N s']);
  }, 60_000);
});
