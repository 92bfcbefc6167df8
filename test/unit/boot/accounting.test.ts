// The hardware's acceptance accounting (src/boot/accounting.ts) fed with the trace events the
// trusted models record: TDG.MEM.PAGE.ACCEPT (a `tdcall` event, RCX = GPA | level in bits 2:0, TDX
// module ABI: level 0 = 4 KiB, 1 = 2 MiB) and PVALIDATE (a `pvalidate` event, AMD APM Vol. 3:
// rc 0 with CF clear validated the page, CF set = unchanged). The boots check these totals against
// the guest's own counts only in sum; here each rule is checked alone.
import { describe, expect, it } from 'vitest';
import { BootTrace } from '../../../src/boot/accounting.js';

const MiB = 1n << 20n;
const TDX_SUCCESS = 0n;
const TDX_PAGE_ALREADY_ACCEPTED = 0xc0000b0a00000000n;
const accept = (trace: BootTrace, gpa: bigint, level: 0n | 1n, status = TDX_SUCCESS) =>
  trace.record('hw', 'tdcall', { rip: 0x1000n, rax: 6n, rcx: gpa | level, leaf: 'MEM_PAGE_ACCEPT', result: status === 0n ? 'SUCCESS' : 'ERR', status });
const pvalidate = (trace: BootTrace, gpa: bigint, size: '4k' | '2m', rc = 0, cf = false, validate = true) =>
  trace.record('hw', 'pvalidate', { rip: 0x1000n, gva: gpa, size, validate, gpa, rc, cf });

describe('BootTrace acceptance totals', () => {
  it('TDX: counts each ACCEPT by its level, the completed ones\' bytes for the stage the guest announced last (the firmware before any)', () => {
    const trace = new BootTrace();
    accept(trace, 0x5000n, 0n);
    trace.enterStage('decompressor');
    accept(trace, 0x200000n, 1n);
    accept(trace, 0x7000n, 0n, TDX_PAGE_ALREADY_ACCEPTED);
    trace.record('hw', 'tdcall', { rcx: 0x9000n, leaf: 'VP_INFO', status: 0n });
    trace.record('guest', 'tdcall', { rcx: 0x9000n, leaf: 'MEM_PAGE_ACCEPT', status: 0n });  // not the hardware's
    expect(trace.totals).toEqual({
      acceptedBytes: { firmware: 0x1000n, decompressor: 2n * MiB, kernel: 0n, total: 2n * MiB + 0x1000n },
      acceptCalls: { '4K': 2, '2M': 1 },
      completedAcceptCalls: { '4K': 1, '2M': 1 },
      unsuccessfulAcceptCalls: 1,
    });
  });

  it('TDX: an ACCEPT at any level but 1 (2M) counts as a 4K call; the module refuses levels above 1 (OPERAND_INVALID)', () => {
    const trace = new BootTrace();
    const TDX_OPERAND_INVALID = 0xc000010000000000n;
    for (const level of [2n, 5n]) trace.record('hw', 'tdcall', { rcx: 0x200000n | level, leaf: 'MEM_PAGE_ACCEPT', status: TDX_OPERAND_INVALID });
    expect(trace.totals.acceptCalls).toEqual({ '4K': 2, '2M': 0 });
    expect(trace.totals.unsuccessfulAcceptCalls).toBe(2);
  });

  it('TDX: a 2M accept covers the 2 MiB from its GPA (RCX less its level bits): a 4K accept inside it adds no distinct byte', () => {
    const trace = new BootTrace();
    accept(trace, 0x200000n, 1n);
    accept(trace, 0x200000n, 0n);
    accept(trace, 0x3ff000n, 0n);
    expect(trace.acceptedRanges.bytes).toBe(2n * MiB);
    expect(trace.totals.acceptedBytes.total).toBe(2n * MiB + 0x2000n);
  });

  it('SNP: a PVALIDATE that validates counts by its size; CF set or an error is unsuccessful; an invalidate is no accept', () => {
    const trace = new BootTrace();
    trace.enterStage('kernel');
    pvalidate(trace, 0x400000n, '2m');
    pvalidate(trace, 0x400000n, '4k', 0, true);       // already validated: unchanged
    pvalidate(trace, 0x800000n, '4k', 6);              // FAIL_SIZEMISMATCH
    pvalidate(trace, 0x900000n, '4k');
    pvalidate(trace, 0x900000n, '4k', 0, false, false); // rescinds: not an accept
    expect(trace.totals).toEqual({
      acceptedBytes: { firmware: 0n, decompressor: 0n, kernel: 2n * MiB + 0x1000n, total: 2n * MiB + 0x1000n },
      acceptCalls: { '4K': 3, '2M': 1 },
      completedAcceptCalls: { '4K': 1, '2M': 1 },
      unsuccessfulAcceptCalls: 2,
    });
    expect(trace.acceptedRanges.bytes).toBe(2n * MiB + 0x1000n);
  });

  it('tells onAccepted of each completed accept, and of nothing else', () => {
    const trace = new BootTrace();
    let told = 0;
    trace.onAccepted = () => told++;
    accept(trace, 0x5000n, 0n);
    accept(trace, 0x5000n, 0n, TDX_PAGE_ALREADY_ACCEPTED);
    pvalidate(trace, 0x6000n, '4k', 0, true);
    expect(told).toBe(1);
  });

  it('a restore puts the totals, the stage and the distinct ranges back, into the objects callers hold; a saved state does not follow later accepts', () => {
    const trace = new BootTrace();
    const totals = trace.totals;
    trace.enterStage('decompressor');
    accept(trace, 0x5000n, 0n);
    accept(trace, 0x6000n, 0n, TDX_PAGE_ALREADY_ACCEPTED);
    const saved = trace.saveState();
    const before = structuredClone(trace.totals);
    trace.enterStage('kernel');
    accept(trace, 0x200000n, 1n);
    accept(trace, 0x7000n, 0n, TDX_PAGE_ALREADY_ACCEPTED);
    expect(saved.totals).toEqual(before);
    trace.loadState(saved);
    expect(trace.totals).toBe(totals);
    expect(trace.totals).toEqual(before);
    expect(trace.stage).toBe('decompressor');
    expect(trace.acceptedRanges.bytes).toBe(0x1000n);
  });

  it('hands every event to the fault chain under its own sequence number and stage (boot-guest explains a failure with them)', () => {
    const trace = new BootTrace();
    trace.enterStage('kernel');
    trace.record('hw', 'npf', { gpa: 0x5000n });
    trace.record('vmm', 'outcome', { outcome: 'vmm-error' });
    const vcpu = { regs: new Proxy({}, { get: () => 0n }), readSpecial: () => 0n } as never;
    const why = trace.faults.explain({ outcome: 'vmm-error', reason: 'x' }, trace.length - 1, trace.stage, vcpu);
    expect(why.causeChain).toEqual([{ seq: 1, source: 'hw', type: 'npf', gpa: '0x5000' }]);
    expect(why.stage).toBe('kernel');
  });
});
