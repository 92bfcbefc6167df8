// How a guest run ended, as `minivisor boot --json` reports it.
export type OutcomeKind =
  /** The guest reported a clean finish. */
  | 'done'
  /** The guest itself gave up (panic, ReportFatalError, GHCB termination request). */
  | 'guest-fatal'
  /** The hardware model stopped the guest (e.g. triple fault, unusable IDT, #VE disabled access). */
  | 'terminated'
  /** The VMM hit a condition it cannot handle (unsupported exit, its own invariant). */
  | 'vmm-error'
  /** An access or exception the guest could not survive, reported by the emulator. */
  | 'fault'
  /** The instruction budget ran out. */
  | 'budget'
  /** A Linux boot reached the decompressed kernel's entry (the host's execution watch, src/boot/linux/). */
  | 'handover';

/** Every OutcomeKind, for input that names one (a scenario's expect.outcome); a Record, so a new kind cannot be left out. */
const OUTCOME_KIND_SET: Record<OutcomeKind, true> = { 'done': true, 'guest-fatal': true, 'terminated': true, 'vmm-error': true, 'fault': true, 'budget': true, 'handover': true };
export const OUTCOME_KINDS = Object.keys(OUTCOME_KIND_SET) as readonly OutcomeKind[];

export interface RunOutcome {
  outcome: OutcomeKind;
  reason: string;
}
