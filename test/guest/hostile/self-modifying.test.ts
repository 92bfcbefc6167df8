// Self-modifying guests used to kill the host process: Unicorn 2.1.1 segfaults in
// tb_set_jmp_target once its translation buffer fills (issue 8). Unicorn >= 2.1.4 runs them; these
// loops must end in an ordinary outcome, with the arithmetic the rewritten code implies. Each loop
// runs well past where 2.1.1 dies: with this addon built against Debian trixie's 2.1.1 (session
// 14), the next-block loop killed the process between 100k and 120k iterations on both platforms
// (and at 300k), the running-block loop between 30k and 45k (and at 100k).
import { setImmediate } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { Machine } from '../../../src/cpu/machine.js';
import type { RunOutcome } from '../../../src/shared/outcome.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, tdGuest } from '../../helpers/tdx-guest.js';
import { snpGuest } from '../../helpers/snp-guest.js';

const SLICE = 2_000_000n;

/**
 * Runs to an outcome other than `budget` in slices of SLICE instructions, yielding to the event
 * loop between slices: a run of tens of seconds in one synchronous call starves vitest's worker
 * RPC. Gives up (returns the budget outcome) after `limit` instructions in all.
 */
async function runSliced(vm: Machine, run: () => RunOutcome, limit: bigint): Promise<RunOutcome> {
  for (;;) {
    vm.vcpu.instructionLimit = vm.vcpu.instructions + SLICE;
    const outcome = run();
    if (outcome.outcome !== 'budget' || vm.vcpu.instructions >= limit) return outcome;
    await setImmediate();
  }
}

/**
 * Each iteration stores EAX into the imm32 of the `mov edx, imm32` just ahead of the store and
 * adds EDX to RBX, so RBX ends at 1 + 2 + ... + n only if every rewrite was executed. With
 * `nextBlock` a jump ends the translation block first, so the rewrite hits the next block rather
 * than the running one (cheaper per iteration; the same buffer-filling retranslation).
 */
function rewriteAheadLoop(iterations: number, nextBlock: boolean, halt = 'hlt'): string {
  return `
    mov ecx, ${iterations}
    xor eax, eax
    xor ebx, ebx
  smc_top:
    inc eax
    mov dword ptr [rip + smc_imm], eax
    ${nextBlock ? 'jmp smc_next\n  smc_next:' : ''}
    .byte 0xba             # mov edx, imm32: the immediate is rewritten every iteration
  smc_imm: .long 0
    add rbx, rdx
    dec ecx
    jnz smc_top
    ${halt}`;
}

const triangle = (n: number) => BigInt(n) * BigInt(n + 1) / 2n;
// A hang guard, not a timing assertion: 1M iterations of the next-block loop took ~30 s alone and
// passed 120 s on two cores shared with the rest of the suite and other work (load average ~14).
const HANG_GUARD_MS = 300_000;
const cases = [
  { iterations: 300_000, nextBlock: true },
  { iterations: 100_000, nextBlock: false },
];

describe('self-modifying guests end in an ordinary outcome (Unicorn >= 2.1.4)', () => {
  for (const { iterations, nextBlock } of cases) {
    const what = `${iterations} rewrites ${nextBlock ? 'of the next block' : 'inside the running block'}`;
    it(`TDX: ${what}`, async () => {
      const td = tdGuest(rewriteAheadLoop(iterations, nextBlock, HALT));
      const outcome = await runSliced(td.platform.machine, () => runTd(td), 10n * BigInt(iterations));
      expect(outcome.outcome).toBe('done');
      expect(td.platform.machine.vcpu.regs.rbx).toBe(triangle(iterations));
    }, HANG_GUARD_MS);

    it(`SNP: ${what}`, async () => {
      const guest = snpGuest(rewriteAheadLoop(iterations, nextBlock));
      const outcome = await runSliced(guest.vm, () => guest.run(), 10n * BigInt(iterations));
      expect(outcome.outcome).toBe('done');
      expect(guest.vm.vcpu.regs.rbx).toBe(triangle(iterations));
    }, HANG_GUARD_MS);
  }
});
