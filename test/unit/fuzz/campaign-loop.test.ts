// The campaign loop against a scripted executor, in process: which inputs it keeps (AFL's rule: an
// input stays in the queue only when it reached coverage no earlier one did), when it stops, how
// it reports and shrinks findings, how the launch budget picks parents, and that a seed and a run
// count fix the whole sequence of programs.
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { attackProgramToJson, launchKey, type AttackProgram, type Decision } from '../../../src/fuzz/attack-program.js';
import { findingSignature, HonestRunOverBudgetError, programHash, runCampaign, type CampaignFinding } from '../../../src/fuzz/campaign.js';
import { CostAccount } from '../../../src/fuzz/execution-cost.js';
import type { Execution, Executor, FuzzTarget } from '../../../src/fuzz/executor.js';
import type { OracleFinding } from '../../../src/fuzz/oracle.js';

const TARGET: FuzzTarget = {
  platform: 'tdx', stage: 'kernel', memoryBytes: 128n << 20n, workloadBytes: 4096n, preAccept: 64n << 20n, accept: 'lazy',
  unitBytes: 0x200000n, guestSeed: 1n, maxInstructions: 5_000_000n,
};

/** The decision keys a program reaches in the scripted guest: one per (point, answer kind) and per launch action kind. */
function keysOf(p: AttackProgram): Set<string> {
  const keys = new Set<string>(['honest']);
  for (const d of p.decisions) keys.add(d.at === 'call' ? `${d.point}:${d.answer.kind}` : `exit:${d.action.kind}`);
  for (const a of p.launch ?? []) keys.add(`launch:${a.kind}`);
  if (p.memoryDescription) keys.add('memory-description');
  return keys;
}

interface Script {
  coverage?(p: AttackProgram): Set<string>;
  findings?(p: AttackProgram, index: number): OracleFinding[];
  budget?(p: AttackProgram): boolean;
  /** Absent: the executor has no startsFromSnapshot (every program starts from one). */
  snapshot?(p: AttackProgram): boolean;
  /** Answered without running (execution-memo.ts). */
  recalled?(index: number): boolean;
}

class ScriptedExecutor implements Executor {
  readonly executed: AttackProgram[] = [];
  readonly launched: boolean[] = [];
  startsFromSnapshot?: (p: AttackProgram) => boolean;
  constructor(private readonly script: Script = {}, readonly target: FuzzTarget = TARGET) {
    if (script.snapshot) this.startsFromSnapshot = script.snapshot;
  }
  execute(program: AttackProgram): Execution {
    const index = this.executed.length;
    this.executed.push(program);
    const launches = this.script.snapshot ? !this.script.snapshot(program) : false;
    this.launched.push(launches);
    const findings = this.script.findings?.(program, index) ?? [];
    const budget = this.script.budget?.(program) ?? false;
    return {
      judgement: {
        verdict: findings.length > 0 ? 'finding' : 'benign',
        outcome: { outcome: budget ? 'budget' : 'done', reason: `run ${index}` },
        findings,
      },
      traceSha256: `trace-${index}`, traceEvents: 1, instructions: 1000n + BigInt(program.decisions.length),
      ...(launches ? { launchInstructions: 400_000n } : {}),
      vmmExits: 3, decisionCoverage: (this.script.coverage ?? keysOf)(program),
      callCounts: new Map([['tdx.mapGpa', 3], ['tdx.instructionIo', 5], ['tdx.onAcceptViolation', 2]]),
      gpas: [0x100000n, 0x200000n], edges: undefined, console: '',
      ...(this.script.recalled?.(index) ? { recalled: true as const } : {}),
    };
  }
  close(): void {}
}

const json = (programs: AttackProgram[]): string[] => programs.map(attackProgramToJson);

