// The TDX module and the CPU around it, as seen by one TD: it takes every vCPU exit, handles what
// the trusted side handles (TDCALL leaves, CPUID and MSRs from its tables, #VE for pending pages,
// HLT and port I/O, exceptions) and hands
// the rest to the untrusted VMM as a TD exit. The VMM reaches the TD only through `host`
// (SEAMCALLs, seamcall.ts) and its answers to TD exits (completeVmcall).
import { runsOnCpu } from '../vm-entry.js';
import { GateResyncGuard } from '../gate-resync.js';
import { executeFastSystemCall } from '../../cpu/fast-system-call.js';
import { cacheOrWaitFault } from '../../cpu/cache-or-wait.js';
import { rdpmcFault } from '../../cpu/rdpmc.js';
import { CR4_OSXSAVE } from '../../cpu/registers.js';
import type { Access, CacheOrWaitExit, CacheOrWaitInstruction, GateFaultExit, SystemCallExit, VmExit } from '../../cpu/exits.js';
import type { Space } from '../../memory/address-marker.js';
import type { Machine } from '../../cpu/machine.js';
import { tdxSharedBit } from '../../memory/address-marker.js';
/** The VMM and the fuzzer reach the shared bit through the platform (they do not import src/memory). */
export { tdxSharedBit };
import type { RunOutcome } from '../../shared/outcome.js';
import type { Trace, TraceValue } from '../../shared/trace.js';
import { BufferedHash, type BufferedHashState } from '../../shared/buffered-hash.js';
import type { Snapshottable } from '../../shared/snapshottable.js';
import { handleTdcall, type VmcallReg, VMCALL_REGS } from './tdcall.js';
import { handleCpuid, TD_XFAM } from './td-cpuid.js';
import { handleMsr } from './td-msr.js';
import { Sept, type SeptTables } from './sept.js';
import { accessAction } from './sept-legality.js';
import { septTopLevel, type SeptLevel, type SeptStateName } from './sept-states.js';
import { TdxVmmHandle } from './vmm-handle.js';
import { DF_VECTOR, GP_VECTOR, UD_VECTOR, VE_VECTOR } from '../../shared/x86-vectors.js';
import { EptQual, ExitReason, TD_EXIT_QUAL_CLEARED, VeInfo, ioExitQualification, ioInstructionInformation, type VeInfoFields } from './ve.js';
import { MASK64 } from '../../shared/u64.js';

/** The VMX exit reason of each cache-or-wait instruction (SDM Vol. 3D Appendix C: WBNOINVD exits as WBINVD). */
const CACHE_OR_WAIT_EXIT_REASON: Readonly<Record<CacheOrWaitInstruction, number>> = {
  invd: ExitReason.INVD, wbinvd: ExitReason.WBINVD, wbnoinvd: ExitReason.WBINVD, monitor: ExitReason.MONITOR, mwait: ExitReason.MWAIT,
};

export const TdAttributes = { DEBUG: 1n << 0n, SEPT_VE_DISABLE: 1n << 28n, PERFMON: 1n << 63n } as const;
/** TDCS metadata field IDs readable/writable by the guest (Linux `asm/shared/tdx.h`, reference A6). */
export const TdcsField = { CONFIG_FLAGS: 0x1110000300000016n, TD_CTLS: 0x1110000300000017n } as const;
export const CONFIG_FLAGS_FLEXIBLE_PENDING_VE = 1n << 1n;
/** TDCS CONFIG_FLAGS bit 2 NO_RBP_MOD (tdx_api_defs.h config_flags_t): TDG.VP.VMCALL may not select RBP. */
export const CONFIG_FLAGS_NO_RBP_MOD = 1n << 2n;
export const TD_CTLS_PENDING_VE_DISABLE = 1n << 0n;
/** NUM_RTMRS (td_control_structures.h) and SIZE_OF_SHA384_HASH_IN_BYTES (sha384.h). */
export const RTMR_COUNT = 4;
export const SHA384_BYTES = 48;

export interface TdConfig {
  gpaWidth: 48 | 52;
  /** TD ATTRIBUTES (TDG.VP.INFO RDX): DEBUG bit 0, SEPT_VE_DISABLE bit 28. */
  attributes: bigint;
  numVcpus?: number;
  maxVcpus?: number;
  /**
   * TDCS_CONFIG_FLAGS; bit 1 FLEXIBLE_PENDING_VE lets the guest change TD_CTLS.PENDING_VE_DISABLE through TDG.VM.WR;
   * bit 2 NO_RBP_MOD keeps RBP out of TDG.VP.VMCALL (tdcall.ts vpVmcall).
   */
  configFlags?: bigint;
}

/** Extended exit qualification of an EPT-violation TD exit (type in bits 3:0, info in 63:32). */
export type ExtendedExitQualification =
  | { type: 'none'; raw: bigint }
  | { type: 'accept'; raw: bigint; reqLevel: SeptLevel; errLevel: SeptLevel; errState: SeptStateName; isLeaf: boolean }
  | { type: 'pending-ept-violation'; raw: bigint };

export const EEQ_TYPE = { none: 0n, accept: 1n, 'pending-ept-violation': 6n } as const;

export type VmcallRegs = Record<VmcallReg, bigint>;

export type TdExit =
  | {
      /** GPA with bits 11:0 cleared; no GLA and exit-qualification bits 12:7 cleared (`td_other_exits.c`). */
      reason: 'ept-violation'; rip: bigint; gpa: bigint; access: Access; space: Space;
      exitQualification: bigint; eeq: ExtendedExitQualification;
      /** The private leaf state the access or ACCEPT ran into (a fact the VMM's mirror would know). */
      septState?: SeptStateName; outsideRam: boolean;
    }
  /** TDG.VP.VMCALL: the VMM sees the exposed registers; the others read as 0. */
  | { reason: 'tdvmcall'; rip: bigint; mask: bigint; regs: VmcallRegs };

