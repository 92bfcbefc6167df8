// The attack primitives of the hostile VMM (src/fuzz/adversary.ts), each through a real exit of a
// tiny guest: what the guest and the hardware see after each answer and host action. A primitive
// that silently stopped working would make the fuzzer report "nothing found"; these fail instead.
// Expected values come from the hardware's rules (TDX module: TDG.MEM.PAGE.ACCEPT and the
// TDH.MEM.* SEAMCALLs; AMD APM Vol. 2 §15.36: PVALIDATE, the RMP checks; GHCB spec 2.x: the PSC
// request and the VMGEXIT exit codes), not from the adversary's own output.
import { describe, expect, it } from 'vitest';
import { DecisionBook, LIVELOCK_REQUESTS, snpAdversaryPolicy, snpHostAction, tdxAdversaryPolicy, tdxHostAction } from '../../../src/fuzz/adversary.js';
import type { Answer, CallPoint, Decision, HostAction } from '../../../src/fuzz/attack-program.js';
import { ghcbMsr, PSC_OP } from '../../../src/platform/snp/ghcb-msr.js';
import { encodePscEntry, GHCB_OFFSET, SVM_EXIT } from '../../../src/platform/snp/ghcb-page.js';
import type { Td } from '../../../src/vmm/tdx/run-td.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { FOREVER } from '../../helpers/attack-programs.js';
import { CODE_BASE } from '../../helpers/guest-setup.js';
import { GHCB_GPA, PVALIDATE, VMGEXIT, ghcbCall, msrProtocol, privateIdentityWithGhcb, snpGuest } from '../../helpers/snp-guest.js';
import { acceptAsm, HALT, SHARED_VA, TDCALL, tdGuest } from '../../helpers/tdx-guest.js';

/** A 2 MiB-aligned GPA above the tiny guests' boot image, in both platforms' 32 MiB guests. */
const P = 0x400000n;
/** The tiny guests' memory (tdGuest's and snpGuest's default). */
const MEMORY = 32n << 20n;
const TDX_SHARED_BIT = 1n << 47n; // GPAW 48

/** Answer `repeat` calls of `point`, from its first, with `answer`. */
const call = (point: CallPoint, answer: Answer, repeat = 1): Decision => ({ at: 'call', point, occurrence: 0, repeat, answer });

// ------------------------------------------------------------------------------------------ TDX

function tdUnder(main: string, decisions: Decision[]): { td: Td; book: DecisionBook } {
  const book = new DecisionBook({ platform: 'tdx', decisions });
  return { td: tdGuest(main, { policy: tdxAdversaryPolicy(book) }), book };
}

/** The SEAMCALLs made after MR.FINALIZE (the VMM's, at run time), as `LEAF rcx`. */
function runtimeSeamcalls(td: Td): string[] {
  const calls = td.trace.ofType('seamcall');
  const launch = calls.findIndex((c) => c.leaf === 'TDH_MR_FINALIZE');
  return calls.slice(launch + 1).map((c) => `${String(c.leaf)} 0x${(c.rcx as bigint).toString(16)}`);
}

/** TDG.VP.VMCALL<MapGPA>(start, size); R10 → RBX, R11 → RSI. */
const mapGpa = (start: bigint, size: bigint) =>
  `xor eax, eax\n mov ecx, 0xfc00\n xor r10d, r10d\n mov r11d, 0x10001\n mov r12, 0x${start.toString(16)}\n mov r13, 0x${size.toString(16)}\n ${TDCALL}\n mov rbx, r10\n mov rsi, r11`;

/** ACCEPT 4K of P (status → RBX), then halt. */
const ACCEPT_P = `${acceptAsm(P)}\n mov rbx, rax\n ${HALT}`;
/** What the honest VMM does for that ACCEPT's exit: a SEPT page for P's 2 MiB, then AUG 4K (tdx honest-vmm augOnDemand). */
const HONEST_AUG_OF_P = ['TDH_MEM_SEPT_ADD 0x400001', 'TDH_MEM_PAGE_AUG 0x400000'];

