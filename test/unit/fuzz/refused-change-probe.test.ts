// When the VMM answers a page-state request with a failure, the adversary records whether the
// hardware holds every page of it in the state asked for anyway (the oracle's `reached`). It asks
// the hardware once per SEPT leaf / RMP entry, not once per 4 KiB page: these check that the answer
// is still the page-by-page one.
import { describe, expect, it } from 'vitest';
import { DecisionBook } from '../../../src/fuzz/adversary.js';
import type { PageState } from '../../../src/platform/platform.js';

const MB2 = 0x200000n;

/** A hardware view: 2 MiB leaves at `large` (private), 4 KiB leaves elsewhere, private unless in `sharedPages`. */
function hardware(large: bigint[], sharedPages: bigint[]) {
  const asked: bigint[] = [];
  const probe = (gpa: bigint): PageState => {
    asked.push(gpa);
    const page = gpa & ~0xfffn;
    const leaf = large.find((base) => page >= base && page < base + MB2);
    const visibility = leaf === undefined && sharedPages.includes(page) ? 'shared' : 'private';
    return { gpa: page, visibility, accepted: visibility === 'private', pending: false, pageSize: leaf === undefined ? '4k' : '2m', raw: '' };
  };
  return { probe, asked };
}

function reached(view: ReturnType<typeof hardware>, gpa: bigint, bytes: bigint, to: 'private' | 'shared' = 'private') {
  const book = new DecisionBook({ platform: 'tdx', decisions: [] });
  book.probe = view.probe;
  const events: Record<string, unknown>[] = [];
  book.noteRefusedChanges({ record: (_source, _type, fields) => events.push(fields) }, [{ gpa, bytes, to }]);
  return events[0]!.reached;
}

describe('a refused change: does the hardware hold it in the state asked for anyway?', () => {
  it('asks once per 2 MiB leaf, and page by page where the leaves are 4 KiB', () => {
    const view = hardware([0x400000n, 0x600000n], []);
    expect(reached(view, 0x400000n, 2n * MB2)).toBe(true);
    expect(view.asked).toEqual([0x400000n, 0x600000n]);
    const small = hardware([], []);
    expect(reached(small, 0x400000n, 0x4000n)).toBe(true);
    expect(small.asked).toEqual([0x400000n, 0x401000n, 0x402000n, 0x403000n]);
  });

  it('finds one page in another state behind a 2 MiB leaf, as asking page by page would', () => {
    // A request from the middle of a 2 MiB leaf into 4 KiB leaves, one of them shared.
    expect(reached(hardware([0x400000n], [0x603000n]), 0x500000n, 0x104000n)).toBe(false);
    expect(reached(hardware([0x400000n], [0x604000n]), 0x500000n, 0x104000n)).toBe(true);
    // An unaligned request is asked about by the pages it touches.
    expect(reached(hardware([], [0x402000n]), 0x401800n, 0x1000n)).toBe(true);
    expect(reached(hardware([], [0x401000n]), 0x401800n, 0x1000n)).toBe(false);
  });
});

describe('a refused change larger than the sample', () => {
  it('asks about the first 4096 pages (16 MiB) of a request only: a page in another state beyond them goes unseen', () => {
    const MB16 = 0x1000000n;
    const beyond = hardware([], [MB16 + 0x5000n]);
    expect(reached(beyond, 0n, 2n * MB16)).toBe(true);
    expect(beyond.asked).toHaveLength(4096);
    expect(beyond.asked.at(-1)).toBe(MB16 - 0x1000n);
    // The last sampled page still counts.
    expect(reached(hardware([], [MB16 - 0x1000n]), 0n, 2n * MB16)).toBe(false);
  });
});

/** A book whose hardware view holds every page private (a refused change to shared is then not reached), and the events it records. */
function bookWithEvents() {
  const book = new DecisionBook({ platform: 'tdx', decisions: [] });
  book.probe = hardware([], []).probe;
  const events: { type: string; fields: Record<string, unknown> }[] = [];
  const trace = { record: (_source: 'vmm', type: string, fields: Record<string, unknown>) => events.push({ type, fields }) };
  return { book, events, trace };
}

// The oracle tells a guest that goes on after a real failure from one that stops by the first
// exit after the refusal that is not the guest's own output (DecisionBook.noteExitPoint): a
// guest prints its fatal reason before it stops, so output says neither.
describe('the exit after a refused change, as the oracle sees it', () => {
  it('is recorded once, at the first exit that is not output, when the hardware does not hold the change', () => {
    const { book, events, trace } = bookWithEvents();
    book.noteRefusedChanges(trace, [{ gpa: 0x400000n, bytes: 0x1000n, to: 'shared' }]);
    book.noteExitPoint(trace, 'tdx.instructionIo');
    book.noteExitPoint(trace, 'tdx.otherVmcall');
    book.noteExitPoint(trace, 'tdx.onSharedEptViolation', 0x400000n);
    book.noteExitPoint(trace, 'tdx.mapGpa');
    expect(events.map((e) => [e.type, e.fields])).toEqual([
      ['state-change-refused', { gpa: 0x400000n, bytes: 0x1000n, to: 'shared', reached: false }],
      ['exit-after-refusal', { point: 'tdx.onSharedEptViolation', gpa: 0x400000n }],
    ]);
  });

  it('is not recorded when the hardware holds the change anyway (nothing diverged)', () => {
    const { book, events, trace } = bookWithEvents();
    book.noteRefusedChanges(trace, [{ gpa: 0x400000n, bytes: 0x1000n, to: 'private' }]);
    book.noteExitPoint(trace, 'tdx.mapGpa');
    expect(events.map((e) => e.type)).toEqual(['state-change-refused']);
  });
});
