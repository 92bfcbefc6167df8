// What the mutator (src/fuzz/mutate.ts) puts into mutants, over many draws: new decisions aimed at
// what the parent's execution reached, answers and host actions with the values the specs give
// (GHCI statuses, GHCB fields on the points that have them, page-aligned addresses of the size
// an operation works on), and the structural changes (delete, change, splice, launch part kept).
// Tactic insertions (tactics.ts) are mixed in; where a property is only the random insertion's,
// the test looks at kinds or points no tactic produces.
import { describe, expect, it } from 'vitest';
import { callPointsFor, type AttackPlatform, type AttackProgram, type CallPoint, type Decision, type HostAction } from '../../../src/fuzz/attack-program.js';
import { mutate, type ExecutionProfile } from '../../../src/fuzz/mutate.js';
import { Prng } from '../../../src/shared/prng.js';

const PAGE = 0x1000n;
const TWO_MB = 0x200000n;
const RAM = 256n << 20n;
const WORKED = [0x100000n, 0x4000000n];
/** Points the parent never reached; the others it reached 1 to 3 times. */
const UNREACHED = new Set<CallPoint>(['tdx.otherVmcall', 'tdx.onSharedEptViolation', 'snp.msr.other', 'snp.onHlt']);
function profileFor(platform: AttackPlatform): ExecutionProfile {
  return { callCounts: new Map(callPointsFor(platform).map((point, i) => [point, UNREACHED.has(point) ? 0 : 1 + (i % 3)])), vmmExits: 30, gpas: WORKED, memoryBytes: RAM };
}
/** Points some tactic answers at (tactics.ts); the others' answers are the random ones only. */
const TACTIC_POINTS = new Set<CallPoint>(['tdx.mapGpa', 'tdx.onAcceptViolation', 'snp.ghcb.psc', 'snp.msr.psc', 'snp.msr.registerGhcb', 'snp.onNpf']);
/** GHCI 1.5 Table 3-1: SUCCESS, RETRY, INVALID_OPERAND, GPA_INUSE, ALIGN_ERROR. */
const MAP_GPA_STATUSES = [0n, 1n, 0x8000000000000000n, 0x8000000000000001n, 0x8000000000000002n];

type Call = Extract<Decision, { at: 'call' }>;
type Exit = Extract<Decision, { at: 'exit' }>;
const calls = (ps: AttackProgram[]): Call[] => ps.flatMap((p) => p.decisions.filter((d): d is Call => d.at === 'call'));
const actions = (ps: AttackProgram[]): HostAction[] => ps.flatMap((p) => p.decisions.filter((d): d is Exit => d.at === 'exit').map((d) => d.action));
const ofKind = <K extends HostAction['kind']>(as: HostAction[], kind: K) => as.filter((a): a is Extract<HostAction, { kind: K }> => a.kind === kind);
const aligned = (x: bigint, to: bigint) => x % to === 0n;

/** Mutants of the empty program: a first insertion (a random decision or a tactic), then up to three more mutations. */
function inserted(platform: AttackPlatform, n = 4000): AttackProgram[] {
  const rng = new Prng(platform === 'tdx' ? 17n : 18n);
  const profile = profileFor(platform);
  return Array.from({ length: n }, () => mutate(rng, { platform, decisions: [] }, profile));
}
const TDX = inserted('tdx');
const SNP = inserted('snp');

