// Every output a command writes is the old file or a complete new one when a signal ends the
// command part way, and no temporary file is left (src/shared/output-file.ts: temporary file and
// rename; src/cli/stop-signals.ts: the native handler that removes it). boot, replay, shrink and
// fuzz merge are covered in output-temp.test.ts and shrink-interrupt.test.ts; these are the other
// commands that write files: `trace export` and `test --junit --update`. Each case spawns the
// CLI and signals it at a point it has reached for certain (its temporary file exists, or it has
// printed a line), never after a guessed delay.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interruptWhileWriting, runInterrupted, tempsUnder } from '../helpers/interrupted-cli.js';

/**
 * A JSON-lines trace of ~40,000 events (~7 MB): a small boot's events repeated with fresh
 * numbers, so the export's output (JSON built and written after its temporary file is opened)
 * takes a good part of a second to write. Made once, for every case that reads it.
 */
let largeTraceFile: string | undefined;
function largeTrace(): string {
  if (largeTraceFile !== undefined) return largeTraceFile;
  const dir = mkdtempSync(join(tmpdir(), 'minivisor-int-trace-'));
  const small = join(dir, 'small.jsonl');
  const boot = spawnSync(process.execPath, ['bin/minivisor.js', 'boot', '--memory', '256M', '--workload', '16M', '--trace', small], { encoding: 'utf8' });
  expect(boot.status).toBe(0);
  const [header, ...events] = readFileSync(small, 'utf8').trimEnd().split('\n');
  const parsed = events.map((line) => JSON.parse(line) as Record<string, unknown>);
  const lines = [header!];
  for (let seq = 0; lines.length <= 40_000;) for (const e of parsed) lines.push(JSON.stringify({ ...e, seq: seq++ }));
  const big = join(dir, 'big.jsonl');
  writeFileSync(big, `${lines.join('\n')}\n`);
  largeTraceFile = big;
  return big;
}

describe('a command ended by a signal while it writes leaves each output old or whole', () => {
  it.each(['SIGTERM', 'SIGHUP'] as const)('trace export ended by %s while it writes: the earlier export stays as it was, no temporary file', async (signal) => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-int-export-'));
    const input = largeTrace();
    const before = readFileSync(input, 'utf8');
    const out = join(dir, 'out');
    mkdirSync(out);
    const output = join(out, 'trace.json');
    writeFileSync(output, '{"the earlier export":true}\n');
    const r = await interruptWhileWriting(['trace', 'export', '--perfetto', input, output], out, signal);
    expect(r.sawTemp).toEqual([expect.stringMatching(/^\.trace\.json\.tmp-\d+-\d+$/)]);
    expect([r.status, r.signal]).toEqual([null, signal]);
    expect(r.stderr).toBe('');
    expect(readdirSync(out)).toEqual(['trace.json']);
    // The earlier export; or, when the signal came as the write ended, the one rename that
    // finished first put the new one there whole.
    const text = readFileSync(output, 'utf8');
    if (text !== '{"the earlier export":true}\n') expect(JSON.parse(text).traceEvents.length).toBeGreaterThan(40_000);
    expect(readFileSync(input, 'utf8')).toBe(before);
  }, 60_000);

  it('test --update --junit ended by SIGINT during the second scenario: the first golden is whole and new, the second and the report as they were', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-int-test-'));
    mkdirSync(join(dir, 'golden'));
    // Run in name order: a small boot, then one of ~10 s (1 TiB accepted eagerly) during which the signal comes.
    writeFileSync(join(dir, '1-small.scenario.yaml'), 'name: small\nboot: { platform: tdx, memory: 256M, workload: 16M }\nexpect: { outcome: done, golden: golden/small.json }\n');
    writeFileSync(join(dir, '2-large.scenario.yaml'), 'name: large\nboot: { platform: tdx, memory: 1T, accept: eager }\nexpect: { outcome: done, golden: golden/large.json }\n');
    const stale = `${JSON.stringify({ traceSha256: '0'.repeat(64), traceEvents: 0, eventCounts: {} }, null, 2)}\n`;
    writeFileSync(join(dir, 'golden', 'small.json'), stale);
    writeFileSync(join(dir, 'golden', 'large.json'), stale);
    const report = join(dir, 'report.xml');
    writeFileSync(report, '<the earlier report/>\n');
    const r = await runInterrupted(['test', dir, '--update', '--junit', report], /^PASS {2}small {2}\(.*; golden updated\)$/m, ['SIGINT'], 'stdout');
    expect(r.trigger).toBeDefined();
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/large/);
    // The first golden was rewritten before the signal: whole, with the run's trace hash.
    const small = JSON.parse(readFileSync(join(dir, 'golden', 'small.json'), 'utf8'));
    expect(small).toMatchObject({ traceSha256: expect.stringMatching(/^[0-9a-f]{64}$/), traceEvents: expect.any(Number) });
    expect(small.traceSha256).not.toBe('0'.repeat(64));
    expect(readFileSync(join(dir, 'golden', 'large.json'), 'utf8')).toBe(stale);
    expect(readFileSync(report, 'utf8')).toBe('<the earlier report/>\n');
    expect(tempsUnder(dir)).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['1-small.scenario.yaml', '2-large.scenario.yaml', 'golden', 'report.xml']);
  }, 60_000);
});
