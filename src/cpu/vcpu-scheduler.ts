// Deterministic interleaving of a machine's vCPUs on its one emulator thread. Hardware runs vCPUs
// in parallel; here they take turns, and the scheduler decides the turns from a seed alone, so
// the same seed gives the same interleaving, the same guest behaviour and the same trace hash.
//
// Switch points: every exit (the platform calls `switchPoint` after each one it has handled),
// every `quantum` guest instructions (a budget exit the scheduler arms itself), and every PAUSE
// (a spin-wait: the vCPU yields, as PAUSE-loop exiting lets KVM run another vCPU). Policies:
//  - round-robin: the next vCPU in index order at each switch point.
//  - random: a uniformly chosen vCPU at each switch point, each turn 1..quantum instructions.
//  - pct: Probabilistic Concurrency Testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
//    "A Randomized Scheduler with Probabilistic Guarantees of Finding Bugs", ASPLOS 2010): distinct
//    random priorities, the highest-priority vCPU runs; at `depth - 1` randomly chosen switch
//    points the running vCPU drops below every initial priority. A bug of depth d is found with
//    probability at least 1/(n * k^(d-1)) per run (n vCPUs, k switch points).
// Spin-waits: PCT assumes threads that block; guests spin. A vCPU that PAUSEs is left out until
// every vCPU has paused or one stops for another reason, so a spinning high-priority vCPU cannot
// starve the one it waits for.
// vCPUs that do not exist for the guest yet (an SNP AP before its AP-creation VMGEXIT: KVM keeps
// it KVM_MP_STATE_UNINITIALIZED) are never chosen: `isRunnable` says which ones may run.
import { Prng } from '../shared/prng.js';
import type { Snapshottable } from '../shared/snapshottable.js';
import type { VmExit } from './exits.js';
import type { Machine } from './machine.js';

export const SCHEDULE_POLICIES = ['round-robin', 'random', 'pct'] as const;
export type SchedulePolicy = (typeof SCHEDULE_POLICIES)[number];

export interface ScheduleOptions {
  policy: SchedulePolicy;
  seed: bigint;
  /** Guest instructions a vCPU runs at most before a switch point (random: at most, drawn per turn). */
  quantum: number;
  /** pct: the bug depth d it aims at (d - 1 priority change points). Default 3. */
  depth?: number;
  /** pct: the switch points the change points are drawn from (k). Default 20000. */
  horizon?: number;
}

export const DEFAULT_QUANTUM = 2000;
const DEFAULT_DEPTH = 3;
const DEFAULT_HORIZON = 20_000;

/** Why the running vCPU stopped: an exit the platform handled, its quantum ended, or it PAUSEd. */
export type SwitchReason = 'exit' | 'quantum' | 'pause';

export interface VcpuSchedulerState {
  options: Required<ScheduleOptions>;
  changePoints: readonly number[];
  rng: bigint;
  priorities: readonly number[];
  yielded: readonly boolean[];
  switchPoints: number;
  switches: number;
}

export class VcpuScheduler implements Snapshottable<VcpuSchedulerState> {
  readonly machine: Machine;
  #options: Required<ScheduleOptions>;
  readonly #rng: Prng;
  /** pct: higher runs first. Initial priorities are depth..depth+n-1, change point i sets i. */
  #priorities: number[];
  /** pct switch points (1-based) at which the running vCPU's priority drops. */
  #changePoints: readonly number[];
  #yielded: boolean[];
  #switchPoints = 0;
  #switches = 0;
  /** Which vCPUs may run (default: all). The machine's platform owns this state, and snapshots it. */
  isRunnable: ((index: number) => boolean) | undefined;

  constructor(machine: Machine, options: ScheduleOptions) {
    this.machine = machine;
    this.#rng = new Prng(0n);
    this.#options = this.#seed(options);
    this.#priorities = this.#initialPriorities();
    this.#changePoints = this.#drawChangePoints();
    this.#yielded = new Array<boolean>(machine.vcpuCount).fill(false);
  }

  get options(): Readonly<Required<ScheduleOptions>> {
    return this.#options;
  }

  /**
   * From now on, turns come from `options` (a new seed, policy, quantum): the host's scheduling
   * as a fuzz decision (an attack program's `schedule`), taken after a snapshot is restored. The
   * vCPUs' states and who runs now stay; priorities and change points are drawn afresh.
   */
  reschedule(options: ScheduleOptions): void {
    this.#options = this.#seed(options);
    this.#priorities = this.#initialPriorities();
    this.#changePoints = this.#drawChangePoints().map((p) => p + this.#switchPoints);
  }

