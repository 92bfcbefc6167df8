// Table A7 (TDG.VP.VMCALL / GHCI) and the honest VMM's MapGPA, through real TDCALLs.
import { describe, expect, it } from 'vitest';
import { honestTdxPolicy, type TdxVmmPolicy, type VmcallExit } from '../../../src/vmm/tdx/honest-vmm.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { acceptAsm, HALT, runTdGuest, TDCALL, tdGuest } from '../../helpers/tdx-guest.js';

const MASK = 0xfc00n; // R10–R15 exposed
const vmcall = (r11: bigint, extra = '', mask = MASK) => `mov rax, 0\n mov rcx, 0x${mask.toString(16)}\n xor r10, r10\n mov r11, 0x${r11.toString(16)}\n ${extra}\n ${TDCALL}`;

describe('A7 RCX register-exposure mask', () => {
  it.each([
    ['bit 0 (RAX)', 0xfc01n], ['bit 1 (RCX)', 0xfc02n], ['bit 4 (RSP)', 0xfc10n], ['bits 63:32', (1n << 32n) | 0xfc00n],
  ])('%s → OPERAND_INVALID(RCX), no TD exit', (_n, mask) => {
    const { td, outcome } = runTdGuest(`${vmcall(0x10000n, '', mask)}\n mov rbx, rax\n ${HALT}`);
    expect(outcome.outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rbx).toBe(0xc000010000000001n);
    expect(td.trace.ofType('td-exit')).toHaveLength(1); // only the final TDVMCALL<HLT>
  });

  it('non-exposed registers read as 0 toward the VMM and cannot be changed by it', () => {
    let seen: VmcallExit | undefined;
    const policy: TdxVmmPolicy = {
      ...honestTdxPolicy,
      otherVmcall(_ctx, call) {
        seen = call;
        // Out of VMCALL_REGS order: the trace still lists the ignored ones in that order.
        return { kind: 'return', regs: { rsi: 0xbadn, r12: 0x12n, rbx: 0xbadn, r11: 0x11n, r10: 0n } };
      },
    };
    const { td, outcome } = runTdGuest(`mov rbx, 0x5151\n mov rsi, 0x6161\n mov r12, 7\n ${vmcall(0x777n)}\n mov rdi, rax\n mov r13, r10\n mov r14, r11\n mov r15, rcx\n ${HALT}`, { policy });
    expect(outcome.outcome).toBe('done');
    expect(seen!.regs).toMatchObject({ rbx: 0n, rsi: 0n, r12: 7n, r11: 0x777n, rcx: MASK });
    const r = td.platform.machine.vcpu.regs;
    expect([r.rdi, r.r13, r.r14, r.r12, r.rbx, r.rsi, r.r15]).toEqual([0n, 0n, 0x11n, 0x12n, 0x5151n, 0x6161n, MASK]);
    expect(td.trace.ofType('vmcall-complete')[0]).toMatchObject({ ignoredUnexposed: ['rbx', 'rsi'] });
  });
});

