// A dictionary of VMM tactics: short decision sequences that a hostile hypervisor is known to
// try, which the mutator inserts whole (like an AFL dictionary's tokens or syzkaller's call
// templates). Random single decisions rarely line up into one of these (a lie repeated at every
// retry, a conversion reported failed with nothing done, a page replayed under the guest), so
// without them the fuzzer only finds bugs that one random lie exposes.
//
// Every tactic is generic: it names a VMM behaviour, not a bug. Where it strikes comes from the
// parent's execution (the decision points it reached and how often, the exits, the GPAs the
// guest accepted or converted), and every choice from the campaign's seeded PRNG.
import { ABI } from '../boot/layout.js';
import type { AttackPlatform, CallPoint, Decision, LaunchAction, MemoryDescription } from './attack-program.js';
import type { ExecutionProfile } from './mutate.js';
import { MAP_LIES, honestMemoryMap } from './memory-map-lies.js';
import type { Prng } from '../shared/prng.js';

const PAGE = 0x1000n;
const FOREVER = 1_000_000;
/** "Convert everything asked for" (more than any request). */
const ALL = 1n << 40n;
/** TDVMCALL statuses (GHCI 1.5 Table 3-1). */
const RETRY = 1n;
const FAILURES = [0x8000000000000000n /* INVALID_OPERAND */, 0x8000000000000001n /* GPA_INUSE */, 0x8000000000000002n /* ALIGN_ERROR */];
/** GHCB SW_EXITINFO2 PSC errors (GHCB spec §4.1.6: 1<<32 | code; Linux sev-common.h) and GHCB MSR PSC responses with an error (§2.3.1). */
const PSC_ERRORS = [(1n << 32n) | 1n, (1n << 32n) | 2n, (1n << 32n) | 3n];
const MSR_PSC_ERRORS = [(1n << 32n) | 0x15n, (2n << 32n) | 0x15n];

export interface TacticMaterial {
  decisions: Decision[];
  launch?: LaunchAction[];
  memoryDescription?: MemoryDescription;
}

/**
 * The parts of a launch a VMM decides: the pages it adds, the host-side state it leaves before
 * the guest runs, and the memory description, split into what it says about acceptance (the
 * protocol under test) and the form of the table itself.
 */
export type LaunchSurface = 'launched pages' | 'host state before launch' | 'what the memory map says is accepted' | "the memory map's shape";

export interface Tactic {
  name: string;
  platforms: readonly AttackPlatform[];
  /**
   * Launch tactics need a fresh launch per execution (slow): what part of the launch they change.
   * The campaign tries its launch tactics surface by surface (LaunchTacticDeck).
   */
  launch?: LaunchSurface;
  /** `parent`: the memory description of the program the tactic goes into, if it has one. */
  build(rng: Prng, profile: ExecutionProfile, parent?: MemoryDescription): TacticMaterial | undefined;
}

/** An occurrence of `point` that the parent's execution reached (undefined if it never did). */
function reachedOccurrence(rng: Prng, profile: ExecutionProfile, point: CallPoint): number | undefined {
  const count = profile.callCounts.get(point) ?? 0;
  return count === 0 ? undefined : rng.below(count);
}

function call(point: CallPoint, occurrence: number, answer: Extract<Decision, { at: 'call' }>['answer'], repeat?: number): Decision {
  const d: Decision = { at: 'call', point, occurrence, answer };
  if (repeat !== undefined) d.repeat = repeat;
  return d;
}

function exitIndex(rng: Prng, profile: ExecutionProfile): number {
  return rng.below(Math.max(1, profile.vmmExits));
}

/** A GPA the guest worked on in the parent (accepted, converted, faulted on), or any page of RAM. */
function workedGpa(rng: Prng, profile: ExecutionProfile): bigint {
  const gpa = profile.gpas.length > 0 && !rng.chance(1, 8) ? rng.pick(profile.gpas) + BigInt(rng.below(8)) * PAGE : rng.belowBig(profile.memoryBytes);
  return gpa - (gpa % PAGE);
}

/** Any page of RAM (the launch happens before any execution profile exists). */
function anyPage(rng: Prng, profile: ExecutionProfile): bigint {
  const gpa = rng.belowBig(profile.memoryBytes);
  return gpa - (gpa % PAGE);
}


