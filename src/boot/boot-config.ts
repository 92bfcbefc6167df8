// What one boot is: the platform, memory, acceptance policy, workload and seed. A library type
// (exported from src/index.ts): the CLI parses flags into it (src/cli/boot-options.ts), scenario
// files and the fuzzer build it; it carries no CLI-only fields (--json stays in the CLI).
import { isAcceptanceTracking, isStubVariant, type AcceptanceTracking, type StubVariant } from './images.js';
import { MAX_VCPUS } from '../cpu/machine.js';
import { SCHEDULE_POLICIES, type SchedulePolicy } from '../cpu/vcpu-scheduler.js';
import { MASK64 } from '../shared/u64.js';

export type PlatformName = 'tdx' | 'snp';

export interface BootConfig {
  platform: PlatformName;
  memoryBytes: bigint;
  /** Bytes the firmware accepts before handing over; 'all' is approach I (accept everything). */
  preAccept: bigint | 'all';
  accept: 'lazy' | 'eager';
  unitBytes: bigint;
  workloadBytes: bigint;
  seed: bigint;
  maxInstructions: bigint;
  /** Write the structured trace to this file as JSON lines (atomically, on success). */
  traceFile?: string;
  /** Replace one stage each, keeping ours for the others (boot_abi.h, "Handovers"). */
  firmwareFile?: string;
  decompressorFile?: string;
  kernelFile?: string;
  /**
   * Default true: count guest instructions (the budget above needs it). false is fast mode (no
   * budget, only a wall-clock hang guard); benchmarks compare the two, which trace alike.
   */
  countInstructions?: boolean;
  /** A planted-bug variant of the stubs (guest/DEFENCES.md) instead of the honest ones. */
  variant?: StubVariant;
  /** vCPUs (default 1, TDX only so far): all start at the reset vector, the APs park in the firmware. */
  vcpus?: number;
  /** With several vCPUs: how their turns are chosen (seeded by `seed`) and the longest turn in instructions. */
  schedule?: { policy: SchedulePolicy; quantum: number };
  /**
   * After its workload the kernel hands over to a second kernel (guest/kernel/handover.h):
   * `kexec` loads one and jumps to it with the acceptance table; `crash` panics mid-workload into
   * a crash kernel loaded at boot, which dumps the accepted memory. Boots the handover build of
   * the kernel; without it the kernel is the default one, byte for byte.
   */
  handover?: Handover;
  /**
   * Boot a Linux bzImage through the 64-bit boot protocol instead of the guest image: the
   * firmware pre-accepts, then enters the kernel's startup_64 (src/boot/linux/).
   */
  linux?: LinuxBootConfig;
  /** How the guest records what it accepted; absent = 'bitmap' (the default build). */
  tracking?: AcceptanceTracking;
}

export interface LinuxBootConfig {
  kernelFile: string;
  cmdline: string;
}

export const HANDOVERS = ['kexec', 'crash'] as const;
export type Handover = (typeof HANDOVERS)[number];

/** Guest RAM a boot takes, and its largest instruction budget (the CLI's --memory and --max-instructions too). */
export const MIN_MEMORY = 128n << 20n;
export const MAX_MEMORY = 64n << 40n;
export const MAX_INSTRUCTION_BUDGET = 1n << 62n;

/** Every field of a BootConfig; a Record, so the compiler keeps it complete. */
const BOOT_CONFIG_FIELDS: Record<keyof BootConfig, true> = {
  platform: true, memoryBytes: true, preAccept: true, accept: true, unitBytes: true, workloadBytes: true, seed: true, maxInstructions: true,
  traceFile: true, firmwareFile: true, decompressorFile: true, kernelFile: true, countInstructions: true, variant: true, vcpus: true,
  schedule: true, handover: true, linux: true, tracking: true,
};

export class BootConfigError extends Error {
  override name = 'BootConfigError';
}

/**
 * Throws a BootConfigError naming the first field of `config` that no boot can take: a library
 * caller (a test kit, a script in plain JavaScript) gets the CLI's guarantees without its parser,
 * instead of a TypeError from deep inside the run or, worse, a boot of something else (an unknown
 * platform or acceptance mode used to boot as SNP or as lazy). The CLI's flags always pass it.
 */
