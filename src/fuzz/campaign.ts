// One fuzzing campaign on one executor: pick a corpus entry, mutate it, execute, keep the mutant
// if it reached new coverage (guest edges or adversary decisions), shrink and report findings.
// A pure function of its options: the same target, seed and runs give the same findings in the
// same order (wall-clock time only decides when a --time campaign stops).
import { createHash } from 'node:crypto';
import { attackProgramToJson, type AttackProgram } from './attack-program.js';
import { EdgeCoverage } from './coverage.js';
import type { Execution, Executor, FuzzTarget } from './executor.js';
import { mutate, type ExecutionProfile } from './mutate.js';
import { FINDING_CATEGORIES, type FindingCategory, type OracleFinding, type Severity, type Verdict } from './oracle.js';
import { Prng } from '../shared/prng.js';
import { shrinkProgram } from './shrink.js';
import { CostAccount } from './execution-cost.js';
import { LaunchTacticDeck } from './tactics.js';

export interface CampaignOptions {
  executor: Executor;
  seed: bigint;
  /** Executions to run (shrinking not counted). */
  runs?: number;
  /** Or: stop after this much wall-clock time. */
  timeMs?: number;
  /** Programs to start from besides the honest VMM (a corpus from an earlier campaign). */
  seeds?: AttackProgram[];
  /** Executions one shrink may spend. Default 200. */
  shrinkBudget?: number;
  /** Called after every execution (throttle it yourself). */
  onExecution?(stats: CampaignStats): void;
  onFinding?(finding: CampaignFinding): void;
  /**
   * Checked before every execution: true ends the campaign early (the first finding was enough,
   * Ctrl-C). A shrink under way then runs no more executions and keeps what it reduced so far;
   * executions before the stop are exactly those of an uninterrupted campaign.
   */
  stop?(): boolean;
}

export interface CampaignStats {
  execs: number;
  verdicts: Record<Verdict, number>;
  findingsByCategory: Partial<Record<FindingCategory, number>>;
  corpusSize: number;
  /** Edge-bitmap entries ever hit, and adversary decision keys ever reached. */
  edges: number;
  decisionKeys: number;
  instructions: bigint;
  vmmExits: number;
  shrinkExecs: number;
  /** Executions answered without running, as repeats of an earlier run from the same start (execution-memo.ts). */
  recalled: number;
  /** Executions (shrinking included) that launched a fresh VM: their program changed the launch and no snapshot of it was kept. */
  launches: number;
}

export interface CampaignFinding extends OracleFinding {
  /** Category + what happened without addresses: findings with the same one are duplicates. */
  signature: string;
  /** Short stable id: the category and a hash of the shrunk program. */
  id: string;
  summary: string;
  program: AttackProgram;
  /** The program as the fuzzer first found it, before shrinking. */
  unshrunk: AttackProgram;
  /** Index of the execution that found it in this campaign. */
  execIndex: number;
  target: FuzzTarget;
  seed: bigint;
  outcome: Execution['judgement']['outcome'];
  traceSha256: string;
  shrinkExecutions: number;
}

export interface CampaignResult {
  stats: CampaignStats;
  findings: CampaignFinding[];
  corpus: AttackProgram[];
}

interface CorpusEntry {
  program: AttackProgram;
  profile: ExecutionProfile;
}

/** Draws for a parent that starts from a snapshot before falling back to the first entry (the honest program's or a seed's). */
const FRUGAL_PARENT_DRAWS = 8;

const HONEST = (platform: AttackProgram['platform']): AttackProgram => ({ platform, decisions: [] });

/**
 * The honest execution itself ran out of the per-execution instruction budget: every mutant would
 * too, so the campaign would only measure the budget. A configuration error (raise the budget).
 */
export class HonestRunOverBudgetError extends Error {
  override name = 'HonestRunOverBudgetError';
}

export function findingSignature(f: Pick<OracleFinding, 'category' | 'detail'>): string {
  return `${f.category}: ${f.detail.replace(/0x[0-9a-f]+/gi, 'N').replace(/\d+/g, 'N')}`;
}

export function programHash(program: AttackProgram): string {
  return createHash('sha256').update(attackProgramToJson(program)).digest('hex').slice(0, 12);
}

function profileOf(e: Execution, target: FuzzTarget): ExecutionProfile {
  return {
    callCounts: e.callCounts, vmmExits: e.vmmExits, gpas: e.gpas, memoryBytes: target.memoryBytes, preAccept: target.preAccept,
    ...(target.vcpus !== undefined ? { vcpus: target.vcpus } : {}),
  };
}

/** A campaign's statistics before its first execution. */
export function emptyStats(): CampaignStats {
  return {
    execs: 0, verdicts: { detected: 0, benign: 0, finding: 0 }, findingsByCategory: {}, corpusSize: 0, edges: 0,
    decisionKeys: 0, instructions: 0n, vmmExits: 0, shrinkExecs: 0, recalled: 0, launches: 0,
  };
}