describe('decisions the mutator inserts', () => {
  it.each([['tdx', TDX], ['snp', SNP]] as const)('%s: calls aimed at points the parent reached, mostly at a call it made, sometimes the next one', (platform, mutants) => {
    const counts = profileFor(platform).callCounts;
    const all = calls(mutants);
    expect(all.every((d) => counts.get(d.point)! > 0)).toBe(true);
    // A later change may move an occurrence by 1 or 8; most are still where they were aimed.
    expect(all.filter((d) => d.occurrence < counts.get(d.point)!).length).toBeGreaterThan(all.length * 0.7);
    // The next call (one the guest makes only if it retries): about one aim in eight, at points no tactic aims at.
    const atThree = all.filter((d) => counts.get(d.point) === 3 && !TACTIC_POINTS.has(d.point));
    expect(atThree.filter((d) => d.occurrence === 3).length / atThree.length).toBeGreaterThan(0.05);
    expect(new Set(all.map((d) => d.point)).size).toBe(callPointsFor(platform).length - [...UNREACHED].filter((p) => counts.has(p)).length);
  });

  it.each([['tdx', TDX], ['snp', SNP]] as const)('%s: answers are lies, stopping the guest about one time in sixteen, sometimes repeated', (_, mutants) => {
    const random = calls(mutants).filter((d) => !TACTIC_POINTS.has(d.point));
    expect(random.length).toBeGreaterThan(500);
    expect(random.some((d) => d.answer.kind === 'honest')).toBe(false);
    const stops = random.filter((d) => d.answer.kind === 'stop').length / random.length;
    expect(stops).toBeGreaterThan(0.03);
    expect(stops).toBeLessThan(0.12);
    // One in six repeated: 4, 64 or "for ever" times.
    const repeated = random.filter((d) => d.repeat !== undefined);
    expect(repeated.length / random.length).toBeGreaterThan(0.1);
    expect(repeated.length / random.length).toBeLessThan(0.25);
    for (const times of [4, 64, 1_000_000]) expect(repeated.some((d) => d.repeat === times)).toBe(true);
  });

  it('SNP: a GHCB registration is refused about as often as it is answered with another GFN, near or far', () => {
    const registrations = calls(SNP).map((d) => d.answer).filter((a) => a.kind === 'ghcb-registration');
    expect(registrations.length).toBeGreaterThan(100);
    const refused = registrations.filter((a) => a.response === 'refuse').length / registrations.length;
    expect(refused).toBeGreaterThan(0.35);
    expect(refused).toBeLessThan(0.65);
    // The next or previous page, 2 MiB either way, 4 GiB on (in pages).
    expect(new Set(registrations.map((a) => a.gfnDelta).filter((d) => d !== undefined))).toEqual(new Set([1n, -1n, 0x200n, -0x200n, 1n << 20n]));
  });

  it('TDX: VMCALL returns with a status in R10, sometimes R11; MapGPA answers with GHCI statuses', () => {
    const answers = calls(TDX).map((d) => d.answer);
    const returns = answers.filter((a) => a.kind === 'vmcall-return');
    expect(returns.every((a) => a.regs.r10 !== undefined)).toBe(true);
    expect(returns.some((a) => a.regs.r11 !== undefined) && returns.some((a) => a.regs.r11 === undefined)).toBe(true);
    expect(new Set(returns.map((a) => a.effect))).toEqual(new Set(['honest', 'none']));
    const mapGpa = answers.filter((a) => a.kind === 'map-gpa');
    expect(mapGpa.every((a) => MAP_GPA_STATUSES.includes(a.status))).toBe(true);
    // Conversions of one page or one 2M page are the random answer's (tactics convert none or all).
    const partial = mapGpa.filter((a) => a.convertBytes === PAGE || a.convertBytes === TWO_MB);
    expect(partial.length).toBeGreaterThan(20);
    expect(partial.some((a) => a.resumeDelta !== undefined) && partial.some((a) => a.resumeDelta === undefined)).toBe(true);
    expect(partial.some((a) => a.resumeDelta !== undefined && a.resumeDelta !== 0n)).toBe(true);
    // The random answer reports such a conversion as done, to be retried, or failed (GHCI 1.5 Table 3-1: INVALID_OPERAND).
    expect(new Set(partial.map((a) => a.status))).toEqual(new Set([0n, 1n, 0x8000000000000000n]));
    const sharedOnly = partial.filter((a) => a.sharedEptOnly).length / partial.length;
    expect(sharedOnly).toBeGreaterThan(0.1);
    expect(sharedOnly).toBeLessThan(0.45);
  });

  it('TDX: an EPT answer that AUGs another page names a non-zero delta, either way; the others name none', () => {
    const ept = calls(TDX).map((d) => d.answer).filter((a) => a.kind === 'ept');
    const other = ept.filter((a) => a.action === 'aug-other');
    expect(other.length).toBeGreaterThan(5);
    expect(other.every((a) => a.otherDelta !== undefined && a.otherDelta !== 0n)).toBe(true);
    // The neighbouring 4K page or 2M page on either side, or an address 16 bytes off (not page-aligned).
    expect(new Set(other.map((a) => a.otherDelta))).toEqual(new Set([PAGE, -PAGE, TWO_MB, -TWO_MB, 0x10n]));
    expect(ept.filter((a) => a.action !== 'aug-other').every((a) => a.otherDelta === undefined)).toBe(true);
  });

  it('SNP: VMGEXIT answers set the fields the point has: an MSR response on MSR-protocol points, GHCB fields, PSC headers and IOIO data only on theirs', () => {
    const byPoint = (pred: (p: CallPoint) => boolean) => calls(SNP).filter((d) => pred(d.point)).map((d) => d.answer).filter((a) => a.kind === 'vmgexit');
    const msrPoints = byPoint((p) => p.startsWith('snp.msr') && !TACTIC_POINTS.has(p));
    expect(msrPoints.length).toBeGreaterThan(50);
    expect(msrPoints.every((a) => a.msr !== undefined)).toBe(true);
    expect(msrPoints.some((a) => a.ghcb !== undefined || a.pscHeader !== undefined)).toBe(false);
    const ghcbPoints = byPoint((p) => p.startsWith('snp.ghcb') && !TACTIC_POINTS.has(p));
    expect(ghcbPoints.some((a) => a.msr !== undefined) && ghcbPoints.some((a) => a.msr === undefined)).toBe(true);
    expect(ghcbPoints.some((a) => a.ghcb?.swExitInfo1 !== undefined) && ghcbPoints.some((a) => a.ghcb?.swExitInfo2 !== undefined)).toBe(true);
    expect(ghcbPoints.some((a) => a.pscHeader !== undefined)).toBe(false);
    const ioio = byPoint((p) => p === 'snp.ghcb.ioio');
    expect(ioio.some((a) => a.ghcb?.rax !== undefined)).toBe(true);
    expect(byPoint((p) => p !== 'snp.ghcb.ioio').some((a) => a.ghcb?.rax !== undefined)).toBe(false);
    // An IOIO exit is a GHCB exit too: its answer may set SW_EXITINFO1/2 instead of the data.
    expect(ioio.some((a) => a.ghcb?.swExitInfo1 !== undefined || a.ghcb?.swExitInfo2 !== undefined)).toBe(true);
    const psc = byPoint((p) => p === 'snp.ghcb.psc');
    expect(psc.some((a) => a.pscHeader?.curEntry !== undefined) && psc.some((a) => a.pscHeader?.endEntry !== undefined)).toBe(true);
    expect(new Set(calls(SNP).map((d) => d.answer.kind))).toEqual(new Set(['vmgexit', 'ghcb-registration', 'npf', 'resume', 'stop']));
    // One protocol's fields per answer: an MSR response, or GHCB fields, or a PSC header.
    const all = byPoint(() => true);
    expect(all.every((a) => [a.msr, a.ghcb, a.pscHeader].filter((f) => f !== undefined).length <= 1)).toBe(true);
    expect(ghcbPoints.some((a) => a.msr === undefined && a.ghcb === undefined)).toBe(true);
  });
});