describe('A7 sub-functions (honest VMM)', () => {
  it('unknown sub-function → SUBFUNC_UNSUPPORTED in R10, TDCALL status 0', () => {
    const { td } = runTdGuest(`${vmcall(0x12345n)}\n mov rbx, rax\n mov rsi, r10\n ${HALT}`);
    expect([td.platform.machine.vcpu.regs.rbx, td.platform.machine.vcpu.regs.rsi]).toEqual([0n, 0x8000000000000003n]);
  });

  it('vendor-specific call (R10 ≠ 0) → SUBFUNC_UNSUPPORTED', () => {
    const { td } = runTdGuest(`mov rax, 0\n mov rcx, 0xfc00\n mov r10, 1\n mov r11, 0x10000\n ${TDCALL}\n mov rsi, r10\n ${HALT}`);
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0x8000000000000003n);
  });

  it('GetTdVmCallInfo → SUCCESS', () => {
    const { td } = runTdGuest(`mov r12, 0\n mov rsi, 1\n ${vmcall(0x10000n)}\n mov rsi, r10\n ${HALT}`);
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0n);
  });

  it('Instruction.IO (30) OUT to COM1 prints on the console', () => {
    const out = (ch: string) => `mov r12, 1\n mov r13, 1\n mov r14, 0x3f8\n mov r15, ${ch.charCodeAt(0)}\n ${vmcall(30n)}`;
    const { td, outcome } = runTdGuest(`${out('H')}\n ${out('i')}\n ${out('\n')}\n mov r12, 1\n mov r13, 0\n mov r14, 0x3fd\n ${vmcall(30n)}\n mov rsi, r11\n ${HALT}`);
    expect(outcome.outcome).toBe('done');
    expect(td.console.text).toBe('Hi\n');
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0x60n);
  });

  it('ReportFatalError (0x10003): the 64-byte message becomes the guest-fatal outcome', () => {
    const msg = Buffer.alloc(64);
    msg.write('TDX: Failed to accept memory');
    const regs = ['r14', 'r15', 'rbx', 'rdi', 'rsi', 'r8', 'r9', 'rdx'];
    const loads = regs.map((r, i) => `mov ${r}, 0x${msg.readBigUInt64LE(i * 8).toString(16)}`).join('\n');
    const { outcome } = runTdGuest(`${loads}\n mov r12, 0\n ${vmcall(0x10003n, '', 0xffccn)}\n 1: jmp 1b`);
    expect(outcome).toEqual({ outcome: 'guest-fatal', reason: 'ReportFatalError 0x0: TDX: Failed to accept memory' });
  });

  it('TDVMCALL HLT ends the run', () => {
    const { outcome } = runTdGuest(`${vmcall(12n)}\n ud2`);
    expect(outcome.outcome).toBe('done');
  });

  // A VMM that answers HLT by resuming (a spurious wake) instead of blocking the vCPU.
  const waker = (limit: number): TdxVmmPolicy & { wakes: number } => ({
    ...honestTdxPolicy,
    wakes: 0,
    instructionHlt() {
      return this.wakes++ < limit ? { kind: 'return', regs: { r10: 0n } } : { kind: 'stop', outcome: { outcome: 'done', reason: 'enough' } };
    },
  });

  it('HLT with interrupts blocked, resumed again and again: no progress after 65 (a run does not spin to its budget)', () => {
    const policy = waker(1000);
    const { outcome } = runTdGuest(`1: mov r12, 1\n ${vmcall(12n)}\n jmp 1b`, { policy });
    expect(outcome).toEqual({ outcome: 'vmm-error', reason: expect.stringMatching(/^no progress: the same exit 65 times in a row \(HLT with interrupts blocked at RIP 0x[0-9a-f]+\)$/) });
    expect(policy.wakes).toBe(64);
  });

  it('runTd\'s maxStalledExits sets that limit: the VMM resumes the blocked HLT 3 times, the 4th is no progress', () => {
    const policy = waker(1000);
    const td = tdGuest(`1: mov r12, 1\n ${vmcall(12n)}\n jmp 1b`, { policy });
    expect(runTd(td, { maxStalledExits: 3 })).toEqual({ outcome: 'vmm-error', reason: expect.stringMatching(/^no progress: the same exit 4 times in a row \(HLT with interrupts blocked at RIP 0x[0-9a-f]+\)$/) });
    expect(policy.wakes).toBe(3);
  });

  it('HLT with interrupts open may be woken any number of times (an interrupt could end it)', () => {
    const policy = waker(100);
    const { outcome } = runTdGuest(`1: mov r12, 0\n ${vmcall(12n)}\n jmp 1b`, { policy });
    expect(outcome).toEqual({ outcome: 'done', reason: 'enough' });
    expect(policy.wakes).toBe(101);
  });
});

