import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Trace, traceSha256OfEvents, traceSha256OfJsonLines, type TraceEvent, type TraceValue } from '../../src/shared/trace.js';

type Recorded = [source: 'hw' | 'vmm' | 'guest', type: string, fields: Record<string, TraceValue>];

const EVENTS: Recorded[] = [
  ['hw', 'tdcall', { rip: 0x1000n, rax: 6n, leaf: 'MEM_PAGE_ACCEPT', status: 0n, ok: true, none: null }],
  ['hw', 'seamcall', { leaf: 'TDH_MEM_PAGE_AUG', rcx: (1n << 70n) + 5n, status: 0xc0000b0b00000001n, neg: -3n }],
  ['vmm', 'psc', { entries: [{ gpa: 0x200000n, op: 'private' }, [1, 2.5, -0]], unknown: '0x1f', text: 'é ✓ 🙂' }],
  ['guest', 'stage', { stage: 'kernel', n: Number.NaN, skipped: undefined as unknown as TraceValue }],
  ['hw', 'odd', { type: 'shadowed', seq: 99 }],
];

function traceOf(events: Recorded[], options: { keep?: boolean } = {}): { trace: Trace; lines: string[] } {
  const lines: string[] = [];
  const trace = new Trace({ ...options, sink: (l) => lines.push(l) });
  for (const [source, type, fields] of events) trace.record(source, type, fields);
  return { trace, lines };
}

/** A boot's trace: every event carries the envelope (icount, stage) after its header keys. */
class EnvelopeTrace extends Trace {
  recordAt(icount: bigint, stage: string, type: string, fields: Record<string, TraceValue>): void {
    this.recordWithEnvelope('hw', type, () => icount, stage, fields);
  }
}

