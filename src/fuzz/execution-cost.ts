// What executions cost the campaign, in a fixed model, so that where it spends its time is a pure
// function of the configuration and seed (never the wall clock): guest instructions, plus a fixed
// charge per execution (restore, oracle, trace) and per fresh launch (VM setup and measurement),
// in guest-instruction equivalents. Like AFL's power schedule, which weighs an input's energy by
// its execution time, the campaign uses it to keep the expensive kind of execution, one that
// launches a fresh VM because its program changes the launch, to a bounded share of its effort.
import type { Execution } from './executor.js';

/**
 * Fixed charges, calibrated with `npm run bench:fuzz -- --speed` (2026-12-01, kernel stage, 4 KiB
 * workload): an honest execution from the snapshot (43K TDX / 31K SNP instructions) took 2.4–3.5 ms
 * of CPU and a fresh launch to the kernel stage (~580K instructions) 37–48 ms, ~15 executions' worth.
 * 100K per execution and 1.5M per launch keep that ratio.
 */
export const EXECUTION_OVERHEAD = 100_000n;
export const LAUNCH_OVERHEAD = 1_500_000n;

/**
 * The largest share of the campaign's cost that fresh launches may take before the campaign
 * stops creating new launch parts and picks parents that start from a snapshot (AFL++ gives a slow
 * input a fraction of a fast one's energy the same way). One launch in ~45 executions at 1/4.
 */
export const MAX_LAUNCH_COST_SHARE = { numerator: 1n, denominator: 4n };

/** The cost of one execution: what it ran, and the launch it paid for, if any. */
export function executionCost(e: Pick<Execution, 'instructions' | 'launchInstructions'>): { total: bigint; launch: bigint } {
  const launch = e.launchInstructions ? LAUNCH_OVERHEAD + e.launchInstructions : 0n;
  return { total: e.instructions + EXECUTION_OVERHEAD + launch, launch };
}

/** The running totals of a campaign's cost (shrinking included: it is work too). */
export class CostAccount {
  total = 0n;
  launch = 0n;
  launches = 0;

  add(e: Pick<Execution, 'instructions' | 'launchInstructions'>): void {
    const c = executionCost(e);
    this.total += c.total;
    this.launch += c.launch;
    if (c.launch > 0n) this.launches++;
  }

  /** Whether launches have taken more than their share: time to work from snapshots only. */
  overLaunchBudget(): boolean {
    return this.launch * MAX_LAUNCH_COST_SHARE.denominator > this.total * MAX_LAUNCH_COST_SHARE.numerator;
  }
}
