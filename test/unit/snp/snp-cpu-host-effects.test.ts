// What SnpPlatform's host operations, snapshots and exit handling leave behind, pinned where a
// mutation sweep of snp-cpu.ts found nothing checking it. Each test names the primary source.
import { describe, expect, it, vi } from 'vitest';
import { SnpPlatform, pushesResumeFlag } from '../../../src/platform/snp/snp-cpu.js';
import { PAGE_2M, PAGE_4K, VMPL_PERM, VMPL_PERM_RWX } from '../../../src/platform/snp/rmp.js';
import { flat32VmsaPage } from '../../helpers/snp-guest.js';

const MEMORY = 16n << 20n;
const REGION = 0x400000n;

function platform(): SnpPlatform {
  return SnpPlatform.create({ memoryBytes: MEMORY, countInstructions: false });
}

describe('a 2 MiB RMPUPDATE back to the hypervisor', () => {
  // APM Vol. 2 §15.36.3/§15.36.10: a 2 MiB RMP entry governs all 512 pages of its range, and
  // after RMPUPDATE makes the range hypervisor-owned (Assigned = 0) a private (C=1) access to any
  // of them fails the Guest-Owned check (#VMEXIT(NPF)) while shared accesses pass; KVM's
  // rmp_make_shared(pfn, PG_LEVEL_2M) hands back the whole range at once.
  it('gives every page of the range back, not only the first: private accesses refused, shared ones open, under either nested page size', () => {
    for (const npt of ['2m', '4k'] as const) {
      const p = platform();
      expect(p.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: p.asid }).rc).toBe(0);
      p.rmp.setValidated(REGION, true);
      p.setNptPageSize(REGION, npt);
      const pages = [REGION, REGION + PAGE_4K, REGION + 0x100000n, REGION + PAGE_2M - PAGE_4K];
      // Assigned: shared reads see ciphertext, shared writes refused (APM §15.36.10: a C=0 write to a guest page).
      for (const page of pages) expect(p.machine.gate.get('shared', page)).toBe('ciphertext');
      if (npt === '2m') for (const page of pages) expect(p.machine.gate.get('private', page)).toBe('readwrite');
      expect(p.rmpUpdate(REGION, { assigned: false, pageSize: '2m', gpa: 0n, asid: 0 }).rc).toBe(0);
      for (const page of pages) {
        expect([npt, page, p.machine.gate.get('private', page), p.machine.gate.fetch('private', page), p.machine.gate.get('shared', page)])
          .toEqual([npt, page, 'none', 'none', 'readwrite']);
      }
      p.machine.close();
    }
  });
});

// SNP_LAUNCH_UPDATE without a source encrypts the page's current contents in place (SEV-SNP Firmware
// ABI §8.17): bytes the host wrote while the page was its own become the guest's plaintext as they
// are. Only a page given to the guest without the firmware (RMPUPDATE to a running guest) reads
// them through the guest's key: their decryption, garbage (APM Vol. 2 §15.34.1).
describe('host-written DRAM and the RMPUPDATE that assigns the page', () => {
  const PAGE = 0x30000n;
  const written = new Uint8Array(4096).fill(0x5a);

  it('a pre-guest page (Immutable, then SNP_LAUNCH_UPDATE) keeps the host\'s bytes', () => {
    const p = platform();
    p.handle.hostMemory.write(PAGE, written);
    expect(p.rmpUpdate(PAGE, { assigned: true, pageSize: '4k', immutable: true, gpa: PAGE, asid: p.asid }).rc).toBe(0);
    expect(p.launchUpdatePage(PAGE, 'NORMAL').rc).toBe(0);
    expect(Buffer.from(p.machine.memory.read(PAGE, 4096)).equals(Buffer.from(written))).toBe(true);
    p.machine.close();
  });

  it('a page assigned to the guest as it runs reads the host\'s bytes through the guest key: not as written', () => {
    const p = platform();
    p.handle.hostMemory.write(PAGE, written);
    expect(p.rmpUpdate(PAGE, { assigned: true, pageSize: '4k', gpa: PAGE, asid: p.asid }).rc).toBe(0);
    expect(Buffer.from(p.machine.memory.read(PAGE, 4096)).equals(Buffer.from(written))).toBe(false);
    p.machine.close();
  });
});

