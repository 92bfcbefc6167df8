// `boot --handover kexec` (issue 14 part 2) through the real stubs: the first kernel runs its
// workload, loads the second kernel and jumps to it with the acceptance table; the second kernel
// accepts only what is still unaccepted, checks the data the first left it, and ends done.
// `--handover crash`: the first kernel panics mid-workload into a crash kernel loaded at boot,
// which dumps the memory the first kernel accepted; the host checks the dump against the hardware.
import { describe, expect, it } from 'vitest';
import { parseBootOptions, BootOptionError, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest, type BootRun } from '../../../src/boot/boot-guest.js';
import { AcceptanceOracle } from '../../../src/fuzz/oracle.js';
import { DecisionBook, snpAdversaryPolicy, tdxAdversaryPolicy } from '../../../src/fuzz/adversary.js';
import { HonestSnpVmm } from '../../../src/vmm/snp/honest-vmm.js';
import { readGuestAcceptanceRecord } from '../../../src/fuzz/guest-record.js';
import { acceptanceMismatches, doubleAccepts } from '../../helpers/boot-check.js';
import { dumpDigest, verifyCrashDump } from '../../../src/boot/crash-dump.js';

const KiB = 1024n;
const MiB = 1024n * KiB;
/** Each kernel converts a 2 MiB and a 16 KiB buffer to shared and back, then accepts them again. */
const REACCEPTED_PER_KERNEL = 2n * MiB + 16n * KiB;
/** guest/kernel/handover.h MV_KEXEC_PRESERVED_BYTES */
const PRESERVED_BYTES = 256n * KiB;

/**
 * Boots behind the fuzzer's adversary layer with an empty attack program: an honest VMM that
 * records the guest's own conversions to shared (guest-release), which the oracle needs to tell a
 * re-accept after a conversion from a double acceptance.
 */
function boot(raw: RawBootOptions): BootRun {
  const config = parseBootOptions(raw);
  const book = new DecisionBook({ platform: config.platform, decisions: [] });
  const vmm = config.platform === 'tdx'
    ? { tdx: tdxAdversaryPolicy(book) }
    : {
        snp: (echo: (line: string) => void) => {
          const honest = new HonestSnpVmm({ echo });
          return Object.assign(snpAdversaryPolicy(book, honest), { console: honest.console });
        },
      };
  return bootGuest(config, { vmm, keepTrace: true });
}

function stat(run: BootRun, name: string): bigint {
  const v = run.report.stats[name];
  if (v === undefined) throw new Error(`the guest did not report ${name}:\n${run.result.console.slice(-1500)}`);
  return v;
}

/** The fuzz oracle over the whole run, with the hardware's and the guest's final views. */
function oracleFindings(run: BootRun): string[] {
  const oracle = new AcceptanceOracle();
  for (const e of run.trace.events) oracle.observe(e);
  const machine = run.platform.machine;
  const judgement = oracle.judge({ outcome: run.result.outcome, reason: run.result.outcomeReason }, {
    hardwareAccepted: (gpa) => machine.gate.get('private', gpa) !== 'none',
    guestRecord: () => readGuestAcceptanceRecord(machine.memory),
  });
  return judgement.findings.map((f) => `${f.category}: ${f.detail}`);
}

describe('boot --handover kexec', () => {
  for (const platform of ['tdx', 'snp'] as const) {
    for (const unit of ['4K', '2M'] as const) {
      it(`${platform}, unit ${unit}: the second kernel takes over the acceptance table and accepts nothing twice`, () => {
        const run = boot({ platform, unit, memory: '512M', workload: '32M', handover: 'kexec' });
        try {
          const { result, report } = run;
          expect(result.outcome, `${result.outcomeReason}\n${result.console.slice(-2000)}`).toBe('done');
          expect(report.errors).toEqual([]);
          expect(report.stages).toEqual(['firmware', 'decompressor', 'kernel']);

          // The second kernel ran: it found the preserved data intact, page by page.
          expect(stat(run, 'kexec_preserved_bytes_verified')).toBe(PRESERVED_BYTES);
          // Its workload (twice the first's) reused memory the first kernel accepted and went on
          // into memory still unaccepted: it accepted some, and the kernel stage's total is the
          // two kernels' together.
          const first = stat(run, 'kexec_first_kernel_accepted_bytes');
          const second = stat(run, 'kexec_second_kernel_accepted_bytes');
          expect(second).toBeGreaterThan(0n);
          expect(stat(run, 'kernel_accepted_bytes')).toBe(first + second);
          expect(BigInt(result.acceptedBytes.kernel)).toBe(first + second);

          // No page accepted twice: the hardware refused no accept, the fuzz oracle's
          // double-acceptance check is silent, and the only bytes accepted more than once are
          // the two kernels' own shared->private conversions.
          expect(doubleAccepts(run)).toBe(0);
          expect(oracleFindings(run)).toEqual([]);
          expect(BigInt(result.acceptedBytes.total - result.acceptedBytes.distinct)).toBe(2n * REACCEPTED_PER_KERNEL);
          // The table the second kernel ends with says what the hardware says.
          expect(acceptanceMismatches(run)).toEqual([]);
        } finally {
          run.platform.machine.close();
        }
      });
    }
  }

  it('leaves the default boot alone: without --handover the kernel is the default image', () => {
    const plain = parseBootOptions({});
    expect(plain.handover).toBeUndefined();
    const config = parseBootOptions({ handover: 'kexec' });
    expect(config.handover).toBe('kexec');
  });

  it('refuses a bad --handover, or one the second kernel has no room for, with one clear error', () => {
    expect(() => parseBootOptions({ handover: 'kdump' })).toThrow(new BootOptionError('--handover must be kexec or crash, not "kdump"'));
    expect(() => parseBootOptions({ handover: 'kexec', variant: 'reaccept-skipped' })).toThrow(/cannot be combined with --variant/);
    expect(() => parseBootOptions({ handover: 'kexec', memory: '128M', workload: '64M' })).toThrow(/at most a quarter of --memory/);
  });
});

