// An attack program: what a hostile VMM does, as data. It is a list of decisions, each taken at a
// decision point the real VMM has:
//   - `call`: the `occurrence`-th call (0-based, counted from the start of the execution) of one
//     VMM policy method (TdxVmmPolicy, the SNP VMM's exits) is answered with `answer` instead of
//     honestly;
//   - `exit`: right after the guest's `exitIndex`-th exit to the VMM (0-based), before the guest
//     resumes, the VMM takes `action` through its host interface (SEAMCALLs, RMPUPDATE/PSMASH,
//     its own EPT/NPT, shared memory, event injection).
// A program may also carry `launch` actions and a `memoryDescription`: what the VMM does before the
// guest's first instruction (the initial image it loads, extra pages it adds to the launch, host
// SEAMCALLs / RMPUPDATEs before finalizing, the memory it describes to the firmware). They are
// part of the launch, so an execution of such a program launches a fresh VM instead of restoring
// the campaign's snapshot (slower, and therefore rare in a campaign).
// Every decision is something a real hypervisor can do under the threat model, and nothing more:
// no decision reads or writes private memory. The format is versioned and stable: files written by
// `minivisor fuzz` (findings, corpus) and hand-written scripted attacks use it. Bigints are
// serialised as "0x…" strings (negative: "-0x…").

import { SCHEDULE_POLICIES, type SchedulePolicy } from '../cpu/vcpu-scheduler.js';
import { escapeControls } from '../shared/quote.js';
import { MASK64 } from '../shared/u64.js';

export const ATTACK_PROGRAM_FORMAT = 'minivisor-attack-program';
export const ATTACK_PROGRAM_VERSION = 1;

export type AttackPlatform = 'tdx' | 'snp';

/** Decision points that are VMM policy calls, by platform. */
export const TDX_CALL_POINTS = [
  'tdx.onAcceptViolation', 'tdx.onPrivateEptViolation', 'tdx.onPendingAccess', 'tdx.onSharedEptViolation',
  'tdx.mapGpa', 'tdx.reportFatalError', 'tdx.getTdVmCallInfo', 'tdx.instructionIo', 'tdx.instructionHlt', 'tdx.otherVmcall',
] as const;
/**
 * SNP: the NPF and HLT exits, and VMGEXIT split by what the guest asked for (GHCB MSR protocol
 * request, or the SW_EXITCODE of a GHCB-page request), so a lie can target one request type.
 */
export const SNP_CALL_POINTS = [
  'snp.onNpf', 'snp.onHlt',
  'snp.msr.sevInfo', 'snp.msr.cpuid', 'snp.msr.registerGhcb', 'snp.msr.psc', 'snp.msr.hvFeatures', 'snp.msr.other',
  'snp.ghcb.ioio', 'snp.ghcb.psc', 'snp.ghcb.hvFeatures', 'snp.ghcb.other',
] as const;
export type TdxCallPoint = (typeof TDX_CALL_POINTS)[number];
export type SnpCallPoint = (typeof SNP_CALL_POINTS)[number];
export type CallPoint = TdxCallPoint | SnpCallPoint;

