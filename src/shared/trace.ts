// The structured, deterministic trace of a run: every TDCALL, SEAMCALL, PVALIDATE, VMGEXIT,
// RMP update, TD exit, NPF and injected event is one event. Events carry no wall-clock time,
// so the same config and seed give the same trace and the same hash. Written as JSON lines
// with bigints as "0x…" strings.
//
// The hash is SHA-256 over a compact binary encoding of the events rather than over the JSON
// lines: serialising every event to JSON was ~45% of the cost of an exit (issue 11). The encoding
// is defined on the JSON data model (a "0x…" hex string and the bigint it names encode alike), so
// hashing a written trace file back (traceSha256OfJsonLines) gives the same value. Event objects
// and JSON lines are only built when something keeps or writes them.
//
// A trace that keeps its events hashes them only when asked (sha256, a snapshot). A kept event is
// the very object the eager path hashes field by field, so both give the same bytes.
//
// What a trace does with each event is its retention, which can change between runs: 'hash' (feed
// the hash as recorded), 'keep' (keep the event object, hash on demand) or 'none' (neither). A
// trace observer sees every event as it is recorded, whatever the retention. The fuzzer runs its
// executions with 'none' and the oracle as the observer: it needs the hash of the few executions
// that become findings, and gets it by running such an execution again with 'hash' (executions are
// deterministic); building, keeping and later walking every event of every execution was a tenth
// of an execution and most of its garbage (issue 10).
import { BufferedHash, type BufferedHashState } from './buffered-hash.js';
import type { Snapshottable } from './snapshottable.js';
import { setU64LE } from './u64.js';

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

/**
 * A bound on a trace file read back (`minivisor trace`, `fuzz merge`), so a device or a runaway
 * file ends in one error: a 64T eager boot's trace is far below it.
 */
export const MAX_TRACE_FILE_BYTES = 512 * 2 ** 20;

export function traceLine(event: TraceEvent): string {
  return JSON.stringify(toJson(event as unknown as TraceValue));
}

// Tags of the binary encoding. Objects and arrays end with END; every object key is KEY + string.
const enum Tag { Null, False, True, Number, String, U64, BigHex, Array, Object, Key, End = 0xff }
const HEX = /^0x[0-9a-f]+$/;

type Utf8Writer = (this: Buffer, s: string, offset: number) => number;
/**
 * Writes `s` as UTF-8 at `offset` (room checked by the caller) and returns the bytes written: the
 * native writer Buffer's own write(s, offset, 'utf8') calls once it has checked its arguments.
 * A boot hashes ~6,000 strings (~35,000 characters), and copying them a character at a time ran in
 * V8's interpreter: ~12M instructions of a default boot's 1,060M, more than a native call per string
 * costs (issue 11). The bytes are the same. Buffer.prototype.utf8Write is not documented, so a
 * Node without it gets the documented call.
 */
const utf8Write: Utf8Writer = (Buffer.prototype as unknown as { utf8Write?: Utf8Writer }).utf8Write
  ?? function (this: Buffer, s: string, offset: number) { return this.write(s, offset, 'utf8'); };

/**
 * Strings of at most this many characters are encoded once, with their tag and length, and copied
 * whole from then on: a trace's keys and its enum-like values (leaf names, states, results) are a
 * few hundred strings written over and over. utf8Write per string cost ~90 ns in optimised code,
 * where a 2M ACCEPT's six events write ~120 strings: it doubled the trace's cost per page of an
 * eager boot (issue 11); the copy is ~40 ns there, and no slower than utf8Write in the interpreter.
 */
const CACHED_STRING_CHARS = 64;
/** At most this many of each kind are kept: past that (varied text), strings are encoded each time. */
const CACHED_STRINGS = 4096;
const keyUnits = new Map<string, Uint8Array>();
const stringUnits = new Map<string, Uint8Array>();

