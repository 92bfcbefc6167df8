// Which decision point each exit the hostile VMM handles is (src/fuzz/adversary.ts): every method
// of the TDX VMM policy is the point of its own name, and an SNP VMGEXIT by the GHCB MSR protocol
// is the point of the request it carries (GHCB spec §2.3.1). A program that decides at a point
// must be asked there, and only there: every point here is answered 'stop', so each call ends
// at once with the book having counted it.
import { describe, expect, it } from 'vitest';
import { DecisionBook, snpAdversaryPolicy, tdxAdversaryPolicy } from '../../../src/fuzz/adversary.js';
import { SNP_CALL_POINTS, TDX_CALL_POINTS, type AttackPlatform, type CallPoint } from '../../../src/fuzz/attack-program.js';
import { ghcbMsr, PSC_OP } from '../../../src/platform/snp/ghcb-msr.js';
import type { SnpVmmHandle } from '../../../src/platform/snp/vmm-handle.js';
import type { SnpVmmPolicy } from '../../../src/vmm/snp/policy.js';
import { honestTdxPolicy, type VmmContext } from '../../../src/vmm/tdx/honest-vmm.js';

const trace = { record: () => undefined };

/** A book that stops the guest at every call of every point of `platform`. */
function stopEverywhere(platform: AttackPlatform): DecisionBook {
  const points: readonly CallPoint[] = platform === 'tdx' ? TDX_CALL_POINTS : SNP_CALL_POINTS;
  return new DecisionBook({ platform, decisions: points.map((point) => ({ at: 'call', point, occurrence: 0, repeat: 1_000_000, answer: { kind: 'stop' } })) });
}

/** The points the book was consulted at, with how often. */
const counted = (book: DecisionBook) => Object.fromEntries(book.callCounts);

describe('TDX decision points', () => {
  const methods = ['onAcceptViolation', 'onPrivateEptViolation', 'onPendingAccess', 'onSharedEptViolation', 'mapGpa', 'reportFatalError', 'getTdVmCallInfo', 'instructionIo', 'instructionHlt', 'otherVmcall'] as const;

  it.each(methods)('%s is the point tdx.%s', (method) => {
    const book = stopEverywhere('tdx');
    const policy = tdxAdversaryPolicy(book, honestTdxPolicy);
    const ctx = { gpaWidth: 48, trace } as unknown as VmmContext;
    const call = policy[method] as (ctx: VmmContext, exit: unknown) => { kind: string };
    expect(call(ctx, { gpa: 0x400000n, regs: { r12: 0x400000n, r13: 0x1000n } }).kind).toBe('stop');
    expect(counted(book)).toEqual({ [`tdx.${method}`]: 1 });
  });

  it('every TDX decision point is one of these methods', () => {
    expect([...TDX_CALL_POINTS].sort()).toEqual(methods.map((m) => `tdx.${m}`).sort());
  });
});

describe('SNP decision points', () => {
  function pointOf(call: (policy: SnpVmmPolicy, host: SnpVmmHandle) => unknown): Record<string, number> {
    const book = stopEverywhere('snp');
    const policy = snpAdversaryPolicy(book, {} as SnpVmmPolicy);
    call(policy, { trace, memoryBytes: 32n << 20n } as unknown as SnpVmmHandle);
    return counted(book);
  }
  const vmgexit = (msr: bigint) => (policy: SnpVmmPolicy, host: SnpVmmHandle) => policy.onVmgexit(host, { kind: 'vmgexit', ghcbMsr: msr } as Parameters<SnpVmmPolicy['onVmgexit']>[1]);

  it('an NPF is snp.onNpf, a HLT snp.onHlt', () => {
    expect(pointOf((policy, host) => policy.onNpf(host, { kind: 'npf', gpa: 0x400000n } as Parameters<SnpVmmPolicy['onNpf']>[1]))).toEqual({ 'snp.onNpf': 1 });
    expect(pointOf((policy, host) => policy.onHlt(host, { kind: 'hlt' } as Parameters<SnpVmmPolicy['onHlt']>[1]))).toEqual({ 'snp.onHlt': 1 });
  });

  it('a GHCB MSR protocol request is the point of its request: SEV information, CPUID, GHCB registration, page state change, hypervisor features, any other', () => {
    expect(pointOf(vmgexit(ghcbMsr.sevInfoReq()))).toEqual({ 'snp.msr.sevInfo': 1 });
    expect(pointOf(vmgexit(ghcbMsr.cpuidReq(0x8000001f, 0)))).toEqual({ 'snp.msr.cpuid': 1 });
    expect(pointOf(vmgexit(ghcbMsr.registerReq(0x123n)))).toEqual({ 'snp.msr.registerGhcb': 1 });
    expect(pointOf(vmgexit(ghcbMsr.pscReq(0x400n, PSC_OP.SHARED)))).toEqual({ 'snp.msr.psc': 1 });
    expect(pointOf(vmgexit(0x080n))).toEqual({ 'snp.msr.hvFeatures': 1 });
    expect(pointOf(vmgexit(ghcbMsr.termReq(0, 1)))).toEqual({ 'snp.msr.other': 1 });
  });
});
