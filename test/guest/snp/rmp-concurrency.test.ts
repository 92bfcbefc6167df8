// Two vCPUs of one SNP guest and the RMP: an RMPUPDATE the hypervisor does while handling one
// vCPU's exit is what the other vCPU's next access is checked against, with no stale translation.
// Hardware: every guest access is RMP-checked against the entry of the system-physical page (APM
// Vol. 2 §15.36.10 "RMP and VMPL Access Checks"). The check is made at the table walk and its result
// is cached with the translation, so the hypervisor must invalidate the TLB entries of a page it
// RMPUPDATEs before the change binds running vCPUs (KVM zaps the nested mapping of every
// conversion: kvm_vm_set_mem_attributes -> kvm_unmap_gfn_range). In this model the vCPUs take
// turns on one emulator: the page gate is the RMP's enforcement, a gate change that takes a
// permission away flushes the emulator's TLB (native SetGate), and so does a vCPU switch. After
// the change, the other vCPU faults: #VMEXIT(NPF) on the guest-owned check, then #VC 0x404 once
// the honest VMM has made the page private again (RMPUPDATE leaves it unvalidated).
import { describe, expect, it } from 'vitest';
import type { Machine } from '../../../src/cpu/machine.js';
import type { ScheduleOptions } from '../../../src/cpu/vcpu-scheduler.js';
import { NPF_BITS, VC_PAGE_NOT_VALIDATED } from '../../../src/platform/snp/access-check.js';
import { ghcbMsr, PSC_OP } from '../../../src/platform/snp/ghcb-msr.js';
import { RFLAGS } from '../../../src/cpu/registers.js';
import { CODE_BASE } from '../../helpers/guest-setup.js';
import { AP_TO_LONG_MODE, PVALIDATE, apVmsaPageLike, msrProtocol, privateIdentityWithGhcb, snpGuest } from '../../helpers/snp-guest.js';

const P = 0x400000n;        // the contested page
const SHARED = 0x3000n;     // private, validated at launch: flags and results both vCPUs write
const FLAG_A = SHARED;      // A: "P is validated" / "I am about to take P"
const FLAG_B = SHARED + 8n; // B: "my PSC returned"
const PV_RC = SHARED + 0x10n, PV_RFLAGS = SHARED + 0x18n, PSC_RESP = SHARED + 0x20n;
const COUNT_B = SHARED + 0x28n, LAST_B = SHARED + 0x30n, A_RESUMED = SHARED + 0x38n;
const VC_SLOT = SHARED + 0x100n; // per vCPU (index in r12): [#VC error code, faulting RIP]
const VMSA = 0x20000n;
const FAULTING_READ = CODE_BASE + 0x300n; // A's second read of P (test 1)
const B_LOOP_READ = CODE_BASE + 0x500n;   // B's read of P in its loop (test 2)
const MARKER = 0x1122334455667788n;

/** #VC handler: record (error code, RIP) in this vCPU's slot, then HLT (which ends the run). */
const VC_HANDLER = `
  pop r15
  mov rax, r12
  shl rax, 4
  add rax, ${VC_SLOT}
  mov [rax], r15
  mov r14, [rsp]
  mov [rax + 8], r14
  hlt`;

/** A PSC request for P through the GHCB MSR protocol; the response lands in PSC_RESP. */
const PSC_P_SHARED = `${msrProtocol(ghcbMsr.pscReq(P >> 12n, PSC_OP.SHARED))}
  mov [${PSC_RESP}], rax`;

/**
 * Test 1. A (vCPU 0) PVALIDATEs P, reads it (a private translation in the TLB), says so, waits
 * for B, and reads P again at FAULTING_READ. B (vCPU 1) waits for A, then asks the hypervisor to
 * make P shared (PSC): it RMPUPDATEs P to hypervisor-owned while handling B's exit.
 */
