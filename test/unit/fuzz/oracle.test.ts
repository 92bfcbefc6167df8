// The oracle judges from hardware events: these are the event sequences the TDX module and the SNP
// CPU model record (tdcall / pvalidate / seamcall / launch-update / td-exit / vmgexit events).
import { describe, expect, it } from 'vitest';
import { AcceptanceOracle, LifetimeMap, LIVENESS_REQUEST_RUN, type OracleContext } from '../../../src/fuzz/oracle.js';
import { PVALIDATE_RC } from '../../../src/platform/snp/pvalidate.js';
import { TdxStatus } from '../../../src/platform/tdx/status.js';
import type { RunOutcome } from '../../../src/shared/outcome.js';
import type { TraceEvent } from '../../../src/shared/trace.js';

let seq = 0;
const ev = (type: string, fields: Record<string, unknown>): TraceEvent => ({ seq: seq++, source: 'hw', type, ...fields } as TraceEvent);
const TDX_SUCCESS = 0n;
// The status the TDX model really returns (informational class, bit 63 clear), not a guess.
const TDX_ALREADY_ACCEPTED = TdxStatus.PAGE_ALREADY_ACCEPTED;
const accept = (gpa: bigint, level: 0 | 1, status = TDX_SUCCESS) => ev('tdcall', { leaf: 'MEM_PAGE_ACCEPT', rcx: gpa | BigInt(level), status });
const pvalidate = (gpa: bigint, validate: boolean, cf = false, size = '4k') => ev('pvalidate', { gpa, validate, rc: 0, cf, size });
const nothingAccepted: OracleContext = { hardwareAccepted: () => false, guestRecord: () => undefined };
const done: RunOutcome = { outcome: 'done', reason: 'guest halted' };
const fatal: RunOutcome = { outcome: 'guest-fatal', reason: 'tdx_accept_already_accepted' };

function judge(events: TraceEvent[], outcome: RunOutcome = done, ctx = nothingAccepted) {
  const oracle = new AcceptanceOracle();
  for (const e of events) oracle.observe(e);
  return oracle.judge(outcome, ctx);
}