export const TACTICS: readonly Tactic[] = [
  // ---------------------------------------------------------------- TDX
  {
    name: 'MapGPA RETRY at the same address, forever', platforms: ['tdx'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'tdx.mapGpa');
      return k === undefined ? undefined : { decisions: [call('tdx.mapGpa', k, { kind: 'map-gpa', convertBytes: 0n, status: RETRY, resumeDelta: 0n }, FOREVER)] };
    },
  },
  {
    name: 'MapGPA fails, nothing converted', platforms: ['tdx'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'tdx.mapGpa');
      return k === undefined ? undefined : { decisions: [call('tdx.mapGpa', k, { kind: 'map-gpa', convertBytes: 0n, status: rng.pick(FAILURES) })] };
    },
  },
  {
    name: 'MapGPA converts, then reports failure', platforms: ['tdx'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'tdx.mapGpa');
      return k === undefined ? undefined : { decisions: [call('tdx.mapGpa', k, { kind: 'map-gpa', convertBytes: ALL, status: rng.pick(FAILURES) })] };
    },
  },
  {
    name: 'MapGPA flips only the shared EPT and keeps the private pages', platforms: ['tdx'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'tdx.mapGpa');
      return k === undefined ? undefined : { decisions: [call('tdx.mapGpa', k, { kind: 'map-gpa', convertBytes: ALL, status: 0n, sharedEptOnly: true }, rng.chance(1, 2) ? FOREVER : undefined)] };
    },
  },
  {
    name: 'BLOCK+TRACK+REMOVE+AUG an accepted page (a zeroed replay)', platforms: ['tdx'],
    build: (rng, p) => ({ decisions: [{ at: 'exit', exitIndex: exitIndex(rng, p), action: { kind: 'tdx.replay-zeroed', gpa: workedGpa(rng, p), level: rng.chance(1, 4) ? 1 : 0 } }] }),
  },
  {
    name: 'back every 2M accept with 4K pages', platforms: ['tdx'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'tdx.onAcceptViolation');
      return k === undefined ? undefined : { decisions: [call('tdx.onAcceptViolation', k, { kind: 'ept', action: 'aug-4k' }, FOREVER)] };
    },
  },
  {
    name: 'interrupt in the middle of a 2M ACCEPT', platforms: ['tdx'],
    build: (rng, p) => ({ decisions: [{ at: 'exit', exitIndex: exitIndex(rng, p), action: { kind: 'tdx.post-interrupt', vector: 32 + rng.below(224), afterChunks: 1 + rng.below(511) } }] }),
  },
  {
    name: 'PAGE.ADD an extra page before launch', platforms: ['tdx'], launch: 'launched pages',
    build: (rng, p) => ({ decisions: [], launch: [{ kind: 'tdx.page-add', gpa: anyPage(rng, p), fill: rng.chance(1, 2) ? 0 : rng.below(256) }] }),
  },
  {
    name: 'a host SEAMCALL holds a SEPT entry lock', platforms: ['tdx'], launch: 'host state before launch',
    build: (rng, p) => ({ decisions: [], launch: [{ kind: 'tdx.lock-entry', gpa: anyPage(rng, p), level: rng.chance(1, 2) ? 1 : 0 }] }),
  },

  // ---------------------------------------------------------------- SNP
  {
    name: 'PSC fails, nothing converted', platforms: ['snp'],
    build: (rng, p) => {
      const ghcb = reachedOccurrence(rng, p, 'snp.ghcb.psc');
      const msr = reachedOccurrence(rng, p, 'snp.msr.psc');
      if (ghcb !== undefined && (msr === undefined || rng.chance(3, 4))) {
        return { decisions: [call('snp.ghcb.psc', ghcb, { kind: 'vmgexit', effect: 'none', ghcb: { swExitInfo2: rng.pick(PSC_ERRORS) } })] };
      }
      return msr === undefined ? undefined : { decisions: [call('snp.msr.psc', msr, { kind: 'vmgexit', effect: 'none', msr: rng.pick(MSR_PSC_ERRORS) })] };
    },
  },
  {
    name: 'PSC converts, then reports failure', platforms: ['snp'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'snp.ghcb.psc');
      return k === undefined ? undefined : { decisions: [call('snp.ghcb.psc', k, { kind: 'vmgexit', effect: 'honest', ghcb: { swExitInfo2: rng.pick(PSC_ERRORS) } })] };
    },
  },
  {
    name: 'PSC does only part of the entries', platforms: ['snp'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'snp.ghcb.psc');
      return k === undefined ? undefined : { decisions: [call('snp.ghcb.psc', k, { kind: 'vmgexit', effect: 'honest', pscEntries: rng.below(3) }, rng.chance(1, 2) ? FOREVER : undefined)] };
    },
  },
  {
    name: 'PSC answered with no progress, forever', platforms: ['snp'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'snp.ghcb.psc');
      return k === undefined ? undefined : { decisions: [call('snp.ghcb.psc', k, { kind: 'vmgexit', effect: 'none' }, FOREVER)] };
    },
  },
  {
    // GHCB spec "GHCB GPA Registration": a hypervisor that will not use the guest's GPA answers
    // -1; a hostile one may name another page. Every vCPU registers, so every one is a target.
    name: 'GHCB registration refused, or answered with another GFN', platforms: ['snp'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'snp.msr.registerGhcb');
      if (k === undefined) return undefined;
      return { decisions: [call('snp.msr.registerGhcb', k, rng.chance(1, 2) ? { kind: 'ghcb-registration', response: 'refuse' } : { kind: 'ghcb-registration', response: 'other-gfn', gfnDelta: rng.pick([1n, -1n, 0x200n]) })] };
    },
  },
  {
    name: 'PSMASH + RMPUPDATE a validated page (un-validate it)', platforms: ['snp'],
    build: (rng, p) => ({ decisions: [{ at: 'exit', exitIndex: exitIndex(rng, p), action: { kind: 'snp.unvalidate', spa: workedGpa(rng, p) } }] }),
  },
  {
    name: 'inject #VC 0x404 with no cause', platforms: ['snp'],
    build: (rng, p) => ({ decisions: [{ at: 'exit', exitIndex: exitIndex(rng, p), action: { kind: 'inject', vector: 29, errorCode: 0x404n } }] }),
  },
  {
    name: 'replay a page\'s old ciphertext', platforms: ['snp'],
    build: (rng, p) => {
      const spa = workedGpa(rng, p);
      const first = exitIndex(rng, p);
      const slot = rng.below(4);
      return {
        decisions: [
          { at: 'exit', exitIndex: first, action: { kind: 'snp.capture', spa, slot } },
          { at: 'exit', exitIndex: first + 1 + rng.below(Math.max(1, p.vmmExits - first)), action: { kind: 'snp.restore', spa, slot } },
        ],
      };
    },
  },
  {
    name: 'back 2M with 4K RMP entries (PSMASH on every NPF)', platforms: ['snp'],
    build: (rng, p) => {
      const k = reachedOccurrence(rng, p, 'snp.onNpf');
      return k === undefined ? undefined : { decisions: [call('snp.onNpf', k, { kind: 'npf', action: 'psmash' }, FOREVER)] };
    },
  },
  {
    name: 'launch an extra validated page', platforms: ['snp'], launch: 'launched pages',
    build: (rng, p) => ({ decisions: [], launch: [{ kind: 'snp.launch-page', gpa: anyPage(rng, p), fill: rng.chance(1, 2) ? 0 : rng.below(256) }] }),
  },
  {
    name: 'a page re-assigned before launch', platforms: ['snp'], launch: 'host state before launch',
    build: (rng, p) => {
      const spa = anyPage(rng, p);
      return { decisions: [], launch: [{ kind: 'snp.rmpupdate', spa, assigned: true, pageSize: '4k', gpa: spa }] };
    },
  },

  // ---------------------------------------------------------------- both
  // The memory description: one tactic per lie (memory-map-lies.ts), told in the honest map the
  // firmware would build or, one time in two, in the parent's map if it has one (lies stack over
  // generations, but a lie told alone shows what that lie does, whatever the parent's others did).
  ...MAP_LIES.map((lie): Tactic => ({
    name: `describe memory with ${lie.name}`, platforms: ['tdx', 'snp'], launch: lie.about === 'acceptance' ? 'what the memory map says is accepted' : 'the memory map\'s shape',
    build: (rng, p, parent) => {
      const map = parent?.ranges && rng.chance(1, 2) ? parent.ranges : honestMemoryMap(p.memoryBytes, p.preAccept ?? ABI.MV_DEFAULT_PRE_ACCEPT_BYTES);
      const ranges = lie.tell(rng, map, p.memoryBytes);
      return ranges ? { decisions: [], memoryDescription: { ranges } } : undefined;
    },
  })),
];

