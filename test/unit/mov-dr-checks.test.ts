// The checks a CPU makes on MOV to or from a debug register before any intercept (src/cpu/mov-dr.ts).
// Intel SDM Vol. 2B "MOV—Move to/from Debug Registers", Protected Mode Exceptions: #GP(0) "If the
// current privilege level is not 0"; #UD "If CR4.DE[bit 3] = 1 (debug extensions) and a MOV
// instruction is executed involving DR4 or DR5". With CR4.DE clear, DR4 and DR5 alias DR6 and DR7
// (SDM Vol. 3A §2.5, CR4.DE). The guest tests (test/guest/mov-dr.test.ts) reach these checks only at
// CPL 0 and 3 and only with DR7, which is all an SNP guest intercepts.
import { describe, expect, it } from 'vitest';
import type { MovDrExit } from '../../src/cpu/exits.js';
import { movDrFault } from '../../src/cpu/mov-dr.js';
import type { Vcpu } from '../../src/cpu/vcpu.js';

/** CR4 bit 3, DE (SDM Vol. 3A §2.5). */
const CR4_DE = 0x8n;

/** A vCPU stand-in: movDrFault reads only the CPL and CR4. */
const vcpuAt = (cpl: number, cr4: bigint): Vcpu => ({ cpl: () => cpl, readSpecial: () => cr4 }) as unknown as Vcpu;
const movDr = (dr: number, write = false): MovDrExit => ({ kind: 'mov-dr', rip: 0x1000n, length: 3, write, dr, register: 'rax' });

describe('MOV DR: the CPU\'s checks before any intercept', () => {
  it('#GP(0) at every CPL above 0, 1 and 2 as well as 3, for reads and writes', () => {
    for (const cpl of [1, 2, 3]) {
      for (const write of [false, true]) expect(movDrFault(vcpuAt(cpl, 0n), movDr(7, write)), `CPL ${cpl}`).toBe('gp');
    }
    expect(movDrFault(vcpuAt(0, 0n), movDr(7))).toBeUndefined();
  });

  it('DR4 and DR5 with CR4.DE set: #UD; with it clear they are DR6 and DR7 and raise nothing; the other registers never #UD', () => {
    for (const dr of [4, 5]) {
      expect(movDrFault(vcpuAt(0, CR4_DE), movDr(dr)), `DR${dr}`).toBe('ud');
      expect(movDrFault(vcpuAt(0, CR4_DE), movDr(dr, true)), `DR${dr} write`).toBe('ud');
      expect(movDrFault(vcpuAt(0, 0n), movDr(dr)), `DR${dr} without CR4.DE`).toBeUndefined();
      // Another CR4 bit is not DE: bit 2 (TSD) and bit 4 (PSE) leave the aliases alone.
      expect(movDrFault(vcpuAt(0, 0x4n | 0x10n), movDr(dr))).toBeUndefined();
    }
    for (const dr of [0, 1, 2, 3, 6, 7]) expect(movDrFault(vcpuAt(0, CR4_DE), movDr(dr)), `DR${dr}`).toBeUndefined();
  });
});
