// A virtual machine: guest RAM, its page gate and one vCPU, over the native binding.
import { addon, type NativeMachine } from '../native/binding.js';
import { toNativeMarker, type AddressMarker } from '../memory/address-marker.js';
import { GuestMemory, PAGE_SIZE } from '../memory/guest-memory.js';
import { PageGate } from '../memory/page-gate.js';
import { registerNativeErrors } from './errors.js';
import { RUN_AREA_SLOTS, RunSlot } from './run-area.js';
import { Vcpu } from './vcpu.js';
import { HardwareRandom } from './hardware-random.js';
import { VirtualTsc } from './virtual-tsc.js';
import type { Snapshottable } from '../shared/snapshottable.js';

export const MAX_MEMORY_BYTES = 1n << 46n;
/** Size of the edge-coverage map (native Machine::kEdgeMapBytes). */
export const EDGE_MAP_BYTES = 1 << 16;

export interface MachineOptions {
  /** Guest RAM, a non-zero multiple of 4 KiB up to 64 TiB. Costs host memory only where touched. */
  memoryBytes: bigint;
  /**
   * Count every instruction (needed for `instructionLimit` and `instructions`). Without it the
   * guest runs several times faster, intercepted instructions are found by scanning code pages
   * when they are first executed, and only `wallClockTimeoutMs` stops a guest that never exits.
   */
  countInstructions?: boolean;
  /**
   * Fast mode (countInstructions: false) only: a run that takes longer ends with a `fatal` exit
   * (reason: timeout). A guard against hangs, not a budget: it depends on the host's speed, so
   * deterministic work uses counting mode. Default 60 s: one exit-free stretch of the real Linux
   * decompressor took over 10 s (the old default) on two cores shared with a whole test suite.
   * 0 disables it. An armed run costs a mutex, not a thread (native/src/run_watchdog.h).
   */
  wallClockTimeoutMs?: number;
  marker?: AddressMarker;
  /**
   * The run's budget (counting mode): a `budget` exit once the guest has run this many
   * instructions, or once instructions plus the fixed charges for host work it caused (exits,
   * injected exceptions, retranslating code it rewrote under itself) reach it. Sets
   * `vcpu.instructionLimit` and `vcpu.budgetLimit`.
   */
  instructionLimit?: bigint;
  /**
   * false: plain Unicorn memory, no page gate and no guest page walk (guest paging is then
   * Unicorn's own). Only for benchmark baselines; every platform model needs the gate.
   */
  pageGate?: boolean;
  /**
   * How the host backs guest RAM; never what the guest sees (native/src/machine.cc, FaultAround).
   * - 'huge-pages' (default): transparent huge pages, the first write the guest may make to one
   *   populating all 2 MiB of it. After one that is slow (a host that gives free memory back to
   *   its hypervisor has to back it anew), a few units of 4 KiB pages are timed, first touches
   *   included, and 'fault-around' takes the rest only when clearly cheaper. A boot that fills
   *   tens of MiB then takes a few dozen page faults.
   * - 'fault-around': 4 KiB pages, the first write to a page populating the 64 KiB around it.
   * - 'on-touch': 4 KiB pages, each faulted in when first touched: for many short runs that touch
   *   little and scattered RAM (fuzz executions and launches), where populating a neighbourhood
   *   is mostly waste.
   */
  ramPaging?: RamPaging;
  /**
   * vCPUs on this machine (default 1). They take turns on the one emulator: the running one's
   * architectural state is saved and another's loaded (switchVcpu), so all of them share guest
   * RAM, the page gate and translated code, and memory is sequentially consistent at
   * instruction granularity. With more than one, PAUSE ends a run (a `pause` exit).
   */
  vcpus?: number;
}

/** How the host backs guest RAM (MachineOptions.ramPaging). */
export type RamPaging = 'fault-around' | 'on-touch' | 'huge-pages';

/** The most vCPUs a machine takes (TDX MAX_VCPUS is 16 bits; a bound for host memory). */
export const MAX_VCPUS = 64;

