// The attack-program file format: what a hand-written attack or a finding on disk may contain.
import { describe, expect, it } from 'vitest';
import {
  AttackProgramError, attackProgramFromJson, attackProgramToJson, describeDecision, MAX_DECISIONS, MAX_MEMORY_RANGES, needsFreshLaunch, parseAttackProgram,
  type AttackProgram,
} from '../../../src/fuzz/attack-program.js';

const tdxProgram: AttackProgram = {
  platform: 'tdx',
  decisions: [
    { at: 'call', point: 'tdx.mapGpa', occurrence: 0, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n, resumeDelta: -0x1000n } },
    { at: 'call', point: 'tdx.instructionIo', occurrence: 3, repeat: 5, answer: { kind: 'vmcall-return', effect: 'none', regs: { r10: 0n, r11: 0xffn } } },
    { at: 'call', point: 'tdx.onAcceptViolation', occurrence: 1, answer: { kind: 'ept', action: 'aug-other', otherDelta: 0x200000n } },
    { at: 'exit', exitIndex: 7, action: { kind: 'tdx.replay-zeroed', gpa: 0x4000000n, level: 0 } },
    { at: 'exit', exitIndex: 9, action: { kind: 'tdx.post-interrupt', vector: 0x30, afterChunks: 17 } },
    { at: 'exit', exitIndex: 9, action: { kind: 'tdx.seamcall', op: 'DEMOTE', gpa: 0x200000n, level: 1 } },
  ],
  launch: [
    { kind: 'image-write', gpa: 0x201000n, value: 0x4346564cn, size: 4 },
    { kind: 'tdx.page-add', gpa: 0x600000n, fill: 0xa5 },
    { kind: 'tdx.lock-entry', gpa: 0n, level: 1 },
  ],
};

const snpProgram: AttackProgram = {
  platform: 'snp',
  decisions: [
    { at: 'call', point: 'snp.ghcb.psc', occurrence: 2, answer: { kind: 'vmgexit', effect: 'honest', pscEntries: 1, ghcb: { swExitInfo2: 0x100000000n }, pscHeader: { curEntry: 0, endEntry: 4 } } },
    { at: 'call', point: 'snp.msr.psc', occurrence: 0, answer: { kind: 'vmgexit', effect: 'none', msr: 0x15n } },
    { at: 'call', point: 'snp.onNpf', occurrence: 0, answer: { kind: 'npf', action: 'refuse' } },
    { at: 'exit', exitIndex: 3, action: { kind: 'snp.capture', spa: 0x5000n, slot: 1 } },
    { at: 'exit', exitIndex: 4, action: { kind: 'snp.rmpupdate', spa: 0x5000n, assigned: false, pageSize: '4k', gpa: 0n } },
    { at: 'exit', exitIndex: 4, action: { kind: 'snp.unvalidate', spa: 0x101000n } },
    { at: 'exit', exitIndex: 5, action: { kind: 'inject', vector: 29, errorCode: 0x404n } },
    { at: 'exit', exitIndex: 6, action: { kind: 'shared-write', gpa: 0x9000n, value: 0xabn, size: 1 } },
    { at: 'call', point: 'snp.msr.registerGhcb', occurrence: 0, answer: { kind: 'ghcb-registration', response: 'refuse' } },
    { at: 'call', point: 'snp.msr.registerGhcb', occurrence: 1, answer: { kind: 'ghcb-registration', response: 'other-gfn', gfnDelta: -1n } },
  ],
  launch: [{ kind: 'snp.cpuid-page', type: 'ZERO' }],
  memoryDescription: {
    memoryBytes: 0x40000000n,
    ranges: [{ addr: 0n, size: 0x200000n, type: 1 }, { addr: 0x200000n, size: 0x3fe00000n, type: 15 }],
  },
};