export function checkBootConfig(config: BootConfig): void {
  const c = config as unknown as Record<string, unknown>;
  const fail = (field: string, rule: string): never => {
    const got = c[field];
    // NaN and Infinity are numbers JSON.stringify writes as null.
    throw new BootConfigError(`BootConfig.${field} must be ${rule}, got ${typeof got === 'bigint' ? `${got}n` : typeof got === 'number' ? String(got) : JSON.stringify(got) ?? String(got)}`);
  };
  const pageMultiple = (v: unknown): v is bigint => typeof v === 'bigint' && v >= 0n && v % 4096n === 0n;
  if (typeof config !== 'object' || config === null) throw new BootConfigError('a BootConfig must be an object');
  // A JavaScript caller's typo of an optional field (firmware for firmwareFile, vcpu) was ignored:
  // the boot ran with our firmware, one vCPU.
  const unknown = Object.keys(config).filter((k) => !Object.hasOwn(BOOT_CONFIG_FIELDS, k));
  if (unknown.length > 0) throw new BootConfigError(`BootConfig has no field ${unknown.map((k) => JSON.stringify(k)).join(', ')} (its fields: ${Object.keys(BOOT_CONFIG_FIELDS).join(', ')})`);
  if (config.platform !== 'tdx' && config.platform !== 'snp') fail('platform', '"tdx" or "snp"');
  const memory = config.memoryBytes;
  if (!pageMultiple(memory) || memory < MIN_MEMORY || memory > MAX_MEMORY) fail('memoryBytes', `a bigint multiple of 4096 from ${MIN_MEMORY} (128 MiB) to ${MAX_MEMORY} (64 TiB)`);
  if (config.preAccept !== 'all' && (!pageMultiple(config.preAccept) || config.preAccept > memory)) fail('preAccept', '"all" or a bigint multiple of 4096 no larger than memoryBytes');
  if (config.accept !== 'lazy' && config.accept !== 'eager') fail('accept', '"lazy" or "eager"');
  if (config.unitBytes !== 4096n && config.unitBytes !== 2n << 20n) fail('unitBytes', '4096n or 2097152n (4K or 2M)');
  if (!pageMultiple(config.workloadBytes) || config.workloadBytes > memory / 2n) fail('workloadBytes', 'a bigint multiple of 4096 no larger than half of memoryBytes');
  if (typeof config.seed !== 'bigint' || config.seed < 0n || config.seed > MASK64) fail('seed', 'a bigint from 0 to 2^64 - 1');
  // Fast mode counts nothing, so it has no budget to keep and takes any (the CLI's --fast, none).
  const budget = config.maxInstructions, least = config.countInstructions === false ? 0n : 1n;
  if (typeof budget !== 'bigint' || budget < least || budget > MAX_INSTRUCTION_BUDGET) fail('maxInstructions', `a bigint from ${least} to 2^62`);
  for (const file of ['traceFile', 'firmwareFile', 'decompressorFile', 'kernelFile'] as const) {
    if (config[file] !== undefined && (typeof config[file] !== 'string' || config[file] === '')) fail(file, 'a file path');
  }
  if (config.countInstructions !== undefined && typeof config.countInstructions !== 'boolean') fail('countInstructions', 'a boolean');
  if (config.variant !== undefined && (typeof config.variant !== 'string' || !isStubVariant(config.variant))) fail('variant', 'a stub variant (guest/DEFENCES.md)');
  const vcpus = config.vcpus;
  if (vcpus !== undefined && (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS)) fail('vcpus', `an integer from 1 to ${MAX_VCPUS}`);
  const schedule = config.schedule;
  if (schedule !== undefined && (typeof schedule !== 'object' || schedule === null || !SCHEDULE_POLICIES.includes(schedule.policy)
    || !Number.isInteger(schedule.quantum) || schedule.quantum < 1 || schedule.quantum > 2 ** 32)) {
    fail('schedule', `{ policy: ${SCHEDULE_POLICIES.map((p) => `"${p}"`).join(' | ')}, quantum: an integer from 1 to 2^32 }`);
  }
  if (config.handover !== undefined && !HANDOVERS.includes(config.handover)) fail('handover', HANDOVERS.map((h) => `"${h}"`).join(' or '));
  const linux = config.linux;
  if (linux !== undefined && (typeof linux !== 'object' || linux === null || typeof linux.kernelFile !== 'string' || linux.kernelFile === '' || typeof linux.cmdline !== 'string')) {
    fail('linux', '{ kernelFile: a file path, cmdline: a string }');
  }
  if (config.tracking !== undefined && (typeof config.tracking !== 'string' || !isAcceptanceTracking(config.tracking))) fail('tracking', '"bitmap" or "memmap"');
}