describe('acceptance oracle', () => {
  it('an honest lifetime (accept, ask for shared, accept again) is benign', () => {
    const j = judge([
      accept(0x400000n, 1),
      ev('guest-release', { gpa: 0x400000n, bytes: 0x200000n }),
      accept(0x400000n, 1),
    ]);
    expect(j.verdict).toBe('benign');
  });

  it('a second successful TDX accept in the same lifetime is a double acceptance (REMOVE+AUG replay)', () => {
    const j = judge([accept(0x400000n, 1), accept(0x401000n, 0)]);
    expect(j.verdict).toBe('finding');
    expect(j.findings).toMatchObject([{ category: 'double-acceptance', severity: 'high', gpa: 0x401000n }]);
    // The README.txt of a finding says which page, in hex as the trace has it.
    expect(j.findings[0]!.detail).toMatch(/^TDG\.MEM\.PAGE\.ACCEPT of 0x401000 succeeded although/);
  });

  it('a page the VMM added before launch is the guest\'s: validating it again is a double acceptance', () => {
    const j = judge([ev('launch-update', { gpa: 0x300000n, result: 'SUCCESS' }), pvalidate(0x300000n, true)]);
    expect(j.findings.map((f) => f.category)).toEqual(['double-acceptance']);
  });

  it('TDX: each page of a launch range (PAGE.ADD with `pages`) is the guest\'s, and none past it', () => {
    const added = ev('seamcall', { leaf: 'TDH_MEM_PAGE_ADD', rcx: 0x300000n, status: 0n, result: 'SUCCESS', pages: 3 });
    expect(judge([added, accept(0x302000n, 0)]).findings.map((f) => f.category)).toEqual(['double-acceptance']);
    expect(judge([added, accept(0x303000n, 0)]).verdict).toBe('benign');
  });

  it('TDX: a PAGE.ADD without `pages` (traces before schema 3) is one page', () => {
    const added = ev('seamcall', { leaf: 'TDH_MEM_PAGE_ADD', rcx: 0x300000n, status: 0n, result: 'SUCCESS' });
    expect(judge([added, accept(0x300000n, 0)]).findings.map((f) => f.category)).toEqual(['double-acceptance']);
    expect(judge([added, accept(0x301000n, 0)]).verdict).toBe('benign');
  });

  it('SNP: each page of a launch range (launch-update with `pages`) is the guest\'s, and none past it', () => {
    const range = ev('launch-update', { gpa: 0x300000n, result: 'SUCCESS', pages: 256 });
    expect(judge([range, pvalidate(0x3ff000n, true)]).findings.map((f) => f.category)).toEqual(['double-acceptance']);
    expect(judge([range, pvalidate(0x400000n, true)]).verdict).toBe('benign');
  });

  it('SNP: a rescind by the guest ends the lifetime; re-validation after the VMM un-validated it does not', () => {
    expect(judge([pvalidate(0x800000n, true), pvalidate(0x800000n, false), pvalidate(0x800000n, true)]).verdict).toBe('benign');
    expect(judge([pvalidate(0x800000n, true), ev('rmpupdate', { spa: 0x800000n }), pvalidate(0x800000n, true)]).verdict).toBe('finding');
  });

  it('an ALREADY_ACCEPTED or CF=1 result is a finding only when the guest carries on', () => {
    const tdx = [accept(0x400000n, 0), accept(0x400000n, 0, TDX_ALREADY_ACCEPTED)];
    expect(judge(tdx, fatal).verdict).toBe('detected');
    expect(judge(tdx, done).findings.map((f) => f.category)).toEqual(['double-acceptance']);
    const snp = [pvalidate(0x400000n, true), pvalidate(0x400000n, true, true)];
    expect(judge(snp, fatal).verdict).toBe('detected');
    // Out of budget: a finding only if the guest went on to more acceptance work after the refusal.
    const budget: RunOutcome = { outcome: 'budget', reason: 'instruction budget' };
    expect(judge([...snp, pvalidate(0x401000n, true)], budget).verdict).toBe('finding');
    expect(judge(snp, budget).verdict).toBe('benign');
  });

  it('a page-state change the VMM reported failed is a finding only when the hardware did not make it and the guest carries on', () => {
    const refused = (reached: boolean) => ev('state-change-refused', { gpa: 0x800000n, bytes: 0x1000n, to: 'shared', reached });
    const next = (point: string) => ev('exit-after-refusal', { point });
    const stopped: RunOutcome = { outcome: 'vmm-error', reason: 'the VMM stopped the guest' };
    expect(judge([refused(false)], fatal).verdict).toBe('detected');
    expect(judge([refused(false)], done).findings.map((f) => f.category)).toEqual(['unchecked-state-change']);
    // Its next exit after any output shows whether it went on (another conversion) or took its fatal path (the fatal report).
    expect(judge([refused(false), next('tdx.mapGpa')], stopped).findings.map((f) => f.category)).toEqual(['unchecked-state-change']);
    expect(judge([refused(false), next('tdx.reportFatalError')], stopped).verdict).toBe('benign');
    expect(judge([refused(false)], stopped).verdict).toBe('benign');
    // A fault counts only on the memory whose change was refused (the fatal path's console page is elsewhere).
    const fault = (gpa: bigint) => ev('exit-after-refusal', { point: 'tdx.onSharedEptViolation', gpa });
    expect(judge([refused(false), fault(0x800000n)], stopped).verdict).toBe('finding');
    expect(judge([refused(false), fault(0x203000n)], stopped).verdict).toBe('benign');
    // …but a guest that finishes after the unmade change carried on, whatever its next exit was.
    expect(judge([refused(false), fault(0x203000n)], done).findings.map((f) => f.category)).toEqual(['unchecked-state-change']);
    // The VMM said "failed" but did the work: the guest's view and the hardware agree.
    expect(judge([refused(true)], done).verdict).toBe('benign');
  });

  it('the guest\'s bitmap saying unaccepted for a page it accepted and still holds is a latent double acceptance', () => {
    const record = () => ({ unacceptedRanges: [{ start: 0x400000n, end: 0x600000n }] });
    const held: OracleContext = { hardwareAccepted: () => true, guestRecord: record };
    expect(judge([accept(0x400000n, 1)], done, held).findings).toMatchObject([{ category: 'latent-double-acceptance', gpa: 0x400000n, detail: expect.stringContaining('marks 0x400000 unaccepted') }]);
    // The VMM took the page away: denial of service, not a finding.
    expect(judge([accept(0x400000n, 1)], done, { hardwareAccepted: () => false, guestRecord: record }).verdict).toBe('benign');
    // A bitmap that agrees with what the guest accepted.
    expect(judge([accept(0x200000n, 1)], done, held).verdict).toBe('benign');
    // The VMM took the first such page away but the hardware still holds a later one: that one is the finding.
    const tookFirst: OracleContext = { hardwareAccepted: (gpa) => gpa !== 0x400000n, guestRecord: record };
    expect(judge([accept(0x400000n, 1)], done, tookFirst).findings).toMatchObject([{ category: 'latent-double-acceptance', gpa: 0x401000n }]);
  });

  it('a stage handed a record that calls a page it accepted unaccepted is a latent double acceptance, even if a later stage stops', () => {
    const handover = (heldButRecordedUnaccepted: { start: bigint; end: bigint }[], atSeq: number) => ({ stage: 'kernel' as const, seq: atSeq, heldButRecordedUnaccepted });
    const run = (before: TraceEvent[], ranges: { start: bigint; end: bigint }[], after: TraceEvent[] = []) => {
      const oracle = new AcceptanceOracle();
      for (const e of before) oracle.observe(e);
      const stage = ev('stage', {});
      oracle.observe(stage);
      oracle.handedOver(handover(ranges, stage.seq));
      for (const e of after) oracle.observe(e);
      return oracle.judge(fatal, nothingAccepted);
    };
    const j = run([accept(0x3400000n, 1)], [{ start: 0x3400000n, end: 0x3600000n }]);
    expect(j.verdict).toBe('finding');
    expect(j.findings).toMatchObject([{ category: 'latent-double-acceptance', gpa: 0x3400000n }]);
    expect(j.findings[0]!.detail).toMatch(/entered the kernel stage, .* marked 0x3400000 unaccepted/);
    // A page the launch added (the guest never accepted it), or one accepted only after the handover.
    expect(run([ev('launch-update', { gpa: 0x3400000n, result: 'SUCCESS' })], [{ start: 0x3400000n, end: 0x3401000n }]).verdict).toBe('detected');
    expect(run([], [{ start: 0x3400000n, end: 0x3600000n }], [accept(0x3400000n, 1)]).verdict).toBe('detected');
  });

  it('a budget run ending in the same page-state request again and again is a liveness finding; progress or other exits are not', () => {
    const retry = (key: string) => [ev('td-exit', { reason: 'tdvmcall' }), ev('guest-request', { key })];
    const stuck = Array.from({ length: LIVENESS_REQUEST_RUN }, () => retry('map-gpa 800000400000+200000')).flat();
    const budget: RunOutcome = { outcome: 'budget', reason: 'instruction budget exhausted' };
    expect(judge(stuck, budget).findings).toMatchObject([{ category: 'liveness', severity: 'low' }]);
    // Each retry resumes further on: progress.
    const moving = Array.from({ length: LIVENESS_REQUEST_RUN }, (_, i) => retry(`map-gpa ${i}+1000`)).flat();
    expect(judge(moving, budget).verdict).toBe('benign');
    // A guest halting for ever while the VMM keeps waking it is idle, not stuck.
    expect(judge([...stuck, ev('td-exit', { reason: 'tdvmcall' }), ev('td-exit', { reason: 'tdvmcall' })], budget).verdict).toBe('benign');
    expect(judge(stuck, done).verdict).toBe('benign');
  });

  it('an internal error is a minivisor bug, kept apart from guest findings', () => {
    const j = judge([], { outcome: 'vmm-error', reason: 'internal error: TypeError: x is undefined' });
    expect(j.findings).toMatchObject([{ category: 'minivisor-bug', severity: 'internal' }]);
    expect(judge([], { outcome: 'vmm-error', reason: 'the VMM stopped the guest at tdx.mapGpa (attack program)' }).verdict).toBe('benign');
  });

  it('only the guest stopping on its own fatal path is detected: a run the hardware, the emulator or the VMM ended is benign', () => {
    expect(judge([], fatal).verdict).toBe('detected');
    for (const outcome of ['terminated', 'fault', 'vmm-error', 'budget', 'done'] as const) {
      expect(judge([], { outcome, reason: 'r' }).verdict, outcome).toBe('benign');
    }
  });
});

