// TdxPlatform.create: every option reaches the machine, the TDX module's TD configuration or the
// vCPU scheduler it is meant for, and each default is the one documented in TdxPlatformOptions.
import { describe, expect, it } from 'vitest';
import { TdxPlatform } from '../../../src/platform/tdx/tdx-platform.js';
import { CONFIG_FLAGS_FLEXIBLE_PENDING_VE, TdAttributes } from '../../../src/platform/tdx/td-module.js';
import { Trace } from '../../../src/shared/trace.js';

const MiB = 1n << 20n;

describe('TdxPlatform.create', () => {
  it('defaults: GPAW 48, no attributes, one vCPU (NUM_VCPUS = MAX_VCPUS = 1), counting mode, no scheduler', () => {
    const p = TdxPlatform.create({ memoryBytes: 16n * MiB });
    expect(p.module.config).toEqual({ gpaWidth: 48, attributes: 0n, numVcpus: 1, maxVcpus: 1, configFlags: 0n });
    expect([p.machine.countInstructions, p.machine.vcpuCount, p.scheduler]).toEqual([true, 1, undefined]);
    p.machine.close();
  });

  it('each option reaches its place: GPAW, attributes, config flags, counting mode off, the instruction limit, the trace', () => {
    const trace = new Trace();
    const p = TdxPlatform.create({
      memoryBytes: 16n * MiB, gpaWidth: 52, attributes: TdAttributes.SEPT_VE_DISABLE, configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE,
      numVcpus: 2, maxVcpus: 3, countInstructions: false, trace,
    });
    expect(p.module.config).toEqual({ gpaWidth: 52, attributes: TdAttributes.SEPT_VE_DISABLE, numVcpus: 2, maxVcpus: 3, configFlags: CONFIG_FLAGS_FLEXIBLE_PENDING_VE });
    expect([p.machine.countInstructions, p.trace]).toEqual([false, trace]);
    p.machine.close();
    const limited = TdxPlatform.create({ memoryBytes: 16n * MiB, instructionLimit: 1234n });
    expect(limited.machine.vcpu.instructionLimit).toBe(1234n);
    limited.machine.close();
  });

  it('with several vCPUs: NUM_VCPUS and MAX_VCPUS are their count, and the scheduler is round-robin with seed 1 unless told otherwise', () => {
    const p = TdxPlatform.create({ memoryBytes: 16n * MiB, vcpus: 2, numVcpus: 1, maxVcpus: 1 });
    expect([p.module.config.numVcpus, p.module.config.maxVcpus]).toEqual([2, 2]);
    expect(p.scheduler?.options).toMatchObject({ policy: 'round-robin', seed: 1n });
    p.machine.close();
    const seeded = TdxPlatform.create({ memoryBytes: 16n * MiB, vcpus: 2, schedule: { policy: 'random', seed: 7n, quantum: 50 } });
    expect(seeded.scheduler?.options).toMatchObject({ policy: 'random', seed: 7n, quantum: 50 });
    seeded.machine.close();
  });

  it('saveState/loadState cover the scheduler with several vCPUs and leave it out with one', () => {
    const one = TdxPlatform.create({ memoryBytes: 16n * MiB });
    expect(one.saveState().scheduler).toBeUndefined();
    one.loadState(one.saveState());
    one.machine.close();
    const two = TdxPlatform.create({ memoryBytes: 16n * MiB, vcpus: 2, schedule: { policy: 'random', seed: 7n, quantum: 50 } });
    const state = two.saveState();
    two.scheduler!.reschedule({ policy: 'random', seed: 9n, quantum: 50 });
    two.loadState(state);
    expect(two.scheduler!.options.seed).toBe(7n);
    two.machine.close();
  });
});