/** `s` as the encoding writes it after `tag`: tag, u32 length, UTF-8. */
function encodedUnit(tag: Tag, s: string): Uint8Array {
  const bytes = Buffer.from(s, 'utf8');
  const unit = new Uint8Array(5 + bytes.length);
  unit[0] = tag;
  new DataView(unit.buffer).setUint32(1, bytes.length, true);
  unit.set(bytes, 5);
  return unit;
}

/**
 * What the encoding writes for one event type after the event's seq: the source and type keys
 * and values (`head`), and the units of the keys its fields had the last time, by position
 * (`keys`, `keyUnits`). Most events of a type have the same keys in the same order, so a field's
 * key is found by comparing it with the one seen there last, not by a Map lookup; the four
 * strings of the head are one copy (issue 11: these lookups and copies were ~8% of a PVALIDATE exit).
 */
interface TypeUnits {
  head: Uint8Array;
  keys: string[];
  keyUnits: Uint8Array[];
  /**
   * By position, the string value the field had last time (enum-like values: a leaf's name, a
   * result, a page size), and once it came twice in a row the key's and its units as one
   * (`pairUnits`): one copy instead of two and no lookup of the value's unit (issue 11).
   */
  values: (string | undefined)[];
  pairUnits: (Uint8Array | undefined)[];
}
/** By source, then type; at most CACHED_STRINGS types each (past that, events are encoded as before). */
const typeUnits = new Map<string, Map<string, TypeUnits>>();
/** Object tag, the key "seq" and the Number tag: how every event starts, before its seq. */
const EVENT_START = Uint8Array.from([Tag.Object, ...encodedUnit(Tag.Key, 'seq'), Tag.Number]);

/** The units of events of `type` from `source`; undefined for a type the cache does not take. */
function unitsOf(source: string, type: string): TypeUnits | undefined {
  let bySource = typeUnits.get(source);
  if (bySource === undefined) {
    if (source.length > CACHED_STRING_CHARS) return undefined;
    typeUnits.set(source, (bySource = new Map()));
  }
  let units = bySource.get(type);
  if (units === undefined) {
    // A "0x…" type hashes as the bigint it names (value()): left to the general path.
    if (type.length > CACHED_STRING_CHARS || bySource.size >= CACHED_STRINGS || HEX.test(type)) return undefined;
    const head = Buffer.concat([encodedUnit(Tag.Key, 'source'), encodedUnit(Tag.String, source), encodedUnit(Tag.Key, 'type'), encodedUnit(Tag.String, type)]);
    units = { head, keys: [], keyUnits: [], values: [], pairUnits: [] };
    bySource.set(type, units);
  }
  return units;
}

/**
 * Writes event() of an event into `buf` from `pos` and returns where it ends, or a TraceEncoding
 * code. The addon's (native/src/trace_encoding.cc), installed when it loads: a default boot
 * records ~330 events, too few for V8 to compile the encoder below; run in its interpreter, with
 * the background compiles its calls set off, it was ~35M instructions (~5 ms of CPU) of a boot
 * (issue 11). It writes the same bytes (test/unit/trace-native-encoding.test.ts).
 */
export type EventEncoder = (buf: Uint8Array, pos: number, seq: number, source: string, type: string,
  fields: Record<string, TraceValue>, icount: bigint | undefined, stage: string | undefined) => number;

/** What an EventEncoder answers instead of a position. */
const enum TraceEncoding {
  /** The event does not fit between `pos` and the buffer's end. */
  NoRoom = -1,
  /** A field has the name of a header key (shadowsHeader). */
  ShadowsHeader = -2,
  /** Left to the TypeScript encoder (values nested too deep for it, or not its kind). */
  NotEncoded = -3,
}

/**
 * Events a process encodes with the native encoder; the TypeScript one takes the rest. Its N-API
 * calls make it slower than the TypeScript encoder once V8 has compiled that (~2 us an event
 * against ~0.7), but that takes thousands of events and background compiles: a 64G eager boot
 * (197,000 events) took ~8% more CPU all native. Past this many, a run is long enough to pay for
 * the compile.
 */