export type TdStep = { kind: 'resume' } | { kind: 'td-exit'; exit: TdExit } | { kind: 'stop'; outcome: RunOutcome };
/** The step of every exit the module handles itself (most of them): one object, read only. */
export const TD_RESUME: TdStep = Object.freeze({ kind: 'resume' });

/**
 * An interrupt that arrives on the host CPU (IA32_INTR_PENDING) after `afterChunks` 4K chunks of
 * a 2M ACCEPT; the VMM then posts `vector` to the guest.
 */
export interface PendingInterrupt {
  vector: number;
  afterChunks: number;
}

/**
 * The EPT-violation exit qualification of a gate fault, by access and whether the page walk
 * made it (td_ept_violation.c; SDM Vol. 3C Table 28-7, §28.3.3.2): the one access bit (a fetch
 * is not a data read), GLA valid, and "translated" for an access by the instruction itself. The
 * walk's own access, a read of a paging-structure entry, is a data read whatever the instruction
 * does. Fixed per case: built once, not from BigInts per fault.
 */
const GATE_FAULT_QUAL: Readonly<Record<Access, readonly [bigint, bigint]>> = (() => {
  const walkRead = EptQual.READ | EptQual.GLA_VALID;
  const qual = (access: Access): bigint =>
    (access === 'read' ? EptQual.READ : access === 'write' ? EptQual.WRITE : EptQual.FETCH) | EptQual.GLA_VALID | EptQual.TRANSLATED;
  return { read: [qual('read'), walkRead], write: [qual('write'), walkRead], fetch: [qual('fetch'), walkRead] };
})();
/** TDG.VP.VMCALL<MapGPA> (GHCI 1.5 Table 3-x; Linux TDVMCALL_MAP_GPA). */
const TDVMCALL_MAP_GPA = 0x10001n;
/** HLT is F4; the vCPU reports RIP after it. */
const HLT_LENGTH = 1n;

/** A vCPU's TDG.VP.CPUIDVE.SET flags: #VE on every CPUID at CPL 0 (supervisor) or above (user). */
export interface CpuidVeControl { supervisor: boolean; user: boolean }

/** Everything the module keeps about a TD besides the machine itself. */
export interface TdModuleState {
  sept: SeptTables;
  veInfo: ReturnType<VeInfo['saveState']>[];
  cpuidVe: readonly CpuidVeControl[];
  tdCtls: bigint;
  notifyEnables: bigint;
  epoch: bigint;
  finalized: boolean;
  vcpusInitialized: ReadonlySet<number>;
  mrtd: Buffer | undefined;
  mrtdHash: BufferedHashState;
  rtmr: readonly Buffer[];
  hostLocks: ReadonlySet<number>;
  hostPriority: ReadonlySet<number>;
  guestLocks: ReadonlyMap<number, number>;
  msrValues: readonly ReadonlyMap<number, bigint>[];
  pendingInterrupt: PendingInterrupt | undefined;
  /** The posted-interrupt requests (PIR), 256 bits as eight 32-bit words, word 0 holding vectors 0..31. */
  pir: Uint32Array;
  vmcall: { length: number; mask: bigint } | undefined;
}

