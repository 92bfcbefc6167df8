// What one boot is: the platform, memory, acceptance policy, workload and seed. A library type
// (exported from src/index.ts): the CLI parses flags into it (src/cli/boot-options.ts), scenario
// files and the fuzzer build it; it carries no CLI-only fields (--json stays in the CLI).
import type { AcceptanceTracking, StubVariant } from './images.js';
import type { SchedulePolicy } from '../cpu/vcpu-scheduler.js';

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