describe('acceptance oracle: which hardware results begin or end a lifetime', () => {
  it('only a successful PVALIDATE begins one: FAIL_SIZEMISMATCH and FAIL_INPUT change no RMP entry (APM Vol. 3, PVALIDATE)', () => {
    const failed = (rc: number) => ev('pvalidate', { gpa: 0x400000n, validate: true, rc, cf: false, size: '2m' });
    expect(judge([failed(PVALIDATE_RC.FAIL_SIZEMISMATCH), pvalidate(0x400000n, true)]).verdict).toBe('benign');
    expect(judge([failed(PVALIDATE_RC.FAIL_INPUT), pvalidate(0x401000n, true)]).verdict).toBe('benign');
  });

  it('a 2M PVALIDATE begins the lifetime of all 512 pages, and no page past them', () => {
    const huge = pvalidate(0x400000n, true, false, '2m');
    expect(judge([huge, pvalidate(0x5ff000n, true)]).findings).toMatchObject([{ category: 'double-acceptance', gpa: 0x5ff000n }]);
    expect(judge([huge, pvalidate(0x600000n, true)]).verdict).toBe('benign');
  });

  it('a rescind that left the page unchanged (CF=1: it was not validated) does not end a lifetime', () => {
    // The VMM un-validated the page behind the guest's back; the guest's own rescind then finds
    // nothing to do, and its re-validation is still inside the lifetime it began.
    const events = [pvalidate(0x800000n, true), pvalidate(0x800000n, false, true), pvalidate(0x800000n, true)];
    expect(judge(events).findings.map((f) => f.category)).toEqual(['double-acceptance']);
  });

  it('a failed TDH.MEM.PAGE.ADD or SNP_LAUNCH_UPDATE gives the guest nothing', () => {
    const add = ev('seamcall', { leaf: 'TDH_MEM_PAGE_ADD', rcx: 0x300000n, status: TdxStatus.OPERAND_BUSY, result: 'OPERAND_BUSY' });
    expect(judge([add, accept(0x300000n, 0)]).verdict).toBe('benign');
    const update = ev('launch-update', { gpa: 0x300000n, result: 'INVALID_PARAM' });
    expect(judge([update, pvalidate(0x300000n, true)]).verdict).toBe('benign');
  });

  it('only TDX_PAGE_ALREADY_ACCEPTED is a refused accept: a busy or mismatched ACCEPT the guest retries is not', () => {
    // TDX_OPERAND_BUSY and TDX_PAGE_SIZE_MISMATCH (the 2M -> 4K fallback) are ordinary results
    // that the guest handles and goes on from (tdg_mem_page_accept.c; Linux try_accept_one).
    for (const status of [TdxStatus.OPERAND_BUSY, TdxStatus.PAGE_SIZE_MISMATCH | 1n]) {
      expect(judge([accept(0x400000n, 1, status), accept(0x400000n, 0)]).verdict).toBe('benign');
    }
  });

  it('the first finding of a category is kept, in trace order', () => {
    const j = judge([accept(0x400000n, 0), accept(0x400000n, 0), accept(0x800000n, 0), accept(0x800000n, 0)]);
    expect(j.findings).toMatchObject([{ category: 'double-acceptance', gpa: 0x400000n }]);
  });

  it('a refused accept the guest carried on after names the page in hex', () => {
    const j = judge([accept(0x400000n, 0), accept(0x400000n, 0, TDX_ALREADY_ACCEPTED)]);
    expect(j.findings[0]!.detail).toBe('TDG.MEM.PAGE.ACCEPT returned TDX_PAGE_ALREADY_ACCEPTED for 0x400000 and the guest carried on instead of stopping');
  });

  it('the first foreign read is the one reported', () => {
    const first = ev('foreign-read', { gpa: 0x401008n, rip: 0x1000n });
    const j = judge([first, ev('foreign-read', { gpa: 0x402000n, rip: 0x2000n })]);
    expect(j.findings).toMatchObject([{ category: 'foreign-content', gpa: 0x401008n, rip: 0x1000n, eventSeq: first.seq }]);
  });

  it('a guest whose own fatal reason reads like an internal error is not a minivisor bug (the reason is guest-chosen text)', () => {
    expect(judge([], { outcome: 'guest-fatal', reason: 'internal error: made up by the guest' }).verdict).toBe('detected');
    expect(judge([], { outcome: 'done', reason: 'hardware model: made up' }).verdict).toBe('benign');
  });
});