export class TdModule implements Snapshottable<TdModuleState> {
  readonly machine: Machine;
  readonly sept: Sept;
  readonly trace: Trace;
  readonly config: Required<TdConfig>;
  /** The untrusted VMM's handle (SEAMCALLs, shared memory, interrupts). */
  readonly host: TdxVmmHandle;
  /** VE info, one per vCPU (TDVPS): a #VE on one vCPU never makes another's #VE a #DF. */
  readonly #veInfos: VeInfo[];
  /**
   * TDVPS CPUID_SUPERVISOR_VE / CPUID_USER_VE, one pair per vCPU: set by the vCPU's own
   * TDG.VP.CPUIDVE.SET (tdg_vp_cpuidve_set.c), clear in a new TDVPS. While set, every CPUID at
   * that CPL (0, or above 0) is a #VE instead of the module's answer (td_cpuid.c).
   */
  cpuidVe: CpuidVeControl[];
  tdCtls: bigint;
  /** TDCS NOTIFY_ENABLES: bit 0 is guest-writable through TDG.VM.WR; the model raises no notification. */
  notifyEnables = 0n;
  /** TD epoch for TLB tracking (TDH.MEM.TRACK). */
  epoch = 1n;
  finalized = false;
  /** vCPUs TDH.VP.INIT ran on (they left the emulator's reset state for the TD's initial state). */
  readonly vcpusInitialized = new Set<number>();
  mrtd: Buffer | undefined;
  /** MRTD in progress: SHA-384 over the measured blocks and data, buffered (the digest is the same). */
  readonly mrtdHash = new BufferedHash('sha384');
  /**
   * RTMR[0..3], 48 bytes each: zero when the TD is built (tdh_mng_init.c), changed only by the
   * TD's own TDG.MR.RTMR.EXTEND (rtmr-extend.ts), which replaces the buffer.
   */
  rtmr: Buffer[] = Array.from({ length: RTMR_COUNT }, () => Buffer.alloc(SHA384_BYTES));
  /** SEPT entries the host currently holds locked (septLockKey): the guest gets OPERAND_BUSY. */
  readonly hostLocks = new Set<number>();
  /**
   * SEPT entries a vCPU holds locked because it is inside a 2M TDG.MEM.PAGE.ACCEPT that the
   * vCPU scheduler preempted between 4K chunks (septLockKey -> vCPU index): on hardware
   * the other CPUs run meanwhile, and their ACCEPT of that entry gets OPERAND_BUSY.
   */
  readonly guestLocks = new Map<number, number>();
  /**
   * SEPT entries whose host-priority (HP) bit is set (septLockKey): a host SEAMCALL found
   * the entry locked by a guest TDCALL (sept_lock_acquire_host in tdx_locks.h sets HP and returns
   * OPERAND_BUSY). Until the host gets the lock (which clears HP), a guest that takes the lock
   * finds HP set, lets go and gets OPERAND_BUSY_HOST_PRIORITY, reported to it as OPERAND_BUSY
   * (sept_lock_acquire_guest; tdx_td_dispatcher.c converts it for older TDs), so a guest cannot
   * starve the host of an entry. The dispatcher's HP_LOCK_TIMEOUT (TSC ticks, then a TD exit
   * TDX_HOST_PRIORITY_BUSY_TIMEOUT) is not modelled: the model has no TSC.
   */
  readonly hostPriority = new Set<number>();
  /**
   * Several vCPUs: where a 2M ACCEPT that has zeroed `done` of its 512 chunks is preempted
   * (a chunk count in (done, 512)), or undefined to let it finish. Set by the platform.
   */
  preemptAccept: ((done: number) => number | undefined) | undefined;
  /**
   * MSRs the TD accesses natively whose value the emulator's CPU does not keep (td-msr.ts), one
   * map per vCPU: each logical CPU has its own MSRs, and the module keeps a vCPU's in its TDVPS
   * and VMCS. One map for the whole TD let one vCPU read what another wrote.
   */
  readonly #msrValues: Map<number, bigint>[];
  pendingInterrupt: PendingInterrupt | undefined;
  /**
   * The posted-interrupt requests the guest has not taken yet: the 256-bit PIR of the
   * posted-interrupt descriptor (Intel SDM Vol. 3C §29.6), bit v of word v >> 5 for vector v.
   * Posting a vector sets its bit, so a vector posted again before delivery is one request
   * (coalesced). On TD entry the CPU ORs PIR into VIRR and delivers the highest vector first
   * (§29.6 steps 5-7, §29.2.1, §29.2.2: RVI = the highest set bit of VIRR); the model keeps the
   * two as one set, as nothing else writes VIRR (no virtual APIC).
   */
  readonly #pir = new Uint32Array(8);
  #vmcall: { length: number; mask: bigint } | undefined;
  readonly #sharedBit: bigint;
  /** Clears a GPA's page offset and shared bit (built once: two BigInt NOTs per host access were not). */
  readonly #privatePageMask: bigint;

  constructor(machine: Machine, trace: Trace, config: TdConfig) {
    this.machine = machine;
    this.trace = trace;
    this.#veInfos = Array.from({ length: machine.vcpuCount }, () => new VeInfo());
    this.cpuidVe = Array.from({ length: machine.vcpuCount }, () => ({ supervisor: false, user: false }));
    this.#msrValues = Array.from({ length: machine.vcpuCount }, () => new Map<number, bigint>());
    this.config = {
      gpaWidth: config.gpaWidth, attributes: config.attributes, numVcpus: config.numVcpus ?? 1,
      maxVcpus: config.maxVcpus ?? 1, configFlags: config.configFlags ?? 0n,
    };
    this.#sharedBit = tdxSharedBit(config.gpaWidth);
    this.#privatePageMask = ~0xfffn & ~this.#sharedBit;
    // TD_CTLS.PENDING_VE_DISABLE starts as ATTRIBUTES.SEPT_VE_DISABLE (reference A6).
    this.tdCtls = (config.attributes & TdAttributes.SEPT_VE_DISABLE) !== 0n ? TD_CTLS_PENDING_VE_DISABLE : 0n;
    if (machine.marker.kind !== 'tdx-shared-bit' || machine.marker.gpaWidth !== config.gpaWidth) {
      throw new Error(`a TD needs the machine's marker to be { kind: 'tdx-shared-bit', gpaWidth: ${config.gpaWidth} }`);
    }
    this.sept = new Sept(machine.memoryBytes, septTopLevel(config.gpaWidth), machine.gate);
    // Nothing is accessible until the SEPT / shared mapping say so.
    machine.gate.set('private', 0n, machine.memoryBytes, 'none');
    machine.gate.set('shared', 0n, machine.memoryBytes, 'none');
    this.host = new TdxVmmHandle(this);
    // Every XSETBV of a TD exits to the module (SDM Vol. 3C §26.1.2: unconditionally), whose
    // td_xsetbv_instruction_exit does the XSETBV itself when check_guest_xcr0_value allows the
    // value: then the CPU's own checks and XCR0 write are the emulator's. Values with a bit outside
    // XFAM exit here (#xsetbv).
    machine.xsetbvAllowed = TD_XFAM;
    // MOV to or from a debug register runs natively in a TD: MOV-DR exiting (bit 23 of the
    // primary processor-based controls) is clear in PROCBASED_CTLS_INIT (vmcs_defs.h, 0x91220088)
    // and in neither its VARIABLE nor UNKNOWN mask, which tdh_sys_init.c checks the CPU against;
    // td_vmcs_init.c sets GUEST_DR7 to 0x400.
    machine.debugRegisterIntercepts = 0;
  }

