// Several vCPUs on one TD: each runs on the one emulator in turns the seeded scheduler decides,
// over the same RAM and SEPT. Two vCPUs that accept the same page get one SUCCESS and one
// PAGE_ALREADY_ACCEPTED (tdg_mem_page_accept.c: the second walk finds the leaf MAPPED).
import { describe, expect, it } from 'vitest';
import type { Machine } from '../../../src/cpu/machine.js';
import { Vcpu } from '../../../src/cpu/vcpu.js';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import type { SchedulePolicy } from '../../../src/cpu/vcpu-scheduler.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { TdxStatus } from '../../../src/platform/tdx/status.js';
import { TDCALL, HALT, acceptAsm, tdGuest } from '../../helpers/tdx-guest.js';

const RESULTS = 0x3000n;   // per vCPU: [index from TDG.VP.INFO, accept status, done flag]
const PAGE = 0x400000n;
const COUNTER = 0x3100n;   // incremented by both with a plain read-modify-write
const SPECIALS = ['cr0', 'cr3', 'cr4', 'efer', 'gdtrBase', 'gdtrLimit', 'idtrBase', 'idtrLimit'] as const;

/**
 * After the accept (status in RAX): record the status and the done flag in this vCPU's slot
 * (RBX). vCPU 0 then waits for vCPU 1's flag and halts; vCPU 1 spins (PAUSE) forever.
 */
const RECORD_THEN_WAIT_OR_PARK = `
  mov [rbx + 8], rax
  mov qword ptr [rbx + 16], 1
  test r9, r9
  jnz park
wait:
  pause
  cmp qword ptr [${RESULTS + 32n + 16n}], 1
  jne wait
  ${HALT}
park:
  pause
  jmp park
`;

/**
 * Both vCPUs: TDG.VP.INFO, record R9 (VCPU_INDEX), bump the shared counter `rounds` times with a
 * load/add/store, accept the same 4K page, record the status, set a done flag. vCPU 0 then waits
 * for vCPU 1's flag and halts; vCPU 1 spins (PAUSE) forever.
 */
const BOTH = `
  mov rax, 1
  ${TDCALL}
  mov rbx, r9
  shl rbx, 5
  add rbx, ${RESULTS}
  mov [rbx], r9
  mov rcx, 200
bump:
  mov rax, [${COUNTER}]
  inc rax
  mov [${COUNTER}], rax
  dec rcx
  jnz bump
  ${acceptAsm(PAGE)}
  ${RECORD_THEN_WAIT_OR_PARK}`;

/** Gives vCPU `index` the paging, GDT and IDT vCPU 0 has, a stack of its own, and RIP = main. */
function startLikeBsp(machine: Machine, index: number): void {
  const values = SPECIALS.map((r) => machine.vcpu.readSpecial(r));
  const { rip, rsp } = machine.vcpu.regs;
  machine.switchVcpu(index);
  SPECIALS.forEach((r, i) => machine.vcpu.writeSpecial(r, values[i]!));
  for (const seg of ['cs', 'ss', 'ds', 'es'] as const) machine.vcpu.writeSpecial(seg, seg === 'cs' ? 0x08n : 0x10n);
  machine.vcpu.regs.rip = rip;
  machine.vcpu.regs.rsp = rsp - 0x8000n * BigInt(index);
  machine.switchVcpu(0);
}

function run(policy: SchedulePolicy, seed: bigint, quantum = 50) {
  const td = tdGuest(BOTH, { vcpus: 2, schedule: { policy, seed, quantum } });
  startLikeBsp(td.platform.machine, 1);
  const outcome = runTd(td);
  const mem = td.platform.machine.memory;
  const q = (gpa: bigint) => Buffer.from(mem.read(gpa, 8)).readBigUInt64LE();
  return {
    outcome, td,
    index: [q(RESULTS), q(RESULTS + 32n)],
    status: [q(RESULTS + 8n), q(RESULTS + 40n)],
    counter: q(COUNTER),
    hash: td.trace.sha256(),
    switches: td.platform.scheduler!.switches,
  };
}

