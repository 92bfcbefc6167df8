// The vCPU: registers in the shared run area, run() returning a VmExit, event injection.
import type { NativeCodeSegment, NativeMachine, NativeTranslation } from '../native/binding.js';
import { InjectionError, injectionFailure } from './errors.js';
import { decodeExit, type Access, type VmExit } from './exits.js';
import { GPRS, GPR_INDEX, SPECIAL_INDEX, type Gpr, type SpecialRegister } from './registers.js';
import { RunSlot, type ExitCode } from './run-area.js';
import { MASK64 } from '../shared/u64.js';

/** Where a vCPU starts (Vcpu.enter). */
export type EntryState =
  | { mode: 'long64' }
  | { mode: 'protected32' }
  | { mode: 'real16'; csSelector: number; csBase: bigint };
const ACCESS_CODE: Record<Access, number> = { read: 0, write: 1, fetch: 2 };
const TRANSLATION_STATUS: readonly NativeTranslation['status'][] = ['ok', 'page-fault', 'table-blocked'];

/** General-purpose registers, RIP and RFLAGS as bigint properties (rax … r15, rip, rflags). */
export interface Registers extends Record<Gpr, bigint> {}
export class Registers {
  readonly #area: BigUint64Array;
  /**
   * The low half of the dirty-register slot as a number (x86 and arm hosts are little-endian):
   * marking a register dirty then allocates no BigInts, which showed in every exit (issue 11).
   */
  readonly #dirty: Uint32Array;
  constructor(area: BigUint64Array) {
    this.#area = area;
    this.#dirty = new Uint32Array(area.buffer, area.byteOffset + RunSlot.dirtyRegs * 8, 1);
  }
  get(name: Gpr): bigint {
    return this.#area[RunSlot.regs + GPR_INDEX[name]]!;
  }
  set(name: Gpr, value: bigint): void {
    this.#write(GPR_INDEX[name], value);
  }
  // A BigUint64Array store keeps the value modulo 2^64, which is the register's truncation.
  #write(index: number, value: bigint): void {
    this.#area[RunSlot.regs + index] = value;
    this.#dirty[0]! |= 1 << index;
  }
  /** A plain copy of all of them, for traces and test assertions. */
  toObject(): Record<Gpr, bigint> {
    return Object.fromEntries(GPRS.map((r) => [r, this.get(r)])) as Record<Gpr, bigint>;
  }
  static {
    for (const name of GPRS) {
      const index = GPR_INDEX[name];
      Object.defineProperty(Registers.prototype, name, {
        get(this: Registers) { return this.#area[RunSlot.regs + index]!; },
        set(this: Registers, v: bigint) { this.#write(index, v); },
      });
    }
  }
}

export class Vcpu {
  readonly regs: Registers;
  /** How many exits of each kind run() has returned (runRaw() is not counted: it is the hot path). */
  readonly exitCounts: Partial<Record<VmExit['kind'], number>> = {};
  readonly #native: NativeMachine;
  readonly #area: BigUint64Array;
  /** The run area as 32-bit words, for decodeExit's small fields. */
  readonly #words: Uint32Array;
  /** The instruction count as last read, and the slot's two words then. */
  #instructions = 0n;
  #instructionsLo = 0;
  #instructionsHi = 0;

  constructor(native: NativeMachine, area: BigUint64Array) {
    this.#native = native;
    this.#area = area;
    this.#words = new Uint32Array(area.buffer, area.byteOffset, area.length * 2);
    this.regs = new Registers(area);
  }

  /** Runs until the next exit. */
  run(): VmExit {
    this.#native.run();
    const exit = decodeExit(this.#area, this.#words);
    this.exitCounts[exit.kind] = (this.exitCounts[exit.kind] ?? 0) + 1;
    return exit;
  }

  /**
   * Runs and returns only the numeric exit kind: for hot loops that read the details from
   * `runArea` themselves (see run-area.ts). Same semantics as run().
   */
  runRaw(): ExitCode {
    this.#native.run();
    return Number(this.#area[RunSlot.kind]) as ExitCode;
  }

  get runArea(): BigUint64Array {
    return this.#area;
  }

  /** Finishes an intercepted instruction the VMM emulated: RIP moves past it. */
  complete(exit: { length: number }): void {
    this.regs.rip = this.regs.rip + BigInt(exit.length);
  }

  /** Instructions the guest has started since the VM was created (counting mode only). */
  get instructions(): bigint {
    // Every trace event of a boot carries it, several per exit, and it changes only while the
    // guest runs: the BigInt read last time is handed out again while the slot's words are the
    // same (a BigInt per read was one of the larger allocations per exit; issue 10).
    const words = this.#words, lo = words[RunSlot.instructions * 2]!, hi = words[RunSlot.instructions * 2 + 1]!;
    if (lo !== this.#instructionsLo || hi !== this.#instructionsHi) {
      this.#instructions = this.#area[RunSlot.instructions]!;
      this.#instructionsLo = lo;
      this.#instructionsHi = hi;
    }
    return this.#instructions;
  }

  /**
   * Budget charged for host work beyond retired instructions (counting mode): every run() (an
   * exit to the VMM and back), every injected exception, every block the guest made the emulator
   * retranslate under itself. Fixed charges per event (native/src/budget.h), so deterministic.
   */
  get budgetCharged(): bigint {
    return this.#area[RunSlot.charged]!;
  }

  /** Counting mode: run() returns a `budget` exit once `instructions` reaches this (exact: for stepping). */
  get instructionLimit(): bigint {
    return this.#area[RunSlot.instructionLimit]!;
  }
  set instructionLimit(limit: bigint) {
    if (limit < 0n) throw new RangeError('instructionLimit must not be negative');
    this.#area[RunSlot.instructionLimit] = limit > MASK64 ? MASK64 : limit;
  }

  /**
   * Counting mode: run() returns a `budget` exit once `instructions + budgetCharged` reaches this,
   * so host work the guest causes is bounded too (a run's budget; default: none).
   */
  get budgetLimit(): bigint {
    return this.#area[RunSlot.budgetLimit]!;
  }
  set budgetLimit(limit: bigint) {
    if (limit < 0n) throw new RangeError('budgetLimit must not be negative');
    this.#area[RunSlot.budgetLimit] = limit > MASK64 ? MASK64 : limit;
  }

  readSpecial(name: SpecialRegister): bigint {
    return this.#native.readSpecial(SPECIAL_INDEX[name]);
  }

  writeSpecial(name: SpecialRegister, value: bigint): void {
    this.#native.writeSpecial(SPECIAL_INDEX[name], value & MASK64);
  }

  /** Reads an MSR the emulator itself implements (EFER, KERNEL_GS_BASE, …). */
  readMsr(index: number): bigint {
    return this.#native.readMsr(index);
  }

  writeMsr(index: number, value: bigint): void {
    this.#native.writeMsr(index, value & MASK64);
  }

  /**
   * Delivers an exception or interrupt through the guest's IDT: pushes SS, RSP, RFLAGS, CS,
   * RIP (and the error code) and enters the handler. Throws InjectionError when the IDT, GDT
   * or stack cannot take it; the platform model decides what the guest sees then.
   * For #PF (and SNP's #VC 0x404), pass `cr2` to set CR2 as the CPU would: it is loaded when the
   * fault is raised, so also when the delivery then fails. `resume`: the pushed RFLAGS image has
   * RF set, as the CPU pushes it for a fault-class exception (Intel SDM Vol. 3 §17.3.1.1) and the
   * TDX module for every exception it injects (native/src/deliver.cc); the handler runs with RF clear.
   */
  inject(vector: number, errorCode?: bigint, cr2?: bigint, resume = false): void {
    const reason = this.#deliver(vector, errorCode, cr2, false, resume);
    if (reason) throw new InjectionError(vector, reason);
  }

  /**
   * inject() that returns instead of throwing: undefined once delivered, else InjectionError's
   * message. For a caller that turns the failure into an outcome anyway: building the Error (its
   * stack trace) was ~30 us, the end of every SNP #VC storm in a fuzz campaign (issue 10).
   */
  tryInject(vector: number, errorCode?: bigint, cr2?: bigint, resume = false): string | undefined {
    const reason = this.#deliver(vector, errorCode, cr2, false, resume);
    return reason ? injectionFailure(vector, reason) : undefined;
  }

  /**
   * Whether tryInjectRepeating() repeats deliveries natively (true) or is tryInject() (false):
   * off only to compare the two (test/guest/fuzz/fault-storm.test.ts).
   */
  static repeatFaultDeliveries = true;

  /**
   * tryInject() for the gate-fault exit run() just returned, which the platform model answered
   * with this delivery, and only when that answer depends on nothing but the exit and model state
   * no run changes (the caller's promise; a single vCPU, whose runs nothing else is scheduled
   * between). While the guest's next run ends in the very same exit again, at the RIP the delivery
   * entered, with no instruction started, the same delivery is made again natively (a fault storm,
   * native/src/deliver.cc InjectRepeating) with the same frame pushes and budget charges.
   * Afterwards `repeatedDeliveries` is how many were made after the first (the caller records an
   * event for each, as it did for the first), and unless the last delivery failed (the result),
   * the next run() returns the exit the storm ended on. Until that run() a delivery, a snapshot
   * and a register write throw (the guest already ran it: they would act on a state the caller
   * has not seen). Those runs count in exitCounts as run()'s.
   */
  tryInjectRepeating(vector: number, errorCode?: bigint, cr2?: bigint, resume = false): string | undefined {
    if (!Vcpu.repeatFaultDeliveries) {
      this.#repeatedDeliveries = 0;
      this.#stormRunHeld = false;
      return this.tryInject(vector, errorCode, cr2, resume);
    }
    const reason = this.#deliver(vector, errorCode, cr2, true, resume);
    const result = Number(this.#area[RunSlot.hostResult]!);
    const repeats = Math.floor(result / 2);
    this.#repeatedDeliveries = repeats;
    this.#stormRunHeld = (result & 1) !== 0;
    if (repeats > 0) this.exitCounts['gate-fault'] = (this.exitCounts['gate-fault'] ?? 0) + repeats;
    return reason ? injectionFailure(vector, reason) : undefined;
  }

  /** The deliveries the last tryInjectRepeating() made after its first. */
  get repeatedDeliveries(): number {
    return this.#repeatedDeliveries;
  }

  /**
   * Whether the last tryInjectRepeating() ran the guest after its last delivery (then every
   * delivery it made entered the faulting RIP, and the next run() returns that run's exit); if
   * not, and it delivered, the last delivery entered `regs.rip` and any before it the faulting RIP.
   */
  get stormRunHeld(): boolean {
    return this.#stormRunHeld;
  }

  #repeatedDeliveries = 0;
  #stormRunHeld = false;

  #deliver(vector: number, errorCode: bigint | undefined, cr2: bigint | undefined, repeating: boolean, resume: boolean): string {
    if (!Number.isInteger(vector) || vector < 0 || vector > 255) throw new RangeError(`vector must be 0..255, got ${vector}`);
    // One native call: CR2 written on its own was a register write-back and read-back more per event.
    const e = errorCode === undefined ? undefined : errorCode & MASK64, c = cr2 === undefined ? undefined : cr2 & MASK64;
    return repeating ? this.#native.injectRepeating(vector, e, c, resume) : this.#native.inject(vector, e, c, resume);
  }

  /**
   * From CPL > 0 in IA-32e mode: CPL becomes the DPL of the code descriptor `descriptor` (8 bytes,
   * SDM Vol. 3 §3.4.5), CS = `selector` with that descriptor's hidden state, SS = NULL with RPL
   * = the new CPL; nothing else changes. What SYSCALL and SYSENTER do to CS from user code, which
   * the emulator cannot do from the host but through a call gate the CPU takes (native/src/guest_stub.cc).
   * Returns undefined, or why it cannot.
   */
  enterInnerPrivilege(selector: number, descriptor: bigint): string | undefined {
    return this.#native.enterInnerPrivilege(selector, descriptor & MASK64) || undefined;
  }

  /**
   * Sets XCR0 as a reset or a VMRUN does (the emulator has no register for it: an XSETBV runs in
   * the host's stub page). Throws for a value XSETBV refuses (#GP: bit 0 clear, AVX without SSE…).
   */
  writeXcr0(value: bigint): void {
    const reason = this.#native.writeXcr0(value & MASK64);
    if (reason) throw new Error(`cannot set XCR0: ${reason}`);
  }

  /**
   * Puts the vCPU, still in its reset state, into an architectural entry state: `protected32`
   * (a TD vCPU: 32-bit protected mode, flat CS/SS with selector 0, paging off) or `real16`
   * (real mode with the given CS selector and hidden base, as an SNP VMSA holds it). CR0, CR4,
   * EFER, RIP and the GPRs are the caller's to set. `long64` is Unicorn's own reset state.
   */
  enter(state: EntryState): void {
    const code = { long64: 0, protected32: 1, real16: 2 }[state.mode];
    const reason = state.mode === 'real16'
      ? this.#native.setEntryState(code, state.csSelector, state.csBase)
      : this.#native.setEntryState(code, 0, 0n);
    if (reason) throw new Error(`cannot enter the ${state.mode} entry state: ${reason}`);
  }

  /**
   * The code segment the vCPU runs in: 16-, 32- or 64-bit, from CR0.PE, EFER.LMA and the
   * descriptor its selector names (selector 0 is an entry state's flat segment).
   */
  codeSegment(): NativeCodeSegment {
    return this.#native.codeSegment();
  }

  /** The current privilege level: CS.RPL in protected mode, 0 in real mode (SDM Vol. 3 §5.5). */
  cpl(): number {
    const cs = this.#native.codeSegment();
    return cs.protectedMode ? cs.selector & 3 : 0;
  }

  /**
   * A host-side execution watch (not guest-visible): once the guest fetches an instruction from
   * guest-physical [arm.start, arm.end), the first fetch from [stop.start, stop.end) outside the
   * arm range ends run() with an `exec-watch` exit before that instruction runs. One-shot; not
   * part of snapshots. Both ranges must be page-aligned (the watch sees fetches page by page).
   * A block of straight-line code that runs from the page before into the stop range stops at
   * the block's start instead, before any of it runs (the emulator checks both pages before it
   * runs such a block; see Machine::WatchExecution).
   */
  watchExecution(arm: { start: bigint; end: bigint }, stop: { start: bigint; end: bigint }): void {
    this.#native.watchExecution(arm.start, arm.end, stop.start, stop.end);
  }

  /**
   * Translates a guest-virtual address with the guest's current page tables (no gate check), as a
   * supervisor-mode access, or as a user-mode one (CPL 3: U/S and R/W checked at every level, the
   * error code's U/S bit set; Intel SDM Vol. 3A §4.6.1, §4.7) with `mode` 'user'.
   */
  translate(va: bigint, access: Access = 'read', mode: 'supervisor' | 'user' = 'supervisor'): NativeTranslation {
    const packed = this.#native.translate(va & MASK64, ACCESS_CODE[access], mode === 'user');
    return {
      status: TRANSLATION_STATUS[packed & 3]!, gpa: this.#area[RunSlot.hostResult]!, isPrivate: (packed & 4) !== 0,
      level: (packed >> 5) & 7, writable: (packed & 8) !== 0, executable: (packed & 16) !== 0,
      userPage: (packed & 0x10000) !== 0, pfError: (packed >>> 8) & 0xff,
    };
  }
}
