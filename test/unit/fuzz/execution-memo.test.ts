// The execution memo: a program whose book gives, at every consultation of a recorded run, what
// that run was given is that run again; one that gives anything else there is not.
import { describe, expect, it } from 'vitest';
import { DecisionBook } from '../../../src/fuzz/adversary.js';
import type { AttackProgram, CallPoint, Decision } from '../../../src/fuzz/attack-program.js';
import { EDGE_MAP_BYTES } from '../../../src/cpu/machine.js';
import { ExecutionMemo } from '../../../src/fuzz/execution-memo.js';
import type { Execution } from '../../../src/fuzz/executor.js';

/** A guest that exits `points.length` times, each exit consulting the book at its point (null: none), a fake run. */
function run(program: AttackProgram, points: readonly (CallPoint | null)[], memo: ExecutionMemo, instructions: bigint): Execution {
  const book = new DecisionBook(program);
  book.consultations = [];
  for (const point of points) {
    book.beginExit();
    if (point !== null) book.answerFor(point);
  }
  const edges = new Uint8Array(EDGE_MAP_BYTES);
  const edgeSlots = new Uint32Array(EDGE_MAP_BYTES + 1);
  for (const [slot, count] of [[7, 1], [300, 5], [Number(instructions % 1000n), 2]] as const) {
    if (edges[slot] === 0) edgeSlots[++edgeSlots[0]!] = slot;
    edges[slot] = count;
  }
  const execution: Execution = {
    judgement: { verdict: 'benign', outcome: { outcome: 'done', reason: '' }, findings: [] }, traceSha256: `hash-${instructions}`, traceEvents: 10,
    instructions, vmmExits: book.exits, decisionCoverage: book.coverage, callCounts: book.callCounts, gpas: [0x1000n], edges, edgeSlots, console: '',
  };
  memo.record(book.consultations, execution);
  return execution;
}

const POINTS: CallPoint[] = ['tdx.mapGpa', 'tdx.instructionIo', 'tdx.mapGpa'];
const program = (...decisions: Decision[]): AttackProgram => ({ platform: 'tdx', decisions });
const lie: Decision = { at: 'call', point: 'tdx.mapGpa', occurrence: 1, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n } };

describe('execution memo', () => {
  it('answers a program that changes nothing the run consulted with that run, edges and all', () => {
    const memo = new ExecutionMemo();
    const honest = run(program(), POINTS, memo, 100n);
    const lying = run(program(lie), POINTS, memo, 200n);
    // A third mapGpa call, a call of a point never reached, a host action past the last exit: never consulted.
    const unreached = program(
      { at: 'call', point: 'tdx.mapGpa', occurrence: 2, answer: { kind: 'stop' } },
      { at: 'call', point: 'tdx.reportFatalError', occurrence: 0, answer: { kind: 'stop' } },
      { at: 'exit', exitIndex: 3, action: { kind: 'inject', vector: 40 } },
    );
    const known = memo.find(unreached)!;
    expect(known).toBeDefined();
    const again = memo.execution(known, 0n);
    expect(again).toMatchObject({ instructions: honest.instructions, vmmExits: 3, traceSha256: 'hash-100', launchInstructions: 0n });
    expect([...again.edgeSlots!.slice(0, 4)]).toEqual([...honest.edgeSlots!.slice(0, 4)]);
    for (const slot of again.edgeSlots!.slice(1, 4)) expect(again.edges![slot]).toBe(honest.edges![slot]);
    // The same lie, given by a decision that repeats past the run's end, is the lying run.
    const repeated = memo.find(program({ ...lie, repeat: 50 }))!;
    const fromLie = memo.execution(repeated, 5n);
    expect(fromLie).toMatchObject({ instructions: lying.instructions, launchInstructions: 5n });
    // The previous known execution's edges are gone from the map returned with this one.
    expect(fromLie.edges![100]).toBe(0);
    expect(fromLie.edges![200]).toBe(2);
  });

  it('runs a program that gives anything else at a consultation', () => {
    const memo = new ExecutionMemo();
    run(program(), POINTS, memo, 100n);
    expect(memo.find(program({ ...lie, answer: { kind: 'map-gpa', convertBytes: 0n, status: 0n } }))).toBeUndefined();
    expect(memo.find(program({ at: 'exit', exitIndex: 2, action: { kind: 'inject', vector: 40 } }))).toBeUndefined();
    expect(memo.find(program({ at: 'call', point: 'tdx.instructionIo', occurrence: 0, answer: { kind: 'stop' } }))).toBeUndefined();
  });

  it('turns itself off when runs are not a function of their consultations', () => {
    const memo = new ExecutionMemo();
    run(program(), POINTS, memo, 100n);
    // The same answers, and the guest went elsewhere: nothing recorded can be trusted any more.
    run(program(), ['tdx.mapGpa', 'tdx.instructionHlt'], memo, 100n);
    expect(memo.conflicts).toBe(1);
    expect(memo.find(program())).toBeUndefined();
  });
});