/**
 * The order in which a campaign tries its launch tactics: a launch surface at a time, each
 * surface once before any again, and within a surface each tactic once before any again, in
 * orders the campaign's seeded PRNG shuffles (drawing without replacement, as AFL's deterministic
 * stage uses every dictionary token once before havoc picks them at random). Each launch tactic
 * costs a fresh launch, of which a campaign affords only a bounded share (execution-cost.ts):
 * drawn with replacement, a short campaign tries some two or three times and never tries others,
 * and a surface with many tactics (the memory map has a dozen lies) would crowd out the others.
 */
export class LaunchTacticDeck {
  #surfaces = new ShuffledDeck<LaunchSurface>();
  #tactics = new Map<LaunchSurface, ShuffledDeck<Tactic>>();

  draw(rng: Prng, pool: readonly Tactic[]): Tactic {
    const { surfaces, bySurface } = surfacesOf(pool);
    const surface = this.#surfaces.draw(rng, surfaces);
    let deck = this.#tactics.get(surface);
    if (!deck) this.#tactics.set(surface, (deck = new ShuffledDeck<Tactic>()));
    // The pool's tactics are TACTICS' own objects, so a deck holds them as they are.
    return deck.draw(rng, bySurface.get(surface)!);
  }
}

/**
 * A pool's launch surfaces in the order its tactics first name them, and its tactics by surface
 * (in pool order); remembered for frozen pools (pickTactic's), which cannot change.
 */