  saveState(): TdModuleState {
    return {
      sept: this.sept.saveState(), veInfo: this.#veInfos.map((v) => v.saveState()), cpuidVe: this.cpuidVe.map((c) => ({ ...c })), tdCtls: this.tdCtls, notifyEnables: this.notifyEnables, epoch: this.epoch,
      finalized: this.finalized, vcpusInitialized: new Set(this.vcpusInitialized), mrtd: this.mrtd, mrtdHash: this.mrtdHash.saveState(), rtmr: [...this.rtmr],
      hostLocks: new Set(this.hostLocks), hostPriority: new Set(this.hostPriority), guestLocks: new Map(this.guestLocks), msrValues: this.#msrValues.map((m) => new Map(m)), pendingInterrupt: this.pendingInterrupt && { ...this.pendingInterrupt },
      pir: this.#pir.slice(), vmcall: this.#vmcall && { ...this.#vmcall },
    };
  }

  loadState(s: TdModuleState): void {
    this.#resyncGuard.reset();
    this.sept.loadState(s.sept);
    s.veInfo.forEach((v, i) => this.#veInfos[i]!.loadState(v));
    this.cpuidVe = s.cpuidVe.map((c) => ({ ...c }));
    this.tdCtls = s.tdCtls;
    this.notifyEnables = s.notifyEnables;
    this.epoch = s.epoch;
    this.finalized = s.finalized;
    this.vcpusInitialized.clear();
    for (const index of s.vcpusInitialized) this.vcpusInitialized.add(index);
    this.mrtd = s.mrtd;
    this.mrtdHash.loadState(s.mrtdHash);
    this.rtmr = [...s.rtmr];
    this.hostLocks.clear();
    for (const key of s.hostLocks) this.hostLocks.add(key);
    this.hostPriority.clear();
    for (const key of s.hostPriority) this.hostPriority.add(key);
    this.guestLocks.clear();
    for (const [key, vcpu] of s.guestLocks) this.guestLocks.set(key, vcpu);
    s.msrValues.forEach((values, i) => {
      const map = this.#msrValues[i]!;
      map.clear();
      for (const [msr, value] of values) map.set(msr, value);
    });
    this.pendingInterrupt = s.pendingInterrupt && { ...s.pendingInterrupt };
    this.#pir.set(s.pir);
    this.#vmcall = s.vmcall && { ...s.vmcall };
  }

  /** The VE info of the vCPU that is running (the one whose exit is being handled). */
  get veInfo(): VeInfo {
    return this.#veInfos[this.machine.vcpuIndex]!;
  }

  /** The 4 KiB private page of `gpa`: page offset and shared bit cleared. */
  privatePageOf(gpa: bigint): bigint {
    return gpa & this.#privatePageMask;
  }

  /** GPA bit GPAW-1 (computed once: it was a BigInt shift per use, several per exit). */
  get sharedBit(): bigint {
    return this.#sharedBit;
  }

  /** A page the SEPT holds for the TD (any leaf state but FREE/REMOVED): the host may not touch it. */
  isPrivatePage(gpa: bigint): boolean {
    const state = this.sept.walk(gpa & this.#privatePageMask, 0).state;
    return state !== 'FREE' && state !== 'REMOVED';
  }

  /** Posts `vector` (32..255, the caller checks) into the PIR: a vector already pending stays one request. */
  postInterrupt(vector: number): void {
    this.#pir[vector >>> 5]! |= 1 << (vector & 31);
  }

  /**
   * An interruptible TDCALL stops at an interruption point for the host interrupt pending on its
   * CPU (`pendingInterrupt`; is_interrupt_pending_guest_side, whatever RFLAGS.IF): the TDCALL
   * leaves RIP and RAX as they were (td_call: "if (*interrupt_occurred == false)" advances RIP),
   * the host takes its interrupt and posts the vector to the TD, and the guest sees it before
   * the re-executed TDCALL if its RFLAGS.IF is set, later otherwise. Returns the interrupt taken.
   */
  takeHostInterrupt(): { vector: number; step: TdStep } {
    const vector = this.pendingInterrupt!.vector;
    this.pendingInterrupt = undefined;
    this.postInterrupt(vector);
    return { vector, step: this.deliverPostedInterrupt() };
  }

  /** Whether any posted vector waits for the guest. */
  get interruptPosted(): boolean {
    const pir = this.#pir;
    return (pir[0]! | pir[1]! | pir[2]! | pir[3]! | pir[4]! | pir[5]! | pir[6]! | pir[7]!) !== 0;
  }

  /** The vectors posted and not yet delivered, lowest first. */
  get postedVectors(): number[] {
    const vectors: number[] = [];
    for (let v = 0; v < 256; v++) if (((this.#pir[v >>> 5]! >>> (v & 31)) & 1) === 1) vectors.push(v);
    return vectors;
  }

  /**
   * Delivers the highest posted vector if the guest accepts interrupts (RFLAGS.IF), as the CPU
   * does when it processes the posted-interrupt descriptor on TD entry: RVI = the highest set
   * bit, delivered when RFLAGS.IF = 1, its bit cleared (Intel SDM Vol. 3C §29.6, §29.2.2).
   * One per TD entry: any other waits for a later entry (an interrupt gate clears IF until the
   * handler's IRET; a trap gate's nesting is not modelled). Not modelled: the virtual APIC's priority gating (§29.2.1: a
   * vector is recognized only when RVI[7:4] > VPPR[7:4], VPPR being the higher of VTPR and the
   * in-service vector's class until the guest's EOI), so TPR/CR8 and an unacknowledged
   * in-service interrupt hold nothing back here (README, "Not modelled (TDX)").
   */
  deliverPostedInterrupt(): TdStep {
    const IF = 1n << 9n;
    if (!this.interruptPosted || (this.machine.vcpu.regs.rflags & IF) === 0n) return TD_RESUME;
    const pir = this.#pir;
    let word = 7;
    while (pir[word] === 0) word--;
    const bits = pir[word]!;
    const bit = 31 - Math.clz32(bits);
    pir[word] = bits & ~(1 << bit);
    // An interrupt between instructions pushes RF as it is (Intel SDM Vol. 3 §17.3.1.1).
    return this.injectException(word * 32 + bit, undefined, undefined, false, false);
  }

  /** The running vCPU's native MSRs that the module keeps (msrValuesOf for another vCPU). */
  get msrValues(): Map<number, bigint> {
    return this.#msrValues[this.machine.vcpuIndex]!;
  }

  msrValuesOf(vcpuIndex: number): Map<number, bigint> {
    return this.#msrValues[vcpuIndex]!;
  }

  get pendingVeEnabled(): boolean {
    return (this.tdCtls & TD_CTLS_PENDING_VE_DISABLE) === 0n;
  }

  record(type: string, fields: Record<string, TraceValue> = {}): void {
    this.trace.record('hw', type, this.machine.withVcpu(fields));
  }

  /** SYSCALL and SYSENTER run natively in a TD, as on any Intel CPU (src/cpu/fast-system-call.ts). */
  #fastSystemCall(exit: SystemCallExit): TdStep {
    const done = executeFastSystemCall(this.machine.vcpu, exit, 'intel');
    switch (done.kind) {
      case 'done': return TD_RESUME;
      case 'ud': return this.injectException(UD_VECTOR);
      case 'gp': return this.injectException(GP_VECTOR, 0n);
      case 'unmodelled': return { kind: 'stop', outcome: { outcome: 'fault', reason: done.reason } };
    }
  }

  /**
   * INVD, WBINVD/WBNOINVD, MONITOR and MWAIT exit to the module, which answers each as it answers
   * HLT: td_generic_ve_exit, #VE with RIP at the instruction (tdx_td_dispatcher.c; MONITOR/MWAIT
   * exiting is on while the TD's CPUID does not offer MONITOR, td_vmcs_init.c, and the model's does
   * not). Qualification and instruction information 0, as for HLT and VMCALL; the VMCS instruction
   * length. The CPU's own checks come first (src/cpu/cache-or-wait.ts).
   */
  #cacheOrWait(exit: CacheOrWaitExit): TdStep {
    const fault = cacheOrWaitFault(this.machine.vcpu, exit);
    if (fault === 'ud') return this.injectException(UD_VECTOR);
    if (fault === 'gp') return this.injectException(GP_VECTOR, 0n);
    return this.deliverVe({ exitReason: CACHE_OR_WAIT_EXIT_REASON[exit.instruction], exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: exit.length, instructionInfo: 0 });
  }

  /**
   * RDPMC. The CPU's own checks come first (src/cpu/rdpmc.ts). Without ATTRIBUTES.PERFMON, RDPMC
   * exiting is on (td_vmcs_init.c) and td_rdpmc_exit (td_other_exits.c) injects #GP(0) for any
   * ECX, debug TD or not: the PERFMON test comes first. With PERFMON there is no exit and the CPU
   * reads its own counters, which the emulator does not have: the run stops as not modelled.
   */
  #rdpmc(exit: Extract<VmExit, { kind: 'rdpmc' }>): TdStep {
    if (rdpmcFault(this.machine.vcpu) === 'gp' || (this.config.attributes & TdAttributes.PERFMON) === 0n) return this.injectException(GP_VECTOR, 0n);
    return { kind: 'stop', outcome: { outcome: 'fault', reason: `RDPMC at RIP 0x${exit.rip.toString(16)} in a TD with ATTRIBUTES.PERFMON reads the CPU's counters, which this model does not have` } };
  }

  /**
   * XSETBV of a value with a bit outside XFAM (Machine.xsetbvAllowed; the others run on the CPU).
   * Before the VM exit the CPU raises #UD when CR4.OSXSAVE is clear and #GP(0) at CPL > 0 (SDM
   * Vol. 2D XSETBV; Vol. 3C §26.1.1: those faults come before VM exits; #UD first, SDM Vol. 3A
   * Table 6-2 puts invalid opcode ahead of general protection). Then the module's
   * td_xsetbv_instruction_exit (td_xsetbv.c): ECX other than 0, or a value check_guest_xcr0_value
   * refuses (helpers.c: a bit outside xcr0_supported_mask & XFAM, as this one has), is inject_gp(0),
   * RIP at the instruction and XCR0 unchanged.
   */
  #xsetbv(): TdStep {
    const vcpu = this.machine.vcpu;
    if ((vcpu.readSpecial('cr4') & CR4_OSXSAVE) === 0n) return this.injectException(UD_VECTOR);
    return this.injectException(GP_VECTOR, 0n);
  }

  /** Handles one vCPU exit. Never throws for anything the guest controls. */
  handleExit(exit: VmExit): TdStep {
    this.#resyncGuard.nextExit();
    switch (exit.kind) {
      case 'tdcall': return handleTdcall(this, exit);
      case 'cpuid': return handleCpuid(this, exit);
      case 'gate-fault': return this.#gateFault(exit);
      // HLT is not a TD exit: td_generic_ve_exit raises #VE (reason 12) with RIP at the HLT
      // (tdx_td_dispatcher.c); the guest halts through TDG.VP.VMCALL<Instruction.HLT> instead.
      case 'hlt':
        this.machine.vcpu.regs.rip = exit.rip - HLT_LENGTH;
        return this.deliverVe({ exitReason: ExitReason.HLT, exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: Number(HLT_LENGTH), instructionInfo: 0 });
      // In a TD, port I/O and MSR accesses raise #VE (the guest turns them into TDVMCALLs).
      // td_generic_ve_exit passes the CPU's exit qualification to the #VE unchanged, and
      // tdx_inject_ve the VMCS instruction length and information; GLA and GPA are 0 (the
      // VMCS guest-linear address of an INS/OUTS exit is not copied).
      case 'io':
        return this.deliverVe({
          exitReason: ExitReason.IO, exitQualification: ioExitQualification(exit), gla: 0n, gpa: 0n, instructionLength: exit.length,
          instructionInfo: ioInstructionInformation(exit),
        });
      case 'rdmsr':
      case 'wrmsr':
        return handleMsr(this, exit);
      // The CPU's own exception: a fault pushes RF = 1, a trap (INT n, INT3, INTO) RF as it is
      // (Intel SDM Vol. 3 §17.3.1.1).
      case 'exception': return this.injectException(exit.vector, exit.errorCode, exit.cr2, false, !exit.afterInstruction);
      // VMCALL in VMX non-root operation is a VM exit at any CPL and in any mode (SDM Vol. 3C
      // VMCALL, Operation), and the module answers it as it answers HLT: td_generic_ve_exit, #VE
      // reason 18 with RIP at the VMCALL (tdx_td_dispatcher.c); qualification and instruction
      // information 0 (the SDM defines neither for VMCALL; as for HLT), the VMCS instruction length.
      case 'vmcall':
        return this.deliverVe({ exitReason: ExitReason.VMCALL, exitQualification: 0n, gla: 0n, gpa: 0n, instructionLength: exit.length, instructionInfo: 0 });
      // The other VMX instructions (VMLAUNCH, VMRESUME, VMPTRLD, VMFUNC, INVEPT, …) either #UD in
      // the TD or exit to the module, which injects #UD (tdx_td_dispatcher.c: inject_ud()); the
      // emulator, with no VMX, raises #UD for them itself ('invalid-opcode'). The SVM ones
      // (0F 01 D8-DF) are AMD's: an Intel CPU raises #UD for them (KVM's emulator_fix_hypercall
      // exists because VMMCALL #UDs on Intel), which the TD takes itself.
      case 'svm':
      case 'invalid-opcode':
      case 'pvalidate':
      case 'rmpadjust':
      case 'vmgexit':
        return this.injectException(UD_VECTOR);
      // RDRAND/RDSEED and RDTSC do not exit a TD (the TSC is virtualized, TDX module spec
      // §"Time Stamp Counter"); PAUSE is a spin-wait hint for the vCPU scheduler: they just run.
      case 'random':
      case 'rdtsc':
      case 'pause':
        return runsOnCpu(this.machine, this.trace, exit);
      case 'system-call': return this.#fastSystemCall(exit);
      case 'cache-or-wait': return this.#cacheOrWait(exit);
      case 'rdpmc': return this.#rdpmc(exit);
      case 'xsetbv': return this.#xsetbv();
      // Not intercepted in a TD (the constructor leaves Machine.debugRegisterIntercepts at 0).
      case 'mov-dr': return { kind: 'stop', outcome: { outcome: 'fault', reason: `MOV DR exit at RIP 0x${exit.rip.toString(16)} in a TD, whose MOV-DR exiting is clear` } };
      case 'budget': return { kind: 'stop', outcome: { outcome: 'budget', reason: `instruction budget exhausted at RIP 0x${exit.rip.toString(16)}` } };
      // The host's execution watch (Vcpu.watchExecution), not a guest event: the run ends there.
      case 'exec-watch': return { kind: 'stop', outcome: { outcome: 'handover', reason: `execution reached RIP 0x${exit.rip.toString(16)} (GPA 0x${exit.gpa.toString(16)})` } };
      case 'fatal': return { kind: 'stop', outcome: { outcome: 'fault', reason: exit.reason } };
    }
  }

  /** Gate faults the SEPT allows, resynchronised for (#gateFault). */
  readonly #resyncGuard = new GateResyncGuard('the SEPT');

  /** A guest access the page gate refused (td_ept_violation.c). */
  #gateFault(exit: GateFaultExit): TdStep {
    const access = exit.access;
    // (By comparisons: GATE_FAULT_QUAL[access], the access varying, was a megamorphic load.)
    const quals = access === 'read' ? GATE_FAULT_QUAL.read : access === 'write' ? GATE_FAULT_QUAL.write : GATE_FAULT_QUAL.fetch;
    const qual = quals[exit.pageWalk ? 1 : 0];
    // VE info carries the exact GLA/GPA when the native side decoded the instruction
    // (exit.exactAddress). A TD exit does not: tdx_ept_violation_exit_to_vmm (td_other_exits.c)
    // clears GPA bits 11:0 and qualification bits 12:7, and passes no GLA.
    const gpa = exit.space === 'shared' ? exit.gpa | this.sharedBit : exit.gpa;
    const { rip, space, outsideRam } = exit;
    if (outsideRam || space === 'shared') return this.eptViolationExit(rip, gpa, access, space, qual, outsideRam);
    const walk = this.sept.walk(exit.gpa, 0);
    const action = accessAction(walk.state);
    if (action === 'allowed') {
      // The gate disagreed with the SEPT: resynchronise it (cannot happen unless someone bypassed
      // Sept); the same fault straight after its own resync is a hardware-model error
      // (gate-resync.ts). Inside Sept.batchGate the resync waits for the batch's end: no verdict then.
      this.#resyncGuard.resyncing(this.machine.vcpuIndex, exit, this.sept.batchingGate);
      this.sept.resyncGate(walk.level, walk.base);
      this.record('gate-resync', { gpa: exit.gpa, level: walk.level });
      return TD_RESUME;
    }
    if (action === 'pending' && this.pendingVeEnabled) {
      return this.deliverVe({ exitReason: ExitReason.EPT_VIOLATION, exitQualification: qual, gla: exit.gva, gpa, instructionLength: 0, instructionInfo: 0 }, rip);
    }
    return this.eptViolationExit(rip, gpa, access, space, qual, outsideRam, walk.state, action === 'pending');
  }