describe('execution memo, what it must not answer', () => {
  it('answers no program with a run that was given something where the program decides nothing', () => {
    const memo = new ExecutionMemo();
    run(program(lie), POINTS, memo, 200n);
    // The honest program gives the honest answer at the second mapGpa call: not the lying run.
    expect(memo.find(program())).toBeUndefined();
    expect(memo.find(program({ at: 'exit', exitIndex: 0, action: { kind: 'inject', vector: 40 } }))).toBeUndefined();
    expect(memo.find(program(lie))).toBeDefined();
  });

  it('keeps the runs already branched below a point where a new run parts from them', () => {
    const memo = new ExecutionMemo();
    run(program(lie), POINTS, memo, 200n);
    run(program(), POINTS, memo, 100n);
    // Parts from both at the first instructionIo call, before the branch at the second mapGpa call.
    const ioLie: Decision = { at: 'call', point: 'tdx.instructionIo', occurrence: 0, answer: { kind: 'vmcall-return', effect: 'none', regs: { r10: 0n } } };
    run(program(ioLie), POINTS, memo, 300n);
    expect(memo.conflicts).toBe(0);
    expect(memo.execution(memo.find(program(lie))!, 0n).instructions).toBe(200n);
    expect(memo.execution(memo.find(program())!, 0n).instructions).toBe(100n);
    expect(memo.execution(memo.find(program(ioLie))!, 0n).instructions).toBe(300n);
  });

  // A run is a pure function of what it was given only if the same answers always lead to the same
  // consultations and the same end; any run that shows otherwise turns the memo off.
  it('turns itself off when a run goes on past the end of a recorded run given the same', () => {
    const memo = new ExecutionMemo();
    run(program(), ['tdx.mapGpa'], memo, 100n);
    run(program(), ['tdx.mapGpa', 'tdx.instructionIo'], memo, 100n);
    expect(memo.conflicts).toBe(1);
  });

  it('turns itself off when a run ends where recorded runs went on and parted', () => {
    const memo = new ExecutionMemo();
    run(program(lie), POINTS, memo, 200n);
    run(program(), POINTS, memo, 100n);
    // The same consultations as both up to where they part (the exit before the second mapGpa call), then the end.
    run(program(), ['tdx.mapGpa', 'tdx.instructionIo', null], memo, 100n);
    expect(memo.conflicts).toBe(1);
  });

  it('turns itself off when a run consults another decision point where recorded runs parted', () => {
    const memo = new ExecutionMemo();
    run(program(lie), POINTS, memo, 200n);
    run(program(), POINTS, memo, 100n);
    run(program(), ['tdx.mapGpa', 'tdx.instructionIo', 'tdx.instructionHlt'], memo, 100n);
    expect(memo.conflicts).toBe(1);
    expect(memo.find(program())).toBeUndefined();
  });
});
