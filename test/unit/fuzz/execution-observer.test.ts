// What an execution's events go through (src/fuzz/executor.ts ExecutionObserver, observeEvents):
// the GPAs the mutator aims host actions at (pages the guest accepted, validated, faulted on or
// released, and the code page it exited from), and the stage handovers, each given to the oracle
// right after its own `stage` event. A stand-in oracle records what it is given.
import { describe, expect, it } from 'vitest';
import type { TraceEvent, TraceValue } from '../../../src/shared/trace.js';
import { ExecutionObserver, observeEvents } from '../../../src/fuzz/executor.js';
import type { AcceptanceOracle } from '../../../src/fuzz/oracle.js';
import type { StageHandover } from '../../../src/fuzz/stage-handover.js';

function observer(): { observer: ExecutionObserver; seen: string[] } {
  const seen: string[] = [];
  const oracle = {
    observeFields: (seq: number, type: string) => seen.push(`${seq} ${type}`),
    handedOver: (h: StageHandover) => seen.push(`handover ${h.seq}`),
  } as unknown as AcceptanceOracle;
  return { observer: new ExecutionObserver(oracle), seen };
}

const event = (seq: number, type: string, fields: Record<string, TraceValue> = {}): TraceEvent => ({ seq, source: 'hw', type, ...fields }) as TraceEvent;
const handover = (seq: number): StageHandover => ({ stage: 'kernel', seq, heldButRecordedUnaccepted: [{ start: 0n, end: 0x1000n }] });

describe('the GPAs an execution names', () => {
  it('are the pages accepted (TDG.MEM.PAGE.ACCEPT\'s RCX without its level), validated, faulted on, released or exited at, and the code page of an exit', () => {
    const { observer: o } = observer();
    const events = [
      event(1, 'tdcall', { leaf: 'MEM_PAGE_ACCEPT', rcx: 0x400001n }), // GPA 0x400000, level 1 (TDX module ABI: RCX[2:0] is the level)
      event(2, 'pvalidate', { gpa: 0x501234n }),
      event(3, 'npf', { gpa: 0x602000n }),
      event(4, 'guest-release', { gpa: 0x703000n }),
      event(5, 'td-exit', { gpa: 0x804000n, rip: 0x100123n }),
      event(6, 'vmgexit', { rip: 0x200456n }),
      event(7, 'tdcall', { leaf: 'VP_VMCALL', rcx: 0x900000n }), // not an accept
      event(8, 'seamcall', { gpa: 0xa00000n }), // the VMM's own work, not the guest's
      event(9, 'tdcall', { leaf: 'MEM_PAGE_ACCEPT', rcx: (1n << 63n) | 0xb00000n }), // RCX[63:52] reserved: no part of the GPA
    ];
    for (const e of events) o.event(e.seq, e.type, e);
    expect([...o.gpas]).toEqual([0x400000n, 0x501000n, 0x602000n, 0x703000n, 0x804000n, 0x100000n, 0x200000n, 0xb00000n]);
  });

  it('are 64 at most', () => {
    const { observer: o } = observer();
    for (let i = 0; i < 100; i++) o.event(i, 'npf', { gpa: BigInt(i) << 12n });
    expect(o.gpas.size).toBe(64);
    o.event(100, 'vmgexit', { rip: 0x7000000n });
    expect(o.gpas.size).toBe(64);
  });
});

describe('stage handovers among kept events', () => {
  it('each goes to the oracle right after its own stage event; one whose event is not among them goes nowhere', () => {
    const { observer: o, seen } = observer();
    observeEvents(o, [event(1, 'a'), event(3, 'stage'), event(4, 'b'), event(6, 'stage'), event(7, 'c')], [handover(2), handover(3), handover(5), handover(6)]);
    expect(seen).toEqual(['1 a', '3 stage', 'handover 3', '4 b', '6 stage', 'handover 6', '7 c']);
  });
});