describe('the stubs\' batched console (vendor TDVMCALL 0x4d56, boot_abi.h)', () => {
  const SB = 1n << 47n;
  const PAGE = 0x400000n;
  // Makes PAGE shared (MapGPA), writes `text` through the shared alias, then asks the VMM to print
  // `count` bytes at `gpa`; RSI = R10 of the answer.
  const guest = (text: string, gpa: bigint, count: number) => {
    const stores = text.length > 64
      ? `mov rdi, rax\n mov al, ${text.charCodeAt(0)}\n mov rcx, ${text.length}\n rep stosb` // one repeated byte
      : [...Buffer.from(text, 'latin1')].map((b, i) => `mov byte ptr [rax+${i}], ${b}`).join('\n ');
    return `
      mov r12, 0x${(PAGE | SB).toString(16)}
      mov r13, 0x1000
      ${vmcall(0x10001n)}
      mov rax, 0x${(0x4000000000n + PAGE).toString(16)}
      ${stores}
      mov rax, 0
      mov rcx, 0x3c00
      mov r10, 0x4d56
      mov r11, 1
      mov r12, 0x${gpa.toString(16)}
      mov r13, ${count}
      ${TDCALL}
      mov rsi, r10
      ${HALT}`;
  };

  it('prints several lines of the shared page with one exit', () => {
    const text = '@mv stat a 1\n@mv stat b 2\n';
    const { td, outcome } = runTdGuest(guest(text, PAGE | SB, text.length));
    expect(outcome.outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0n);
    expect(td.console.text).toBe(text);
  });

  it('takes a full batch of BATCH_MAX (0x7f0) bytes, the GHCB shared buffer\'s size', () => {
    const text = 'A'.repeat(0x7f0);
    const { td, outcome } = runTdGuest(guest(text, PAGE | SB, text.length));
    expect(outcome.outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0n);
    expect(td.console.text).toBe(text);
  });

  it.each([
    ['a count over BATCH_MAX (0x7f0)', PAGE | SB, 0x7f1],
    ['a count running past the page', (PAGE + 0xff0n) | SB, 0x20],
    ['a private GPA (no shared bit)', PAGE, 4],
    ['a GPA past the end of memory', (64n << 20n) | SB, 4],
  ])('refuses %s with INVALID_OPERAND and prints nothing', (_what, gpa, count) => {
    const { td, outcome } = runTdGuest(guest('Hi\n', gpa, count));
    expect(outcome.outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.rsi).toBe(0x8000000000000000n);
    expect(td.console.text).toBe('');
  });
});

