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

describe('SYSCALL/SYSENTER exits (machine.h kSystemCall 22 with arg0 = SYSENTER | LOCK << 1)', () => {
  it('arg0 names the instruction and the LOCK prefix', () => {
    expect(ExitCode.systemCall).toBe(22);
    const decode = (arg0: bigint) => area(ExitCode.systemCall, { arg0 });
    expect(decode(0n)).toEqual({ kind: 'system-call', rip: 0x301000n, length: 0, instruction: 'syscall', lock: false });
    expect(decode(1n)).toMatchObject({ instruction: 'sysenter', lock: false });
    expect(decode(2n)).toMatchObject({ instruction: 'syscall', lock: true });
    expect(decode(3n)).toMatchObject({ instruction: 'sysenter', lock: true });
  });
});

describe('cache-or-wait exits (machine.h kCacheOrWait 23 with arg0 = CacheOrWaitOp | LOCK << 8)', () => {
  it('arg0 names the instruction in trapped_insn.h CacheOrWaitOp order, and the LOCK prefix', () => {
    expect(ExitCode.cacheOrWait).toBe(23);
    const names = [0n, 1n, 2n, 3n, 4n].map((op) => {
      const exit = area(ExitCode.cacheOrWait, { arg0: op });
      return exit.kind === 'cache-or-wait' ? exit.instruction : exit.kind;
    });
    expect(names).toEqual(['invd', 'wbinvd', 'wbnoinvd', 'monitor', 'mwait']);
    expect(area(ExitCode.cacheOrWait, { arg0: 0x101n })).toEqual({ kind: 'cache-or-wait', rip: 0x301000n, length: 0, instruction: 'wbinvd', lock: true });
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

describe('RDPMC and XSETBV exits (machine.h kRdpmc 24 with arg0 = LOCK, kXsetbv 25)', () => {
  it('arg0 bit 0 is the LOCK prefix of an RDPMC; an XSETBV exit carries nothing but where it is', () => {
    expect([ExitCode.rdpmc, ExitCode.xsetbv]).toEqual([24, 25]);
    expect(area(ExitCode.rdpmc)).toEqual({ kind: 'rdpmc', rip: 0x301000n, length: 0, lock: false });
    expect(area(ExitCode.rdpmc, { arg0: 1n })).toEqual({ kind: 'rdpmc', rip: 0x301000n, length: 0, lock: true });
    expect(area(ExitCode.xsetbv)).toEqual({ kind: 'xsetbv', rip: 0x301000n, length: 0 });
  });
});
