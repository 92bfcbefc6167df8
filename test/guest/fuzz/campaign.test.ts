// Short fixed-seed campaigns against the real guest stubs: the honest stubs give no findings,
// hostile programs are detected, campaigns and replays are deterministic, shrinking works.
import { describe, expect, it } from 'vitest';
import type { AttackProgram, Decision } from '../../../src/fuzz/attack-program.js';
import { runCampaign } from '../../../src/fuzz/campaign.js';
import { createExecutor } from '../../../src/fuzz/create-executor.js';
import { BootExecutor, type FuzzTarget } from '../../../src/fuzz/executor.js';
import { plantedBugTarget } from '../../../src/fuzz/planted-bugs.js';
import { shrinkProgram } from '../../../src/fuzz/shrink.js';

const target = (platform: 'tdx' | 'snp'): FuzzTarget => ({
  platform, stage: 'all', memoryBytes: 128n << 20n, workloadBytes: 1n << 20n, preAccept: 64n << 20n, accept: 'lazy',
  unitBytes: 0x200000n, guestSeed: 1n, maxInstructions: 20_000_000n,
});

/** Linux's MapGPA rule: RETRY without progress more than 3 times is fatal (tdx.c __tdx_map_gpa). */
const mapGpaStall: Decision = {
  at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1_000_000,
  answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n, resumeDelta: 0n },
};

