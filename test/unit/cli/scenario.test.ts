// Scenario files and golden traces (src/cli/scenario.ts), in process, without booting: what a
// scenario may expect, and a golden's difference from a run in words (only the counts that moved).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { goldenDifferences, loadScenario, ScenarioError } from '../../../src/cli/scenario.js';

const scenarioFile = (expect: Record<string, unknown>) => {
  const file = join(mkdtempSync(join(tmpdir(), 'minivisor-scenario-')), 'x.scenario.json');
  writeFileSync(file, JSON.stringify({ boot: { platform: 'tdx', memory: '256M', workload: '16M' }, expect }));
  return file;
};

describe('scenario expectations', () => {
  it('take accepted-bytes bounds that meet, and refuse a verify that is neither clean nor mismatch', () => {
    expect(loadScenario(scenarioFile({ acceptedBytes: { min: '64M', max: '64M' } })).expect.acceptedBytes).toEqual({ min: 64n << 20n, max: 64n << 20n });
    expect(() => loadScenario(scenarioFile({ verify: 'maybe' }))).toThrow(ScenarioError);
    expect(() => loadScenario(scenarioFile({ verify: 'maybe' }))).toThrow(/expect\.verify must be clean or mismatch/);
  });
});

describe('goldenDifferences', () => {
  const golden = { traceSha256: 'a'.repeat(64), traceEvents: 10, eventCounts: { tdcall: 4, psc: 6 } };
  it('names only the counts that moved, and says when none did', () => {
    expect(goldenDifferences(golden, { ...golden })).toEqual([]);
    expect(goldenDifferences(golden, { traceSha256: 'b'.repeat(64), traceEvents: 11, eventCounts: { tdcall: 5, psc: 6 } })).toEqual([
      `trace ${'b'.repeat(16)}… differs from the golden ${'a'.repeat(16)}… (10 → 11 events)`,
      '  tdcall: 4 → 5',
    ]);
    expect(goldenDifferences(golden, { ...golden, traceSha256: 'b'.repeat(64) })).toEqual([
      `trace ${'b'.repeat(16)}… differs from the golden ${'a'.repeat(16)}… (10 → 10 events)`,
      '  same event counts: the events differ in their fields or order (minivisor boot --trace, then minivisor trace diff)',
    ]);
  });
});