const PVALIDATE_THEN_PSC = `
  xor r12d, r12d
  mov rax, ${P}
  xor ecx, ecx
  mov edx, 1
  ${PVALIDATE}
  pushfq
  pop rbx
  mov [${PV_RC}], rax
  mov [${PV_RFLAGS}], rbx
  mov rax, [${P}]
  mov qword ptr [${FLAG_A}], 1
a_wait:
  pause
  cmp qword ptr [${FLAG_B}], 1
  jne a_wait
  jmp a_read
.org 0x300
a_read:
  mov rax, [${P}]
  mov qword ptr [${A_RESUMED}], 1
  hlt
.org 0x400
  ${AP_TO_LONG_MODE}
  mov r12, 1
b_wait:
  pause
  cmp qword ptr [${FLAG_A}], 1
  jne b_wait
  ${PSC_P_SHARED}
  mov qword ptr [${FLAG_B}], 1
b_park:
  pause
  jmp b_park
`;

/**
 * Test 2. B (vCPU 1) reads P in a tight loop (no PAUSE: it leaves only at a quantum's end),
 * counting the reads and keeping the last value. A (vCPU 0) waits until B has read P, then asks
 * for P to be made shared: the hypervisor takes the page while B is mid-loop.
 */
const TAKE_WHILE_READING = `
  xor r12d, r12d
a_wait:
  pause
  cmp qword ptr [${COUNT_B}], 0
  je a_wait
  ${PSC_P_SHARED}
  mov qword ptr [${A_RESUMED}], 1
a_park:
  pause
  jmp a_park
.org 0x400
  ${AP_TO_LONG_MODE}
  mov r12, 1
  xor ecx, ecx
  jmp b_loop
.org 0x500
b_loop:
  mov rax, [${P}]
  mov [${LAST_B}], rax
  inc rcx
  mov [${COUNT_B}], rcx
  jmp b_loop
`;

/**
 * The guest: both vCPUs over long-mode paging with P mapped private (C-bit). The AP is created the
 * way the hardware allows it (VMRUN from a validated VMSA page) and enters long mode itself.
 */
function twoVcpuGuest(source: string, schedule: ScheduleOptions) {
  const g = snpGuest(source, {
    vcpus: 2, schedule, instructionLimit: 2_000_000n,
    mappings: privateIdentityWithGhcb(), vcHandler: VC_HANDLER, launch: [[SHARED, 0x1000n], [VMSA, 0x1000n]],
  });
  const p = g.platform;
  g.vm.memory.write(VMSA, apVmsaPageLike(g.vm, CODE_BASE + 0x400n));
  p.rmp.adjustPermissions(VMSA, 1, 0, true);
  expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
  return g;
}

const q = (m: Machine, gpa: bigint) => Buffer.from(m.memory.read(gpa, 8)).readBigUInt64LE();
/** Private read of an RMP entry that is not the guest's: P (present), encrypted, RMP fault (B3). */
const NPF_PRIVATE_READ_NOT_GUEST_OWNED = NPF_BITS.present | NPF_BITS.rmp | NPF_BITS.enc | NPF_BITS.finalGpa;

// pct: B's read loop never PAUSEs, so it runs until a priority change point; a short horizon puts
// those within the test's budget.
const SCHEDULES: ScheduleOptions[] = [
  { policy: 'round-robin', seed: 1n, quantum: 50 }, { policy: 'round-robin', seed: 1n, quantum: 7 },
  { policy: 'random', seed: 1n, quantum: 20 }, { policy: 'random', seed: 2n, quantum: 5 },
  { policy: 'pct', seed: 3n, quantum: 30, horizon: 40 },
];