describe('campaign loop', () => {
  afterEach(() => { vi.restoreAllMocks(); });

  it('keeps an executed program exactly when it reached a decision key no earlier execution reached', async () => {
    const executor = new ScriptedExecutor();
    const result = await runCampaign({ executor, seed: 3n, runs: 300 });
    expect(result.stats.execs).toBe(300);
    expect(executor.executed).toHaveLength(300);
    // AFL's queue rule, recomputed from what was executed.
    const seen = new Set<string>();
    const expected: AttackProgram[] = [];
    for (const p of executor.executed) {
      let fresh = false;
      for (const k of keysOf(p)) if (!seen.has(k)) { seen.add(k); fresh = true; }
      if (fresh) expected.push(p);
    }
    expect(json(result.corpus)).toEqual(json(expected));
    expect(result.stats.corpusSize).toBe(expected.length);
    expect(result.stats.decisionKeys).toBe(seen.size);
    expect(result.corpus.length).toBeGreaterThan(2);
    expect(result.corpus.length).toBeLessThan(300);
  });

  it('counts a new edge bucket as new coverage, and a repeated one as not', async () => {
    // Every program reaches the same decision key; edges alone decide. Slot 7 is hit once by
    // programs with no decisions and twice by the others: two buckets, so two kept programs.
    const edgesFor = (p: AttackProgram): Uint8Array => { const m = new Uint8Array(1 << 16); m[7] = p.decisions.length === 0 ? 1 : 2; return m; };
    const executor = new ScriptedExecutor({ coverage: () => new Set(['same']) });
    const inner = executor.execute.bind(executor);
    executor.execute = (p) => ({ ...inner(p), edges: edgesFor(p) });
    const result = await runCampaign({ executor, seed: 5n, runs: 60 });
    expect(result.stats.edges).toBe(1);
    expect(result.corpus).toHaveLength(2);
    expect(result.corpus[0]!.decisions).toEqual([]);
    expect(result.corpus[1]!.decisions.length).toBeGreaterThan(0);
  });

  it('seeds the corpus with the honest program even when it reaches nothing, and mutates only it then', async () => {
    const executor = new ScriptedExecutor({ coverage: () => new Set() });
    const result = await runCampaign({ executor, seed: 1n, runs: 20 });
    expect(json(result.corpus)).toEqual(json([{ platform: 'tdx', decisions: [] }]));
    expect(result.stats.corpusSize).toBe(1);
    expect(result.stats.execs).toBe(20);
  });

  it('runs the honest program first, then the seeds of its platform only, in order', async () => {
    const seedA: AttackProgram = { platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 1, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n } }] };
    const seedSnp: AttackProgram = { platform: 'snp', decisions: [] };
    const seedB: AttackProgram = { platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.instructionIo', occurrence: 0, answer: { kind: 'honest' } }] };
    const executor = new ScriptedExecutor();
    await runCampaign({ executor, seed: 1n, runs: 5, seeds: [seedA, seedSnp, seedB] });
    expect(json(executor.executed.slice(0, 3))).toEqual(json([{ platform: 'tdx', decisions: [] }, seedA, seedB]));
    expect(executor.executed.every((p) => p.platform === 'tdx')).toBe(true);
  });

  it('counts the executions answered without running among its executions, and apart', async () => {
    const executor = new ScriptedExecutor({ recalled: (index) => index % 3 === 1 });
    const result = await runCampaign({ executor, seed: 2n, runs: 30 });
    expect(result.stats.execs).toBe(30);
    expect(result.stats.recalled).toBe(10);
  });

  it('runs nothing at all for runs: 0, not the default 1000', async () => {
    // CampaignOptions.runs is an exact count; only its absence means the default.
    const executor = new ScriptedExecutor();
    const result = await runCampaign({ executor, seed: 1n, runs: 0 });
    expect(executor.executed).toHaveLength(0);
    expect(result.stats.execs).toBe(0);
    expect(result.corpus).toEqual([]);
  });

  it('stops the seed phase too at the run count', async () => {
    const seeds: AttackProgram[] = [1, 2, 3].map((n) => ({ platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: n, answer: { kind: 'honest' } }] }));
    const executor = new ScriptedExecutor();
    const result = await runCampaign({ executor, seed: 1n, runs: 2, seeds });
    expect(executor.executed).toHaveLength(2);
    expect(result.stats.execs).toBe(2);
  });

  it('refuses a campaign whose honest execution runs out of its budget, naming the budget', async () => {
    const executor = new ScriptedExecutor({ budget: (p) => p.decisions.length === 0 });
    await expect(runCampaign({ executor, seed: 1n, runs: 10 })).rejects.toThrow(HonestRunOverBudgetError);
    await expect(runCampaign({ executor, seed: 1n, runs: 10 })).rejects.toThrow(/5000000 instructions/);
    // It says how far the guest got and what to change.
    await expect(runCampaign({ executor, seed: 1n, runs: 10 })).rejects.toMatchObject({
      name: 'HonestRunOverBudgetError', message: expect.stringMatching(/stopped after 1000 guest instructions.*raise --max-instructions or fuzz a smaller --workload/) as string,
    });
    // A seed that runs out of budget is just another execution.
    const seed: AttackProgram = { platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, answer: { kind: 'honest' } }] };
    const mutantsOverBudget = new ScriptedExecutor({ budget: (p) => p.decisions.length > 0 });
    await expect(runCampaign({ executor: mutantsOverBudget, seed: 1n, runs: 10, seeds: [seed] })).resolves.toBeDefined();
  });

  it('runs 1000 executions when given neither runs nor a time, and has no run limit with only a time', async () => {
    const byDefault = await runCampaign({ executor: new ScriptedExecutor(), seed: 1n });
    expect(byDefault.stats.execs).toBe(1000);
    let calls = 0;
    const timed = await runCampaign({ executor: new ScriptedExecutor(), seed: 1n, timeMs: 600_000, stop: () => ++calls > 1500 });
    expect(timed.stats.execs).toBeGreaterThan(1000);
    // A time already up: not even the honest program runs.
    const none = await runCampaign({ executor: new ScriptedExecutor(), seed: 1n, timeMs: 0 });
    expect(none.stats.execs).toBe(0);
    expect(none.corpus).toEqual([]);
  });

  it('gives the same programs in the same order for the same seed, and another order for another seed', async () => {
    const a = new ScriptedExecutor();
    const b = new ScriptedExecutor();
    const c = new ScriptedExecutor();
    const ra = await runCampaign({ executor: a, seed: 42n, runs: 200 });
    const rb = await runCampaign({ executor: b, seed: 42n, runs: 200 });
    await runCampaign({ executor: c, seed: 43n, runs: 200 });
    expect(json(b.executed)).toEqual(json(a.executed));
    expect(json(rb.corpus)).toEqual(json(ra.corpus));
    expect(rb.stats).toEqual(ra.stats);
    expect(json(c.executed)).not.toEqual(json(a.executed));
    // A shorter campaign is the start of a longer one, and so is one stopped early.
    const short = new ScriptedExecutor();
    await runCampaign({ executor: short, seed: 42n, runs: 80 });
    expect(json(short.executed)).toEqual(json(a.executed.slice(0, 80)));
    const stopped = new ScriptedExecutor();
    const rs = await runCampaign({ executor: stopped, seed: 42n, runs: 200, stop: () => stopped.executed.length >= 57 });
    expect(rs.stats.execs).toBe(57);
    expect(json(stopped.executed)).toEqual(json(a.executed.slice(0, 57)));
  });

  it('runs nothing once stopped before the honest program', async () => {
    const executor = new ScriptedExecutor();
    const result = await runCampaign({ executor, seed: 1n, runs: 10, seeds: [HOSTILE], stop: () => true });
    expect(executor.executed).toEqual([]);
    expect(result.stats.execs).toBe(0);
  });

  it('stops mutating at the deadline of a timed campaign', async () => {
    // A clock that advances 10 ms per execution: a 95 ms campaign gets executions at 0, 10, …, 90 ms.
    let now = 1_000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    const executor = new ScriptedExecutor();
    const inner = executor.execute.bind(executor);
    executor.execute = (p) => { now += 10; return inner(p); };
    const result = await runCampaign({ executor, seed: 1n, timeMs: 95 });
    expect(result.stats.execs).toBe(10);
    // At the deadline itself the time is up: a 100 ms campaign also runs 10 (at 0, 10, …, 90 ms).
    now = 1_000;
    expect((await runCampaign({ executor, seed: 1n, timeMs: 100 })).stats.execs).toBe(10);
  });

  it('runs nothing when its time is up before the honest program, by a clock that has not moved', async () => {
    vi.spyOn(performance, 'now').mockImplementation(() => 5_000);
    const executor = new ScriptedExecutor();
    const result = await runCampaign({ executor, seed: 1n, timeMs: 0 });
    expect(executor.executed).toEqual([]);
    expect(result.stats.execs).toBe(0);
  });

  it('on a target with several vCPUs, mutants also choose how the VMM schedules them; with one, never', async () => {
    const multi = new ScriptedExecutor({}, { ...TARGET, vcpus: 2 });
    await runCampaign({ executor: multi, seed: 3n, runs: 60 });
    expect(multi.executed.filter((p) => p.schedule !== undefined).length).toBeGreaterThan(30);
    const single = new ScriptedExecutor({}, { ...TARGET, vcpus: 1 });
    await runCampaign({ executor: single, seed: 3n, runs: 60 });
    expect(single.executed.some((p) => p.schedule !== undefined)).toBe(false);
  });

  it('splices another corpus entry into some mutants', async () => {
    // Two seeds with decision points the scripted profile never aims at: a mutant with both
    // markers can only come from crossover.
    const a: AttackProgram = { platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.instructionHlt', occurrence: 0, answer: { kind: 'stop' } }] };
    const b: AttackProgram = { platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.getTdVmCallInfo', occurrence: 0, answer: { kind: 'stop' } }] };
    const executor = new ScriptedExecutor();
    await runCampaign({ executor, seed: 1n, runs: 300, seeds: [a, b] });
    const points = (p: AttackProgram): Set<string> => new Set(p.decisions.map((d) => (d.at === 'call' ? d.point : '')));
    expect(executor.executed.some((p) => points(p).has('tdx.instructionHlt') && points(p).has('tdx.getTdVmCallInfo'))).toBe(true);
  });

  it('sums what the executions report into the statistics and calls onExecution after each', async () => {
    const executor = new ScriptedExecutor();
    const seen: number[] = [];
    const result = await runCampaign({ executor, seed: 9n, runs: 40, onExecution: (s) => seen.push(s.execs) });
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(result.stats.verdicts).toEqual({ detected: 0, benign: 40, finding: 0 });
    expect(result.stats.vmmExits).toBe(120);
    expect(result.stats.instructions).toBe(executor.executed.reduce((s, p) => s + 1000n + BigInt(p.decisions.length), 0n));
    expect(result.stats.launches).toBe(0);
    expect(result.stats.shrinkExecs).toBe(0);
  });
});

