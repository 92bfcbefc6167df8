// What each VMM tactic (src/fuzz/tactics.ts) builds against a parent's execution profile: the
// decisions, launch actions or memory description its name promises, aimed only at what the
// parent reached, with the values the specs give those lies. In process, no guest.
import { describe, expect, it } from 'vitest';
import type { AttackProgram, Decision, LaunchAction } from '../../../src/fuzz/attack-program.js';
import type { ExecutionProfile } from '../../../src/fuzz/mutate.js';
import { MAP_LIES } from '../../../src/fuzz/memory-map-lies.js';
import { LaunchTacticDeck, pickTactic, TACTICS, type Tactic, type TacticMaterial } from '../../../src/fuzz/tactics.js';
import { Prng } from '../../../src/shared/prng.js';

const RAM = 128n << 20n;
const profile: ExecutionProfile = {
  callCounts: new Map([
    ['tdx.mapGpa', 3], ['tdx.onAcceptViolation', 5], ['snp.ghcb.psc', 4], ['snp.msr.psc', 2], ['snp.onNpf', 6], ['snp.msr.registerGhcb', 2],
  ]),
  vmmExits: 40, gpas: [0x5000n, 0x800000n], memoryBytes: RAM, preAccept: 64n << 20n,
};
/** The parent reached no decision point and made no exit. */
const bare: ExecutionProfile = { callCounts: new Map(), vmmExits: 0, gpas: [], memoryBytes: RAM };
const tactic = (name: string): Tactic => TACTICS.find((t) => t.name === name)!;
const SEEDS = Array.from({ length: 40 }, (_, i) => BigInt(i + 1));
const builds = (name: string, p = profile): TacticMaterial[] => SEEDS.map((s) => tactic(name).build(new Prng(s), p)!);
const calls = (m: TacticMaterial) => m.decisions as Extract<Decision, { at: 'call' }>[];
const exits = (m: TacticMaterial) => m.decisions as Extract<Decision, { at: 'exit' }>[];
/** More answers than any execution can ask for: a 5M-instruction budget has fewer exits than that. */
const FOREVER_AT_LEAST = 1_000_000;
/** TDG.VP.VMCALL status codes (GHCI 1.5 Table 3-1): RETRY is 1, errors have bit 63 set. */
const TDVMCALL_RETRY = 1n;
const isTdvmcallError = (s: bigint) => (s >> 63n) === 1n;
/** GHCB SW_EXITINFO2 for a PSC with an error: non-zero upper 32 bits (GHCB spec §4.1.6). */
const isPscError = (v: bigint) => v >> 32n !== 0n;
const pageAligned = (gpa: bigint) => gpa % 0x1000n === 0n;

/** The call-point tactics: each strikes at one reached occurrence of its point, and is undefined when the parent never reached it. */
const CALL_TACTICS: [string, string][] = [
  ['MapGPA RETRY at the same address, forever', 'tdx.mapGpa'],
  ['MapGPA fails, nothing converted', 'tdx.mapGpa'],
  ['MapGPA converts, then reports failure', 'tdx.mapGpa'],
  ['MapGPA flips only the shared EPT and keeps the private pages', 'tdx.mapGpa'],
  ['back every 2M accept with 4K pages', 'tdx.onAcceptViolation'],
  ['PSC fails, nothing converted', 'snp.ghcb.psc|snp.msr.psc'],
  ['PSC converts, then reports failure', 'snp.ghcb.psc'],
  ['PSC does only part of the entries', 'snp.ghcb.psc'],
  ['PSC answered with no progress, forever', 'snp.ghcb.psc'],
  ['back 2M with 4K RMP entries (PSMASH on every NPF)', 'snp.onNpf'],
  ['GHCB registration refused, or answered with another GFN', 'snp.msr.registerGhcb'],
];

