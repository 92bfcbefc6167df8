// decodeExit (src/cpu/exits.ts) against the native side's numbering (native/src/machine.h:
// ExitKind, the fatal reasons in arg0, the gate-fault flags in arg3; page_walk.h Access): the run area is the only
// channel between them, so each number must mean on this side what it means on that one.
import { describe, expect, it } from 'vitest';
import { decodeExit, EMULATOR_ABORTED } from '../../src/cpu/exits.js';
import { ExitCode, RUN_AREA_SLOTS, RunSlot } from '../../src/cpu/run-area.js';

function area(kind: number, args: Partial<Record<'arg0' | 'arg1' | 'arg2' | 'arg3', bigint>> = {}) {
  const a = new BigUint64Array(RUN_AREA_SLOTS);
  a[RunSlot.kind] = BigInt(kind);
  a[RunSlot.regs + 16] = 0x301000n; // RIP (native kRegRip = 16)
  for (const [slot, value] of Object.entries(args)) a[RunSlot[slot as keyof typeof args]] = value;
  return decodeExit(a, new Uint32Array(a.buffer));
}

describe('fatal exits (machine.h kFatal, reasons kFatalNullJump 1, kFatalUnicorn 2, kFatalTimeout 3, kFatalEmulatorAbort 4)', () => {
  it('a Unicorn error carries its uc_err code (machine.cc: arg1 = e); the others carry none', () => {
    expect(area(ExitCode.fatal, { arg0: 2n, arg1: 8n })).toEqual({ kind: 'fatal', rip: 0x301000n, reason: 'the emulator stopped with an error', unicornCode: 8 });
    expect(area(ExitCode.fatal, { arg0: 1n, arg1: 8n })).toEqual({ kind: 'fatal', rip: 0x301000n, reason: 'the guest jumped to address 0' });
    expect(area(ExitCode.fatal, { arg0: 3n })).toMatchObject({ reason: 'wall-clock timeout (fast mode has no instruction budget)' });
    expect(area(ExitCode.fatal, { arg0: 4n })).toMatchObject({ reason: EMULATOR_ABORTED });
    expect(area(ExitCode.fatal, { arg0: 9n })).toEqual({ kind: 'fatal', rip: 0x301000n, reason: 'fatal condition 9' });
  });

  it('an exit kind this side does not know is a fatal exit naming it, not a crash', () => {
    expect(area(99)).toEqual({ kind: 'fatal', rip: 0x301000n, reason: 'unknown exit kind 99 from the native machine' });
  });
});

describe('gate faults (machine.h kGatePrivate 1, kGatePageWalk 2, kGateOutsideRam 4, kGateExactAddress 8, kGateCiphertext 16)', () => {
  it('each flag sets its own field only', () => {
    const none = { space: 'shared', pageWalk: false, outsideRam: false, exactAddress: false, ciphertext: false };
    const decode = (flags: bigint) => area(ExitCode.gateFault, { arg0: 0x400123n, arg1: 0x7000_0123n, arg2: 1n, arg3: flags });
    expect(decode(0n)).toEqual({ kind: 'gate-fault', rip: 0x301000n, gpa: 0x400123n, gva: 0x7000_0123n, access: 'write', ...none });
    expect(decode(1n)).toMatchObject({ ...none, space: 'private' });
    expect(decode(2n)).toMatchObject({ ...none, pageWalk: true });
    expect(decode(4n)).toMatchObject({ ...none, outsideRam: true });
    expect(decode(8n)).toMatchObject({ ...none, exactAddress: true });
    expect(decode(16n)).toMatchObject({ ...none, ciphertext: true });
    expect(area(ExitCode.gateFault, { arg2: 2n })).toMatchObject({ kind: 'gate-fault', access: 'fetch' });
  });
});

describe('SVM and VMCALL exits (machine.h kSvm 20 with arg0 = ModRM & 7, kVmcall 21)', () => {
  it('arg0 names the instruction in 0F 01 D8-DF order', () => {
    const names = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n].map((op) => {
      const exit = area(ExitCode.svm, { arg0: op });
      return exit.kind === 'svm' ? exit.instruction : exit.kind;
    });
    expect(names).toEqual(['vmrun', 'vmmcall', 'vmload', 'vmsave', 'stgi', 'clgi', 'skinit', 'invlpga']);
    expect(area(ExitCode.vmcall)).toEqual({ kind: 'vmcall', rip: 0x301000n, length: 0 });
  });
});

