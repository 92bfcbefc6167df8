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

  it('draws only from the pool it is given, even when its round began with another pool', () => {
    const deck = new LaunchTacticDeck();
    const rng = new Prng(7n);
    // Half a round from TDX's launch tactics: the deck still holds TDX tactics it has not drawn.
    for (let i = 0; i < 2; i++) deck.draw(rng, pool);
    const snpPool = TACTICS.filter((t) => t.launch && t.platforms.includes('snp'));
    for (let i = 0; i < 40; i++) expect(snpPool).toContain(deck.draw(rng, snpPool));
    // A pool of one surface only: the other surfaces left in the round are passed over.
    const mapOnly = pool.filter((t) => t.launch === "the memory map's shape");
    for (let i = 0; i < 10; i++) expect(mapOnly).toContain(deck.draw(rng, mapOnly));
  });

  it('draws from a pool as the caller has since changed it', () => {
    const deck = new LaunchTacticDeck();
    const rng = new Prng(2n);
    const mine = pool.filter((t) => t.launch === 'launched pages');
    deck.draw(rng, mine);
    mine.push(...pool.filter((t) => t.launch === "the memory map's shape"));
    const surfaces = new Set(Array.from({ length: 30 }, () => deck.draw(rng, mine).launch));
    expect(surfaces).toEqual(new Set(['launched pages', "the memory map's shape"]));
  });

  it('is a function of the seed', () => {
    expect(draws(3n, 40)).toEqual(draws(3n, 40));
    expect(draws(3n, 40)).not.toEqual(draws(4n, 40));
  });
});
