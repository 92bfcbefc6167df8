// Both platforms keep the page gate (native/src, the emulator's fast check of each access) as a
// cache of what their own tables allow: the SEPT on TDX, the RMP checks on SNP. A gate fault whose
// access the tables allow is a stale gate: the platform resynchronises it and the vCPU retries.
// If the very next exit is the same fault, the resynchronisation did not open the gate: the two
// disagree, which only a bug of ours can cause. Nothing changed in between, so the retry would
// repeat until the instruction budget ends; the platform reports it at once instead, as a
// hardware-model error (the fuzzer's oracle counts it as a minivisor bug).
import type { GateFaultExit } from '../cpu/exits.js';

/** A refused access: where (RIP), what (access, space) and which GPA. A gate fault is one. */
export type RefusedAccess = Pick<GateFaultExit, 'rip' | 'gpa' | 'access' | 'space'>;

/** A refused access the platform answered by resynchronising the gate, and its vCPU. */
export interface ResyncedFault extends RefusedAccess { vcpu: number }

/** `refused` on `vcpu` as a ResyncedFault (its own fields: the exit may be reused). */
export function resyncedFault(vcpu: number, refused: RefusedAccess): ResyncedFault {
  return { vcpu, rip: refused.rip, gpa: refused.gpa, access: refused.access, space: refused.space };
}

/** Whether `refused` on `vcpu` is `last` again: the same access of the same page at the same RIP. */
export function sameFault(last: ResyncedFault | undefined, vcpu: number, refused: RefusedAccess): boolean {
  return last !== undefined && last.vcpu === vcpu && last.rip === refused.rip && last.gpa === refused.gpa
    && last.access === refused.access && last.space === refused.space;
}

/** The error for a gate that the resynchronisation with `tables` did not open. */
export function gateDisagreement(refused: RefusedAccess, tables: string): string {
  return `hardware model: the page gate still refuses the ${refused.space} ${refused.access} of 0x${refused.gpa.toString(16)} at RIP 0x${refused.rip.toString(16)} after its resynchronisation with ${tables}, which allow it`;
}