const NATIVE_ENCODED_EVENTS = 16384;
let eventEncoder: EventEncoder | undefined;
let nativeEventsLeft = 0;

/** Installs the native encoder of events (undefined: the TypeScript one), for the next `events` events. */
export function provideEventEncoder(encoder: EventEncoder | undefined, events = NATIVE_ENCODED_EVENTS): void {
  eventEncoder = encoder;
  nativeEventsLeft = events;
}

/** Feeds events to SHA-256 in the binary encoding. */
class EventHasher {
  readonly #h = new BufferedHash('sha256');

  /**
   * Appends `unit`: short ones a byte at a time, which in optimised code is a few instructions a
   * byte where TypedArray.prototype.set is a builtin call of ~150 (issue 11).
   */
  #copy(unit: Uint8Array): void {
    const h = this.#h;
    const n = unit.length;
    h.room(n);
    const buf = h.buf, at = h.pos;
    if (n <= 8) for (let i = 0; i < n; i++) buf[at + i] = unit[i]!;
    else buf.set(unit, at);
    h.pos = at + n;
  }

  /** The hash position so far, for a snapshot. */
  get hash(): BufferedHash {
    return this.#h;
  }

  #byte(b: number): void {
    const h = this.#h;
    h.room(1);
    h.buf[h.pos++] = b;
  }

  #string(tag: Tag, s: string): void {
    const h = this.#h;
    const n = s.length;
    if (n <= CACHED_STRING_CHARS && tag !== Tag.BigHex) {
      const units = tag === Tag.Key ? keyUnits : stringUnits;
      let unit = units.get(s);
      if (unit === undefined) {
        unit = encodedUnit(tag, s);
        if (units.size < CACHED_STRINGS) units.set(s, unit);
      }
      this.#copy(unit);
      return;
    }
    if (5 + 3 * n > BufferedHash.capacity) {
      const bytes = Buffer.from(s, 'utf8');
      h.room(5);
      h.buf[h.pos] = tag;
      h.view.setUint32(h.pos + 1, bytes.length, true);
      h.pos += 5;
      h.update(bytes);
      return;
    }
    h.room(5 + 3 * n);
    const buf = h.buf;
    const written = utf8Write.call(buf, s, h.pos + 5);
    buf[h.pos] = tag;
    h.view.setUint32(h.pos + 1, written, true);
    h.pos += 5 + written;
  }

  #bigint(v: bigint): void {
    // 0 <= v < 2^64: BigInt.asUintN(64) is inlined, where two BigInt comparisons were ~50
    // instructions each in optimised code, four or more bigints per event (issue 11); setU64LE
    // writes the same bytes as DataView.setBigUint64 did.
    if (BigInt.asUintN(64, v) === v) {
      const h = this.#h;
      h.room(9);
      const at = h.pos;
      h.buf[at] = Tag.U64;
      setU64LE(h.view, at + 1, v);
      h.pos = at + 9;
    } else if (v >= 0n) {
      this.#string(Tag.BigHex, v.toString(16));
    } else {
      this.#string(Tag.String, `0x${v.toString(16)}`);  // what the JSON file holds
    }
  }

  value(v: TraceValue | undefined): void {
    switch (typeof v) {
      case 'bigint': this.#bigint(v); return;
      case 'number': {
        if (!Number.isFinite(v)) { this.#byte(Tag.Null); return; }  // JSON writes null
        const h = this.#h;
        h.room(9);
        h.buf[h.pos] = Tag.Number;
        h.view.setFloat64(h.pos + 1, v === 0 ? 0 : v, true);
        h.pos += 9;
        return;
      }
      case 'string':
        // A bigint is a "0x…" string in the file: the two must hash alike.
        if (v.charCodeAt(0) === 48 && v.charCodeAt(1) === 120 && HEX.test(v)) this.#bigint(BigInt(v));
        else this.#string(Tag.String, v);
        return;
      case 'boolean': this.#byte(v ? Tag.True : Tag.False); return;
      case 'object':
        if (v === null) { this.#byte(Tag.Null); return; }
        if (Array.isArray(v)) {
          this.#byte(Tag.Array);
          for (const item of v) this.value(item);
          this.#byte(Tag.End);
          return;
        }
        this.#byte(Tag.Object);
        this.#fields(v);
        this.#byte(Tag.End);
        return;
      default:
        this.#byte(Tag.Null);  // undefined (or anything JSON cannot hold) in an array is null
    }
  }

  /** `units`: the event type's key units (TypeUnits), which this updates; none for nested objects. */
  #fields(obj: { [key: string]: TraceValue | undefined }, units?: TypeUnits): void {
    let i = 0;
    for (const key in obj) {
      const v = obj[key];
      if (v === undefined) continue;  // JSON drops the key
      if (units === undefined || key.length > CACHED_STRING_CHARS) this.#string(Tag.Key, key);
      else if (units.keys[i] === key) {
        // A string that is not "0x…" and short enough for the unit cache: what #string writes
        // for it is its encodedUnit, so the pair is the key's unit and that.
        if (typeof v === 'string' && v.charCodeAt(0) !== 48 && v.length <= CACHED_STRING_CHARS) {
          if (units.values[i] === v) {
            this.#copy(units.pairUnits[i] ??= Buffer.concat([units.keyUnits[i]!, stringUnits.get(v) ?? encodedUnit(Tag.String, v)]));
            i++;
            continue;
          }
          units.values[i] = v;
          units.pairUnits[i] = undefined;
        }
        this.#copy(units.keyUnits[i]!);
      } else {
        const unit = keyUnits.get(key) ?? encodedUnit(Tag.Key, key);
        units.keys[i] = key;
        units.keyUnits[i] = unit;
        units.values[i] = undefined;
        units.pairUnits[i] = undefined;
        this.#copy(unit);
      }
      i++;
      // Most field values are bigints and strings that are not "0x…": encoded here, without the
      // call into value() and its switch (the fields of every event go through this loop).
      if (typeof v === 'bigint') this.#bigint(v);
      else if (typeof v === 'string' && v.charCodeAt(0) !== 48) this.#string(Tag.String, v);
      else this.value(v);
    }
  }

  /**
   * The event `{ seq, source, type, ...fields }` without building it; with an envelope (what a
   * boot's trace puts on every event after the header keys, src/boot/accounting.ts),
   * `{ seq, source, type, icount, stage, ...fields }`. False, having fed nothing, when a field has
   * the name of a header key: the caller then hashes the object the file holds.
   */
  event(seq: number, source: string, type: string, fields: Record<string, TraceValue>, icount?: bigint, stage?: string): boolean {
    const encoder = eventEncoder;
    if (encoder !== undefined && nativeEventsLeft > 0) {
      nativeEventsLeft--;
      const h = this.#h;
      let end = encoder(h.buf, h.pos, seq, source, type, fields, icount, stage);
      if (end === TraceEncoding.NoRoom && h.pos > 0) {
        h.flush();
        end = encoder(h.buf, 0, seq, source, type, fields, icount, stage);
      }
      if (end === TraceEncoding.ShadowsHeader) return false;
      if (end >= 0) {
        h.lineage = undefined;  // as room() does for every writer
        h.pos = end;
        return true;
      }
      // Larger than the buffer, or left to this encoder.
    }
    if (shadowsHeader(fields, icount !== undefined)) return false;
    this.#encode(seq, source, type, fields, icount, stage);
    return true;
  }

  #encode(seq: number, source: string, type: string, fields: Record<string, TraceValue>, icount: bigint | undefined, stage: string | undefined): void {
    const units = unitsOf(source, type);
    if (units !== undefined) {
      this.#copy(EVENT_START);
      const h = this.#h;
      h.room(8);
      h.view.setFloat64(h.pos, seq, true);  // seq counts from 0: finite, and never -0
      h.pos += 8;
      this.#copy(units.head);
    } else {
      this.#byte(Tag.Object);
      this.#string(Tag.Key, 'seq');
      this.value(seq);
      this.#string(Tag.Key, 'source');
      this.#string(Tag.String, source);
      this.#string(Tag.Key, 'type');
      this.value(type);
    }
    if (icount !== undefined) {
      this.#string(Tag.Key, 'icount');
      this.#bigint(icount);
      this.#string(Tag.Key, 'stage');
      this.value(stage);
    }
    this.#fields(fields, units);
    this.#byte(Tag.End);
  }

  digest(): string {
    return this.#h.peek('hex');
  }
}

