// A JSON-lines trace as the Chrome trace-event format ("JSON Object Format" of the Trace Event
// Format document, docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU), which
// ui.perfetto.dev and chrome://tracing open. One process, one track (thread) per source: the
// trusted hardware, the VMM, the guest. The guest's boot stages are spans ("X" events) on their own
// track; every other event is an instant ("i", thread scope) with its fields as args, named and
// categorised so accept calls, exits and conversions can be filtered.
//
// The clock is the guest's instruction count when the trace carries it, else the event sequence
// number: never wall-clock time, so the same run gives the same file. One tick is 1 µs, the format's
// unit of ts. No displayTimeUnit: the format calls it a display preference only, but Perfetto's JSON
// importer up to at least v20 read it as the unit of ts (google/perfetto
// src/trace_processor/importers/json/json_trace_tokenizer.cc, MaybeParseDisplayTimeUnit), while later
// ones ignore it, so with "ns" the same file showed one tick as 1 ns or 1 µs depending on the
// viewer's version (test/browser/perfetto-ui.test.ts caught it).

/** A trace event as a JSON line holds it. */
export type TraceLineEvent = { seq: number; source: string; type: string } & Record<string, unknown>;

export interface ChromeTraceEvent {
  name: string;
  ph: 'X' | 'i' | 'M';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  s?: 't';
  args?: Record<string, unknown>;
}

export interface ChromeTrace {
  traceEvents: ChromeTraceEvent[];
  otherData: Record<string, string>;
}

const PID = 1;
/** Track per source, in display order. */
const TRACKS = [
  { tid: 1, source: 'hw', name: 'hardware (TDX module / AMD CPU and firmware)' },
  { tid: 2, source: 'vmm', name: 'VMM (untrusted)' },
  { tid: 3, source: 'guest', name: 'guest' },
  { tid: 4, source: 'stage', name: 'guest boot stages' },
] as const;
const TID = Object.fromEntries(TRACKS.map((t) => [t.source, t.tid])) as Record<(typeof TRACKS)[number]['source'], number>;

/** Event types that change a page between private and shared (TDX MapGPA, SNP page-state changes, RMP updates). */
const CONVERSIONS = new Set(['map-gpa', 'psc', 'rmpupdate', 'psmash', 'shared-ept']);
/** Exits to the VMM and the faults that cause them. */
const EXITS = new Set(['td-exit', 'vmgexit', 'npf', 'npf-handled', 'ghcb-exit', 'ghcb-msr']);

/** Field names kit's trace header work gives each event (instruction count); optional. */
const CLOCK_FIELDS = ['instructions', 'icount'] as const;

/**
 * A "0x…" string field as a bigint, or undefined for anything else: a hand-made or damaged trace
 * read back by `trace export` may hold any JSON there (before, "zz" ended the command with
 * BigInt's SyntaxError).
 */
function hexField(v: unknown): bigint | undefined {
  return typeof v === 'string' && /^0x[0-9a-f]+$/i.test(v) ? BigInt(v) : undefined;
}

function clockOf(e: TraceLineEvent): number | undefined {
  for (const f of CLOCK_FIELDS) {
    const v = e[f];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    const n = hexField(v);
    // Past 2^53 a count is no longer exact as a number (and 0x + 300 digits is Infinity, written as null).
    if (n !== undefined && n <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(n);
  }
  return undefined;
}

function isAccept(e: TraceLineEvent): boolean {
  return (e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT') || (e.type === 'pvalidate' && e.validate === true);
}

/** Name and category of one event on the timeline. */
function describe(e: TraceLineEvent): { name: string; cat: string } {
  if (e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT') {
    const rcx = hexField(e.rcx);
    const level = rcx !== undefined ? Number(rcx & 7n) : -1;
    return { name: `accept ${level === 1 ? '2M' : '4K'} ${e.status === '0x0' ? 'ok' : String(e.result ?? 'failed')}`, cat: 'accept' };
  }
  if (isAccept(e)) return { name: `pvalidate ${e.size === '2m' ? '2M' : '4K'} ${e.rc === 0 && e.cf === false ? 'ok' : `rc ${String(e.rc)}`}`, cat: 'accept' };
  if (e.type === 'tdcall' || e.type === 'seamcall') return { name: `${e.type} ${String(e.leaf ?? '?')}`, cat: e.type };
  if (CONVERSIONS.has(e.type)) return { name: e.type, cat: 'conversion' };
  if (EXITS.has(e.type)) return { name: e.type, cat: 'exit' };
  if (e.type === 'outcome') return { name: `outcome ${String(e.outcome)}`, cat: 'outcome' };
  return { name: e.type, cat: 'event' };
}

/** The Chrome trace-event form of a run's events (see the file comment). */
export function toChromeTrace(events: readonly TraceLineEvent[], header?: Record<string, unknown>): ChromeTrace {
  const clockIsInstructions = events.length > 0 && events.every((e) => clockOf(e) !== undefined);
  let last = 0;
  const ts = (e: TraceLineEvent) => {
    last = Math.max(last, clockIsInstructions ? clockOf(e)! : e.seq);
    return last;
  };
  const out: ChromeTraceEvent[] = [
    { name: 'process_name', ph: 'M', pid: PID, tid: 0, args: { name: 'minivisor guest' } },
    ...TRACKS.flatMap((t) => [
      { name: 'thread_name', ph: 'M' as const, pid: PID, tid: t.tid, args: { name: t.name } },
      { name: 'thread_sort_index', ph: 'M' as const, pid: PID, tid: t.tid, args: { sort_index: t.tid } },
    ]),
  ];
  let stage: { name: string; start: number } | undefined;
  const endStage = (at: number) => {
    if (stage) out.push({ name: stage.name, cat: 'stage', ph: 'X', pid: PID, tid: TID.stage, ts: stage.start, dur: at - stage.start });
  };
  for (const e of events) {
    const at = ts(e);
    if (e.source === 'guest' && e.type === 'stage') {
      endStage(at);
      stage = { name: String(e.stage), start: at };
      continue;
    }
    const { name, cat } = describe(e);
    const { seq: _seq, source, type: _type, ...fields } = e;
    out.push({ name, cat, ph: 'i', s: 't', pid: PID, tid: TID[source as 'hw' | 'vmm' | 'guest'], ts: at, args: { seq: e.seq, type: e.type, ...fields } });
  }
  endStage(last);
  return {
    traceEvents: out,
    otherData: {
      clock: clockIsInstructions ? 'guest instructions (1 per µs shown)' : 'trace event number (1 per µs shown)',
      ...(header ? { header: JSON.stringify(header) } : {}),
    },
  };
}