/** Lets timers and messages run between executions (a campaign is long, synchronous work). */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function runCampaign(options: CampaignOptions): Promise<CampaignResult> {
  const { executor } = options;
  const target = executor.target;
  const rng = new Prng(options.seed);
  const deadline = options.timeMs !== undefined ? performanceNow() + options.timeMs : Number.POSITIVE_INFINITY;
  const runs = options.runs ?? (options.timeMs !== undefined ? Number.POSITIVE_INFINITY : 1000);
  const edges = new EdgeCoverage();
  const decisionKeys = new Set<string>();
  const corpus: CorpusEntry[] = [];
  const findings: CampaignFinding[] = [];
  const signatures = new Set<string>();
  const stats = emptyStats();
  const cost = new CostAccount();
  const launchDeck = new LaunchTacticDeck();
  /** Every execution of the campaign, shrinking included, goes through here: its cost is counted. */
  const execute = (program: AttackProgram): Execution => {
    const e = executor.execute(program);
    cost.add(e);
    stats.launches = cost.launches;
    return e;
  };

  const isNew = (e: Execution): boolean => {
    let fresh = edges.merge(e.edges, e.edgeSlots);
    for (const key of e.decisionCoverage) {
      if (!decisionKeys.has(key)) {
        decisionKeys.add(key);
        fresh = true;
      }
    }
    return fresh;
  };

  const report = async (program: AttackProgram, e: Execution, execIndex: number): Promise<void> => {
    for (const f of e.judgement.findings) {
      const signature = findingSignature(f);
      if (signatures.has(signature)) continue;
      signatures.add(signature);
      let shrinkExecs = 0;
      const reproduces = async (p: AttackProgram) => {
        await yieldToEventLoop();
        if (options.stop?.()) return false;
        shrinkExecs++;
        return execute(p).judgement.findings.some((g) => g.category === f.category);
      };
      const shrunk = await shrinkProgram(program, reproduces, options.shrinkBudget ?? 200);
      stats.shrinkExecs += shrinkExecs;
      // The shrunk program's own execution is what the finding reports (and what replay reproduces).
      const final = execute(shrunk.program);
      const again = final.judgement.findings.find((g) => g.category === f.category);
      const shown = again ?? f;
      const program_ = again ? shrunk.program : program;
      const finding: CampaignFinding = {
        ...shown, signature, id: `${f.category}-${programHash(program_)}`, summary: FINDING_CATEGORIES[f.category].summary,
        program: program_, unshrunk: program, execIndex, target, seed: options.seed,
        outcome: (again ? final : e).judgement.outcome, traceSha256: (again ? final : e).traceSha256, shrinkExecutions: shrinkExecs,
      };
      findings.push(finding);
      stats.findingsByCategory[f.category] = (stats.findingsByCategory[f.category] ?? 0) + 1;
      options.onFinding?.(finding);
    }
  };

  const account = async (program: AttackProgram, e: Execution): Promise<void> => {
    const index = stats.execs++;
    stats.verdicts[e.judgement.verdict]++;
    stats.instructions += e.instructions;
    stats.vmmExits += e.vmmExits;
    if (e.recalled) stats.recalled++;
    if (isNew(e)) corpus.push(entryOf(program, e));
    if (e.judgement.verdict === 'finding') await report(program, e, index);
    stats.corpusSize = corpus.length;
    stats.edges = edges.count;
    stats.decisionKeys = decisionKeys.size;
    options.onExecution?.(stats);
    await yieldToEventLoop();
  };

  const entryOf = (program: AttackProgram, e: Execution): CorpusEntry => ({ program, profile: profileOf(e, target) });
  const pickParent = (): CorpusEntry => corpus[rng.below(corpus.length)]!;

  const initial = [HONEST(target.platform), ...(options.seeds ?? []).filter((p) => p.platform === target.platform)];
  for (const program of initial) {
    if (stats.execs >= runs || performanceNow() >= deadline || options.stop?.()) break;
    const e = execute(program);
    if (program === initial[0] && e.judgement.outcome.outcome === 'budget') {
      throw new HonestRunOverBudgetError(`the honest execution needs more than its budget of ${target.maxInstructions} instructions ` +
        `(guest instructions plus host-work charges; it stopped after ${e.instructions} guest instructions); raise --max-instructions or fuzz a smaller --workload`);
    }
    await account(program, e);
    // The honest run always seeds the corpus, so mutation has a profile to aim with.
    if (corpus.length === 0) corpus.push(entryOf(program, e));
  }
  while (stats.execs < runs && performanceNow() < deadline && corpus.length > 0 && !options.stop?.()) {
    // Once fresh launches have taken their share of the cost, mutants keep their parent's launch
    // part and parents are drawn among those that start from a snapshot (a kept launch's too).
    const frugal = cost.overLaunchBudget();
    let parent = pickParent();
    for (let draw = 0; frugal && executor.startsFromSnapshot?.(parent.program) === false; draw++) {
      parent = draw < FRUGAL_PARENT_DRAWS ? pickParent() : corpus[0]!;
    }
    const other = corpus.length > 1 && rng.chance(1, 4) ? corpus[rng.below(corpus.length)]!.program : undefined;
    const mutant = mutate(rng, parent.program, parent.profile, other, { keepLaunch: frugal, launchDeck });
    await account(mutant, execute(mutant));
  }
  return { stats, findings, corpus: corpus.map((c) => c.program) };
}

function performanceNow(): number {
  return performance.now();
}

export type { Severity };
