// What one boot is: the platform, memory, acceptance policy, workload and seed. The CLI parses
// flags into it (src/cli/boot-options.ts); the boot and the fuzzer take it as their input.
import type { StubVariant } from './images.js';

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
  traceFile?: string;
  json: boolean;
  firmwareFile?: string;
  /**
   * Default true: count guest instructions (the budget above needs it). false is fast mode (no
   * budget, only a wall-clock hang guard); benchmarks compare the two, which trace alike.
   */
  countInstructions?: boolean;
  /** A planted-bug variant of the stubs (guest/DEFENCES.md) instead of the honest ones. */
  variant?: StubVariant;
}