export const VMCALL_RETURN_REGS = ['rdx', 'rbx', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
export type VmcallReturnReg = (typeof VMCALL_RETURN_REGS)[number];

/** Whether the VMM first does what the honest VMM would (its side effects), or nothing. */
export type Effect = 'honest' | 'none';

export const EPT_ACTIONS = ['aug-4k', 'aug-2m', 'aug-other', 'refuse', 'stop'] as const;
export const NPF_ACTIONS = ['psmash', 'make-private', 'make-shared', 'npt-2m', 'npt-4k', 'refuse', 'stop'] as const;
export const GHCB_FIELDS = ['swExitInfo1', 'swExitInfo2', 'rax'] as const;
export type GhcbField = (typeof GHCB_FIELDS)[number];

export type Answer =
  /** What the honest VMM does (explicitly; the same as no decision). */
  | { kind: 'honest' }
  /** Resume the guest without doing anything: a HLT woken spuriously, an exit ignored. */
  | { kind: 'resume' }
  /** Stop the guest (denial of service: within a VMM's power, never a finding by itself). */
  | { kind: 'stop' }
  /** TDX: any TDG.VP.VMCALL return (R10 = status, R11 = output, Instruction.IO data, …) after `effect`. */
  | { kind: 'vmcall-return'; effect: Effect; regs: Partial<Record<VmcallReturnReg, bigint>> }
  /**
   * TDX MapGPA: really convert `convertBytes` from the start of the request (0 = nothing, more
   * than the request = all of it), then answer `status` (TDVMCALL status: 0 SUCCESS, 1 RETRY,
   * 0x8000000000000000 INVALID_OPERAND…) with R11 = R12 + `resumeDelta` when given.
   * `sharedEptOnly`: only flip the VMM's own shared EPT for those bytes and keep the private
   * pages (no REMOVE / AUG): the guest then has the same GPA mapped both ways.
   */
  | { kind: 'map-gpa'; convertBytes: bigint; status: bigint; resumeDelta?: bigint; sharedEptOnly?: boolean }
  /**
   * TDX EPT violation (ACCEPT, private, pending or shared): AUG the page at 4K or 2M, AUG another
   * GPA (`gpa + otherDelta`) instead, refuse (resume, nothing done) or stop.
   */
  | { kind: 'ept'; action: (typeof EPT_ACTIONS)[number]; otherDelta?: bigint }
  /** SNP #VMEXIT(NPF): PSMASH, convert, change the NPT page size, refuse or stop. */
  | { kind: 'npf'; action: (typeof NPF_ACTIONS)[number] }
  /**
   * SNP VMGEXIT: `effect` (the honest work; for a GHCB PSC optionally only the first
   * `pscEntries` entries), then override what the guest reads back: the GHCB MSR value (MSR
   * protocol responses), GHCB fields, and the PSC buffer header (cur_entry, end_entry, reserved).
   */
  | {
      kind: 'vmgexit'; effect: Effect; pscEntries?: number; msr?: bigint;
      ghcb?: Partial<Record<GhcbField, bigint>>;
      pscHeader?: { curEntry?: number; endEntry?: number; reserved?: number };
    }
  /**
   * SNP GHCB GPA registration (MSR protocol request 0x012): the response (0x013) names another GFN
   * than the guest's, as a hypervisor that will not work with that GPA does (GHCB spec, "GHCB GPA
   * Registration": "If hypervisor can work with the guest requested GPA then it must respond back
   * with the same GPA otherwise return -1"). `refuse`: all ones, nothing registered; `other-gfn`:
   * the guest's GFN + `gfnDelta` (modulo 2^52, the field's width), which the VMM registers instead.
   * Relative to the request, so it means the same on any target wherever the guest puts its GHCB.
   */
  | { kind: 'ghcb-registration'; response: (typeof GHCB_REGISTRATION_RESPONSES)[number]; gfnDelta?: bigint };

export const GHCB_REGISTRATION_RESPONSES = ['refuse', 'other-gfn'] as const;

export const TDX_SEAMCALL_OPS = ['BLOCK', 'UNBLOCK', 'TRACK', 'REMOVE', 'AUG', 'DEMOTE', 'PROMOTE', 'SEPT_ADD'] as const;
export type TdxSeamcallOp = (typeof TDX_SEAMCALL_OPS)[number];
export type SeptLevelNumber = 0 | 1 | 2;

export type HostAction =
  /** TDX: one SEAMCALL on `gpa` at `level` (0 = 4K, 1 = 2M, 2 = 1G). */
  | { kind: 'tdx.seamcall'; op: TdxSeamcallOp; gpa: bigint; level: SeptLevelNumber }
  /** TDX: BLOCK + TRACK + REMOVE then AUG: the page comes back PENDING and zeroed (a replay). */
  | { kind: 'tdx.replay-zeroed'; gpa: bigint; level: 0 | 1 }
  /** TDX: post an interrupt that becomes pending after `afterChunks` 4K chunks of a 2M ACCEPT. */
  | { kind: 'tdx.post-interrupt'; vector: number; afterChunks: number }
  /** TDX: map or unmap shared GPAs in the VMM's own shared EPT. */
  | { kind: 'tdx.shared-ept'; gpa: bigint; size: bigint; mapped: boolean }
  /** SNP: RMPUPDATE of system page `spa` (assigned to the guest's ASID or to none). */
  | { kind: 'snp.rmpupdate'; spa: bigint; assigned: boolean; pageSize: '4k' | '2m'; gpa: bigint }
  | { kind: 'snp.psmash'; spa: bigint }
  /**
   * SNP: take a validated page's validation away behind the guest's back: PSMASH its 2M entry if
   * it has one, then RMPUPDATE it assigned to the guest again (which clears Validated, APM
   * §15.36.6). The guest's next access takes #VC 0x404 (page not validated).
   */
  | { kind: 'snp.unvalidate'; spa: bigint }
  | { kind: 'snp.npt-page-size'; gpa: bigint; size: '4k' | '2m' }
  /** SNP: the host copies the ciphertext of page `spa` into its own memory (slot `slot`)… */
  | { kind: 'snp.capture'; spa: bigint; slot: number }
  /** …and later writes it back to the same page, which it must own then (a replay). */
  | { kind: 'snp.restore'; spa: bigint; slot: number }
  /** Inject `vector` (SNP: any, including #VC 29; TDX: external interrupts 32–255 only). */
  | { kind: 'inject'; vector: number; errorCode?: bigint }
  /** Write `size` bytes of `value` (little endian) to a shared page at `gpa`. */
  | { kind: 'shared-write'; gpa: bigint; value: bigint; size: 1 | 2 | 4 | 8 };

/**
 * Before launch: what the VMM does while it builds the initial image and the launch, before
 * TDH.MR.FINALIZE / SNP_LAUNCH_FINISH. The hardware measures all of it; the guest cannot tell
 * from inside, so it must check what it is given.
 */
export type LaunchAction =
  /** Write `size` bytes of `value` (little endian) into the initial image (config page, firmware, guest image) before it is measured. */
  | { kind: 'image-write'; gpa: bigint; value: bigint; size: 1 | 2 | 4 | 8 }
  /** TDX: TDH.MEM.PAGE.ADD of one more page, filled with the byte `fill` (mapped and accepted for the TD at launch). */
  | { kind: 'tdx.page-add'; gpa: bigint; fill: number }
  /** TDX: a host SEAMCALL on another CPU holds the SEPT entry of `gpa` at `level` locked for the whole run (OPERAND_BUSY). */
  | { kind: 'tdx.lock-entry'; gpa: bigint; level: SeptLevelNumber }
  /** SNP: RMPUPDATE + SNP_LAUNCH_UPDATE(NORMAL) of one more page, filled with `fill` (validated at launch). */
  | { kind: 'snp.launch-page'; gpa: bigint; fill: number }
  /**
   * SNP: the SNP_LAUNCH_UPDATE page type the CPUID page goes in with (SEV-SNP Firmware ABI §8.17):
   * CPUID (honest: the firmware checks the table against the CPU), NORMAL or UNMEASURED (the same
   * table, unchecked), or ZERO (no table: the guest terminates, as Linux setup_cpuid_table does).
   */
  | { kind: 'snp.cpuid-page'; type: (typeof CPUID_PAGE_TYPES)[number] }
  /** Host actions that need no running guest. */
  | Extract<HostAction, { kind: 'tdx.seamcall' | 'tdx.shared-ept' | 'snp.rmpupdate' | 'snp.psmash' | 'snp.npt-page-size' }>;

export const CPUID_PAGE_TYPES = ['CPUID', 'NORMAL', 'UNMEASURED', 'ZERO'] as const;

export type Decision =
  /** `repeat` (default 1): the answer applies to that many consecutive occurrences from `occurrence`. */
  | { at: 'call'; point: CallPoint; occurrence: number; repeat?: number; answer: Answer }
  | { at: 'exit'; exitIndex: number; action: HostAction };

/** One range of a memory map as the VMM describes it (struct mv_e820_entry: 1 RAM, 2 reserved, 15 unaccepted). */
export interface MemoryRange {
  addr: bigint;
  size: bigint;
  type: number;
}

/** At most this many ranges (MV_MAP_OVERRIDE_MAX_ENTRIES: what the config page holds). */
export const MAX_MEMORY_RANGES = 128;

/**
 * What the VMM tells the firmware about memory (the firmware config it writes before launch):
 * its size, how much to pre-accept, and the memory map as ranges (struct mv_map_override in the
 * config page, like a TD HOB's resource descriptors or QEMU's fw_cfg e820 table). The honest
 * firmware builds its map from what it accepted itself and never reads the ranges; a firmware
 * that passes the VMM's map through (the map-from-config fixture, the e820-unchecked variant)
 * hands them to the decompressor. Part of the launch: a fresh VM per execution.
 */
export interface MemoryDescription {
  memoryBytes?: bigint;
  preAcceptBytes?: bigint;
  ranges?: MemoryRange[];
}

export interface AttackProgram {
  platform: AttackPlatform;
  decisions: Decision[];
  /** What the VMM does before launch (see LaunchAction), in order. */
  launch?: LaunchAction[];
  memoryDescription?: MemoryDescription;
  /**
   * With several vCPUs (a target with `vcpus`): how the VMM schedules them on its host CPUs, a
   * decision every hypervisor makes. From where executions start, the seeded vCPU scheduler
   * (src/cpu/vcpu-scheduler.ts) takes its turns from this policy, seed and quantum instead of the
   * boot's. Ignored with one vCPU.
   */
  schedule?: VcpuSchedule;
}

export interface VcpuSchedule {
  policy: SchedulePolicy;
  seed: bigint;
  /** The most guest instructions a vCPU runs before a switch point. */
  quantum: number;
}

/** Whether executing `program` needs a fresh launch (it changes what happens before the first guest instruction). */
export function needsFreshLaunch(program: AttackProgram): boolean {
  const m = program.memoryDescription;
  return (program.launch?.length ?? 0) > 0 || (m !== undefined && (m.memoryBytes !== undefined || m.preAcceptBytes !== undefined || m.ranges !== undefined));
}

/**
 * The launch part of a program (launch actions, the memory description's launch fields) as a key:
 * programs with equal keys reach the first decision point in the same state, so one launch of it
 * (snapshotted there) serves them all.
 */
export function launchKey(program: AttackProgram): string {
  const m = program.memoryDescription;
  const parts = [program.launch ?? [], m?.memoryBytes, m?.preAcceptBytes, m?.ranges];
  return JSON.stringify(parts, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
}

/** Which answers make sense at which decision point (the validator and the mutator both use it). */
export const ANSWERS_FOR_POINT: Record<CallPoint, readonly Answer['kind'][]> = {
  'tdx.onAcceptViolation': ['honest', 'ept', 'resume', 'stop'],
  'tdx.onPrivateEptViolation': ['honest', 'ept', 'resume', 'stop'],
  'tdx.onPendingAccess': ['honest', 'ept', 'resume', 'stop'],
  'tdx.onSharedEptViolation': ['honest', 'ept', 'resume', 'stop'],
  'tdx.mapGpa': ['honest', 'map-gpa', 'vmcall-return', 'stop'],
  'tdx.reportFatalError': ['honest', 'vmcall-return', 'stop'],
  'tdx.getTdVmCallInfo': ['honest', 'vmcall-return', 'stop'],
  'tdx.instructionIo': ['honest', 'vmcall-return', 'stop'],
  'tdx.instructionHlt': ['honest', 'vmcall-return', 'stop'],
  'tdx.otherVmcall': ['honest', 'vmcall-return', 'stop'],
  'snp.onNpf': ['honest', 'npf', 'resume', 'stop'],
  'snp.onHlt': ['honest', 'resume', 'stop'],
  'snp.msr.sevInfo': ['honest', 'vmgexit', 'stop'],
  'snp.msr.cpuid': ['honest', 'vmgexit', 'stop'],
  'snp.msr.registerGhcb': ['honest', 'ghcb-registration', 'vmgexit', 'stop'],
  'snp.msr.psc': ['honest', 'vmgexit', 'stop'],
  'snp.msr.hvFeatures': ['honest', 'vmgexit', 'stop'],
  'snp.msr.other': ['honest', 'vmgexit', 'stop'],
  'snp.ghcb.ioio': ['honest', 'vmgexit', 'stop'],
  'snp.ghcb.psc': ['honest', 'vmgexit', 'stop'],
  'snp.ghcb.hvFeatures': ['honest', 'vmgexit', 'stop'],
  'snp.ghcb.other': ['honest', 'vmgexit', 'stop'],
};

export const HOST_ACTIONS_FOR_PLATFORM: Record<AttackPlatform, readonly HostAction['kind'][]> = {
  tdx: ['tdx.seamcall', 'tdx.replay-zeroed', 'tdx.post-interrupt', 'tdx.shared-ept', 'inject', 'shared-write'],
  snp: ['snp.rmpupdate', 'snp.psmash', 'snp.unvalidate', 'snp.npt-page-size', 'snp.capture', 'snp.restore', 'inject', 'shared-write'],
};

export const LAUNCH_ACTIONS_FOR_PLATFORM: Record<AttackPlatform, readonly LaunchAction['kind'][]> = {
  tdx: ['image-write', 'tdx.page-add', 'tdx.lock-entry', 'tdx.seamcall', 'tdx.shared-ept'],
  snp: ['image-write', 'snp.launch-page', 'snp.cpuid-page', 'snp.rmpupdate', 'snp.psmash', 'snp.npt-page-size'],
};

export function callPointsFor(platform: AttackPlatform): readonly CallPoint[] {
  return platform === 'tdx' ? TDX_CALL_POINTS : SNP_CALL_POINTS;
}

// ------------------------------------------------------------------ validation

export class AttackProgramError extends Error {
  override name = 'AttackProgramError';
}

/** Occurrence and exit indices beyond this cannot be reached by any execution we run. */
export const MAX_INDEX = 1_000_000_000;
export const MAX_DECISIONS = 10_000;

type Json = unknown;

class Reader {
  constructor(readonly path: string, readonly value: Json) {}

  fail(why: string): never {
    throw new AttackProgramError(`${this.path}: ${why}`);
  }

  object(): Record<string, Json> {
    if (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value)) this.fail('expected an object');
    return this.value as Record<string, Json>;
  }

  field(name: string): Reader {
    return new Reader(`${this.path}.${name}`, this.object()[name]);
  }

  has(name: string): boolean {
    return this.object()[name] !== undefined;
  }

  /** Rejects fields other than `allowed` (a typo in a hand-written attack must not be ignored). */
  only(...allowed: string[]): void {
    for (const key of Object.keys(this.object())) if (!allowed.includes(key)) this.fail(`unknown field "${key}"`);
  }

  oneOf<T extends string>(choices: readonly T[]): T {
    if (typeof this.value !== 'string' || !choices.includes(this.value as T)) this.fail(`expected one of ${choices.join(', ')}`);
    return this.value as T;
  }

  boolean(): boolean {
    if (typeof this.value !== 'boolean') this.fail('expected true or false');
    return this.value;
  }

  int(min: number, max: number): number {
    if (typeof this.value !== 'number' || !Number.isInteger(this.value) || this.value < min || this.value > max) {
      this.fail(`expected an integer in [${min}, ${max}]`);
    }
    return this.value;
  }

  /** A bigint written as a "0x…" hex string (or "-0x…" when `signed`). */
  bigint(signed = false): bigint {
    const v = this.value;
    if (typeof v !== 'string' || !/^-?0x[0-9a-fA-F]{1,16}$/.test(v)) this.fail('expected a hex string like "0x1000"');
    const negative = v.startsWith('-');
    if (negative && !signed) this.fail('must not be negative');
    const magnitude = BigInt(negative ? v.slice(1) : v);
    if (magnitude > MASK64) this.fail('does not fit in 64 bits');
    return negative ? -magnitude : magnitude;
  }

  array(): Reader[] {
    if (!Array.isArray(this.value)) this.fail('expected an array');
    return this.value.map((v, i) => new Reader(`${this.path}[${i}]`, v));
  }
}

function readAnswer(r: Reader, point: CallPoint): Answer {
  const kind = r.field('kind').oneOf(ANSWERS_FOR_POINT[point]);
  switch (kind) {
    case 'honest':
    case 'resume':
    case 'stop':
      r.only('kind');
      return { kind };
    case 'vmcall-return': {
      r.only('kind', 'effect', 'regs');
      const regsReader = r.field('regs');
      const regs: Partial<Record<VmcallReturnReg, bigint>> = {};
      for (const name of Object.keys(regsReader.object())) {
        const reg = new Reader(`${regsReader.path}`, name).oneOf(VMCALL_RETURN_REGS);
        regs[reg] = regsReader.field(name).bigint();
      }
      return { kind, effect: r.field('effect').oneOf(['honest', 'none'] as const), regs };
    }
    case 'map-gpa': {
      r.only('kind', 'convertBytes', 'status', 'resumeDelta', 'sharedEptOnly');
      const a: Answer = { kind, convertBytes: r.field('convertBytes').bigint(), status: r.field('status').bigint() };
      if (r.has('resumeDelta')) a.resumeDelta = r.field('resumeDelta').bigint(true);
      if (r.has('sharedEptOnly')) a.sharedEptOnly = r.field('sharedEptOnly').boolean();
      return a;
    }
    case 'ept': {
      r.only('kind', 'action', 'otherDelta');
      const action = r.field('action').oneOf(EPT_ACTIONS);
      if (action === 'aug-other' && !r.has('otherDelta')) r.fail('aug-other needs otherDelta');
      return r.has('otherDelta') ? { kind, action, otherDelta: r.field('otherDelta').bigint(true) } : { kind, action };
    }
    case 'npf':
      r.only('kind', 'action');
      return { kind, action: r.field('action').oneOf(NPF_ACTIONS) };
    case 'ghcb-registration': {
      r.only('kind', 'response', 'gfnDelta');
      const response = r.field('response').oneOf(GHCB_REGISTRATION_RESPONSES);
      if (response === 'refuse') {
        if (r.has('gfnDelta')) r.field('gfnDelta').fail('a refusal names no GFN (leave gfnDelta out)');
        return { kind, response };
      }
      if (!r.has('gfnDelta')) r.fail('other-gfn needs gfnDelta');
      const gfnDelta = r.field('gfnDelta').bigint(true);
      if (gfnDelta === 0n) r.field('gfnDelta').fail('0 names the guest\'s own GFN (that is the honest answer)');
      return { kind, response, gfnDelta };
    }
    case 'vmgexit': {
      r.only('kind', 'effect', 'pscEntries', 'msr', 'ghcb', 'pscHeader');
      const a: Extract<Answer, { kind: 'vmgexit' }> = { kind, effect: r.field('effect').oneOf(['honest', 'none'] as const) };
      if (r.has('pscEntries')) a.pscEntries = r.field('pscEntries').int(0, 253);
      if (r.has('msr')) a.msr = r.field('msr').bigint();
      if (r.has('ghcb')) {
        const g = r.field('ghcb');
        g.only(...GHCB_FIELDS);
        a.ghcb = {};
        for (const f of GHCB_FIELDS) if (g.has(f)) a.ghcb[f] = g.field(f).bigint();
      }
      if (r.has('pscHeader')) {
        const h = r.field('pscHeader');
        h.only('curEntry', 'endEntry', 'reserved');
        a.pscHeader = {};
        if (h.has('curEntry')) a.pscHeader.curEntry = h.field('curEntry').int(0, 0xffff);
        if (h.has('endEntry')) a.pscHeader.endEntry = h.field('endEntry').int(0, 0xffff);
        if (h.has('reserved')) a.pscHeader.reserved = h.field('reserved').int(0, 0xffffffff);
      }
      return a;
    }
  }
}

function readHostAction(r: Reader, platform: AttackPlatform): HostAction {
  const kind = r.field('kind').oneOf(HOST_ACTIONS_FOR_PLATFORM[platform]);
  switch (kind) {
    case 'tdx.seamcall':
      r.only('kind', 'op', 'gpa', 'level');
      return { kind, op: r.field('op').oneOf(TDX_SEAMCALL_OPS), gpa: r.field('gpa').bigint(), level: r.field('level').int(0, 2) as SeptLevelNumber };
    case 'tdx.replay-zeroed':
      r.only('kind', 'gpa', 'level');
      return { kind, gpa: r.field('gpa').bigint(), level: r.field('level').int(0, 1) as 0 | 1 };
    case 'tdx.post-interrupt':
      r.only('kind', 'vector', 'afterChunks');
      return { kind, vector: r.field('vector').int(32, 255), afterChunks: r.field('afterChunks').int(1, 511) };
    case 'tdx.shared-ept':
      r.only('kind', 'gpa', 'size', 'mapped');
      return { kind, gpa: r.field('gpa').bigint(), size: r.field('size').bigint(), mapped: r.field('mapped').boolean() };
    case 'snp.rmpupdate':
      r.only('kind', 'spa', 'assigned', 'pageSize', 'gpa');
      return {
        kind, spa: r.field('spa').bigint(), assigned: r.field('assigned').boolean(),
        pageSize: r.field('pageSize').oneOf(['4k', '2m'] as const), gpa: r.field('gpa').bigint(),
      };
    case 'snp.psmash':
    case 'snp.unvalidate':
      r.only('kind', 'spa');
      return { kind, spa: r.field('spa').bigint() };
    case 'snp.npt-page-size':
      r.only('kind', 'gpa', 'size');
      return { kind, gpa: r.field('gpa').bigint(), size: r.field('size').oneOf(['4k', '2m'] as const) };
    case 'snp.capture':
    case 'snp.restore':
      r.only('kind', 'spa', 'slot');
      return { kind, spa: r.field('spa').bigint(), slot: r.field('slot').int(0, 15) };
    case 'inject': {
      r.only('kind', 'vector', 'errorCode');
      const vector = r.field('vector').int(platform === 'tdx' ? 32 : 0, 255);
      return r.has('errorCode') ? { kind, vector, errorCode: r.field('errorCode').bigint() } : { kind, vector };
    }
    case 'shared-write':
      r.only('kind', 'gpa', 'value', 'size');
      return { kind, gpa: r.field('gpa').bigint(), ...readSizedValue(r) };
  }
}

function readSizedValue(r: Reader): { value: bigint; size: 1 | 2 | 4 | 8 } {
  const sizeReader = r.field('size');
  const size = sizeReader.int(1, 8);
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8) sizeReader.fail('expected 1, 2, 4 or 8');
  const value = r.field('value').bigint();
  if (value >> BigInt(size * 8) !== 0n) r.field('value').fail(`does not fit in ${size} bytes`);
  return { value, size: size as 1 | 2 | 4 | 8 };
}

