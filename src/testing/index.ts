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
import { BootOptionError, parseBootOptions, type RawBootOptions } from '../cli/boot-options.js';

/**
 * What each option takes, keyed by every flag but --json (the compiler checks the table is
 * complete): text, a count or size (also a number or bigint; a size then in bytes), or a switch.
 */
const OPTION_KINDS = {
  platform: 'text', memory: 'numeric', preAccept: 'numeric', accept: 'text', unit: 'numeric', workload: 'numeric',
  seed: 'numeric', maxInstructions: 'numeric', trace: 'text', firmware: 'text', decompressor: 'text', kernel: 'text',
  verify: 'switch', variant: 'text', vcpus: 'numeric', schedule: 'text', quantum: 'numeric', handover: 'text',
  linux: 'text', cmdline: 'text', fast: 'switch', tracking: 'text',
} as const satisfies Record<Exclude<keyof RawBootOptions, 'json'>, 'text' | 'numeric' | 'switch'>;
type Numeric = { [K in keyof typeof OPTION_KINDS]: (typeof OPTION_KINDS)[K] extends 'numeric' ? K : never }[keyof typeof OPTION_KINDS];

/** Boot options as the CLI spells them (sizes as "512M" or a number of bytes, counts as a string or number). */
export type StubOptions = Omit<RawBootOptions, 'json' | Numeric> & { [K in Numeric]?: string | number | bigint };

/**
 * The options as the CLI's flags: a JavaScript caller's typo or wrong type is a BootOptionError
 * that names it, not a TypeError from inside the parser or an option silently ignored.
 */
function asFlags(options: StubOptions): RawBootOptions {
  const raw: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(options) as Array<[string, unknown]>) {
    if (value === undefined) continue;
    const kind: string | undefined = Object.hasOwn(OPTION_KINDS, key) ? OPTION_KINDS[key as keyof typeof OPTION_KINDS] : undefined;
    if (kind === undefined) throw new BootOptionError(`bootStub has no option ${JSON.stringify(key)} (options: ${Object.keys(OPTION_KINDS).join(', ')})`);
    if (kind === 'switch') {
      if (typeof value !== 'boolean') throw new BootOptionError(`bootStub option ${key} must be true or false, got ${typeof value}`);
      raw[key] = value;
    } else if (kind === 'numeric' && ((typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'bigint')) {
      raw[key] = value.toString();
    } else {
      if (typeof value !== 'string') throw new BootOptionError(`bootStub option ${key} must be a string${kind === 'numeric' ? ' or an integer' : ''}, got ${typeof value}`);
      raw[key] = value;
    }
  }
  return raw as RawBootOptions;
}

export interface StubRun {
  result: BootResult;
  /** The guest's acceptance record against the hardware's page states. */
  verify: VerifyReport;
}

/** Boots with `minivisor boot`'s defaults and flags (firmware, platform, memory, …) and verifies the result. */
export function bootStub(options: StubOptions = {}): StubRun {
  const config = parseBootOptions(asFlags(options));
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