describe('host actions the mutator inserts at exits', () => {
  it.each([['tdx', TDX], ['snp', SNP]] as const)('%s: at exits the parent made, spread over them', (_, mutants) => {
    const exits = mutants.flatMap((p) => p.decisions.filter((d): d is Exit => d.at === 'exit'));
    expect(exits.every((d) => d.exitIndex >= 0)).toBe(true);
    // Kinds no tactic makes: the random insertion's own aim (a later change may move it by 1 or 16).
    const random = exits.filter((d) => ['tdx.seamcall', 'tdx.shared-ept', 'shared-write', 'snp.rmpupdate', 'snp.psmash', 'snp.npt-page-size'].includes(d.action.kind));
    expect(random.filter((d) => d.exitIndex < 30).length).toBeGreaterThan(random.length * 0.7);
    expect(new Set(random.filter((d) => d.exitIndex < 30).map((d) => d.exitIndex)).size).toBe(30);
  });

  it('a parent that made one exit gets its random host actions at that exit (a later change may move one)', () => {
    const rng = new Prng(6n);
    const profile = { ...profileFor('tdx'), vmmExits: 1 };
    const random = Array.from({ length: 3000 }, () => mutate(rng, { platform: 'tdx', decisions: [] }, profile))
      .flatMap((p) => p.decisions.filter((d): d is Exit => d.at === 'exit' && ['tdx.seamcall', 'tdx.shared-ept', 'shared-write'].includes(d.action.kind)));
    expect(random.length).toBeGreaterThan(200);
    expect(random.filter((d) => d.exitIndex === 0).length).toBeGreaterThan(random.length * 0.85);
  });

  it('a parent that made no exit gets calls, not random host actions (exit tactics still strike at its first exit)', () => {
    const rng = new Prng(5n);
    const profile = { ...profileFor('snp'), vmmExits: 0 };
    const ms = Array.from({ length: 2000 }, () => mutate(rng, { platform: 'snp', decisions: [] }, profile));
    const decisions = ms.flatMap((p) => p.decisions);
    // Only a later change of a tactic's exit decision gives one a random host action.
    const randomActions = decisions.filter((d) => d.at === 'exit' && ['snp.rmpupdate', 'snp.psmash', 'snp.npt-page-size', 'shared-write'].includes(d.action.kind));
    expect(randomActions.length / decisions.length).toBeLessThan(0.04);
    expect(calls(ms).length).toBeGreaterThan(decisions.length / 2);
  });

  it('TDX: SEAMCALLs on addresses aligned to their level (4K, 2M, 1G), interrupts at external vectors', () => {
    const seamcalls = ofKind(actions(TDX), 'tdx.seamcall');
    const size = [PAGE, TWO_MB, 1n << 30n];
    expect(seamcalls.every((a) => aligned(a.gpa, size[a.level]!))).toBe(true);
    expect(new Set(seamcalls.map((a) => a.level))).toEqual(new Set([0, 1, 2]));
    expect(seamcalls.some((a) => a.level === 1 && !aligned(a.gpa, 1n << 30n))).toBe(true);
    const injects = ofKind(actions(TDX), 'inject');
    expect(injects.length).toBeGreaterThan(20);
    expect(injects.every((a) => a.vector >= 32 && a.vector <= 255 && a.errorCode === undefined)).toBe(true);
    const sharedEpt = ofKind(actions(TDX), 'tdx.shared-ept');
    expect(sharedEpt.every((a) => aligned(a.gpa, PAGE))).toBe(true);
  });

  it('SNP: RMPUPDATE, PSMASH and NPT changes on addresses of their page size; #VC with a #VC error code, other vectors without', () => {
    const updates = ofKind(actions(SNP), 'snp.rmpupdate');
    expect(updates.every((a) => aligned(a.spa, a.pageSize === '2m' ? TWO_MB : PAGE))).toBe(true);
    expect(updates.some((a) => a.pageSize === '2m') && updates.some((a) => a.pageSize === '4k' && !aligned(a.spa, TWO_MB))).toBe(true);
    expect(updates.filter((a) => a.gpa === a.spa).length).toBeGreaterThan(updates.length / 2);
    expect(updates.some((a) => a.gpa !== a.spa)).toBe(true);
    expect(ofKind(actions(SNP), 'snp.psmash').every((a) => aligned(a.spa, TWO_MB))).toBe(true);
    expect(ofKind(actions(SNP), 'snp.npt-page-size').every((a) => aligned(a.gpa, TWO_MB))).toBe(true);
    const injects = ofKind(actions(SNP), 'inject');
    // #VC (29) error codes: 0x404 (#VC with no cause), 0x7b IOIO, 0x72 CPUID, 0x400 NPF (GHCB spec Table 7 / APM SW_EXITCODE).
    expect(injects.filter((a) => a.vector === 29).every((a) => [0x404n, 0x7bn, 0x72n, 0x400n].includes(a.errorCode!))).toBe(true);
    expect(injects.filter((a) => a.vector !== 29).every((a) => a.errorCode === undefined)).toBe(true);
    expect([13, 14, 29].every((v) => injects.some((a) => a.vector === v))).toBe(true);
  });

  it('TDX: an interrupt posted in a 2M ACCEPT becomes pending after 1 to 511 of its 512 4K chunks, never before the first or after the last', () => {
    // A parent that reached no decision point: every random decision is a host action at an exit.
    const rng = new Prng(19n);
    const profile = { ...profileFor('tdx'), callCounts: new Map<CallPoint, number>() };
    const posts = ofKind(actions(Array.from({ length: 12000 }, () => mutate(rng, { platform: 'tdx', decisions: [] }, profile))), 'tdx.post-interrupt');
    expect(posts.length).toBeGreaterThan(2000);
    expect(posts.every((a) => a.afterChunks >= 1 && a.afterChunks <= 511)).toBe(true);
    expect(posts.some((a) => a.afterChunks === 1) && posts.some((a) => a.afterChunks === 511)).toBe(true);
  });

  it('shared writes of 1, 2, 4 or 8 bytes at an address aligned to their size, with a value that fits', () => {
    const writes = [...ofKind(actions(TDX), 'shared-write'), ...ofKind(actions(SNP), 'shared-write')];
    expect(new Set(writes.map((a) => a.size))).toEqual(new Set([1, 2, 4, 8]));
    expect(writes.every((a) => aligned(a.gpa, BigInt(a.size)) && a.value < 1n << BigInt(8 * a.size))).toBe(true);
    expect(writes.some((a) => a.size === 8 && a.value >= 1n << 32n)).toBe(true);
  });

  it('aims mostly at the pages the parent worked on and the ones after them, sometimes anywhere in RAM', () => {
    const gpas = [...ofKind(actions(TDX), 'tdx.seamcall').filter((a) => a.level === 0).map((a) => a.gpa), ...ofKind(actions(SNP), 'snp.psmash').map((a) => a.spa)];
    const near = (g: bigint) => WORKED.some((w) => g >= w - (w % TWO_MB) && g < w + 16n * PAGE);
    const worked4k = ofKind(actions(TDX), 'tdx.seamcall').filter((a) => a.level === 0).map((a) => a.gpa);
    expect(worked4k.some((g) => WORKED.includes(g))).toBe(true);
    expect(worked4k.some((g) => WORKED.some((w) => g > w && g < w + 16n * PAGE))).toBe(true);
    expect(gpas.filter(near).length).toBeGreaterThan(gpas.length / 2);
    expect(gpas.some((g) => !near(g))).toBe(true);
    expect(gpas.every((g) => g >= 0n && g < RAM)).toBe(true);
  });
});