  /**
   * An EPT-violation TD exit as tdx_ept_violation_exit_to_vmm (td_other_exits.c) gives the VMM one,
   * for a guest access or the module's own access on the TD's behalf (guest-side-gpa.ts): GPA bits
   * 11:0 and qualification bits 12:7 cleared, no GLA. A private page adds its SEPT state, and a
   * PENDING one (under PENDING_VE_DISABLE) the extended qualification PENDING_EPT_VIOLATION.
   */
  eptViolationExit(rip: bigint, gpa: bigint, access: Access, space: Space, qual: bigint, outsideRam: boolean, septState?: SeptStateName, pending = false): TdStep {
    // One literal (keys in the order the exit always had) instead of spreading a shared prefix.
    const eeq: ExtendedExitQualification = pending ? { type: 'pending-ept-violation', raw: EEQ_TYPE['pending-ept-violation'] } : { type: 'none', raw: 0n };
    const exitQualification = qual & ~TD_EXIT_QUAL_CLEARED;
    return this.tdExit(septState === undefined
      ? { reason: 'ept-violation', rip, gpa: gpa & ~0xfffn, access, space, exitQualification, outsideRam, eeq }
      : { reason: 'ept-violation', rip, gpa: gpa & ~0xfffn, access, space, exitQualification, outsideRam, septState, eeq });
  }

