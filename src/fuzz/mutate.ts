// Structural mutation of attack programs: insert, delete or change one decision, or splice two
// programs. Every random choice comes from the campaign's seeded PRNG. New decisions are aimed at
// what the parent's execution actually reached (decision points and how often, exits, GPAs), so
// most mutants change what the VMM does at a point the guest really visits.
import {
  ANSWERS_FOR_POINT, EPT_ACTIONS, HOST_ACTIONS_FOR_PLATFORM, NPF_ACTIONS, TDX_SEAMCALL_OPS, MAX_DECISIONS,
  type Answer, type AttackProgram, type CallPoint, type Decision, type HostAction, type VmcallReturnReg,
} from './attack-program.js';
import type { Prng } from '../shared/prng.js';
import { SCHEDULE_POLICIES } from '../cpu/vcpu-scheduler.js';
import { pickTactic, type LaunchTacticDeck } from './tactics.js';

/** What the mutator knows about where a program's execution went. */
export interface ExecutionProfile {
  callCounts: ReadonlyMap<CallPoint, number>;
  vmmExits: number;
  gpas: readonly bigint[];
  memoryBytes: bigint;
  /** What the VMM configured the firmware to pre-accept (its own setting; default: the CLI's). */
  preAccept?: bigint | 'all';
  /** The target's vCPUs: with several, a mutant may also change the VMM's vCPU schedule. */
  vcpus?: number;
}

const SCHEDULE_QUANTA = [1, 7, 50, 500, 2000];

const PAGE = 0x1000n;
const TWO_MB = 0x200000n;
const MAX_MUTANT_DECISIONS = 64;

/** TDVMCALL statuses (GHCI 1.5 Table 3-1): SUCCESS, RETRY, INVALID_OPERAND, GPA_INUSE, ALIGN_ERROR, and junk. */
const VMCALL_STATUSES = [0n, 1n, 0x8000000000000000n, 0x8000000000000001n, 0x8000000000000002n, 0xffffffffffffffffn];
const INTERESTING_U64 = [0n, 1n, 2n, 0x1000n, 0xffn, 0x60n, 0x7fffffffffffffffn, 0xffffffffffffffffn];
/** SW_EXITINFO1/2 values (GHCB spec §4.1.6, Linux sev-common.h): OK, INJECT, ERROR, PSC error codes. */
const GHCB_EXIT_INFO = [0n, 1n, 2n, 4n, (1n << 32n) | 1n, (1n << 32n) | 2n, 0x100n << 32n];
/** GHCB MSR protocol responses (GHCB spec §2.3.1): PSC ok/error, register ok/other GFN, SEV info, junk. */
const MSR_RESPONSES = [0x15n, (1n << 32n) | 0x15n, 0x13n, 0x1013n, 0x0002000100330001n, 0x0002000133330001n, 0n, 0xfffn];
const PSC_HEADER_ENTRIES = [0, 1, 2, 252, 253, 0xffff];
const DELTAS = [0n, PAGE, -PAGE, TWO_MB, -TWO_MB, 0x10n];
/** GFN offsets for a GHCB registration answered with another GFN: the next or previous page, 2 MiB away, far off. */
const GFN_DELTAS = [1n, -1n, 0x200n, -0x200n, 1n << 20n];

function pickGpa(rng: Prng, profile: ExecutionProfile, align: bigint): bigint {
  const pool = profile.gpas;
  let gpa: bigint;
  if (pool.length > 0 && !rng.chance(1, 8)) gpa = rng.pick(pool) + (rng.chance(1, 4) ? BigInt(rng.below(16)) * PAGE : 0n);
  else gpa = rng.belowBig(profile.memoryBytes);
  return gpa - (gpa % align);
}

