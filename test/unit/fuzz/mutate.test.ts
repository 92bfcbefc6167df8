// The mutator only makes programs the file format accepts (a finding must be writable, readable
// and replayable), on the parent's platform, within its size bounds, and only from its seed.
import { describe, expect, it } from 'vitest';
import {
  attackProgramFromJson, attackProgramToJson, callPointsFor, type AttackPlatform, type AttackProgram,
} from '../../../src/fuzz/attack-program.js';
import { mutate, type ExecutionProfile } from '../../../src/fuzz/mutate.js';
import { Prng } from '../../../src/shared/prng.js';

const MAX_MUTANT_DECISIONS = 64;

function profileFor(platform: AttackPlatform, vcpus: number): ExecutionProfile {
  return {
    callCounts: new Map(callPointsFor(platform).map((point, i) => [point, 1 + (i % 5)])),
    vmmExits: 40,
    gpas: [0x100000n, 0x4000000n, 0x7ff000n],
    memoryBytes: 256n << 20n,
    vcpus,
  };
}

/** Mutants of mutants, `generations` deep from an empty program, splicing with the one before. */
function lineage(platform: AttackPlatform, seed: bigint, generations: number, vcpus = 1): AttackProgram[] {
  const rng = new Prng(seed);
  const profile = profileFor(platform, vcpus);
  const out: AttackProgram[] = [];
  let parent: AttackProgram = { platform, decisions: [] };
  for (let i = 0; i < generations; i++) {
    const child = mutate(rng, parent, profile, out[out.length - 2]);
    out.push(child);
    parent = child;
  }
  return out;
}

describe('mutate', () => {
  for (const platform of ['tdx', 'snp'] as const) {
    it(`${platform}: every mutant survives the file format unchanged, on its platform, within its bounds`, () => {
      for (const seed of [1n, 2n, 3n]) {
        for (const mutant of lineage(platform, seed, 300, seed === 3n ? 2 : 1)) {
          expect(mutant.platform).toBe(platform);
          expect(mutant.decisions.length).toBeLessThanOrEqual(MAX_MUTANT_DECISIONS);
          expect((mutant.launch ?? []).length).toBeLessThanOrEqual(MAX_MUTANT_DECISIONS);
          // The parser rejects anything out of its bounds (vectors, levels, sizes, unknown fields).
          expect(attackProgramFromJson(attackProgramToJson(mutant))).toEqual(mutant);
        }
      }
    });
  }

  it('snp: answers a GHCB registration the parent reached with a refusal or another GFN, at that decision point only', () => {
    const responses = new Set<string>();
    for (const seed of [1n, 2n, 3n]) {
      for (const mutant of lineage('snp', seed, 300)) {
        for (const d of mutant.decisions) {
          if (d.at !== 'call' || d.answer.kind !== 'ghcb-registration') continue;
          expect(d.point).toBe('snp.msr.registerGhcb');
          responses.add(d.answer.response);
        }
      }
    }
    expect(responses).toEqual(new Set(['refuse', 'other-gfn']));
  });

  it('is a function of its seed: the same seed gives the same lineage, another seed another', () => {
    const a = lineage('snp', 42n, 50).map(attackProgramToJson);
    expect(lineage('snp', 42n, 50).map(attackProgramToJson)).toEqual(a);
    expect(lineage('snp', 43n, 50).map(attackProgramToJson)).not.toEqual(a);
  });

  it('changes the program: a mutant is rarely its parent again', () => {
    const rng = new Prng(5n);
    const profile = profileFor('tdx', 1);
    const parent = lineage('tdx', 9n, 20).at(-1)!;
    let same = 0;
    for (let i = 0; i < 200; i++) if (attackProgramToJson(mutate(rng, parent, profile)) === attackProgramToJson(parent)) same++;
    expect(same).toBeLessThan(20);
  });

  it('gives a multi-vCPU target a schedule decision, and a one-vCPU target none', () => {
    expect(lineage('tdx', 4n, 30, 2).every((m) => m.schedule !== undefined)).toBe(true);
    expect(lineage('tdx', 4n, 30, 1).some((m) => m.schedule !== undefined)).toBe(false);
  });
});
