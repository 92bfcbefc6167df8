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
import { asFlags, type OptionKind, type TestingOptions } from './flags.js';

export { fuzzStub, assertNoFindings, type FuzzStubOptions, type StubFuzzRun, type StubFinding } from './fuzz-stub.js';

/**
 * What each option takes, keyed by every flag but --json (the compiler checks the table is
 * complete): text, a count or size (also a number or bigint; a size then in bytes), or a switch.
 */
const OPTION_KINDS = {
  platform: 'text', memory: 'numeric', preAccept: 'numeric', accept: 'text', unit: 'numeric', workload: 'numeric',
  seed: 'numeric', maxInstructions: 'numeric', trace: 'text', firmware: 'text', decompressor: 'text', kernel: 'text',
  verify: 'switch', variant: 'text', vcpus: 'numeric', schedule: 'text', quantum: 'numeric', handover: 'text',
  linux: 'text', cmdline: 'text', fast: 'switch', tracking: 'text',
} as const satisfies Record<Exclude<keyof RawBootOptions, 'json'>, OptionKind>;

/** Boot options as the CLI spells them (sizes as "512M" or a number of bytes, counts as a string or number). */
export type StubOptions = TestingOptions<RawBootOptions, typeof OPTION_KINDS>;

export interface StubRun {
  result: BootResult;
  /** The guest's acceptance record against the hardware's page states. */
  verify: VerifyReport;
}

/** Boots with `minivisor boot`'s defaults and flags (firmware, platform, memory, …) and verifies the result. */
export function bootStub(options: StubOptions = {}): StubRun {
  const config = parseBootOptions(asFlags(options, OPTION_KINDS, 'bootStub') as RawBootOptions);
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