/** Both vCPUs accept the same 2M page at once; vCPU 0 then waits for vCPU 1 and halts. */
const BOTH_2M = `
  mov rax, 1
  ${TDCALL}
  mov rbx, r9
  shl rbx, 5
  add rbx, ${RESULTS}
  ${acceptAsm(PAGE, 1)}
  ${RECORD_THEN_WAIT_OR_PARK}`;

describe('several vCPUs on one TD', () => {
  it('each vCPU sees its own VCPU_INDEX and NUM_VCPUS, and one accept of a shared page wins', () => {
    const r = run('round-robin', 1n);
    expect(r.outcome.outcome).toBe('done');
    expect(r.index).toEqual([0n, 1n]);
    expect([...r.status].sort()).toEqual([TdxStatus.SUCCESS, TdxStatus.PAGE_ALREADY_ACCEPTED].sort());
    expect(r.td.platform.pageState(PAGE).accepted).toBe(true);
    expect(r.switches).toBeGreaterThan(2);
  });

  it('the SEPT entry lock: an ACCEPT of a 2M entry that another vCPU is zeroing gets OPERAND_BUSY', () => {
    // round-robin splits every 2M ACCEPT halfway: the other vCPU runs while the first holds the
    // entry locked (tdg_mem_page_accept.c: sept_lock_acquire_guest fails -> OPERAND_BUSY|RCX).
    const td = tdGuest(BOTH_2M, { vcpus: 2, schedule: { policy: 'round-robin', seed: 1n, quantum: 1000 } });
    startLikeBsp(td.platform.machine, 1);
    expect(runTd(td).outcome).toBe('done');
    const q = (gpa: bigint) => Buffer.from(td.platform.machine.memory.read(gpa, 8)).readBigUInt64LE();
    const status = [q(RESULTS + 8n), q(RESULTS + 40n)];
    expect([...status].sort()).toEqual([TdxStatus.SUCCESS, TdxStatus.OPERAND_BUSY | 1n].sort());
    expect(td.platform.pageState(PAGE).accepted).toBe(true);
    expect(td.platform.module.guestLocks.size).toBe(0);
    // Halfway is chunk 256 of the 512 4K chunks of a 2M page (NUM_OF_4K_PAGES_IN_2MB, the bound of
    // accept_counter in tdg_mem_page_accept.c), where the other vCPU's turn begins.
    expect(td.trace.ofType('accept-preempted')).toEqual([expect.objectContaining({ gpa: PAGE, level: 1, acceptCounter: 256, resumedFrom: 0 })]);
  });

  it('interleaves at instruction granularity: quanta inside the read-modify-write lose updates', () => {
    // 2 x 200 increments; a switch between a vCPU's load and its store loses the other's work.
    const fine = run('random', 7n, 3);
    expect(fine.outcome.outcome).toBe('done');
    expect(fine.counter).toBeLessThan(400n);
    // A quantum longer than the whole loop never splits it.
    const coarse = run('round-robin', 1n, 100_000);
    expect(coarse.counter).toBe(400n);
  });

  it('is deterministic: the same policy and seed give the same interleaving and trace hash', () => {
    for (const policy of ['round-robin', 'random', 'pct'] as const) {
      const a = run(policy, 42n, 5);
      const b = run(policy, 42n, 5);
      expect(a.outcome.outcome).toBe('done');
      expect(b.hash).toBe(a.hash);
      expect(b.counter).toBe(a.counter);
    }
    const seeds = new Set([1n, 2n, 3n, 4n, 5n].map((seed) => run('random', seed, 5).hash));
    expect(seeds.size).toBeGreaterThan(1);
  });

  it('a whole-VM snapshot covers every vCPU and the scheduler', () => {
    const td = tdGuest(BOTH, { vcpus: 2, schedule: { policy: 'random', seed: 9n, quantum: 7 } });
    startLikeBsp(td.platform.machine, 1);
    let exits = 0;
    const paused = td.vm.run({ stopBefore: () => ++exits === 2 });
    expect(paused.kind).toBe('paused');
    const snap = td.vm.snapshot();
    const first = runTd(td);
    const hash = td.trace.sha256();
    const counter = Buffer.from(td.platform.machine.memory.read(COUNTER, 8)).readBigUInt64LE();
    td.vm.restore(snap);
    expect(runTd(td)).toEqual(first);
    expect(td.trace.sha256()).toBe(hash);
    expect(Buffer.from(td.platform.machine.memory.read(COUNTER, 8)).readBigUInt64LE()).toBe(counter);
  });
});

