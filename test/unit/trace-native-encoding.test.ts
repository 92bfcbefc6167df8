// The addon's encoder of trace events (native/src/trace_encoding.cc, installed by
// src/native/binding.ts) feeds the trace hash the bytes the TypeScript encoder feeds it: a hash
// that moved would no longer match the trace files, findings and goldens recorded before.
import { afterEach, describe, expect, it } from 'vitest';
import { addon } from '../../src/native/binding.js';
import { Trace, provideEventEncoder, type EventEncoder, type TraceValue } from '../../src/shared/trace.js';

type Recorded = [source: 'hw' | 'vmm' | 'guest', type: string, fields: Record<string, TraceValue>, envelope?: [icount: bigint, stage: string]];

class EnvelopeTrace extends Trace {
  add([source, type, fields, envelope]: Recorded): void {
    if (envelope) this.recordWithEnvelope(source, type, () => envelope[0], envelope[1], fields);
    else this.record(source, type, fields);
  }
}

const odd = (v: unknown) => v as TraceValue;
let nested: TraceValue = 1n;
for (let i = 0; i < 100; i++) nested = [nested];  // deeper than the native encoder goes

const EVENTS: Recorded[] = [
  ['hw', 'tdcall', { rip: 0x1000n, rax: 6n, leaf: 'MEM_PAGE_ACCEPT', status: 0n, ok: true, no: false, none: null }, [5n, 'firmware']],
  ['hw', 'tdcall', { rip: 0x1004n, rax: 6n, leaf: 'MEM_PAGE_ACCEPT', status: 0n, ok: true, no: false, none: null }, [9n, 'firmware']],
  ['hw', 'seamcall', { big: (1n << 70n) + 5n, max: (1n << 64n) - 1n, past: 1n << 64n, neg: -3n, negBig: -(1n << 80n), zero: 0n }],
  ['vmm', 'psc', { entries: [{ gpa: 0x200000n, op: 'private' }, [1, 2.5, -0, Number.NaN, Infinity, -1e300], []], nested: { a: { b: {} } } }],
  ['vmm', 'hex', { a: '0x', b: '0x0', c: '0x00ff', d: '0xFF', e: '0x1g', f: `0x${'0'.repeat(20)}1${'f'.repeat(20)}`, g: '0x0000', h: '0', i: 'x0x1' }],
  ['guest', 'text', { t: 'é ✓ 🙂', lone: '\ud800x', empty: '', long: 'y'.repeat(300) }],
  ['guest', 'skip', { before: 1, skipped: odd(undefined), holes: odd([undefined, , 3]), fn: odd([() => 1, Symbol('s')]) }],
  ['hw', 'order', { b: 1, 2: 'two', a: 3, 1: 'one', [`k${'z'.repeat(70)}`]: 4n }],
  ['hw', 'typed', { bytes: odd(Uint8Array.of(1, 2, 3)), date: odd(new Date(0)), map: odd(new Map([[1, 2]])) }],
  ['hw', '0x12', { rip: 1n }, [1n, 'kernel']],
  ['hw', 'stage-hex', { rip: 1n }, [1n, '0xab']],
  ['hw', 'shadows', { rip: 1n, type: 'shadowed', seq: 99 }],
  ['hw', 'shadows-envelope', { rip: 1n, stage: 'mine' }, [3n, 'kernel']],
  ['hw', 'plain-icount', { icount: 5n, stage: 'a field here' }],
  ['hw', 'deep', { nested }],
  ['guest', 'console', { text: 'x'.repeat(200_000) }],
  ['hw', 'after', { rip: 2n }, [2n ** 63n + 1n, 'kernel']],
];

/** The trace hash of `events` with `encoder` installed (test/unit/trace.test.ts checks the TypeScript one's against the file). */
function hashOf(events: Recorded[], encoder: EventEncoder | undefined): string {
  provideEventEncoder(encoder);
  const trace = new EnvelopeTrace({ keep: false });
  for (const e of events) trace.add(e);
  return trace.sha256();
}

describe('the native trace event encoder', () => {
  const native = addon().encodeTraceEvent;
  afterEach(() => provideEventEncoder(native));

  it('gives the TypeScript encoder\'s hash for every kind of value, key order and shadowed header key', () => {
    expect(native).toBeDefined();
    let calls = 0;
    const counted: EventEncoder = (...args) => {
      calls++;
      return native!(...args);
    };
    for (let i = 0; i < EVENTS.length; i++) {
      const events = EVENTS.slice(i).concat(EVENTS.slice(0, i));  // each event first once: at the buffer's start
      expect(hashOf(events, counted)).toBe(hashOf(events, undefined));
    }
    expect(calls).toBeGreaterThanOrEqual(EVENTS.length ** 2);
  });

  it('gives the TypeScript encoder\'s hash when events fill its buffer and go on in the next', () => {
    // ~70 bytes an event: thousands of them cross the 64 KiB buffer's end at every offset there.
    const events: Recorded[] = [];
    for (let i = 0; i < 3000; i++) events.push(['hw', 'tdcall', { rip: BigInt(i), leaf: i % 3 ? 'ACCEPT' : 'x'.repeat(i % 13), n: i }, [BigInt(i * 7), 'kernel']]);
    expect(hashOf(events, native)).toBe(hashOf(events, undefined));
  });

  it('leaves the TypeScript encoder the events past its share of a process', () => {
    let calls = 0;
    const counted: EventEncoder = (...args) => {
      calls++;
      return native!(...args);
    };
    provideEventEncoder(counted, 2);
    const trace = new Trace({ keep: false });
    for (let i = 0; i < 5; i++) trace.record('hw', 'tdcall', { rip: BigInt(i) });
    expect(calls).toBe(2);
    provideEventEncoder(undefined);
    const typescript = new Trace({ keep: false });
    for (let i = 0; i < 5; i++) typescript.record('hw', 'tdcall', { rip: BigInt(i) });
    expect(trace.sha256()).toBe(typescript.sha256());
  });

  it('throws what a field\'s getter throws, as the TypeScript encoder does', () => {
    const fields = Object.defineProperty({ rip: 1n }, 'bad', { enumerable: true, get: () => { throw new Error('getter'); } });
    for (const encoder of [native, undefined]) {
      provideEventEncoder(encoder);
      expect(() => new Trace({ keep: false }).record('hw', 'x', fields as Record<string, TraceValue>)).toThrow('getter');
    }
  });
});