// A snapshot of the SNP hardware is everything the next run depends on: the nested page sizes
// (the NPT is the hypervisor's, APM Vol. 2 §15.25), each vCPU's GHCB MSR (the VMCB's GHCB GPA
// field, KVM set_ghcb_msr), which vCPUs exist (an SNP AP exists only after AP creation, KVM
// sev_snp_ap_creation), an undeliverable event's shutdown (APM Vol. 2 §8.2.9) and which pages hold
// host-written DRAM bytes (decrypted by the guest key when the page is assigned again: APM Vol. 2
// §15.34.1, RMPUPDATE writes no memory). A restore gives back each as it was saved, and the saved
// state does not follow the platform's later changes.
describe('SnpPlatform.saveState / loadState', () => {
  const VMSA = 0x11000n;
  const HOST_PAGE = 0x20000n;
  const OTHER_PAGE = 0x21000n;

  it('gives back the nested page sizes, GHCB MSRs, runnable vCPUs, the schedule, the launch, a pending shutdown and the host-written pages as saved', () => {
    const p = SnpPlatform.create({ memoryBytes: MEMORY, vcpus: 2, countInstructions: false });
    // Saved: REGION mapped 2 MiB, vCPU 0's GHCB MSR 0x1000 (a GHCB GPA), vCPU 1 not created, no pending outcome,
    // HOST_PAGE written by the host while it is the hypervisor's.
    p.setNptPageSize(REGION, '2m');
    p.ghcbMsr = 0x1000n;
    p.handle.hostMemory.write(HOST_PAGE, new Uint8Array(4096).fill(0x5a));
    const saved = p.saveState();
    const launchDigest = p.launch.hex;
    const own = (st: typeof saved) => ({ npt2m: [...st.npt2m], ghcbMsrs: [...st.ghcbMsrs], runnable: [...st.runnable], dramPages: [...st.dramPages], pendingOutcome: st.pendingOutcome });
    const savedCopy = own(saved);

    // Changed after the save: REGION back to 4 KiB and another 2 MiB mapping, another GHCB MSR,
    // vCPU 1 created from a VMSA page, an event the VMM injects that cannot be delivered (no IDT),
    // and HOST_PAGE assigned to the guest (its DRAM bytes decrypted: no longer host-written).
    p.setNptPageSize(REGION, '4k');
    p.setNptPageSize(REGION + PAGE_2M, '2m');
    p.ghcbMsr = 0x2000n;
    p.machine.memory.write(VMSA, flat32VmsaPage());
    expect(p.rmpUpdate(VMSA, { assigned: true, pageSize: '4k', gpa: VMSA, asid: p.asid }).rc).toBe(0);
    p.rmp.adjustPermissions(VMSA, 1, 0, true);
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.machine.vcpu.regs.rip = 0x1000n;
    p.injectFromHost(0x80);
    expect(p.rmpUpdate(HOST_PAGE, { assigned: true, pageSize: '4k', gpa: HOST_PAGE, asid: p.asid }).rc).toBe(0);
    // Another page the host writes after the save; the scheduler passes switch points; SNP_LAUNCH_FINISH.
    p.handle.hostMemory.write(OTHER_PAGE, new Uint8Array(4096).fill(0xa5));
    for (let i = 0; i < 3; i++) p.scheduler!.switchPoint('exit');
    p.launchFinish();
    expect(p.isRunnable(1)).toBe(true);
    const pauseExits = vi.spyOn(p.machine, 'pauseExits', 'set');

    // The saved state did not follow those changes.
    expect(own(saved)).toEqual(savedCopy);
    p.loadState(saved);
    expect([p.nptPageSize(REGION), p.nptPageSize(REGION + PAGE_2M)]).toEqual(['2m', '4k']);
    expect(p.ghcbMsr).toBe(0x1000n);
    expect([p.isRunnable(0), p.isRunnable(1)]).toEqual([true, false]);
    // PAUSE is a switch point only while another vCPU can run.
    expect(pauseExits).toHaveBeenLastCalledWith(false);
    expect(p.scheduler!.saveState()).toEqual(saved.scheduler);
    // Still launching (Firmware ABI: the guest is RUNNING only after SNP_LAUNCH_FINISH), the digest as it was.
    expect([p.launch.finished, p.launch.hex]).toEqual([false, launchDigest]);
    // Nothing was pending at the save: the next step runs the guest instead of ending the run.
    const step = p.step();
    expect(step.kind === 'outcome' && step.outcome.outcome === 'terminated').toBe(false);
    // HOST_PAGE holds the host's bytes in DRAM again: assigned to the guest, the guest key decrypts them,
    // so the guest's view is not the host's bytes (ciphertext.test.ts shows it is their decryption).
    expect(p.rmpUpdate(HOST_PAGE, { assigned: true, pageSize: '4k', gpa: HOST_PAGE, asid: p.asid }).rc).toBe(0);
    expect(Buffer.from(p.machine.memory.read(HOST_PAGE, 4096)).equals(Buffer.alloc(4096, 0x5a))).toBe(false);
    // OTHER_PAGE was not written at the save: assigned now, it reads as a never-written page does.
    expect(p.rmpUpdate(OTHER_PAGE, { assigned: true, pageSize: '4k', gpa: OTHER_PAGE, asid: p.asid }).rc).toBe(0);
    expect(Buffer.from(p.machine.memory.read(OTHER_PAGE, 4096)).equals(Buffer.alloc(4096))).toBe(true);
    p.machine.close();
  });

  it('keeps a shutdown pending at the save: the first step after the restore ends the run', () => {
    const p = SnpPlatform.create({ memoryBytes: MEMORY, countInstructions: false });
    p.machine.vcpu.regs.rip = 0x1000n;
    p.injectFromHost(0x80);  // no IDT: the delivery fails, a shutdown (APM Vol. 2 §8.2.9)
    const saved = p.saveState();
    const first = p.step();
    expect(first).toMatchObject({ kind: 'outcome', outcome: { outcome: 'terminated' } });
    p.loadState(saved);
    expect(p.step()).toMatchObject({ kind: 'outcome', outcome: { outcome: 'terminated' } });
    p.machine.close();
  });
});

