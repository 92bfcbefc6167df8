// Builds a TD (TDX platform + honest-or-not VMM) and runs it through the shared run loop.
import { TdxPlatform, type TdxPlatformOptions } from '../../platform/tdx/tdx-platform.js';
import { Console } from '../console.js';
import type { RunOutcome } from '../../shared/outcome.js';
import type { Trace } from '../../shared/trace.js';
import type { SnapshotParts } from '../../shared/snapshottable.js';
import { Vm, runToEnd } from '../run-vm.js';
import type { TdExit } from '../../platform/tdx/td-module.js';
import { flatGuestRam, type GuestRamRange } from '../guest-ram.js';
import { TdxVmm, honestTdxPolicy, type TdxVmmPolicy } from './honest-vmm.js';

export interface TdOptions extends TdxPlatformOptions {
  /** Where the guest has RAM. Default: all of memoryBytes. */
  ram?: readonly GuestRamRange[];
  console?: Console;
  policy?: TdxVmmPolicy;
  /** State above the VMM that whole-VM snapshots must also cover. */
  extraState?: SnapshotParts;
}

/** A TD: the trusted platform (test harnesses may reach into it) and the VMM that drives it. */
export interface Td {
  platform: TdxPlatform;
  vmm: TdxVmm;
  trace: Trace;
  console: Console;
  /** The run loop over all of the above, with whole-VM snapshots. */
  vm: Vm<TdExit>;
}

export function createTd(options: TdOptions): Td {
  const platform = TdxPlatform.create(options);
  const console = options.console ?? new Console();
  const handle = platform.handle;
  const vmm = new TdxVmm({ host: handle, console, trace: platform.trace, gpaWidth: handle.gpaWidth, memoryBytes: handle.memoryBytes, ram: options.ram ?? flatGuestRam(handle.memoryBytes) }, options.policy ?? honestTdxPolicy);
  return { platform, vmm, trace: platform.trace, console, vm: new Vm({ platform, vmm, trace: platform.trace, console }, options.extraState) };
}

export interface RunTdOptions {
  /** Stop (vmm-error) after this many TD exits in a row at the same RIP and GPA. Default 64. */
  maxStalledExits?: number;
}

export function runTd(td: Td, options: RunTdOptions = {}): RunOutcome {
  return runToEnd(td.vm, { maxRepeats: options.maxStalledExits ?? 64 });
}
