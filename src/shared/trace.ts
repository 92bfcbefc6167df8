// The structured, deterministic trace of a run: every TDCALL, SEAMCALL, PVALIDATE, VMGEXIT,
// RMP update, TD exit, NPF and injected event is one event. Events carry no wall-clock time,
// so the same config and seed give the same trace and the same hash. Serialised as JSON lines
// with bigints as "0x…" strings.
import { createHash, type Hash } from 'node:crypto';

export type TraceValue = string | number | boolean | bigint | null | TraceValue[] | { [key: string]: TraceValue };
export interface TraceEvent {
  seq: number;
  /** Who produced it: the trusted hardware model, the VMM, or the guest (via the console). */
  source: 'hw' | 'vmm' | 'guest';
  type: string;
  [field: string]: TraceValue;
}

function toJson(value: TraceValue): unknown {
  if (typeof value === 'bigint') return `0x${value.toString(16)}`;
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  }
  return value;
}

export function traceLine(event: TraceEvent): string {
  return JSON.stringify(toJson(event as unknown as TraceValue));
}

export interface TraceOptions {
  /** Keep events in memory (tests, replays). Default true. */
  keep?: boolean;
  /** Called with each serialised line (e.g. to write a --trace file). */
  sink?: (line: string) => void;
}

export class Trace {
  readonly events: TraceEvent[] = [];
  readonly #keep: boolean;
  readonly #sink: ((line: string) => void) | undefined;
  readonly #hash: Hash = createHash('sha256');
  #seq = 0;
  readonly counts = new Map<string, number>();

  constructor(options: TraceOptions = {}) {
    this.#keep = options.keep ?? true;
    this.#sink = options.sink;
  }

  record(source: TraceEvent['source'], type: string, fields: Record<string, TraceValue> = {}): TraceEvent {
    const event: TraceEvent = { seq: this.#seq++, source, type, ...fields };
    const line = traceLine(event);
    this.#hash.update(line).update('\n');
    this.counts.set(type, (this.counts.get(type) ?? 0) + 1);
    if (this.#keep) this.events.push(event);
    this.#sink?.(line);
    return event;
  }

  get length(): number {
    return this.#seq;
  }

  /** SHA-256 of all lines so far (the trace's identity for determinism checks). */
  sha256(): string {
    return this.#hash.copy().digest('hex');
  }

  ofType(type: string): TraceEvent[] {
    return this.events.filter((e) => e.type === type);
  }
}
