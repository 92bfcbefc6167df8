// Where `boot --trace` goes and in which format: `-` (or a name for stdout itself, such as
// /dev/stdout) is stdout, a name ending in .json is the
// Chrome/Perfetto trace-event format (converted when the run ends), anything else (.jsonl) the
// native JSON lines. `--trace-filter` keeps only the named event types or sources; the header
// line says which, because a filtered file no longer hashes to the run's traceSha256.
import { OutputFile, OutputFileError } from '../shared/output-file.js';
import { TRACE_EVENT_TYPES, TRACE_SOURCES } from '../shared/trace-event-types.js';
import type { TraceWriter } from '../boot/boot-guest.js';
import { fstatSync, statSync } from 'node:fs';
import { isMemoryDevice, writeFullySync } from './io.js';
import { toChromeTrace } from '../view/perfetto.js';
import { parseTraceText } from '../shared/trace-file.js';

export class TraceFilterError extends Error {
  override name = 'TraceFilterError';
}

/** Exit status when the trace's reader closed the pipe: what a shell reports for a process that SIGPIPE ended (128 + 13). */
export const EXIT_READER_GONE = 141;

/** The trace's reader went away (`--trace - | head`): thrown once, so the run ends; later writes are dropped. */
export class TraceReaderGone extends Error {
  override name = 'TraceReaderGone';
}

export interface TraceOutput extends TraceWriter {
  /** The reader closed the pipe: the run was cut short, and ends quietly (exit 141, like SIGPIPE). */
  readonly readerGone: boolean;
}

export type TraceFormat = 'jsonl' | 'perfetto';

export function traceFormat(path: string): TraceFormat {
  return /\.json$/i.test(path) ? 'perfetto' : 'jsonl';
}

/** Keeps events whose source or type is listed. */
export interface TraceFilter {
  names: readonly string[];
  keeps(source: string, type: string): boolean;
}

/** `--trace-filter a,b,c`: event types and sources, each checked against the table. */
export function parseTraceFilter(text: string): TraceFilter {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new TraceFilterError('--trace-filter needs at least one event type or source (`--trace-filter help` lists them)');
  const known = new Set<string>([...TRACE_SOURCES, ...TRACE_EVENT_TYPES.map((t) => t.type)]);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) throw new TraceFilterError(`--trace-filter: unknown event type or source ${unknown.map((u) => JSON.stringify(u.slice(0, 64))).join(', ')} (\`--trace-filter help\` lists them)`);
  const wanted = new Set(names);
  return { names, keeps: (source, type) => wanted.has(source) || wanted.has(type) };
}

/** What `--trace-filter help` prints. */
export function traceFilterHelp(): string[] {
  const width = Math.max(...TRACE_EVENT_TYPES.map((t) => t.type.length));
  return [
    'Event types for --trace-filter (comma-separated; a source name hw, vmm or guest keeps all of its types):',
    ...TRACE_SOURCES.flatMap((source) => [
      '',
      `${source}:`,
      ...TRACE_EVENT_TYPES.filter((t) => t.source === source).map((t) => `  ${t.type.padEnd(width)}  ${t.what}`),
    ]),
    '',
    'The schema of every event: docs/trace-schema.md.',
  ];
}

// traceLine() writes `{"seq":N,"source":"…","type":"…"` first (src/shared/trace.ts): read the two
// without parsing the whole line.
const HEAD = /^\{"seq":\d+,"source":"([a-z]+)","type":"([^"]*)"/;

/** stdout as a TraceWriter: written as it goes; a closed pipe ends the run (TraceReaderGone). */
class StdoutTrace implements TraceWriter {
  write(text: string): void {
    try {
      writeFullySync(1, Buffer.from(text, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') throw new OutputFileError('cannot write the trace to stdout: EPIPE', 'EPIPE');
      throw err;
    }
  }
  commit(): void {}
  abandon(): string {
    return 'the trace on stdout may be incomplete';
  }
}

/**
 * `--trace PATH` goes to this process's stdout: `-`, or a name for what stdout is (/dev/stdout,
 * /proc/self/fd/1, the file or pipe the shell sent it to). The trace then has stdout to itself, as
 * with `-`: the console and the summary written there too would land in the middle of it. Not a
 * memory device (/dev/null): what goes there is discarded, so nothing is mixed.
 */
export function traceGoesToStdout(path: string): boolean {
  if (path === '-') return true;
  try {
    const stdout = fstatSync(1);
    const target = statSync(path);
    return stdout.dev === target.dev && stdout.ino === target.ino && !isMemoryDevice(target);
  } catch {
    return false;
  }
}

/**
 * A file (or stdout) for `--trace PATH` in the format its name asks for, keeping only what
 * `filter` keeps. `inputs` are never overwritten.
 */
export function openTraceOutput(path: string, inputs: readonly string[], filter: TraceFilter | undefined): TraceOutput {
  const format = path === '-' ? 'jsonl' : traceFormat(path);
  const target: TraceWriter = traceGoesToStdout(path) ? new StdoutTrace() : new OutputFile(path, format === 'perfetto' ? 'Perfetto trace' : 'trace', inputs);
  const convert = (text: string) => {
    const { header, events } = parseTraceText(text, 'trace');
    return `${JSON.stringify(toChromeTrace(events, header))}\n`;
  };
  // Perfetto's format is one JSON object: the lines are kept and converted at the end.
  const kept: string[] = [];
  let first = true;
  let readerGone = false;
  const write = (text: string) => {
    if (readerGone) return;
    if (format === 'perfetto') {
      kept.push(text);
      return;
    }
    try {
      target.write(text);
    } catch (err) {
      if (!(err instanceof OutputFileError && err.code === 'EPIPE')) throw err;
      // The run loop ends the run on this error; whatever it records after is dropped.
      readerGone = true;
      throw new TraceReaderGone('the trace\'s reader closed the pipe');
    }
  };
  return {
    get readerGone() {
      return readerGone;
    },
    write(text: string): void {
      if (first) {
        // The header line: say what was filtered out.
        first = false;
        if (filter !== undefined) {
          const header = JSON.parse(text) as Record<string, unknown>;
          write(`${JSON.stringify({ ...header, filter: filter.names })}\n`);
          return;
        }
        write(text);
        return;
      }
      if (filter !== undefined) {
        const m = HEAD.exec(text);
        if (m && !filter.keeps(m[1]!, m[2]!)) return;
      }
      write(text);
    },
    commit(): void {
      if (readerGone) return;
      if (format === 'perfetto') target.write(convert(kept.join('')));
      target.commit();
    },
    abandon: () => target.abandon(),
  };
}