describe('SYSCALL/SYSENTER exits (machine.h kSystemCall 22 with arg0 = 1 for SYSENTER)', () => {
  it('arg0 names the instruction', () => {
    expect(ExitCode.systemCall).toBe(22);
    const decode = (arg0: bigint) => area(ExitCode.systemCall, { arg0 });
    expect(decode(0n)).toEqual({ kind: 'system-call', rip: 0x301000n, length: 0, instruction: 'syscall' });
    expect(decode(1n)).toEqual({ kind: 'system-call', rip: 0x301000n, length: 0, instruction: 'sysenter' });
  });
});

describe('cache-or-wait exits (machine.h kCacheOrWait 23 with arg0 = CacheOrWaitOp)', () => {
  it('arg0 names the instruction in trapped_insn.h CacheOrWaitOp order', () => {
    expect(ExitCode.cacheOrWait).toBe(23);
    const names = [0n, 1n, 2n, 3n, 4n].map((op) => {
      const exit = area(ExitCode.cacheOrWait, { arg0: op });
      return exit.kind === 'cache-or-wait' ? exit.instruction : exit.kind;
    });
    expect(names).toEqual(['invd', 'wbinvd', 'wbnoinvd', 'monitor', 'mwait']);
    expect(area(ExitCode.cacheOrWait, { arg0: 1n })).toEqual({ kind: 'cache-or-wait', rip: 0x301000n, length: 0, instruction: 'wbinvd' });
  });

  it('an operation this side does not know is a fatal exit naming it', () => {
    expect(area(ExitCode.cacheOrWait, { arg0: 5n })).toEqual({ kind: 'fatal', rip: 0x301000n, reason: 'unknown cache-or-wait instruction 5 from the native machine' });
  });
});

describe('RDTSC exits (machine.h kRdtsc 19 with arg0 = 1 for RDTSCP)', () => {
  it('arg0 says whether ECX takes IA32_TSC_AUX', () => {
    expect(area(ExitCode.rdtsc)).toEqual({ kind: 'rdtsc', rip: 0x301000n, length: 0, aux: false });
    expect(area(ExitCode.rdtsc, { arg0: 1n })).toEqual({ kind: 'rdtsc', rip: 0x301000n, length: 0, aux: true });
  });
});

describe('RDPMC and XSETBV exits (machine.h kRdpmc 24, kXsetbv 25)', () => {
  it('neither carries anything but where it is', () => {
    expect([ExitCode.rdpmc, ExitCode.xsetbv]).toEqual([24, 25]);
    expect(area(ExitCode.rdpmc)).toEqual({ kind: 'rdpmc', rip: 0x301000n, length: 0 });
    expect(area(ExitCode.xsetbv)).toEqual({ kind: 'xsetbv', rip: 0x301000n, length: 0 });
  });
});

describe('MOV DR exits (machine.h kMovDr 26, arg0 = DR | GPR << 8 | write << 16)', () => {
  it('arg0 names the debug register, the GPR in encoding order (ModRM.rm + REX.B) and the direction', () => {
    expect(ExitCode.movDr).toBe(26);
    expect(area(ExitCode.movDr, { arg0: 7n })).toEqual({ kind: 'mov-dr', rip: 0x301000n, length: 0, write: false, dr: 7, register: 'rax' });
    expect(area(ExitCode.movDr, { arg0: 7n | 9n << 8n | 1n << 16n })).toEqual({ kind: 'mov-dr', rip: 0x301000n, length: 0, write: true, dr: 7, register: 'r9' });
    expect(area(ExitCode.movDr, { arg0: 3n | 15n << 8n })).toMatchObject({ write: false, dr: 3, register: 'r15' });
  });
});

/** As `area`, with the instruction length and bytes slots too. */
function exitOf(kind: number, slots: Partial<Record<'insnLength' | 'arg0' | 'arg1' | 'arg2' | 'arg3' | 'insnBytes', bigint>>) {
  const a = new BigUint64Array(RUN_AREA_SLOTS);
  a[RunSlot.kind] = BigInt(kind);
  a[RunSlot.regs + 16] = 0x301234n;
  for (const [slot, value] of Object.entries(slots)) a[RunSlot[slot as keyof typeof slots]] = value;
  return decodeExit(a, new Uint32Array(a.buffer));
}

