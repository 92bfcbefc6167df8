// Decision coverage (DecisionBook.coverage): the campaign keeps a program that reaches a decision
// point × answer shape no earlier execution reached. The shape leaves addresses and values out,
// but not what the guest can tell apart.
import { describe, expect, it } from 'vitest';
import { DecisionBook } from '../../../src/fuzz/adversary.js';
import type { Answer, CallPoint } from '../../../src/fuzz/attack-program.js';

/** The coverage keys of answering `point` (tdx.instructionIo unless named) once with each of `answers`, in turn. */
function keysOf(answers: Answer[], point: CallPoint = 'tdx.instructionIo'): string[][] {
  return answers.map((answer) => {
    const book = new DecisionBook({ platform: point.startsWith('snp') ? 'snp' : 'tdx', decisions: [{ at: 'call', point, occurrence: 0, answer }] });
    book.answerFor(point);
    return [...book.coverage];
  });
}

/** Whether the answers' keys are all different. */
const allApart = (keys: string[][]) => new Set(keys.map((k) => k.join())).size === keys.length;

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

describe('decision coverage of the honest answer', () => {
  it('is a key of its own at each decision point', () => {
    const honestAt = (point: CallPoint) => {
      const book = new DecisionBook({ platform: 'tdx', decisions: [] });
      book.answerFor(point);
      return [...book.coverage];
    };
    const [mapGpa, io] = [honestAt('tdx.mapGpa'), honestAt('tdx.instructionIo')];
    expect(mapGpa).toHaveLength(1);
    expect(io).toHaveLength(1);
    expect(mapGpa).not.toEqual(io);
    expect(keysOf([{ kind: 'vmcall-return', effect: 'none', regs: { r10: 0n } }])).not.toContainEqual(io);
  });
});

describe('decision coverage of the other answers', () => {
  it('tells MapGPA statuses apart (GHCI 1.5 Table 3-1: SUCCESS, RETRY, a failure), and a conversion from none', () => {
    const mapGpa = (status: bigint, convertBytes = 0x1000n): Answer => ({ kind: 'map-gpa', convertBytes, status });
    expect(allApart(keysOf([mapGpa(0n), mapGpa(1n), mapGpa(0x8000000000000001n), mapGpa(0n, 0n)], 'tdx.mapGpa'))).toBe(true);
    // How much is converted is data: another non-zero size is the same decision.
    expect(keysOf([mapGpa(0n, 0x200000n)], 'tdx.mapGpa')).toEqual(keysOf([mapGpa(0n)], 'tdx.mapGpa'));
  });

  it('tells EPT actions apart, and NPF actions apart', () => {
    expect(allApart(keysOf(['aug-4k', 'aug-2m', 'refuse', 'stop'].map((action) => ({ kind: 'ept', action }) as Answer), 'tdx.onAcceptViolation'))).toBe(true);
    expect(allApart(keysOf(['psmash', 'make-private', 'make-shared', 'npt-2m', 'npt-4k', 'refuse'].map((action) => ({ kind: 'npf', action }) as Answer), 'snp.onNpf'))).toBe(true);
  });

  it('tells a PSC header lie about cur_entry from one about end_entry, an MSR response from none, and GHCB registration answers apart', () => {
    const header = (pscHeader: Extract<Answer, { kind: 'vmgexit' }>['pscHeader']): Answer => ({ kind: 'vmgexit', effect: 'none', pscHeader });
    expect(allApart(keysOf([header({ curEntry: 1 }), header({ endEntry: 1 }), { kind: 'vmgexit', effect: 'none' }], 'snp.ghcb.psc'))).toBe(true);
    expect(allApart(keysOf([{ kind: 'vmgexit', effect: 'none', msr: 0x15n }, { kind: 'vmgexit', effect: 'none' }], 'snp.msr.psc'))).toBe(true);
    expect(allApart(keysOf([{ kind: 'ghcb-registration', response: 'refuse' }, { kind: 'ghcb-registration', response: 'other-gfn', gfnDelta: 1n }], 'snp.msr.registerGhcb'))).toBe(true);
  });
});