describe('adversary, TDX EPT-violation answers', () => {
  it('aug-4k: the ACCEPT exit gets a 4K PENDING page; the guest\'s 4K ACCEPT then succeeds and the rest of the 2 MiB stays FREE', () => {
    const { td, book } = tdUnder(ACCEPT_P, [call('tdx.onAcceptViolation', { kind: 'ept', action: 'aug-4k' }, FOREVER)]);
    expect(runTd(td).outcome).toBe('done');
    // TDG.MEM.PAGE.ACCEPT of a PENDING 4K leaf: SUCCESS, the leaf MAPPED; a 2M AUG instead would
    // have made the 4K ACCEPT exit again (PENDING at a larger level), and no answer would end it.
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0n);
    expect(td.platform.module.sept.walk(P, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
    expect(td.platform.module.sept.walk(P + 0x1000n, 0)).toMatchObject({ state: 'FREE' });
    expect(book.callCounts.get('tdx.onAcceptViolation')).toBe(1);
  });

  it('aug-other: the page at GPA + otherDelta is AUGed instead, and the guest\'s ACCEPT exits again', () => {
    const { td, book } = tdUnder(ACCEPT_P, [call('tdx.onAcceptViolation', { kind: 'ept', action: 'aug-other', otherDelta: 0x2000n })]);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.module.sept.walk(P + 0x2000n, 0)).toMatchObject({ level: 0, state: 'PENDING' }); // AUGed, never accepted
    expect(book.callCounts.get('tdx.onAcceptViolation')).toBe(2); // the second exit is answered honestly
    expect(td.platform.module.sept.walk(P, 0)).toMatchObject({ level: 0, state: 'MAPPED' });
  });

  it('aug-other whose target lies outside guest memory (below 0, at its end) makes no SEAMCALL', () => {
    for (const otherDelta of [-P - 0x1000n, MEMORY - P]) {
      const { td } = tdUnder(ACCEPT_P, [call('tdx.onAcceptViolation', { kind: 'ept', action: 'aug-other', otherDelta })]);
      expect(runTd(td).outcome).toBe('done');
      expect(runtimeSeamcalls(td)).toEqual(HONEST_AUG_OF_P);
      expect(td.trace.ofType('adversary')).toEqual([]);
    }
  });

  it('an AUG answer to a shared-EPT violation AUGs the private page of its GPA (the shared bit stripped), or the one otherDelta away', () => {
    // The guest writes P through its shared alias: the GPA has the shared bit (GPAW-1) set.
    const write = `mov rax, 0x${(SHARED_VA + P).toString(16)}\n mov qword ptr [rax], 1\n ${HALT}`;
    // The second exit is answered honestly: the honest VMM maps no shared page there (MMIO is not modelled).
    const aug = tdUnder(write, [call('tdx.onSharedEptViolation', { kind: 'ept', action: 'aug-4k' })]);
    expect(runTd(aug.td).outcome).toBe('fault');
    expect(runtimeSeamcalls(aug.td)).toEqual(HONEST_AUG_OF_P);
    expect(aug.td.platform.module.sept.walk(P, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    const other = tdUnder(write, [call('tdx.onSharedEptViolation', { kind: 'ept', action: 'aug-other', otherDelta: 0x2000n })]);
    expect(runTd(other.td).outcome).toBe('fault');
    expect(other.td.platform.module.sept.walk(P + 0x2000n, 0)).toMatchObject({ level: 0, state: 'PENDING' });
  });

  it('refuse resumes with nothing done: the same ACCEPT exits again', () => {
    const { td, book } = tdUnder(ACCEPT_P, [call('tdx.onAcceptViolation', { kind: 'ept', action: 'refuse' })]);
    expect(runTd(td).outcome).toBe('done');
    expect(book.callCounts.get('tdx.onAcceptViolation')).toBe(2);
    const exits = td.trace.ofType('td-exit').filter((e) => e.eeqType === 'accept');
    expect(exits.map((e) => e.gpa)).toEqual([P, P]);
    expect(runtimeSeamcalls(td)).toEqual(HONEST_AUG_OF_P); // all from the honest second answer
  });

  it('stop, as an answer and as an EPT action, ends the run as vmm-error at that decision point', () => {
    const accept = tdUnder(ACCEPT_P, [call('tdx.onAcceptViolation', { kind: 'ept', action: 'stop' })]);
    expect(runTd(accept.td)).toEqual({ outcome: 'vmm-error', reason: 'the VMM stopped the guest at tdx.onAcceptViolation (attack program)' });
    const write = tdUnder(`mov qword ptr [0x${P.toString(16)}], 1\n ${HALT}`, [call('tdx.onPrivateEptViolation', { kind: 'stop' })]);
    expect(runTd(write.td)).toEqual({ outcome: 'vmm-error', reason: 'the VMM stopped the guest at tdx.onPrivateEptViolation (attack program)' });
    expect(write.td.platform.module.sept.walk(P, 0).state).toBe('FREE'); // nothing was faulted in
  });
});

describe('adversary, TDX MapGPA lies', () => {
  it('converts only what lies inside guest memory: a request across its end AUGs the pages below it and asks nothing beyond', () => {
    const last = MEMORY - 0x1000n;
    const { td } = tdUnder(`${mapGpa(last, 0x2000n)}\n ${HALT}`, [call('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0x100000n, status: 0n })]);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0n); // the lie: SUCCESS for a range half outside RAM
    expect(td.platform.module.sept.walk(last, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    expect(runtimeSeamcalls(td).filter((c) => BigInt(c.split(' ')[1]!) >= MEMORY)).toEqual([]);
    expect(td.trace.ofType('adversary')).toEqual([]);
  });

  it('with convertBytes 0 converts nothing: no SEAMCALL, no shared-EPT change; the guest still gets the status', () => {
    const { td } = tdUnder(`${mapGpa(P | TDX_SHARED_BIT, 0x1000n)}\n ${HALT}`, [call('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0n, status: 0n })]);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0n);
    expect(runtimeSeamcalls(td)).toEqual([]);
    expect(td.trace.ofType('shared-ept')).toEqual([]);
  });

  it('a conversion the module refuses halfway is recorded, and the guest still gets the lie', () => {
    // The guest's ACCEPT of P makes a SEPT page for P's 2 MiB (a non-leaf); a host BLOCK of it
    // (exit 1, before the MapGPA is answered) leaves a blocked non-leaf, which the conversion to
    // shared cannot demote or remove: DEMOTE/REMOVE work on leaves only (tdh_mem_page_demote.c).
    const { td } = tdUnder(`${acceptAsm(P)}\n ${mapGpa(P | TDX_SHARED_BIT, 0x1000n)}\n ${HALT}`, [
      { at: 'exit', exitIndex: 1, action: { kind: 'tdx.seamcall', op: 'BLOCK', gpa: P, level: 1 } },
      call('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0x1000n, status: 0n }),
    ]);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0n);
    expect(td.platform.module.sept.walk(P, 0)).toMatchObject({ level: 1, state: 'NL_BLOCKED' });
    const failed = td.trace.ofType('adversary').filter((e) => e.point === 'tdx.mapGpa');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.failed).toMatch(/^TDH\.MEM\.PAGE\.DEMOTE failed: /);
  });
});

describe('adversary, TDX CPUID', () => {
  it('TDVMCALL<Instruction.CPUID> is no decision point: the guest gets the honest answer whatever the program says elsewhere', () => {
    // GHCI Instruction.CPUID (sub-function 10): R12/R13 = leaf/subleaf in, R12..R15 = EAX..EDX out;
    // the honest VMM offers no hypervisor leaves (all zero, SUCCESS).
    const cpuid = `mov r12, 0x40000000\n xor r13d, r13d\n mov r14, -1\n mov r15, -1\n xor eax, eax\n mov ecx, 0xfc00\n xor r10d, r10d\n mov r11d, 10\n ${TDCALL}
      mov rbx, r10\n mov rsi, r12\n mov rdi, r13\n mov r8, r14\n mov r9, r15\n ${HALT}`;
    const { td, book } = tdUnder(cpuid, [call('tdx.otherVmcall', { kind: 'vmcall-return', effect: 'none', regs: { r10: 0x8000000000000003n } }, FOREVER)]);
    expect(runTd(td).outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.rbx, r.rsi, r.rdi, r.r8, r.r9]).toEqual([0n, 0n, 0n, 0n, 0n]);
    expect([...book.callCounts.keys()]).toEqual(['tdx.instructionHlt']);
  });
});

describe('adversary, TDX host SEAMCALL actions', () => {
  /** tdx.seamcall as the adversary runs it: 'ok' or the status class (bits 63:32) in hex. */
  function seamcall(td: Td, op: Extract<HostAction, { kind: 'tdx.seamcall' }>['op'], gpa: bigint, level: 0 | 1): string {
    return tdxHostAction(td.platform.module.host, { kind: 'tdx.seamcall', op, gpa, level });
  }

  it('each op is the SEAMCALL of its name: AUG, BLOCK, UNBLOCK, TRACK, DEMOTE and REMOVE on a running TD', () => {
    const td = tdGuest(HALT); // launched and finalized: P's 2 MiB is FREE, the PD above it exists
    const walk = (gpa: bigint, level: 0 | 1) => td.platform.module.sept.walk(gpa, level);
    // Status classes (bits 63:32) from the TDX module (tdx_error_codes_defs.h): EPT_ENTRY_STATE_INCORRECT
    // 0xC0000B0D, GPA_RANGE_NOT_BLOCKED 0xC0000B06, TLB_TRACKING_NOT_DONE 0xC0000B08.
    expect(seamcall(td, 'AUG', P, 1)).toBe('ok');
    expect(walk(P, 1)).toMatchObject({ level: 1, state: 'PENDING' });
    // tdh_mem_range_unblock.c: an entry that is not blocked fails the state lookup.
    expect(seamcall(td, 'UNBLOCK', P, 1)).toBe('0xc0000b0d');
    // tdh_mem_page_demote.c / tdh_mem_page_remove.c on a running TD: the entry must be blocked,
    // and the block tracked (TDH.MEM.TRACK) before it is split or removed.
    expect(seamcall(td, 'DEMOTE', P, 1)).toBe('0xc0000b06');
    expect(seamcall(td, 'BLOCK', P, 1)).toBe('ok');
    expect(walk(P, 1).state).toBe('PENDING_BLOCKED');
    expect(seamcall(td, 'DEMOTE', P, 1)).toBe('0xc0000b08');
    expect(seamcall(td, 'TRACK', P, 0)).toBe('ok');
    expect(seamcall(td, 'DEMOTE', P, 1)).toBe('ok');
    // A demoted PENDING 2M leaf: 512 PENDING 4K leaves, unblocked.
    expect(walk(P + 0x1ff000n, 0)).toMatchObject({ level: 0, state: 'PENDING' });
    expect(seamcall(td, 'REMOVE', P, 0)).toBe('0xc0000b06');
    expect(seamcall(td, 'BLOCK', P, 0)).toBe('ok');
    expect(seamcall(td, 'TRACK', P, 0)).toBe('ok');
    expect(seamcall(td, 'REMOVE', P, 0)).toBe('ok');
    expect(walk(P, 0).state).toBe('FREE');
    expect(seamcall(td, 'BLOCK', P + 0x1000n, 0)).toBe('ok');
    expect(seamcall(td, 'TRACK', P, 0)).toBe('ok');
    expect(seamcall(td, 'UNBLOCK', P + 0x1000n, 0)).toBe('ok');
    expect(walk(P + 0x1000n, 0).state).toBe('PENDING');
  });

  it('each op makes the SEAMCALL of its name, PROMOTE and SEPT_ADD too, whatever the module answers', () => {
    const td = tdGuest(HALT);
    // TDX module 1.5 ABI leaf names (tdx_api_defs.h: TDH_MEM_*).
    const leaves = { AUG: 'TDH_MEM_PAGE_AUG', BLOCK: 'TDH_MEM_RANGE_BLOCK', UNBLOCK: 'TDH_MEM_RANGE_UNBLOCK', TRACK: 'TDH_MEM_TRACK', REMOVE: 'TDH_MEM_PAGE_REMOVE',
      DEMOTE: 'TDH_MEM_PAGE_DEMOTE', PROMOTE: 'TDH_MEM_PAGE_PROMOTE', SEPT_ADD: 'TDH_MEM_SEPT_ADD' } as const;
    for (const [op, leaf] of Object.entries(leaves) as [keyof typeof leaves, string][]) {
      seamcall(td, op, P, 1);
      expect(td.trace.ofType('seamcall').at(-1)?.leaf, op).toBe(leaf);
    }
  });

  it('shared-write: a private page refuses the host (TDX: private memory is the TD\'s alone) and is left as it was; a shared page takes the bytes', () => {
    const td = tdGuest(HALT);
    const memory = td.platform.machine.memory;
    const before = Buffer.from(memory.read(CODE_BASE, 8));
    const refused = tdxHostAction(td.platform.module.host, { kind: 'shared-write', gpa: CODE_BASE, size: 8, value: 0x1122334455667788n });
    expect(refused).toMatch(/^refused: host write refused: .* at 0x/);
    expect(Buffer.from(memory.read(CODE_BASE, 8)).equals(before)).toBe(true);
    // P's 2 MiB is FREE (never AUGed): no private page there, so the host's write lands.
    expect(tdxHostAction(td.platform.module.host, { kind: 'shared-write', gpa: P + 8n, size: 4, value: 0xaabbccddn })).toBe('ok');
    expect(Buffer.from(memory.read(P + 8n, 4))).toEqual(Buffer.from([0xdd, 0xcc, 0xbb, 0xaa]));
  });

  it('an action of the other platform is not carried out on either: "unsupported"', () => {
    const td = tdGuest(HALT);
    expect(tdxHostAction(td.platform.module.host, { kind: 'snp.psmash', spa: P })).toBe('unsupported');
    const g = snpGuest('hlt');
    const before = g.platform.rmp.lookup(P);
    expect(snpHostAction({ captured: new Map() }, g.platform.handle, { kind: 'tdx.seamcall', op: 'AUG', gpa: P, level: 0 })).toBe('unsupported');
    expect(g.platform.rmp.lookup(P)).toEqual(before);
  });
});

describe('adversary, TDX answers from a mutation sweep of adversary.ts', () => {
  it('aug-2m: the ACCEPT exit gets a 2M PENDING page; the guest\'s 2M ACCEPT then succeeds', () => {
    const { td } = tdUnder(`${acceptAsm(P, 1)}\n mov rbx, rax\n ${HALT}`, [call('tdx.onAcceptViolation', { kind: 'ept', action: 'aug-2m' }, FOREVER)]);
    expect(runTd(td).outcome).toBe('done');
    // TDG.MEM.PAGE.ACCEPT at level 1 of a PENDING 2M leaf: SUCCESS, the leaf MAPPED (a 4K AUG
    // would have left the 2M ACCEPT with a leaf at a smaller level: the module refuses it).
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0n);
    expect(td.platform.module.sept.walk(P, 1)).toMatchObject({ level: 1, state: 'MAPPED' });
  });

  it('map-gpa: converts no more than the guest asked (convertBytes beyond the request is clipped to it), records the guest\'s release, and R11 = R12 + resumeDelta', () => {
    const start = P | TDX_SHARED_BIT;
    const { td } = tdUnder(`${mapGpa(start, 0x1000n)}\n ${HALT}`, [call('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0x100000n, status: 1n, resumeDelta: 0x1000n })]);
    expect(runTd(td).outcome).toBe('done');
    const r = td.platform.machine.vcpu.regs;
    expect([r.rbx, r.rsi]).toEqual([1n, start + 0x1000n]);
    expect(td.trace.ofType('shared-ept').map((e) => [e.gpa, e.size, e.mapped])).toEqual([[P, 0x1000n, true]]);
    expect(td.trace.ofType('guest-release').map((e) => [e.gpa, e.bytes])).toEqual([[P, 0x1000n]]);
    expect(td.trace.ofType('guest-reclaim')).toEqual([]);
  });

  it('records a MapGPA to private as the guest reclaiming the range, not releasing it', () => {
    const { td } = tdUnder(`${mapGpa(P, 0x2000n)}\n ${HALT}`, []);
    expect(runTd(td).outcome).toBe('done');
    expect(td.trace.ofType('guest-reclaim').map((e) => [e.gpa, e.bytes])).toEqual([[P, 0x2000n]]);
    expect(td.trace.ofType('guest-release')).toEqual([]);
  });

  it('the livelock guard ends a guest that repeats the same MapGPA, as out of budget', () => {
    const loop = `mov r14, ${LIVELOCK_REQUESTS + 50}\n 1:\n ${mapGpa(P | TDX_SHARED_BIT, 0x1000n)}\n dec r14\n jnz 1b\n ${HALT}`;
    const { td, book } = tdUnder(loop, []);
    const outcome = runTd(td);
    expect(outcome.outcome).toBe('budget');
    expect(outcome.reason).toMatch(new RegExp(`^livelock guard: the guest made the same page-state request ${LIVELOCK_REQUESTS} times in a row`));
    expect(book.callCounts.get('tdx.mapGpa')).toBe(LIVELOCK_REQUESTS - 1);
  });

  it('map-gpa with sharedEptOnly maps the VMM\'s shared EPT for a request to shared, and unmaps it for one to private', () => {
    for (const [start, mapped] of [[P | TDX_SHARED_BIT, true], [P, false]] as const) {
      const { td } = tdUnder(`${mapGpa(start, 0x1000n)}\n ${HALT}`, [call('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0x1000n, status: 0n, sharedEptOnly: true })]);
      expect(runTd(td).outcome).toBe('done');
      expect(td.trace.ofType('shared-ept').map((e) => [e.gpa, e.mapped])).toEqual([[P, mapped]]);
      expect(runtimeSeamcalls(td)).toEqual([]);
    }
  });

  it('vmcall-return with the honest effect: the VMM does the honest work, and the program\'s registers win over the honest ones', () => {
    const { td } = tdUnder(`${mapGpa(P | TDX_SHARED_BIT, 0x1000n)}\n ${HALT}`, [call('tdx.mapGpa', { kind: 'vmcall-return', effect: 'honest', regs: { r10: 5n } })]);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(5n);
    expect(td.trace.ofType('shared-ept').map((e) => [e.gpa, e.mapped])).toEqual([[P, true]]);
  });

  it('a MapGPA answered RETRY (status 1, GHCI 1.5 Table 3-1) is no refused change; a failure status is', () => {
    const statuses = (status: bigint) => {
      const { td, book } = tdUnder(`${mapGpa(P | TDX_SHARED_BIT, 0x1000n)}\n ${HALT}`, [call('tdx.mapGpa', { kind: 'map-gpa', convertBytes: 0n, status })]);
      book.probe = (gpa) => td.platform.pageState(gpa);
      expect(runTd(td).outcome).toBe('done');
      return td.trace.ofType('state-change-refused').map((e) => [e.gpa, e.to]);
    };
    expect(statuses(1n)).toEqual([]);
    expect(statuses(0x8000000000000000n)).toEqual([[P, 'shared']]);
  });

  it('replay-zeroed at level 1 takes the whole 2 MiB around the target away and gives it back PENDING', () => {
    const td = tdGuest(`${acceptAsm(P, 1)}\n ${HALT}`);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.module.sept.walk(P, 1)).toMatchObject({ level: 1, state: 'MAPPED' });
    expect(tdxHostAction(td.platform.module.host, { kind: 'tdx.replay-zeroed', gpa: P + 0x3000n, level: 1 })).toBe('ok');
    expect(td.platform.module.sept.walk(P, 1)).toMatchObject({ level: 1, state: 'PENDING' });
  });
});

// ------------------------------------------------------------------------------------------ SNP

function snpUnder(main: string, decisions: Decision[], options: Parameters<typeof snpGuest>[1] = {}) {
  const book = new DecisionBook({ platform: 'snp', decisions });
  const g = snpGuest(main, options);
  return { g, book, run: () => g.run(snpAdversaryPolicy(book, g.vmm)) };
}

/** PVALIDATE(validate) 4K of `gpa` (paging off: GVA = GPA); RAX → R8, RFLAGS → RBX. */
const pvalidate4k = (gpa: bigint) => `mov rax, 0x${gpa.toString(16)}\n xor ecx, ecx\n mov edx, 1\n ${PVALIDATE}\n pushfq\n pop rbx\n mov r8, rax\n hlt`;
/** The GHCB MSR set to `gpa` (a GHCB-page request, GHCB spec §2.3.1: GPA with info 0), VMGEXIT, HLT. */
/** Registers `gpa` as the vCPU's GHCB (KVM serves no other), then VMGEXITs with it. */
const vmgexitWithGhcbAt = (gpa: bigint) => `${msrProtocol(ghcbMsr.registerReq(gpa >> 12n))}\n mov ecx, 0xc0010130\n mov rax, 0x${gpa.toString(16)}\n mov rdx, rax\n shr rdx, 32\n wrmsr\n ${VMGEXIT}\n hlt`;
const CF = 1n;

describe('adversary, SNP NPF answers', () => {
  it('make-private: RMPUPDATE assigns the faulting page to the guest, not validated; its PVALIDATE then succeeds', () => {
    // P is hypervisor-owned: PVALIDATE takes #VMEXIT(NPF) (APM Vol. 2 §15.36.10, guest-owned check).
    const r = snpUnder(pvalidate4k(P), [call('snp.onNpf', { kind: 'npf', action: 'make-private' }, FOREVER)]);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.book.callCounts.get('snp.onNpf')).toBe(1);
    // PVALIDATE of an assigned, unvalidated 4K page: SUCCESS with CF=0 (Validated 0 → 1).
    expect(r.g.vm.vcpu.regs.r8).toBe(0n);
    expect(r.g.vm.vcpu.regs.rbx & CF).toBe(0n);
    expect(r.g.platform.rmp.lookup(P)).toMatchObject({ assigned: true, validated: true, pageSize: '4k', gpa: P, asid: r.g.platform.asid });
    expect(r.g.trace.ofType('npf-handled')).toEqual([]); // the adversary's RMPUPDATE, not the honest VMM's
  });

  it('npt-4k: the VMM maps the region with 4K NPT pages; a 4K PVALIDATE under a 2M mapping then succeeds', () => {
    // 4K RMP entries under a 2M NPT mapping: a 4K PVALIDATE takes NPF with SIZEM (APM Vol. 2 §15.36.11).
    const r = snpUnder(pvalidate4k(P + 0x3000n), [call('snp.onNpf', { kind: 'npf', action: 'npt-4k' }, FOREVER)]);
    for (let page = P; page < P + 0x200000n; page += 0x1000n) r.g.platform.rmpUpdate(page, { assigned: true, pageSize: '4k', gpa: page, asid: r.g.platform.asid });
    r.g.platform.setNptPageSize(P, '2m');
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.book.callCounts.get('snp.onNpf')).toBe(1);
    expect(r.g.platform.nptPageSize(P)).toBe('4k');
    expect(r.g.vm.vcpu.regs.r8).toBe(0n);
    expect(r.g.platform.rmp.lookup(P + 0x3000n).validated).toBe(true);
    expect(r.g.trace.ofType('npf-handled')).toEqual([]);
  });

  /** A 4K PVALIDATE of P + 0x3000 under an assigned 2M RMP entry and 2M NPT page; the VMM answers its first NPF with `action`, then stops. */
  const pvalidateUnder2mEntry = (action: 'psmash' | 'make-shared') => {
    const r = snpUnder(pvalidate4k(P + 0x3000n), [
      call('snp.onNpf', { kind: 'npf', action }),
      { at: 'call', point: 'snp.onNpf', occurrence: 1, repeat: FOREVER, answer: { kind: 'stop' } },
    ]);
    r.g.platform.rmpUpdate(P, { assigned: true, pageSize: '2m', gpa: P, asid: r.g.platform.asid });
    r.g.platform.setNptPageSize(P, '2m');
    return r;
  };

  it('psmash: the VMM splits the 2M RMP entry and maps the region with 4K NPT pages, so a 4K PVALIDATE under a 2M entry then succeeds', () => {
    // A 4K PVALIDATE of a page in an assigned 2M RMP entry takes NPF with SIZEM (APM Vol. 2
    // §15.36.11); after PSMASH the entries are 4K, and a 4K NPT mapping lets the retry through.
    const r = pvalidateUnder2mEntry('psmash');
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.book.callCounts.get('snp.onNpf')).toBe(1);
    expect([r.g.platform.nptPageSize(P), r.g.platform.rmp.lookup(P + 0x3000n).pageSize]).toEqual(['4k', '4k']);
    expect(r.g.vm.vcpu.regs.r8).toBe(0n);
  });

  it('make-shared of a page in a 2M RMP entry: the VMM splits it first, then that 4K page alone is the hypervisor\'s', () => {
    const r = pvalidateUnder2mEntry('make-shared');
    r.run();
    expect(r.g.platform.rmp.lookup(P + 0x3000n)).toMatchObject({ assigned: false, pageSize: '4k' });
    expect(r.g.platform.rmp.lookup(P + 0x2000n)).toMatchObject({ assigned: true, pageSize: '4k', gpa: P + 0x2000n });
  });

  it('resume at a HLT: the guest goes on after it', () => {
    const r = snpUnder('hlt\n mov rbx, 1\n hlt', [call('snp.onHlt', { kind: 'resume' })]);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.g.vm.vcpu.regs.rbx).toBe(1n);
  });

  it('host actions: an RMPUPDATE to hypervisor-owned gives the page ASID 0; a restore from a slot nothing was captured in writes nothing', () => {
    const g = snpGuest('hlt');
    const host = g.platform.handle;
    expect(snpHostAction({ captured: new Map() }, host, { kind: 'snp.rmpupdate', spa: P, assigned: true, pageSize: '4k', gpa: P })).toBe('SUCCESS');
    expect(g.platform.rmp.lookup(P)).toMatchObject({ assigned: true, asid: g.platform.asid });
    expect(snpHostAction({ captured: new Map() }, host, { kind: 'snp.rmpupdate', spa: P, assigned: false, pageSize: '4k', gpa: P })).toBe('SUCCESS');
    expect(g.platform.rmp.lookup(P)).toMatchObject({ assigned: false, asid: 0 });
    // The request itself names ASID 0, as a hypervisor-owned entry has (Linux rmp_make_shared:
    // RMPUPDATE with a zeroed state), not the guest's.
    expect(g.trace.ofType('rmpupdate').at(-1)).toMatchObject({ assigned: false, asid: 0 });
    g.vm.memory.writeU64(P + 0x1000n, 0x1234n);
    expect(snpHostAction({ captured: new Map() }, host, { kind: 'snp.restore', slot: 3, spa: P + 0x1000n })).toBe('empty-slot');
    expect(g.vm.memory.readU64(P + 0x1000n)).toBe(0x1234n);
  });

  it('stop at an NPF or a HLT ends the run as vmm-error at that decision point', () => {
    const npf = snpUnder(pvalidate4k(P), [call('snp.onNpf', { kind: 'stop' })]);
    expect(npf.run()).toEqual({ outcome: 'vmm-error', reason: 'the VMM stopped the guest at snp.onNpf (attack program)' });
    expect(npf.g.platform.rmp.lookup(P).assigned).toBe(false);
    const hlt = snpUnder('hlt', [call('snp.onHlt', { kind: 'stop' })]);
    expect(hlt.run()).toEqual({ outcome: 'vmm-error', reason: 'the VMM stopped the guest at snp.onHlt (attack program)' });
  });
});

describe('adversary, SNP VMGEXIT decision points and answers', () => {
  it('a GHCB GPA past the end of guest memory is snp.ghcb.other: the VMM reads no GHCB page there', () => {
    const r = snpUnder(vmgexitWithGhcbAt(MEMORY), [call('snp.ghcb.other', { kind: 'stop' })]);
    expect(r.run()).toEqual({ outcome: 'vmm-error', reason: 'the VMM stopped the guest at snp.ghcb.other (attack program)' });
  });

  it('SW_EXITCODE 0x8000FFFD in the GHCB page is snp.ghcb.hvFeatures (GHCB spec: SNP hypervisor feature support)', () => {
    const r = snpUnder(`${ghcbCall({ exitCode: BigInt(SVM_EXIT.HV_FEATURES) })}\n hlt`, [call('snp.ghcb.hvFeatures', { kind: 'stop' })], { mappings: privateIdentityWithGhcb() });
    expect(SVM_EXIT.HV_FEATURES).toBe(0x8000fffd);
    expect(r.run()).toEqual({ outcome: 'vmm-error', reason: 'the VMM stopped the guest at snp.ghcb.hvFeatures (attack program)' });
  });

  it('a GHCB field the VMM cannot write (the guest named a private page as its GHCB) fails the lie, and the guest resumes', () => {
    // CODE_BASE was validated at launch: assigned to the guest, so a host write to it is
    // RMP-protected (APM Vol. 2 §15.36.10).
    const r = snpUnder(vmgexitWithGhcbAt(CODE_BASE), [call('snp.ghcb.other', { kind: 'vmgexit', effect: 'none', ghcb: { swExitInfo2: 1n } })]);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    const failed = r.g.trace.ofType('adversary');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ point: 'snp.ghcb.other' });
    expect(String(failed[0]!.failed)).toMatch(/write refused/);
  });

  it('the livelock guard ends a guest that repeats the same page-state request, as out of budget', () => {
    const loop = `mov r12, ${LIVELOCK_REQUESTS + 50}\n 1:\n ${msrProtocol(ghcbMsr.pscReq(P >> 12n, PSC_OP.SHARED))}\n dec r12\n jnz 1b\n hlt`;
    const r = snpUnder(loop, []);
    const outcome = r.run();
    expect(outcome.outcome).toBe('budget');
    expect(outcome.reason).toMatch(new RegExp(`^livelock guard: the guest made the same page-state request ${LIVELOCK_REQUESTS} times in a row`));
    expect(r.g.trace.ofType('guest-request')).toHaveLength(LIVELOCK_REQUESTS);
  });
});

// GHCB spec "GHCB GPA Registration": a hypervisor that will not work with the guest's GPA answers
// -1 (all ones in GHCBData[63:12]); a hostile one may name another page. KVM serves only the GHCB
// GPA it registered (sev.c sev_handle_vmgexit: ghcb_gpa_is_registered).
describe('adversary, SNP GHCB registration answers', () => {
  /** Registers GHCB_GPA (response → R12), then uses it for one IOIO call (SW_EXITINFO1 → R13). */
  const registerThenCall = `${msrProtocol(ghcbMsr.registerReq(GHCB_GPA >> 12n))}
    mov r12, rax
    ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | 0x10n, rax: 0x48n })}
    mov r13, [rdi+0x398]
    hlt`;

  it('refuse: the response 0x013 with GFN all ones, nothing registered, so the guest\'s GHCB call stops the VM', () => {
    const r = snpUnder(registerThenCall, [call('snp.msr.registerGhcb', { kind: 'ghcb-registration', response: 'refuse' })], { mappings: privateIdentityWithGhcb() });
    expect(r.run()).toMatchObject({ outcome: 'vmm-error', reason: expect.stringMatching(/^GHCB GPA 0x30000 is not registered \(this vCPU registered no GHCB\)/) });
    expect(r.g.vm.vcpu.regs.r12).toBe(0xfffffffffffff013n);
    expect(r.g.vmm.registeredGhcb).toBeUndefined();
  });

  it('other-gfn: the guest\'s GFN + gfnDelta answered and registered in its place (the GFN field wraps at 52 bits)', () => {
    const r = snpUnder(registerThenCall, [call('snp.msr.registerGhcb', { kind: 'ghcb-registration', response: 'other-gfn', gfnDelta: 2n })], { mappings: privateIdentityWithGhcb() });
    expect(r.run()).toMatchObject({ outcome: 'vmm-error', reason: expect.stringMatching(/^GHCB GPA 0x30000 is not registered \(this vCPU registered 0x32000\)/) });
    expect(r.g.vm.vcpu.regs.r12).toBe(ghcbMsr.registerResp((GHCB_GPA >> 12n) + 2n));
    const below = snpUnder(registerThenCall, [call('snp.msr.registerGhcb', { kind: 'ghcb-registration', response: 'other-gfn', gfnDelta: -(GHCB_GPA >> 12n) - 1n })], { mappings: privateIdentityWithGhcb() });
    below.run();
    expect(below.g.vm.vcpu.regs.r12).toBe(0xfffffffffffff013n);
  });

  it('is its decision point\'s only answer: the next registration is answered honestly, and the GHCB then serves', () => {
    const twice = `${msrProtocol(ghcbMsr.registerReq(GHCB_GPA >> 12n))}\n mov r11, rax\n ${registerThenCall}`;
    const r = snpUnder(twice, [call('snp.msr.registerGhcb', { kind: 'ghcb-registration', response: 'refuse' })], { mappings: privateIdentityWithGhcb() });
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect([r.g.vm.vcpu.regs.r11, r.g.vm.vcpu.regs.r12, r.g.vm.vcpu.regs.r13]).toEqual([0xfffffffffffff013n, ghcbMsr.registerResp(GHCB_GPA >> 12n), 0n]);
    expect(r.g.vmm.console.text).toBe('H');
  });
});

describe('adversary, SNP page-state requests as the oracle sees them', () => {
  /** A GHCB-page PSC request the host wrote into the shared GHCB page at `ghcb`, made by the guest's VMGEXIT. */
  function pscRequest(ghcb: bigint, header: { cur: number; end: number }, entries: bigint[], decisions: Decision[] = []) {
    const r = snpUnder(vmgexitWithGhcbAt(ghcb), decisions);
    const mem = r.g.vm.memory;
    mem.writeU64(ghcb + BigInt(GHCB_OFFSET.swExitCode), BigInt(SVM_EXIT.PSC));
    const buffer = ghcb + BigInt(GHCB_OFFSET.sharedBuffer);
    mem.writeU16(buffer, header.cur);
    mem.writeU16(buffer + 2n, header.end);
    entries.forEach((e, i) => mem.writeU64(buffer + 8n + BigInt(i) * 8n, e));
    return r;
  }

  it('a PSMASH-hint entry (GHCB spec PSC operation 3) is no page-state change: refusing the request refuses only the private entry beside it', () => {
    // The VMM answers the PSC with SW_EXITINFO2 ≠ 0, a failure (GHCB spec §4.1.6), and does nothing.
    const r = pscRequest(GHCB_GPA, { cur: 0, end: 1 }, [
      encodePscEntry({ curPage: 0, gfn: 0x600n, op: PSC_OP.PSMASH, size2m: true }),
      encodePscEntry({ curPage: 0, gfn: P >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ], [call('snp.ghcb.psc', { kind: 'vmgexit', effect: 'none', ghcb: { swExitInfo2: 1n } })]);
    r.book.probe = (gpa) => r.g.platform.pageState(gpa);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.g.trace.ofType('guest-release')).toEqual([]);
    expect(r.g.trace.ofType('guest-reclaim').map((e) => [e.gpa, e.bytes])).toEqual([[P, 0x1000n]]);
    // P is still hypervisor-owned (shared): the refused change did not happen behind the guest's back.
    expect(r.g.trace.ofType('state-change-refused').map((e) => [e.gpa, e.to, e.reached])).toEqual([[P, 'private', false]]);
  });

  it('a 2 MiB PSC entry asks for 2 MiB; SW_EXITINFO1 with only bits 63:32 set is no failure (Linux vmgexit_psc: lower_32_bits(sw_exit_info_1))', () => {
    const r = pscRequest(GHCB_GPA, { cur: 0, end: 0 }, [encodePscEntry({ curPage: 0, gfn: 0x600n, op: PSC_OP.PRIVATE, size2m: true })],
      [call('snp.ghcb.psc', { kind: 'vmgexit', effect: 'none', ghcb: { swExitInfo1: 1n << 32n } })]);
    r.book.probe = (gpa) => r.g.platform.pageState(gpa);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.g.trace.ofType('guest-reclaim').map((e) => [e.gpa, e.bytes])).toEqual([[0x600000n, 0x200000n]]);
    expect(r.g.trace.ofType('state-change-refused')).toEqual([]);
  });

  it('an MSR-protocol PSC asks for the page of its GFN; a response with an error in bits 63:32 is a failure (GHCB spec §2.3.1: 0 = success)', () => {
    const resp = ghcbMsr.pscResp(1);
    const r = snpUnder(`${msrProtocol(ghcbMsr.pscReq(P >> 12n, PSC_OP.PRIVATE))}\n mov rbx, rax\n hlt`,
      [call('snp.msr.psc', { kind: 'vmgexit', effect: 'none', msr: resp })]);
    r.book.probe = (gpa) => r.g.platform.pageState(gpa);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.g.vm.vcpu.regs.rbx).toBe(resp); // the VMM's answer, as the guest reads the GHCB MSR
    expect(r.g.trace.ofType('guest-reclaim').map((e) => [e.gpa, e.bytes])).toEqual([[P, 0x1000n]]);
    expect(r.g.trace.ofType('state-change-refused').map((e) => [e.gpa, e.to, e.reached])).toEqual([[P, 'private', false]]);
  });

  it('a pscHeader lie writes end_entry at buffer + 2 and the reserved word at buffer + 4, before the first entry (GHCB spec §4.1.6: cur_entry, end_entry, reserved)', () => {
    const entry = encodePscEntry({ curPage: 0, gfn: P >> 12n, op: PSC_OP.PRIVATE, size2m: false });
    const buffer = GHCB_GPA + BigInt(GHCB_OFFSET.sharedBuffer);
    const header = (pscHeader: { endEntry?: number; reserved?: number }) => {
      const r = pscRequest(GHCB_GPA, { cur: 0, end: 0 }, [entry], [call('snp.ghcb.psc', { kind: 'vmgexit', effect: 'none', pscHeader })]);
      expect(r.run()).toMatchObject({ outcome: 'done' });
      return [r.g.vm.memory.readU16(buffer), r.g.vm.memory.readU16(buffer + 2n), r.g.vm.memory.readU32(buffer + 4n), r.g.vm.memory.readU64(buffer + 8n)];
    };
    expect(header({ endEntry: 7 })).toEqual([0, 7, 0, entry]);
    expect(header({ reserved: 0xdeadbeef })).toEqual([0, 0, 0xdeadbeef, entry]);
  });

  it('pscEntries: the VMM makes that many entries from cur_entry, advances cur_entry past them and leaves end_entry as the guest wrote it; 0 makes none', () => {
    const entries = [0n, 1n, 2n].map((i) => encodePscEntry({ curPage: 0, gfn: (P >> 12n) + i, op: PSC_OP.PRIVATE, size2m: false }));
    const buffer = GHCB_GPA + BigInt(GHCB_OFFSET.sharedBuffer);
    for (const n of [0, 2]) {
      const r = pscRequest(GHCB_GPA, { cur: 0, end: 2 }, entries, [call('snp.ghcb.psc', { kind: 'vmgexit', effect: 'honest', pscEntries: n })]);
      // What the honest VMM needs of a PSC request (KVM sev_es_validate_vmgexit, setup_vmgexit_scratch):
      // SW_EXITCODE, SW_EXITINFO1/2 and SW_SCRATCH valid, the scratch area the shared buffer.
      r.g.vm.memory.writeU64(GHCB_GPA + BigInt(GHCB_OFFSET.swScratch), buffer);
      for (const field of ['swExitCode', 'swExitInfo1', 'swExitInfo2', 'swScratch'] as const) {
        const bit = GHCB_OFFSET[field] / 8;
        const at = GHCB_GPA + BigInt(GHCB_OFFSET.validBitmap + (bit >> 3));
        r.g.vm.memory.write(at, new Uint8Array([r.g.vm.memory.read(at, 1)[0]! | (1 << (bit & 7))]));
      }
      expect(r.run()).toMatchObject({ outcome: 'done' });
      expect([0n, 1n, 2n].map((i) => r.g.platform.rmp.lookup(P + i * 0x1000n).assigned), `pscEntries ${n}`).toEqual([n > 0, n > 1, false]);
      expect([r.g.vm.memory.readU16(buffer), r.g.vm.memory.readU16(buffer + 2n)], `pscEntries ${n}`).toEqual([n, 2]);
      // No error for the guest either way: 0 entries is the VMM doing nothing, not a bad request.
      expect(r.g.vm.memory.readU64(GHCB_GPA + BigInt(GHCB_OFFSET.swExitInfo2)), `pscEntries ${n}`).toBe(0n);
    }
  });

  it('of a request whose end_entry is one past the buffer, the last entry the buffer holds (252) is asked for and the next 8 bytes are no entry', () => {
    // GHCB spec §4.1.6: entries 0..252; the 8 bytes after entry 252 are still in the GHCB page.
    const entries = new Array<bigint>(254).fill(0n);
    entries[252] = encodePscEntry({ curPage: 0, gfn: P >> 12n, op: PSC_OP.PRIVATE, size2m: false });
    entries[253] = encodePscEntry({ curPage: 0, gfn: (P >> 12n) + 1n, op: PSC_OP.PRIVATE, size2m: false });
    const r = pscRequest(GHCB_GPA, { cur: 252, end: 253 }, entries);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.g.trace.ofType('guest-request').map((e) => e.key)).toEqual([`psc-ghcb 252-253 ${entries[252]!.toString(16)}`]);
    expect(r.g.trace.ofType('guest-reclaim').map((e) => [e.gpa, e.bytes])).toEqual([[P, 0x1000n]]);
  });

  it('a cur_entry past the 253 entries a PSC buffer holds is keyed without reading an entry beyond the GHCB page', () => {
    // GHCB spec §4.1.6: the buffer holds entries 0..252; 0xFFFF would lie 512 KiB past the header.
    // With the GHCB on the last page of memory, reading it would run off the end of guest memory.
    const r = pscRequest(MEMORY - 0x1000n, { cur: 0xffff, end: 0xffff }, []);
    expect(r.run()).toMatchObject({ outcome: 'done' });
    expect(r.g.trace.ofType('guest-request').map((e) => e.key)).toEqual(['psc-ghcb 65535-65535 0']);
    expect(r.g.trace.ofType('guest-release')).toEqual([]);
    expect(r.g.trace.ofType('guest-reclaim')).toEqual([]);
  });
});