/** Counters of memory-system work (Machine.memoryCounters). */
export interface MemoryCounters {
  tlbFills: number;
  tlbFlushes: number;
  restoredPages: number;
  /**
   * A machine of the same size and modes closed before hands its emulator on, translated code and
   * all (native/src/machine_pool.cc): pages whose code was kept because their bytes were the same
   * at their first fetch, and pages whose code was dropped because they had changed.
   */
  keptCodePages: number;
  droppedCodePages: number;
  /** Pages whose code bits (native/src/code_bits.h) came from such a machine's life before, the page's bytes being the same. */
  keptCodeBits: number;
  /**
   * RAM pages snapshots copied. A snapshot taken after another (its base: the last one taken or
   * restored) copies only the pages written since, and shares the base's copy of the others.
   */
  snapshotCopiedPages: number;
}

/** A saved VM state. Restoring it copies back only pages written since it was taken or restored. */
export class Snapshot {
  readonly id: number;
  readonly machine: Machine;
  constructor(machine: Machine, id: number) {
    this.id = id;
    this.machine = machine;
  }
}

/**
 * The edge map and slot list of the last machine closed with edge coverage on, for the next one
 * that turns it on: a fuzz campaign turns it on in every VM it launches, and new buffers (320 KiB,
 * zeroed, page-faulted in) were ~2% of a launch's CPU time (issue 10). An execution's `edges` is
 * valid until the next execution, so buffers are cleared when they are taken, not when freed.
 */
let spareEdgeBuffers: { map: Uint8Array; slots: Uint32Array } | undefined;

const snapshotCleanup = new FinalizationRegistry<{ native: WeakRef<NativeMachine>; id: number }>(({ native, id }) => {
  native.deref()?.forgetSnapshot(id);
});

/** A guest read of watched private content that was not its own (Machine.watchContent). */
export interface ForeignRead {
  /** The first foreign byte read (its page when the instruction could not be decoded). */
  gpa: bigint;
  /** The reading instruction; undefined in fast mode, which does not track it. */
  rip: bigint | undefined;
  /** Its instruction number (counting mode; 0n otherwise). */
  instructions: bigint;
}

/** Machine state in a whole-VM snapshot: the native snapshot plus the vCPU's exit counters. */
export interface MachineState {
  snapshot: Snapshot;
  exitCounts: Vcpu['exitCounts'];
  /** Several vCPUs: which one runs, and the saved architectural state of each (the running one's too). */
  cpus?: { current: number; states: readonly Uint8Array[] };
  /** What RDRAND/RDSEED and RDTSC return next. */
  random: bigint;
  tsc: bigint;
}

export class Machine implements Snapshottable<MachineState> {
  readonly memoryBytes: bigint;
  readonly memory: GuestMemory;
  readonly gate: PageGate;
  readonly vcpu: Vcpu;
  readonly countInstructions: boolean;
  /** What RDRAND and RDSEED return (hardware-random.ts); seeded by whoever builds the VM. */
  readonly random = new HardwareRandom();
  /** What RDTSC returns (virtual-tsc.ts); seeded likewise. */
  readonly tsc = new VirtualTsc();
  #native: NativeMachine | undefined;
  #marker: AddressMarker;
  #edgeMap: Uint8Array | undefined;
  #edgeSlots: Uint32Array | undefined;
  /** Several vCPUs: the saved state of each vCPU that is not running (undefined for the one that is). */
  #cpuStates: (Uint8Array | undefined)[] = [undefined];
  /** Several vCPUs: the emulator's reset state every vCPU starts in (resetVcpu puts one back in it). */
  #resetCpuState: Uint8Array | undefined;
  #currentVcpu = 0;
  /** The run area's foreignReads slot as two 32-bit words. */
  readonly #foreignReadWords: Uint32Array;