describe('attack program format', () => {
  it('round-trips TDX and SNP programs through JSON with bigints as hex strings', () => {
    for (const program of [tdxProgram, snpProgram]) {
      const text = attackProgramToJson(program);
      expect(text).toContain('"format": "minivisor-attack-program"');
      expect(text).not.toMatch(/\d+n\b/);
      expect(attackProgramFromJson(text)).toEqual(program);
    }
    expect(attackProgramToJson(tdxProgram)).toContain('"resumeDelta":"-0x1000"');
    expect(attackProgramToJson(snpProgram)).toContain('{"kind":"ghcb-registration","response":"other-gfn","gfnDelta":"-0x1"}');
  });

  it('rejects decisions a platform does not have, naming the field', () => {
    const bad = JSON.parse(attackProgramToJson(tdxProgram));
    bad.decisions[3].action = { kind: 'snp.psmash', spa: '0x0' };
    expect(() => parseAttackProgram(bad)).toThrow(/program\.decisions\[3\]\.action\.kind: expected one of tdx\.seamcall/);
  });

  it('writes one memory range per line and rejects a range with a field it does not know', () => {
    const text = attackProgramToJson(snpProgram);
    expect(text).toContain('\n      {"addr":"0x200000","size":"0x3fe00000","type":15}\n');
    const bad = JSON.parse(text);
    bad.memoryDescription.ranges[1].reserved = 1;
    expect(() => parseAttackProgram(bad)).toThrow(/program\.memoryDescription\.ranges\[1\]: unknown field "reserved"/);
    expect(needsFreshLaunch({ platform: 'tdx', decisions: [], memoryDescription: { ranges: [] } })).toBe(true);
  });

  it('takes the CPUID page\'s launch type on SNP only', () => {
    const bad = JSON.parse(attackProgramToJson(tdxProgram));
    bad.launch.push({ kind: 'snp.cpuid-page', type: 'ZERO' });
    expect(() => parseAttackProgram(bad)).toThrow(/program\.launch\[3\]\.kind: expected one of/);
    const snp = JSON.parse(attackProgramToJson(snpProgram));
    snp.launch[0].type = 'VMSA';
    expect(() => parseAttackProgram(snp)).toThrow(/program\.launch\[0\]\.type: expected one of CPUID, NORMAL, UNMEASURED, ZERO/);
  });

  it('rejects answers that do not fit the decision point', () => {
    const bad = JSON.parse(attackProgramToJson(tdxProgram));
    bad.decisions[1].answer = { kind: 'map-gpa', convertBytes: '0x0', status: '0x0' };
    expect(() => parseAttackProgram(bad)).toThrow(AttackProgramError);
  });

  it.each([
    ['a decimal number for a bigint', (p: any) => { p.decisions[3].action.gpa = 4096; }, /gpa: expected a hex string/],
    ['a negative address', (p: any) => { p.decisions[3].action.gpa = '-0x1000'; }, /must not be negative/],
    ['more than 64 bits', (p: any) => { p.decisions[0].answer.status = '0x1' + '0'.repeat(16); }, /hex string|64 bits/],
    ['an unknown field', (p: any) => { p.decisions[0].answer.resume = '0x0'; }, /unknown field "resume"/],
    ['a TDX exception vector', (p: any) => { p.decisions[4].action = { kind: 'inject', vector: 14 }; }, /vector: expected an integer in \[32, 255\]/],
    ['a wrong version', (p: any) => { p.version = 2; }, /version: unsupported/],
    ['a negative occurrence', (p: any) => { p.decisions[0].occurrence = -1; }, /occurrence/],
    ['aug-other without a target', (p: any) => { delete p.decisions[2].answer.otherDelta; }, /aug-other needs otherDelta/],
    ['an SNP launch action on TDX', (p: any) => { p.launch[1].kind = 'snp.launch-page'; }, /launch\[1\]\.kind: expected one of image-write/],
    ['an image write too wide for its size', (p: any) => { p.launch[0].value = '0x100000000'; }, /launch\[0\]\.value: does not fit in 4 bytes/],
    ['a fill beyond a byte', (p: any) => { p.launch[1].fill = 256; }, /fill: expected an integer in \[0, 255\]/],
  ])('rejects %s', (_what, damage, message) => {
    const bad = JSON.parse(attackProgramToJson(tdxProgram));
    damage(bad);
    expect(() => parseAttackProgram(bad)).toThrow(message);
  });

  // Each bound is the real one: posted-interrupt vectors are 32..255 (0..31 are exceptions, SDM
  // Vol. 3 §6.2), a 2M accept has 512 chunks, TDX pages are 4K/2M/1G (levels 0..2) but a replay
  // AUGs 4K or 2M, the capture slots are 16, e820 types are 32-bit, a run of answers and a
  // scheduler quantum are at least one.
  it.each([
    ['a posted interrupt on an exception vector', 'tdx', (p: any) => { p.decisions[4].action.vector = 31; }, /decisions\[4\]\.action\.vector: expected an integer in \[32, 255\]/],
    ['a posted interrupt after no chunk', 'tdx', (p: any) => { p.decisions[4].action.afterChunks = 0; }, /afterChunks: expected an integer in \[1, 511\]/],
    ['a 1G replay', 'tdx', (p: any) => { p.decisions[3].action.level = 2; }, /decisions\[3\]\.action\.level: expected an integer in \[0, 1\]/],
    ['a SEAMCALL past the 1G level', 'tdx', (p: any) => { p.decisions[5].action.level = 3; }, /decisions\[5\]\.action\.level: expected an integer in \[0, 2\]/],
    ['a capture slot past the last', 'snp', (p: any) => { p.decisions[3].action.slot = 16; }, /decisions\[3\]\.action\.slot: expected an integer in \[0, 15\]/],
    ['a write of 3 bytes', 'snp', (p: any) => { p.decisions[7].action.size = 3; }, /decisions\[7\]\.action\.size: expected 1, 2, 4 or 8/],
    ['a repeat of none', 'tdx', (p: any) => { p.decisions[1].repeat = 0; }, /decisions\[1\]\.repeat: expected an integer in \[1, /],
    ['an unknown field on a call decision', 'tdx', (p: any) => { p.decisions[0].when = 1; }, /decisions\[0\]: unknown field "when"/],
    ['an unknown field on an exit decision', 'tdx', (p: any) => { p.decisions[3].occurrence = 1; }, /decisions\[3\]: unknown field "occurrence"/],
    ['an unknown field on an RMPUPDATE', 'snp', (p: any) => { p.decisions[4].action.vmsa = true; }, /decisions\[4\]\.action: unknown field "vmsa"/],
    ['an unknown field in the memory description', 'snp', (p: any) => { p.memoryDescription.holes = []; }, /memoryDescription: unknown field "holes"/],
    ['an e820 type past 32 bits', 'snp', (p: any) => { p.memoryDescription.ranges[0].type = 0x100000000; }, /ranges\[0\]\.type: expected an integer in \[0, 4294967295\]/],
    ['a 32-bit e820 type', 'snp', (p: any) => { p.memoryDescription.ranges[0].type = 0xffffffff; }, null],
    ['a scheduler quantum of none', 'snp', (p: any) => { p.schedule = { policy: 'pct', seed: '0x1', quantum: 0 }; }, /schedule\.quantum: expected an integer in \[1, /],
    ['an unknown field in the schedule', 'snp', (p: any) => { p.schedule = { policy: 'pct', seed: '0x1', quantum: 1, depth: 3 }; }, /schedule: unknown field "depth"/],
    // A GHCB registration answered with another GFN (GHCB spec "GHCB GPA Registration"): all ones, or the guest's own GFN moved.
    ['a refused registration that names a GFN', 'snp', (p: any) => { p.decisions[8].answer.gfnDelta = '0x1'; }, /decisions\[8\]\.answer\.gfnDelta: a refusal names no GFN/],
    ['another GFN with no offset', 'snp', (p: any) => { delete p.decisions[9].answer.gfnDelta; }, /decisions\[9\]\.answer: other-gfn needs gfnDelta/],
    ['another GFN that is the guest\'s own', 'snp', (p: any) => { p.decisions[9].answer.gfnDelta = '0x0'; }, /decisions\[9\]\.answer\.gfnDelta: 0 names the guest's own GFN/],
    ['a registration response it does not know', 'snp', (p: any) => { p.decisions[8].answer.response = 'error'; }, /decisions\[8\]\.answer\.response: expected one of refuse, other-gfn/],
    // The PSC NAE's bounds (GHCB spec 56421 §4.1.6; Linux struct snp_psc_desc): at most 253 entries fill
    // the shared buffer, and the header's cur_entry and end_entry are 16-bit fields.
    ['a PSC answer for 254 entries', 'snp', (p: any) => { p.decisions[0].answer.pscEntries = 254; }, /decisions\[0\]\.answer\.pscEntries: expected an integer in \[0, 253\]/],
    ['a PSC answer for 253 entries', 'snp', (p: any) => { p.decisions[0].answer.pscEntries = 253; }, null],
    ['a PSC header cur_entry past 16 bits', 'snp', (p: any) => { p.decisions[0].answer.pscHeader.curEntry = 0x10000; }, /pscHeader\.curEntry: expected an integer in \[0, 65535\]/],
    ['a PSC header end_entry past 16 bits', 'snp', (p: any) => { p.decisions[0].answer.pscHeader.endEntry = 0x10000; }, /pscHeader\.endEntry: expected an integer in \[0, 65535\]/],
    // JSON's other shapes where an object or an integer belongs.
    ['an array for an answer', 'snp', (p: any) => { p.decisions[2].answer = ['npf', 'refuse']; }, /decisions\[2\]\.answer: expected an object/],
    ['a fractional occurrence', 'snp', (p: any) => { p.decisions[2].occurrence = 1.5; }, /decisions\[2\]\.occurrence: expected an integer/],
    ['a registration answer to a PSC request', 'snp', (p: any) => { p.decisions[1].answer = { kind: 'ghcb-registration', response: 'refuse' }; }, /decisions\[1\]\.answer\.kind: expected one of honest, vmgexit, stop/],
  ])('bounds: rejects %s', (_what, platform, damage, message) => {
    const bad = JSON.parse(attackProgramToJson(platform === 'tdx' ? tdxProgram : snpProgram));
    damage(bad);
    if (message === null) expect(() => parseAttackProgram(bad)).not.toThrow();
    else expect(() => parseAttackProgram(bad)).toThrow(message);
  });

  it('takes at most MAX_DECISIONS decisions and launch actions, and MAX_MEMORY_RANGES ranges', () => {
    const exit = { at: 'exit', exitIndex: 0, action: { kind: 'snp.psmash', spa: '0x0' } };
    const program = (decisions: number, launch: number, ranges: number) => ({
      format: 'minivisor-attack-program', version: 1, platform: 'snp',
      decisions: Array.from({ length: decisions }, () => exit),
      launch: Array.from({ length: launch }, () => ({ kind: 'snp.psmash', spa: '0x0' })),
      memoryDescription: { ranges: Array.from({ length: ranges }, () => ({ addr: '0x0', size: '0x1000', type: 1 })) },
    });
    expect(() => parseAttackProgram(program(MAX_DECISIONS, MAX_DECISIONS, MAX_MEMORY_RANGES))).not.toThrow();
    expect(() => parseAttackProgram(program(MAX_DECISIONS + 1, 0, 0))).toThrow(/decisions: more than 10000 decisions/);
    expect(() => parseAttackProgram(program(0, MAX_DECISIONS + 1, 0))).toThrow(/launch: more than 10000 launch actions/);
    expect(() => parseAttackProgram(program(0, 0, MAX_MEMORY_RANGES + 1))).toThrow(/ranges: more than 128 ranges/);
  });

  it('leaves absent optional fields out of the JSON rather than writing them as null', () => {
    const text = attackProgramToJson({ platform: 'tdx', decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: undefined, answer: { kind: 'honest' } }] });
    expect(text).not.toContain('repeat');
    expect(text).not.toContain('null');
  });

  it('rejects text that is not JSON with a clear error', () => {
    expect(() => attackProgramFromJson('{', 'attack.json')).toThrow(/^attack\.json: not JSON/);
  });

  it('knows which programs change the launch (and so cannot start from a snapshot)', () => {
    expect(needsFreshLaunch(tdxProgram)).toBe(true);
    expect(needsFreshLaunch({ platform: 'tdx', decisions: tdxProgram.decisions })).toBe(false);
    expect(needsFreshLaunch({ platform: 'snp', decisions: [], memoryDescription: { preAcceptBytes: 0n } })).toBe(true);
    expect(needsFreshLaunch({ platform: 'snp', decisions: [], launch: [], memoryDescription: {} })).toBe(false);
  });

  it('describes a decision in one line', () => {
    expect(describeDecision(tdxProgram.decisions[3]!)).toBe('at exit #7: {"kind":"tdx.replay-zeroed","gpa":"0x4000000","level":0}');
    // A repeated answer names the first and the last occurrence it answers.
    expect(describeDecision(tdxProgram.decisions[1]!)).toMatch(/^call tdx\.instructionIo #3\.\.#7: answer /);
  });
});