describe('Trace hash', () => {
  it('is what hashing the written JSON lines back gives, for every kind of value', () => {
    const { trace, lines } = traceOf(EVENTS);
    expect(lines).toHaveLength(EVENTS.length);
    expect(traceSha256OfJsonLines(lines.map((l) => `${l}\n`).join(''))).toBe(trace.sha256());
  });

  it('does not depend on keeping events, and changes with any field, its type or the order of events', () => {
    const base = traceOf(EVENTS).trace.sha256();
    expect(traceOf(EVENTS, { keep: false }).trace.sha256()).toBe(base);
    const changed = (i: number, fields: Record<string, TraceValue>): string =>
      traceOf(EVENTS.map((e, j) => (j === i ? [e[0], e[1], fields] : e))).trace.sha256();
    expect(changed(0, { ...EVENTS[0]![2], status: 1n })).not.toBe(base);
    expect(changed(0, { ...EVENTS[0]![2], status: 0 })).not.toBe(base);  // number, not bigint
    expect(changed(2, { ...EVENTS[2]![2], text: 'é ✓ 🙁' })).not.toBe(base);
    expect(traceOf([...EVENTS].reverse()).trace.sha256()).not.toBe(base);
    expect(traceOf(EVENTS.map(([s, t, f]) => [s === 'hw' ? 'vmm' : s, t, f])).trace.sha256()).not.toBe(base);
  });

  it('tells apart values that only the binary encoding could confuse', () => {
    const hashOf = (fields: Record<string, TraceValue>) => traceOf([['hw', 'x', fields]]).trace.sha256();
    // Characters that differ only above their low byte.
    expect(hashOf({ s: '\u0101' })).not.toBe(hashOf({ s: '\u0201' }));
    // A bigint past 64 bits is "0x…" in the file, not the bare digits of a string.
    expect(hashOf({ v: 1n << 64n })).not.toBe(hashOf({ v: '10000000000000000' }));
    expect(hashOf({ v: 1n << 64n })).toBe(hashOf({ v: '0x10000000000000000' }));
    // An array slot JSON cannot hold is null, as JSON.stringify writes it.
    expect(hashOf({ a: [undefined as unknown as TraceValue] })).toBe(hashOf({ a: [null] }));
    expect(hashOf({ a: [undefined as unknown as TraceValue] })).not.toBe(hashOf({ a: [] }));
  });

  it('hashes strings longer than its buffer as the file holds them', () => {
    // '✓' is three bytes of UTF-8: 30,000 of them fill more than the 64 KiB buffer, though twice
    // their count would fit (the room a string needs is up to three bytes a character).
    for (const long of ['x'.repeat(200_000), `${'é'.repeat(70_000)}!`, `${'✓'.repeat(30_000)}!`]) {
      const { trace, lines } = traceOf([['guest', 'console', { text: long }]]);
      expect(traceSha256OfJsonLines(`${lines[0]}\n`)).toBe(trace.sha256());
      expect(traceOf([['guest', 'console', { text: `${long.slice(0, -1)}?` }]]).trace.sha256()).not.toBe(trace.sha256());
    }
    // A string that fits the buffer, three bytes a character, after 10,000 bytes already in it:
    // the room it needs is its whole UTF-8, or its end is lost.
    const afterFill = (end: string) => traceOf([['guest', 'console', { fill: Array<TraceValue>(10_000).fill(true), text: `${'✓'.repeat(19_999)}${end}` }]]).trace.sha256();
    expect(afterFill('!')).not.toBe(afterFill('?'));
  });

  it('hashes a string longer than its buffer that starts in the buffer\'s last bytes', () => {
    // Such a string's tag and u32 length go into the 64 KiB buffer before its text is hashed on its
    // own: they need room there too. n one-byte values (true) before it put its start at each of
    // the buffer's last bytes, and just past them.
    for (let n = 65_440; n < 65_470; n++) {
      const { trace, lines } = traceOf([['guest', 'console', { fill: Array<TraceValue>(n).fill(true), text: 'y'.repeat(30_000) }]], { keep: false });
      expect(traceSha256OfJsonLines(`${lines[0]}\n`)).toBe(trace.sha256());
    }
  });

  it('leaves out of a file\'s hash only its header line: the first, of type minivisor-trace and without seq', () => {
    const { trace, lines } = traceOf(EVENTS);
    const header = JSON.stringify({ type: 'minivisor-trace', schema: 3 });
    expect(traceSha256OfJsonLines([header, ...lines].join('\n'))).toBe(trace.sha256());
    // The same line further on, a first line of another type, and an event of that type are events.
    const event = (line: string) => JSON.parse(line) as TraceEvent;
    expect(traceSha256OfJsonLines([lines[0]!, header].join('\n'))).toBe(traceSha256OfEvents([event(lines[0]!), event(header)]));
    const other = JSON.stringify({ type: 'other', schema: 3 });
    expect(traceSha256OfJsonLines([other, lines[0]!].join('\n'))).toBe(traceSha256OfEvents([event(other), event(lines[0]!)]));
    const named = traceOf([['hw', 'minivisor-trace', {}], EVENTS[0]!]);
    expect(traceSha256OfJsonLines(named.lines.join('\n'))).toBe(named.trace.sha256());
  });

  it('hashes the boot envelope (icount, stage) as the file holds it, when only hashing too', () => {
    const lines: string[] = [];
    const hashed = new EnvelopeTrace({ keep: false, sink: (l) => lines.push(l) });
    const plain = new EnvelopeTrace({ keep: false });
    for (const t of [hashed, plain]) {
      t.recordAt(100n, 'firmware', 'tdcall', { leaf: 'MEM_PAGE_ACCEPT', status: 0n });
      t.recordAt(2n ** 63n + 1n, 'kernel', 'hlt', {});
    }
    expect(lines[1]).toContain('"stage":"kernel"');
    expect(plain.sha256()).toBe(hashed.sha256());
    expect(traceSha256OfJsonLines(lines.map((l) => `${l}\n`).join(''))).toBe(plain.sha256());
  });

  it('hashes an event with a field named like any one of its header keys as the file holds it, when only hashing too', () => {
    // The file holds { seq, source, type, ...fields } (with a boot's envelope, icount and stage after
    // type): a field of the same name replaces that key's value where the key stands. Each key on its
    // own, so that no other field gives the event away; icount and stage are header keys only in an
    // envelope, and plain fields elsewhere.
    for (const key of ['seq', 'source', 'type', 'icount', 'stage']) {
      const lines: string[] = [];
      const trace = new Trace({ keep: false, sink: (l) => lines.push(l) });
      trace.record('hw', 'tdcall', { rip: 1n, [key]: 'shadow' });
      trace.record('hw', 'tdcall', { rip: 2n });
      expect(traceSha256OfJsonLines(lines.join('\n'))).toBe(trace.sha256());
      const envelopeLines: string[] = [];
      const envelope = new EnvelopeTrace({ keep: false, sink: (l) => envelopeLines.push(l) });
      envelope.recordAt(7n, 'kernel', 'tdcall', { rip: 1n, [key]: 'shadow' });
      envelope.recordAt(8n, 'kernel', 'tdcall', { rip: 2n });
      expect(envelopeLines[0]).toContain('"shadow"');
      expect(traceSha256OfJsonLines(envelopeLines.join('\n'))).toBe(envelope.sha256());
    }
  });

  it('keeps the encoding stable: a stored finding\'s trace hash must still replay', () => {
    // Computed apart from this code, by a separate encoder written from the format's description
    // (per event an object: tag 8, then per key tag 9 + u32 length + UTF-8, values as tag 3 +
    // float64 / tag 5 + u64 (little endian) / tag 6 + hex past 64 bits / tag 4 + string
    // ("0x-…" for a negative bigint) / 0, 1, 2 for null, false, true / tag 7 … 0xff for arrays;
    // 0xff ends an object). Changing any of it changes every trace hash findings and goldens carry.
    const { trace } = traceOf([
      ['hw', 'tdcall', { rcx: 0x8000000000000000n, status: 0xc0000b0b00000001n, n: 1.5, ok: false, none: null }],
      ['vmm', 'psc', { list: [1, 'two', { three: 3n }], big: 1n << 70n, neg: -1n, text: 'µ' }],
    ]);
    expect(trace.sha256()).toBe('03ae729a1dda9675f0b67fc0672f23b38770b404c55a18b90b94cf2ee03eb778');
  });

  it('hashes events of one type whose keys change from event to event as the file holds them', () => {
    // The hasher remembers each type's keys by position: a changed, missing, extra or reordered
    // key (one over 64 characters too), and the same type from another source, must still hash as written.
    const long = `k${'y'.repeat(70)}`;
    const events: Recorded[] = [
      ['hw', 'pvalidate', { rip: 1n, gva: 2n, rc: 0 }],
      ['hw', 'pvalidate', { rip: 1n, gva: 2n, rc: 0 }],
      ['hw', 'pvalidate', { rip: 1n, gpa: 2n, rc: 0, npf: 'size-mismatch' }],
      ['hw', 'pvalidate', { gva: 2n, rip: 1n }],
      ['hw', 'pvalidate', { rip: 1n, [long]: 3n, skipped: undefined as unknown as TraceValue, gva: 4n }],
      ['vmm', 'pvalidate', { rip: 1n, gva: 2n, rc: 0 }],
      ['hw', 'pvalidate', {}],
      ['hw', '0x12', { rip: 1n }],
      // String values it remembers by position too: the same one again, another, a "0x…" one, a long one.
      ...(['4k', '4k', '4k', '2m', '0x1f', '0x1f', 'x'.repeat(80), 'x'.repeat(80), '2m', '2m'] as const).map((size): Recorded => ['hw', 'tdcall', { rip: 1n, size, leaf: 'ACCEPT' }]),
      ['hw', 'tdcall', { rip: 1n, size: 7n, leaf: 'ACCEPT' }],
      ['hw', 'tdcall', { rip: 1n, leaf: '2m', size: '2m' }],
      // A bigint past 64 bits, then the string of its hex digits, remembered: the string hashes as a string.
      ['hw', 'tdcall', { rip: 1n, size: 1n << 64n, leaf: 'ACCEPT' }],
      ...[1, 2, 3].map((): Recorded => ['hw', 'tdcall', { rip: 1n, size: '10000000000000000', leaf: 'ACCEPT' }]),
    ];
    const { trace, lines } = traceOf(events, { keep: false });
    expect(traceSha256OfJsonLines(lines.map((l) => `${l}\n`).join(''))).toBe(trace.sha256());
  });

  it('is SHA-256 of the encoding written out plainly, byte for byte, also where events cross the hasher\'s buffer', () => {
    // A reference encoder of the format the golden test above describes, without the caches and
    // the 64 KiB buffer: a byte lost or doubled at a buffer boundary changes the hash. 100,000
    // events of varied length put every kind of write (one-byte tags too) at the boundary.
    const parts: Buffer[] = [];
    const tagged = (tag: number, s: string) => { const b = Buffer.from(s, 'utf8'); const h = Buffer.alloc(5); h[0] = tag; h.writeUInt32LE(b.length, 1); parts.push(h, b); };
    const encode = (v: TraceValue | undefined): void => {
      if (typeof v === 'bigint') {
        if (v >= 0n && v < 1n << 64n) { const b = Buffer.alloc(9); b[0] = 5; b.writeBigUInt64LE(v, 1); parts.push(b); } else if (v >= 0n) tagged(6, v.toString(16)); else tagged(4, `0x${v.toString(16)}`);
      } else if (typeof v === 'number') {
        if (!Number.isFinite(v)) { parts.push(Buffer.from([0])); return; }
        const b = Buffer.alloc(9); b[0] = 3; b.writeDoubleLE(v === 0 ? 0 : v, 1); parts.push(b);
      } else if (typeof v === 'string') {
        if (/^0x[0-9a-f]+$/.test(v)) encode(BigInt(v)); else tagged(4, v);
      } else if (typeof v === 'boolean') parts.push(Buffer.from([v ? 2 : 1]));
      else if (v === null || v === undefined) parts.push(Buffer.from([0]));
      else if (Array.isArray(v)) { parts.push(Buffer.from([7])); v.forEach(encode); parts.push(Buffer.from([0xff])); }
      else { parts.push(Buffer.from([8])); for (const [k, x] of Object.entries(v)) if (x !== undefined) { tagged(9, k); encode(x); } parts.push(Buffer.from([0xff])); }
    };
    const events: Recorded[] = [];
    for (let i = 0; i < 100_000; i++) {
      events.push(['hw', i % 3 === 0 ? 'tdcall' : 'pvalidate', { rip: BigInt(i), pad: 'x'.repeat(i % 13), flags: [i % 2 === 0, null, false], n: i % 5 }]);
    }
    // Strings longer than the buffer, negative bigints and bigints past 64 bits (2^64, the first, too) take other paths.
    events.push(['guest', 'console', { text: 'y'.repeat(70_000) }], ['vmm', 'odd', { neg: -0x1234n, big: (1n << 80n) + 17n, edge: 1n << 64n, text: 'é'.repeat(30_000) }]);
    const { trace } = traceOf(events, { keep: false });
    events.forEach(([source, type, fields], seq) => encode({ seq, source, type, ...fields }));
    expect(trace.sha256()).toBe(createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
  });

  it('hashes a long trace the same whether it is read back or kept', () => {
    const many: Recorded[] = [];
    for (let i = 0; i < 20_000; i++) many.push(['hw', 'tdcall', { rip: BigInt(i) * 7n, leaf: 'MEM_PAGE_ACCEPT', blob: 'x'.repeat(i % 97) }]);
    const { trace, lines } = traceOf(many, { keep: false });
    expect(traceSha256OfJsonLines(lines.join('\n'))).toBe(trace.sha256());
    expect(trace.length).toBe(20_000);
    expect(trace.events).toEqual([]);
  });

  it('hashes kept events only when asked, giving what hashing them as recorded gives, across snapshots and restores', () => {
    const kept = new Trace();
    const eager = new Trace({ keep: false });
    const both = (i: number) => { for (const t of [kept, eager]) t.record(...EVENTS[i % EVENTS.length]!); };
    for (let i = 0; i < 3; i++) both(i);
    const keptStart = kept.saveState();
    const eagerStart = eager.saveState();
    for (let i = 3; i < 9; i++) both(i);
    const laterHash = eager.sha256();
    expect(kept.sha256()).toBe(laterHash);
    // Restore and record something else: the hash follows the restored trace.
    kept.loadState(keptStart);
    eager.loadState(eagerStart);
    expect(kept.sha256()).toBe(eager.sha256());
    both(4);
    expect(kept.sha256()).toBe(eager.sha256());
    expect(kept.sha256()).not.toBe(laterHash);
    expect(kept.length).toBe(4);
  });

  it('leaves the hash of a kept trace\'s snapshots to be computed when a restore needs it, snapshots of snapshots too', () => {
    const kept = new Trace();
    const eager = new Trace({ keep: false });
    const both = (i: number) => { for (const t of [kept, eager]) t.record(...EVENTS[i % EVENTS.length]!); };
    for (let i = 0; i < 3; i++) both(i);
    const [keptA, eagerA] = [kept.saveState(), eager.saveState()];
    for (let i = 3; i < 7; i++) both(i);
    const [keptB, eagerB] = [kept.saveState(), eager.saveState()];
    // Runs that neither keep nor hash (a fuzz execution) need no hash: none is computed for them.
    kept.loadState(keptA);
    kept.retention = 'none';
    kept.record(...EVENTS[1]!);
    kept.loadState(keptB);
    kept.retention = 'keep';
    eager.loadState(eagerB);
    expect(kept.sha256()).toBe(eager.sha256());
    // A hashing run from the first snapshot, and a kept one from it snapshotted again.
    kept.loadState(keptA);
    kept.retention = 'hash';
    eager.loadState(eagerA);
    both(5);
    expect(kept.sha256()).toBe(eager.sha256());
    kept.retention = 'keep';
    kept.loadState(keptA);
    eager.loadState(eagerA);
    both(2);
    const keptC = kept.saveState();
    both(3);
    kept.loadState(keptC);
    kept.retention = 'hash';
    both(4);
    eager.loadState(eagerA);
    for (const i of [2, 4]) eager.record(...EVENTS[i]!);
    expect(kept.sha256()).toBe(eager.sha256());
  });

  it('gives the hash of the events recorded, in order, whatever the order of retention changes, restores and hash requests', () => {
    const kept = new Trace();
    const eager = new Trace({ keep: false });
    const both = (i: number) => { for (const t of [kept, eager]) t.record(...EVENTS[i % EVENTS.length]!); };
    // Asked twice, the same hash.
    for (let i = 0; i < 3; i++) both(i);
    expect(kept.sha256()).toBe(eager.sha256());
    expect(kept.sha256()).toBe(eager.sha256());
    // Kept events after a snapshot (whose hash is left to compute), then hashing from there on:
    // the snapshot's position, then those events, then the new ones.
    both(3);
    const keptA = kept.saveState();
    const eagerA = eager.saveState();
    both(4);
    both(5);
    kept.retention = 'hash';
    both(6);
    expect(kept.sha256()).toBe(eager.sha256());
    // Hashing first, then a restore of a snapshot whose hash is left to compute.
    kept.retention = 'keep';
    kept.loadState(keptA);
    kept.record(...EVENTS[0]!);
    const keptB = kept.saveState();
    kept.retention = 'hash';
    kept.loadState(keptB);
    kept.record(...EVENTS[1]!);
    eager.loadState(eagerA);
    for (const i of [0, 1]) eager.record(...EVENTS[i]!);
    expect(kept.sha256()).toBe(eager.sha256());
    // A snapshot taken while hashing, restored after one whose hash is left to compute.
    const keptC = kept.saveState();
    const eagerC = eager.saveState();
    kept.retention = 'keep';
    kept.loadState(keptB);
    kept.loadState(keptC);
    eager.loadState(eagerC);
    expect(kept.sha256()).toBe(eager.sha256());
  });

  it('shows its observer every event when it only hashes, and has no hash after events recorded with retention none and written to a sink', () => {
    const seen: [number, string][] = [];
    const hashing = new Trace({ keep: false });
    hashing.observer = { event: (seq, type) => seen.push([seq, type]) };
    for (const e of EVENTS) hashing.record(...e);
    expect(seen).toEqual(EVENTS.map(([, type], seq) => [seq, type]));
    // Once each when the lines go to a sink too (boot --trace).
    const seenWritten: [number, string][] = [];
    const hashingWritten = new Trace({ keep: false, sink: () => {} });
    hashingWritten.observer = { event: (seq, type) => seenWritten.push([seq, type]) };
    for (const e of EVENTS) hashingWritten.record(...e);
    expect(seenWritten).toEqual(seen);
    // A sink still gets the lines, but the hash no longer covers the trace (the retention setter's contract).
    const lines: string[] = [];
    const written = new Trace({ sink: (l) => lines.push(l) });
    written.record(...EVENTS[0]!);
    written.retention = 'none';
    written.record(...EVENTS[1]!);
    expect(lines).toHaveLength(2);
    expect(() => written.sha256()).toThrow(/retention none/);
    expect(() => written.saveState()).toThrow(/retention none/);
  });

  it('with retention none, shows its observer what a kept trace holds, and has no hash until a state is loaded', () => {
    const seen = (trace: Trace) => {
      const events: { seq: number; type: string; fields: Readonly<Record<string, TraceValue>> }[] = [];
      trace.observer = { event: (seq, type, fields) => events.push({ seq, type, fields: { ...fields } }) };
      return events;
    };
    const kept = new Trace();
    const streamed = new Trace();
    for (let i = 0; i < 2; i++) for (const t of [kept, streamed]) t.record(...EVENTS[i]!);
    const start = streamed.saveState();
    const keptSeen = seen(kept);
    const streamedSeen = seen(streamed);
    streamed.retention = 'none';
    for (let i = 2; i < EVENTS.length; i++) for (const t of [kept, streamed]) t.record(...EVENTS[i]!);
    expect(streamed.events).toHaveLength(2);
    expect(streamed.length).toBe(EVENTS.length);
    expect(streamedSeen.map((e) => [e.seq, e.type])).toEqual(keptSeen.map((e) => [e.seq, e.type]));
    // Header and fields together are the kept event, the shadowed one (type 'odd' with a `type` field) too.
    streamedSeen.forEach((e, i) => {
      const event = kept.events[i + 2]!;
      expect({ seq: e.seq, source: event.source, type: e.type, ...e.fields } as TraceEvent).toEqual(event);
    });
    // The observer is told the recorded seq and type, whatever the fields say.
    expect(streamedSeen.at(-1)).toMatchObject({ seq: EVENTS.length - 1, type: 'odd', fields: { type: 'shadowed', seq: 99 } });
    expect(() => streamed.sha256()).toThrow(/retention none/);
    expect(() => streamed.saveState()).toThrow(/retention none/);
    // Loaded back and recorded again while hashing: the kept trace's hash.
    streamed.loadState(start);
    streamed.retention = 'hash';
    for (let i = 2; i < EVENTS.length; i++) streamed.record(...EVENTS[i]!);
    expect(streamed.sha256()).toBe(kept.sha256());
    expect(streamed.counts).toEqual(kept.counts);
  });

  it('counts each type recorded, one recorded once too, and after a load only what the loaded state had recorded', () => {
    const t = new Trace({ keep: false });
    for (const i of [0, 0, 1]) t.record(...EVENTS[i]!);
    expect(t.counts).toEqual(new Map([['tdcall', 2], ['seamcall', 1]]));
    const first = t.saveState();
    t.record(...EVENTS[2]!);
    t.record(...EVENTS[0]!);
    expect(t.counts).toEqual(new Map([['tdcall', 3], ['seamcall', 1], ['psc', 1]]));
    t.loadState(first);
    expect(t.counts).toEqual(new Map([['tdcall', 2], ['seamcall', 1]]));
  });

  it('lists the kept events of one type in order, and hashes a kept trace\'s events as its sha256 does', () => {
    const { trace } = traceOf([...EVENTS, EVENTS[0]!]);
    expect(trace.ofType('tdcall').map((e) => e.seq)).toEqual([0, EVENTS.length]);
    expect(trace.ofType('seamcall')).toEqual([trace.events[1]]);
    expect(trace.ofType('tdcal')).toEqual([]);
    expect(traceSha256OfEvents(trace.events)).toBe(trace.sha256());
    expect(traceSha256OfEvents(trace.events.slice(1))).not.toBe(trace.sha256());
  });

  it('counts events by type across loads of the same state, of another one, and back', () => {
    const t = new Trace({ keep: false });
    t.record(...EVENTS[0]!);
    t.record(...EVENTS[0]!);
    const first = t.saveState();
    const countsThen = t.counts;
    t.record(...EVENTS[1]!);
    t.loadState(first);
    expect(t.counts).toEqual(countsThen);
    for (const e of EVENTS) t.record(...e);
    const second = t.saveState();
    const countsLater = t.counts;
    t.loadState(first);
    t.loadState(first);
    expect(t.counts).toEqual(countsThen);
    t.loadState(second);
    expect(t.counts).toEqual(countsLater);
    t.record(...EVENTS[2]!);
    t.loadState(first);
    expect(t.counts).toEqual(countsThen);
  });
});