// Each field from the slot machine.cc writes it to (RecordTrapped; OnInvalidInstruction; OnInterrupt
// and RefineFaultAddress for exceptions; the fill hook for gate faults and the execution watch;
// the code hook and Run for budget stops), with values that tell the slots and bits apart.
describe('every field from its own slot (machine.cc RecordTrapped and the hooks)', () => {
  it('the kind is the whole slot: a kind with bits above 31 is unknown, not the kind of its low word', () => {
    expect(exitOf((1 << 16) * (1 << 16) + ExitCode.hlt, {})).toEqual({ kind: 'fatal', rip: 0x301234n, reason: 'unknown exit kind 4294967297 from the native machine' });
  });

  it('TDCALL: arg0 = RAX (the leaf), arg2 = the code size, arg3 = the CS selector; PVALIDATE, RMPADJUST, VMGEXIT: arg2, arg3', () => {
    expect(exitOf(ExitCode.tdcall, { insnLength: 4n, arg0: 0x10003n, arg1: 7n, arg2: 32n, arg3: 0x1bn }))
      .toEqual({ kind: 'tdcall', rip: 0x301234n, length: 4, leaf: 0x10003n, codeBits: 32, cs: 0x1b });
    for (const [code, kind] of [[ExitCode.pvalidate, 'pvalidate'], [ExitCode.rmpadjust, 'rmpadjust'], [ExitCode.vmgexit, 'vmgexit']] as const) {
      expect(exitOf(code, { insnLength: 4n, arg0: 0x5000n, arg2: 16n, arg3: 0x23n }), kind).toEqual({ kind, rip: 0x301234n, length: 4, codeBits: 16, cs: 0x23 });
    }
  });

  it('an invalid opcode: the bytes fetched (arg0, up to 15) packed little-endian in the bytes slot, the first 8 kept', () => {
    expect(exitOf(ExitCode.invalidOpcode, { arg0: 3n, insnBytes: 0x443322110b0f0fn }))
      .toEqual({ kind: 'invalid-opcode', rip: 0x301234n, bytes: new Uint8Array([0x0f, 0x0f, 0x0b]) });
    expect(exitOf(ExitCode.invalidOpcode, { arg0: 15n, insnBytes: 0x8877665544332211n }))
      .toEqual({ kind: 'invalid-opcode', rip: 0x301234n, bytes: new Uint8Array([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]) });
  });

  it('CPUID: arg0 = EAX, arg1 = ECX; RDMSR: arg0 = ECX; WRMSR: arg0 = ECX, arg1 = EDX:EAX', () => {
    expect(exitOf(ExitCode.cpuid, { insnLength: 2n, arg0: 0x80000008n, arg1: 0xffffffffn })).toEqual({ kind: 'cpuid', rip: 0x301234n, length: 2, leaf: 0x80000008, subleaf: 0xffffffff });
    expect(exitOf(ExitCode.rdmsr, { insnLength: 2n, arg0: 0xc0010131n, arg1: 5n })).toEqual({ kind: 'rdmsr', rip: 0x301234n, length: 2, msr: 0xc0010131 });
    expect(exitOf(ExitCode.wrmsr, { insnLength: 2n, arg0: 0xc0010130n, arg1: 0x1234567800000001n })).toEqual({ kind: 'wrmsr', rip: 0x301234n, length: 2, msr: 0xc0010130, value: 0x1234567800000001n });
  });

  it('I/O: arg0 = port, arg1 = size, arg2 = string 1 | REP 2 | imm8 port 4 | address size code << 3 (16, 32, 64) | segment << 5, arg3 = the OUT value', () => {
    const io = (kind: number, flags: bigint, value = 0n) => exitOf(kind, { insnLength: 2n, arg0: 0x3f8n, arg1: 2n, arg2: flags, arg3: value });
    const plain = { kind: 'io', rip: 0x301234n, length: 2, port: 0x3f8, size: 2, string: false, rep: false, immediate: false, value: 0, addressBits: 0, segment: 0 };
    expect(io(ExitCode.ioOut, 0n, 0xbeefn)).toEqual({ ...plain, direction: 'out', value: 0xbeef });
    expect(io(ExitCode.ioIn, 4n)).toEqual({ ...plain, direction: 'in', immediate: true });
    expect(io(ExitCode.ioIn, 1n | (0n << 3n))).toMatchObject({ string: true, rep: false, addressBits: 16, segment: 0 });
    expect(io(ExitCode.ioOut, 1n | 2n | (1n << 3n) | (5n << 5n))).toMatchObject({ direction: 'out', string: true, rep: true, immediate: false, addressBits: 32, segment: 5 });
    expect(io(ExitCode.ioOut, 1n | (2n << 3n) | (3n << 5n))).toMatchObject({ string: true, rep: false, addressBits: 64, segment: 3 });
    // Without the string bit there is no memory operand: address size 0, whatever else is set.
    expect(io(ExitCode.ioIn, 2n | (1n << 3n))).toMatchObject({ string: false, rep: true, addressBits: 0 });
  });

  it('an exception: arg0 = vector, arg1 = error code, arg2 = has error 1 | after the instruction 2 | exact CR2 4, arg3 = CR2 (for #PF only)', () => {
    expect(exitOf(ExitCode.exception, { arg0: 14n, arg1: 0x6n, arg2: 1n | 4n, arg3: 0x7000_0123n }))
      .toEqual({ kind: 'exception', rip: 0x301234n, vector: 14, errorCode: 6n, cr2: 0x7000_0123n, exactAddress: true, afterInstruction: false });
    expect(exitOf(ExitCode.exception, { arg0: 14n, arg1: 0x2n, arg2: 1n, arg3: 0x7000_0000n }))
      .toEqual({ kind: 'exception', rip: 0x301234n, vector: 14, errorCode: 2n, cr2: 0x7000_0000n, exactAddress: false, afterInstruction: false });
    expect(exitOf(ExitCode.exception, { arg0: 13n, arg1: 0n, arg2: 1n, arg3: 0x1234n }))
      .toEqual({ kind: 'exception', rip: 0x301234n, vector: 13, errorCode: 0n, afterInstruction: false });
    // INT 14 (software): after the instruction, no error code, so no CR2 either.
    expect(exitOf(ExitCode.exception, { arg0: 14n, arg2: 2n, arg3: 0x1234n }))
      .toEqual({ kind: 'exception', rip: 0x301234n, vector: 14, afterInstruction: true });
  });

  it('RDRAND/RDSEED: arg0 = destination register | operand bits << 8 | RDSEED << 16', () => {
    expect(exitOf(ExitCode.random, { insnLength: 4n, arg0: 15n | (64n << 8n) | (1n << 16n) }))
      .toEqual({ kind: 'random', rip: 0x301234n, length: 4, instruction: 'rdseed', register: 'r15', bits: 64 });
    expect(exitOf(ExitCode.random, { insnLength: 3n, arg0: 9n | (16n << 8n) }))
      .toEqual({ kind: 'random', rip: 0x301234n, length: 3, instruction: 'rdrand', register: 'r9', bits: 16 });
  });

  it('PAUSE and VMCALL carry their length; a budget stop, arg0 = the instructions started', () => {
    expect(exitOf(ExitCode.pause, { insnLength: 2n })).toEqual({ kind: 'pause', rip: 0x301234n, length: 2 });
    expect(exitOf(ExitCode.vmcall, { insnLength: 3n })).toEqual({ kind: 'vmcall', rip: 0x301234n, length: 3 });
    expect(exitOf(ExitCode.budget, { arg0: 0x1_0000_0005n, arg1: 7n })).toEqual({ kind: 'budget', rip: 0x301234n, instructions: 0x1_0000_0005n });
  });

  it('the execution watch: arg1 = the GPA of the refused fill, whose page takes the offset of RIP', () => {
    expect(exitOf(ExitCode.execWatch, { arg0: 0x301000n, arg1: 0x7f000n })).toEqual({ kind: 'exec-watch', rip: 0x301234n, gpa: 0x7f234n });
  });

  it('the execution watch: all 12 bits of a 4 KiB page offset come from RIP, bit 11 too, and none from the fill\'s GPA', () => {
    const a = new BigUint64Array(RUN_AREA_SLOTS);
    a[RunSlot.kind] = BigInt(ExitCode.execWatch);
    a[RunSlot.regs + 16] = 0x301a34n;
    a[RunSlot.arg1] = 0x7f000n | 0x5c0n;  // a GPA inside the page: its offset is not the instruction's
    expect(decodeExit(a, new Uint32Array(a.buffer))).toEqual({ kind: 'exec-watch', rip: 0x301a34n, gpa: 0x7fa34n });
  });

  it('a cache-or-wait operation is all of arg0[7:0]: 0x10 is no operation the native side has, not INVD', () => {
    expect(exitOf(ExitCode.cacheOrWait, { arg0: 0x10n })).toEqual({ kind: 'fatal', rip: 0x301234n, reason: 'unknown cache-or-wait instruction 16 from the native machine' });
  });

  it('an SVM instruction: arg0 = ModRM & 7; a Unicorn error (fatal reason 2): arg1 = uc_err', () => {
    expect(exitOf(ExitCode.svm, { insnLength: 3n, arg0: 7n })).toEqual({ kind: 'svm', rip: 0x301234n, length: 3, instruction: 'invlpga' });
    expect(exitOf(ExitCode.fatal, { arg0: 2n, arg1: 21n, arg2: 9n })).toMatchObject({ unicornCode: 21 });
  });
});