describe('acceptance oracle: what shows the guest carried on', () => {
  const refused = ev('state-change-refused', { gpa: 0x800000n, bytes: 0x1000n, to: 'shared', reached: false });
  const stopped: RunOutcome = { outcome: 'vmm-error', reason: 'the VMM stopped the guest' };

  it('a fault on the first byte past the refused range is not a use of it', () => {
    const fault = (gpa: bigint) => ev('exit-after-refusal', { point: 'snp.onNpf', gpa });
    expect(judge([refused, fault(0x800fffn)], stopped).verdict).toBe('finding');
    expect(judge([refused, fault(0x801000n)], stopped).verdict).toBe('benign');
  });

  it('another page-state request after an ALREADY_ACCEPTED is acceptance work: the guest carried on', () => {
    const budget: RunOutcome = { outcome: 'budget', reason: 'instruction budget' };
    const refusedAccept = [accept(0x400000n, 0), accept(0x400000n, 0, TDX_ALREADY_ACCEPTED)];
    expect(judge([...refusedAccept, ev('guest-request', { key: 'map-gpa 1000+1000' })], budget).findings.map((f) => f.category)).toEqual(['double-acceptance']);
  });

  it('TDX: only another TDG.MEM.PAGE.ACCEPT after an ALREADY_ACCEPTED is acceptance work, not any TDCALL', () => {
    // The budget run's verdict rests on the guest's acceptance work after the refusal: an accept
    // (of any page) is such work; a TDG.VP.VMCALL (console output, say) or VP.INFO is not.
    const budget: RunOutcome = { outcome: 'budget', reason: 'instruction budget' };
    const refusedAccept = [accept(0x400000n, 0), accept(0x400000n, 0, TDX_ALREADY_ACCEPTED)];
    expect(judge([...refusedAccept, accept(0x401000n, 0)], budget).findings.map((f) => f.category)).toEqual(['double-acceptance']);
    for (const leaf of ['VP_VMCALL', 'VP_INFO']) {
      expect(judge([...refusedAccept, ev('tdcall', { leaf, rcx: 0n, status: TDX_SUCCESS })], budget).verdict).toBe('benign');
    }
    // An event of another kind that names the accept leaf is not a TDCALL.
    expect(judge([...refusedAccept, ev('td-exit', { leaf: 'MEM_PAGE_ACCEPT' })], budget).verdict).toBe('benign');
  });

  it('a later refusal is judged by its own first exit, after an earlier one was judged by its own', () => {
    const refusedAt = (gpa: bigint) => ev('state-change-refused', { gpa, bytes: 0x1000n, to: 'shared', reached: false });
    const exitAfter = (point: string, gpa?: bigint) => ev('exit-after-refusal', gpa === undefined ? { point } : { point, gpa });
    // The first refusal: a fault elsewhere (no evidence); the second: another page-state request (carried on).
    const events = [refusedAt(0x800000n), exitAfter('snp.onNpf', 0x900000n), refusedAt(0xa00000n), exitAfter('snp.ghcb.psc')];
    expect(judge(events, stopped).findings).toMatchObject([{ category: 'unchecked-state-change', gpa: 0xa00000n, detail: expect.stringContaining('converting 0xa00000+0x1000 to shared failed') }]);
    expect(judge(events.slice(0, 3), stopped).verdict).toBe('benign');
  });

  it('TDCALLs other than ACCEPT start no page lifetime, whatever their RCX and status', () => {
    // TDG.VP.VMCALL with RCX = a GPA-looking value, twice with status 0: not two accepts of it.
    const vmcall = ev('tdcall', { leaf: 'VP_VMCALL', rcx: 0x400000n, status: TDX_SUCCESS });
    expect(judge([vmcall, { ...vmcall, seq: seq++ }, accept(0x400000n, 0)], done).verdict).toBe('benign');
  });

  it('a nested page fault between two identical page-state requests breaks the run: the guest did something else', () => {
    const budget: RunOutcome = { outcome: 'budget', reason: 'instruction budget exhausted' };
    const retry = [ev('vmgexit', { reason: 'psc' }), ev('guest-request', { key: 'psc 800000+1000' })];
    const stuck = Array.from({ length: LIVENESS_REQUEST_RUN }, () => retry).flat();
    expect(judge(stuck, budget).findings.map((f) => f.category)).toEqual(['liveness']);
    const half = LIVENESS_REQUEST_RUN / 2;
    const interrupted = [...stuck.slice(0, 2 * half), ev('npf', { gpa: 0x900000n }), ev('npf', { gpa: 0x900000n }), ...stuck.slice(0, 2 * half)];
    expect(judge(interrupted, budget).verdict).toBe('benign');
  });
});

