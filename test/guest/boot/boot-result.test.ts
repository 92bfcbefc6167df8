// bootGuest's result (src/boot/boot-guest.ts): the numbers `boot --json` prints, each as README
// "Reading the output" defines it, checked against what the guest reported itself and what the
// machine counted; a boot's own errors with a trace file; and what a Linux boot's success is.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bootGuest, bootSucceeded } from '../../../src/boot/boot-guest.js';
import { BootConfigError, checkBootConfig, type BootConfig } from '../../../src/boot/boot-config.js';
import { withStrayImagePage } from '../../helpers/attacks.js';
import { parseBootOptions } from '../../../src/cli/boot-options.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const dir = mkdtempSync(join(tmpdir(), 'minivisor-boot-result-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(['tdx', 'snp'] as const)('%s boot result', (platform) => {
  it('counts as README defines them, matching the guest\'s own report', () => {
    let progressCalls = 0;
    const run = bootGuest(parseBootOptions({ platform, memory: '256M', seed: '42' }), { onAccepted: () => progressCalls++ });
    const { result } = run;
    try {
      expect(result.outcome).toBe('done');
      expect(result.seed).toBe('42');
      // The console as the guest wrote it, up to the newline after its last line.
      expect(result.console.endsWith('@mv done\n')).toBe(true);
      expect(result.stages).toEqual(['firmware', 'decompressor', 'kernel']);
      // Completed accept calls are what the guest's accept_calls_2m / accept_calls_4k count.
      expect(result.acceptCallsCompleted).toEqual({ '2M': Number(run.report.stats.accept_calls_2m), '4K': Number(run.report.stats.accept_calls_4k) });
      // The progress display hears of every completed accept.
      expect(progressCalls).toBe(result.acceptCallsCompleted['2M'] + result.acceptCallsCompleted['4K']);
      // Distinct bytes count a page once; the total counts the kernel's re-accepts after its
      // private->shared->private conversions again: a 2 MiB and a 16 KiB buffer.
      expect(result.acceptedBytes.total - result.acceptedBytes.distinct).toBe(2 * MiB + 16 * KiB);
      expect(result.acceptedBytes.distinct).toBeLessThanOrEqual(result.memoryBytes);
      // The guest instructions the vCPU retired.
      expect(result.guestInstructions).toBe(Number(run.platform.machine.vcpu.instructions));
      expect(result.guestInstructions).toBeGreaterThan(result.traceEvents);
    } finally {
      run.platform.machine.close();
    }
  });

  it('a run stopped in a stage names that stage in its failure', () => {
    const run = bootGuest(parseBootOptions({ platform, memory: '128M', workload: '4M', maxInstructions: '300000' }));
    run.platform.machine.close();
    expect(run.result.outcome).toBe('budget');
    const stage = run.result.stages[run.result.stages.length - 1];
    expect(stage).toBeDefined();
    expect(stage).not.toBe('kernel'); // stopped early enough that a wrong default would show
    expect(run.result.failure?.stage).toBe(stage);
  });
});

describe('bootGuest with a trace file', () => {
  it('refuses a bad config with the config\'s own error, before any trace file exists', () => {
    const traceFile = join(dir, 'typo.jsonl');
    const typo = { ...parseBootOptions({ memory: '128M' }), traceFile, vcpu: 2 } as unknown as BootConfig;
    let expected = '';
    try { checkBootConfig(typo); } catch (err) { expected = (err as Error).message; }
    expect(expected).toMatch(/"vcpu"/);
    expect(() => bootGuest(typo)).toThrow(new BootConfigError(expected));
    expect(existsSync(traceFile)).toBe(false);
  });

  it('an error during the launch says what became of the trace written so far', () => {
    const traceFile = join(dir, 'launch.jsonl');
    expect(() => bootGuest({ ...parseBootOptions({ memory: '128M' }), traceFile }, { vmm: withStrayImagePage(64n << 20n) }))
      .toThrow(/lie outside the launch ranges \((no trace was written|the partial trace .*)\)$/);
    expect(existsSync(traceFile)).toBe(false);
  });
});

describe('what counts as a successful boot', () => {
  it('a Linux boot succeeds only by reaching the decompressed kernel (handover), a stub boot only done', () => {
    const linux = { linux: { kernelFile: 'vmlinuz', cmdline: '' } } as Pick<BootConfig, 'linux'>;
    expect(bootSucceeded(linux, 'handover')).toBe(true);
    expect(bootSucceeded(linux, 'done')).toBe(false);
    expect(bootSucceeded({}, 'done')).toBe(true);
    expect(bootSucceeded({}, 'handover')).toBe(false);
  });
});