describe('call-point tactics', () => {
  it.each(CALL_TACTICS)('%s: one decision at an occurrence of %s the parent reached, none when it reached none', (name, points) => {
    for (const m of builds(name)) {
      expect(m.decisions).toHaveLength(1);
      const d = calls(m)[0]!;
      expect(d.at).toBe('call');
      expect(points.split('|')).toContain(d.point);
      expect(d.occurrence).toBeGreaterThanOrEqual(0);
      expect(d.occurrence).toBeLessThan(profile.callCounts.get(d.point)!);
      expect(m.launch).toBeUndefined();
    }
    expect(tactic(name).build(new Prng(1n), bare)).toBeUndefined();
  });

  it('MapGPA RETRY forever: RETRY with nothing converted and no progress, at every retry', () => {
    for (const m of builds('MapGPA RETRY at the same address, forever')) {
      expect(calls(m)[0]!.answer).toEqual({ kind: 'map-gpa', convertBytes: 0n, status: TDVMCALL_RETRY, resumeDelta: 0n });
      expect(calls(m)[0]!.repeat).toBeGreaterThanOrEqual(FOREVER_AT_LEAST);
    }
  });

  it('MapGPA fails: an error status, nothing converted, once', () => {
    for (const m of builds('MapGPA fails, nothing converted')) {
      const { answer, repeat } = calls(m)[0]!;
      expect(answer.kind === 'map-gpa' && answer.convertBytes === 0n && isTdvmcallError(answer.status)).toBe(true);
      expect(repeat).toBeUndefined();
    }
  });

  it('MapGPA converts then fails: converts more than RAM holds, then an error status', () => {
    for (const m of builds('MapGPA converts, then reports failure')) {
      const { answer } = calls(m)[0]!;
      expect(answer.kind === 'map-gpa' && answer.convertBytes >= RAM && isTdvmcallError(answer.status)).toBe(true);
    }
  });

  it('MapGPA shared EPT only: success, everything "converted" in the shared EPT only, sometimes at every call', () => {
    const repeats = new Set<number | undefined>();
    for (const m of builds('MapGPA flips only the shared EPT and keeps the private pages')) {
      const { answer, repeat } = calls(m)[0]!;
      expect(answer).toEqual({ kind: 'map-gpa', convertBytes: expect.any(BigInt) as bigint, status: 0n, sharedEptOnly: true });
      expect(answer.kind === 'map-gpa' && answer.convertBytes >= RAM).toBe(true);
      repeats.add(repeat === undefined ? undefined : repeat >= FOREVER_AT_LEAST ? FOREVER_AT_LEAST : repeat);
    }
    expect(repeats).toEqual(new Set([undefined, FOREVER_AT_LEAST]));
  });

  it('2M accepts backed with 4K pages: AUG 4K at every accept violation from there on', () => {
    for (const m of builds('back every 2M accept with 4K pages')) {
      expect(calls(m)[0]!.answer).toEqual({ kind: 'ept', action: 'aug-4k' });
      expect(calls(m)[0]!.repeat).toBeGreaterThanOrEqual(FOREVER_AT_LEAST);
    }
  });

  it('PSC fails: nothing done, an error in SW_EXITINFO2 or in the MSR protocol response, over both protocols', () => {
    const points = new Set<string>();
    for (const m of builds('PSC fails, nothing converted')) {
      const { point, answer } = calls(m)[0]!;
      points.add(point);
      expect(answer.kind).toBe('vmgexit');
      if (answer.kind !== 'vmgexit') continue;
      expect(answer.effect).toBe('none');
      if (point === 'snp.ghcb.psc') expect(isPscError(answer.ghcb!.swExitInfo2!)).toBe(true);
      // GHCB MSR protocol PSC response: GHCBInfo 0x015, a non-zero error code in bits 63:32 (GHCB spec §2.3.1).
      else expect((answer.msr! & 0xfffn) === 0x15n && answer.msr! >> 32n !== 0n).toBe(true);
    }
    expect(points).toEqual(new Set(['snp.ghcb.psc', 'snp.msr.psc']));
    // Only the MSR protocol reached: only it is lied about.
    const msrOnly = { ...profile, callCounts: new Map([['snp.msr.psc', 2]]) } as ExecutionProfile;
    expect(builds('PSC fails, nothing converted', msrOnly).every((m) => calls(m)[0]!.point === 'snp.msr.psc')).toBe(true);
    // Only the GHCB protocol reached: it is lied about every time, never nothing built.
    const ghcbOnly = { ...profile, callCounts: new Map([['snp.ghcb.psc', 2]]) } as ExecutionProfile;
    expect(builds('PSC fails, nothing converted', ghcbOnly).every((m) => m !== undefined && calls(m)[0]!.point === 'snp.ghcb.psc')).toBe(true);
  });

  it('PSC converts then fails; PSC partial; PSC no progress forever; PSMASH on every NPF', () => {
    for (const m of builds('PSC converts, then reports failure')) {
      const a = calls(m)[0]!.answer;
      expect(a.kind === 'vmgexit' && a.effect === 'honest' && isPscError(a.ghcb!.swExitInfo2!)).toBe(true);
    }
    for (const m of builds('PSC does only part of the entries')) {
      const a = calls(m)[0]!.answer;
      expect(a.kind === 'vmgexit' && a.effect === 'honest' && a.pscEntries! >= 0 && a.pscEntries! < 3).toBe(true);
    }
    for (const m of builds('PSC answered with no progress, forever')) {
      expect(calls(m)[0]!.answer).toEqual({ kind: 'vmgexit', effect: 'none' });
      expect(calls(m)[0]!.repeat).toBeGreaterThanOrEqual(FOREVER_AT_LEAST);
    }
    for (const m of builds('back 2M with 4K RMP entries (PSMASH on every NPF)')) {
      expect(calls(m)[0]!.answer).toEqual({ kind: 'npf', action: 'psmash' });
      expect(calls(m)[0]!.repeat).toBeGreaterThanOrEqual(FOREVER_AT_LEAST);
    }
  });
});

