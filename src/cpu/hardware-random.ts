// RDRAND and RDSEED. Unicorn would execute them from the host's random source, which no run can
// repeat; the native side stops at them instead (native/src/trapped_insn.cc, exit `random`) and
// the model's CPU answers from a generator seeded by the run's seed, so a run stays a function
// of its config and seed. Linux's decompressor executes RDRAND under SEV (sev_verify_cbit) and
// for KASLR (kaslr_get_random_long).
//
// Semantics (Intel SDM Vol. 2B "RDRAND"/"RDSEED"; AMD APM Vol. 3): the destination gets a random
// value of the operand size (a 32-bit destination zero-extends into the 64-bit register, a 16-bit
// one keeps the upper bits, SDM Vol. 1 §3.4.1.1); on success CF = 1 and OF, SF, ZF, AF, PF = 0.
import { Prng } from '../shared/prng.js';
import type { Snapshottable } from '../shared/snapshottable.js';
import type { RandomExit } from './exits.js';
import { RFLAGS, type Gpr } from './registers.js';

/**
 * The CPU's random number generator: the project's seeded SplitMix64 (src/shared/prng.ts), started
 * from the run's seed. Not cryptographic, and it need not be: the model's guests need values that
 * differ and that repeat with the seed.
 */
export class HardwareRandom implements Snapshottable<bigint> {
  #prng = new Prng(0n);

  seed(seed: bigint): void {
    this.#prng = new Prng(seed ^ 0x6d696e6976697372n); // "minivisr": seed 0 is not state 0
  }

  next(): bigint {
    return this.#prng.next64();
  }

  saveState(): bigint {
    return this.#prng.saveState();
  }

  loadState(state: bigint): void {
    this.#prng.loadState(state);
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