// The host's execution watch (Vcpu.watchExecution) stops a Linux boot where the decompressor
// enters the kernel: the run's outcome is 'handover' (src/shared/outcome.ts), which a Linux boot
// counts as reaching the kernel (src/boot/boot-guest.ts), not a fault of the guest.
describe('an execution-watch exit', () => {
  it('ends the run as a handover at the watched RIP', () => {
    const p = platform();
    const step = p.handleExit({ kind: 'exec-watch', rip: 0x1000200n, gpa: 0x1000200n });
    expect(step).toMatchObject({ kind: 'outcome', outcome: { outcome: 'handover' } });
    expect(step.kind === 'outcome' && step.outcome.reason).toContain('0x1000200');
    p.machine.close();
  });
});

// APM Vol. 2 §15.36.7: a guest access is checked against the permission mask of the VMPL the vCPU
// runs at, whichever VMPL that is. So for a guest at VMPL2 or VMPL3, neighbouring pages that differ
// only in that VMPL's mask get different gates: each page's own (the gate is derived by regions,
// and pages alike share one derivation).
describe('the page gate of a guest running at VMPL2 or VMPL3', () => {
  it('follows each page\'s own mask for that VMPL, where neighbours differ in it alone', () => {
    for (const vmpl of [2, 3] as const) {
      const p = SnpPlatform.create({ memoryBytes: MEMORY, countInstructions: false, vmpl });
      expect(p.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: p.asid }).rc).toBe(0);
      p.rmp.setValidated(REGION, true);
      expect(p.psmash(REGION).rc).toBe(0);
      const at = (k: bigint) => REGION + k * PAGE_4K;
      for (let k = 0n; k < 8n; k++) p.rmp.adjustPermissions(at(k), vmpl, VMPL_PERM_RWX, false);
      // Page 3: this VMPL may only read it; page 5: only the other of VMPL2/VMPL3 holds RWX.
      p.rmp.adjustPermissions(at(3n), vmpl, VMPL_PERM.read, false);
      p.rmp.adjustPermissions(at(5n), vmpl, 0, false);
      p.rmp.adjustPermissions(at(5n), vmpl === 2 ? 3 : 2, VMPL_PERM_RWX, false);
      p.setNptPageSize(REGION, '4k');  // resynchronises the region
      expect([2n, 3n, 4n, 5n, 6n].map((k) => [vmpl, k, p.machine.gate.get('private', at(k)), p.machine.gate.fetch('private', at(k))])).toEqual([
        [vmpl, 2n, 'readwrite', 'any'], [vmpl, 3n, 'read', 'none'], [vmpl, 4n, 'readwrite', 'any'], [vmpl, 5n, 'none', 'none'], [vmpl, 6n, 'readwrite', 'any'],
      ]);
      p.machine.close();
    }
  });
});