  constructor(options: MachineOptions) {
    const { memoryBytes } = options;
    if (typeof memoryBytes !== 'bigint') throw new TypeError('memoryBytes must be a bigint');
    if (memoryBytes <= 0n || memoryBytes % PAGE_SIZE !== 0n || memoryBytes > MAX_MEMORY_BYTES) {
      throw new RangeError(`memoryBytes must be a non-zero multiple of 4096 up to 64 TiB, got ${memoryBytes}`);
    }
    registerNativeErrors();
    this.memoryBytes = memoryBytes;
    this.countInstructions = options.countInstructions ?? true;
    this.#marker = options.marker ?? { kind: 'none' };
    const area = new BigUint64Array(RUN_AREA_SLOTS);
    this.#foreignReadWords = new Uint32Array(area.buffer, RunSlot.foreignReads * 8, 2);
    const native = new (addon().NativeMachine)(memoryBytes, this.countInstructions, area, toNativeMarker(this.#marker),
      { pageGate: options.pageGate ?? true, timeoutMs: options.wallClockTimeoutMs ?? 60_000, ramPaging: options.ramPaging ?? 'huge-pages' });
    this.#native = native;
    this.memory = new GuestMemory(native, memoryBytes);
    this.gate = new PageGate(native, memoryBytes);
    this.vcpu = new Vcpu(native, area);
    if (options.instructionLimit !== undefined) {
      this.vcpu.instructionLimit = options.instructionLimit;
      this.vcpu.budgetLimit = options.instructionLimit;
    }
    const vcpus = options.vcpus ?? 1;
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS) throw new RangeError(`vcpus must be 1..${MAX_VCPUS}, got ${vcpus}`);
    if (vcpus > 1) {
      // Every vCPU starts in the emulator's reset state; the platform puts each in its entry state.
      const reset = native.saveCpuState();
      this.#resetCpuState = reset;
      this.#cpuStates = [undefined, ...Array.from({ length: vcpus - 1 }, () => reset)];
      native.setPauseExits(true);
    }
  }

  get vcpuCount(): number {
    return this.#cpuStates.length;
  }

