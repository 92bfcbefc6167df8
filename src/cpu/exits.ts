// What a vCPU run can end with: a discriminated union, like KVM's exit reasons.
//
// RIP semantics, per kind (the `rip` field is the guest's RIP when the run stopped):
// - hlt: after the HLT instruction (like KVM_EXIT_HLT).
// - tdcall, pvalidate, rmpadjust, vmgexit, cpuid, rdmsr, wrmsr, io: AT the instruction, which has not run.
//   The VMM emulates it, sets the results and advances RIP by `length` (Vcpu.complete).
// - invalid-opcode: at the instruction.
// tdcall, pvalidate, rmpadjust and vmgexit also carry the code segment they ran in (`codeBits`,
// and the CS selector `cs`, whose low bits are the CPL), as the vCPU's codeSegment() would say.
// - gate-fault: at the faulting instruction, which has not run; its access had no effect.
// - exception: at the faulting instruction for faults; after it for INT n/INT3/INTO
//   (`afterInstruction`). #PF from the guest page walk carries its error code and CR2.
// - pause: AT the PAUSE, which has not run (only on machines with several vCPUs: a spin-wait
//   hint for the vCPU scheduler, as PAUSE-loop exiting is on VMX). Complete it to go on.
// - random (RDRAND/RDSEED), rdtsc (RDTSC, RDTSCP): AT the instruction, which has not run: the platform gives the
//   value (src/cpu/hardware-random.ts, virtual-tsc.ts) and completes it. Unicorn would execute
//   them from the host's random source and clock, which no run could repeat.
// - svm (0F 01 D8-DF: VMRUN .. INVLPGA, not the F3 0F 01 D9 of VMGEXIT), vmcall (0F 01 C1): AT
//   the instruction, which has not run: the emulator has neither SVM nor VMX (its #UD would be
//   wrong for a guest that expects an intercept); the platform says what the guest sees.
// - system-call (SYSCALL 0F 05, SYSENTER 0F 34): AT the instruction, which has not run: Unicorn's
//   helper_syscall and helper_sysenter only call instruction hooks and step over it, where the CPU
//   changes privilege and jumps (src/cpu/fast-system-call.ts does what the CPU does).
// - cache-or-wait (INVD, WBINVD, WBNOINVD, MONITOR, MWAIT): AT the instruction, which has not run:
//   the emulator runs them as NOPs, where both platforms intercept them (src/cpu/cache-or-wait.ts).
// - rdpmc (0F 33): AT the instruction, which has not run: the emulator raises #UD for it at any
//   CPL (helper_rdpmc has no counters), where both platforms intercept it (src/cpu/rdpmc.ts).
// - xsetbv (0F 01 D1): AT the instruction, which has not run, and only for an XCR0 value with a
//   bit outside Machine.xsetbvAllowed (a TD's XFAM) or a bit combination the CPU refuses and the
//   emulator would take (native/src/xcr0.h): any other XSETBV runs on the emulated CPU.
// - mov-dr (MOV r, DRn 0F 21; MOV DRn, r 0F 23): AT the instruction, which has not run, and only
//   for a debug register and direction Machine.debugRegisterIntercepts names (an SNP guest's DR7):
//   any other runs on the emulated CPU (src/cpu/mov-dr.ts has the CPU's checks that come first).
// - budget: at the next instruction to run; nothing was skipped.
// - fatal: where the emulator stopped; the guest cannot continue.
//
// Fault addresses: Unicorn's TLB-fill hook sees only the page of a refused access. When the
// emulator stops, the native side decodes the faulting instruction (native/src/mem_operand.cc)
// and reports the exact address if it can (`exactAddress`); otherwise the page address.
import { ExitCode, RunSlot } from './run-area.js';
import { GPRS, type Gpr } from './registers.js';
import type { Space } from '../memory/address-marker.js';

export type Access = 'read' | 'write' | 'fetch';
export type CodeBits = 16 | 32 | 64;

