// A guest parked in a pure spin loop (PAUSE/NOP and a JMP back, nothing else: the stubs' second-
// fatal parking) is not emulated round by round to the end of its budget: the code hook skips
// whole rounds (native/src/spin_loop.h). Nothing a run reports may change: it stops at exactly the
// instruction its limit names, at the RIP that instruction has in the loop, with the edge map that
// emulating every round gives.
import { describe, expect, it } from 'vitest';
import { CODE_BASE, simpleGuest } from '../helpers/guest-setup.js';

// Five instructions (10 bytes) before the loop, then `pause; pause; jmp` (2 bytes each).
const PARKED = `
    mov eax, 1
    xor ecx, ecx
    nop
    nop
    nop
  park:
    pause
    pause
    jmp park`;
const PREFIX_INSTRUCTIONS = 5n;
const LOOP = CODE_BASE + 10n;

function runTo(limit: bigint) {
  const vm = simpleGuest(PARKED);
  const edges = vm.enableEdgeCoverage();
  vm.vcpu.instructionLimit = limit;
  expect(vm.vcpu.run()).toMatchObject({ kind: 'budget', instructions: limit });
  const result = { instructions: vm.vcpu.instructions, rip: vm.vcpu.regs.rip, edges: [...edges] };
  vm.close();
  return result;
}

describe('pure spin loops (counting mode)', () => {
  it('stop at exactly their instruction limit, at the RIP of that instruction in the round', () => {
    for (const limit of [3_000_000n, 3_000_001n, 3_000_002n, 1_000n]) {
      const { instructions, rip } = runTo(limit);
      expect(instructions).toBe(limit);
      const inRound = (limit - PREFIX_INSTRUCTIONS) % 3n;
      expect(rip).toBe(LOOP + 2n * inRound);
    }
  });

  it('leave the edge map that emulating every round gives', () => {
    // 258 rounds: rounds are skipped only after 256 and only when more than two are left, so this
    // run emulates every one; by then every edge of the loop has saturated at 255, so emulating
    // more rounds would change no count.
    for (const residue of [0n, 1n, 2n]) {
      const emulated = runTo(PREFIX_INSTRUCTIONS + 3n * 258n + residue);
      expect(emulated.edges.filter((count) => count === 255).length).toBeGreaterThan(0);
      const skipped = runTo(PREFIX_INSTRUCTIONS + 3n * 1_000_000n + residue);
      expect(skipped.edges).toEqual(emulated.edges);
      expect(skipped.rip).toBe(emulated.rip);
    }
  });

  it('resume after a budget stop and stop again exactly at the next limit', () => {
    const vm = simpleGuest(PARKED);
    vm.vcpu.instructionLimit = 2_000_000n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'budget', instructions: 2_000_000n });
    vm.vcpu.instructionLimit = 4_000_001n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'budget', instructions: 4_000_001n });
    expect(vm.vcpu.regs.rip).toBe(LOOP + 2n * ((4_000_001n - PREFIX_INSTRUCTIONS) % 3n));
    vm.close();
  });

  it('are only loops that change nothing: a loop that counts runs every round', () => {
    const vm = simpleGuest(`
        xor eax, eax
      spin:
        pause
        inc rax
        jmp spin`);
    vm.vcpu.instructionLimit = 300_001n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'budget', instructions: 300_001n });
    expect(vm.vcpu.regs.rax).toBe(100_000n);  // xor, then 100,000 rounds of three
    vm.close();
  });

  it('stop at the budget (instructions plus charges) as well as at the instruction limit', () => {
    const vm = simpleGuest(PARKED);
    vm.vcpu.budgetLimit = 1_000_000n;
    const exit = vm.vcpu.run();
    expect(exit.kind).toBe('budget');
    // The run's own exit charge counts against the budget, not against the instructions.
    expect(vm.vcpu.instructions + vm.vcpu.budgetCharged).toBe(1_000_000n);
    vm.close();
  });
});
