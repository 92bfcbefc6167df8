// Explaining a run that did not end `done` (src/boot/failure.ts), fed event by event as BootTrace
// feeds it: the last unbroken run of fault events, kept only if it ran into the end of the run,
// with the stage and console line from when it began. The CLI test boots one failing firmware;
// here each rule is checked alone.
import { describe, expect, it } from 'vitest';
import { FaultChainRecorder, formatFailure, registerDump, type FailureExplanation } from '../../../src/boot/failure.js';
import type { Vcpu } from '../../../src/cpu/vcpu.js';

const GPRS = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'rsp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'rip', 'rflags'] as const;
const SPECIAL = ['cr0', 'cr2', 'cr3', 'cr4', 'efer', 'cs', 'ss'] as const;
/** A vCPU whose every register holds a value of its own: GPR i = 0x100 + i, special j = 0x200 + j. */
const vcpu = {
  regs: Object.fromEntries(GPRS.map((n, i) => [n, 0x100n + BigInt(i)])),
  readSpecial: (name: string) => 0x200n + BigInt(SPECIAL.indexOf(name as (typeof SPECIAL)[number])),
} as unknown as Vcpu;
const end = { outcome: 'terminated', reason: 'triple fault' };

describe('FaultChainRecorder', () => {
  it('keeps the run of fault events that ran into the end, with the stage and console line from when it began', () => {
    const r = new FaultChainRecorder();
    r.consoleLine('@mv stage firmware');
    r.observe(0, 'hw', 've-injected', { gpa: 0x1000n, rip: 0x2000n }, 'firmware');   // an older chain
    r.observe(1, 'guest', 'stage', {}, 'firmware');                                    // not a fault: breaks it
    r.consoleLine('accepting');
    r.consoleLine('   ');                                                              // blank: not "what the guest was doing"
    r.observe(2, 'hw', 'td-exit', { reason: 'ept-violation', gpa: 0x5000n }, 'decompressor');
    r.consoleLine('later line');
    r.observe(3, 'hw', 'df-injected', {}, 'kernel');
    r.observe(4, 'hw', 'shutdown', {}, 'kernel');
    const why = r.explain(end, 5, 'kernel', vcpu);
    expect(why.causeChain).toEqual([
      { seq: 2, source: 'hw', type: 'td-exit', reason: 'ept-violation', gpa: '0x5000' },
      { seq: 3, source: 'hw', type: 'df-injected' },
      { seq: 4, source: 'hw', type: 'shutdown' },
    ]);
    expect(why).toMatchObject({ outcome: 'terminated', reason: 'triple fault', stage: 'decompressor', lastConsoleLine: 'accepting' });
  });

  it('a chain followed by anything but the outcome is not the cause: the stage and console line are those at the end', () => {
    const r = new FaultChainRecorder();
    r.observe(3, 'hw', 'npf', { gpa: 0x5000n }, 'decompressor');
    r.consoleLine('last words');
    // The outcome is event 5: event 4 (not a fault) came between.
    const why = r.explain(end, 5, 'kernel', vcpu);
    expect(why).toMatchObject({ causeChain: [], stage: 'kernel', lastConsoleLine: 'last words' });
    // The same chain, ending right before the outcome (event 4), is the cause.
    expect(r.explain(end, 4, 'kernel', vcpu).causeChain).toEqual([{ seq: 3, source: 'hw', type: 'npf', gpa: '0x5000' }]);
  });

  it('faults are injections and the events that lead to them; a TD exit only for an EPT violation', () => {
    const faults = ['ve-injected', 'df-injected', 'exception-injected', 'injection-failed', 'npf', 'inject-vc', 'inject', 'shutdown'];
    const r = new FaultChainRecorder();
    faults.forEach((type, seq) => r.observe(seq, 'hw', type, {}, 'kernel'));
    expect(r.explain(end, faults.length, 'kernel', vcpu).causeChain.map((e) => e.type)).toEqual(faults);
    for (const [type, fields] of [['td-exit', { reason: 'vmcall' }], ['tdcall', {}], ['pvalidate', {}]] as const) {
      const one = new FaultChainRecorder();
      one.observe(0, 'hw', type, fields, 'kernel');
      expect(one.explain(end, 1, 'kernel', vcpu).causeChain, type).toEqual([]);
    }
  });

  it('a storm keeps its first 8 events (the cause is at its start)', () => {
    const r = new FaultChainRecorder();
    for (let seq = 10; seq < 30; seq++) r.observe(seq, 'hw', 'npf', { n: seq }, 'kernel');
    expect(r.explain(end, 30, 'kernel', vcpu).causeChain.map((e) => e.seq)).toEqual([10, 11, 12, 13, 14, 15, 16, 17]);
  });

  it('before the guest announced a stage (BootTrace\'s "vmm"), the stage is null', () => {
    const r = new FaultChainRecorder();
    r.observe(0, 'hw', 'npf', {}, 'vmm');
    expect(r.explain(end, 1, 'vmm', vcpu)).toMatchObject({ stage: null, lastConsoleLine: null });
    expect(new FaultChainRecorder().explain(end, 0, 'vmm', vcpu).stage).toBeNull();
  });

  it('a restore puts the chain, its stage and console lines back as saved', () => {
    const r = new FaultChainRecorder();
    r.consoleLine('before');
    r.observe(5, 'hw', 'npf', { gpa: 0x1000n }, 'firmware');
    const saved = r.saveState();
    const expected = r.explain(end, 6, 'kernel', vcpu);
    r.consoleLine('after');
    r.observe(6, 'hw', 'inject', {}, 'kernel');
    r.observe(9, 'hw', 'shutdown', {}, 'kernel');
    r.loadState(saved);
    expect(r.explain(end, 6, 'kernel', vcpu)).toEqual(expected);
    expect(r.explain(end, 7, 'kernel', vcpu).lastConsoleLine).toBe('before');
  });
});

