// The shrinker on plain predicates, where the right answer is known: ddmin (Zeller & Hildebrandt,
// TSE 2002) must return a 1-minimal subsequence for a monotone predicate, in the original order,
// within its budget; shrinkProgram must also drop the launch actions and the memory description a
// finding does not need. (The campaign test shrinks a real finding through whole VM executions.)
import { describe, expect, it } from 'vitest';
import type { AttackProgram, Decision, LaunchAction } from '../../../src/fuzz/attack-program.js';
import { ddmin, shrinkProgram } from '../../../src/fuzz/shrink.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const containsAll = (needed: number[]) => (candidate: number[]) => needed.every((x) => candidate.includes(x));

describe('ddmin', () => {
  it.each([
    [[], 40],
    [[17], 40],
    [[0, 39], 40],
    [[3, 4, 5], 40],
    [[1, 8, 22, 31, 38], 40],
    [[6], 7],
  ])('keeps exactly the items %j of %i that the failure needs, in order', async (needed, n) => {
    const { items } = await ddmin(range(n), containsAll(needed), 10_000);
    expect(items).toEqual(needed);
  });

  it('returns a 1-minimal list for a predicate that needs a count, not particular items', async () => {
    // Reproduces with any 5 items: every single removal from the result must break it.
    const reproduces = (c: number[]) => c.length >= 5;
    const { items } = await ddmin(range(64), reproduces, 10_000);
    expect(items).toHaveLength(5);
    for (let i = 0; i < items.length; i++) expect(reproduces([...items.slice(0, i), ...items.slice(i + 1)])).toBe(false);
  });

  // ddmin's granularity rules (Zeller & Hildebrandt, TSE 2002, Fig. 4, complements only): after a
  // reduction to a complement n becomes max(n - 1, 2); when no complement reproduces, n becomes
  // min(2n, |c|); at n = |c| with nothing removable it stops. Worked by hand for 1..8 needing {1, 7}.
  it('tries the complements in the order the published granularity rules give', async () => {
    const tried: number[][] = [];
    const { items, executions } = await ddmin([1, 2, 3, 4, 5, 6, 7, 8], (c) => { tried.push(c); return c.includes(1) && c.includes(7); }, 100);
    expect(items).toEqual([1, 7]);
    expect(tried).toEqual([
      [5, 6, 7, 8], [1, 2, 3, 4],                            // n = 2: neither half
      [3, 4, 5, 6, 7, 8], [1, 2, 5, 6, 7, 8],                // n = 4: without {3, 4}, then n = 3
      [5, 6, 7, 8], [1, 2, 7, 8],                            // n = 3: without {5, 6}, then n = 2
      [7, 8], [1, 2],                                        // n = 2: neither, then n = 4 = |c|
      [2, 7, 8], [1, 7, 8],                                  // n = 4: without 2, then n = 3
      [7, 8], [1, 8], [1, 7],                                // n = 3: without 8, then n = 2
      [7], [1],                                              // n = 2 = |c|: 1-minimal, stop
    ]);
    expect(executions).toBe(15);
  });

  it('counts every check it makes and stops at its budget', async () => {
    let calls = 0;
    const reproduces = (c: number[]) => { calls++; return containsAll([2, 50, 97])(c); };
    const bounded = await ddmin(range(100), reproduces, 7);
    expect(bounded.executions).toBe(7);
    expect(calls).toBe(7);
    // What it kept still reproduces: only reductions that reproduced were taken.
    expect(reproduces(bounded.items)).toBe(true);
    calls = 0;
    const full = await ddmin(range(100), reproduces, 10_000);
    expect(full.executions).toBe(calls);
    expect(full.items).toEqual([2, 50, 97]);
    // A handful of needed items in 100 takes far fewer checks than trying every subset of removals.
    expect(full.executions).toBeLessThan(100);
  });

  it('finds one needed item among n in about two binary searches: at most 2·log2(n) + 2 checks', async () => {
    // ddmin's logarithmic case (Zeller & Hildebrandt §4): after a removal it goes back to a
    // coarser split (n - 1 parts, at least 2), so the chunks it tries halve round by round.
    for (const n of [64, 128, 1024]) {
      for (const needed of [0, 17, n - 1]) {
        const { items, executions } = await ddmin(range(n), containsAll([needed]), 10_000);
        expect(items).toEqual([needed]);
        expect(executions, `item ${needed} of ${n}`).toBeLessThanOrEqual(2 * Math.log2(n) + 2);
      }
    }
  });

  it('stops at its budget inside a pass too, when nothing can be removed', async () => {
    let calls = 0;
    const { items, executions } = await ddmin(range(16), () => { calls++; return false; }, 3);
    expect([executions, calls]).toEqual([3, 3]);
    expect(items).toEqual(range(16));
  });
});

