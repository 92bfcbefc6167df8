// RDRAND and RDSEED. Unicorn would execute them from the host's random source, which no run can
// repeat; the native side stops at them instead (native/src/trapped_insn.cc, exit `random`) and
// the model's CPU answers from a generator seeded by the run's seed, so a run stays a function
// of its config and seed. Linux's decompressor executes RDRAND under SEV (sev_verify_cbit) and
// for KASLR (kaslr_get_random_long).
//
// Semantics (Intel SDM Vol. 2B "RDRAND"/"RDSEED"; AMD APM Vol. 3): the destination gets a random
// value of the operand size (a 32-bit destination zero-extends into the 64-bit register, a 16-bit
// one keeps the upper bits, SDM Vol. 1 §3.4.1.1); on success CF = 1 and OF, SF, ZF, AF, PF = 0.
import type { Snapshottable } from '../shared/snapshottable.js';
import type { RandomExit } from './exits.js';
import { RFLAGS, type Gpr } from './registers.js';

const MASK64 = (1n << 64n) - 1n;

/**
 * The CPU's random number generator: SplitMix64 (Steele, Lea, Flood 2014) over a 64-bit state
 * seeded from the run's seed. Not cryptographic, and it need not be: the model's guests need
 * values that differ and that repeat with the seed.
 */
export class HardwareRandom implements Snapshottable<bigint> {
  #state = 0n;

  seed(seed: bigint): void {
    this.#state = BigInt.asUintN(64, seed ^ 0x6d696e6976697372n); // "minivisr": seed 0 is not state 0
  }

  next(): bigint {
    this.#state = (this.#state + 0x9e3779b97f4a7c15n) & MASK64;
    let z = this.#state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  }

  saveState(): bigint {
    return this.#state;
  }

  loadState(state: bigint): void {
    this.#state = state;
  }
}

/** The architectural effect of RDRAND/RDSEED: the value in the destination, CF = 1, the other status flags 0, RIP past it. */
export function executeRandomInstruction(regs: Record<Gpr, bigint>, exit: RandomExit, random: HardwareRandom): bigint {
  const value = random.next() & ((1n << BigInt(exit.bits)) - 1n);
  const old = regs[exit.register];
  regs[exit.register] = exit.bits === 16 ? (old & ~0xffffn) | value : value;
  const cleared = RFLAGS.CF | RFLAGS.PF | RFLAGS.AF | RFLAGS.ZF | RFLAGS.SF | RFLAGS.OF;
  regs.rflags = (regs.rflags & ~cleared) | RFLAGS.CF;
  regs.rip = exit.rip + BigInt(exit.length);
  return value;
}