// Which events the VMM injects push RF = 1: the fault-class exceptions. Linux KVM
// exception_type() (arch/x86/kvm/x86.c): #DB (1), #BP (3) and #OF (4) are traps, NMI (2) an
// interrupt, #DF (8) and #MC (18) aborts, every other vector below 32 (reserved ones included) a
// fault, and KVM sets RF for EXCPT_FAULT only (inject_pending_event); vectors 32-255 are
// interrupts. AMD APM Vol. 2 §3.1.6: an exception normally pushes RF = 1, an interrupt RF as it is.
describe('pushesResumeFlag', () => {
  it('is true for the fault-class exceptions only: not the traps #DB #BP #OF, NMI, the aborts #DF #MC, or interrupts', () => {
    const traps = [1, 3, 4], nmi = [2], aborts = [8, 18];
    for (let vector = 0; vector < 256; vector++) {
      const fault = vector < 32 && ![...traps, ...nmi, ...aborts].includes(vector);
      expect([vector, pushesResumeFlag(vector)]).toEqual([vector, fault]);
    }
  });
});

// AP creation and destruction at the platform (what KVM's sev_snp_ap_creation asks of the
// hardware: VMRUN of the target from the VMSA, or no more VMRUN for it), pinned where a mutation
// sweep of runApFromVmsa and stopVcpu found nothing checking it.
describe('SnpPlatform.runApFromVmsa / stopVcpu', () => {
  function withVmsaAt(gpa: bigint): SnpPlatform {
    const p = SnpPlatform.create({ memoryBytes: MEMORY, vcpus: 2, countInstructions: false });
    p.machine.memory.write(gpa, flat32VmsaPage());
    expect(p.rmpUpdate(gpa, { assigned: true, pageSize: '4k', gpa, asid: p.asid }).rc).toBe(0);
    p.rmp.adjustPermissions(gpa, 1, 0, true);  // the VMSA bit (Linux snp_set_vmsa: RMPADJUST with VMSA set)
    return p;
  }

  it('runs an AP from a VMSA page at GPA 0: the VMRUN Page Checks (APM Vol. 2 §15.36.12) ask nothing of the address but that the RMP entry be the guest\'s VMSA page', () => {
    const p = withVmsaAt(0n);
    expect(p.runApFromVmsa(1, 0n)).toEqual({ ok: true });
    expect(p.isRunnable(1)).toBe(true);
    p.machine.close();
  });

  it('refuses, without throwing, a vCPU index that names no vCPU (KVM kvm_get_vcpu_by_id: NULL, -EINVAL), even with a good VMSA', () => {
    const p = withVmsaAt(0x11000n);
    for (const index of [-1, 1.5, 2]) {
      const r = p.runApFromVmsa(index, 0x11000n);
      expect([index, r.ok]).toEqual([index, false]);
    }
    expect(p.isRunnable(1)).toBe(false);
    for (const index of [-1, 1.5, 2]) expect(() => p.stopVcpu(index)).toThrow(RangeError);
    p.machine.close();
  });

  it('PAUSE becomes a switch point once a second vCPU runs and stops being one when it is stopped (the scheduler only has a choice while two can run)', () => {
    const p = withVmsaAt(0x11000n);
    const pauseExits = vi.spyOn(p.machine, 'pauseExits', 'set');
    expect(p.runApFromVmsa(1, 0x11000n)).toEqual({ ok: true });
    expect(pauseExits).toHaveBeenLastCalledWith(true);
    p.stopVcpu(1);
    expect(pauseExits).toHaveBeenLastCalledWith(false);
    p.machine.close();
  });
});
