// The architectural effects the CPU model gives RDTSC, RDTSCP, RDRAND and RDSEED once the native side
// has stopped at them (src/cpu/virtual-tsc.ts, hardware-random.ts), register by register and flag by
// flag. The guest tests (test/guest/rdrand-rdtsc.test.ts) join EDX:EAX with SHL/OR, which cannot see
// an EAX that kept the counter's upper bits, and read only CF and ZF.
import { describe, expect, it } from 'vitest';
import { HardwareRandom, executeRandomInstruction } from '../../src/cpu/hardware-random.js';
import type { RandomExit } from '../../src/cpu/exits.js';
import { GPRS, type Gpr } from '../../src/cpu/registers.js';
import { TSC_STEP_PER_READ, VirtualTsc, executeRdtsc } from '../../src/cpu/virtual-tsc.js';

const ONES = (1n << 64n) - 1n;
const allOnes = (): Record<Gpr, bigint> => Object.fromEntries(GPRS.map((r) => [r, ONES])) as Record<Gpr, bigint>;

describe('RDTSC and RDTSCP (SDM Vol. 2B "RDTSC", "RDTSCP")', () => {
  /** A counter whose next read is `value`. */
  const counterAt = (value: bigint): VirtualTsc => {
    const tsc = new VirtualTsc();
    tsc.loadState(value - TSC_STEP_PER_READ);
    return tsc;
  };

  it('EDX:EAX <- TSC: EAX the low 32 bits, EDX the high 32, the upper halves of RAX and RDX cleared; RCX untouched; RIP past it', () => {
    const regs = allOnes();
    expect(executeRdtsc(regs, { rip: 0x1000n, length: 2 }, counterAt(0x12_3456_789an))).toBe(0x12_3456_789an);
    expect([regs.rax, regs.rdx, regs.rcx, regs.rip]).toEqual([0x3456_789an, 0x12n, ONES, 0x1002n]);
  });

  it('RDTSCP also loads ECX with IA32_TSC_AUX[31:0], the upper half of RCX cleared', () => {
    const regs = allOnes();
    executeRdtsc(regs, { rip: 0x1000n, length: 3, aux: true }, counterAt(0xab_0000_0001n), () => 0xffff_ffff_1234_5678n);
    expect([regs.rax, regs.rdx, regs.rcx, regs.rip]).toEqual([1n, 0xabn, 0x1234_5678n, 0x1003n]);
  });
});

describe('the counter\'s start (SDM Vol. 3B "Time-Stamp Counter": it "will not wraparound within 10 years after being reset")', () => {
  it('starts low enough for 10 years of a 5 GHz counter to fit below 2^64, whatever the seed', () => {
    const tenYearsAt5GHz = 10n * 365n * 86_400n * 5_000_000_000n + 2n * 86_400n * 5_000_000_000n;  // leap days too
    const seeds = [...Array.from({ length: 256 }, (_, i) => BigInt(i)), (1n << 64n) - 1n, 0x9e3779b97f4a7c15n];
    for (const seed of seeds) {
      const tsc = new VirtualTsc();
      tsc.seed(seed);
      expect(tsc.read() + tenYearsAt5GHz, `seed ${seed}`).toBeLessThan(1n << 64n);
    }
  });
});

describe('RDRAND and RDSEED (SDM Vol. 2B "RDRAND", "RDSEED": CF = 1; OF, SF, ZF, AF, PF = 0)', () => {
  // RFLAGS bits (SDM Vol. 1 §3.4.3): CF 0, PF 2, AF 4, ZF 6, SF 7, DF 10, OF 11; bit 1 always 1.
  const STATUS_CLEARED = (1n << 2n) | (1n << 4n) | (1n << 6n) | (1n << 7n) | (1n << 11n);
  const exit = (bits: 16 | 32 | 64): RandomExit => ({ kind: 'random', rip: 0x2000n, length: 4, instruction: 'rdrand', register: 'rbx', bits });

  it('clears each of OF, SF, ZF, AF and PF and sets CF, leaving the other flags (DF, IF, bit 1) as they were', () => {
    const regs = allOnes();
    regs.rflags = 0x2n | STATUS_CLEARED | (1n << 9n) | (1n << 10n);  // all five set, CF clear, IF and DF set
    executeRandomInstruction(regs, exit(64), seeded());
    expect(regs.rflags).toBe(0x2n | 0x1n | (1n << 9n) | (1n << 10n));
  });

  function seeded(): HardwareRandom {
    const random = new HardwareRandom();
    random.seed(7n);
    return random;
  }
});
