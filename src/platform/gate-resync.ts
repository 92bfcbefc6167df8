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

/** A refused access the platform resynchronised the gate for, and its vCPU (its own fields: exits may be reused). */
interface ResyncedAccess extends RefusedAccess { vcpu: number }

/** Watches a platform's resynchronisations of its gate for one that did not take. */
export class GateResyncGuard {
  /** What the gate caches, for the error ("the SEPT", "the RMP checks"). */
  readonly #tables: string;
  /** What this exit resynchronised for, and what the exit before it did. */
  #current: ResyncedAccess | undefined;
  #previous: ResyncedAccess | undefined;

  constructor(tables: string) {
    this.#tables = tables;
  }

  /** At the start of each exit's handling: what the last one resynchronised becomes the previous. */
  nextExit(): void {
    this.#previous = this.#current;
    this.#current = undefined;
  }

  /**
   * Before the gate is resynchronised for `refused` on `vcpu`: throws the hardware-model error when
   * the exit before this one resynchronised for the very same access. `deferred`: the resync waits
   * for the end of a gate batch (no verdict on a repeat, which is then legitimate).
   */
  resyncing(vcpu: number, refused: RefusedAccess, deferred: boolean): void {
    const last = this.#previous;
    if (last !== undefined && last.vcpu === vcpu && last.rip === refused.rip && last.gpa === refused.gpa
      && last.access === refused.access && last.space === refused.space) {
      throw new Error(`hardware model: the page gate still refuses the ${refused.space} ${refused.access} of 0x${refused.gpa.toString(16)} at RIP 0x${refused.rip.toString(16)} after its resynchronisation with ${this.#tables}, which allow it`);
    }
    if (!deferred) this.#current = { vcpu, rip: refused.rip, gpa: refused.gpa, access: refused.access, space: refused.space };
  }

  /** A whole-VM restore: a fault before it is not the one after it. */
  reset(): void {
    this.#current = undefined;
    this.#previous = undefined;
  }
}