describe('acceptance oracle: edges of the evidence', () => {
  const stopped: RunOutcome = { outcome: 'vmm-error', reason: 'the VMM stopped the guest' };
  const refused = () => ev('state-change-refused', { gpa: 0x800000n, bytes: 0x1000n, to: 'shared', reached: false });
  const next = (point: string) => ev('exit-after-refusal', { point });

  // "The guest's first exit after an unmade change ... shows whether it went on" (oracle.ts): a
  // later exit does not overturn it, either way.
  it('only the first exit after a refusal decides whether the guest carried on', () => {
    expect(judge([refused(), next('tdx.reportFatalError'), next('tdx.mapGpa')], stopped).verdict).toBe('benign');
    expect(judge([refused(), next('tdx.mapGpa'), next('tdx.reportFatalError')], stopped).findings.map((f) => f.category)).toEqual(['unchecked-state-change']);
  });

  it('a foreign read recorded without a RIP is reported without one', () => {
    const j = judge([ev('foreign-read', { gpa: 0x401008n })]);
    expect(j.findings).toHaveLength(1);
    expect(j.findings[0]!.rip).toBeUndefined();
    expect(j.findings[0]!.detail).toMatch(/^the guest read 0x401008, private content/);
    const withRip = judge([ev('foreign-read', { gpa: 0x401008n, rip: 0x1234n })]);
    expect(withRip.findings[0]!.detail).toMatch(/^the guest read 0x401008 at RIP 0x1234, private content/);
  });

  // The guest's record lives in guest memory, which the guest (or a hostile VMM) can make
  // unreadable: that is no evidence of a latent double acceptance, and never an oracle crash.
  it('an unreadable guest record gives no latent-double-acceptance finding', () => {
    const unreadable: OracleContext = { hardwareAccepted: () => true, guestRecord: () => { throw new RangeError('bitmap outside guest RAM'); } };
    expect(judge([accept(0x400000n, 1)], done, unreadable)).toMatchObject({ verdict: 'benign', findings: [] });
  });
});