function readLaunchAction(r: Reader, platform: AttackPlatform): LaunchAction {
  const kind = r.field('kind').oneOf(LAUNCH_ACTIONS_FOR_PLATFORM[platform]);
  switch (kind) {
    case 'image-write':
      r.only('kind', 'gpa', 'value', 'size');
      return { kind, gpa: r.field('gpa').bigint(), ...readSizedValue(r) };
    case 'tdx.page-add':
    case 'snp.launch-page':
      r.only('kind', 'gpa', 'fill');
      return { kind, gpa: r.field('gpa').bigint(), fill: r.field('fill').int(0, 255) };
    case 'tdx.lock-entry':
      r.only('kind', 'gpa', 'level');
      return { kind, gpa: r.field('gpa').bigint(), level: r.field('level').int(0, 2) as SeptLevelNumber };
    case 'snp.cpuid-page':
      r.only('kind', 'type');
      return { kind, type: r.field('type').oneOf(CPUID_PAGE_TYPES) };
    default:
      return readHostAction(r, platform) as LaunchAction;
  }
}

function readDecision(r: Reader, platform: AttackPlatform): Decision {
  const at = r.field('at').oneOf(['call', 'exit'] as const);
  if (at === 'call') {
    r.only('at', 'point', 'occurrence', 'repeat', 'answer');
    const point = r.field('point').oneOf(callPointsFor(platform));
    const d: Decision = { at, point, occurrence: r.field('occurrence').int(0, MAX_INDEX), answer: readAnswer(r.field('answer'), point) };
    if (r.has('repeat')) d.repeat = r.field('repeat').int(1, MAX_INDEX);
    return d;
  }
  r.only('at', 'exitIndex', 'action');
  return { at, exitIndex: r.field('exitIndex').int(0, MAX_INDEX), action: readHostAction(r.field('action'), platform) };
}