  tdExit(exit: TdExit): TdStep {
    // One literal per kind, keys in the trace's order (Object.assign onto a shared prefix made
    // every TD exit's fields a dictionary object: issue 11).
    let fields: Record<string, TraceValue>;
    if (exit.reason === 'ept-violation') {
      const { rip, gpa, access, space, exitQualification: qual, eeq } = exit;
      fields = exit.septState
        ? { reason: exit.reason, rip, gpa, access, space, qual, eeqType: eeq.type, eeq: eeq.raw, septState: exit.septState }
        : { reason: exit.reason, rip, gpa, access, space, qual, eeqType: eeq.type, eeq: eeq.raw };
    } else {
      fields = { reason: exit.reason, rip: exit.rip, mask: exit.mask, r10: exit.regs.r10, r11: exit.regs.r11 };
    }
    this.record('td-exit', fields);
    return { kind: 'td-exit', exit };
  }

  /**
   * Raises #VE with `fields`, or #DF if the previous VE info is still unread. `gateFaultRip`: the
   * RIP of the refused access (#gateFault) this answers, whose #DF may start a fault storm.
   */
  deliverVe(fields: VeInfoFields, gateFaultRip?: bigint): TdStep {
    if (!this.veInfo.store(fields)) {
      this.record('df-injected', { cause: 've-info-still-valid', exitReason: fields.exitReason, gpa: fields.gpa });
      if (gateFaultRip !== undefined && this.machine.vcpuCount === 1) return this.#injectDfRepeating(fields, gateFaultRip);
      return this.injectException(DF_VECTOR, 0n);
    }
    this.record('ve-injected', { exitReason: fields.exitReason, qual: fields.exitQualification, gla: fields.gla, gpa: fields.gpa, rip: this.machine.vcpu.regs.rip });
    return this.injectException(VE_VECTOR, undefined, undefined, true);
  }