describe('MapGPA (0x10001): RETRY with resume GPA, private↔shared conversion', () => {
  const SB = 1n << 47n;
  // Converts [0x400000, +4 MiB) to shared, retrying from R11 as Linux tdx_map_gpa does.
  const mapLoop = (start: bigint, size: bigint) => `
      mov rbx, 0x${start.toString(16)}
      mov rbp, 0x${(start + size).toString(16)}
    2:
      mov r12, rbx
      mov r13, rbp
      sub r13, rbx
      ${vmcall(0x10001n)}
      cmp r10, 1
      jne 3f
      inc rdi
      mov rbx, r11
      jmp 2b
    3:`;

  it('private → shared (4 MiB in one call: nothing pending, no RETRY), data through the shared alias, back to private must be re-accepted', () => {
    const td = tdGuest(`
      ${acceptAsm(0x400000n, 1)}
      ${acceptAsm(0x600000n, 1)}
      mov qword ptr [0x400000], 0x1111
      ${mapLoop(0x400000n | SB, 0x400000n)}
      mov rax, 0x4000400000
      mov qword ptr [rax], 0x2222      # shared write works
      ${mapLoop(0x400000n, 0x1000n)}
      ${acceptAsm(0x400000n)}
      mov r9, rax
      mov r8, [0x400000]               # private again: re-accepted and zeroed
      ${HALT}`);
    const outcome = runTd(td);
    expect(outcome, outcome.reason).toMatchObject({ outcome: 'done' });
    const r = td.platform.machine.vcpu.regs;
    expect(r.rdi).toBe(0n); // KVM converts both 2 MiB rounds without returning: no event was pending
    expect(r.r9).toBe(0n);
    expect(r.r8).toBe(0n);
    const maps = td.trace.ofType('map-gpa');
    expect(maps.map((m) => [m.gpa, m.toShared])).toEqual([[0x400000n, true], [0x600000n, true], [0x400000n, false]]);
    // The 2M leaf was split so that only 4K went back to private; the rest of that 2M stays shared.
    expect(td.platform.module.sept.walk(0x401000n, 0).state).toBe('FREE');
    expect(td.platform.machine.gate.get('shared', 0x401000n)).toBe('readwrite');
    expect(td.platform.machine.gate.get('shared', 0x400000n)).toBe('none');
  });

  it('an interrupt pending between 2 MiB rounds ends the call with RETRY from the next round; the guest resumes there', () => {
    // The interrupt is posted before the run; the guest keeps IF clear, so it stays pending.
    const td = tdGuest(`${acceptAsm(0x400000n, 1)}\n ${acceptAsm(0x600000n, 1)}\n ${mapLoop(0x400000n | SB, 0x400000n)}\n ${HALT}`);
    td.platform.module.host.injectInterrupt(0x30);
    expect(runTd(td).outcome).toBe('done');
    // The first call converts one round and answers RETRY; the retry converts the last round (no
    // round after it to stop before: SUCCESS).
    expect(td.platform.machine.vcpu.regs.rdi).toBe(1n);
    expect(td.trace.ofType('vmm-decision').filter((d) => d.r10 === 1n).map((d) => d.r11)).toEqual([0x600000n | SB]);
    expect(td.trace.ofType('map-gpa').map((m) => m.gpa)).toEqual([0x400000n, 0x600000n]);
  });

  it('a private access to a page converted to shared is an EPT violation the VMM faults in (PENDING → #VE)', () => {
    const td = tdGuest(`${acceptAsm(0x400000n)}\n ${mapLoop(0x400000n | SB, 0x1000n)}\n mov rax, [0x400000]\n ${HALT}`);
    expect(runTd(td).outcome).toBe('done');
    expect(td.platform.machine.vcpu.regs.r15).toBe(20n);
  });

  // An end past the guest's physical-address width is KVM's own refusal (tdx_map_gpa); a range
  // merely past the end of RAM goes to QEMU, which stops the TD (honest-vmm-decisions.test.ts).
  it('misaligned or out-of-range MapGPA → ALIGN_ERROR / INVALID_OPERAND', () => {
    const { td } = runTdGuest(`mov r12, 0x400800\n mov r13, 0x1000\n ${vmcall(0x10001n)}\n mov rbx, r10
      mov r12, 0x400000\n mov r13, 0x10000000000000\n ${vmcall(0x10001n)}\n mov rsi, r10\n ${HALT}`);
    expect([td.platform.machine.vcpu.regs.rbx, td.platform.machine.vcpu.regs.rsi]).toEqual([0x8000000000000002n, 0x8000000000000000n]);
  });
});

describe('trace determinism', () => {
  it('the same guest gives the same trace hash', () => {
    const guest = `${acceptAsm(0x400000n, 1)}\n mov rax, [0x600000]\n ${HALT}`;
    const a = runTdGuest(guest);
    const b = runTdGuest(guest);
    expect(a.td.trace.sha256()).toBe(b.td.trace.sha256());
    expect(a.td.trace.counts.get('tdcall')).toBe(3); // TD exit (AUG on demand), success, TDVMCALL<HLT>
    expect(a.td.platform.module.mrtd!.toString('hex')).toBe(b.td.platform.module.mrtd!.toString('hex'));
  });
});
