// The one interface both confidential-computing platforms implement: TDX (TdxPlatform: the TDX
// module around the vCPU) and SEV-SNP (SnpPlatform: the AMD CPU and security processor). Everything
// above the hardware (the run loop, boot, the fuzzer, page-state checks) is written against it.
//
// Trust boundary: a Platform is trusted hardware. The untrusted VMM never sees the Platform; it
// gets only `handle` (TdxVmmHandle / SnpVmmHandle), whose methods are what a real hypervisor can
// do. Neither handle has a method that writes private guest memory.
import type { Machine } from '../cpu/machine.js';
import type { RunOutcome } from '../shared/outcome.js';
import type { Trace } from '../shared/trace.js';
import type { Snapshottable } from '../shared/snapshottable.js';

export type PlatformKind = 'tdx' | 'snp';

/** Result of running the vCPU: an exit the VMM must handle, or the end of the run. */
export type PlatformStep<Exit> = { kind: 'exit'; exit: Exit } | { kind: 'outcome'; outcome: RunOutcome };

/**
 * What the hardware knows about one 4 KiB guest page, in terms both platforms share.
 * TDX: from the Secure EPT leaf covering it. SNP: from the RMP entry covering it.
 */
export interface PageState {
  /** The 4 KiB page asked about. */
  gpa: bigint;
  /** private: the hardware holds the page for the guest (SEPT leaf present / RMP assigned to its ASID). */
  visibility: 'private' | 'shared';
  /** The guest may use it privately now: SEPT leaf MAPPED / RMP assigned and Validated. */
  accepted: boolean;
  /** Private but waiting for the guest's TDG.MEM.PAGE.ACCEPT / PVALIDATE: SEPT PENDING / RMP assigned, not Validated. */
  pending: boolean;
  /** Size of the SEPT leaf / RMP entry that governs the page. */
  pageSize: '4k' | '2m' | '1g';
  /** The platform's own name for the state: a SEPT state (MAPPED, PENDING_BLOCKED, …) or an RMP owner/validated pair. */
  raw: string;
}

/** Bytes mapped by a leaf of each PageState.pageSize. */
export const PAGE_SIZE_BYTES: Readonly<Record<PageState['pageSize'], bigint>> = { '4k': 0x1000n, '2m': 0x200000n, '1g': 0x40000000n };

/** The end of the `state.pageSize` leaf that governs `state.gpa`: every page before it is in the same state. */
export function governingLeafEnd(state: Pick<PageState, 'gpa' | 'pageSize'>): bigint {
  const leaf = PAGE_SIZE_BYTES[state.pageSize];
  return (state.gpa / leaf + 1n) * leaf;
}

/**
 * `State` is the whole hardware side of a VM: the machine (CPU, RAM, page gate) and the model
 * (SEPT/RMP, module or firmware state, measurement), saved and restored together.
 */
export interface Platform<Exit, Handle, State = unknown> extends Snapshottable<State> {
  readonly kind: PlatformKind;
  readonly machine: Machine;
  readonly trace: Trace;
  /** What the untrusted VMM may use; the only object a VMM policy is given. */
  readonly handle: Handle;
  /**
   * Runs the vCPU until an exit the VMM must handle (TD exit / #VMEXIT), or until the run ends
   * (guest shutdown, budget, fault). Everything the trusted side handles itself (TDCALLs,
   * PVALIDATE, #VE/#VC delivery) happens inside. Never throws for anything the guest controls.
   */
  step(): PlatformStep<Exit>;
  /** The hardware's view of the 4 KiB page containing `gpa` (ground truth for oracles and checks). */
  pageState(gpa: bigint): PageState;
}