describe('SNP RMP state across vCPUs', () => {
  it.each(SCHEDULES)('PVALIDATE on A, then a PSC on B takes the page: A\'s next access faults ($policy seed $seed quantum $quantum)', (schedule) => {
    const g = twoVcpuGuest(PVALIDATE_THEN_PSC, schedule);
    const p = g.platform;
    p.rmpUpdate(P, { assigned: true, pageSize: '4k', gpa: P, asid: p.asid });
    const outcome = g.run();
    expect(outcome).toMatchObject({ outcome: 'done' });
    const m = g.vm;
    // A's PVALIDATE: SUCCESS, CF=0 (Validated 0 -> 1); B's PSC: done.
    expect(q(m, PV_RC)).toBe(0n);
    expect(q(m, PV_RFLAGS) & RFLAGS.CF).toBe(0n);
    expect(q(m, PSC_RESP)).toBe(ghcbMsr.pscResp(0));
    // The hypervisor's RMPUPDATE ran on B's exit; the implicit conversion back on A's NPF.
    const updates = g.trace.ofType('rmpupdate').filter((e) => e.spa === P).map((e) => [e.vcpu, e.assigned]);
    expect(updates).toEqual([[0, true], [1, false], [0, true]]); // the test's setup, B's PSC, A's NPF
    // A's second read, through the translation its first read filled, is checked against the new
    // RMP: NPF on vCPU 0 at P, then (page private again, unvalidated) #VC 0x404 at the same RIP.
    const npfs = g.trace.ofType('npf');
    expect(npfs).toHaveLength(1);
    expect(npfs[0]).toMatchObject({ vcpu: 0, gpa: P, rip: FAULTING_READ, reason: 'guest-owned', access: 'read', errorCode: NPF_PRIVATE_READ_NOT_GUEST_OWNED });
    expect(q(m, VC_SLOT)).toBe(VC_PAGE_NOT_VALIDATED);
    expect(q(m, VC_SLOT + 8n)).toBe(FAULTING_READ);
    expect(q(m, VC_SLOT + 16n)).toBe(0n); // B took no #VC
    expect(q(m, A_RESUMED)).toBe(0n);     // A never read P after the hypervisor took it
    expect(p.rmp.lookup(P)).toMatchObject({ assigned: true, validated: false });
  });

  it.each(SCHEDULES)('the hypervisor takes a page B is reading in a loop: B\'s next read faults ($policy seed $seed quantum $quantum)', (schedule) => {
    const g = twoVcpuGuest(TAKE_WHILE_READING, schedule);
    const p = g.platform;
    p.rmpUpdate(P, { assigned: true, pageSize: '4k', gpa: P, asid: p.asid });
    p.rmp.setValidated(P, true);
    g.vm.memory.write(P, Buffer.from(MARKER.toString(16).padStart(16, '0'), 'hex').reverse());
    const outcome = g.run();
    expect(outcome).toMatchObject({ outcome: 'done' });
    const m = g.vm;
    expect(q(m, PSC_RESP)).toBe(ghcbMsr.pscResp(0));
    // B read P before the change, and every read it completed saw the guest's data.
    expect(q(m, COUNT_B)).toBeGreaterThan(0n);
    expect(q(m, LAST_B)).toBe(MARKER);
    const updates = g.trace.ofType('rmpupdate').filter((e) => e.spa === P).map((e) => [e.vcpu, e.assigned]);
    expect(updates).toEqual([[0, true], [0, false], [1, true]]); // the test's setup, A's PSC, B's NPF
    // The first access B makes to P after A's exit is refused: NPF on vCPU 1 at P from its loop
    // read, then #VC 0x404 there; B's read loop did not go on.
    const npfs = g.trace.ofType('npf');
    expect(npfs).toHaveLength(1);
    expect(npfs[0]).toMatchObject({ vcpu: 1, gpa: P, rip: B_LOOP_READ, reason: 'guest-owned', access: 'read', errorCode: NPF_PRIVATE_READ_NOT_GUEST_OWNED });
    expect(q(m, VC_SLOT + 16n)).toBe(VC_PAGE_NOT_VALIDATED);
    expect(q(m, VC_SLOT + 24n)).toBe(B_LOOP_READ);
    expect(q(m, VC_SLOT)).toBe(0n); // A took no #VC
  });
});
