// A guest must not keep the host busy for long on a small budget (issue 8). The budget counts
// retired instructions plus fixed charges for the host work the guest causes (native/src/budget.h):
// 1024 per exit to the VMM, 1024 per injected exception, 512 per block the guest made the emulator
// retranslate under itself. These guests used to run for minutes on a 2M budget.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { createTd, runTd } from '../../../src/vmm/tdx/run-td.js';
import { acceptAll, installGdt, simpleGuest } from '../../helpers/guest-setup.js';
import { snpGuest } from '../../helpers/snp-guest.js';
import { TDCALL, tdGuest } from '../../helpers/tdx-guest.js';

const BUDGET = 2_000_000n;
const EXIT_CHARGE = 1024n;
const totalExits = (vm: Machine) => BigInt(Object.values(vm.vcpu.exitCounts).reduce((a, b) => a + (b ?? 0), 0));

describe('every exit and injected exception counts against the budget', () => {
  it('TDX: a #UD handler that IRETQs back to its UD2 ends with budget after at most budget/1024 round trips', () => {
    const td = tdGuest('ud2', { ud: 'iretq', instructionLimit: BUDGET });
    const outcome = runTd(td);
    const vm = td.platform.machine;
    expect(outcome.outcome).toBe('budget');
    expect(vm.vcpu.exitCounts['invalid-opcode']).toBeGreaterThan(400);  // it did loop
    expect(totalExits(vm) * EXIT_CHARGE).toBeLessThanOrEqual(BUDGET);
    expect(vm.vcpu.instructions).toBeLessThan(BUDGET / 100n);
  });

  it('SNP: a #UD handler that IRETQs back to its UD2 ends with budget', () => {
    const guest = snpGuest('ud2', { udHandler: 'iretq' });
    guest.vm.vcpu.budgetLimit = BUDGET;
    expect(guest.run().outcome).toBe('budget');
    expect(guest.vm.vcpu.exitCounts['invalid-opcode']).toBeGreaterThan(400);
    expect(totalExits(guest.vm) * EXIT_CHARGE).toBeLessThanOrEqual(BUDGET);
  });

  it('SNP: a storm of #VC (port I/O, handler returns without advancing) ends with budget', () => {
    const guest = snpGuest('out 0x80, al\nhlt', { vcHandler: 'add rsp, 8\niretq' });
    guest.vm.vcpu.budgetLimit = BUDGET;
    expect(guest.run().outcome).toBe('budget');
    expect(guest.vm.vcpu.exitCounts.io).toBeGreaterThan(400);
    expect(guest.vm.vcpu.budgetCharged).toBeGreaterThan(BUDGET / 2n);
  });

  it('TDX: a storm of #VE (port I/O, handler returns without advancing) ends with budget', () => {
    // TDG.VP.VEINFO.GET (leaf 3) first: a second #VE before it becomes #DF.
    const td = tdGuest('out 0x80, al', { ve: `mov eax, 3\n ${TDCALL}\n iretq`, instructionLimit: BUDGET });
    expect(runTd(td).outcome).toBe('budget');
    expect(td.platform.machine.vcpu.exitCounts.io).toBeGreaterThan(400);
  });
});

describe('retranslation the guest forces counts against the budget', () => {
  // Found by fuzzing: `addr32 jge` back into zeroed memory, where every `add [rax], al` (RAX =
  // the code page) rewrites the block being run, so the emulator retranslates a block of up to
  // 44 instructions before each one: ~20 µs per instruction, minutes for 2M instructions.
  it('a guest that rewrites its own running block ends with budget after few instructions', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n, instructionLimit: BUDGET });
    acceptAll(vm);
    installGdt(vm);
    vm.memory.write(0x1000n, Uint8Array.from([0x67, 0x7d, 0xa7, 0xf4]));
    vm.vcpu.regs.rip = 0x1000n;
    vm.vcpu.regs.rax = 0x1000n;
    const exit = vm.vcpu.run();
    expect(exit.kind).toBe('budget');
    expect(vm.vcpu.instructions).toBeLessThan(BUDGET / 100n);
    expect(vm.vcpu.budgetCharged).toBeGreaterThan(BUDGET - BUDGET / 100n);
  });

  it('REP string steps and branches to themselves are not charged', () => {
    const vm = simpleGuest(`
      mov rdi, 0x100000
      mov rcx, 0x10000
      rep stosb
      mov rcx, 0x10000
      mov rsi, 0x100000
      rep lodsb
      jmp .`, { instructionLimit: 1_000_000n });
    const exit = vm.vcpu.run();
    expect(exit.kind).toBe('budget');
    // One run: one exit charge, nothing else; the jmp-to-self loop used up the rest exactly.
    expect(vm.vcpu.budgetCharged).toBe(EXIT_CHARGE);
    expect(vm.vcpu.instructions).toBe(1_000_000n - EXIT_CHARGE);
  });

  it('the instruction limit alone still stops after exactly that many instructions (stepping)', () => {
    const vm = simpleGuest('jmp .');
    vm.vcpu.instructionLimit = 100n;
    expect(vm.vcpu.run()).toMatchObject({ kind: 'budget', instructions: 100n });
    expect(vm.vcpu.budgetCharged).toBe(EXIT_CHARGE);
  });
});
