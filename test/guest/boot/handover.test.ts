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
import { CRASH_KERNEL_REGION, dumpDigest, verifyCrashDump } from '../../../src/boot/crash-dump.js';
import { BOOT_PARAMS_GPA } from '../../../src/boot/layout.js';

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
          expect(dump.ok).toBe(true);
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
      const dump = verifyCrashDump(run);
      expect(dump.problems.join('\n')).toMatch(/^dump range \[0x[0-9a-f]+, 0x[0-9a-f]+\): the crash kernel's digest/);
      // One problem is enough to fail the check (the CLI's exit status follows `ok`).
      expect(dump.problems.length).toBe(1);
      expect(dump.ok).toBe(false);
    } finally {
      run.platform.machine.close();
    }
  });
});

describe('the host check of a crash dump refuses every kind of wrong dump (crash-dump.ts)', () => {
  // crash-dump.ts's contract: every dumped page accepted in hardware and digested as it is;
  // every accepted page of RAM dumped, except the crash kernel's own region.
  it('a missing, incomplete, misaligned, reordered or overreaching range, or no dump at all', () => {
    const run = boot({ platform: 'tdx', memory: '256M', preAccept: '16M', workload: '32M', handover: 'crash' });
    try {
      const stats = run.report.stats;
      const original = { ...stats };
      const problems = (edit: (s: Record<string, bigint>) => void) => {
        for (const key of Object.keys(stats)) delete stats[key];
        Object.assign(stats, original);
        edit(stats);
        return verifyCrashDump(run).problems;
      };
      expect(problems(() => {})).toEqual([]);
      const count = original.dump_ranges!;
      expect(count).toBeGreaterThan(1n);
      const last = count - 1n;
      const [start, end] = [original[`dump_${last}_start`]!, original[`dump_${last}_end`]!];
      const outsideCrashRegion = (gpa: bigint) => gpa < CRASH_KERNEL_REGION.start || gpa >= CRASH_KERNEL_REGION.end;
      let pages = 0n;
      for (let gpa = start; gpa < end; gpa += 0x1000n) if (outsideCrashRegion(gpa)) pages++;
      // The last range left out: its accepted pages are missing from the dump.
      expect(problems((s) => { s.dump_ranges = last; }))
        .toEqual(pages > 0n ? [`${pages} accepted pages of RAM are missing from the dump, the first at 0x${start.toString(16)}`] : []);
      expect(problems((s) => { delete s.dump_0_end; })[0]).toBe('dump range 0 is incomplete');
      expect(problems((s) => { s.dump_0_start = original.dump_0_start! + 8n; })[0]).toMatch(/^dump range \[0x[0-9a-f]+, 0x[0-9a-f]+\) is not a page-aligned range in order inside guest memory$/);
      // Range 1 reported before range 0: the second one reported goes backwards.
      expect(problems((s) => {
        for (const f of ['start', 'end', 'digest']) [s[`dump_0_${f}`], s[`dump_1_${f}`]] = [original[`dump_1_${f}`]!, original[`dump_0_${f}`]!];
      })).toContain(`dump range [0x${original.dump_0_start!.toString(16)}, 0x${original.dump_0_end!.toString(16)}) is not a page-aligned range in order inside guest memory`);
      // The last range stretched past the end of guest memory, and one page into memory nobody accepted.
      expect(problems((s) => { s[`dump_${last}_end`] = run.platform.machine.memory.size + 0x1000n; })[0]).toMatch(/is not a page-aligned range in order inside guest memory$/);
      // A page past the last range that the hardware does not hold accepted (the crash kernel skipped it).
      let top = end;
      while (run.platform.pageState(top).accepted) top += 0x1000n;
      expect(top).toBeLessThan(run.platform.machine.memory.size);
      expect(problems((s) => { s.dump_ranges = count + 1n; s[`dump_${count}_start`] = top; s[`dump_${count}_end`] = top + 0x1000n; s[`dump_${count}_digest`] = dumpDigest(new Uint8Array(0x1000)); }))
        .toEqual([`dump range [0x${top.toString(16)}, 0x${(top + 0x1000n).toString(16)}) holds 1 pages the hardware does not hold accepted`]);
      expect(problems((s) => { delete s.dump_ranges; })[0]).toBe('the crash kernel reported no dump (no dump_ranges stat)');
      // A range whose end is not page-aligned, and an empty range (its digest the empty input's,
      // the FNV-1a offset basis), are malformed reports, not short dumps.
      const notARange = (a: bigint, b: bigint) => `dump range [0x${a.toString(16)}, 0x${b.toString(16)}) is not a page-aligned range in order inside guest memory`;
      expect(problems((s) => { s[`dump_${last}_end`] = end - 8n; })).toContain(notARange(start, end - 8n));
      expect(problems((s) => { s[`dump_${last}_end`] = start; s[`dump_${last}_digest`] = 0xcbf29ce484222325n; })).toContain(notARange(start, start));
      // A range one page short of its run, digested as it claims: the page it left out is missed.
      const shortEnd = end - 0x1000n;
      expect(outsideCrashRegion(shortEnd) && run.platform.pageState(shortEnd).accepted).toBe(true);
      expect(problems((s) => { s[`dump_${last}_end`] = shortEnd; s[`dump_${last}_digest`] = dumpDigest(run.platform.machine.memory.read(start, Number(shortEnd - start))); }))
        .toEqual([`1 accepted pages of RAM are missing from the dump, the first at 0x${shortEnd.toString(16)}`]);
      // No memory map published (its magic wiped): nothing to check the dump's completeness against.
      run.platform.machine.memory.write(BOOT_PARAMS_GPA, new Uint8Array(4));
      expect(problems(() => {})).toContain('the guest published no memory map to check the dump against');
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
