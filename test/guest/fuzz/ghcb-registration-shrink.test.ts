// A refused GHCB registration as a finding's program would carry it: written to a file, read back,
// and shrunk through the fuzzer's own executor (the same path `minivisor shrink` takes) to the one
// decision that reaches the stubs' registration check (guest/DEFENCES.md, term(1,0)).
import { describe, expect, it } from 'vitest';
import { attackProgramFromJson, attackProgramToJson, type AttackProgram, type Decision } from '../../../src/fuzz/attack-program.js';
import { shrinkProgram } from '../../../src/fuzz/shrink.js';
import { FOREVER, runAttack } from '../../helpers/attack-programs.js';

const TERM_REGISTER = /GHCB termination request: reason set 1, code 0$/;
const refusal: Decision = { at: 'call', point: 'snp.msr.registerGhcb', occurrence: 0, repeat: FOREVER, answer: { kind: 'ghcb-registration', response: 'refuse' } };
/** Decisions that change nothing before the registration: honest answers, and a lie at a call the firmware makes later. */
const noise: Decision[] = [
  { at: 'call', point: 'snp.msr.sevInfo', occurrence: 0, answer: { kind: 'honest' } },
  { at: 'call', point: 'snp.ghcb.ioio', occurrence: 3, answer: { kind: 'stop' } },
  { at: 'call', point: 'snp.onHlt', occurrence: 0, answer: { kind: 'honest' } },
];

describe('a refused GHCB registration in a finding', () => {
  it('survives its file and shrinks to the refusal alone, answered once', async () => {
    const program: AttackProgram = attackProgramFromJson(attackProgramToJson({ platform: 'snp', decisions: [noise[0]!, refusal, ...noise.slice(1)] }));
    expect(program.decisions[1]).toEqual(refusal);
    const reproduces = (p: AttackProgram) => {
      const { outcome } = runAttack(p);
      return outcome.outcome === 'guest-fatal' && TERM_REGISTER.test(outcome.reason);
    };
    expect(reproduces(program)).toBe(true);
    const { program: shrunk } = await shrinkProgram(program, reproduces);
    expect(shrunk.decisions).toEqual([{ at: 'call', point: 'snp.msr.registerGhcb', occurrence: 0, answer: { kind: 'ghcb-registration', response: 'refuse' } }]);
    expect(attackProgramFromJson(attackProgramToJson(shrunk))).toEqual(shrunk);
  });
});