export type VmExit =
  | { kind: 'hlt'; rip: bigint }
  | { kind: 'tdcall'; rip: bigint; length: number; leaf: bigint; codeBits: CodeBits; cs: number }
  | { kind: 'pvalidate'; rip: bigint; length: number; codeBits: CodeBits; cs: number }
  | { kind: 'rmpadjust'; rip: bigint; length: number; codeBits: CodeBits; cs: number }
  | { kind: 'vmgexit'; rip: bigint; length: number; codeBits: CodeBits; cs: number }
  | { kind: 'invalid-opcode'; rip: bigint; bytes: Uint8Array }
  | { kind: 'cpuid'; rip: bigint; length: number; leaf: number; subleaf: number }
  | { kind: 'rdmsr'; rip: bigint; length: number; msr: number }
  | { kind: 'wrmsr'; rip: bigint; length: number; msr: number; value: bigint }
  | IoExit
  | GateFaultExit
  | ExceptionExit
  | { kind: 'pause'; rip: bigint; length: number }
  | RandomExit
  /** RDTSC, or RDTSCP (`aux`: it also loads ECX with IA32_TSC_AUX). */
  | { kind: 'rdtsc'; rip: bigint; length: number; aux: boolean }
  | { kind: 'svm'; rip: bigint; length: number; instruction: SvmInstruction }
  | { kind: 'vmcall'; rip: bigint; length: number }
  | SystemCallExit
  | CacheOrWaitExit
  /** RDPMC. */
  | { kind: 'rdpmc'; rip: bigint; length: number }
  /** XSETBV of an XCR0 value (EDX:EAX) with a bit outside Machine.xsetbvAllowed. */
  | { kind: 'xsetbv'; rip: bigint; length: number }
  | MovDrExit
  | { kind: 'budget'; rip: bigint; instructions: bigint }
  /** The host's execution watch (Vcpu.watchExecution) fired: `rip` is the watched instruction, not yet run. */
  | { kind: 'exec-watch'; rip: bigint; gpa: bigint }
  | { kind: 'fatal'; rip: bigint; reason: string; unicornCode?: number };

/** 0F 01 D8 .. DF in order (AMD APM Vol. 3 opcode map, group 7 with ModRM.mod = 11, reg = 3). */
export const SVM_INSTRUCTIONS = ['vmrun', 'vmmcall', 'vmload', 'vmsave', 'stgi', 'clgi', 'skinit', 'invlpga'] as const;
export type SvmInstruction = (typeof SVM_INSTRUCTIONS)[number];

/** MOV r, DRn (`write` false) or MOV DRn, r (`write` true) of a debug register the platform intercepts. */
export interface MovDrExit {
  kind: 'mov-dr';
  rip: bigint;
  length: number;
  write: boolean;
  /** The debug register, 0-7 (ModRM.reg). */
  dr: number;
  /** The general-purpose register (ModRM.rm + REX.B): 64 bits in 64-bit mode, else 32. */
  register: Gpr;
}

export interface SystemCallExit {
  kind: 'system-call';
  rip: bigint;
  length: number;
  instruction: 'syscall' | 'sysenter';
}

/** The instructions of a cache-or-wait exit, in the order of the native side's CacheOrWaitOp. */
export const CACHE_OR_WAIT_INSTRUCTIONS = ['invd', 'wbinvd', 'wbnoinvd', 'monitor', 'mwait'] as const;
export type CacheOrWaitInstruction = (typeof CACHE_OR_WAIT_INSTRUCTIONS)[number];

export interface CacheOrWaitExit {
  kind: 'cache-or-wait';
  rip: bigint;
  length: number;
  instruction: CacheOrWaitInstruction;
}

export interface RandomExit {
  kind: 'random';
  rip: bigint;
  length: number;
  instruction: 'rdrand' | 'rdseed';
  /** The destination register. */
  register: Gpr;
  bits: 16 | 32 | 64;
}

export interface IoExit {
  kind: 'io';
  rip: bigint;
  length: number;
  direction: 'in' | 'out';
  port: number;
  size: 1 | 2 | 4;
  /** INS/OUTS: the VMM must emulate the string transfer itself. */
  string: boolean;
  rep: boolean;
  /** The port is an imm8 operand (E4-E7), not DX. */
  immediate: boolean;
  /** OUT (non-string): the value written. */
  value: number;
  /** INS/OUTS: the address size of the memory operand (the segment's, flipped by 67); 0 otherwise. */
  addressBits: 0 | 16 | 32 | 64;
  /**
   * INS/OUTS: the segment register of the memory operand in the SDM's encoding (0 ES, 1 CS, 2 SS,
   * 3 DS, 4 FS, 5 GS): OUTS reads DS unless a prefix overrides it, INS always writes ES. 0 otherwise.
   */
  segment: number;
}