const SURFACES = new WeakMap<readonly Tactic[], { surfaces: LaunchSurface[]; bySurface: Map<LaunchSurface, Tactic[]> }>();

function surfacesOf(pool: readonly Tactic[]): { surfaces: LaunchSurface[]; bySurface: Map<LaunchSurface, Tactic[]> } {
  let known = SURFACES.get(pool);
  if (!known) {
    const surfaces = [...new Set(pool.map((t) => t.launch!))];
    known = { surfaces, bySurface: new Map(surfaces.map((s) => [s, pool.filter((t) => t.launch === s)])) };
    if (Object.isFrozen(pool)) SURFACES.set(pool, known);
  }
  return known;
}

/** Items drawn in shuffled rounds: each once per round. */
class ShuffledDeck<T> {
  #left: T[] = [];

  draw(rng: Prng, items: readonly T[]): T {
    let next = this.#left.pop();
    while (next !== undefined && !items.includes(next)) next = this.#left.pop();
    if (next !== undefined) return next;
    const round = [...items];
    for (let i = round.length - 1; i > 0; i--) {
      const j = rng.below(i + 1);
      [round[i], round[j]] = [round[j]!, round[i]!];
    }
    this.#left = round;
    return this.#left.pop()!;
  }
}

export interface PickTacticOptions {
  /** False: no launch tactics (the mutant keeps its parent's launch part). */
  launch?: boolean;
  /** The parent's memory description: a memory-map lie is told in it. */
  memoryDescription?: MemoryDescription;
  /** The campaign's launch tactics still to try (without one, launch tactics are drawn at random). */
  launchDeck?: LaunchTacticDeck;
}

interface TacticPools {
  /** Launch tactics (empty when they are not allowed) and run-time ones, each in TACTICS order. */
  launchPool: readonly Tactic[];
  runPool: readonly Tactic[];
}

/** The pools of each platform, with and without launch tactics: picked from on every mutation, filtered once. */
const POOLS = new Map<string, TacticPools>();

function poolsFor(platform: AttackPlatform, launch: boolean): TacticPools {
  const key = `${platform} ${launch}`;
  let pools = POOLS.get(key);
  if (!pools) {
    const tactics = TACTICS.filter((t) => t.platforms.includes(platform) && (launch || !t.launch));
    pools = { launchPool: Object.freeze(tactics.filter((t) => t.launch)), runPool: Object.freeze(tactics.filter((t) => !t.launch)) };
    POOLS.set(key, pools);
  }
  return pools;
}

/** One tactic for `platform`, built against `profile` (undefined when the parent never reached its decision point). */
export function pickTactic(
  rng: Prng, platform: AttackPlatform, profile: ExecutionProfile, options: PickTacticOptions = {},
): (TacticMaterial & { name: string }) | undefined {
  const { launchPool, runPool } = poolsFor(platform, options.launch !== false);
  // A launch tactic costs a fresh launch (then a snapshot of it for its descendants). The campaign
  // bounds their share of its cost (execution-cost.ts) and asks for none once over it; while it
  // has room for one, it is worth taking at once: one pick in two.
  let tactic: Tactic;
  if (rng.chance(1, 2) && launchPool.length > 0) tactic = options.launchDeck ? options.launchDeck.draw(rng, launchPool) : rng.pick(launchPool);
  else tactic = rng.pick(runPool);
  const material = tactic.build(rng, profile, options.memoryDescription);
  return material ? { ...material, name: tactic.name } : undefined;
}