describe('boot --handover crash', () => {
  for (const platform of ['tdx', 'snp'] as const) {
    for (const unit of ['4K', '2M'] as const) {
      it(`${platform}, unit ${unit}: the crash kernel dumps exactly the accepted memory, and the host finds the dump matches the hardware`, () => {
        const run = boot({ platform, unit, memory: '256M', preAccept: '16M', workload: '32M', handover: 'crash', seed: '7' });
        try {
          const { result, report } = run;
          expect(result.outcome, `${result.outcomeReason}\n${result.console.slice(-2000)}`).toBe('done');
          expect(report.errors).toEqual([]);
          // The first kernel panicked inside its workload (32 chunks of 1 MiB), at the seeded chunk.
          const chunk = stat(run, 'crash_panic_chunk');
          expect(chunk).toBeLessThan(32n);
          expect(stat(run, 'dump_panic_chunk')).toBe(chunk);
          // The dump: the host recomputes every range's digest from the memory the model holds and
          // finds every accepted page of RAM in it, every dumped page accepted in hardware.
          const dump = verifyCrashDump(run);
          expect(dump.problems).toEqual([]);
          expect(dump.ranges.length).toBeGreaterThan(0);
          expect(dump.dumpedBytes).toBe(stat(run, 'dump_accepted_bytes'));
          expect(stat(run, 'dump_unaccepted_bytes_skipped')).toBeGreaterThan(0n);
          // The crash kernel accepted nothing: the hardware completed no accept after the panic,
          // none was refused, and the oracle finds no double acceptance.
          const completed = BigInt(result.acceptCallsCompleted['4K'] + result.acceptCallsCompleted['2M']);
          expect(completed).toBe(stat(run, 'crash_accept_calls_at_panic'));
          expect(doubleAccepts(run)).toBe(0);
          expect(oracleFindings(run)).toEqual([]);
          expect(acceptanceMismatches(run)).toEqual([]);
        } finally {
          run.platform.machine.close();
        }
      });
    }
  }

  it('the seed moves the panic point', () => {
    const chunks = ['1', '2', '3'].map((seed) => {
      const run = boot({ platform: 'tdx', memory: '256M', preAccept: '16M', workload: '32M', handover: 'crash', seed });
      try {
        return stat(run, 'crash_panic_chunk');
      } finally {
        run.platform.machine.close();
      }
    });
    expect(new Set(chunks).size).toBeGreaterThan(1);
  });

  it('a dump whose digest disagrees with memory fails the host check', () => {
    const run = boot({ platform: 'snp', memory: '256M', preAccept: '16M', workload: '32M', handover: 'crash' });
    try {
      const first = run.report.stats.dump_0_digest!;
      run.report.stats.dump_0_digest = first ^ 1n;
      expect(verifyCrashDump(run).problems.join('\n')).toMatch(/^dump range \[0x[0-9a-f]+, 0x[0-9a-f]+\): the crash kernel's digest/);
    } finally {
      run.platform.machine.close();
    }
  });
});

describe('dump digest', () => {
  it('is 64-bit FNV-1a over little-endian qwords, as the crash kernel computes it', () => {
    const bytes = new Uint8Array(4096);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) & 0xff;
    const view = new DataView(bytes.buffer);
    let h = 0xcbf29ce484222325n;
    for (let o = 0; o < bytes.length; o += 8) h = BigInt.asUintN(64, (h ^ view.getBigUint64(o, true)) * 0x100000001b3n);
    expect(dumpDigest(bytes)).toBe(h);
  });
});
