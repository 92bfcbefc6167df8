// `--tracking memmap` (issue 14 part 3, Kleen's variant): no acceptance bitmap; the decompressor
// records its accepts by splitting the memory map and the kernel keeps its state privately. Booted
// through the real stubs on both platforms; its fatal checks are attacked in defences.test.ts.
import { describe, expect, it } from 'vitest';
import { parseBootOptions, BootOptionError, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { parseFuzzOptions } from '../../../src/cli/fuzz-options.js';
import { createExecutor } from '../../../src/fuzz/create-executor.js';
import { targetToJson } from '../../../src/fuzz/finding-file.js';

const M = 1024n * 1024n;

function boot(flags: RawBootOptions) {
  const run = bootGuest(parseBootOptions({ memory: '256M', workload: '32M', ...flags }));
  try {
    return run.result;
  } finally {
    run.platform.machine.close();
  }
}

describe('--tracking memmap', () => {
  it.each([
    ['tdx', '2M'], ['tdx', '4K'], ['snp', '2M'], ['snp', '4K'],
  ] as const)('%s --unit %s boots done without a bitmap, the same workload verified as with the bitmap', (platform, unit) => {
    const memmap = boot({ platform, unit, tracking: 'memmap' });
    const bitmap = boot({ platform, unit });
    expect(memmap.outcome, `${memmap.outcomeReason}\n${memmap.console.slice(-800)}`).toBe('done');
    expect(memmap.guestStats.bitmap_bytes).toBeUndefined();
    expect(bitmap.guestStats.bitmap_bytes).toBeDefined();
    expect(memmap.guestStats.workload_bytes_verified).toBe(bitmap.guestStats.workload_bytes_verified);
    expect(memmap.guestStats.conversions).toBe('2');
    // What stays unaccepted is all RAM minus what was accepted once (conversions re-accept).
    const total = BigInt(memmap.guestStats.accepted_bytes_total!);
    expect(total).toBeGreaterThan(64n * M);
    expect(BigInt(memmap.guestStats.unaccepted_bytes_remaining!)).toBeGreaterThan(0n);
    expect(BigInt(memmap.guestStats.memmap_private_extents_peak!)).toBeGreaterThanOrEqual(1n);
  });

  it('the decompressor records what it accepted by splitting the map: the kernel range leaves unaccepted and is never accepted twice', () => {
    // 8 MiB pre-accepted: the kernel output range at 16 MiB is unaccepted when the decompressor runs.
    const r = boot({ platform: 'tdx', preAccept: '8M', tracking: 'memmap' });
    expect(r.outcome, r.outcomeReason).toBe('done');
    expect(BigInt(r.guestStats.decompressor_accepted_bytes!)).toBeGreaterThanOrEqual(2n * M);
    // firmware: RAM, reserved, RAM, unaccepted; decompressor: the unaccepted entry split around the kernel.
    expect(r.guestStats.e820_entries).toBe('4');
    expect(r.guestStats.memmap_entries).toBe('6');
    // A second accept of the kernel range would have been TDX_PAGE_ALREADY_ACCEPTED, which is fatal.
  });

  it('the default stays the bitmap; a bad or unbuilt combination is a clear error', () => {
    expect(parseBootOptions({ tracking: 'bitmap' }).tracking).toBeUndefined();
    expect(parseBootOptions({ tracking: 'memmap' }).tracking).toBe('memmap');
    expect(() => parseBootOptions({ tracking: 'pageflags' })).toThrow(BootOptionError);
    expect(() => parseBootOptions({ tracking: 'memmap', variant: 'reaccept-skipped' })).toThrow(/built with --variant/);
    expect(() => parseBootOptions({ tracking: 'memmap', verify: true })).toThrow(/nothing to compare/);
    expect(() => parseBootOptions({ tracking: 'memmap', vcpus: '2' })).toThrow(/one vCPU/);
    expect(() => parseBootOptions({ tracking: 'memmap', kernel: 'k.elf' })).toThrow(/does not take --decompressor or --kernel/);
  });

  it('the fuzzer runs the memmap stubs: the honest program is benign, and a finding file names the design', () => {
    const { target } = parseFuzzOptions({ platform: 'snp', tracking: 'memmap', runs: '1' });
    expect(target.tracking).toBe('memmap');
    expect(targetToJson(target).tracking).toBe('memmap');
    const run = (t: typeof target) => {
      const executor = createExecutor(t);
      try {
        return executor.execute({ platform: 'snp', decisions: [] });
      } finally {
        executor.close();
      }
    };
    const memmap = run(target);
    expect(memmap.judgement.verdict, memmap.judgement.outcome.reason).toBe('benign');
    const { tracking: _, ...bitmapTarget } = target;
    expect(memmap.traceSha256).not.toBe(run(bitmapTarget).traceSha256); // the memmap images ran, not the default ones
  });
});
