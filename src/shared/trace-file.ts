// A trace file read back (`trace export`, `trace diff`): the JSON lines `boot --trace` writes, a
// header line (src/boot/trace-header.ts) and then one event a line (src/shared/trace.ts; the
// format: docs/trace-schema.md). One reader, so every command that takes a trace agrees on what
// one is and says the same of a file that is not one.
import type { TraceEvent, TraceValue } from './trace.js';

/** An event as its JSON line holds it (bigints are "0x…" strings). */
export type TraceFileEvent = Pick<TraceEvent, 'seq' | 'source' | 'type'> & Record<string, TraceValue>;

export interface TraceFile {
  /** The header line; an older or hand-made trace may have none. */
  header: Record<string, TraceValue> | undefined;
  events: TraceFileEvent[];
  /** The events' lines as written, one per event (`trace diff` compares them as text: the writer is deterministic). */
  lines: string[];
}

export class TraceFileError extends Error {
  override name = 'TraceFileError';
}

const SOURCES: ReadonlySet<unknown> = new Set<TraceEvent['source']>(['hw', 'vmm', 'guest']);

/**
 * The header and events of JSON-lines trace text, each line checked; `name` starts every error
 * message (the file, as the command echoes it). Line numbers count blank lines too, as an editor
 * does. The header, if any, is the first line: `type` minivisor-trace and no `seq`.
 */
export function parseTraceText(text: string, name: string): TraceFile {
  let header: Record<string, TraceValue> | undefined;
  const events: TraceFileEvent[] = [];
  const lines: string[] = [];
  const refuse = (lineNo: number, why: string) => new TraceFileError(`${name} line ${lineNo} ${why}`);
  const all = text.split('\n');
  for (let i = 0; i < all.length; i++) {
    const line = all[i]!;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw refuse(i + 1, 'is not JSON: is it a --trace file?');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw refuse(i + 1, 'is not a JSON object');
    const o = value as Record<string, TraceValue>;
    if (typeof o.seq !== 'number') {
      const first = header === undefined && events.length === 0;
      if (first && o.type === 'minivisor-trace' && !('seq' in o)) {
        header = o;
        continue;
      }
      throw refuse(i + 1, first
        ? 'is neither a minivisor trace header ("type":"minivisor-trace") nor an event ("seq")'
        : 'has no event number ("seq")');
    }
    // A count from 0, as boot --trace writes it: 1e400 parsed as Infinity and was exported as ts null.
    if (!Number.isSafeInteger(o.seq) || o.seq < 0) throw refuse(i + 1, `has an event number ("seq") that is not a whole number from 0 to 2^53: ${line.match(/"seq"\s*:\s*([^,}]{0,40})/)?.[1] ?? o.seq}`);
    if (typeof o.type !== 'string' || !SOURCES.has(o.source)) {
      throw refuse(i + 1, 'is not a minivisor trace event (needs source hw, vmm or guest and a type)');
    }
    events.push(o as TraceFileEvent);
    lines.push(line);
  }
  return { header, events, lines };
}

/**
 * Why a trace file read back holds no trace, or undefined when it does. `boot --trace` writes a
 * header line and then the events, at least one (the vCPU's vp-init); only a --trace-filter run,
 * whose header names the filter, may keep none. Events without a header (an older or hand-made
 * file) are read as a trace.
 */
function notATraceReason(header: Record<string, unknown> | undefined, eventCount: number): string | undefined {
  if (eventCount > 0) return undefined;
  if (header === undefined) return 'is empty: not a trace (`minivisor boot --trace FILE` writes a header line, then the events)';
  if (header.filter === undefined) return 'has a header line but no events: not a whole trace (only a --trace-filter run may keep no events)';
  return undefined;
}

/** A trace file's text as `trace export` and `trace diff` take it: parsed, and refused when it holds no trace. */
export function readTraceFile(text: string, name: string): TraceFile {
  const trace = parseTraceText(text, name);
  const reason = notATraceReason(trace.header, trace.events.length);
  if (reason !== undefined) throw new TraceFileError(`${name} ${reason}`);
  return trace;
}