describe('acceptance oracle: memory asked back as private', () => {
  const held: OracleContext = { hardwareAccepted: () => true, guestRecord: () => undefined };
  const reclaimed = () => [
    accept(0x400000n, 1),
    ev('guest-release', { gpa: 0x400000n, bytes: 0x200000n }),
    ev('guest-reclaim', { gpa: 0x400000n, bytes: 0x200000n }),
  ];
  it('unread, it is only a latent risk: the guest finished without accepting it while the hardware kept it mapped', () => {
    const events = reclaimed();
    expect(judge(events, done, held).findings).toMatchObject([{ category: 'latent-foreign-content', severity: 'medium', gpa: 0x400000n, detail: expect.stringContaining('asked for 0x400000 back as private') }]);
    // Accepting it again (the zeroes of its own accept) is the honest path.
    expect(judge([...events, accept(0x400000n, 1)], done, held).verdict).toBe('benign');
    // The hardware does not hold it accepted: the guest cannot use it without faulting.
    expect(judge(events, done, nothingAccepted).verdict).toBe('benign');
    // Only a later page of it still mapped private: that page is the finding.
    const lastOnly: OracleContext = { hardwareAccepted: (gpa) => gpa === 0x5ff000n, guestRecord: () => undefined };
    expect(judge(events, done, lastOnly).findings).toMatchObject([{ category: 'latent-foreign-content', gpa: 0x5ff000n }]);
  });

  it('read, as the hardware\'s content watch saw, it is foreign content, with the read\'s GPA, RIP and event', () => {
    const read = ev('foreign-read', { gpa: 0x401008n, rip: 0x1234n, instruction: 99n });
    const j = judge([...reclaimed(), read], done, held);
    expect(j.verdict).toBe('finding');
    // The latent form of the same bug adds nothing once the read is seen.
    expect(j.findings).toEqual([expect.objectContaining({ category: 'foreign-content', severity: 'high', gpa: 0x401008n, rip: 0x1234n, eventSeq: read.seq })]);
    // Whatever the end state: the read is what counts.
    expect(judge([read], done, nothingAccepted).findings).toMatchObject([{ category: 'foreign-content', gpa: 0x401008n }]);
    // A guest that read it and then stopped on its fatal path noticed (its own check read it).
    expect(judge([read], fatal, held).verdict).toBe('detected');
    // A run cut short after the read (budget, denial of service) still used it.
    expect(judge([read], { outcome: 'budget', reason: 'instruction budget' }).findings).toMatchObject([{ category: 'foreign-content' }]);
  });
});