/** The trace hash of a JSON-lines trace file (what `Trace.sha256()` reported for the run that wrote it). */
export function traceSha256OfJsonLines(text: string): string {
  const hasher = new EventHasher();
  let first = true;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const value = JSON.parse(line) as TraceValue;
    // The header line (src/boot/trace-header.ts) describes the run; the hash covers its events.
    const header = first && value !== null && typeof value === 'object' && !Array.isArray(value) && value.type === 'minivisor-trace' && !('seq' in value);
    first = false;
    if (!header) hasher.value(value);
  }
  return hasher.digest();
}

/** What `Trace.sha256()` reports for a trace that kept all its events, `events` (in order), and nothing else. */
export function traceSha256OfEvents(events: readonly TraceEvent[]): string {
  const hasher = new EventHasher();
  for (const e of events) hasher.value(e as unknown as TraceValue);
  return hasher.digest();
}

/** What a trace does with each event besides showing it to its observer (see the top of this file). */
export type TraceRetention = 'keep' | 'hash' | 'none';

/**
 * Sees each event as it is recorded: its seq and type, and its fields (the fields object the
 * recorder passed, or the kept event object; not to be kept or changed). The seq and type are the
 * recorded ones even if a field has the same name (which a kept event would show instead; no
 * recorder does that, and checking every event for it cost more than the rest of the observing).
 */
