// DecisionBook (src/fuzz/adversary.ts), the index of an attack program the hostile VMM answers
// from: which call of a decision point a decision covers, and the fuzzer's livelock guard.
import { describe, expect, it } from 'vitest';
import { DecisionBook, LIVELOCK_REQUESTS } from '../../../src/fuzz/adversary.js';

// attack-program.ts: a call decision covers `repeat` calls from `occurrence`, one when it has no repeat.
describe('which calls a decision covers', () => {
  it('a decision with no repeat answers its occurrence only; the calls after it are answered honestly', () => {
    const answer = { kind: 'stop' } as const;
    const book = new DecisionBook({ platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 1, answer }] });
    expect([book.answerFor('tdx.mapGpa'), book.answerFor('tdx.mapGpa'), book.answerFor('tdx.mapGpa')].map((a) => a.kind)).toEqual(['honest', 'stop', 'honest']);
    expect(book.callCounts.get('tdx.mapGpa')).toBe(3);
  });

  it('where two decisions cover the same call, the first in the program answers it', () => {
    const book = new DecisionBook({
      platform: 'tdx', decisions: [
        { at: 'call', point: 'tdx.mapGpa', occurrence: 1, repeat: 2, answer: { kind: 'resume' } },
        { at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 4, answer: { kind: 'stop' } },
      ],
    });
    expect([0, 1, 2, 3, 4].map(() => book.answerFor('tdx.mapGpa').kind)).toEqual(['stop', 'resume', 'resume', 'stop', 'honest']);
  });
});

// LIVELOCK_REQUESTS: the same page-state request that many times in a row, no other exit between,
// ends the execution; the count starts again at any other exit or any other request.
describe('the livelock guard', () => {
  const key = 'map-gpa 400000+1000';
  /** `n` exits that each make `request`; true if the guard fired at the last. */
  const exits = (book: DecisionBook, n: number, request = key) => {
    let fired = false;
    for (let i = 0; i < n; i++) { book.beginExit(); fired = book.noteRequest(request); }
    return fired;
  };

  it(`fires at the ${LIVELOCK_REQUESTS}th request in a row`, () => {
    const book = new DecisionBook({ platform: 'tdx', decisions: [] });
    expect(exits(book, LIVELOCK_REQUESTS - 1)).toBe(false);
    expect(exits(book, 1)).toBe(true);
  });

  it('starts counting again after an exit with no request, or a different request', () => {
    const book = new DecisionBook({ platform: 'tdx', decisions: [] });
    expect(exits(book, LIVELOCK_REQUESTS - 1)).toBe(false);
    book.beginExit();
    expect(exits(book, 1)).toBe(false);
    expect(exits(book, LIVELOCK_REQUESTS - 2)).toBe(false);
    expect(exits(book, 1, 'map-gpa 401000+1000')).toBe(false);
    expect(exits(book, LIVELOCK_REQUESTS - 1)).toBe(false);
    expect(exits(book, 1)).toBe(true);
  });
});