function randomAnswer(rng: Prng, point: CallPoint, kinds = ANSWERS_FOR_POINT[point]): Answer {
  // Stopping the guest is denial of service, never a finding: try it rarely.
  const lies = kinds.filter((k) => k !== 'honest' && k !== 'stop');
  const kind = lies.length === 0 || rng.chance(1, 16) ? 'stop' : rng.pick(lies);
  switch (kind) {
    case 'resume':
    case 'stop':
      return { kind };
    case 'vmcall-return': {
      const regs: Partial<Record<VmcallReturnReg, bigint>> = { r10: rng.pick(VMCALL_STATUSES) };
      if (rng.chance(1, 2)) regs.r11 = rng.chance(1, 2) ? rng.pick(INTERESTING_U64) : rng.next64();
      return { kind, effect: rng.chance(1, 2) ? 'honest' : 'none', regs };
    }
    case 'map-gpa': {
      const a: Answer = { kind, convertBytes: rng.pick([0n, PAGE, TWO_MB, 1n << 40n]), status: rng.pick(VMCALL_STATUSES.slice(0, 3)) };
      if (rng.chance(2, 3)) a.resumeDelta = rng.pick([0n, 0n, PAGE, TWO_MB, -PAGE, 1n << 40n]);
      if (rng.chance(1, 4)) a.sharedEptOnly = true;
      return a;
    }
    case 'ept': {
      const action = rng.pick(EPT_ACTIONS);
      return action === 'aug-other' ? { kind, action, otherDelta: rng.pick(DELTAS.filter((d) => d !== 0n)) } : { kind, action };
    }
    case 'npf':
      return { kind, action: rng.pick(NPF_ACTIONS) };
    case 'ghcb-registration':
      return rng.chance(1, 2) ? { kind, response: 'refuse' } : { kind, response: 'other-gfn', gfnDelta: rng.pick(GFN_DELTAS) };
    case 'vmgexit': {
      const a: Extract<Answer, { kind: 'vmgexit' }> = { kind, effect: rng.chance(3, 4) ? 'honest' : 'none' };
      const what = rng.below(3);
      if (what === 0 || point.startsWith('snp.msr')) a.msr = rng.chance(3, 4) ? rng.pick(MSR_RESPONSES) : rng.next64();
      if (what === 1 && point.startsWith('snp.ghcb')) a.ghcb = rng.chance(1, 2) ? { swExitInfo2: rng.pick(GHCB_EXIT_INFO) } : { swExitInfo1: rng.pick(GHCB_EXIT_INFO) };
      if (what === 2 && point === 'snp.ghcb.psc') {
        a.pscHeader = rng.chance(1, 2) ? { curEntry: rng.pick(PSC_HEADER_ENTRIES) } : { endEntry: rng.pick(PSC_HEADER_ENTRIES) };
      }
      if (what === 2 && point === 'snp.ghcb.ioio') a.ghcb = { rax: rng.pick(INTERESTING_U64) };
      return a;
    }
  }
}

function randomHostAction(rng: Prng, platform: AttackProgram['platform'], profile: ExecutionProfile): HostAction {
  const kind = rng.pick(HOST_ACTIONS_FOR_PLATFORM[platform]);
  switch (kind) {
    case 'tdx.seamcall': {
      const level = rng.pick([0, 0, 0, 1, 1, 2] as const);
      return { kind, op: rng.pick(TDX_SEAMCALL_OPS), gpa: pickGpa(rng, profile, level === 0 ? PAGE : level === 1 ? TWO_MB : 1n << 30n), level };
    }
    case 'tdx.replay-zeroed': {
      const level = rng.pick([0, 0, 1] as const);
      return { kind, gpa: pickGpa(rng, profile, level === 0 ? PAGE : TWO_MB), level };
    }
    case 'tdx.post-interrupt': return { kind, vector: 32 + rng.below(224), afterChunks: 1 + rng.below(511) };
    case 'tdx.shared-ept': return { kind, gpa: pickGpa(rng, profile, PAGE), size: rng.pick([PAGE, TWO_MB]), mapped: rng.chance(1, 2) };
    case 'snp.rmpupdate': {
      const pageSize = rng.chance(1, 4) ? '2m' : '4k';
      const spa = pickGpa(rng, profile, pageSize === '2m' ? TWO_MB : PAGE);
      return { kind, spa, assigned: rng.chance(1, 2), pageSize, gpa: rng.chance(7, 8) ? spa : pickGpa(rng, profile, PAGE) };
    }
    case 'snp.psmash': return { kind, spa: pickGpa(rng, profile, TWO_MB) };
    case 'snp.unvalidate': return { kind, spa: pickGpa(rng, profile, PAGE) };
    case 'snp.npt-page-size': return { kind, gpa: pickGpa(rng, profile, TWO_MB), size: rng.chance(1, 2) ? '2m' : '4k' };
    case 'snp.capture':
    case 'snp.restore': return { kind, spa: pickGpa(rng, profile, PAGE), slot: rng.below(4) };
    case 'inject': {
      const vector = platform === 'tdx' ? 32 + rng.below(224) : rng.pick([29, 29, 14, 13, 32 + rng.below(224), rng.below(256)]);
      return vector === 29 ? { kind, vector, errorCode: rng.pick([0x404n, 0x7bn, 0x72n, 0x400n]) } : { kind, vector };
    }
    case 'shared-write': {
      const size = rng.pick([1, 2, 4, 8] as const);
      return { kind, gpa: pickGpa(rng, profile, BigInt(size)), value: rng.next64() & ((1n << BigInt(8 * size)) - 1n), size };
    }
  }
}

function randomDecision(rng: Prng, program: AttackProgram, profile: ExecutionProfile): Decision {
  const reached = [...profile.callCounts].filter(([, n]) => n > 0);
  if (reached.length > 0 && (profile.vmmExits === 0 || rng.chance(2, 3))) {
    const [point, count] = rng.pick(reached);
    // Mostly a call that happened; sometimes the next one (reached only if the guest retries).
    const occurrence = rng.chance(7, 8) ? rng.below(count) : count;
    const d: Decision = { at: 'call', point, occurrence, answer: randomAnswer(rng, point) };
    // A lie repeated for ever is how a guest's retry loop is tested.
    if (rng.chance(1, 6)) d.repeat = rng.pick([4, 64, 1_000_000, 1_000_000]);
    return d;
  }
  return { at: 'exit', exitIndex: rng.below(Math.max(1, profile.vmmExits)), action: randomHostAction(rng, program.platform, profile) };
}

