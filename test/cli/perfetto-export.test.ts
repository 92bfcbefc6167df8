// `minivisor trace export --perfetto`: a boot's JSON-lines trace in the Chrome trace-event format,
// checked against the JSON schema of the subset we write (docs/trace-event.schema.json, from the
// Trace Event Format document) with ajv, and against the boot's own numbers (issue 13).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { toChromeTrace, type ChromeTraceEvent } from '../../src/view/perfetto.js';
import { capture } from '../helpers/captured-io.js';

const schema = JSON.parse(readFileSync(new URL('../../docs/trace-event.schema.json', import.meta.url), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);

describe('trace export --perfetto', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mv-perfetto-'));
  const jsonl = join(dir, 'boot.jsonl');
  const out = join(dir, 'boot.json');
  let boot: { acceptedBytes: { total: number }; traceEvents: number };
  let chrome: { traceEvents: ChromeTraceEvent[]; otherData: Record<string, string> };

  beforeAll(async () => {
    const io = capture();
    expect(await main(['boot', '--json', '--memory', '256M', '--workload', '16M', '--trace', jsonl], io)).toBe(0);
    boot = JSON.parse(io.stdout[0]!);
    const exp = capture();
    expect(await main(['trace', 'export', '--perfetto', jsonl, out], exp)).toBe(0);
    chrome = JSON.parse(readFileSync(out, 'utf8'));
  });

  it('is valid against the trace-event schema', () => {
    const ok = validate(chrome);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
  });

  it('has one named track per source and the boot stages as consecutive spans', () => {
    const threads = chrome.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => String(e.args!.name));
    expect(threads).toHaveLength(4);
    expect(threads.join('|')).toMatch(/hardware.*\|VMM.*\|guest\|guest boot stages/);
    const spans = chrome.traceEvents.filter((e) => e.ph === 'X');
    expect(spans.map((s) => s.name)).toEqual(['firmware', 'decompressor', 'kernel']);
    for (let i = 1; i < spans.length; i++) expect(spans[i]!.ts).toBe(spans[i - 1]!.ts! + spans[i - 1]!.dur!);
    expect(new Set(spans.map((s) => s.tid)).size).toBe(1);
  });

  it('keeps every other event once, in order, and its successful accepts add up to acceptedBytes', () => {
    const instants = chrome.traceEvents.filter((e) => e.ph === 'i');
    const stages = chrome.traceEvents.filter((e) => e.ph === 'X').length;
    expect(instants.length + stages).toBe(boot.traceEvents);
    const ts = instants.map((e) => e.ts!);
    expect(ts).toEqual([...ts].sort((a, b) => a - b));
    const accepted = instants.filter((e) => e.cat === 'accept' && / ok$/.test(e.name))
      .reduce((n, e) => n + (e.name.includes('2M') ? 2 ** 21 : 2 ** 12), 0);
    expect(accepted).toBe(boot.acceptedBytes.total);
    expect(instants.some((e) => e.cat === 'exit')).toBe(true);
  });

  it('is deterministic: the same run exported twice gives the same bytes', async () => {
    const again = join(dir, 'again.json');
    expect(await main(['trace', 'export', '--perfetto', jsonl, again], capture())).toBe(0);
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(out, 'utf8'));
  });

  it('refuses a file that is not a minivisor trace with one line, and writes nothing', async () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"seq":0,"source":"hw","type":"x"}\nnot json\n');
    const io = capture();
    expect(await main(['trace', 'export', '--perfetto', bad, join(dir, 'bad.json')], io)).toBe(2);
    expect(io.stderr).toHaveLength(1);
    expect(io.stderr[0]).toMatch(/line 2 is not JSON/);
    expect(existsSync(join(dir, 'bad.json'))).toBe(false);
  });
});

describe('toChromeTrace clock', () => {
  it('uses the guest instruction count when every event carries it, else the event number', () => {
    const events = [
      { seq: 0, source: 'guest', type: 'stage', stage: 'firmware', instructions: 10 },
      { seq: 1, source: 'hw', type: 'td-exit', instructions: '0x64' },
      { seq: 2, source: 'vmm', type: 'map-gpa', instructions: 250 },
    ];
    const withClock = toChromeTrace(events).traceEvents.filter((e) => e.ph !== 'M');
    expect(withClock.map((e) => [e.name, e.ts])).toEqual([['td-exit', 100], ['map-gpa', 250], ['firmware', 10]]);
    expect(withClock.find((e) => e.ph === 'X')!.dur).toBe(240);
    const bySeq = toChromeTrace(events.map(({ instructions: _i, ...e }) => e)).traceEvents.filter((e) => e.ph === 'i');
    expect(bySeq.map((e) => e.ts)).toEqual([1, 2]);
  });
});