/** TDG.VP.VMCALL<GetTdVmCallInfo> (R10 = 0, R11 = 0x10000, R12 = 0): a TD exit the VMM answers, the guest then resumes. */
const GET_TD_VM_CALL_INFO = `xor eax, eax\n mov ecx, 0x1c00\n xor r10d, r10d\n mov r11d, 0x10000\n xor r12d, r12d\n ${TDCALL}`;

describe('several vCPUs and the exits the VMM handles', () => {
  it('a whole-VM snapshot at the first VMM exit, before the vCPUs race, replays the same interleaving', () => {
    // BOTH after a VMCALL the VMM answers: the snapshot is taken before the read-modify-write race.
    const td = tdGuest(`${GET_TD_VM_CALL_INFO}\n ${BOTH}`, { vcpus: 2, schedule: { policy: 'random', seed: 9n, quantum: 7 } });
    startLikeBsp(td.platform.machine, 1);
    expect(td.vm.run({ stopBefore: () => true }).kind).toBe('paused');
    const snap = td.vm.snapshot();
    const switchesBefore = td.platform.scheduler!.switches;
    const counter = () => Buffer.from(td.platform.machine.memory.read(COUNTER, 8)).readBigUInt64LE();
    const first = runTd(td);
    expect(first.outcome).toBe('done');
    const hash = td.trace.sha256();
    const lost = counter();
    expect(td.platform.scheduler!.switches - switchesBefore).toBeGreaterThan(50);  // turns the restore must replay
    td.vm.restore(snap);
    expect(td.platform.scheduler!.switches).toBe(switchesBefore);
    expect(runTd(td)).toEqual(first);
    expect(td.trace.sha256()).toBe(hash);
    expect(counter()).toBe(lost);
  });

  it('round-robin: a TD exit the VMM handled is a switch point, so the other vCPU runs next', () => {
    // vCPU 0 makes a VMCALL the VMM answers, vCPU 1 does not; then each takes a ticket (LOCK XADD).
    // With a quantum longer than the program, only exits and PAUSE switch.
    const TICKET = 0x3200n;
    const td = tdGuest(`
      mov rax, 1
      ${TDCALL}
      mov rbx, r9
      shl rbx, 5
      add rbx, ${RESULTS}
      test r9, r9
      jnz ticket
      ${GET_TD_VM_CALL_INFO}
    ticket:
      mov rax, 1
      lock xadd [${TICKET}], rax
      ${RECORD_THEN_WAIT_OR_PARK}`, { vcpus: 2, schedule: { policy: 'round-robin', seed: 1n, quantum: 100_000 } });
    startLikeBsp(td.platform.machine, 1);
    expect(runTd(td).outcome).toBe('done');
    const q = (gpa: bigint) => Buffer.from(td.platform.machine.memory.read(gpa, 8)).readBigUInt64LE();
    // vCPU 1 took the first ticket while the VMM answered vCPU 0.
    expect([q(RESULTS + 8n), q(RESULTS + 40n)]).toEqual([1n, 0n]);
    expect(td.vm.exits).toBe(2);  // the VMCALL and the HALT
  });
});