describe('the GHCB registration tactic', () => {
  it('refuses (all ones, nothing registered) or names a GFN near the guest\'s, never the guest\'s own, both over the seeds', () => {
    const responses = new Set<string>();
    for (const m of builds('GHCB registration refused, or answered with another GFN')) {
      const a = calls(m)[0]!.answer;
      expect(a.kind).toBe('ghcb-registration');
      if (a.kind !== 'ghcb-registration') continue;
      responses.add(a.response);
      if (a.response === 'refuse') expect(a.gfnDelta).toBeUndefined();
      else expect([1n, -1n, 0x200n]).toContain(a.gfnDelta);
    }
    expect(responses).toEqual(new Set(['refuse', 'other-gfn']));
  });
});

describe('exit tactics', () => {
  it('a zeroed replay: at an exit the parent made, of a page-aligned GPA it worked on (mostly) at 4K or 2M', () => {
    let nearWorked = 0;
    const offsets = new Set<bigint>();
    for (const m of builds('BLOCK+TRACK+REMOVE+AUG an accepted page (a zeroed replay)')) {
      const d = exits(m)[0]!;
      expect(d.exitIndex).toBeLessThan(profile.vmmExits);
      expect(d.action.kind).toBe('tdx.replay-zeroed');
      if (d.action.kind !== 'tdx.replay-zeroed') continue;
      expect(pageAligned(d.action.gpa) && d.action.gpa < RAM).toBe(true);
      expect([0, 1]).toContain(d.action.level);
      const worked = profile.gpas.find((g) => d.action.kind === 'tdx.replay-zeroed' && d.action.gpa >= g && d.action.gpa < g + 0x8000n);
      if (worked !== undefined) {
        nearWorked++;
        offsets.add(d.action.gpa - worked);
      }
    }
    expect(nearWorked).toBeGreaterThan(SEEDS.length / 2);
    // The page the guest worked on and the pages after it (it accepts and converts runs of pages).
    expect(offsets.has(0n)).toBe(true);
    expect([...offsets].some((o) => o >= 0x1000n)).toBe(true);
    // Both sizes of replay happen: a 4K page (level 0) and a whole 2M page (level 1).
    expect(new Set(builds('BLOCK+TRACK+REMOVE+AUG an accepted page (a zeroed replay)').map((m) => (exits(m)[0]!.action as { level: number }).level))).toEqual(new Set([0, 1]));
    // With no exits or GPAs in the parent: exit 0, any page of RAM.
    const m = tactic('BLOCK+TRACK+REMOVE+AUG an accepted page (a zeroed replay)').build(new Prng(3n), bare)!;
    expect(exits(m)[0]!.exitIndex).toBe(0);
  });

  it('an interrupt in the middle of a 2M ACCEPT: an external vector (32-255), after 1-511 of its 512 4K chunks', () => {
    for (const m of builds('interrupt in the middle of a 2M ACCEPT')) {
      const a = exits(m)[0]!.action;
      expect(a.kind === 'tdx.post-interrupt' && a.vector >= 32 && a.vector <= 255 && a.afterChunks >= 1 && a.afterChunks <= 511).toBe(true);
    }
    // Over many draws, every point of the ranges is used, their ends included: never before the
    // first chunk or after the last (that would not be the middle of the ACCEPT), nor an exception vector.
    const rng = new Prng(9n);
    const drawn = Array.from({ length: 6000 }, () => exits(tactic('interrupt in the middle of a 2M ACCEPT').build(rng, profile)!)[0]!.action as { vector: number; afterChunks: number });
    const chunks = drawn.map((a) => a.afterChunks), vectors = drawn.map((a) => a.vector);
    expect([Math.min(...chunks), Math.max(...chunks)]).toEqual([1, 511]);
    expect([Math.min(...vectors), Math.max(...vectors)]).toEqual([32, 255]);
  });

  it('SNP: un-validate a worked page; #VC 0x404 with no cause; capture a page and restore it at a later exit', () => {
    for (const m of builds('PSMASH + RMPUPDATE a validated page (un-validate it)')) {
      const a = exits(m)[0]!.action;
      expect(a.kind === 'snp.unvalidate' && pageAligned(a.spa)).toBe(true);
    }
    // Mostly a page the guest worked on, or one of the seven after it (validated with it).
    const unvalidated = builds('PSMASH + RMPUPDATE a validated page (un-validate it)').map((m) => (exits(m)[0]!.action as { spa: bigint }).spa);
    expect(unvalidated.filter((spa) => profile.gpas.some((w) => spa >= w && spa < w + 0x8000n)).length).toBeGreaterThan(unvalidated.length / 2);
    for (const m of builds('inject #VC 0x404 with no cause')) {
      // #VC is vector 29 (AMD APM vol. 2, §15.35.5).
      expect(exits(m)[0]!.action).toEqual({ kind: 'inject', vector: 29, errorCode: 0x404n });
    }
    for (const m of builds("replay a page's old ciphertext")) {
      const [capture, restore] = exits(m);
      expect(m.decisions).toHaveLength(2);
      expect(capture!.action.kind).toBe('snp.capture');
      expect(restore!.action.kind).toBe('snp.restore');
      expect(restore!.exitIndex).toBeGreaterThan(capture!.exitIndex);
      // At an exit the parent made, or the one after its last.
      expect(restore!.exitIndex).toBeLessThanOrEqual(profile.vmmExits);
      const c = capture!.action as Extract<Decision, { at: 'exit' }>['action'] & { spa: bigint; slot: number };
      const r = restore!.action as typeof c;
      expect([r.spa, r.slot]).toEqual([c.spa, c.slot]);
      expect(pageAligned(c.spa)).toBe(true);
    }
    // The old ciphertext comes back later under the guest, not always at the very next exit.
    expect(builds("replay a page's old ciphertext").some((m) => exits(m)[1]!.exitIndex - exits(m)[0]!.exitIndex > 1)).toBe(true);
  });
});

