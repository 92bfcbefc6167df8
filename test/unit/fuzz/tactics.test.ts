// How a campaign draws its launch tactics (src/fuzz/tactics.ts LaunchTacticDeck): launch surface by
// surface, each surface once per round, and within a surface each tactic once before any again;
// the order is the seeded PRNG's, so the same seed gives the same order.
import { describe, expect, it } from 'vitest';
import { LaunchTacticDeck, TACTICS } from '../../../src/fuzz/tactics.js';
import { Prng } from '../../../src/shared/prng.js';

const pool = TACTICS.filter((t) => t.launch && t.platforms.includes('tdx'));

function draws(seed: bigint, n: number): string[] {
  const deck = new LaunchTacticDeck();
  const rng = new Prng(seed);
  return Array.from({ length: n }, () => deck.draw(rng, pool).name);
}

describe('the launch tactic deck', () => {
  it('draws each launch surface once per round, and each tactic of a surface once before any again', () => {
    const surfaces = [...new Set(pool.map((t) => t.launch))];
    expect(surfaces.length).toBeGreaterThanOrEqual(3);
    const surfaceOf = new Map(pool.map((t) => [t.name, t.launch]));
    const drawn = draws(5n, surfaces.length * 12);
    for (let round = 0; round < 12; round++) {
      const inRound = drawn.slice(round * surfaces.length, (round + 1) * surfaces.length).map((name) => surfaceOf.get(name));
      expect(new Set(inRound).size).toBe(surfaces.length);
    }
    for (const surface of surfaces) {
      const tactics = pool.filter((t) => t.launch === surface).map((t) => t.name);
      const ofSurface = drawn.filter((name) => surfaceOf.get(name) === surface);
      expect(new Set(ofSurface.slice(0, tactics.length)).size).toBe(tactics.length);
    }
  });

  it('is a function of the seed', () => {
    expect(draws(3n, 40)).toEqual(draws(3n, 40));
    expect(draws(3n, 40)).not.toEqual(draws(4n, 40));
  });
});
