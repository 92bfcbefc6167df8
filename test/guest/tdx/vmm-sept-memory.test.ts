// The honest TDX VMM remembers which upper S-EPT entries it has added (as KVM's mirror of the
// S-EPT does) instead of reading them with TDH.MEM.SEPT.RD before every AUG (issue 11, eager
// acceptance). What it remembers is VMM state: a snapshot restore must take it back, or the VMM
// would skip a SEPT.ADD that the restored hardware no longer has.
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { BootSession } from '../../../src/boot/boot-session.js';

const config = parseBootOptions({ platform: 'tdx', memory: '4G', accept: 'eager' });

describe('honest TDX VMM: what it knows of the S-EPT', () => {
  it('an eager boot reads each upper entry at most once, and adds every SEPT page it needs', () => {
    const run = bootGuest(config, { keepTrace: true });
    run.platform.machine.close();
    expect(run.result.outcome).toBe('done');
    const seamcalls = run.trace.events.filter((e) => e.type === 'seamcall');
    const reads = seamcalls.filter((e) => e.leaf === 'TDH_MEM_SEPT_RD' && ((e.rcx as bigint) & 7n) > 1n);
    const augs = seamcalls.filter((e) => e.leaf === 'TDH_MEM_PAGE_AUG');
    expect(augs.length).toBeGreaterThan(1900); // ~4 GiB in 2 MiB pages
    // Reads of the levels above a 2M leaf (PDPT and PML4 entries): once per entry, not per AUG.
    expect(new Set(reads.map((e) => e.rcx)).size).toBe(reads.length);
    // The kernel's eager pass reaches the second and third GiB: their PD pages are added then.
    expect(seamcalls.filter((e) => e.leaf === 'TDH_MEM_SEPT_ADD' && e.stage === 'kernel').map((e) => e.rcx)).toEqual([0x40000002n, 0x80000002n]);
    // Only the leaf reads of MapGPA's conversions may stop above their level (EPT_WALK_FAILED).
    expect(seamcalls.filter((e) => e.result !== 'SUCCESS').every((e) => e.leaf === 'TDH_MEM_SEPT_RD' && e.result === 'EPT_WALK_FAILED')).toBe(true);
  });

  it('a restore takes back what the VMM learnt after the snapshot: the run after it is the same', () => {
    const session = BootSession.create(config);
    expect(session.runToStage('kernel')).toBe(true);
    const atKernel = session.snapshot();
    const first = session.finish();
    const firstHash = session.trace.sha256();
    expect(first.outcome.outcome).toBe('done');
    session.restore(atKernel);
    const second = session.finish();
    expect(second.outcome).toEqual(first.outcome);
    expect(session.trace.sha256()).toBe(firstHash);
    session.platform.machine.close();
  });
});