describe('launch tactics', () => {
  const launchOf = (m: TacticMaterial): LaunchAction => { expect(m.decisions).toEqual([]); expect(m.launch).toHaveLength(1); return m.launch![0]!; };

  it('add or launch an extra page, hold a SEPT lock, re-assign a page: one launch action at a page of RAM', () => {
    for (const name of ['PAGE.ADD an extra page before launch', 'launch an extra validated page']) {
      // Each tactic adds zeroed pages and pages of other bytes (a zero page measures like an unused one).
      const fills = new Set<string>();
      for (const m of builds(name)) {
        const a = launchOf(m) as LaunchAction & { gpa: bigint; fill: number };
        expect(pageAligned(a.gpa) && a.gpa < RAM && a.fill >= 0 && a.fill <= 255).toBe(true);
        fills.add(a.fill === 0 ? 'zero' : 'other');
      }
      expect(fills, name).toEqual(new Set(['zero', 'other']));
    }
    const lockLevels = new Set<number>();
    for (const m of builds('a host SEAMCALL holds a SEPT entry lock')) {
      const a = launchOf(m);
      expect(a.kind === 'tdx.lock-entry' && pageAligned(a.gpa) && a.gpa < RAM && (a.level === 0 || a.level === 1)).toBe(true);
      if (a.kind === 'tdx.lock-entry') lockLevels.add(a.level);
    }
    // The lock is held on a 4K leaf entry and on a 2M one.
    expect(lockLevels).toEqual(new Set([0, 1]));
    for (const m of builds('a page re-assigned before launch')) {
      const a = launchOf(m);
      expect(a.kind === 'snp.rmpupdate' && a.assigned && a.pageSize === '4k' && a.gpa === a.spa && pageAligned(a.spa)).toBe(true);
    }
  });

  it('memory-map tactics: a memory description only, told in the honest map or, sometimes, the parent\'s', () => {
    const parentRanges = [{ addr: 0n, size: 16n << 20n, type: 1 }, { addr: 16n << 20n, size: 16n << 20n, type: 15 }];
    const t = tactic('describe memory with a memory range of a type no guest knows');
    let inParent = 0;
    for (const s of SEEDS) {
      const m = t.build(new Prng(s), profile, { ranges: parentRanges })!;
      expect(m.decisions).toEqual([]);
      expect(m.launch).toBeUndefined();
      if (m.memoryDescription!.ranges!.length === 2) inParent++;
      else expect(m.memoryDescription!.ranges).toHaveLength(4);
    }
    expect(inParent).toBeGreaterThan(0);
    expect(inParent).toBeLessThan(SEEDS.length);
    // Without a parent map, the honest one (4 entries at a 64 MiB pre-accept).
    expect(t.build(new Prng(1n), profile)!.memoryDescription!.ranges).toHaveLength(4);
    // The honest map splits accepted RAM from unaccepted memory where the parent's target pre-accepted up to (64 MiB without one).
    const boundaries = (p: ExecutionProfile) => SEEDS.map((s) => t.build(new Prng(s), p)!.memoryDescription!.ranges!.map((r) => r.addr));
    expect(boundaries({ ...profile, preAccept: 32n << 20n }).every((addrs) => addrs.includes(32n << 20n))).toBe(true);
    expect(boundaries({ ...profile, preAccept: undefined }).every((addrs) => addrs.includes(64n << 20n))).toBe(true);
    // A lie the parent's map gives no place to (one entry cannot be out of order): no tactic, when told in it.
    const outOfOrder = SEEDS.map((s) => tactic('describe memory with memory ranges out of order').build(new Prng(s), profile, { ranges: parentRanges.slice(0, 1) }));
    expect(outOfOrder.some((m) => m === undefined)).toBe(true);
    expect(outOfOrder.some((m) => m !== undefined)).toBe(true);
  });
});

