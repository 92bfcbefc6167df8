// `minivisor boot --vcpus N` through the real stubs. TDX: every vCPU starts at the reset vector,
// the firmware parks the APs on the wakeup mailbox and the kernel wakes them. SNP: only the BSP
// exists at launch; the kernel creates each AP with a VMSA page it writes and RMPADJUSTs to a
// VMSA, and the AP Creation VMGEXIT. Then all CPUs allocate (and so accept) memory at once with
// Linux's accepting_list protocol. The planted variant without the list accepts a unit twice
// under the same short seeded schedules the honest stubs survive.
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

/**
 * Seeds 1..4 in order until the variant without the accepting list stops on a second accept of a
 * unit (`reason`; the trace shows a double accept, or `otherEvidence` counts another sign of it);
 * the honest stubs must end done under each schedule tried, and one vCPU never races.
 */
function findsPlantedRace(base: RawBootOptions, reason: RegExp, otherEvidence: (run: BootRun) => number): void {
  let found: string | undefined;
  for (const seed of ['1', '2', '3', '4']) {
    const planted = boot({ ...base, seed, variant: 'accepting-list-missing' });
    const honest = boot({ ...base, seed });
    expect(honest.result.outcome, `seed ${seed}: ${honest.result.outcomeReason}`).toBe('done');
    expect(doubleAccepts(honest)).toBe(0);
    if (planted.result.outcome === 'done') continue;
    expect(planted.result.outcome).toBe('guest-fatal');
    expect(planted.result.outcomeReason).toMatch(reason);
    expect(doubleAccepts(planted) + otherEvidence(planted)).toBeGreaterThan(0);
    found = seed;
    break;
  }
  expect(found).toBeDefined();
  expect(boot({ ...base, vcpus: '1', variant: 'accepting-list-missing' }).result.outcome).toBe('done');
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
    // Measured: each of seeds 1..4 finds it, seed 1 as OPERAND_BUSY (the second ACCEPT found the
    // 2M entry locked by the first: status class 0x8000_0200), the others as ALREADY_ACCEPTED.
    findsPlantedRace(SMALL, /^tdx_accept_(already_accepted|failed)/, (run) => run.trace.events.filter(
      (e) => e.type === 'tdcall' && e.leaf === 'MEM_PAGE_ACCEPT' && typeof e.status === 'bigint' && (e.status >> 32n) === 0x80000200n).length);
  });

  it('refuses bad vCPU and schedule flags with a clear message', () => {
    expect(() => parseBootOptions({ vcpus: '65' })).toThrow(/--vcpus/);
    expect(() => parseBootOptions({ vcpus: '2', schedule: 'fifo' })).toThrow(/--schedule must be one of round-robin, random, pct/);
    expect(() => parseBootOptions({ vcpus: '2', quantum: '0' })).toThrow(/--quantum/);
  });
});

const SNP: RawBootOptions = { ...SMALL, platform: 'snp' };

describe('SNP boot with several vCPUs', () => {
  it('creates each AP from a VMSA the kernel wrote and ends done with every vCPU accepting, each unit once', () => {
    const run = boot({ ...SNP, seed: '1' }, (r) => expect(acceptanceMismatches(r)).toEqual([]));
    expect(run.result.outcome, run.result.console.slice(-1500)).toBe('done');
    expect(run.report.stats.cpus).toBe(4n);
    expect(doubleAccepts(run)).toBe(0);
    const events = run.trace.events;
    // Each AP: RMPADJUST of its VMSA page with the VMSA bit, the AP Creation request, VMRUN from it.
    const vmsaPages = events.filter((e) => e.type === 'rmpadjust' && e.vmsa === true && e.rc === 0).map((e) => e.gpa);
    const created = events.filter((e) => e.type === 'ap-creation');
    const started = events.filter((e) => e.type === 'ap-vmrun' && e.mode === 'protected32');
    expect(created.map((e) => e.apicId)).toEqual([1, 2, 3]);
    expect(started.map((e) => e.vcpu)).toEqual([1, 2, 3]);
    expect(started.map((e) => e.vmsaGpa)).toEqual(vmsaPages);
    expect(vmsaPages.every((gpa) => typeof gpa === 'bigint' && gpa % 0x200000n !== 0n)).toBe(true);
    // Nothing ran on an AP before it was created; the kernel's validations came from several vCPUs.
    const firstStart = events.indexOf(started[0]!);
    expect(events.slice(0, firstStart).filter((e) => e.vcpu !== undefined && e.vcpu !== 0 && e.type !== 'ap-vmrun')).toEqual([]);
    const kernelValidations = events.filter((e) => e.type === 'pvalidate' && e.validate === true && e.stage === 'kernel');
    expect(new Set(kernelValidations.map((e) => e.vcpu)).size).toBeGreaterThan(1);
    // Each AP registered a GHCB of its own (MSR protocol 0x012 from that vCPU).
    const registrations = events.filter((e) => e.type === 'wrmsr' && e.msr === 0xc0010130 && typeof e.value === 'bigint' && (e.value & 0xfffn) === 0x12n);
    expect(new Set(registrations.map((e) => e.vcpu ?? 0)).size).toBe(4);
  });

  it('is deterministic: the same seed gives the same trace hash, another seed another interleaving', () => {
    const a = boot({ ...SNP, seed: '3' });
    const b = boot({ ...SNP, seed: '3' });
    const c = boot({ ...SNP, seed: '4' });
    expect(a.result.outcome).toBe('done');
    expect(b.result.traceSha256).toBe(a.result.traceSha256);
    expect(b.result.guestInstructions).toBe(a.result.guestInstructions);
    expect(c.result.traceSha256).not.toBe(a.result.traceSha256);
    expect(c.result.outcome).toBe('done');
  });

  it('finds the planted double validation (no accepting_list) in short seeded runs; the honest stubs survive the same schedules', () => {
    // Measured: 9 of seeds 1..10 find it (not seed 3). The second PVALIDATE of the unit finds it
    // validated already: CF=1 (APM PVALIDATE), which the stub reports as snp_pvalidate_unchanged.
    findsPlantedRace(SNP, /^snp_pvalidate_unchanged/, () => 0);
  });
});