export interface GateFaultExit {
  kind: 'gate-fault';
  rip: bigint;
  /**
   * Guest-physical address (marker stripped): exact when `exactAddress` (and not `pageWalk`),
   * else the page. For a page-walk fault, the page-table page the walk could not read.
   */
  gpa: bigint;
  /** Guest-virtual (linear) address of the access: exact when `exactAddress`, else the page. */
  gva: bigint;
  access: Access;
  space: Space;
  /** The refused access was the page walk reading a page-table page. */
  pageWalk: boolean;
  outsideRam: boolean;
  /**
   * `gva` (and `gpa`, unless `pageWalk`) is the first byte of the refused access in the refused
   * page. False when the instruction could not be decoded: both are then the page.
   */
  exactAddress: boolean;
  /** A shared read of a 'ciphertext' page whose ciphertext shadow is not computed yet. */
  ciphertext: boolean;
}

export interface ExceptionExit {
  kind: 'exception';
  rip: bigint;
  vector: number;
  errorCode?: bigint;
  /** #PF: the faulting guest-virtual address; exact when `exactAddress`, else its page. */
  cr2?: bigint;
  /** #PF only: `cr2` is the exact address (see GateFaultExit.exactAddress). */
  exactAddress?: boolean;
  afterInstruction: boolean;
}

export type ExitKind = VmExit['kind'];

const ACCESS: readonly Access[] = ['read', 'write', 'fetch'];
/** The native decoder's address-size code of a string I/O exit (native/src/trapped_insn.h). */
const IO_ADDRESS_BITS: readonly (16 | 32 | 64)[] = [16, 32, 64];
/** A run ended because Unicorn itself aborted (native/src/abort_guard.h): that VM never runs again. */
export const EMULATOR_ABORTED = 'the emulator aborted translating guest code (a Unicorn bug); this VM cannot run again';

const FATAL_REASONS: Record<number, string> = {
  1: 'the guest jumped to address 0',
  2: 'the emulator stopped with an error',
  3: 'wall-clock timeout (fast mode has no instruction budget)',
  4: EMULATOR_ABORTED,
};

/**
 * A run-area slot's low 32 bits as a number, through the area's 32-bit view (`words`; x86 and arm
 * hosts are little-endian): for the slots that hold small values (the kind, lengths, code bits,
 * CS, ports, CPUID leaves, MSR numbers), reading them as BigInts first allocated one per slot.
 */
const low = (words: Uint32Array, slot: number): number => words[slot * 2]!;
/** A slot as a number, as Number() of its BigInt would give it (one rounding: exact below 2^53). */
const asNumber = (words: Uint32Array, slot: number): number => words[slot * 2]! + words[slot * 2 + 1]! * 0x1_0000_0000;

/**
 * Decodes the exit the native side wrote into the run area; `words` is the same memory as 32-bit
 * words. Each kind reads only the slots it has: reading all four arguments as BigInts allocated
 * four per exit whatever the kind (issue 10).
 */