const NEEDED: Decision = { at: 'call', point: 'tdx.mapGpa', occurrence: 2, answer: { kind: 'map-gpa', convertBytes: 0x1000n, status: 1n } };
const JUNK: Decision[] = [0, 1, 3, 4, 5].map((n) => ({ at: 'call', point: 'tdx.instructionIo', occurrence: n, answer: { kind: 'honest' } }));
const HOSTILE: AttackProgram = { platform: 'tdx', decisions: [...JUNK.slice(0, 2), NEEDED, ...JUNK.slice(2)] };
const hasNeeded = (p: AttackProgram): boolean => p.decisions.some((d) => attackProgramToJson({ platform: 'tdx', decisions: [d] }) === attackProgramToJson({ platform: 'tdx', decisions: [NEEDED] }));
const doubleAcceptance = (gpa: number): OracleFinding => ({ category: 'double-acceptance', severity: 'high', detail: `accepted 0x${gpa.toString(16)} again at event ${gpa % 97}`, gpa: BigInt(gpa) });

describe('campaign findings', () => {
  it('shrinks a finding to the decisions it needs, reports it once, and keeps shrinking out of the run count', async () => {
    // Only the seed (execution 1) and programs with NEEDED give the finding; mutants of it that keep NEEDED give it again with another address.
    const executor = new ScriptedExecutor({ findings: (p, i) => (hasNeeded(p) ? [doubleAcceptance(0x5000 + i * 0x1000)] : []) });
    const reported: CampaignFinding[] = [];
    const result = await runCampaign({ executor, seed: 1n, runs: 30, seeds: [HOSTILE], onFinding: (f) => reported.push(f) });
    expect(result.findings).toHaveLength(1);
    expect(reported).toEqual(result.findings);
    const f = result.findings[0]!;
    expect(f.program.decisions).toEqual([NEEDED]);
    expect(f.unshrunk).toEqual(HOSTILE);
    expect(f.execIndex).toBe(1);
    expect(f.id).toBe(`double-acceptance-${programHash({ platform: 'tdx', decisions: [NEEDED] })}`);
    expect(f.signature).toBe('double-acceptance: accepted N again at event N');
    expect(f.seed).toBe(1n);
    expect(f.target).toBe(TARGET);
    expect(f.shrinkExecutions).toBeGreaterThan(0);
    expect(result.stats.shrinkExecs).toBe(f.shrinkExecutions);
    // The reported finding is the shrunk program's own execution: the one right after the shrink's.
    const finalIndex = 2 + f.shrinkExecutions;
    expect(json([executor.executed[finalIndex]!])).toEqual(json([f.program]));
    expect(f.traceSha256).toBe(`trace-${finalIndex}`);
    expect(f.outcome.reason).toBe(`run ${finalIndex}`);
    expect(f.gpa).toBe(BigInt(0x5000 + finalIndex * 0x1000));
    expect(result.stats.execs).toBe(30);
    expect(executor.executed).toHaveLength(30 + f.shrinkExecutions + 1);
    expect(result.stats.findingsByCategory).toEqual({ 'double-acceptance': 1 });
    expect(result.stats.verdicts.finding).toBeGreaterThanOrEqual(1);
  });

  it('reports the program as found when the shrunk one does not give the finding again', async () => {
    // A finding that shows only once (a flaky guest): nothing shrinks and the final run misses it.
    const executor = new ScriptedExecutor({ findings: (_p, i) => (i === 1 ? [doubleAcceptance(0x9000)] : []) });
    const result = await runCampaign({ executor, seed: 1n, runs: 3, seeds: [HOSTILE] });
    const f = result.findings[0]!;
    expect(f.program).toEqual(HOSTILE);
    expect(f.id).toBe(`double-acceptance-${programHash(HOSTILE)}`);
    expect(f.traceSha256).toBe('trace-1');
    expect(f.outcome.reason).toBe('run 1');
    expect(f.gpa).toBe(0x9000n);
  });

  it('reports the program as found when the shrunk one gives the finding no more', async () => {
    // A guest that shows the finding only on a program's first execution: the shrink reduces to
    // NEEDED, but running the shrunk program once more gives nothing, so the report falls back
    // to the program and execution that found it.
    const shown = new Set<string>();
    const once = (p: AttackProgram, i: number): OracleFinding[] => {
      const key = attackProgramToJson(p);
      if (!hasNeeded(p) || shown.has(key)) return [];
      shown.add(key);
      return [doubleAcceptance(0x3000 + i * 0x1000)];
    };
    const executor = new ScriptedExecutor({ findings: once });
    const result = await runCampaign({ executor, seed: 1n, runs: 2, seeds: [HOSTILE] });
    const f = result.findings[0]!;
    expect(f.shrinkExecutions).toBeGreaterThan(0);
    expect(json([executor.executed.at(-1)!])).toEqual(json([{ platform: 'tdx', decisions: [NEEDED] }]));
    expect(f.program).toEqual(HOSTILE);
    expect(f.id).toBe(`double-acceptance-${programHash(HOSTILE)}`);
    expect(f.traceSha256).toBe('trace-1');
    expect(f.gpa).toBe(0x4000n);
  });

  it('spends at most the shrink budget on one finding', async () => {
    const executor = new ScriptedExecutor({ findings: (p) => (hasNeeded(p) ? [doubleAcceptance(0x5000)] : []) });
    const result = await runCampaign({ executor, seed: 1n, runs: 2, seeds: [HOSTILE], shrinkBudget: 2 });
    expect(result.findings[0]!.shrinkExecutions).toBe(2);
    expect(result.findings[0]!.program.decisions.length).toBeGreaterThan(1);
  });

  it('spends no shrink executions with a shrink budget of 0, and 200 at most by default', async () => {
    const none = new ScriptedExecutor({ findings: (p) => (hasNeeded(p) ? [doubleAcceptance(0x5000)] : []) });
    const unshrunk = await runCampaign({ executor: none, seed: 1n, runs: 2, seeds: [HOSTILE], shrinkBudget: 0 });
    expect(unshrunk.findings[0]!.shrinkExecutions).toBe(0);
    expect(unshrunk.findings[0]!.program).toEqual(HOSTILE);
    // 128 decisions that are all needed: ddmin tries subsets and complements at every granularity
    // up to 128 (a 64-decision program took 126 executions) and removes none, so only the default budget stops it.
    const all: AttackProgram = { platform: 'tdx', decisions: Array.from({ length: 128 }, (_, n) => ({ at: 'call', point: 'tdx.instructionIo', occurrence: n, answer: { kind: 'honest' } })) };
    const needsAll = new ScriptedExecutor({ findings: (p) => (p.decisions.length === 128 ? [doubleAcceptance(0x5000)] : []) });
    const bounded = await runCampaign({ executor: needsAll, seed: 1n, runs: 2, seeds: [all] });
    expect(bounded.findings[0]!.shrinkExecutions).toBe(200);
    expect(bounded.findings[0]!.program).toEqual(all);
  });

  it('spends no shrink executions once stopped, and keeps the program as found', async () => {
    const executor = new ScriptedExecutor({ findings: (p) => (hasNeeded(p) ? [doubleAcceptance(0x5000)] : []) });
    let found = false;
    const result = await runCampaign({ executor, seed: 1n, runs: 30, seeds: [HOSTILE], onFinding: () => { found = true; }, stop: () => executor.executed.length >= 2 });
    expect(found).toBe(true);
    expect(result.stats.shrinkExecs).toBe(0);
    expect(result.findings[0]!.shrinkExecutions).toBe(0);
    expect(result.findings[0]!.program).toEqual(HOSTILE);
    expect(result.stats.execs).toBe(2);
    // No reduced program was tried: the honest program, the seed, and the finding's final run of the seed as found.
    expect(json(executor.executed)).toEqual(json([{ platform: 'tdx', decisions: [] }, HOSTILE, HOSTILE]));
  });

  it('reports a second finding of the same category and words only once', async () => {
    const executor = new ScriptedExecutor({ findings: (p, i) => (p.decisions.length > 0 ? [doubleAcceptance(0x1000 * (i + 1))] : []) });
    const result = await runCampaign({ executor, seed: 2n, runs: 40, shrinkBudget: 5 });
    expect(result.stats.verdicts.finding).toBeGreaterThan(1);
    expect(result.findings).toHaveLength(1);
    expect(result.stats.findingsByCategory).toEqual({ 'double-acceptance': 1 });
    expect(result.findings[0]!.shrinkExecutions).toBeLessThanOrEqual(5);
  });

  it('names a program by the first 12 hex digits of the SHA-256 of its JSON', () => {
    const hash = programHash(HOSTILE);
    expect(hash).toMatch(/^[0-9a-f]{12}$/);
    expect(hash).toBe(createHash('sha256').update(attackProgramToJson(HOSTILE)).digest('hex').slice(0, 12));
    expect(programHash({ platform: 'tdx', decisions: [NEEDED] })).not.toBe(hash);
  });

  it('shrinks each finding against its own category, and reports what its own category said', async () => {
    // Every program with decisions shows a foreign-content finding; only those with NEEDED also a
    // double acceptance. Shrinking the double acceptance must keep NEEDED, not any decision.
    const foreign = (i: number): OracleFinding => ({ category: 'foreign-content', severity: 'high', detail: `read 0x${(0x7000 + i).toString(16)}`, gpa: 0x7000n });
    const executor = new ScriptedExecutor({ findings: (p, i) => (hasNeeded(p) ? [foreign(i), doubleAcceptance(0x5000)] : p.decisions.length > 0 ? [foreign(i)] : []) });
    const result = await runCampaign({ executor, seed: 1n, runs: 2, seeds: [HOSTILE] });
    const double = result.findings.find((f) => f.category === 'double-acceptance')!;
    expect(double.program.decisions).toEqual([NEEDED]);
    expect(double.detail).toBe(doubleAcceptance(0x5000).detail);
    const other = result.findings.find((f) => f.category === 'foreign-content')!;
    expect(other.program.decisions).toHaveLength(1);
    expect(result.findings).toHaveLength(2);
  });

  it('makes addresses and numbers out of a finding signature, not its category', () => {
    expect(findingSignature({ category: 'foreign-content', detail: 'read 0xDEADb000 at event 123' })).toBe('foreign-content: read N at event N');
  });
});