describe('registerDump and formatFailure', () => {
  it('dumps the GPRs, RIP, RFLAGS, control registers, EFER, CS and SS, each its own register\'s value', () => {
    const dump = registerDump(vcpu);
    expect(Object.keys(dump)).toEqual([...GPRS, ...SPECIAL]);
    GPRS.forEach((n, i) => expect(dump[n], n).toBe(`0x${(0x100 + i).toString(16)}`));
    SPECIAL.forEach((n, j) => expect(dump[n], n).toBe(`0x${(0x200 + j).toString(16)}`));
  });

  it('prints the chain with the cause first, the stage and console line, and the registers QEMU-style (16 hex digits)', () => {
    const f: FailureExplanation = {
      outcome: 'terminated', reason: 'triple fault', stage: 'kernel', lastConsoleLine: 'say "hi"', registers: registerDump(vcpu),
      causeChain: [{ seq: 7, source: 'hw', type: 've-injected', gpa: '0x5000', info: { a: 1 } }, { seq: 8, source: 'hw', type: 'shutdown' }],
    };
    expect(formatFailure(f)).toEqual([
      'why: terminated (triple fault)',
      '  cause chain (first is the cause; trace event numbers):',
      '    -> #7 hw ve-injected gpa 0x5000 info {"a":1}',
      '       #8 hw shutdown',
      '  guest stage: kernel; last console line: "say \\"hi\\""',
      '  registers at the end of the run:',
      '    RAX=0000000000000100 RBX=0000000000000101 RCX=0000000000000102 RDX=0000000000000103',
      '    RSI=0000000000000104 RDI=0000000000000105 RBP=0000000000000106 RSP=0000000000000107',
      '    R8 =0000000000000108 R9 =0000000000000109 R10=000000000000010a R11=000000000000010b',
      '    R12=000000000000010c R13=000000000000010d R14=000000000000010e R15=000000000000010f',
      '    RIP=0000000000000110 RFL=0000000000000111',
      '    CS =0205 SS =0206 EFER=0000000000000204',
      '    CR0=0000000000000200 CR2=0000000000000201 CR3=0000000000000202 CR4=0000000000000203',
    ]);
    expect(formatFailure({ ...f, causeChain: [], stage: null, lastConsoleLine: null }).slice(1, 3)).toEqual([
      '  no fault or injected event led into the end of the run',
      '  guest stage: none announced yet; last console line: none',
    ]);
  });
});