// A fault storm (a #DF handler on a PENDING page: every delivery's first fetch is refused, and
// the VE info is still unread) is made natively in one call only with one vCPU (td-module.ts
// #injectDfRepeating): with several, each delivery the module makes is a switch point, and the
// others run between two of them (vcpu-scheduler.ts).
describe('a #DF storm on one of two vCPUs', () => {
  // vCPU 0 points IDT entry 8 (16 bytes each from 0x11000) at 0x600000, a PENDING page, then
  // loads from another PENDING page: #VE, whose handler touches a third one: #DF, and the storm.
  // vCPU 1 counts for as long as it runs.
  const STORM = `
    mov rax, 1
    ${TDCALL}
    test r9, r9
    jnz spin
    mov word ptr [0x11080], 0
    mov word ptr [0x11086], 0x60
    mov rax, [0x400000]
    ${HALT}
  spin:
    inc qword ptr [${COUNTER}]
    jmp spin`;

  function stormRun(repeat: boolean) {
    const saved = Vcpu.repeatFaultDeliveries;
    Vcpu.repeatFaultDeliveries = repeat;
    try {
      const td = tdGuest(STORM, { vcpus: 2, schedule: { policy: 'round-robin', seed: 1n, quantum: 100 }, ve: 'mov rax, [0x401000]' });
      startLikeBsp(td.platform.machine, 1);
      const h = td.platform.module.host;
      expect(h.memPageAug(gpaLevel(0x400000n, 1)).status).toBe(0n);
      expect(h.memPageAug(gpaLevel(0x600000n, 1)).status).toBe(0n);
      const outcome = runTd(td);
      const counter = Buffer.from(td.platform.machine.memory.read(COUNTER, 8)).readBigUInt64LE();
      const deliveries = td.trace.ofType('exception-injected').length;
      const result = { outcome, hash: td.trace.sha256(), counter, deliveries, switches: td.platform.scheduler!.switches };
      td.platform.machine.close();
      return result;
    } finally {
      Vcpu.repeatFaultDeliveries = saved;
    }
  }

  it('lets the other vCPU run between the deliveries: the same run as one delivery per round trip', () => {
    const slow = stormRun(false);
    expect(slow.outcome.outcome).toBe('terminated');
    expect(slow.outcome.reason).toMatch(/triple fault/);
    expect(slow.deliveries).toBeGreaterThan(100);
    expect(slow.counter).toBeGreaterThan(0n);
    expect(stormRun(true)).toEqual(slow);
  });
});

describe('native MSRs on several vCPUs', () => {
  it('are per vCPU: what vCPU 0 writes to IA32_SPEC_CTRL, vCPU 1 does not read', () => {
    // Each logical CPU has its own MSRs (SDM Vol. 4 §2.1: scope "Thread" for IA32_SPEC_CTRL);
    // the module keeps a vCPU's in its TDVPS. vCPU 0 writes 1 and raises a flag; vCPU 1 then
    // reads its own (0), writes 2 and says so; vCPU 0 reads back its 1 and halts.
    const FLAG = 0x3200n;
    const td = tdGuest(`
      mov rax, 1
      ${TDCALL}
      test r9, r9
      jnz second
      mov ecx, 0x48\n mov eax, 1\n xor edx, edx\n wrmsr
      mov qword ptr [${FLAG}], 1
    wait_second:
      pause
      cmp qword ptr [${FLAG + 8n}], 1
      jne wait_second
      mov ecx, 0x48\n rdmsr\n mov [${RESULTS}], rax
      ${HALT}
    second:
      pause
      cmp qword ptr [${FLAG}], 1
      jne second
      mov ecx, 0x48\n rdmsr\n mov [${RESULTS + 32n}], rax
      mov ecx, 0x48\n mov eax, 2\n xor edx, edx\n wrmsr
      mov qword ptr [${FLAG + 8n}], 1
    park:
      pause
      jmp park`, { vcpus: 2, schedule: { policy: 'round-robin', seed: 1n, quantum: 50 } });
    startLikeBsp(td.platform.machine, 1);
    expect(runTd(td).outcome).toBe('done');
    const q = (gpa: bigint) => Buffer.from(td.platform.machine.memory.read(gpa, 8)).readBigUInt64LE();
    expect([q(RESULTS), q(RESULTS + 32n)]).toEqual([1n, 0n]);
  });
});