describe('fuzz campaigns on the guest stubs', () => {
  it.each(['tdx', 'snp'] as const)('%s: the honest stubs give no findings under a short campaign', async (platform) => {
    const result = await runCampaign({ executor: new BootExecutor(target(platform)), seed: 1n, runs: 6 });
    expect(result.stats.execs).toBe(6);
    expect(result.findings).toEqual([]);
    expect(result.stats.verdicts.finding).toBe(0);
    // Coverage guided the corpus: more than the honest program was kept.
    expect(result.stats.decisionKeys).toBeGreaterThan(1);
  }, 120_000);

  it('a hand-made hostile program is detected by the guest, with its reason', () => {
    const e = new BootExecutor(target('tdx')).execute({ platform: 'tdx', decisions: [mapGpaStall] });
    expect(e.judgement.verdict).toBe('detected');
    expect(e.judgement.outcome.reason).toMatch(/^tdx_map_gpa_no_progress/);
  }, 60_000);

  it('SNP: a PSC answer with an error in SW_EXITINFO2 is detected', () => {
    const program: AttackProgram = {
      platform: 'snp',
      decisions: [{ at: 'call', point: 'snp.ghcb.psc', occurrence: 0, answer: { kind: 'vmgexit', effect: 'honest', ghcb: { swExitInfo2: (1n << 32n) | 2n } } }],
    };
    const e = new BootExecutor(target('snp')).execute(program);
    expect(e.judgement.verdict).toBe('detected');
    expect(e.judgement.outcome.reason).toMatch(/snp_psc_failed/);
  }, 60_000);

  it.each(['tdx', 'snp'] as const)('%s: a guest that prints a warning about a failed page-state change and carries on is an unchecked state change', (platform) => {
    // psc-error-ignored warns (a console line that goes out at once) and takes the failure as done.
    const failed: Decision[] = platform === 'tdx'
      ? [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, answer: { kind: 'map-gpa', convertBytes: 0n, status: 0x8000000000000000n } }]
      : [{ at: 'call', point: 'snp.ghcb.psc', occurrence: 0, answer: { kind: 'vmgexit', effect: 'none', ghcb: { swExitInfo2: (1n << 32n) | 1n } } }];
    const stopNext: Decision = { at: 'call', point: platform === 'tdx' ? 'tdx.mapGpa' : 'snp.ghcb.psc', occurrence: 1, answer: { kind: 'stop' } };
    const executor = createExecutor({ ...plantedBugTarget(platform, 'psc-error-ignored') });
    try {
      const e = executor.execute({ platform, decisions: [...failed, stopNext] }, { keepTrace: true });
      const events = e.events!;
      const refused = events.find((x) => x.type === 'state-change-refused' && x.reached === false)!;
      const next = events.find((x) => x.type === 'exit-after-refusal')!;
      // The guest's first exit after the failure was its warning; the one the oracle judged, its
      // use of the memory it was told was not converted.
      const between = events.filter((x) => x.seq > refused.seq && x.seq < next.seq);
      expect(between.some((x) => (x.type === 'td-exit' && x.reason === 'tdvmcall') || x.type === 'io')).toBe(true);
      expect(next.point).toBe(platform === 'tdx' ? 'tdx.onSharedEptViolation' : 'snp.onNpf');
      expect(e.judgement.outcome.outcome).not.toBe('done');
      expect(e.judgement.findings.map((f) => f.category)).toEqual(['unchecked-state-change']);
    } finally {
      executor.close();
    }
  }, 60_000);

  it('the same seed and runs give the same campaign', async () => {
    const run = () => runCampaign({ executor: new BootExecutor(target('tdx')), seed: 42n, runs: 4 });
    const a = await run();
    const b = await run();
    expect(b.stats).toEqual(a.stats);
    expect(b.corpus).toEqual(a.corpus);
    expect(b.findings).toEqual(a.findings);
  }, 120_000);

  it('replaying a program gives the same trace hash', () => {
    const executor = new BootExecutor(target('tdx'));
    const program: AttackProgram = { platform: 'tdx', decisions: [{ at: 'exit', exitIndex: 3, action: { kind: 'tdx.seamcall', op: 'TRACK', gpa: 0n, level: 0 } }] };
    const first = executor.execute(program);
    const second = executor.execute(program);
    expect(first.traceSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(second.traceSha256).toBe(first.traceSha256);
    expect(executor.execute({ platform: 'tdx', decisions: [] }).traceSha256).not.toBe(first.traceSha256);
  }, 60_000);

  it('shrinking reduces a padded program to the decision that matters', async () => {
    const executor = new BootExecutor(target('tdx'));
    const padding: Decision[] = [
      { at: 'call', point: 'tdx.instructionIo', occurrence: 5, answer: { kind: 'honest' } },
      { at: 'exit', exitIndex: 2, action: { kind: 'tdx.seamcall', op: 'TRACK', gpa: 0n, level: 0 } },
      { at: 'call', point: 'tdx.onAcceptViolation', occurrence: 0, answer: { kind: 'honest' } },
      { at: 'exit', exitIndex: 9, action: { kind: 'tdx.post-interrupt', vector: 0x40, afterChunks: 7 } },
    ];
    const padded: AttackProgram = { platform: 'tdx', decisions: [...padding.slice(0, 2), mapGpaStall, ...padding.slice(2)] };
    const stalls = (p: AttackProgram) => /^tdx_map_gpa_no_progress/.test(executor.execute(p).judgement.outcome.reason);
    expect(stalls(padded)).toBe(true);
    const shrunk = await shrinkProgram(padded, async (p) => {
      await new Promise((resolve) => setImmediate(resolve));
      return stalls(p);
    });
    // The stall needs every retry answered alike, so the repeat stays.
    expect(shrunk.program.decisions).toEqual([mapGpaStall]);
  }, 120_000);
});