  /**
   * An event's fields with the vCPU it happened on first, when there are several; with one vCPU
   * the fields as they are, so one-vCPU traces (and their hashes) carry no vCPU.
   */
  withVcpu<T extends object>(fields: T): T | ({ vcpu: number } & T) {
    return this.vcpuCount > 1 ? { vcpu: this.#currentVcpu, ...fields } : fields;
  }

  /** The vCPU `vcpu` stands for now: the one that runs, and the one the last exit came from. */
  get vcpuIndex(): number {
    return this.#currentVcpu;
  }

  /**
   * Several vCPUs: whether PAUSE ends a run (a `pause` exit, a scheduler switch point). On from
   * construction; a platform turns it off while only one vCPU can run (SNP before its APs exist),
   * when a spin-wait has nobody to yield to and would only cost exits.
   */
  set pauseExits(on: boolean) {
    this.#live().setPauseExits(on);
  }

  /**
   * XSETBV runs on the emulated CPU unless the XCR0 value in EDX:EAX sets a bit outside `mask`:
   * then the run ends with an `xsetbv` exit before it executes. All ones (never) by default; a TD
   * sets its XFAM (src/platform/tdx/td-module.ts).
   */
  set xsetbvAllowed(mask: bigint) {
    this.#live().setXsetbvAllowed(mask);
  }

  /**
   * MOV to or from a debug register runs on the emulated CPU unless `mask` names it: then the run
   * ends with a `mov-dr` exit before it executes. The layout is the VMCB's first intercept word
   * (APM Vol. 2 Appendix B, VMCB offset 000h): bit n intercepts reads of DRn, bit 16 + n writes.
   * 0 (none) by default: a TD's MOV DR runs natively (the module leaves MOV-DR exiting clear);
   * an SNP guest's VMM intercepts DR7 (src/platform/snp/snp-cpu.ts).
   */
  set debugRegisterIntercepts(mask: number) {
    this.#live().setDebugRegisterIntercepts(BigInt(mask >>> 0));
  }

  /** Makes vCPU `index` the running one (`vcpu` then reads and writes its registers). */
  switchVcpu(index: number): void {
    if (index === this.#currentVcpu) return;
    const next = this.#cpuStates[index];
    if (next === undefined) throw new RangeError(`no vCPU ${index} on this machine (it has ${this.vcpuCount})`);
    const native = this.#live();
    this.#cpuStates[this.#currentVcpu] = native.saveCpuState();
    native.loadCpuState(next);
    this.#cpuStates[index] = undefined;
    this.#currentVcpu = index;
  }

  /**
   * Puts vCPU `index` back into the emulator's reset state, as a vCPU that never ran: a platform
   * can then put it into an entry state again (an SNP AP created anew from a VMSA after it ran, as
   * KVM's AP creation resets the target vCPU before it loads the new VMSA). The running vCPU too,
   * between exits. Only a machine of several vCPUs keeps the reset state (one vCPU: RangeError).
   */
  resetVcpu(index: number): void {
    const reset = this.#resetCpuState;
    if (reset === undefined || !Number.isInteger(index) || index < 0 || index >= this.vcpuCount) {
      throw new RangeError(`cannot reset vCPU ${index}: ${reset === undefined ? 'a one-vCPU machine keeps no reset state' : `no such vCPU (the machine has ${this.vcpuCount})`}`);
    }
    if (index === this.#currentVcpu) this.#live().loadCpuState(reset);
    else this.#cpuStates[index] = reset;
  }

  get marker(): AddressMarker {
    return this.#marker;
  }

  set marker(marker: AddressMarker) {
    this.#live().setMarker(toNativeMarker(marker));
    this.#marker = marker;
  }

  #live(): NativeMachine {
    if (!this.#native) throw new Error('the VM is closed');
    return this.#native;
  }

  snapshot(): Snapshot {
    const native = this.#live();
    const snap = new Snapshot(this, native.snapshot());
    snapshotCleanup.register(snap, { native: new WeakRef(native), id: snap.id });
    return snap;
  }

  restore(snapshot: Snapshot): void {
    if (snapshot.machine !== this) throw new Error('that snapshot belongs to another VM');
    this.#live().restore(snapshot.id);
  }

  saveState(): MachineState {
    const state: MachineState = { snapshot: this.snapshot(), exitCounts: { ...this.vcpu.exitCounts }, random: this.random.saveState(), tsc: this.tsc.saveState() };
    if (this.vcpuCount > 1) {
      const running = this.#live().saveCpuState();
      state.cpus = { current: this.#currentVcpu, states: this.#cpuStates.map((s) => s ?? running) };
    }
    return state;
  }

  loadState(state: MachineState): void {
    this.restore(state.snapshot);
    this.random.loadState(state.random);
    this.tsc.loadState(state.tsc);
    if (state.cpus) {
      // The native snapshot holds the running vCPU's context; its entry-state CS comes with this.
      this.#live().loadCpuState(state.cpus.states[state.cpus.current]!);
      this.#cpuStates = state.cpus.states.map((s, i) => (i === state.cpus!.current ? undefined : s));
      this.#currentVcpu = state.cpus.current;
    }
    const counts = this.vcpu.exitCounts as Record<string, number>;
    for (const kind of Object.keys(counts)) delete counts[kind];
    Object.assign(counts, state.exitCounts);
  }

  /**
   * A host-side, guest-invisible watch on private content (native/src/content_watch.h): `on`
   * watches the pages [gpa, gpa+bytes) touches afresh, as holding content the guest did not put
   * there itself; off forgets them. The first private read (or fetch) of a watched byte the guest
   * has not written itself since is recorded for takeForeignReads(), and ends that page's watch.
   * Part of snapshots. Costs nothing measurable while no page is watched.
   * Granularity 'page' watches until the guest's first store to each page instead, whatever bytes
   * it writes (a page the guest writes part of and then reads the rest of goes unseen), for a
   * fraction of the cost: no decoded instruction and TLB flush per access (content_watch.h).
   * Pages already watched byte by byte stay so.
   */
  watchContent(gpa: bigint, bytes: bigint, on: boolean, granularity: 'byte' | 'page' = 'byte'): void {
    this.#live().watchContent(gpa, bytes, on, granularity === 'page');
  }

  /** How many pages of [gpa, gpa+bytes) the content watch holds. */
  watchedContentPages(gpa: bigint, bytes: bigint): number {
    return this.#live().countWatchedContent(gpa, bytes);
  }

  /** Whether the content watch recorded reads that takeForeignReads() has not returned yet: one slot read, for every exit. */
  get foreignReadsPending(): boolean {
    // As its two 32-bit words: reading the slot as a BigInt allocated one on every exit.
    const w = this.#foreignReadWords;
    return (w[0]! | w[1]!) !== 0;
  }

  /** The foreign-content reads recorded since the last call, oldest first. */
  takeForeignReads(): ForeignRead[] {
    const raw = this.#live().takeForeignReads();
    const reads: ForeignRead[] = [];
    for (let i = 0; i + 2 < raw.length; i += 3) {
      reads.push({ gpa: raw[i]!, rip: raw[i + 1] === 0xffffffffffffffffn ? undefined : raw[i + 1]!, instructions: raw[i + 2]! });
    }
    return reads;
  }

  /** Pages written since the last snapshot or restore (meaningful once a snapshot exists). */
  dirtyPages(): number {
    return this.#live().dirtyPages();
  }

  /**
   * Memory-system work since the VM was created (native/src/machine.h MemoryCounters): TLB fills
   * answered by the page gate, full TLB flushes, pages a restore copied back or cleared, and pages
   * snapshots copied. For
   * benchmarks and tests; the guest never sees them.
   */
  memoryCounters(): MemoryCounters {
    const [tlbFills, tlbFlushes, restoredPages, keptCodePages, droppedCodePages, keptCodeBits, snapshotCopiedPages] = this.#live().memoryCounters();
    return {
      tlbFills: tlbFills!, tlbFlushes: tlbFlushes!, restoredPages: restoredPages!, keptCodePages: keptCodePages!, droppedCodePages: droppedCodePages!,
      keptCodeBits: keptCodeBits!, snapshotCopiedPages: snapshotCopiedPages!,
    };
  }

  /**
   * Fuzzing: from now on a native block hook counts guest control-flow edges (AFL-style) into the
   * returned 64 KiB map, zero-copy; `resetEdgeCoverage()` clears it between executions. Boots never
   * call this, so they pay nothing for the hook.
   */
  enableEdgeCoverage(): Uint8Array {
    const native = this.#live();
    let map: Uint8Array, slots: Uint32Array;
    if (spareEdgeBuffers) {
      ({ map, slots } = spareEdgeBuffers);
      spareEdgeBuffers = undefined;
      // The slots hit are listed (edgeSlots): only those hold counts.
      for (let i = 1, n = slots[0]!; i <= n; i++) map[slots[i]!] = 0;
      slots[0] = 0;
    } else {
      map = new Uint8Array(EDGE_MAP_BYTES);
      slots = new Uint32Array(EDGE_MAP_BYTES + 1);
    }
    native.setEdgeMap(map, slots);
    this.#edgeMap = map;
    this.#edgeSlots = slots;
    return map;
  }

  /**
   * The slots of the edge map hit since coverage was enabled or last reset, each once, in the
   * order first hit: `[n, slot1, …, slotn]` (the native hook keeps it, and a reset clears only
   * these slots). An execution hits a few hundred of the 65,536: merging it visits only those.
   */
  get edgeSlots(): Uint32Array | undefined {
    return this.#edgeSlots;
  }

  resetEdgeCoverage(): void {
    this.#live().resetEdges();
  }

  /** The map enableEdgeCoverage() returned, if coverage is on. */
  get edgeMap(): Uint8Array | undefined {
    return this.#edgeMap;
  }

  get closed(): boolean {
    return this.#native === undefined;
  }

  /** Releases guest RAM and the emulator now rather than at garbage collection. */
  close(): void {
    if (!this.#native) return;
    this.#native.close();
    this.#native = undefined;
    if (this.#edgeMap && this.#edgeSlots) spareEdgeBuffers = { map: this.#edgeMap, slots: this.#edgeSlots };
    this.#edgeMap = undefined;
    this.#edgeSlots = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export function unicornVersion(): string {
  return addon().unicornVersion();
}