describe('lifetime map clones', () => {
  const pages = (m: LifetimeMap) => [...m.all()].map((g) => g.toString(16)).join(',');

  it('list every marked page, and the guest\'s own within a range, in address order across regions', () => {
    const m = new LifetimeMap();
    m.set(0x1ff000n, 0x3000n, true);
    m.set(0x200000n, 0x1000n, true, 'launch');
    m.set(0x5000n, 0x1000n, true, 'launch');
    m.set(0x1000n, 0x1000n, true);
    expect(pages(m)).toBe('1000,5000,1ff000,200000,201000');
    const marked = (gpa: bigint, bytes: bigint) => [...m.marked(gpa, bytes)].map((g) => g.toString(16)).join(',');
    expect(marked(0n, 0x400000n)).toBe('1000,1ff000,201000');
    expect(marked(0x2000n, 0x1fe000n)).toBe('1ff000');
    expect(marked(0x200000n, 0x1000n)).toBe('');
  });

  it('hold nothing for a page never marked, whether or not its 2 MiB region holds others', () => {
    const m = new LifetimeMap();
    expect([m.has(0x1000n), m.has(0x7fff_ffff_f000n)]).toEqual([false, false]);
    m.set(0x1000n, 0x1000n, true);
    expect([m.has(0x1000n), m.has(0x2000n), m.has(0x200000n)]).toEqual([true, false, false]);
  });

  it('report the first page already marked when marking, never when unmarking', () => {
    const m = new LifetimeMap();
    expect(m.set(0x1000n, 0x3000n, true)).toBeUndefined();
    expect(m.set(0x3000n, 0x2000n, true)).toBe(0x3000n);
    expect(m.set(0x1000n, 0x4000n, false)).toBeUndefined();
    expect([m.has(0x1000n), m.has(0x4000n)]).toEqual([false, false]);
  });

  it('are independent of their original and of each other, whichever changes first', () => {
    const prefix = new LifetimeMap();
    prefix.set(0x1000n, 0x2000n, true);
    prefix.set(0x400000n, 0x1000n, true, 'launch');
    const before = pages(prefix);
    const a = prefix.clone();
    const b = prefix.clone();
    expect(a.set(0x2000n, 0x1000n, true)).toBe(0x2000n); // already marked: shared data is read
    a.set(0x1000n, 0x1000n, false);
    b.set(0x401000n, 0x1000n, true);
    b.set(0x600000n, 0x1000n, true); // a region nobody had
    expect(pages(prefix)).toBe(before);
    expect(pages(a)).toBe('2000,400000');
    expect(pages(b)).toBe('1000,2000,400000,401000,600000');
    // The original changing after cloning changes no clone.
    prefix.set(0x2000n, 0x1000n, false);
    expect(pages(a)).toBe('2000,400000');
    expect(pages(b)).toBe('1000,2000,400000,401000,600000');
    expect(a.has(0x2000n) && !prefix.has(0x2000n)).toBe(true);
    // A clone of a clone, and the first clone changing afterwards.
    const c = a.clone();
    a.set(0x400000n, 0x1000n, false);
    expect(pages(c)).toBe('2000,400000');
    expect(pages(a)).toBe('2000');
    // …and the clone of a clone changing: regions its original had changed are shared, not handed over.
    c.set(0x2000n, 0x1000n, false);
    c.set(0x3000n, 0x1000n, true);
    expect(pages(c)).toBe('3000,400000');
    expect(pages(a)).toBe('2000');
    // Unmarking pages nobody marked is a no-op, wherever they are.
    c.set(0x10000000n, 0x200000n, false);
    expect(pages(c)).toBe('3000,400000');
  });

  it('list the pages of every clone right when clones of one prefix empty or fill shared regions in turn', () => {
    // What a fuzz executor does: every execution's oracle clones the same prefix and lists its
    // pages at the end, after unmarking some of the prefix's regions and marking others.
    const prefix = new LifetimeMap();
    prefix.set(0x200000n, 0x200000n, false);
    prefix.set(0x600000n, 0x1000n, true);
    prefix.set(0x600000n, 0x1000n, false); // a region of the prefix's with nothing marked
    prefix.set(0xa00000n, 0x2000n, true);
    prefix.clone(); // the prefix's regions are shared from here on
    for (let run = 0; run < 3; run++) {
      const m = prefix.clone();
      expect(pages(m)).toBe('a00000,a01000');
      if (run === 1) m.set(0xa00000n, 0x2000n, false);
      if (run === 2) m.set(0x600000n, 0x1000n, true);
      expect(pages(m)).toBe(['a00000,a01000', '', '600000,a00000,a01000'][run]);
      // Its own regions, listed and then changed, are listed as changed.
      m.set(0xa01000n, 0x1000n, run !== 1);
      m.set(0xa00000n, 0x1000n, run === 1);
      m.set(0x600000n, 0x1000n, run !== 2);
      expect(pages(m)).toBe(['600000,a01000', '600000,a00000', 'a01000'][run]);
      // A clone of the clone lists the same (its regions shared now), and changing it changes neither.
      const again = m.clone();
      expect(pages(again)).toBe(pages(m));
      again.set(0x601000n, 0x1000n, true);
      expect(pages(again)).toBe(['600000,601000,a01000', '600000,601000,a00000', '601000,a01000'][run]);
      expect(pages(m)).toBe(['600000,a01000', '600000,a00000', 'a01000'][run]);
    }
    expect(pages(prefix)).toBe('a00000,a01000');
  });
});