describe('shrinkProgram', () => {
  const honest = (occurrence: number): Decision => ({ at: 'call', point: 'tdx.instructionIo', occurrence, answer: { kind: 'honest' } });
  const stall: Decision = { at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1000, answer: { kind: 'honest' } };
  const pageAdd = (gpa: bigint): LaunchAction => ({ kind: 'tdx.page-add', gpa, fill: 0 });
  const program: AttackProgram = {
    platform: 'tdx',
    decisions: [honest(1), stall, honest(2), honest(3)],
    launch: [pageAdd(0x1000n), pageAdd(0x2000n), pageAdd(0x3000n)],
    memoryDescription: { memoryBytes: 1n << 30n },
  };
  const hasStall = (p: AttackProgram) => p.decisions.some((d) => d.at === 'call' && d.point === 'tdx.mapGpa');

  it('drops the decisions, launch actions and memory description the finding does not need', async () => {
    let calls = 0;
    const needsLaunchPage = (p: AttackProgram) => {
      calls++;
      return hasStall(p) && (p.launch ?? []).some((a) => a.kind === 'tdx.page-add' && a.gpa === 0x2000n);
    };
    const { program: shrunk, executions } = await shrinkProgram(program, needsLaunchPage);
    // Every execution of every phase (decisions, launch actions, description, repeats) is counted.
    expect(executions).toBe(calls);
    expect(shrunk).toEqual({ platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, answer: { kind: 'honest' } }], launch: [pageAdd(0x2000n)] });
  });

  it('keeps the memory description and the repeat when the finding needs them', async () => {
    const needs = (p: AttackProgram) =>
      p.memoryDescription?.memoryBytes === 1n << 30n && p.decisions.some((d) => d.at === 'call' && d.point === 'tdx.mapGpa' && d.repeat === 1000);
    const { program: shrunk } = await shrinkProgram(program, needs);
    expect(shrunk).toEqual({ platform: 'tdx', decisions: [stall], memoryDescription: { memoryBytes: 1n << 30n } });
  });

  it('tries a single occurrence only for repeated answers: a program without repeats costs only its ddmin', async () => {
    let calls = 0;
    const needsSecond = (p: AttackProgram) => { calls++; return p.decisions.some((d) => d.at === 'call' && d.occurrence === 2); };
    const result = await shrinkProgram({ platform: 'tdx', decisions: [honest(1), honest(2)] }, needsSecond);
    expect(result.program.decisions).toEqual([honest(2)]);
    // ddmin: without the first (reproduces), without the second (does not); nothing else to try.
    expect([result.executions, calls]).toEqual([2, 2]);
  });

  it('keeps a repeat it had no budget left to try as a single occurrence', async () => {
    // One decision, the repeated stall: ddmin spends the one execution (without it: no), and
    // nothing is left to learn whether one occurrence would do, so the repeat stays.
    let calls = 0;
    const needsRepeat = (p: AttackProgram) => { calls++; return p.decisions.some((d) => d.at === 'call' && d.repeat === 1000); };
    const result = await shrinkProgram({ platform: 'tdx', decisions: [stall] }, needsRepeat, 1);
    expect(result.program.decisions).toEqual([stall]);
    expect([result.executions, calls]).toEqual([1, 1]);
  });

  it('shares one budget between decisions and launch actions', async () => {
    let calls = 0;
    const reproduces = (p: AttackProgram) => { calls++; return hasStall(p) && (p.launch ?? []).some((a) => a.kind === 'tdx.page-add' && a.gpa === 0x3000n); };
    const launch = Array.from({ length: 8 }, (_, i) => pageAdd(BigInt(i + 1) * 0x1000n));
    const result = await shrinkProgram({ platform: 'tdx', decisions: [stall], launch }, reproduces, 4);
    expect(result.executions).toBe(calls);
    expect(calls).toBe(4);
    expect(reproduces(result.program)).toBe(true);
  });

  it('never spends more executions than its budget, and what it returns still reproduces', async () => {
    let calls = 0;
    const reproduces = (p: AttackProgram) => { calls++; return hasStall(p); };
    const result = await shrinkProgram(program, reproduces, 3);
    expect(result.executions).toBe(calls);
    expect(calls).toBeLessThanOrEqual(3);
    expect(hasStall(result.program)).toBe(true);
  });
});