describe('structural mutations', () => {
  const profile = profileFor('tdx');
  const call = (occurrence: number, repeat?: number, point: CallPoint = 'tdx.instructionIo'): Call => ({ at: 'call', point, occurrence, answer: { kind: 'vmcall-return', effect: 'none', regs: { r10: 0n } }, ...(repeat ? { repeat } : {}) });
  const exit = (exitIndex: number, vector = 40): Exit => ({ at: 'exit', exitIndex, action: { kind: 'inject', vector } });
  /** The decisions the change test follows are alone on their point or vector. */
  const parent: AttackProgram = {
    platform: 'tdx', decisions: [call(20, undefined, 'tdx.getTdVmCallInfo'), exit(20), call(5, 64, 'tdx.reportFatalError'), exit(3, 41), call(7), call(8), call(9), call(10), call(11), call(12)],
    launch: [{ kind: 'tdx.page-add', gpa: 0x9000n, fill: 0 }, { kind: 'tdx.page-add', gpa: 0xa000n, fill: 0 }], memoryDescription: { memoryBytes: RAM },
  };
  const mutants = (n: number, other?: AttackProgram, keepLaunch = false) => {
    const rng = new Prng(23n);
    return Array.from({ length: n }, () => mutate(rng, parent, profile, other, { keepLaunch }));
  };

  it('stacks one to four mutations: a TDX program with no decisions gets up to four (each insertion adds one), every count from one', () => {
    const rng = new Prng(29n);
    const counts = new Set(Array.from({ length: 1000 }, () => mutate(rng, { platform: 'tdx', decisions: [] }, profile).decisions.length));
    expect([...counts].every((n) => n <= 4)).toBe(true);
    for (const n of [1, 2, 3, 4]) expect(counts).toContain(n);
  });

  it('keeps all but at most four of the parent\'s decisions, and sometimes deletes one', () => {
    const ms = mutants(1500);
    expect(ms.every((m) => m.decisions.length >= parent.decisions.length - 4)).toBe(true);
    expect(ms.some((m) => m.decisions.length < parent.decisions.length)).toBe(true);
  });

  it('moves a call by one or eight occurrences and an exit decision by one or sixteen exits, either way, and toggles a repeat', () => {
    const ms = mutants(3000);
    const occurrencesOf20 = new Set<number>();
    const exitsOf20 = new Set<number>();
    let added = 0, removed = 0;
    // The profile reaches getTdVmCallInfo and reportFatalError too: only answers like the parent's are its decisions.
    const parents = (m: AttackProgram, point: CallPoint) => m.decisions.filter((d): d is Call => d.at === 'call' && d.point === point && d.answer.kind === 'vmcall-return' && d.answer.effect === 'none' && d.answer.regs.r11 === undefined && d.answer.regs.r10 === 0n);
    for (const m of ms) {
      for (const d of parents(m, 'tdx.getTdVmCallInfo')) {
        occurrencesOf20.add(d.occurrence);
        if (d.repeat !== undefined) added++;
      }
      for (const d of m.decisions) if (d.at === 'exit' && d.action.kind === 'inject' && d.action.vector === 40) exitsOf20.add(d.exitIndex);
      if (parents(m, 'tdx.reportFatalError').some((d) => d.occurrence === 5 && d.repeat === undefined)) removed++;
    }
    for (const o of [19, 21, 12, 28]) expect(occurrencesOf20, `occurrence ${o}`).toContain(o);
    // Or gives the decision another answer, where it strikes (the insertions aim at the 1 to 3 calls the parent made).
    expect(ms.some((m) => m.decisions.some((d) => d.at === 'call' && d.point === 'tdx.getTdVmCallInfo' && d.occurrence === 20 && !(d.answer.kind === 'vmcall-return' && d.answer.effect === 'none' && d.answer.regs.r10 === 0n && d.answer.regs.r11 === undefined)))).toBe(true);
    for (const e of [19, 21, 4, 36]) expect(exitsOf20, `exit ${e}`).toContain(e);
    expect(added).toBeGreaterThan(0);
    expect(removed).toBeGreaterThan(0);
  });

  it('drops launch actions and the memory description now and then, and never when the launch part is kept', () => {
    const ms = mutants(1500);
    expect(ms.some((m) => (m.launch ?? []).length < 2)).toBe(true);
    expect(ms.some((m) => m.memoryDescription === undefined)).toBe(true);
    expect(ms.filter((m) => m.memoryDescription !== undefined && (m.launch ?? []).length >= 2).length).toBeGreaterThan(ms.length / 2);
    for (const m of mutants(1500, undefined, true)) {
      expect(m.launch).toEqual(parent.launch);
      expect(m.memoryDescription).toEqual(parent.memoryDescription);
    }
  });

  it('tells a memory-map lie in the parent\'s map, keeping the rest of its memory description', () => {
    const ranges = [{ addr: 0n, size: 0x9f000n, type: 1 }, { addr: 0x100000n, size: RAM - 0x100000n, type: 1 }];
    const withMap: AttackProgram = { platform: 'tdx', decisions: [call(7)], memoryDescription: { memoryBytes: RAM, ranges } };
    const rng = new Prng(31n);
    const changed = Array.from({ length: 3000 }, () => mutate(rng, withMap, profile)).filter((m) => m.memoryDescription && JSON.stringify(m.memoryDescription.ranges, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) !== JSON.stringify(ranges, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
    expect(changed.length).toBeGreaterThan(20);
    // (A description dropped by one mutation and told again by another has no memoryBytes: the fewer.)
    expect(changed.filter((m) => m.memoryDescription!.memoryBytes === RAM).length).toBeGreaterThan(changed.length / 2);
    // Some lies are told in the parent's two-range map (the honest map has four ranges, and no lie adds more than one).
    expect(changed.some((m) => m.memoryDescription!.ranges!.length <= 3)).toBe(true);
  });

  it('leaves out the launch, memory description and schedule fields a mutant does not have, and keeps 64 launch actions at most', () => {
    const rng = new Prng(37n);
    const bare: AttackProgram = { platform: 'tdx', decisions: [call(7)] };
    for (let i = 0; i < 500; i++) {
      const m = mutate(rng, bare, profile, undefined, { keepLaunch: true });
      expect(Object.keys(m).sort()).toEqual(['decisions', 'platform']);
    }
    const manyLaunch: AttackProgram = { platform: 'tdx', decisions: [call(7)], launch: Array.from({ length: 70 }, (_, i) => ({ kind: 'tdx.page-add' as const, gpa: BigInt(i) * PAGE, fill: 0 })) };
    expect(mutate(rng, manyLaunch, profile).launch!.length).toBeLessThanOrEqual(64);
  });

  it('on several vCPUs, keeps the parent\'s schedule three times in four', () => {
    const rng = new Prng(41n);
    const schedule = { policy: 'pct' as const, seed: 77n, quantum: 7 };
    const ms = Array.from({ length: 400 }, () => mutate(rng, { platform: 'tdx', decisions: [call(7)], schedule }, { ...profile, vcpus: 2 }));
    const kept = ms.filter((m) => m.schedule === schedule).length / ms.length;
    expect(kept).toBeGreaterThan(0.65);
    expect(kept).toBeLessThan(0.85);
  });

  it('splices a tail of the other program after a head of this one', () => {
    const other: AttackProgram = { platform: 'tdx', decisions: [101, 102, 103, 104].map((n) => ({ at: 'call', point: 'tdx.instructionHlt', occurrence: n, answer: { kind: 'stop' } })) };
    const ms = mutants(1500, other);
    const spliced = ms.filter((m) => m.decisions.some((d) => d.at === 'call' && d.point === 'tdx.instructionHlt' && d.occurrence > 100));
    expect(spliced.length).toBeGreaterThan(50);
    // Most splices cut the other program after its first decision (its tail from a random point).
    expect(spliced.filter((m) => !m.decisions.some((d) => d.at === 'call' && d.occurrence === 101)).length).toBeGreaterThan(spliced.length * 0.4);
    // Some keep only a head of this one (the cut falls before its end).
    expect(spliced.some((m) => m.decisions.length < parent.decisions.length)).toBe(true);
  });
});