export interface TraceObserver {
  event(seq: number, type: string, fields: Readonly<Record<string, TraceValue>>): void;
}

/**
 * Whether a key of `fields` that the event's own keys would replace is there (`seq`, `source`,
 * `type`, and with an envelope `icount` and `stage`): one walk over its keys, which compares
 * interned strings. Five `in` tests, each a megamorphic lookup since every event type has its own
 * shape, were ~3% of the instructions an eager SNP boot spends per further GiB (issue 11). A key the walk does not see
 * (not enumerable) is not in the file's event either, so both ways of hashing agree on it.
 */
function shadowsHeader(fields: Record<string, TraceValue>, envelope: boolean): boolean {
  for (const key in fields) {
    if (key === 'seq' || key === 'source' || key === 'type' || (envelope && (key === 'icount' || key === 'stage'))) return true;
  }
  return false;
}

/** The event as a file holds it: the header keys, the envelope when there is one, then the fields. */
function eventObject(seq: number, source: TraceEvent['source'], type: string, fields: Record<string, TraceValue>, icount: (() => bigint) | undefined, stage: string): TraceEvent {
  return icount === undefined ? { seq, source, type, ...fields } : { seq, source, type, icount: icount(), stage, ...fields };
}

export interface TraceOptions {
  /** Keep events in memory (tests, replays). Default true. false: hash them as recorded. */
  keep?: boolean;
  /** Called with each serialised line (e.g. to write a --trace file). */
  sink?: (line: string) => void;
}

/**
 * A hash position not computed yet: `base`'s followed by `events` (kept events, never changed).
 * A snapshot of a trace that keeps its events holds one of these instead of hashing them: a fuzz
 * launch's snapshot hashed its whole prefix (~1.5% of a campaign's CPU time, issue 10), and most
 * launches' executions never need a hash. Computed once, at the first restore that needs it.
 */
export class PendingHash {
  #base: BufferedHashState | PendingHash;
  #events: readonly TraceEvent[] | undefined;
  #state: BufferedHashState;

