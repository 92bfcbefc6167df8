// An attack program's host actions (src/fuzz/adversary.ts tdxHostAction, snpHostAction) as the
// calls they make on the VMM's host interface: each does what its name says, with the operands
// the program gives (aligned to the page or 2 MiB region the operation works on), and nothing
// more. A stand-in host records the calls; what the hardware then does is the models' business
// (test/guest/fuzz/adversary-answers.test.ts runs them on real ones).
import { describe, expect, it } from 'vitest';
import { DecisionBook, snpAdversaryPolicy, snpHostAction, tdxHostAction } from '../../../src/fuzz/adversary.js';
import type { Answer, HostAction } from '../../../src/fuzz/attack-program.js';
import type { SnpVmmHandle } from '../../../src/platform/snp/vmm-handle.js';
import type { SnpVmmPolicy } from '../../../src/vmm/snp/policy.js';

type TdxHost = Parameters<typeof tdxHostAction>[0];

const P = 0x400000n;
const ASID = 5;

/** A host whose every method records its name and arguments; `own` answers the ones it names. */
function recordingHost(own: Record<string, unknown> = {}): { host: unknown; calls: unknown[][] } {
  const calls: unknown[][] = [];
  const record = (name: string) => (...args: unknown[]) => {
    calls.push([name, ...args]);
    return { status: 0n, result: 'ok', rc: 0 };
  };
  const hostMemory = {
    read: (gpa: bigint, n: number) => {
      calls.push(['read', gpa, n]);
      return new Uint8Array(n).fill(0xa5);
    },
    write: record('write'),
    tryWrite: (gpa: bigint, bytes: Uint8Array) => {
      calls.push(['tryWrite', gpa, [...bytes]]);
      return undefined;
    },
  };
  const host = new Proxy({ asid: ASID, hostMemory, trace: { record: () => undefined }, batch: <T>(fn: () => T) => fn(), ...own }, {
    get: (target, name: string) => (name in target ? (target as Record<string, unknown>)[name] : record(name)),
  });
  return { host, calls };
}

function tdx(action: HostAction): { result: string; calls: unknown[][] } {
  const { host, calls } = recordingHost();
  return { result: tdxHostAction(host as TdxHost, action), calls };
}

function snp(action: HostAction, own: Record<string, unknown> = {}, captured = new Map<number, Uint8Array>()): { result: string; calls: unknown[][] } {
  const { host, calls } = recordingHost(own);
  return { result: snpHostAction({ captured }, host as SnpVmmHandle, action), calls };
}

describe('TDX host actions on the host interface', () => {
  it('post-interrupt posts its vector to become pending after its number of ACCEPT chunks', () => {
    expect(tdx({ kind: 'tdx.post-interrupt', vector: 40, afterChunks: 300 })).toEqual({ result: 'ok', calls: [['postInterrupt', 40, 300]] });
  });

  it('shared-ept maps or unmaps its range in the VMM\'s shared EPT, as it says', () => {
    expect(tdx({ kind: 'tdx.shared-ept', gpa: P, size: 0x200000n, mapped: false }).calls).toEqual([['setShared', P, 0x200000n, false]]);
    expect(tdx({ kind: 'tdx.shared-ept', gpa: P, size: 0x1000n, mapped: true }).calls).toEqual([['setShared', P, 0x1000n, true]]);
  });

  it('inject injects its vector; shared-write writes its value little-endian, its size in bytes', () => {
    expect(tdx({ kind: 'inject', vector: 41 }).calls).toEqual([['injectInterrupt', 41]]);
    expect(tdx({ kind: 'shared-write', gpa: P + 2n, size: 2, value: 0xbeefn }).calls).toEqual([['tryWrite', P + 2n, [0xef, 0xbe]]]);
  });
});

