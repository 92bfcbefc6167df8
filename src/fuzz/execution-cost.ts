// What executions cost the campaign, in a fixed model, so that where it spends its time is a pure
// function of the configuration and seed (never the wall clock): a fixed charge per execution
// (restore, oracle, trace), a small one per guest instruction, and a large fixed charge per fresh
// launch (VM setup, measurement, the run to the stage, its snapshot). Like AFL's power schedule,
// which weighs an input's energy by its execution time, the campaign uses it to keep the expensive
// kind of execution, one that launches a fresh VM because its program changes the launch and no
// snapshot of that launch is kept, to a bounded share of its effort.
import type { Execution } from './executor.js';

/**
 * Charges in microsecond-equivalents, calibrated from the CPU time of a kernel-stage campaign's
 * executions (4 KiB workload, both platforms, 2026-12-01): executions from a snapshot took
 * 1.6–4.2 ms whatever they ran (a guest spinning 5M instructions to the budget: 2.1–2.7 ms, as
 * counting mode runs a loop natively). A fresh launch to the kernel stage with its snapshot costs
 * about ten of them: `bench:fuzz --speed` on main at 22:19 UTC measured 3.7 ms per execution and
 * 37 ms (TDX) / 32 ms (SNP) per fresh launch, and the planted-bug target (1 MiB workload) 6 ms
 * and 54–76 ms. (It was charged 48,000, 24 executions, and campaigns spent 14% of their CPU time
 * on launches, not the quarter MAX_LAUNCH_COST_SHARE means to give them.)
 *
 * Checked again on 2026-12-02 (main at fd58567, where a launch reuses the machine and translated
 * code the last one closed): steady-state executions 500–1500 of seed-1 campaigns, CPU time,
 * loaded 2-core machine. 4 KiB workload: an execution 2.2–2.5 ms (TDX) / 2.8 ms (SNP), a launch
 * 19–24 ms (TDX) / 28–29 ms (SNP) more than the execution it starts, 9.2x / 10.3x; launches took
 * 26–27% / 28–29% of the CPU time (on 822f876, before the reuse: 32–33% / 29%). 1 MiB
 * workload: 10.1x / 9.2x, 27% / 26%. The charges give a launch ~9.9 executions (20,000 + ~60 for
 * its ~480K instructions on average, against 2,000 + 13–31 for an average execution's): within
 * the 10% these measurements scatter by, so they stand. Executions keep getting cheaper while a
 * launch's ~576K instructions to the kernel stage (mostly the decompressor's LZ4 and CRC-32 of the
 * kernel) do not: check again when the ratio moves (`bench:fuzz --speed` prints both ratios).
 *
 * It moved the same night (main at b555a49, executions that no longer keep or hash their trace):
 * an execution 1.5 ms (TDX) / 2.0 ms (SNP), a launch 10.7x / 10.1x beyond its execution (seed-1
 * campaign, executions 500–1500), 13.6x / 17.4x in `bench:fuzz --speed`'s steady state; launches
 * took 28–36% of the CPU time. Charging 25,000 would bring that back to about a quarter, but
 * e820-unchecked, whose finding needs a memory-description launch, then took 414 / 337 / 418 /
 * 152 / 48 executions with seeds 1–5 on TDX instead of 90 / 186 / 161 / 95 / 330 (SNP: 190 / 297
 * / 42 / 112 / 149 instead of 361 / 209 / 33 / 127 / 62), seed 1 past the 400 the planted-bug
 * campaigns allow. So 20,000 stays, knowingly a little under the measured cost: the share is a
 * means to find launch bugs, and a quarter is not a hard bound.
 *
 * Since the stubs' memset and memcpy move qwords (guest/lib/string.c), a launch to the kernel
 * stage runs ~402K instructions instead of ~576K, and in `bench:fuzz --speed`'s steady state costs
 * 13.7–17 ms against 16–20, 30–35% of the CPU time; the charges stand.
 *
 * Since the decompressor's CRC-32 and LZ4 copies take words (a5058d5) and the launch measures the
 * firmware config page last, so that the image's hash steps are kept (8c53563), a launch runs
 * ~290K instructions and costs 0.65–0.91× what it did (100 launches with changed memory
 * descriptions, alternating on a loaded machine). `bench:fuzz --speed` then put a launch at 12–18
 * executions beyond its own against the 10 charged, within what those loaded runs scatter by: the
 * charges stand.
 */
export const EXECUTION_OVERHEAD = 2_000n;
export const INSTRUCTIONS_PER_UNIT = 8_192n;
export const LAUNCH_OVERHEAD = 20_000n;

/**
 * The largest share of the campaign's cost that fresh launches may take before the campaign
 * stops creating new launch parts and picks parents that start from a snapshot. At 1/4, about
 * one launch in 30 executions once the budget binds.
 */
export const MAX_LAUNCH_COST_SHARE = { numerator: 1n, denominator: 4n };

/** The cost of one execution: what it ran, and the launch it paid for, if any. */
export function executionCost(e: Pick<Execution, 'instructions' | 'launchInstructions'>): { total: bigint; launch: bigint } {
  const launch = e.launchInstructions ? LAUNCH_OVERHEAD + e.launchInstructions / INSTRUCTIONS_PER_UNIT : 0n;
  return { total: EXECUTION_OVERHEAD + e.instructions / INSTRUCTIONS_PER_UNIT + launch, launch };
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