  constructor(base: BufferedHashState | PendingHash, events: readonly TraceEvent[]) {
    this.#base = base;
    this.#events = events;
  }

  resolve(): BufferedHashState {
    if (this.#events !== undefined) {
      const hasher = new EventHasher();
      hasher.hash.loadState(this.#base instanceof PendingHash ? this.#base.resolve() : this.#base);
      for (const e of this.#events) hasher.value(e as unknown as TraceValue);
      this.#state = hasher.hash.saveState();
      this.#events = undefined;
      this.#base = undefined;
    }
    return this.#state;
  }
}

/** A trace's position: restoring it drops later events and rewinds the hash (a sink cannot un-write). */
export interface TraceState {
  seq: number;
  kept: number;
  hash: BufferedHashState | PendingHash;
  counts: ReadonlyMap<string, number>;
}

export class Trace implements Snapshottable<TraceState> {
  readonly events: TraceEvent[] = [];
  #retention: TraceRetention;
  readonly #sink: ((line: string) => void) | undefined;
  readonly #hasher = new EventHasher();
  /** Kept events already fed to the hasher (with keep, hashing waits until the hash is needed). */
  #hashed = 0;
  /** Where the hash is when it is not computed yet (the hasher's own state is then stale): see PendingHash. */
  #pending: PendingHash | undefined;
  #seq = 0;
  /** Events were recorded with retention 'none' since the last load: the hash no longer covers the trace. */
  #unhashed = false;
  /** Sees every event as it is recorded (not part of the trace's state). */
  observer: TraceObserver | undefined;
  /** Events recorded, by type: one counter object per type ever seen, so counting an event is one lookup. */
  readonly #counts = new Map<string, { n: number }>();
  /**
   * The state whose counts were last loaded, with its counters and their values there: a fuzz
   * campaign loads one state per execution, and walking its Map every time showed (issue 10).
   * Counters are never removed from #counts, so these stay valid.
   */
  #countsOf: TraceState | undefined;
  #loadedCounters: { n: number }[] = [];
  #loadedCounts: number[] = [];

  constructor(options: TraceOptions = {}) {
    this.#retention = (options.keep ?? true) ? 'keep' : 'hash';
    this.#sink = options.sink;
  }

  get retention(): TraceRetention {
    return this.#retention;
  }

  /**
   * What to do with the events recorded from now on. After events recorded with 'none', the trace
   * has no hash (sha256 and saveState throw) until a state is loaded.
   */
  set retention(retention: TraceRetention) {
    if (retention !== 'keep') this.#catchUp();
    if (retention === 'hash') this.#hashReady();
    this.#retention = retention;
  }

  record(source: TraceEvent['source'], type: string, fields: Record<string, TraceValue> = {}): void {
    this.#record(source, type, fields, undefined, '');
  }

  /**
   * record() of `{ icount, stage, ...fields }`, without building that object: spreading every
   * event's fields into a new one was a large share of a boot's per-exit trace work (issue 11).
   * The envelope comes as arguments, not an object built per event, and `icount` is only read when
   * the event is kept, hashed or written (issue 10).
   */
  protected recordWithEnvelope(source: TraceEvent['source'], type: string, icount: () => bigint, stage: string, fields: Record<string, TraceValue>): void {
    this.#record(source, type, fields, icount, stage);
  }

  /** One event, with the envelope when `icount` is given. */
  #record(source: TraceEvent['source'], type: string, fields: Record<string, TraceValue>, icount: (() => bigint) | undefined, stage: string): void {
    const seq = this.#seq++;
    this.#count(type);
    const retention = this.#retention;
    if (retention === 'none' && !this.#sink) {
      this.#unhashed = true;
      this.observer?.event(seq, type, fields);
      return;
    }
    if (retention !== 'hash') {
      this.#keepEvent(eventObject(seq, source, type, fields, icount, stage), seq, type);
      return;
    }
    if (!this.#hasher.event(seq, source, type, fields, icount?.(), stage)) {
      // A field shadows a header key: hash exactly the object the file would hold.
      this.#hasher.value(eventObject(seq, source, type, fields, icount, stage));
    }
    this.observer?.event(seq, type, fields);
    if (this.#sink) this.#keepEvent(eventObject(seq, source, type, fields, icount, stage), seq, type);
  }

  /** Event objects are built only when something keeps or writes them (`seq` and `type` as recorded). */
  #keepEvent(event: TraceEvent, seq: number, type: string): void {
    const retention = this.#retention;
    if (retention === 'keep') this.events.push(event);
    else if (retention === 'none') this.#unhashed = true;
    if (retention !== 'hash') this.observer?.event(seq, type, event);
    this.#sink?.(traceLine(event));
  }

  #count(type: string): void {
    const counter = this.#counts.get(type);
    if (counter !== undefined) counter.n++;
    else this.#counts.set(type, { n: 1 });
  }

