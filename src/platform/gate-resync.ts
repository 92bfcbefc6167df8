// Both platforms keep the page gate (native/src, the emulator's fast check of each access) as a
// cache of what their own tables allow: the SEPT on TDX, the RMP checks on SNP. A gate fault whose
// access the tables allow is a stale gate: the platform resynchronises it and the vCPU retries.
// If the very next exit is the same fault, the resynchronisation did not open the gate: the two
// disagree, which only a bug of ours can cause. Nothing changed in between, so the retry would
// repeat until the instruction budget ends; the platform reports it at once instead, as a
// hardware-model error (the fuzzer's oracle counts it as a minivisor bug).
import type { GateFaultExit } from '../cpu/exits.js';

/** A gate fault the platform answered by resynchronising the gate: its vCPU, RIP and access. */
export interface ResyncedFault { vcpu: number; rip: bigint; gpa: bigint; access: GateFaultExit['access']; space: GateFaultExit['space'] }

/** The fault `exit` on `vcpu` as a ResyncedFault (its own fields: the exit may be reused). */
export function resyncedFault(vcpu: number, exit: GateFaultExit): ResyncedFault {
  return { vcpu, rip: exit.rip, gpa: exit.gpa, access: exit.access, space: exit.space };
}

/** Whether `exit` on `vcpu` is `last` again: the same access of the same page at the same RIP. */
export function sameFault(last: ResyncedFault | undefined, vcpu: number, exit: GateFaultExit): boolean {
  return last !== undefined && last.vcpu === vcpu && last.rip === exit.rip && last.gpa === exit.gpa
    && last.access === exit.access && last.space === exit.space;
}

/** The error for a gate that the resynchronisation with `tables` did not open. */
export function gateDisagreement(exit: GateFaultExit, tables: string): string {
  return `hardware model: the page gate still refuses the ${exit.space} ${exit.access} of 0x${exit.gpa.toString(16)} at RIP 0x${exit.rip.toString(16)} after its resynchronisation with ${tables}, which allow it`;
}