/** The tactics that are one platform's own (its hypercalls, SEAMCALLs or RMP instructions); memory-map lies are both's. */
const ONLY_ON = {
  tdx: [
    'MapGPA RETRY at the same address, forever', 'MapGPA fails, nothing converted', 'MapGPA converts, then reports failure',
    'MapGPA flips only the shared EPT and keeps the private pages', 'BLOCK+TRACK+REMOVE+AUG an accepted page (a zeroed replay)',
    'back every 2M accept with 4K pages', 'interrupt in the middle of a 2M ACCEPT', 'PAGE.ADD an extra page before launch',
    'a host SEAMCALL holds a SEPT entry lock',
  ],
  snp: [
    'PSC fails, nothing converted', 'PSC converts, then reports failure', 'PSC does only part of the entries', 'PSC answered with no progress, forever',
    'GHCB registration refused, or answered with another GFN',
    'PSMASH + RMPUPDATE a validated page (un-validate it)', 'inject #VC 0x404 with no cause', "replay a page's old ciphertext",
    'back 2M with 4K RMP entries (PSMASH on every NPF)', 'launch an extra validated page', 'a page re-assigned before launch',
  ],
};

describe('pickTactic', () => {
  const pick = (platform: AttackProgram['platform'], options = {}) => SEEDS.flatMap((s) => {
    const rng = new Prng(s);
    return Array.from({ length: 10 }, () => pickTactic(rng, platform, profile, options)).filter((t) => t !== undefined);
  });
  const launchNames = new Set(TACTICS.filter((t) => t.launch).map((t) => t.name));

  it('picks only tactics of the platform, named, and launch ones only when allowed', () => {
    for (const platform of ['tdx', 'snp'] as const) {
      const names = new Set(TACTICS.filter((t) => t.platforms.includes(platform)).map((t) => t.name));
      const picked = pick(platform);
      expect(picked.every((t) => names.has(t.name))).toBe(true);
      expect(picked.some((t) => launchNames.has(t.name))).toBe(true);
      expect(pick(platform, { launch: false }).some((t) => launchNames.has(t.name))).toBe(false);
    }
  });

  it('picks every tactic of the platform, and a launch tactic one time in two when they are allowed', () => {
    for (const platform of ['tdx', 'snp'] as const) {
      const rng = new Prng(11n);
      const picked = Array.from({ length: 3000 }, () => pickTactic(rng, platform, profile)).filter((t) => t !== undefined);
      expect(new Set(picked.map((t) => t.name))).toEqual(new Set([...ONLY_ON[platform], ...MAP_LIES.map((lie) => `describe memory with ${lie.name}`)]));
      const launchShare = picked.filter((t) => launchNames.has(t.name)).length / picked.length;
      expect(launchShare).toBeGreaterThan(0.4);
      expect(launchShare).toBeLessThan(0.6);
    }
  });

  it('tells memory-map lies about acceptance and lies about the map\'s shape as two launch surfaces', () => {
    const surface = (lie: string) => tactic(`describe memory with ${lie}`).launch;
    for (const lie of ['unaccepted memory reaching into the accepted RAM beside it', 'part of unaccepted memory described again as accepted RAM']) {
      expect(surface(lie)).toBe('what the memory map says is accepted');
    }
    for (const lie of ['memory ranges out of order', 'a memory range beyond the end of RAM', 'a memory range of a type no guest knows']) {
      expect(surface(lie)).toBe("the memory map's shape");
    }
  });

  it('draws launch tactics from the campaign deck when given one: every launch surface once before any again', () => {
    const launchPool = TACTICS.filter((t) => t.launch && t.platforms.includes('tdx'));
    const surfaceOf = new Map(launchPool.map((t) => [t.name, t.launch]));
    const surfaces = new Set(surfaceOf.values()).size;
    for (const seed of SEEDS.slice(0, 10)) {
      const deck = new LaunchTacticDeck();
      const rng = new Prng(seed);
      const drawn: string[] = [];
      while (drawn.length < surfaces) {
        const t = pickTactic(rng, 'tdx', profile, { launchDeck: deck });
        if (t && launchNames.has(t.name)) drawn.push(t.name);
      }
      expect(new Set(drawn.map((n) => surfaceOf.get(n))).size).toBe(surfaces);
    }
  });
});
