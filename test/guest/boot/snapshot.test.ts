// Issue 10 §3 "Snapshots": a whole-VM snapshot at the kernel's first VMM decision point covers the
// machine, the hardware model, the VMM, the trace and the console: runs from it are identical to
// each other and to a boot that never paused, and whatever happens between restores leaves no trace.
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { BootSession } from '../../../src/boot/boot-session.js';
import type { TdExit } from '../../../src/platform/tdx/td-module.js';
import { Vm, type VmParts } from '../../../src/vmm/run-vm.js';
import { honestTdxPolicy, type TdxVmmPolicy } from '../../../src/vmm/tdx/honest-vmm.js';
import type { SnpVmmPolicy } from '../../../src/vmm/snp/policy.js';

// Compiled by `npm run typecheck`: a VM part without saveState/loadState is a type error.
export function everyPartIsSnapshottable(parts: VmParts<TdExit>): Vm<TdExit> {
  // @ts-expect-error `gadget` has no snapshot support, so it cannot be part of a VM
  return new Vm({ ...parts, gadget: { size: 1 } });
}

const options = { memory: '256M', workload: '4M' } as const;

describe.each(['tdx', 'snp'] as const)('%s whole-VM snapshot', (platform) => {
  const config = parseBootOptions({ platform, ...options });

  it('boot → snapshot at the kernel\'s first decision point → run → restore → run: the same trace twice, and as without a pause', () => {
    const session = BootSession.create(config);
    expect(session.runToStage('kernel')).toBe(true);
    expect(session.stage).toBe('kernel');
    const atKernel = session.snapshot();
    const first = session.finish();
    const firstHash = session.trace.sha256();
    const firstInstructions = session.platform.machine.vcpu.instructions;
    expect(first.outcome.outcome).toBe('done');

    const machine = session.platform.machine;
    session.restore(atKernel);
    expect(session.platform.machine).toBe(machine); // restored in place, not rebuilt
    expect(session.stage).toBe('kernel');
    const second = session.finish();
    expect(second.outcome).toEqual(first.outcome);
    expect(second.report).toEqual(first.report);
    expect(session.trace.sha256()).toBe(firstHash);
    expect(session.platform.machine.vcpu.instructions).toBe(firstInstructions);

    // A boot that never paused or restored produces the very same trace.
    const straight = bootGuest(config);
    expect(straight.result.outcome).toBe('done');
    expect(straight.result.traceSha256).toBe(firstHash);
    straight.platform.machine.close();
    machine.close();
  });

  it('VMM actions and a hostile run between restores leave no trace', () => {
    const session = BootSession.create(config);
    expect(session.runToStage('kernel')).toBe(true);
    const atKernel = session.snapshot();
    const honest = session.finish();
    const honestHash = session.trace.sha256();
    expect(honest.outcome.outcome).toBe('done');

    // 1. Direct VMM actions through the handle, then restore.
    session.restore(atKernel);
    const vmm = session.vmm;
    if (vmm.kind === 'tdx') {
      const host = vmm.driver.ctx.host;
      host.setShared(0xe000000n, 0x200000n, true);
      host.hostMemory.fill(0xe000000n, 0x200000n, 0xee);
      host.memTrack();
      host.injectInterrupt(0x30);
    } else {
      const host = vmm.driver.handle;
      expect(host.rmpUpdate(0xe000000n, { assigned: true, pageSize: '2m', gpa: 0xe000000n, asid: host.asid }).rc).toBe(0);
      host.setNptPageSize(0xe000000n, '2m');
      host.ghcbMsr = 0xdeadn;
    }
    session.restore(atKernel);
    expect(session.finish()).toEqual(honest);
    expect(session.trace.sha256()).toBe(honestHash);

    // 2. A hostile VMM runs the kernel to a different end, then the honest one from the snapshot again.
    session.restore(atKernel);
    if (vmm.kind === 'tdx') {
      const liar: TdxVmmPolicy = { ...honestTdxPolicy, mapGpa: () => ({ kind: 'return', regs: { r10: 1n, r11: 0xdead000n } }) };
      vmm.driver.policy = liar;
    } else {
      const stopper: SnpVmmPolicy = {
        onNpf: (host, exit) => vmm.honest.onNpf(host, exit),
        onHlt: (host, exit) => vmm.honest.onHlt(host, exit),
        onVmgexit: () => ({ outcome: 'vmm-error', reason: 'hostile VMM stops the guest' }),
      };
      vmm.driver.policy = stopper;
    }
    const hostile = session.finish();
    expect(hostile.outcome.outcome).not.toBe('done');
    expect(session.trace.sha256()).not.toBe(honestHash);
    session.restore(atKernel);
    // The restore put the honest policy (in charge at snapshot time) back.
    expect(vmm.driver.policy).toBe(vmm.honest);
    expect(session.finish()).toEqual(honest);
    expect(session.trace.sha256()).toBe(honestHash);
    session.platform.machine.close();
  });

  it('restoring the same snapshot again gives its state, after runs that changed every part and after none (parts skip reloading what did not change)', () => {
    const session = BootSession.create(config);
    expect(session.runToStage('kernel')).toBe(true);
    const atKernel = session.snapshot();
    const view = () => ({
      report: structuredClone(session.parser.report), totals: structuredClone(session.trace.totals), distinct: session.trace.acceptedRanges.bytes,
      counts: session.trace.counts, length: session.trace.length, stage: session.stage, exits: session.platform.vm.exits,
    });
    const start = view();
    const finished = session.finish();
    const hash = session.trace.sha256();
    // The honest run printed, accepted, recorded and exited: every part changed.
    expect(view()).not.toEqual(start);
    for (let round = 0; round < 3; round++) {
      session.restore(atKernel);
      expect(view()).toEqual(start);
      session.restore(atKernel); // nothing ran since
      expect(view()).toEqual(start);
      if (round === 1) continue; // the next restore follows one that changed nothing
      expect(session.finish()).toEqual(finished);
      expect(session.trace.sha256()).toBe(hash);
    }
    session.platform.machine.close();
  });

  it('snapshots at the firmware and decompressor stages resume to the same end too', () => {
    const session = BootSession.create(config);
    expect(session.runToStage('firmware')).toBe(true);
    const atFirmware = session.snapshot();
    expect(session.runToStage('decompressor')).toBe(true);
    const atDecompressor = session.snapshot();
    // Already past the firmware stage: it pauses at the next decision point and says so.
    expect(session.runToStage('firmware')).toBe(false);
    const end = session.finish();
    const hash = session.trace.sha256();
    expect(end.outcome.outcome).toBe('done');
    for (const snap of [atFirmware, atDecompressor]) {
      session.restore(snap);
      expect(session.finish()).toEqual(end);
      expect(session.trace.sha256()).toBe(hash);
    }
    session.platform.machine.close();
  });
});
