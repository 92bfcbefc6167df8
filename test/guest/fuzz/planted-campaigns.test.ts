// Every planted bug is found by the same short campaign (fixed seed, a fixed cap on executions):
// the fuzzer's tactics and oracle, not a scripted attack, find each one, with the category the
// bug belongs to, and shrink it to a handful of decisions. Timing is the benchmark's business
// (`npm run bench:fuzz`); here only verdicts are asserted.
import { describe, expect, it } from 'vitest';
import { runCampaign } from '../../../src/fuzz/campaign.js';
import { createExecutor } from '../../../src/fuzz/create-executor.js';
import { PLANTED_BUGS, plantedBugTarget } from '../../../src/fuzz/planted-bugs.js';

const target = plantedBugTarget;

/**
 * The most executions any planted bug may take with seed 1. The ones that need a launch lie
 * (e820-unchecked: a memory description; accept-already-accepted: a launched page) take longest,
 * as the campaign keeps fresh launches to a quarter of its cost (execution-cost.ts) and tries its
 * launch tactics a surface at a time (tactics.ts LaunchTacticDeck). `npm run bench:fuzz` times them.
 */
const RUNS = 400;

describe('a campaign finds every planted bug, in the category it belongs to', () => {
  it.each(PLANTED_BUGS.map((b) => [`${b.variant} on ${b.platform}: ${b.expect}`, b] as const))('%s', async (_name, bug) => {
    const executor = createExecutor(target(bug.platform, bug.variant));
    let found = false;
    try {
      const result = await runCampaign({
        executor, seed: 1n, runs: RUNS, shrinkBudget: 60,
        onFinding: (f) => { found ||= f.category === bug.expect; },
        stop: () => found,
      });
      const finding = result.findings.find((f) => f.category === bug.expect);
      expect(finding, `findings: ${result.findings.map((f) => f.category).join(', ') || 'none'} in ${result.stats.execs} executions`).toBeDefined();
      // Shrunk to a handful of decisions (launch actions and a memory description count too).
      const program = finding!.program;
      expect(program.decisions.length + (program.launch?.length ?? 0) + (program.memoryDescription ? 1 : 0)).toBeLessThanOrEqual(4);
      // And it reproduces: the shrunk program alone gives the same category.
      expect(executor.execute(program).judgement.findings.map((f) => f.category)).toContain(bug.expect);
      // Foreign content is the read the hardware saw, with the instruction that read.
      if (bug.expect === 'foreign-content') {
        const replayed = executor.execute(program, { keepTrace: true });
        const read = replayed.events!.find((e) => e.seq === finding!.eventSeq);
        expect(finding!.rip).toBeDefined();
        expect(read).toMatchObject({ type: 'foreign-read', gpa: finding!.gpa, rip: finding!.rip });
        expect(replayed.traceSha256).toBe(finding!.traceSha256);
      }
      // The planted bug is what it finds: the same program against the stubs without it is no such finding.
      const fixed = createExecutor(target(bug.platform, bug.withoutBug));
      try {
        expect(fixed.execute(program).judgement.findings.map((f) => f.category)).not.toContain(bug.expect);
      } finally {
        fixed.close();
      }
    } finally {
      executor.close();
    }
  }, 180_000);
});
