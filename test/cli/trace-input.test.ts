// What `trace export` and `trace diff` take for a trace: a header line and events, as `boot --trace`
// writes. An empty file, blank lines or a header alone are not a trace: one line on stderr, exit 2,
// nothing written. A --trace-filter run's file may hold a header and no event: that one is a trace.
import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { capture } from '../helpers/captured-io.js';

const dir = mkdtempSync(join(tmpdir(), 'minivisor-trace-input-'));

const HEADER = '{"type":"minivisor-trace","schema":3,"minivisor":"0.1.0","config":{"platform":"tdx"}}';
const EVENT = '{"seq":0,"source":"vmm","type":"vp-init","icount":"0x0","stage":"vmm"}';

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const NOT_TRACES: Array<[string, string, RegExp]> = [
  ['empty', '', /is empty: not a trace/],
  ['blank lines', '\n \n\n', /is empty: not a trace/],
  ['a header alone', `${HEADER}\n`, /has a header line but no events/],
  ['an object that is neither header nor event', '{"hello":"world"}\n', /line 1 is neither a minivisor trace header .* nor an event/],
  // Every line is checked, not only those a diff report shows (before, trace diff found a file with
  // this one identical to itself), and counted as an editor counts them, blank lines too.
  ['a line that is not JSON after events and a blank line', `${HEADER}\n${EVENT}\n\n\x7fELF\n`, /line 4 is not JSON/],
  ['an event from no known source', `${HEADER}\n${EVENT}\n{"seq":1,"source":"toString","type":"x"}\n`, /line 3 is not a minivisor trace event \(needs source hw, vmm or guest/],
  ['a later line without an event number', `${HEADER}\n${EVENT}\n{"type":"minivisor-trace"}\n`, /line 3 has no event number/],
  ['an event number past what a number holds exactly', `${HEADER}\n${EVENT}\n{"seq":1e400,"source":"vmm","type":"x"}\n`, /line 3 has an event number \("seq"\) that is not a whole number from 0 to 2\^53: 1e400/],
  ['a negative or fractional event number', `${HEADER}\n{"seq":-1.5,"source":"vmm","type":"x"}\n`, /line 2 has an event number \("seq"\) that is not a whole number from 0 to 2\^53: -1\.5/],
];

describe('trace export and trace diff refuse what is not a trace', () => {
  const good = file('good.jsonl', `${HEADER}\n${EVENT}\n`);
  for (const [what, text, pattern] of NOT_TRACES) {
    it(`trace export: ${what}`, async () => {
      const input = file(`${what.replace(/\W+/g, '-')}.jsonl`, text);
      const out = join(dir, `${what.replace(/\W+/g, '-')}-out.json`);
      const io = capture();
      expect(await main(['trace', 'export', '--perfetto', input, out], io)).toBe(2);
      expect(io.stderr).toEqual([expect.stringMatching(/^minivisor trace export: trace ".*" /)]);
      expect(io.stderr[0]).toMatch(pattern);
      expect(existsSync(out)).toBe(false);
      expect(readFileSync(input, 'utf8')).toBe(text);
    });

    it(`trace diff: ${what}, on either side or both`, async () => {
      const input = file(`${what.replace(/\W+/g, '-')}.jsonl`, text);
      for (const [a, b] of [[input, input], [input, good], [good, input]]) {
        const io = capture();
        expect(await main(['trace', 'diff', a!, b!], io)).toBe(2);
        expect(io.stdout).toEqual([]);
        expect(io.stderr).toEqual([expect.stringMatching(/^minivisor trace diff: \/\S+\.jsonl /)]);
        expect(io.stderr[0]).toMatch(pattern);
      }
    });
  }

  it('trace diff refuses a header followed by something else than events (before: the file and itself were "identical", exit 0)', async () => {
    const junk = file('header-then-junk.jsonl', `${HEADER}\n\x7fELF\x02\x01\x01\x00\n`);
    const io = capture();
    expect(await main(['trace', 'diff', junk, junk], io)).toBe(2);
    expect(io.stderr).toEqual([expect.stringMatching(/^minivisor trace diff: \/\S+header-then-junk\.jsonl line 2 is not JSON/)]);
  });

  it('a header alone is a trace when it names a --trace-filter that kept nothing', async () => {
    const filtered = file('filtered.jsonl', `${HEADER.slice(0, -1)},"filter":["psmash"]}\n`);
    const io = capture();
    expect(await main(['trace', 'diff', filtered, filtered], io)).toBe(0);
    expect(io.stdout).toEqual(['the 0 events are identical']);
    const out = join(dir, 'filtered.json');
    expect(await main(['trace', 'export', '--perfetto', filtered, out], capture())).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).traceEvents.every((e: { ph: string }) => e.ph === 'M')).toBe(true);
  });

  it('events without a header line (an older or hand-made trace) are still a trace', async () => {
    const headless = file('headless.jsonl', `${EVENT}\n`);
    expect(await main(['trace', 'diff', headless, headless], capture())).toBe(0);
    expect(await main(['trace', 'export', '--perfetto', headless, join(dir, 'headless.json')], capture())).toBe(0);
  });

  it('trace diff writes the events\' strings escaped: a control character in a field does not reach the terminal', async () => {
    const a = file('plain.jsonl', `${HEADER}\n{"seq":0,"source":"vmm","type":"x","note":"a"}\n`);
    const b = file('escapes.jsonl', `${HEADER}\n{"seq":0,"source":"vmm","type":"x","note":"\\u001b[2J\\u009b31m"}\n`);
    const io = capture();
    expect(await main(['trace', 'diff', a, b], io)).toBe(1);
    expect(io.stdout).toContain('  B >  #0 vmm x: note \\u001b[2J\\u009b31m');
    // eslint-disable-next-line no-control-regex
    expect(io.stdout.join('\n')).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  });

  it('fields of an unexpected type in a hand-made trace are shown as they are, not fatal (before: BigInt\'s SyntaxError or RangeError, "minivisor: Cannot convert zz to a BigInt", exit 1)', async () => {
    const odd = file('odd-fields.jsonl', `${HEADER}\n{"seq":0,"source":"hw","type":"tdcall","leaf":"MEM_PAGE_ACCEPT","rcx":"zz","icount":1.5}\n`
      + `{"seq":1,"source":"vmm","type":"x","icount":"0x${'f'.repeat(300)}"}\n`);
    const out = join(dir, 'odd-fields.json');
    const exported = capture();
    expect(await main(['trace', 'export', '--perfetto', odd, out], exported)).toBe(0);
    const chrome = JSON.parse(readFileSync(out, 'utf8')) as { traceEvents: Array<{ ph: string; name: string; ts?: number }> };
    const instants = chrome.traceEvents.filter((e) => e.ph === 'i');
    // Not every event has a usable instruction count, so the clock is the event number.
    expect(instants.map((e) => [e.name, e.ts])).toEqual([['accept 4K failed', 0], ['x', 1]]);
    const diffed = capture();
    expect(await main(['trace', 'diff', odd, file('plain-event.jsonl', `${HEADER}\n${EVENT}\n`)], diffed)).toBe(1);
    expect(diffed.stderr).toEqual([]);
    expect(diffed.stdout).toContain('  A >  #0 hw tdcall: leaf MEM_PAGE_ACCEPT, rcx zz');
  });

  it('trace export: an output that cannot be used is a usage error (exit 2, as boot, replay and shrink), the input intact', async () => {
    const input = file('in.jsonl', `${HEADER}\n${EVENT}\n`);
    const cases: Array<[string, RegExp]> = [
      [input, /^minivisor trace export: Perfetto trace ".*in\.jsonl" is the input ".*in\.jsonl"; inputs are never overwritten$/],
      [dir, /^minivisor trace export: Perfetto trace ".*" is a directory$/],
      ['', /^minivisor trace export: Perfetto trace "" is an empty file name$/],
      [join(dir, 'no', 'such', 'x.json'), /^minivisor trace export: cannot write Perfetto trace .*does not exist \(ENOENT\)$/],
    ];
    for (const [out, pattern] of cases) {
      const io = capture();
      // Before: exit status 1, which the help gives to a write that fails on the way.
      expect(await main(['trace', 'export', '--perfetto', input, out], io)).toBe(2);
      expect(io.stderr).toEqual([expect.stringMatching(pattern)]);
    }
    expect(readFileSync(input, 'utf8')).toBe(`${HEADER}\n${EVENT}\n`);
    // A write that fails on the way is still exit 1. /dev/full through a link of our own: a broken
    // output writer (a mutant) that renames over its target replaces the link, not the device.
    const devFull = join(dir, 'full');
    symlinkSync('/dev/full', devFull);
    const io = capture();
    expect(await main(['trace', 'export', '--perfetto', input, devFull], io)).toBe(1);
    expect(io.stderr).toEqual([expect.stringMatching(/ENOSPC/)]);
  });
});

