// What the honest SNP VMM answers where KVM's answer is not the obvious one, checked in small
// guests against Linux KVM (torvalds/linux at 0097f9df: arch/x86/kvm/svm/sev.c, svm.c, x86.c) and
// QEMU (system/physmem.c) as the VMM behind it:
// - SNP AP creation requests AP_DESTROY and AP_CREATE_ON_INIT (sev_snp_ap_creation,
//   sev_snp_init_protected_guest_state);
// - an NPF whose PSMASH fails (sev_handle_rmp_fault);
// - IOIO with no size bit, or several, in SW_EXITINFO1, and an IN's RAX (sev_es_validate_vmgexit,
//   io_interception, sev_es_string_io, kvm_fast_pio, kvm_sev_es_outs/ins).
import { describe, expect, it } from 'vitest';
import type { Machine } from '../../../src/cpu/machine.js';
import { IOIO } from '../../../src/platform/snp/ghcb-page.js';
import { SNP_GUEST_SEV_FEATURES } from '../../../src/platform/snp/snp-cpu.js';
import { AP_TO_LONG_MODE, GHCB_GPA, REGISTER_GHCB, apVmsaPageLike, ghcbCall, privateIdentityWithGhcb, snpGuest } from '../../helpers/snp-guest.js';

const DATA = 0x3000n;            // private, validated at launch: what both vCPUs write
const COUNT = DATA;              // the AP's loop count
const STARTS = DATA + 8n;        // how many times the AP started from its VMSA
const AFTER = DATA + 0x10n;      // written by the instruction after a vCPU's own AP destroy
const AP_DONE = DATA + 0x18n;    // the AP reached its limit
const RES = DATA + 0x100n;       // SW_EXITINFO1/2 answers and counts the BSP saw
const AP_CODE = 0x4000n;         // the AP's code (launched)
const VMSA = 0x20000n;           // the AP's VMSA page (launched, VMSA bit set)
const AP_CREATION = 0x80000013n; // SVM_VMGEXIT_AP_CREATION
const REQUEST = { CREATE_ON_INIT: 0n, CREATE: 1n, DESTROY: 2n } as const;

/** AP creation NAE for `apicId`: CREATE and CREATE_ON_INIT with RAX = the VM's SEV features, DESTROY without RAX. */
function apCreation(request: bigint, apicId: bigint): string {
  const creates = request !== REQUEST.DESTROY;
  return ghcbCall({ exitCode: AP_CREATION, info1: (apicId << 32n) | request, info2: creates ? VMSA : 0n, ...(creates ? { rax: SNP_GUEST_SEV_FEATURES } : {}) });
}

/** Asm: SW_EXITINFO1 and SW_EXITINFO2 of the GHCB (rdi) to RES + at, RES + at + 8. */
const saveAnswer = (at: number) => `
  mov r8, [rdi+0x398]
  mov [${RES + BigInt(at)}], r8
  mov r8, [rdi+0x3a0]
  mov [${RES + BigInt(at) + 8n}], r8`;

/**
 * The AP: from its VMSA in flat 32-bit protected mode with the BSP's paging into long mode (CR0.PG,
 * then a far jump: APM Vol. 2 §14.6.1), counts a start, then counts loop turns until `limit`,
 * says so and halts.
 */
function apCode(limit: bigint): string {
  return `
${AP_TO_LONG_MODE}
  inc qword ptr [${STARTS}]
  mov rbx, ${limit}
ap_loop:
  inc qword ptr [${COUNT}]
  pause
  cmp [${COUNT}], rbx
  jb ap_loop
  mov qword ptr [${AP_DONE}], 1
  hlt`;
}

/** Asm: spin until the AP has counted once (it runs). */
const WAIT_FOR_AP = `
    wait_ap:
      pause
      cmp qword ptr [${COUNT}], 0
      je wait_ap`;

/** A guest of `vcpus` vCPUs whose BSP registers its GHCB and runs `main`; the AP's VMSA page is ready for an AP creation. */
function guest(main: string, vcpus = 2, apLimit = 1n << 40n) {
  const g = snpGuest(`${REGISTER_GHCB}\n${main}`, {
    vcpus, instructionLimit: 4_000_000n, mappings: privateIdentityWithGhcb(),
    extraCode: [[AP_CODE, apCode(apLimit)]], launch: [[DATA, 0x1000n], [AP_CODE, 0x1000n], [VMSA, 0x1000n]],
  });
  g.vm.memory.write(VMSA, apVmsaPageLike(g.vm, AP_CODE));
  g.platform.rmp.adjustPermissions(VMSA, 1, 0, true);  // the VMSA bit, as the guest's RMPADJUST sets it (Linux snp_set_vmsa)
  return g;
}

const q = (m: Machine, gpa: bigint) => m.memory.readU64(gpa);