/** Validates parsed JSON and returns the typed program; throws AttackProgramError naming the bad field. */
export function parseAttackProgram(json: unknown, path = 'program'): AttackProgram {
  const r = new Reader(path, json);
  r.only('format', 'version', 'platform', 'decisions', 'launch', 'memoryDescription', 'schedule');
  if (r.field('format').value !== ATTACK_PROGRAM_FORMAT) r.field('format').fail(`expected "${ATTACK_PROGRAM_FORMAT}"`);
  if (r.field('version').value !== ATTACK_PROGRAM_VERSION) r.field('version').fail(`unsupported version (this minivisor reads ${ATTACK_PROGRAM_VERSION})`);
  const platform = r.field('platform').oneOf(['tdx', 'snp'] as const);
  const list = r.field('decisions').array();
  if (list.length > MAX_DECISIONS) r.field('decisions').fail(`more than ${MAX_DECISIONS} decisions`);
  const program: AttackProgram = { platform, decisions: list.map((d) => readDecision(d, platform)) };
  if (r.has('launch')) {
    const launch = r.field('launch').array();
    if (launch.length > MAX_DECISIONS) r.field('launch').fail(`more than ${MAX_DECISIONS} launch actions`);
    program.launch = launch.map((a) => readLaunchAction(a, platform));
  }
  if (r.has('memoryDescription')) {
    const m = r.field('memoryDescription');
    m.only('memoryBytes', 'preAcceptBytes', 'ranges');
    program.memoryDescription = {};
    if (m.has('memoryBytes')) program.memoryDescription.memoryBytes = m.field('memoryBytes').bigint();
    if (m.has('preAcceptBytes')) program.memoryDescription.preAcceptBytes = m.field('preAcceptBytes').bigint();
    if (m.has('ranges')) {
      const ranges = m.field('ranges').array();
      if (ranges.length > MAX_MEMORY_RANGES) m.field('ranges').fail(`more than ${MAX_MEMORY_RANGES} ranges`);
      program.memoryDescription.ranges = ranges.map((r) => {
        r.only('addr', 'size', 'type');
        return { addr: r.field('addr').bigint(), size: r.field('size').bigint(), type: r.field('type').int(0, 0xffffffff) };
      });
    }
  }
  if (r.has('schedule')) {
    const s = r.field('schedule');
    s.only('policy', 'seed', 'quantum');
    program.schedule = { policy: s.field('policy').oneOf(SCHEDULE_POLICIES), seed: s.field('seed').bigint(), quantum: s.field('quantum').int(1, 0xffffffff) };
  }
  return program;
}