describe('campaign launch budget', () => {
  it('once launches took their share, executes only programs that start from a snapshot', async () => {
    // The honest launch has a snapshot; any other launch part launches a fresh VM every time.
    const snapshot = (p: AttackProgram): boolean => launchKey(p) === launchKey({ platform: 'tdx', decisions: [] });
    const executor = new ScriptedExecutor({ snapshot });
    const result = await runCampaign({ executor, seed: 4n, runs: 600 });
    const account = new CostAccount();
    let launchesWhileOver = 0;
    let overAtSomePoint = false;
    for (let i = 0; i < executor.executed.length; i++) {
      const over = account.overLaunchBudget();
      overAtSomePoint ||= over;
      if (over && executor.launched[i]) launchesWhileOver++;
      account.add({ instructions: 1000n, ...(executor.launched[i] ? { launchInstructions: 400_000n } : {}) });
    }
    expect(overAtSomePoint).toBe(true);
    expect(launchesWhileOver).toBe(0);
    const launches = executor.launched.filter(Boolean).length;
    expect(result.stats.launches).toBe(launches);
    expect(launches).toBeGreaterThan(1);
    // Launch-changing parents were kept (they reached new keys), yet were not drawn while over.
    expect(result.corpus.some((p) => !snapshot(p))).toBe(true);
  });

  it('falls back to the first corpus entry when no snapshot parent turns up, and still launches nothing while over', async () => {
    // Only launch parts reach new keys, so every kept entry but the honest one launches.
    const snapshot = (p: AttackProgram): boolean => launchKey(p) === launchKey({ platform: 'tdx', decisions: [] });
    const launchKeys = (p: AttackProgram): Set<string> => new Set([...keysOf(p)].filter((k) => k === 'honest' || k.startsWith('launch:') || k === 'memory-description'));
    const executor = new ScriptedExecutor({ snapshot, coverage: launchKeys });
    const result = await runCampaign({ executor, seed: 6n, runs: 400 });
    expect(result.stats.execs).toBe(400);
    expect(result.corpus.slice(1).every((p) => !snapshot(p))).toBe(true);
    expect(result.corpus.length).toBeGreaterThan(3);
    const account = new CostAccount();
    for (let i = 0; i < executor.executed.length; i++) {
      if (account.overLaunchBudget()) expect(executor.launched[i]).toBe(false);
      account.add({ instructions: 1000n, ...(executor.launched[i] ? { launchInstructions: 400_000n } : {}) });
    }
  });
});
