// `boot --trace` and `--trace-filter` (src/cli/trace-output.ts), in process: a name ending in
// .json (any case) is the Perfetto format, anything else the JSON lines; a filter names at least
// one event type or source from the table, and keeps an event whose type or source it names.
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openTraceOutput, parseTraceFilter, TraceFilterError, traceFilterHelp, traceFormat } from '../../../src/cli/trace-output.js';
import { OutputFileError } from '../../../src/shared/output-file.js';
import { quoteForError } from '../../../src/shared/quote.js';
import { TRACE_EVENT_TYPES } from '../../../src/shared/trace-event-types.js';

describe('trace output', () => {
  it('is Perfetto for a name ending in .json in any case, JSON lines otherwise', () => {
    expect(traceFormat('run.json')).toBe('perfetto');
    expect(traceFormat('RUN.JSON')).toBe('perfetto');
    expect(traceFormat('run.jsonl')).toBe('jsonl');
    expect(traceFormat('run.json.bak')).toBe('jsonl');
  });

  it('filters by the types and sources named, skipping empty names, and refuses a filter that names none', () => {
    const filter = parseTraceFilter(' tdcall, ,guest,');
    expect(filter.names).toEqual(['tdcall', 'guest']);
    expect(filter.keeps('hw', 'tdcall')).toBe(true);
    expect(filter.keeps('guest', 'stage')).toBe(true);
    expect(filter.keeps('hw', 'seamcall')).toBe(false);
    for (const text of ['', ' , ,']) {
      expect(() => parseTraceFilter(text)).toThrow(new TraceFilterError('--trace-filter needs at least one event type or source (`--trace-filter help` lists them)'));
    }
  });

  it('ends the run with the write\'s error when the file cannot take it; only a closed pipe is a reader gone', () => {
    const full = join(mkdtempSync(join(tmpdir(), 'minivisor-trace-out-')), 'full');
    symlinkSync('/dev/full', full);
    const out = openTraceOutput(full, [], undefined);
    let caught: unknown;
    try { out.write('{"type":"minivisor-trace"}\n'); } catch (err) { caught = err; }
    expect(caught).toBeInstanceOf(OutputFileError);
    expect(caught).toMatchObject({ message: `cannot write trace ${quoteForError(full)}: ENOSPC`, code: 'ENOSPC' });
    expect(out.readerGone).toBe(false);
    out.abandon();
  });

  it('lists every type under its source, in a column as wide as the longest name', () => {
    const lines = traceFilterHelp();
    const width = Math.max(...TRACE_EVENT_TYPES.map((t) => t.type.length));
    for (const t of TRACE_EVENT_TYPES) expect(lines).toContain(`  ${t.type.padEnd(width)}  ${t.what}`);
    expect(lines.indexOf('vmm:')).toBeGreaterThan(lines.indexOf('hw:'));
  });
});