/** Parses attack-program JSON text (a file's contents). */
export function attackProgramFromJson(text: string, path = 'program'): AttackProgram {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AttackProgramError(`${path}: not JSON (${escapeControls(err instanceof Error ? err.message : String(err))})`);
  }
  return parseAttackProgram(json, path);
}

// ------------------------------------------------------------------ serialisation

function toJsonValue(v: unknown): unknown {
  if (typeof v === 'bigint') return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
  if (Array.isArray(v)) return v.map(toJsonValue);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, toJsonValue(x)]));
  }
  return v;
}

/** The program as plain JSON data (bigints as hex strings), with format and version. */
export function attackProgramToJsonValue(program: AttackProgram): unknown {
  return toJsonValue({ format: ATTACK_PROGRAM_FORMAT, version: ATTACK_PROGRAM_VERSION, ...program });
}

/** Canonical JSON text: one decision (launch action, memory range) per line, so diffs and READMEs stay readable. */
export function attackProgramToJson(program: AttackProgram): string {
  const value = attackProgramToJsonValue(program) as { decisions: unknown[]; launch?: unknown[]; memoryDescription?: { ranges?: unknown[] } };
  const list = (items: unknown[], indent = '  ') => (items.length === 0 ? '[]' : `[\n${items.map((d) => `${indent}  ${JSON.stringify(d)}`).join(',\n')}\n${indent}]`);
  const ranges = value.memoryDescription?.ranges;
  const head = {
    ...value, decisions: '__DECISIONS__', ...(value.launch ? { launch: '__LAUNCH__' } : {}),
    ...(ranges ? { memoryDescription: { ...value.memoryDescription, ranges: '__RANGES__' } } : {}),
  };
  let text = JSON.stringify(head, null, 2).replace('"__DECISIONS__"', list(value.decisions));
  if (value.launch) text = text.replace('"__LAUNCH__"', list(value.launch));
  if (ranges) text = text.replace('"__RANGES__"', list(ranges, '    '));
  return `${text}\n`;
}

/** One launch action in words. */
export function describeLaunchAction(a: LaunchAction): string {
  return `before launch: ${JSON.stringify(toJsonValue(a))}`;
}

/** One line in words, for finding READMEs and status output. */
export function describeDecision(d: Decision): string {
  const body = JSON.stringify(toJsonValue(d.at === 'call' ? d.answer : d.action));
  if (d.at === 'exit') return `at exit #${d.exitIndex}: ${body}`;
  const which = d.repeat !== undefined && d.repeat > 1 ? `#${d.occurrence}..#${d.occurrence + d.repeat - 1}` : `#${d.occurrence}`;
  return `call ${d.point} ${which}: answer ${body}`;
}
