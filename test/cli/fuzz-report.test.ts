// DIR/report.html after `minivisor fuzz` (issue 13): the campaign's speed as stats.json has it,
// coverage over time drawn from stats.json's samples, and every finding in DIR/findings under its
// category with the replay command that its finding.json names.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { CoverageSamples, MAX_SAMPLES } from '../../src/cli/coverage-samples.js';
import type { CampaignStats } from '../../src/fuzz/campaign.js';
import { handMadeFinding } from '../helpers/hand-made-finding.js';
import { capture } from '../helpers/captured-io.js';

/** The text of the element with `attr="value"`, e.g. a stats cell. */
function cell(html: string, attr: string, value: string): string | undefined {
  return html.match(new RegExp(`${attr}="${value}">([^<]*)<`))?.[1];
}

describe('fuzz report.html', () => {
  it('shows stats.json\'s numbers, its coverage samples and the directory\'s findings with their replay commands', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mv-fuzz-report-'));
    const findingFile = handMadeFinding(out);
    const io = capture();
    await main(['fuzz', '--memory', '128M', '--workload', '1M', '--stage', 'all', '--runs', '4', '--seed', '3', '--out', out, '--json'], io);
    const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8'));
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(cell(html, 'data-stat', 'executions')).toBe('4');
    expect(cell(html, 'data-stat', 'executions per second')).toBe(String(stats.execsPerSec));
    expect(cell(html, 'data-stat', 'edges')).toBe(String(stats.edges));
    expect(cell(html, 'data-stat', 'stage')).toBe('all');
    expect(cell(html, 'data-stat', 'stubs')).toBe('ours, honest, unless replaced below');
    expect(html).not.toContain('data-stat="your own');
    // One point per sample, the last sample is the final numbers.
    const samples = stats.coverageOverTime as Array<{ execs: number; edges: number }>;
    expect(samples.at(-1)).toMatchObject({ execs: 4, edges: stats.edges });
    const points = html.match(/data-series="edges"[^>]*points="([^"]*)"/)![1]!.split(' ');
    expect(points).toHaveLength(samples.length);
    // The hand-made finding is listed under its category, with the replay command its file names.
    expect(html).toMatch(/data-category="double-acceptance" data-count="1"/);
    const replay = JSON.parse(readFileSync(findingFile, 'utf8')).replay as string;
    expect(html.match(/<code class="replay">([^<]*)<\/code>/)![1]).toBe(replay);
    expect(html).toContain('href="findings/double-acceptance-000000000000/README.txt"');
  }, 120_000);

  it('fuzz merge rebuilds the report of the merged directory with every finding it now holds', async () => {
    const a = mkdtempSync(join(tmpdir(), 'mv-fuzz-report-a-'));
    handMadeFinding(a);
    const into = join(mkdtempSync(join(tmpdir(), 'mv-fuzz-report-m-')), 'merged');
    const io = capture();
    expect(await main(['fuzz', 'merge', a, '--out', into], io)).toBe(0);
    expect(io.stdout[0]).toContain(`report ${join(into, 'report.html')}`);
    const html = readFileSync(join(into, 'report.html'), 'utf8');
    expect(html).toMatch(/data-category="double-acceptance" data-count="1"/);
    expect(html.match(/<code class="replay">([^<]*)<\/code>/)![1]).toBe(`minivisor replay ${join(into, 'findings', 'double-acceptance-000000000000', 'finding.json')}`);
  });

  it('keeps at most MAX_SAMPLES samples, evenly spread, however long the campaign', () => {
    const samples = new CoverageSamples();
    const stats = (execs: number): CampaignStats => ({ execs, edges: execs, decisionKeys: 0, corpusSize: 0, verdicts: { detected: 0, benign: 0, finding: 0 }, findingsByCategory: {}, instructions: 0n, vmmExits: 0, shrinkExecs: 0, recalled: 0, launches: 0 });
    for (let ms = 0; ms <= 3_600_000; ms += 50) samples.record(stats(ms / 50), ms);
    samples.record(stats(72_001), 3_600_001, true);
    expect(samples.samples.length).toBeLessThanOrEqual(MAX_SAMPLES);
    expect(samples.samples.length).toBeGreaterThan(MAX_SAMPLES / 4);
    expect(samples.samples[0]!.ms).toBe(0);
    expect(samples.samples.at(-1)!.execs).toBe(72_001);
    // Evenly spread: no gap is more than three times the average.
    const gaps = samples.samples.slice(1).map((s, i) => s.ms - samples.samples[i]!.ms);
    const mean = 3_600_001 / gaps.length;
    expect(Math.max(...gaps)).toBeLessThan(3 * mean);
  });
});