describe('oracle forks', () => {
  const held: OracleContext = { hardwareAccepted: () => true, guestRecord: () => undefined };
  const stopped: RunOutcome = { outcome: 'vmm-error', reason: 'the VMM stopped the guest' };
  const request = () => [ev('td-exit', {}), ev('guest-request', { key: 'map-gpa a00000+1000' })];
  /** A prefix that leaves state of every kind pending: a lifetime, a refused accept and change, a reclaim, a request run. */
  const prefix = () => [
    accept(0x400000n, 1),
    accept(0x600000n, 0, TDX_ALREADY_ACCEPTED),
    ev('state-change-refused', { gpa: 0x800000n, bytes: 0x1000n, to: 'shared', reached: false }),
    ev('guest-release', { gpa: 0xa00000n, bytes: 0x1000n }),
    ev('guest-reclaim', { gpa: 0xa00000n, bytes: 0x1000n }),
    ...request(),
  ];
  const run = () => [...prefix(), ...Array.from({ length: LIVENESS_REQUEST_RUN - 2 }, request).flat()];
  /** The same with a finding already made, a foreign read seen, a request run one short of a livelock (and cut by an exit). */
  const prefixes = () => [
    prefix(),
    [...prefix(), accept(0x401000n, 0)],
    [...prefix(), ev('foreign-read', { gpa: 0xa00010n, rip: 0x1000n })],
    run(),
    [...run(), ev('td-exit', {})],
  ];
  /** Continuations that each resolve a different piece of that state. */
  const continuations = () => [
    [accept(0x401000n, 0)],
    [ev('exit-after-refusal', { point: 'tdx.mapGpa' })],
    [ev('foreign-read', { gpa: 0xa00010n, rip: 0x1000n })],
    [accept(0xa00000n, 0), pvalidate(0xc00000n, true)],
    request(),
    [],
  ];

  it('judge a continuation exactly as one oracle that observed the prefix and the continuation, and leave the original as it was', () => {
    const budget: RunOutcome = { outcome: 'budget', reason: 'instruction budget' };
    const categories = new Set<string>();
    for (const head of prefixes()) {
      const observed = new AcceptanceOracle();
      for (const e of head) observed.observe(e);
      for (const rest of continuations()) {
        for (const outcome of [done, stopped, fatal, budget]) {
          const whole = new AcceptanceOracle();
          for (const e of [...head, ...rest]) whole.observe(e);
          const fork = observed.fork();
          for (const e of rest) fork.observe(e);
          const expected = whole.judge(outcome, held);
          expect(fork.judge(outcome, held)).toEqual(expected);
          for (const f of expected.findings) categories.add(f.category);
        }
      }
      // Forks observed and judged did not change the oracle they came from.
      const fresh = new AcceptanceOracle();
      for (const e of head) fresh.observe(e);
      expect(observed.fork().judge(stopped, held)).toEqual(fresh.judge(stopped, held));
      expect([...observed.lifetimes.all()]).toEqual([...fresh.lifetimes.all()]);
    }
    // The cases reach every kind of state the fork carries.
    expect([...categories].sort()).toEqual(['double-acceptance', 'foreign-content', 'latent-foreign-content', 'liveness', 'unchecked-state-change']);
  });
});
