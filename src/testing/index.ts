// `minivisor/testing`: plain functions for a user's own test suite (vitest, node:test, jest…):
// boot your stub and assert on it in a few lines. Failures throw an Error whose message says
// what differed, so any runner shows it.
//
//   import { bootStub, assertCleanBoot } from 'minivisor/testing';
//   test('my firmware accepts memory correctly', () => {
//     for (const platform of ['tdx', 'snp'] as const) assertCleanBoot(bootStub({ platform, firmware: 'build/fw.elf' }));
//   });
import { bootGuest, type BootResult } from '../boot/boot-guest.js';
import { verifyBoot, describeMismatch, type VerifyReport } from '../boot/verify.js';
import { parseBootOptions, type RawBootOptions } from '../cli/boot-options.js';

/** Boot options as the CLI spells them (sizes as "512M", seed as a string or number). */
export interface StubOptions extends Omit<RawBootOptions, 'json' | 'seed' | 'maxInstructions'> {
  seed?: string | number | bigint;
  maxInstructions?: string | number | bigint;
}

export interface StubRun {
  result: BootResult;
  /** The guest's acceptance record against the hardware's page states. */
  verify: VerifyReport;
}

/** Boots with `minivisor boot`'s defaults and flags (firmware, platform, memory, …) and verifies the result. */
export function bootStub(options: StubOptions = {}): StubRun {
  const { seed, maxInstructions, ...rest } = options;
  const config = parseBootOptions({
    ...rest,
    ...(seed !== undefined ? { seed: seed.toString() } : {}),
    ...(maxInstructions !== undefined ? { maxInstructions: maxInstructions.toString() } : {}),
  });
  const run = bootGuest(config);
  try {
    return { result: run.result, verify: verifyBoot(run) };
  } finally {
    run.platform.machine.close();
  }
}

/** Throws unless the guest reported done and its acceptance record matches the hardware. */
export function assertCleanBoot(run: StubRun): void {
  const problems: string[] = [];
  if (run.result.outcome !== 'done') problems.push(`outcome ${run.result.outcome}: ${run.result.outcomeReason}`);
  if (run.verify.noRecord) problems.push(run.verify.noRecord);
  for (const m of run.verify.mismatches) problems.push(`verify: ${describeMismatch(m)}`);
  if (problems.length) {
    throw new Error(`${run.result.platform.toUpperCase()} boot is not clean:\n  ${problems.join('\n  ')}`);
  }
}