/** One structural change to a decision (its answer, its aim, or its parameters). */
function changeDecision(rng: Prng, d: Decision, program: AttackProgram, profile: ExecutionProfile): Decision {
  if (d.at === 'call') {
    switch (rng.below(3)) {
      case 0: return { ...d, answer: randomAnswer(rng, d.point) };
      case 1: return { ...d, occurrence: Math.max(0, d.occurrence + rng.pick([-1, 1, -8, 8])) };
      default: return d.repeat === undefined ? { ...d, repeat: rng.pick([2, 64, 1_000_000]) } : { at: d.at, point: d.point, occurrence: d.occurrence, answer: d.answer };
    }
  }
  if (rng.chance(1, 2)) return { ...d, exitIndex: Math.max(0, d.exitIndex + rng.pick([-1, 1, -16, 16])) };
  return { ...d, action: randomHostAction(rng, program.platform, profile) };
}

export interface MutateOptions {
  /**
   * Keep the parent's launch part (launch actions, memory description) as it is: mutate only what
   * the VMM does at run time, so the mutant starts from the parent's launch snapshot. The campaign
   * asks for it once fresh launches have had their share of its cost (execution-cost.ts).
   */
  keepLaunch?: boolean;
  /** The campaign's launch tactics still to try (tactics.ts): each is tried once before any again. */
  launchDeck?: LaunchTacticDeck;
}

/**
 * A mutant of `program`: 1–4 stacked structural mutations, sometimes spliced with `other`. An
 * insertion is a random decision, or (one in two) a whole tactic from the dictionary
 * (tactics.ts), which may also add a launch action.
 */
export function mutate(rng: Prng, program: AttackProgram, profile: ExecutionProfile, other?: AttackProgram, options: MutateOptions = {}): AttackProgram {
  const keepLaunch = options.keepLaunch ?? false;
  let decisions = [...program.decisions];
  let launch = [...(program.launch ?? [])];
  let memoryDescription = program.memoryDescription;
  const rounds = 1 + rng.below(4);
  for (let i = 0; i < rounds; i++) {
    const op = decisions.length === 0 ? 0 : rng.below(other && other.decisions.length > 0 ? 5 : 4);
    switch (op) {
      case 0:
      case 1: {
        const tactic = rng.chance(1, 2) ? pickTactic(rng, program.platform, profile, {
          launch: !keepLaunch, ...(memoryDescription ? { memoryDescription } : {}), ...(options.launchDeck ? { launchDeck: options.launchDeck } : {}),
        }) : undefined;
        if (tactic) {
          decisions.splice(rng.below(decisions.length + 1), 0, ...tactic.decisions);
          launch.push(...(tactic.launch ?? []));
          if (tactic.memoryDescription) memoryDescription = { ...memoryDescription, ...tactic.memoryDescription };
        } else {
          decisions.splice(rng.below(decisions.length + 1), 0, randomDecision(rng, program, profile));
        }
        break;
      }
      case 2:
        // Launch actions go too, now and then: a descendant without them runs from the snapshot again.
        if (!keepLaunch && launch.length > 0 && rng.chance(1, 4)) launch.splice(rng.below(launch.length), 1);
        else if (!keepLaunch && memoryDescription && rng.chance(1, 8)) memoryDescription = undefined;
        else decisions.splice(rng.below(decisions.length), 1);
        break;
      case 3: {
        const at = rng.below(decisions.length);
        decisions[at] = changeDecision(rng, decisions[at]!, program, profile);
        break;
      }
      case 4: {
        const cut = rng.below(decisions.length + 1);
        const otherDecisions = other!.decisions;
        decisions = [...decisions.slice(0, cut), ...otherDecisions.slice(rng.below(otherDecisions.length))];
        break;
      }
    }
  }
  const limit = Math.min(MAX_MUTANT_DECISIONS, MAX_DECISIONS);
  const mutant: AttackProgram = { platform: program.platform, decisions: decisions.slice(0, limit) };
  if (launch.length > 0) mutant.launch = launch.slice(0, limit);
  if (memoryDescription) mutant.memoryDescription = memoryDescription;
  // Several vCPUs: the VMM's vCPU schedule is a decision too (who runs when, for how long). With
  // one vCPU no random draw is spent here, so such campaigns stay what they were.
  if ((profile.vcpus ?? 1) > 1 && (!program.schedule || rng.chance(1, 4))) {
    mutant.schedule = { policy: rng.pick(SCHEDULE_POLICIES), seed: rng.next64(), quantum: rng.pick(SCHEDULE_QUANTA) };
  } else if (program.schedule) {
    mutant.schedule = program.schedule;
  }
  return mutant;
}
