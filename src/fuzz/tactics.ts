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
import type { Prng } from '../shared/prng.js';

const PAGE = 0x1000n;
const TWO_MB = 0x200000n;
const FOREVER = 1_000_000;
/** "Convert everything asked for" (more than any request). */
const ALL = 1n << 40n;
/** TDVMCALL statuses (GHCI 1.5 Table 3-1). */
const RETRY = 1n;
const FAILURES = [0x8000000000000000n /* INVALID_OPERAND */, 0x8000000000000001n /* GPA_INUSE */, 0x8000000000000002n /* ALIGN_ERROR */];
/** GHCB SW_EXITINFO2 PSC errors (GHCB spec §4.1.6: 1<<32 | code; Linux sev-common.h) and GHCB MSR PSC responses with an error (§2.3.1). */
const PSC_ERRORS = [(1n << 32n) | 1n, (1n << 32n) | 2n, (1n << 32n) | 3n];
const MSR_PSC_ERRORS = [(1n << 32n) | 0x15n, (2n << 32n) | 0x15n];
/** E820 types (guest/include/minivisor/boot_abi.h; 15 is Linux's EFI_UNACCEPTED_MEMORY). */
const E820_RAM = 1;
const E820_RESERVED = 2;
const E820_UNACCEPTED = 15;

export interface TacticMaterial {
  decisions: Decision[];
  launch?: LaunchAction[];
  memoryDescription?: MemoryDescription;
}

export interface Tactic {
  name: string;
  platforms: readonly AttackPlatform[];
  /** Launch tactics need a fresh launch per execution (slow): the mutator picks them less often. */
  launch?: boolean;
  build(rng: Prng, profile: ExecutionProfile): TacticMaterial | undefined;
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
    name: 'PAGE.ADD an extra page before launch', platforms: ['tdx'], launch: true,
    build: (rng, p) => ({ decisions: [], launch: [{ kind: 'tdx.page-add', gpa: anyPage(rng, p), fill: rng.chance(1, 2) ? 0 : rng.below(256) }] }),
  },
  {
    name: 'a host SEAMCALL holds a SEPT entry lock', platforms: ['tdx'], launch: true,
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
    name: 'launch an extra validated page', platforms: ['snp'], launch: true,
    build: (rng, p) => ({ decisions: [], launch: [{ kind: 'snp.launch-page', gpa: anyPage(rng, p), fill: rng.chance(1, 2) ? 0 : rng.below(256) }] }),
  },
  {
    name: 'a page re-assigned before launch', platforms: ['snp'], launch: true,
    build: (rng, p) => {
      const spa = anyPage(rng, p);
      return { decisions: [], launch: [{ kind: 'snp.rmpupdate', spa, assigned: true, pageSize: '4k', gpa: spa }] };
    },
  },

  // ---------------------------------------------------------------- both
  {
    // The memory map a firmware that passes the VMM's description through hands on: RAM up to a
    // split point, and an unaccepted range that starts a few 2 MiB blocks below it, so some RAM is
    // described both as accepted and as unaccepted. Where the firmware had accepted that RAM, a
    // guest that takes the map as it is records accepted memory as unaccepted.
    name: 'describe memory with an unaccepted range overlapping RAM', platforms: ['tdx', 'snp'], launch: true,
    build: (rng, p) => {
      const top = p.memoryBytes < ABI.MV_RAM_HOLE_GPA ? p.memoryBytes - (p.memoryBytes % TWO_MB) : ABI.MV_RAM_HOLE_GPA;
      const low = ABI.MV_FIRMWARE_RESERVED_END;
      if (top <= low + TWO_MB) return undefined;
      const split = low + TWO_MB * (1n + rng.belowBig((top - low) / TWO_MB));
      const overlap = TWO_MB * BigInt(1 + rng.below(4));
      const unacceptedStart = split - overlap > low ? split - overlap : low;
      return {
        decisions: [],
        memoryDescription: {
          ranges: [
            { addr: 0n, size: ABI.MV_FIRMWARE_RESERVED_GPA, type: E820_RAM },
            { addr: ABI.MV_FIRMWARE_RESERVED_GPA, size: low - ABI.MV_FIRMWARE_RESERVED_GPA, type: E820_RESERVED },
            { addr: low, size: split - low, type: E820_RAM },
            { addr: unacceptedStart, size: top - unacceptedStart, type: E820_UNACCEPTED },
          ],
        },
      };
    },
  },
];

/** One tactic for `platform`, built against `profile` (undefined when the parent never reached its decision point). */
export function pickTactic(
  rng: Prng, platform: AttackPlatform, profile: ExecutionProfile, options: { launch?: boolean } = {},
): (TacticMaterial & { name: string }) | undefined {
  const tactics = TACTICS.filter((t) => t.platforms.includes(platform) && (options.launch !== false || !t.launch));
  // A launch tactic costs a fresh launch (then a snapshot of it for its descendants): one pick in eight.
  const pool = rng.chance(1, 8) ? tactics.filter((t) => t.launch) : tactics.filter((t) => !t.launch);
  const tactic = rng.pick(pool.length > 0 ? pool : tactics);
  const material = tactic.build(rng, profile);
  return material ? { ...material, name: tactic.name } : undefined;
}

/** Tactic names per platform (for the README and tests). */
export function tacticNames(platform: AttackPlatform): string[] {
  return TACTICS.filter((t) => t.platforms.includes(platform)).map((t) => t.name);
}

