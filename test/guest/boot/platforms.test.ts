// What the boot's VMM sets up before the first guest instruction (src/boot/platforms.ts), beyond
// the launch order (launch-order.test.ts): the CPU's random source and time-stamp counter follow
// the run's seed, several vCPUs follow the schedule asked for, the SNP VMM knows where the
// guest's RAM ends, and the VMM refuses to launch image bytes it has no launch range for.
import { describe, expect, it } from 'vitest';
import { BootSession } from '../../../src/boot/boot-session.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { HardwareRandom } from '../../../src/cpu/hardware-random.js';
import { VirtualTsc } from '../../../src/cpu/virtual-tsc.js';
import { ghcbMsr, PSC_OP } from '../../../src/platform/snp/ghcb-msr.js';
import { withStrayImagePage } from '../../helpers/attacks.js';
import { acceptExit } from '../../helpers/tdx-vmm-exits.js';

const MiB = 1n << 20n;

describe.each(['tdx', 'snp'] as const)('%s: the CPU model follows --seed', (platform) => {
  // README "--seed N: everything pseudo-random"; RDRAND and RDTSC answer from these models
  // (test/guest/rdrand-rdtsc.test.ts), which Linux's KASLR and sev_verify_cbit() read.
  it('RDRAND and RDTSC start from the seed given, not from a default', () => {
    const seed = 7n;
    const session = BootSession.create(parseBootOptions({ platform, memory: '128M', seed: seed.toString() }));
    try {
      const random = new HardwareRandom();
      random.seed(seed);
      const tsc = new VirtualTsc();
      tsc.seed(seed);
      expect(session.platform.machine.random.next()).toBe(random.next());
      expect(session.platform.machine.tsc.read()).toBe(tsc.read());
    } finally {
      session.platform.machine.close();
    }
  });
});

describe.each(['tdx', 'snp'] as const)('%s with several vCPUs: the schedule asked for is the one run', (platform) => {
  // README: --schedule and --quantum decide how turns are chosen. Everything else equal, another
  // policy or another quantum interleaves the vCPUs otherwise, and the trace shows it.
  const base: RawBootOptions = { platform, memory: '512M', preAccept: '16M', workload: '16M', vcpus: '4', seed: '3' };
  const traceOf = (raw: RawBootOptions) => {
    const run = bootGuest(parseBootOptions({ ...base, ...raw }));
    run.platform.machine.close();
    expect(run.result.outcome, run.result.outcomeReason).toBe('done');
    return run.result.traceSha256;
  };
  it('round-robin and random differ, and so do two quanta', () => {
    const random = traceOf({ schedule: 'random' });
    expect(traceOf({ schedule: 'round-robin' })).not.toBe(random);
    expect(traceOf({ schedule: 'random', quantum: '500' })).not.toBe(random);
  });
});

describe('tdx: the VMM the boot installs takes only the guest RAM for RAM', () => {
  // A 256M TD: the TD's GPA space reaches 4 GiB (the firmware region), but RAM ends at 256M. The
  // honest VMM adds a page on an ACCEPT (TDH.MEM.PAGE.AUG) only inside a KVM memory slot; past the
  // RAM there is none to fault the page in from, and the run ends.
  it('an ACCEPT of a free 4K page inside RAM is answered (resume); at 1 GiB it ends the run', () => {
    const session = BootSession.create(parseBootOptions({ platform: 'tdx', memory: '256M' }));
    try {
      const vmm = session.vmm;
      if (vmm.kind !== 'tdx') throw new Error('not a TDX boot');
      expect(vmm.driver.decide(acceptExit(200n * MiB, 0, 0, 'FREE'))).toEqual({ kind: 'resume' });
      expect(vmm.driver.decide(acceptExit(1024n * MiB, 0, 0, 'FREE'))).toMatchObject({ kind: 'stop', outcome: { outcome: 'fault', reason: expect.stringMatching(/outside its RAM/) } });
    } finally {
      session.platform.machine.close();
    }
  });
});

describe('snp: the VMM the boot installs takes only the guest RAM for RAM', () => {
  // A 256M guest: the machine backs GPAs up to 4 GiB (the firmware region lies below it), but
  // RAM ends at 256M. QEMU's kvm_convert_memory finds no memory region past it, so a page-state
  // change to private there fails and QEMU stops the VM; inside RAM it is done.
  it('a page-state change to private inside RAM is done; at 1 GiB, past the RAM, it stops the VM', () => {
    const session = BootSession.create(parseBootOptions({ platform: 'snp', memory: '256M' }));
    try {
      const vmm = session.vmm;
      if (vmm.kind !== 'snp') throw new Error('not an SNP boot');
      const host = vmm.driver.handle;
      const psc = (gpa: bigint) => {
        const request = ghcbMsr.pscReq(gpa >> 12n, PSC_OP.PRIVATE);
        host.ghcbMsr = request;
        return vmm.honest.onVmgexit(host, { kind: 'vmgexit', rip: 0n, ghcbMsr: request });
      };
      expect(psc(200n * MiB)).toBe('resume');
      // GHCB spec: the MSR-protocol PSC response 0x015 with error code 0 in bits 63:32.
      expect(host.ghcbMsr).toBe(0x015n);
      expect(psc(1024n * MiB)).toMatchObject({ outcome: 'vmm-error', reason: expect.stringMatching(/not all guest RAM/) });
    } finally {
      session.platform.machine.close();
    }
  });
});

describe.each(['tdx', 'snp'] as const)('%s: the VMM launches only what it has a launch range for', (platform) => {
  // The launch ranges are the temporary RAM, the initial image and the firmware volume; a page of
  // image outside them would be silently not launched, so the VMM stops instead, at the first one.
  it('a guest image with a single page at 64 MiB (RAM, but no launch range) is refused before launch', () => {
    const stray = 64n * MiB;
    expect(() => BootSession.create(parseBootOptions({ platform, memory: '128M' }), { vmm: withStrayImagePage(stray, 0x90) }))
      .toThrow(`VMM setup: image bytes at 0x${stray.toString(16)} lie outside the launch ranges`);
  });
});