export function decodeExit(area: BigUint64Array, words: Uint32Array): VmExit {
  const rip = area[RunSlot.regs + 16]!;
  const kind = asNumber(words, RunSlot.kind);
  const length = asNumber(words, RunSlot.insnLength);
  const { arg0, arg1, arg2, arg3 } = RunSlot;
  switch (kind) {
    case ExitCode.hlt: return { kind: 'hlt', rip };
    case ExitCode.tdcall: return { kind: 'tdcall', rip, length, leaf: area[arg0]!, codeBits: asNumber(words, arg2) as CodeBits, cs: asNumber(words, arg3) };
    case ExitCode.pvalidate: return { kind: 'pvalidate', rip, length, codeBits: asNumber(words, arg2) as CodeBits, cs: asNumber(words, arg3) };
    case ExitCode.rmpadjust: return { kind: 'rmpadjust', rip, length, codeBits: asNumber(words, arg2) as CodeBits, cs: asNumber(words, arg3) };
    case ExitCode.vmgexit: return { kind: 'vmgexit', rip, length, codeBits: asNumber(words, arg2) as CodeBits, cs: asNumber(words, arg3) };
    case ExitCode.invalidOpcode: {
      const n = Math.min(asNumber(words, arg0), 8);
      const bytes = new Uint8Array(n);
      for (let i = 0; i < n; i++) bytes[i] = Number((area[RunSlot.insnBytes]! >> BigInt(8 * i)) & 0xffn);
      return { kind: 'invalid-opcode', rip, bytes };
    }
    case ExitCode.cpuid: return { kind: 'cpuid', rip, length, leaf: asNumber(words, arg0), subleaf: asNumber(words, arg1) };
    case ExitCode.rdmsr: return { kind: 'rdmsr', rip, length, msr: asNumber(words, arg0) };
    case ExitCode.wrmsr: return { kind: 'wrmsr', rip, length, msr: asNumber(words, arg0), value: area[arg1]! };
    case ExitCode.ioIn:
    case ExitCode.ioOut: {
      const flags = low(words, arg2);
      return {
        kind: 'io', rip, length, direction: kind === ExitCode.ioIn ? 'in' : 'out', port: asNumber(words, arg0),
        size: asNumber(words, arg1) as 1 | 2 | 4, string: (flags & 1) !== 0, rep: (flags & 2) !== 0, immediate: (flags & 4) !== 0,
        value: asNumber(words, arg3),
        addressBits: (flags & 1) !== 0 ? IO_ADDRESS_BITS[(flags >> 3) & 3] ?? 64 : 0, segment: (flags >> 5) & 7,
      };
    }
    case ExitCode.gateFault: {
      const flags = low(words, arg3);
      return {
        kind: 'gate-fault', rip, gpa: area[arg0]!, gva: area[arg1]!, access: ACCESS[asNumber(words, arg2)] ?? 'read',
        space: (flags & 1) !== 0 ? 'private' : 'shared', pageWalk: (flags & 2) !== 0, outsideRam: (flags & 4) !== 0,
        exactAddress: (flags & 8) !== 0, ciphertext: (flags & 16) !== 0,
      };
    }
    case ExitCode.exception: {
      const flags = low(words, arg2);
      const hasError = (flags & 1) !== 0;
      const vector = asNumber(words, arg0);
      const exit: ExceptionExit = { kind: 'exception', rip, vector, afterInstruction: (flags & 2) !== 0 };
      if (hasError) exit.errorCode = area[arg1]!;
      if (vector === 14 && hasError) {
        exit.cr2 = area[arg3]!;
        exit.exactAddress = (flags & 4) !== 0;
      }
      return exit;
    }
    case ExitCode.pause: return { kind: 'pause', rip, length };
    case ExitCode.random: {
      const a0 = low(words, arg0);
      return {
        kind: 'random', rip, length, instruction: (a0 >> 16) & 1 ? 'rdseed' : 'rdrand', register: GPRS[a0 & 0xf]!,
        bits: ((a0 >> 8) & 0xff) as 16 | 32 | 64,
      };
    }
    case ExitCode.rdtsc: return { kind: 'rdtsc', rip, length, aux: (low(words, arg0) & 1) !== 0 };
    case ExitCode.svm: return { kind: 'svm', rip, length, instruction: SVM_INSTRUCTIONS[low(words, arg0) & 7]! };
    case ExitCode.vmcall: return { kind: 'vmcall', rip, length };
    case ExitCode.systemCall: return { kind: 'system-call', rip, length, instruction: (low(words, arg0) & 1) !== 0 ? 'sysenter' : 'syscall' };
    case ExitCode.cacheOrWait: {
      const a0 = low(words, arg0);
      const instruction = CACHE_OR_WAIT_INSTRUCTIONS[a0];
      if (instruction === undefined) return { kind: 'fatal', rip, reason: `unknown cache-or-wait instruction ${a0} from the native machine` };
      return { kind: 'cache-or-wait', rip, length, instruction };
    }
    case ExitCode.rdpmc: return { kind: 'rdpmc', rip, length };
    case ExitCode.xsetbv: return { kind: 'xsetbv', rip, length };
    case ExitCode.movDr: {
      const a0 = low(words, arg0);
      return { kind: 'mov-dr', rip, length, write: ((a0 >> 16) & 1) !== 0, dr: a0 & 7, register: GPRS[(a0 >> 8) & 0xf]! };
    }
    case ExitCode.budget: return { kind: 'budget', rip, instructions: area[arg0]! };
    case ExitCode.execWatch: return { kind: 'exec-watch', rip, gpa: (area[arg1]! & ~0xfffn) | (rip & 0xfffn) };
    case ExitCode.fatal: {
      const a0 = area[arg0]!;
      const exit: VmExit = { kind: 'fatal', rip, reason: FATAL_REASONS[Number(a0)] ?? `fatal condition ${a0}` };
      if (a0 === 2n) exit.unicornCode = asNumber(words, arg1);
      return exit;
    }
    default:
      return { kind: 'fatal', rip, reason: `unknown exit kind ${kind} from the native machine` };
  }
}