  #seed(options: ScheduleOptions): Required<ScheduleOptions> {
    if (!Number.isInteger(options.quantum) || options.quantum < 1) throw new RangeError(`quantum must be a positive integer, got ${options.quantum}`);
    this.#rng.loadState(new Prng(options.seed ^ 0x7363686564756c65n).saveState()); // "schedule"
    return { depth: DEFAULT_DEPTH, horizon: DEFAULT_HORIZON, ...options };
  }

  #initialPriorities(): number[] {
    const n = this.machine.vcpuCount;
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.#rng.below(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order.map((rank) => this.#options.depth + rank);
  }

  #drawChangePoints(): number[] {
    return Array.from({ length: this.#options.depth - 1 }, () => 1 + this.#rng.below(this.#options.horizon));
  }

  /** Turns given to another vCPU so far (for reports and tests). */
  get switches(): number {
    return this.#switches;
  }

  saveState(): VcpuSchedulerState {
    return { options: { ...this.#options }, changePoints: [...this.#changePoints], rng: this.#rng.saveState(), priorities: [...this.#priorities], yielded: [...this.#yielded], switchPoints: this.#switchPoints, switches: this.#switches };
  }

  loadState(state: VcpuSchedulerState): void {
    this.#options = { ...state.options };
    this.#changePoints = [...state.changePoints];
    this.#rng.loadState(state.rng);
    this.#priorities = [...state.priorities];
    this.#yielded = [...state.yielded];
    this.#switchPoints = state.switchPoints;
    this.#switches = state.switches;
  }

  /**
   * A budget exit the scheduler armed (the quantum ended), as opposed to the run's own budget:
   * the machine's `budgetLimit` is the run's, `instructionLimit` is the scheduler's.
   */
  #isQuantumEnd(exit: VmExit): boolean {
    const vcpu = this.machine.vcpu;
    return exit.kind === 'budget' && vcpu.instructions + vcpu.budgetCharged < vcpu.budgetLimit;
  }

  /**
   * The platform's run loop hands every exit here first: a PAUSE (completed, then a switch point)
   * or the end of a quantum is the scheduler's, and the loop just goes on; true when it was one.
   */
  takesExit(exit: VmExit): boolean {
    if (exit.kind === 'pause') {
      this.machine.vcpu.complete(exit);
      this.switchPoint('pause');
      return true;
    }
    if (this.#isQuantumEnd(exit)) {
      this.switchPoint('quantum');
      return true;
    }
    return false;
  }

  /** A switch point: picks the vCPU that runs next, makes it the machine's running one, arms its quantum. */
  switchPoint(reason: SwitchReason): void {
    const current = this.machine.vcpuIndex;
    this.#switchPoints++;
    if (reason === 'pause') this.#yielded[current] = true;
    else this.#yielded.fill(false);
    const runnable = this.isRunnable;
    const candidates = runnable ? this.#yielded.flatMap((_, i) => (runnable(i) ? [i] : [])) : undefined;
    if (candidates ? candidates.every((i) => this.#yielded[i]) : this.#yielded.every(Boolean)) this.#yielded.fill(false);
    const eligible = candidates ? candidates.filter((i) => !this.#yielded[i]) : this.#yielded.flatMap((y, i) => (y ? [] : [i]));
    if (eligible.length === 0) eligible.push(current);
    const next = this.#choose(current, eligible);
    if (next !== current) {
      this.#switches++;
      this.machine.switchVcpu(next);
    }
    const vcpu = this.machine.vcpu;
    const turn = this.#options.policy === 'random' ? 1 + this.#rng.below(this.#options.quantum) : this.#options.quantum;
    vcpu.instructionLimit = vcpu.instructions + BigInt(turn);
  }

  /**
   * A long instruction of the running vCPU (a 2M TDG.MEM.PAGE.ACCEPT zeroing 512 chunks) asks
   * where its turn ends: a chunk in (done, total), or undefined to finish in this turn. On
   * hardware other CPUs run during those 512 chunks; here the instruction is split there and
   * the split is a switch point like any other. round-robin splits once, halfway; random and
   * pct split with probability 1/2 at a uniform chunk.
   */
  splitLongInstruction(done: number, total: number): number | undefined {
    if (total - done < 2) return undefined;
    if (this.#options.policy === 'round-robin') return done < total / 2 ? Math.floor(total / 2) : undefined;
    if (!this.#rng.chance(1, 2)) return undefined;
    return done + 1 + this.#rng.below(total - done - 1);
  }

  #choose(current: number, eligible: readonly number[]): number {
    const n = this.machine.vcpuCount;
    switch (this.#options.policy) {
      case 'round-robin': {
        for (let step = 1; step <= n; step++) {
          const candidate = (current + step) % n;
          if (eligible.includes(candidate)) return candidate;
        }
        return current;
      }
      case 'random':
        return this.#rng.pick(eligible);
      case 'pct': {
        const change = this.#changePoints.indexOf(this.#switchPoints);
        if (change >= 0) this.#priorities[current] = change + 1;
        return eligible.reduce((best, i) => (this.#priorities[i]! > this.#priorities[best]! ? i : best));
      }
    }
  }
}
