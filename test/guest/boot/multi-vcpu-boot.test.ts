// `minivisor boot --vcpus N` through the real stubs on TDX: every vCPU starts at the reset vector,
// the firmware parks the APs on the wakeup mailbox, the kernel wakes them and all CPUs allocate
// (and so accept) memory at once with Linux's accepting_list protocol. The planted variant
// without the list accepts a unit twice under the same short seeded schedules the honest
// stubs survive.
import { describe, expect, it } from 'vitest';
import { parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest, type BootRun } from '../../../src/boot/boot-guest.js';
import { acceptanceMismatches, doubleAccepts } from '../../helpers/boot-check.js';

// The firmware pre-accepts only 16M, so the kernel's parallel allocations have units to accept.
const SMALL: RawBootOptions = { platform: 'tdx', memory: '512M', preAccept: '16M', workload: '16M', vcpus: '4', schedule: 'random' };

function boot(raw: RawBootOptions, check?: (run: BootRun) => void): BootRun {
  const run = bootGuest(parseBootOptions(raw), { keepTrace: true });
  try {
    check?.(run);
  } finally {
    run.platform.machine.close();
  }
  return run;
}

describe('TDX boot with several vCPUs', () => {
  it('ends done with every vCPU accepting, each unit once, and the guest record matching the hardware', () => {
    const run = boot({ ...SMALL, seed: '1' }, (r) => expect(acceptanceMismatches(r)).toEqual([]));
    expect(run.result.outcome, run.result.console.slice(-1500)).toBe('done');
    expect(run.report.stats.cpus).toBe(4n);
    expect(doubleAccepts(run)).toBe(0);
    // The kernel's accepts came from more than one vCPU.
    const kernelAccepts = run.trace.events.filter((e) => e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT' && e.stage === 'kernel');
    expect(new Set(kernelAccepts.map((e) => e.vcpu)).size).toBeGreaterThan(1);
    // Only vCPU 0 ran the firmware and the decompressor.
    const early = run.trace.events.filter((e) => e.type === 'tdcall' && e.stage !== 'kernel' && e.vcpu !== undefined);
    expect(new Set(early.map((e) => e.vcpu))).toEqual(new Set([0]));
  });

  it('is deterministic: the same seed gives the same trace hash, another seed another interleaving', () => {
    const a = boot({ ...SMALL, seed: '3' });
    const b = boot({ ...SMALL, seed: '3' });
    const c = boot({ ...SMALL, seed: '4' });
    expect(b.result.traceSha256).toBe(a.result.traceSha256);
    expect(b.result.guestInstructions).toBe(a.result.guestInstructions);
    expect(c.result.traceSha256).not.toBe(a.result.traceSha256);
    expect(c.result.outcome).toBe('done');
  });

  it('finds the planted double accept (no accepting_list) in short seeded runs; the honest stubs survive the same schedules', () => {
    // Seeds in order until the race shows (measured: each of seeds 1..10 finds it).
    let found: string | undefined;
    for (const seed of ['1', '2', '3', '4']) {
      const planted = boot({ ...SMALL, seed, variant: 'accepting-list-missing' });
      const honest = boot({ ...SMALL, seed });
      expect(honest.result.outcome, `seed ${seed}: ${honest.result.outcomeReason}`).toBe('done');
      expect(doubleAccepts(honest)).toBe(0);
      if (planted.result.outcome === 'done') continue;
      expect(planted.result.outcome).toBe('guest-fatal');
      // The second accept finds the unit accepted, or (a 2M accept split by the scheduler) its entry locked.
      expect(planted.result.outcomeReason).toMatch(/^tdx_accept_(already_accepted|failed)/);
      expect(doubleAccepts(planted)).toBeGreaterThan(0);
      found = seed;
      break;
    }
    expect(found).toBeDefined();
    // With one vCPU the variant's bug cannot fire.
    expect(boot({ ...SMALL, vcpus: '1', variant: 'accepting-list-missing' }).result.outcome).toBe('done');
  });

  it('refuses several vCPUs on SNP and bad schedule flags with a clear message', () => {
    expect(() => parseBootOptions({ platform: 'snp', vcpus: '2' })).toThrow(/not supported on snp/);
    expect(() => parseBootOptions({ vcpus: '65' })).toThrow(/--vcpus/);
    expect(() => parseBootOptions({ vcpus: '2', schedule: 'fifo' })).toThrow(/--schedule must be one of round-robin, random, pct/);
    expect(() => parseBootOptions({ vcpus: '2', quantum: '0' })).toThrow(/--quantum/);
  });
});