  /**
   * The #DF of a refused access to a PENDING page while the VE info is unread, with fault storms
   * made natively: when the #DF handler's own first fetch (or access) is refused the same way, the
   * guest's next run ends in the same gate fault with nothing started, and the answer is the same
   * #DF again (the handler never reads the VE info). That answer depends only on the exit's fields
   * (the native side compares every word of it, the RIP and the instruction count), the SEPT, the
   * TD's controls and the VE info's valid bit, which only this module changes (a refused store
   * changes nothing), and it does not run between the repeated deliveries (one vCPU; posted
   * interrupts are delivered at TD entry only, before the first run). So Vcpu.tryInjectRepeating
   * makes them without a round trip each, and each gets its events here as injectException would
   * record them: `df-injected` before each delivery after the first, `exception-injected` with the
   * RIP it entered after each one made, and for one that failed, `injection-failed` and the triple fault.
   */
  #injectDfRepeating(fields: VeInfoFields, faultRip: bigint): TdStep {
    const vcpu = this.machine.vcpu;
    const failure = vcpu.tryInjectRepeating(DF_VECTOR, 0n, undefined, true);
    const attempts = vcpu.repeatedDeliveries + 1;
    const delivered = failure === undefined ? attempts : attempts - 1;
    // Every delivery entered the faulting RIP but a last one made without a run after it (Vcpu.stormRunHeld).
    const lastEntry = failure === undefined && !vcpu.stormRunHeld ? vcpu.regs.rip : faultRip;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) this.record('df-injected', { cause: 've-info-still-valid', exitReason: fields.exitReason, gpa: fields.gpa });
      if (i < delivered) this.record('exception-injected', { vector: DF_VECTOR, errorCode: 0n, rip: i === delivered - 1 ? lastEntry : faultRip });
    }
    if (failure === undefined) return TD_RESUME;
    this.record('injection-failed', { vector: DF_VECTOR, reason: failure });
    return { kind: 'stop', outcome: { outcome: 'terminated', reason: `triple fault: ${failure}` } };
  }

  /**
   * Delivers an exception through the guest IDT; an undeliverable one escalates to #DF, then
   * triple fault. `resume` (RF = 1 in the RFLAGS image pushed): the module sets the guest's
   * RFLAGS.RF before the VM entry that delivers any exception it injects (td_other_exits.c
   * tdx_inject_ve for #VE and #DF; helpers.h inject_gp, inject_ud; helpers.c inject_pf), so that
   * IRET back to the faulting instruction skips its instruction breakpoint, as a fault the CPU
   * raises itself would (Intel SDM Vol. 3 §17.3.1.1). Only an interrupt or a trap passes false.
   * A #DF from a failed delivery pushes RF as it was when that delivery failed: the same flag.
   */
  injectException(vector: number, errorCode?: bigint, cr2?: bigint, quiet = false, resume = true): TdStep {
    // tryInject: a failed delivery is an answer here, and building an InjectionError (its stack
    // trace) for each was half of this function's time in a TDX fuzz campaign (issue 10).
    const failure = this.machine.vcpu.tryInject(vector, errorCode, cr2, resume);
    if (failure === undefined) {
      if (!quiet) this.record('exception-injected', { vector, errorCode: errorCode ?? null, rip: this.machine.vcpu.regs.rip });
      return TD_RESUME;
    }
    this.record('injection-failed', { vector, reason: failure });
    if (vector !== DF_VECTOR) return this.injectException(DF_VECTOR, 0n, undefined, false, resume);
    return { kind: 'stop', outcome: { outcome: 'terminated', reason: `triple fault: ${failure}` } };
  }

  /**
   * The guest's own request, passing through TDG.VP.VMCALL, to convert memory to shared (MapGPA,
   * GHCI 1.5 §3.2: R10 = 0, R11 = 0x10001, R12 = GPA with the shared bit set, R13 = size) ends the
   * private lifetime of that memory: whatever the host then does, the private pages' contents
   * are not the guest's own until it accepts them again (foreign-content.ts). Only what the
   * guest exposed to the VMM counts, as only that reaches the VMM.
   */
  observeVmcall(seen: Readonly<VmcallRegs>): void {
    if (seen.r10 !== 0n || seen.r11 !== TDVMCALL_MAP_GPA || (seen.r12 & this.#sharedBit) === 0n) return;
    // A range of 0 bytes or past RAM watches nothing: watchContent clips to RAM (Machine::WatchContent).
    this.machine.watchContent(seen.r12 & ~this.#sharedBit & ~0xfffn, seen.r13 & MASK64, true);
  }

  /** Remembers a TDG.VP.VMCALL in flight until the VMM answers it. */
  beginVmcall(length: number, mask: bigint): void {
    this.#vmcall = { length, mask };
  }

  get vmcallInFlight(): boolean {
    return this.#vmcall !== undefined;
  }

  /**
   * The VMM's answer to a TDG.VP.VMCALL: only exposed registers are written (others keep the
   * guest's values), RIP moves past the TDCALL (trap-like; reference A7). RAX = TDX_SUCCESS: it
   * still holds 0, the leaf number, as no exposable register is RAX.
   */
  completeVmcall(out: Partial<VmcallRegs>): void {
    const call = this.#vmcall;
    if (!call) throw new Error('no TDG.VP.VMCALL is in flight');
    this.#vmcall = undefined;
    const regs = this.machine.vcpu.regs;
    const ignored: string[] = [];
    const bits = exposedBits(call.mask);
    // Only the registers the answer names (one or two, usually), not a look-up of each of the
    // fourteen in an object of whatever shape the VMM built (issue 10).
    for (const name in out) {
      const value = out[name as VmcallReg];
      const bit = gprBit(name);
      if (value === undefined || bit === undefined) continue; // not a VMCALL register
      // A register store keeps the value modulo 2^64 (Registers).
      if (((bits >> bit) & 1) === 1) regs.set(name as VmcallReg, value);
      else ignored.push(name);
    }
    // Reported in VMCALL_REGS order, whatever order the answer had them in.
    if (ignored.length > 1) ignored.sort((a, b) => VMCALL_REGS.indexOf(a as VmcallReg) - VMCALL_REGS.indexOf(b as VmcallReg));
    this.machine.vcpu.complete(call);
    this.record('vmcall-complete', { r10: regs.r10, r11: regs.r11, ignoredUnexposed: ignored });
  }
}

/**
 * Each register's bit in TDG.VP.VMCALL's RCX bitmap (the GPR number), undefined for a name that is
 * no VMCALL register. By comparisons: with a constant name (vpVmcall) they fold away, and an
 * object indexed by a name that varies (completeVmcall) was a megamorphic load.
 */
function gprBit(name: string): number | undefined {
  switch (name) {
    case 'rcx': return 1;
    case 'rdx': return 2;
    case 'rbx': return 3;
    case 'rbp': return 5;
    case 'rsi': return 6;
    case 'rdi': return 7;
    case 'r8': return 8;
    case 'r9': return 9;
    case 'r10': return 10;
    case 'r11': return 11;
    case 'r12': return 12;
    case 'r13': return 13;
    case 'r14': return 14;
    case 'r15': return 15;
    default: return undefined;
  }
}

/** The GPR bits 15:0 of a TDG.VP.VMCALL's RCX bitmap, as a number (a BigInt shift per register was two allocations each). */
export function exposedBits(mask: bigint): number {
  return Number(BigInt.asUintN(16, mask));
}

/** Whether the bitmap (exposedBits) exposes `reg` to the VMM; RCX itself never is (vpVmcall refuses its bit). */
export function exposed(bits: number, reg: VmcallReg): boolean {
  return ((bits >> gprBit(reg)!) & 1) === 1;
}