describe('SNP AP creation: AP_DESTROY and AP_CREATE_ON_INIT as KVM serves them (sev_snp_ap_creation)', () => {
  // KVM: AP_DESTROY sets the target's snp_vmsa_gpa to INVALID_PAGE and kicks it
  // (KVM_REQ_UPDATE_PROTECTED_GUEST_STATE); at its next entry it is reset, and
  // sev_snp_init_protected_guest_state leaves it KVM_MP_STATE_HALTED with vmsa_pa = INVALID_PAGE:
  // it runs no more. A later AP_CREATE gives it a VMSA again and it starts from that page. The
  // request succeeds with SW_EXITINFO1 = SW_EXITINFO2 = 0 (svm_vmgexit_success(svm, 0) before the
  // switch), and sev_es_validate_vmgexit asks for RAX only when the request is not AP_DESTROY.
  it('AP_DESTROY (RAX not supplied) stops a running AP: it counts no more until an AP_CREATE starts it again from its VMSA', () => {
    const g = guest(`
      ${apCreation(REQUEST.CREATE, 1n)}
      ${saveAnswer(0)}
      ${WAIT_FOR_AP}
      ${apCreation(REQUEST.DESTROY, 1n)}
      ${saveAnswer(0x10)}
      mov rax, [${COUNT}]
      mov [${RES + 0x20n}], rax
      mov ecx, 5000
    spin:
      pause
      dec ecx
      jnz spin
      mov rax, [${COUNT}]
      mov [${RES + 0x28n}], rax
      ${apCreation(REQUEST.CREATE, 1n)}
      ${saveAnswer(0x30)}
    wait_restart:
      pause
      cmp qword ptr [${STARTS}], 2
      jb wait_restart
      mov rax, [${RES + 0x28n}]
    wait_count:
      pause
      cmp [${COUNT}], rax
      jbe wait_count
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    const m = g.vm;
    expect([q(m, RES), q(m, RES + 8n)]).toEqual([0n, 0n]);                // CREATE
    expect([q(m, RES + 0x10n), q(m, RES + 0x18n)]).toEqual([0n, 0n]);     // DESTROY
    expect([q(m, RES + 0x30n), q(m, RES + 0x38n)]).toEqual([0n, 0n]);     // CREATE again
    expect(q(m, RES + 0x20n)).toBeGreaterThan(0n);
    expect(q(m, RES + 0x28n)).toBe(q(m, RES + 0x20n));                   // no turn counted while destroyed
    expect(q(m, STARTS)).toBe(2n);                                         // started again from its VMSA
    expect(q(m, COUNT)).toBeGreaterThan(q(m, RES + 0x28n));
    expect(g.trace.ofType('vcpu-stopped')).toMatchObject([{ vcpu: 1, wasRunnable: true }]);
    expect(g.trace.ofType('ap-vmrun').filter((e) => e.refused === undefined)).toHaveLength(2);
  });

  // The target may be the vCPU asking: kvm_get_vcpu_by_id finds it, and the kick makes it take the
  // update at its next entry, so it stops after this exit while the other vCPU goes on.
  it('AP_DESTROY of the vCPU asking (the BSP) stops it after its VMGEXIT; the AP runs on to its end', () => {
    const g = guest(`
      ${apCreation(REQUEST.CREATE, 1n)}
      ${WAIT_FOR_AP}
      ${apCreation(REQUEST.DESTROY, 0n)}
      mov qword ptr [${AFTER}], 1
      hlt`, 2, 3000n);
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect(q(g.vm, AFTER)).toBe(0n);     // the BSP never ran past its AP destroy
    expect(q(g.vm, AP_DONE)).toBe(1n);   // the AP counted to its limit and halted
    expect(q(g.vm, COUNT)).toBe(3000n);
    expect([g.platform.isRunnable(0), g.platform.isRunnable(1)]).toEqual([false, true]);
  });

  // AP_CREATE naming the vCPU asking: kvm_get_vcpu_by_id finds it, and the kick makes it reset and
  // load the new VMSA at its next entry: it goes on from the page, not after its VMGEXIT.
  it('AP_CREATE of the vCPU asking (the BSP) restarts it from the VMSA after its VMGEXIT', () => {
    const g = guest(`
      ${apCreation(REQUEST.CREATE, 0n)}
      mov qword ptr [${AFTER}], 1
      hlt`, 2, 100n);
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect(q(g.vm, AFTER)).toBe(0n);
    expect([q(g.vm, STARTS), q(g.vm, COUNT), q(g.vm, AP_DONE)]).toEqual([1n, 100n, 1n]);
    expect([g.platform.isRunnable(0), g.platform.isRunnable(1)]).toEqual([true, false]);
  });

  it('AP_DESTROY of the only vCPU: nothing runs again (KVM leaves it halted without a VMSA), and the run ends there', () => {
    const g = guest(`
      ${apCreation(REQUEST.DESTROY, 0n)}
      mov qword ptr [${AFTER}], 1
      hlt`, 1);
    expect(g.run()).toEqual({ outcome: 'done', reason: 'no vCPU left to run: the hypervisor stopped every one (SNP AP destroy)' });
    expect(q(g.vm, AFTER)).toBe(0n);
  });

  // KVM: AP_CREATE_ON_INIT checks what AP_CREATE checks and records the VMSA GPA (snp_vmsa_gpa,
  // snp_ap_waiting_for_reset) but does not kick the target ("Unless Creation is deferred until
  // INIT, signal the vCPU to update its state"): the target goes on as it was until its next INIT.
  // This model delivers no INIT, so the recorded VMSA is never used; AP_DESTROY replaces it.
  it('AP_CREATE_ON_INIT succeeds, records the VMSA for the AP\'s next INIT and does not start the AP; AP_DESTROY drops the record', () => {
    const g = guest(`
      ${apCreation(REQUEST.CREATE_ON_INIT, 1n)}
      ${saveAnswer(0)}
      mov ecx, 5000
    spin:
      pause
      dec ecx
      jnz spin
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([0n, 0n]);
    expect([q(g.vm, STARTS), q(g.vm, COUNT)]).toEqual([0n, 0n]);  // the AP never ran
    expect(g.platform.isRunnable(1)).toBe(false);
    expect(g.vmm.vmsaAtInit(1)).toBe(VMSA);
    expect(g.trace.ofType('ap-vmrun')).toEqual([]);

    const d = guest(`
      ${apCreation(REQUEST.CREATE_ON_INIT, 1n)}
      ${apCreation(REQUEST.DESTROY, 1n)}
      hlt`);
    expect(d.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect(d.vmm.vmsaAtInit(1)).toBeUndefined();
  });

  it('AP_CREATE_ON_INIT of a running AP leaves it running as it was: not restarted from the VMSA', () => {
    const g = guest(`
      ${apCreation(REQUEST.CREATE, 1n)}
      ${WAIT_FOR_AP}
      ${apCreation(REQUEST.CREATE_ON_INIT, 1n)}
      ${saveAnswer(0)}
      mov rax, [${COUNT}]
    wait_count:
      pause
      cmp [${COUNT}], rax
      jbe wait_count
      hlt`);
    expect(g.run()).toMatchObject({ outcome: 'done', reason: 'guest halted' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([0n, 0n]);
    expect(q(g.vm, STARTS)).toBe(1n);
    expect(g.vmm.vmsaAtInit(1)).toBe(VMSA);
  });
});

describe('an NPF whose PSMASH fails (KVM sev_handle_rmp_fault)', () => {
  // KVM: after a failed PSMASH it looks the entry up again, warns ("SEV: Unable to split RMP entry
  // for GPA ..."), zaps the NPT range and resumes the guest: no exit to userspace, the VM does not
  // stop. The entry is still 2M, so the guest faults again and again; here the run loop's
  // no-progress guard ends that loop. PSMASH fails here because the 2M entry is Immutable
  // (FAIL_PERMISSION; the test's RMPUPDATE makes it so, KVM itself never does).
  it('the VM goes on after each failed PSMASH: the guest faults again until the run loop sees no progress', () => {
    const region = 0x400000n;
    const g = guest(`
      mov rax, [${region + 0x3000n}]
      hlt`, 1);
    const p = g.platform;
    expect(p.handle.rmpUpdate(region, { assigned: true, pageSize: '2m', gpa: region, asid: p.asid, immutable: true }).rc).toBe(0);
    const outcome = g.run();
    expect(outcome.outcome).toBe('vmm-error');
    expect(outcome.reason).toMatch(/^no progress: the same exit \d+ times in a row \(NPF at RIP/);
    const handled = g.trace.events.filter((e) => e.type === 'npf-handled');
    expect(handled.length).toBeGreaterThan(1);
    expect(handled.every((e) => e.action === 'psmash' && e.failed === 'FAIL_PERMISSION')).toBe(true);
    expect(p.rmp.lookup(region)).toMatchObject({ assigned: true, pageSize: '2m', immutable: true });
    expect(p.nptPageSize(region)).toBe('4k');
  });
});

describe('IOIO operand sizes (KVM io_interception: the size field as a number, 0 when no bit is set)', () => {
  // sev_es_validate_vmgexit checks only RAX (OUT) or SW_SCRATCH (string); io_interception passes
  // size = (exit_info_1 & SVM_IOIO_SIZE_MASK) >> SVM_IOIO_SIZE_SHIFT = 0 on. IN/OUT: kvm_fast_pio
  // with size 0 exits to userspace (KVM_EXIT_IO, size 0), and QEMU's kvm_handle_io accesses 0 bytes
  // (address_space_write / address_space_read_full act only "if (len > 0)"): nothing reaches the
  // UART, the guest gets SW_EXITINFO1 = SW_EXITINFO2 = 0, and an IN leaves RAX as the guest gave it.
  const lcrOut = (size: bigint) => ghcbCall({ exitCode: 0x7bn, info1: (0x3fbn << 16n) | size, rax: 0x80n });  // LCR.DLAB
  const dataOut = ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | IOIO.SZ8, rax: 0x41n });

  it('an OUT of size 0 writes nothing: DLAB stays clear and the next byte to the data port goes out', () => {
    const g = snpGuest(`${REGISTER_GHCB}
      ${lcrOut(0n)}
      ${saveAnswer(0)}
      ${dataOut}
      hlt`, { mappings: privateIdentityWithGhcb(), launch: [[DATA, 0x1000n]] });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([0n, 0n]);
    expect(g.vmm.console.text).toBe('A');
    // The same OUT with SZ8 reaches LCR: DLAB set, the data port is the divisor latch, nothing printed.
    const sized = snpGuest(`${REGISTER_GHCB}\n${lcrOut(IOIO.SZ8)}\n${dataOut}\nhlt`, { mappings: privateIdentityWithGhcb() });
    expect(sized.run()).toMatchObject({ outcome: 'done' });
    expect(sized.vmm.console.text).toBe('');
  });

  it('an IN of size 0 reads nothing: RAX comes back as the guest supplied it, marked valid', () => {
    const g = snpGuest(`${REGISTER_GHCB}
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | IOIO.TYPE_IN, rax: 0x1122334455667788n })}
      ${saveAnswer(0)}
      mov r8, [rdi+0x1f8]
      movzx r9d, byte ptr [rdi+0x3f7]
      hlt`, { mappings: privateIdentityWithGhcb(), launch: [[DATA, 0x1000n]] });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([0n, 0n]);
    expect(g.vm.vcpu.regs.r8).toBe(0x1122334455667788n);
    expect(g.vm.vcpu.regs.r9 & 0x80n).toBe(0x80n);  // RAX valid (bit 63 of the bitmap: sev_es_sync_to_ghcb)
  });

  // The size is the 3-bit field as a number (io_interception), and an IN below 4 bytes merges into
  // the guest's RAX (kvm_fast_pio_in: "For size less than 4 we merge, else we zero extend").
  it('an IN of 1 byte keeps the upper bytes of the RAX the guest supplied; an OUT with SZ8|SZ16 is 3 bytes (the third reaches the data port from 0x3f6)', () => {
    const g = snpGuest(`${REGISTER_GHCB}
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3fdn << 16n) | IOIO.SZ8 | IOIO.TYPE_IN, rax: 0x1122334455667788n })}
      ${saveAnswer(0)}
      mov r8, [rdi+0x1f8]
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f6n << 16n) | IOIO.SZ8 | IOIO.SZ16, rax: 0x420000n })}
      hlt`, { mappings: privateIdentityWithGhcb(), launch: [[DATA, 0x1000n]] });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect([q(g.vm, RES), q(g.vm, RES + 8n)]).toEqual([0n, 0n]);
    expect(g.vm.vcpu.regs.r8).toBe(0x1122334455667760n);  // COM1 LSR 0x60 (transmitter empty) in the low byte
    expect(g.vmm.console.text).toBe('B');
  });

  // String I/O: sev_es_string_io checks the count and sets up a 0-byte scratch area, then
  // kvm_sev_es_outs computes PAGE_SIZE / size: a division by zero in the host kernel. The VM does
  // not go on; a scratch area setup_vmgexit_scratch refuses is still answered first.
  it('an OUTS of size 0 with a good scratch area stops the VM (KVM divides by the size); with scratch 0 it is INVALID_SCRATCH_AREA', () => {
    const outs = (scratch: bigint) => snpGuest(`${REGISTER_GHCB}
      ${ghcbCall({ exitCode: 0x7bn, info1: (0x3f8n << 16n) | IOIO.STRING | IOIO.REP, info2: 4n, scratch })}
      ${saveAnswer(0)}
      hlt`, { mappings: privateIdentityWithGhcb(), launch: [[DATA, 0x1000n]] });
    const g = outs(GHCB_GPA + 0x800n);
    expect(g.run()).toMatchObject({ outcome: 'vmm-error', reason: expect.stringMatching(/size 0 .*kvm_sev_es_outs/) });
    expect(g.vmm.console.text).toBe('');
    const refused = outs(0n);
    expect(refused.run()).toMatchObject({ outcome: 'done' });
    expect([q(refused.vm, RES), q(refused.vm, RES + 8n)]).toEqual([2n, 3n]);
  });
});