describe('SNP host actions on the host interface', () => {
  it('rmpupdate updates the RMP entry of its page: the guest\'s ASID when assigned, 0 (the hypervisor) when not', () => {
    expect(snp({ kind: 'snp.rmpupdate', spa: P + 0x123n, assigned: true, pageSize: '2m', gpa: P + 0x1fffn }).calls)
      .toEqual([['rmpUpdate', P, { assigned: true, pageSize: '2m', gpa: P + 0x1000n, asid: ASID }]]);
    expect(snp({ kind: 'snp.rmpupdate', spa: P, assigned: false, pageSize: '4k', gpa: P }).calls)
      .toEqual([['rmpUpdate', P, { assigned: false, pageSize: '4k', gpa: P, asid: 0 }]]);
  });

  it('psmash splits the 2 MiB entry around its address; npt-page-size sets the NPT page size it names', () => {
    expect(snp({ kind: 'snp.psmash', spa: P + 0x5000n }).calls).toEqual([['psmash', P]]);
    expect(snp({ kind: 'snp.npt-page-size', gpa: P, size: '2m' }).calls).toEqual([['setNptPageSize', P, '2m']]);
    expect(snp({ kind: 'snp.npt-page-size', gpa: P, size: '4k' }).calls).toEqual([['setNptPageSize', P, '4k']]);
  });

  it('unvalidate splits a 2 MiB entry first, then assigns the page afresh (not validated) to the guest at its own GPA', () => {
    const page = P + 0x3000n;
    expect(snp({ kind: 'snp.unvalidate', spa: page + 8n }, { rmpEntry: () => ({ pageSize: '2m' }) }).calls)
      .toEqual([['psmash', P], ['rmpUpdate', page, { assigned: true, pageSize: '4k', gpa: page, asid: ASID }]]);
    expect(snp({ kind: 'snp.unvalidate', spa: page }, { rmpEntry: () => ({ pageSize: '4k' }) }).calls)
      .toEqual([['rmpUpdate', page, { assigned: true, pageSize: '4k', gpa: page, asid: ASID }]]);
  });

  it('capture saves a page in its slot; restore writes that slot\'s page back at its address, and nothing from an empty slot', () => {
    const captured = new Map<number, Uint8Array>();
    expect(snp({ kind: 'snp.capture', spa: P + 0x10n, slot: 2 }, {}, captured)).toEqual({ result: 'ok', calls: [['read', P, 0x1000]] });
    const restore = snp({ kind: 'snp.restore', spa: P + 0x1008n, slot: 2 }, {}, captured);
    expect(restore.result).toBe('ok');
    expect(restore.calls.map(([name, gpa]) => [name, gpa])).toEqual([['write', P + 0x1000n]]);
    const bytes = restore.calls[0]![2] as Uint8Array;
    expect(bytes.length === 0x1000 && bytes.every((b) => b === 0xa5)).toBe(true);
    expect(snp({ kind: 'snp.restore', spa: P, slot: 3 }, {}, captured)).toEqual({ result: 'empty-slot', calls: [] });
  });

  it('inject injects its vector with its error code', () => {
    expect(snp({ kind: 'inject', vector: 29, errorCode: 0x404n }).calls).toEqual([['inject', 29, 0x404n]]);
  });
});

describe('SNP NPF answers and exit actions on the host interface', () => {
  const npf = { kind: 'npf', gpa: P + 0x3008n } as Parameters<SnpVmmPolicy['onNpf']>[1];
  const hlt = { kind: 'hlt' } as Parameters<SnpVmmPolicy['onHlt']>[1];
  /** The host calls of the SNP adversary answering one NPF (or HLT) as `decisions` say. */
  function exitCalls(decisions: ConstructorParameters<typeof DecisionBook>[0]['decisions'], exit: 'npf' | 'hlt' = 'npf'): unknown[][] {
    const { host, calls } = recordingHost({ rmpEntry: () => ({ pageSize: '2m' }) });
    const policy = snpAdversaryPolicy(new DecisionBook({ platform: 'snp', decisions }), {} as SnpVmmPolicy);
    if (exit === 'npf') policy.onNpf(host as SnpVmmHandle, npf);
    else policy.onHlt(host as SnpVmmHandle, hlt);
    return calls;
  }
  const answer = (action: Extract<Answer, { kind: 'npf' }>['action']) => exitCalls([{ at: 'call', point: 'snp.onNpf', occurrence: 0, answer: { kind: 'npf', action } }]);

  it('each NPF answer makes the host calls of its name at the faulting page or its 2 MiB region, and nothing more', () => {
    const page = P + 0x3000n;
    expect(answer('psmash')).toEqual([['psmash', P], ['setNptPageSize', P + 0x3008n, '4k']]);
    expect(answer('make-private')).toEqual([['rmpUpdate', page, { assigned: true, pageSize: '4k', gpa: page, asid: ASID }]]);
    expect(answer('make-shared')).toEqual([['psmash', P], ['rmpUpdate', page, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0 }]]);
    expect(answer('npt-2m')).toEqual([['setNptPageSize', P + 0x3008n, '2m']]);
    expect(answer('npt-4k')).toEqual([['setNptPageSize', P + 0x3008n, '4k']]);
    expect(answer('refuse')).toEqual([]);
  });

  it('the host actions due at an exit are taken at an NPF and at a HLT too', () => {
    const at0: ConstructorParameters<typeof DecisionBook>[0]['decisions'] = [
      { at: 'exit', exitIndex: 0, action: { kind: 'snp.psmash', spa: P } },
      { at: 'call', point: 'snp.onNpf', occurrence: 0, answer: { kind: 'resume' } },
      { at: 'call', point: 'snp.onHlt', occurrence: 0, answer: { kind: 'resume' } },
    ];
    expect(exitCalls(at0, 'npf')).toEqual([['psmash', P]]);
    expect(exitCalls(at0, 'hlt')).toEqual([['psmash', P]]);
  });
});
