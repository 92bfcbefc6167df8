// A trace file read back (src/shared/trace-file.ts), in process: one optional header line first
// (`type` minivisor-trace and no `seq`), then events, each a JSON object with a whole `seq` from 0
// to 2^53, a source of hw, vmm or guest, and a string type (docs/trace-schema.md). Anything else
// is refused on its line, counted as an editor counts (blank lines too).
import { describe, expect, it } from 'vitest';
import { parseTraceText, TraceFileError } from '../../../src/shared/trace-file.js';
import { refusalMessage } from '../../helpers/refusal.js';

const HEADER = JSON.stringify({ type: 'minivisor-trace', schema: 3 });
const EVENT = JSON.stringify({ seq: 0, source: 'hw', type: 'tdcall', leaf: 'MEM_PAGE_ACCEPT' });

/** The TraceFileError `text` gets (failing the test when it gets none or another exception). */
const refusal = (text: string): string => refusalMessage(() => parseTraceText(text, 'run.jsonl'), TraceFileError);

describe('parseTraceText', () => {
  it('reads the header line, then the events and their lines as written, skipping blank lines', () => {
    const trace = parseTraceText(`${HEADER}\n\n  \n${EVENT}\n`, 'run.jsonl');
    expect(trace.header).toEqual({ type: 'minivisor-trace', schema: 3 });
    expect(trace.events).toEqual([JSON.parse(EVENT)]);
    expect(trace.lines).toEqual([EVENT]);
  });

  it('takes a header only on the first line, and only without a seq', () => {
    expect(refusal(`${HEADER}\n${HEADER}\n${EVENT}\n`)).toBe('run.jsonl line 2 has no event number ("seq")');
    expect(refusal(`${JSON.stringify({ type: 'minivisor-trace', seq: 'first' })}\n${EVENT}\n`))
      .toBe('run.jsonl line 1 is neither a minivisor trace header ("type":"minivisor-trace") nor an event ("seq")');
  });

  it('refuses a line that is JSON but not an object', () => {
    for (const line of ['[0]', '3', '"text"', 'null']) expect(refusal(`${HEADER}\n${line}\n`)).toBe('run.jsonl line 2 is not a JSON object');
  });

  it('refuses an event number that is not a whole number from 0 to 2^53', () => {
    for (const seq of ['-1', '1.5', String(2 ** 60)]) {
      expect(refusal(`${HEADER}\n{"seq":${seq},"source":"hw","type":"tdcall"}\n`)).toMatch(/^run\.jsonl line 2 has an event number \("seq"\) that is not a whole number from 0 to 2\^53: /);
    }
    expect(parseTraceText(`{"seq":${2 ** 53 - 1},"source":"hw","type":"tdcall"}\n`, 'run.jsonl').events).toHaveLength(1);
  });

  it('refuses an event without a known source or a string type', () => {
    const why = 'run.jsonl line 2 is not a minivisor trace event (needs source hw, vmm or guest and a type)';
    expect(refusal(`${HEADER}\n{"seq":0,"source":"cpu","type":"tdcall"}\n`)).toBe(why);
    expect(refusal(`${HEADER}\n{"seq":0,"source":"hw","type":5}\n`)).toBe(why);
    expect(refusal(`${HEADER}\n{"seq":0,"source":"hw"}\n`)).toBe(why);
  });
});