  /** Events recorded so far, by type. */
  get counts(): ReadonlyMap<string, number> {
    const counts = new Map<string, number>();
    for (const [type, counter] of this.#counts) if (counter.n > 0) counts.set(type, counter.n);
    return counts;
  }

  #checkHashed(): void {
    if (this.#unhashed) throw new Error('this trace recorded events without keeping or hashing them (retention none): it has no hash until a state is loaded');
  }

  /** Computes a pending hash position into the hasher. */
  #hashReady(): void {
    if (this.#pending === undefined) return;
    this.#hasher.hash.loadState(this.#pending.resolve());
    this.#pending = undefined;
  }

  /** Feeds the kept events not hashed yet to the hasher. */
  #catchUp(): void {
    const events = this.events;
    if (this.#hashed === events.length) return;
    this.#hashReady();
    for (let i = this.#hashed; i < events.length; i++) this.#hasher.value(events[i] as unknown as TraceValue);
    this.#hashed = events.length;
  }

  saveState(): TraceState {
    this.#checkHashed();
    const events = this.events;
    let hash: BufferedHashState | PendingHash;
    if (this.#retention === 'keep' && this.#hashed < events.length) {
      // Kept events are not hashed for a snapshot: the position after them is left to compute.
      this.#pending = new PendingHash(this.#pending ?? this.#hasher.hash.saveState(), events.slice(this.#hashed));
      this.#hashed = events.length;
      hash = this.#pending;
    } else {
      this.#catchUp();
      hash = this.#pending ?? this.#hasher.hash.saveState();
    }
    return { seq: this.#seq, kept: events.length, hash, counts: this.counts };
  }

  loadState(state: TraceState): void {
    this.#seq = state.seq;
    this.events.length = state.kept;
    this.#hashed = state.kept;
    this.#unhashed = false;
    if (state.hash instanceof PendingHash) {
      this.#pending = state.hash;
      if (this.#retention === 'hash') this.#hashReady();
    } else {
      this.#pending = undefined;
      this.#hasher.hash.loadState(state.hash);
    }
    for (const counter of this.#counts.values()) counter.n = 0;
    if (this.#countsOf !== state) {
      const counters: { n: number }[] = [];
      const values: number[] = [];
      for (const [type, n] of state.counts) {
        let counter = this.#counts.get(type);
        if (counter === undefined) this.#counts.set(type, (counter = { n: 0 }));
        counters.push(counter);
        values.push(n);
      }
      this.#countsOf = state;
      this.#loadedCounters = counters;
      this.#loadedCounts = values;
    }
    const counters = this.#loadedCounters, values = this.#loadedCounts;
    for (let i = 0; i < counters.length; i++) counters[i]!.n = values[i]!;
  }

  get length(): number {
    return this.#seq;
  }

  /** SHA-256 of the events so far in the binary encoding (the trace's identity for determinism checks). */
  sha256(): string {
    this.#checkHashed();
    this.#hashReady();
    this.#catchUp();
    return this.#hasher.digest();
  }

  ofType(type: string): TraceEvent[] {
    return this.events.filter((e) => e.type === type);
  }
}
