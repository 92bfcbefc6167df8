// The time-stamp counter RDTSC reads. Unicorn would read the host's clock; the native side stops
// at RDTSC instead (exit `rdtsc`) and the model's CPU answers from this counter: it starts at a
// value taken from the run's seed and advances by a fixed step per read, so it is monotonic, as
// the architecture promises (SDM Vol. 3B §18.17), and repeats with the seed. It does not follow
// the instruction count, so a fast run (no count) and a counting run read the same values.
// RDTSC: EDX:EAX = the counter, the upper halves of RAX and RDX cleared (SDM Vol. 2B "RDTSC").
import type { Snapshottable } from '../shared/snapshottable.js';
import type { Gpr } from './registers.js';

/** How far the counter moves per read: 50 µs of a 2 GHz TSC. */
export const TSC_STEP_PER_READ = 100_000n;

export class VirtualTsc implements Snapshottable<bigint> {
  #value = 0n;

  /** Starts the counter at a value from the seed (below 2^40: about 9 minutes of a 2 GHz TSC). */
  seed(seed: bigint): void {
    this.#value = BigInt.asUintN(40, seed * 0x9e3779b97f4a7c15n);
  }

  read(): bigint {
    this.#value = BigInt.asUintN(64, this.#value + TSC_STEP_PER_READ);
    return this.#value;
  }

  saveState(): bigint {
    return this.#value;
  }

  loadState(state: bigint): void {
    this.#value = state;
  }
}

/**
 * RDTSC's architectural effect; RIP past it. RDTSCP (`exit.aux`) reads the same counter and also
 * loads ECX with IA32_TSC_AUX[31:0], the upper half of RCX cleared (SDM Vol. 2B "RDTSCP"): Unicorn
 * would read the host's TSC for it too. `tscAux` reads the MSR, which the CPU keeps.
 */
export function executeRdtsc(regs: Record<Gpr, bigint>, exit: { rip: bigint; length: number; aux?: boolean }, tsc: VirtualTsc, tscAux: () => bigint = () => 0n): bigint {
  const value = tsc.read();
  regs.rax = value & 0xffffffffn;
  regs.rdx = value >> 32n;
  if (exit.aux) regs.rcx = tscAux() & 0xffffffffn;
  regs.rip = exit.rip + BigInt(exit.length);
  return value;
}