describe('the oracle on planted-bug variants (guest/DEFENCES.md)', () => {
  const variantTarget = (variant?: 'reaccept-skipped' | 'trusts-injected-exception'): FuzzTarget => ({
    ...target('tdx'), workloadBytes: 4n << 20n, ...(variant ? { variant } : {}),
  });

  it('reaccept-skipped: MapGPA keeping the private pages is detected by the honest stubs, foreign content in the variant', () => {
    const keep: AttackProgram = {
      platform: 'tdx',
      decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1_000_000, answer: { kind: 'map-gpa', convertBytes: 1n << 40n, status: 0n, sharedEptOnly: true } }],
    };
    const honest = new BootExecutor(variantTarget()).execute(keep);
    expect(honest.judgement.verdict).toBe('detected');
    expect(honest.judgement.outcome.reason).toMatch(/^tdx_accept_already_accepted/);
    expect(honest.judgement.findings).toEqual([]);
    const planted = new BootExecutor(variantTarget('reaccept-skipped')).execute(keep, { keepTrace: true });
    expect(planted.judgement.verdict).toBe('finding');
    expect(planted.judgement.findings.map((f) => f.category)).toEqual(['foreign-content']);
    // The hardware saw the read itself: the workload's round-trip counter, the second qword of a
    // page it converted back and never re-accepted (guest/kernel/main.c convert_round_trip).
    const [finding] = planted.judgement.findings;
    const read = planted.events!.find((e) => e.seq === finding!.eventSeq);
    expect(read).toMatchObject({ type: 'foreign-read', gpa: finding!.gpa, rip: finding!.rip });
    expect(finding!.gpa! & 0xfffn).toBe(8n);
    expect(planted.events!.some((e) => e.type === 'guest-release' && typeof e.gpa === 'bigint' && typeof e.bytes === 'bigint' &&
      finding!.gpa! >= e.gpa && finding!.gpa! < e.gpa + e.bytes)).toBe(true);
    // RIP is the reading instruction's (in the kernel's code), not an address in the page read.
    expect(finding!.rip! >> 12n).not.toBe(finding!.gpa! >> 12n);
  }, 60_000);

  it('reaccept-skipped from a whole-VM snapshot: the content watch is restored with the VM, so the finding repeats bit for bit', () => {
    const keep: AttackProgram = {
      platform: 'tdx',
      decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1_000_000, answer: { kind: 'map-gpa', convertBytes: 1n << 40n, status: 0n, sharedEptOnly: true } }],
    };
    const executor = createExecutor(variantTarget('reaccept-skipped'));
    try {
      const first = executor.execute(keep, { keepTrace: true });
      // An honest execution in between re-accepts what the first left watched and read.
      expect(executor.execute({ platform: 'tdx', decisions: [] }).judgement.findings).toEqual([]);
      const again = executor.execute(keep, { keepTrace: true });
      expect(first.judgement.findings).toMatchObject([{ category: 'foreign-content' }]);
      expect(again.judgement.findings).toEqual(first.judgement.findings);
      expect(again.traceSha256).toBe(first.traceSha256);
      expect(again.events!.filter((e) => e.type === 'foreign-read')).toEqual(first.events!.filter((e) => e.type === 'foreign-read'));
    } finally {
      executor.close();
    }
  }, 60_000);

  it('trusts-injected-exception: a workload page replayed zeroed is detected by the honest stubs, a double acceptance in the variant', () => {
    // The kernel's first MapGPA exit (its workload's conversion), found from an honest execution's trace.
    const probe = new BootExecutor(variantTarget()).execute({ platform: 'tdx', decisions: [] }, { keepTrace: true });
    const events = probe.events!;
    const kernel = events.findIndex((e) => e.type === 'stage' && e.stage === 'kernel');
    const firstMapGpa = events.findIndex((e, i) => i > kernel && e.type === 'guest-request');
    const exitIndex = events.slice(0, firstMapGpa).filter((e) => e.type === 'td-exit').length - 1;
    const replay: AttackProgram = { platform: 'tdx', decisions: [{ at: 'exit', exitIndex, action: { kind: 'tdx.replay-zeroed', gpa: 0x101000n, level: 0 } }] };
    const honest = new BootExecutor(variantTarget()).execute(replay);
    expect(honest.judgement.outcome.reason).toMatch(/^unexpected_ve/);
    const planted = new BootExecutor(variantTarget('trusts-injected-exception')).execute(replay);
    expect(planted.judgement.findings).toMatchObject([{ category: 'double-acceptance', gpa: 0x101000n }]);
  }, 60_000);
});
