// Decision coverage (DecisionBook.coverage): the campaign keeps a program that reaches a decision
// point × answer shape no earlier execution reached. The shape leaves addresses and values out,
// but not what the guest can tell apart.
import { describe, expect, it } from 'vitest';
import { DecisionBook } from '../../../src/fuzz/adversary.js';
import type { Answer } from '../../../src/fuzz/attack-program.js';

/** The coverage keys of answering `tdx.instructionIo` once with each of `answers`, in turn. */
function keysOf(answers: Answer[]): string[][] {
  return answers.map((answer) => {
    const book = new DecisionBook({ platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.instructionIo', occurrence: 0, answer }] });
    book.answerFor('tdx.instructionIo');
    return [...book.coverage];
  });
}

describe('decision coverage of a TDVMCALL return', () => {
  it('tells an answer that sets R10 (the TDVMCALL status) from one that leaves it as the honest VMM set it, and statuses apart', () => {
    const [noStatus, success, invalid, otherOutput] = keysOf([
      { kind: 'vmcall-return', effect: 'honest', regs: { r11: 0x41n } },
      { kind: 'vmcall-return', effect: 'honest', regs: { r10: 0n, r11: 0x41n } },
      { kind: 'vmcall-return', effect: 'honest', regs: { r10: 0x8000000000000000n, r11: 0x41n } },
      { kind: 'vmcall-return', effect: 'honest', regs: { r11: 0x42n } },
    ]);
    expect(noStatus).toHaveLength(1);
    expect(new Set([...noStatus!, ...success!, ...invalid!]).size).toBe(3);
    // The output value is data, not shape: another R11 is the same decision.
    expect(otherOutput).toEqual(noStatus);
  });
});
