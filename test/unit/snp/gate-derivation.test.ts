// The SNP page gate as SnpPlatform derives it incrementally (one page, one 2 MiB region, a launch
// range in one update, deferred regions merged into runs of neighbours), checked against what the
// RMP Memory Access Checks allow (AMD APM Vol. 2 §15.36.10), written out here for each case rather
// than asked of gateFor: a gate more permissive than the RMP lets the guest make an access the
// hardware refuses.
//   - a private access fails unless the page is guest-owned, its RMP entry names the GPA accessed
//     (reverse map), and the nested page size is the RMP entry's page size: a 2 MiB nested mapping
//     over 4 KiB entries is refused, and so is a 4 KiB one over a 2 MiB entry (KVM
//     sev_handle_rmp_fault, arch/x86/kvm/svm/sev.c: "Guest access via NPT can trigger an #NPF if
//     the NPT mapping is smaller than what is indicated by the 2MB-aligned RMP entry", which it
//     resolves with PSMASH);
//   - a shared (C=0) write needs a hypervisor-owned page, and through a 2 MiB nested translation
//     every 4 KiB RMP entry under it hypervisor-owned;
//   - a fetch needs the VMPL's Execute-Supervisor (CPL 0-2) or Execute-User (CPL 3) permission
//     (§15.36.7 "VMPL Permission Mask Definition").
import { describe, expect, it } from 'vitest';
import { PAGE_2M, PAGE_4K, VMPL_PERM } from '../../../src/platform/snp/rmp.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { snpGuest } from '../../helpers/snp-guest.js';

const MEMORY = 16n << 20n;
const R2 = 2n * PAGE_2M, R3 = 3n * PAGE_2M, R4 = 4n * PAGE_2M;

function platform(options: { vmpl?: 0 | 1; memoryBytes?: bigint } = {}): SnpPlatform {
  return SnpPlatform.create({ memoryBytes: options.memoryBytes ?? MEMORY, countInstructions: false, ...(options.vmpl !== undefined ? { vmpl: options.vmpl } : {}) });
}

/** A 2 MiB page assigned to the guest at its own GPA and validated (what PVALIDATE of 2 MiB leaves). */
function validated2m(p: SnpPlatform, gpa: bigint): void {
  expect(p.rmpUpdate(gpa, { assigned: true, pageSize: '2m', gpa, asid: p.asid }).rc).toBe(0);
  p.rmp.setValidated(gpa, true);
}

const gate = (p: SnpPlatform, gpa: bigint) => [p.machine.gate.get('private', gpa), p.machine.gate.fetch('private', gpa), p.machine.gate.get('shared', gpa)];

describe('the gate of a launch range (SNP_LAUNCH_UPDATE of fresh pages) next to 2 MiB nested mappings', () => {
  it('its pages under a 2 MiB nested mapping stay closed to private accesses, and that region\'s hypervisor-owned pages to shared writes', () => {
    const p = platform();
    p.setNptPageSize(R2, '2m');
    // Every entry of the region hypervisor-owned: shared writes through the 2 MiB translation pass.
    expect(p.machine.gate.get('shared', R2 + 0x80000n)).toBe('readwrite');
    // Four fresh pages, two below the region (4 KiB nested mappings) and two in it.
    expect(p.launchRange(R2 - 2n * PAGE_4K, 4n * PAGE_4K, 'ZERO')).toMatchObject({ rc: 0, op: 'launch-update' });
    expect([R2 - 2n * PAGE_4K, R2 - PAGE_4K].map((gpa) => p.machine.gate.get('private', gpa))).toEqual(['readwrite', 'readwrite']);
    // Launched pages are 4 KiB RMP entries: a 2 MiB nested mapping fails the page-size check.
    expect([R2, R2 + PAGE_4K].map((gpa) => p.machine.gate.get('private', gpa))).toEqual(['none', 'none']);
    // The 2 MiB translation now covers assigned pages: a shared write anywhere in it is refused.
    expect(p.machine.gate.get('shared', R2 + 0x80000n)).toBe('read');
    p.machine.close();
  });
});

describe('the gate of 2 MiB RMP entries resynchronised together (batchGateSync)', () => {
  it('two neighbouring validated 2 MiB pages alike but for their nested page size: only the one mapped 2 MiB is open to private accesses', () => {
    const p = platform();
    validated2m(p, R2);
    validated2m(p, R3);
    p.batchGateSync(() => {
      p.setNptPageSize(R2, '2m');
      p.setNptPageSize(R3, '4k');
    });
    expect(gate(p, R2 + 0x1000n)).toEqual(['readwrite', 'any', 'ciphertext']);
    // 4 KiB nested mappings over a 2 MiB RMP entry: the page-size check fails (KVM PSMASHes then).
    expect(gate(p, R3 + 0x1000n)).toEqual(['none', 'none', 'ciphertext']);
    p.machine.close();
  });

  it('two validated 2 MiB pages with a hypervisor-owned region between them: the region between stays closed to private accesses', () => {
    const p = platform();
    p.setNptPageSize(R3, '4k');  // derives the hypervisor-owned region between
    expect(gate(p, R3 + 0x1000n)).toEqual(['none', 'none', 'readwrite']);
    // Two validated 2 MiB pages at their own GPAs, 4 MiB apart: alike but for their GPAs.
    validated2m(p, R2);
    validated2m(p, R4);
    p.batchGateSync(() => {
      p.setNptPageSize(R2, '2m');
      p.setNptPageSize(R4, '2m');
    });
    expect(gate(p, R2)).toEqual(['readwrite', 'any', 'ciphertext']);
    expect(gate(p, R4)).toEqual(['readwrite', 'any', 'ciphertext']);
    expect(gate(p, R3 + 0x1000n)).toEqual(['none', 'none', 'readwrite']);
    p.machine.close();
  });

  it('neighbouring 2 MiB pages a VMPL1 may read and write, only the first execute: the second stays closed to fetches', () => {
    const p = platform({ vmpl: 1 });
    validated2m(p, R2);
    validated2m(p, R3);
    // What RMPADJUST at VMPL0 grants VMPL1 (APM Vol. 3 RMPADJUST; §15.36.7 permission mask).
    p.rmp.adjustPermissions(R2, 1, VMPL_PERM.read | VMPL_PERM.write | VMPL_PERM.execUser | VMPL_PERM.execSupervisor, false);
    p.rmp.adjustPermissions(R3, 1, VMPL_PERM.read | VMPL_PERM.write, false);
    p.batchGateSync(() => {
      p.setNptPageSize(R2, '2m');
      p.setNptPageSize(R3, '2m');
    });
    expect(gate(p, R2)).toEqual(['readwrite', 'any', 'ciphertext']);
    expect(gate(p, R3)).toEqual(['readwrite', 'none', 'ciphertext']);
    p.machine.close();
  });

  it('a hypervisor-owned (Immutable) 2 MiB entry before a guest-assigned one: shared writes pass on the first only', () => {
    const p = platform();
    // RMPUPDATE's new state carries Immutable for a hypervisor-owned page too (Linux struct
    // rmp_state: gpa, assigned, pagesize, immutable, asid).
    expect(p.rmpUpdate(R2, { assigned: false, pageSize: '2m', immutable: true, gpa: 0n, asid: 0 }).rc).toBe(0);
    expect(p.rmpUpdate(R3, { assigned: true, pageSize: '2m', gpa: R3, asid: p.asid }).rc).toBe(0);
    p.batchGateSync(() => {
      p.setNptPageSize(R2, '4k');
      p.setNptPageSize(R3, '4k');
    });
    expect(gate(p, R2)).toEqual(['none', 'none', 'readwrite']);
    // Assigned to the guest: a shared write NPFs; a shared read sees the ciphertext.
    expect(gate(p, R3)).toEqual(['none', 'none', 'ciphertext']);
    p.machine.close();
  });
});

describe('the gate of a region of 4 KiB RMP entries', () => {
  it('a hypervisor-owned Immutable page under a 2 MiB nested mapping that covers an assigned page: no shared writes', () => {
    const p = platform();
    expect(p.rmpUpdate(R2, { assigned: true, pageSize: '4k', gpa: R2, asid: p.asid }).rc).toBe(0);
    expect(p.rmpUpdate(R2 + PAGE_4K, { assigned: false, pageSize: '4k', immutable: true, gpa: 0n, asid: 0 }).rc).toBe(0);
    p.setNptPageSize(R2, '2m');
    expect([R2 + PAGE_4K, R2 + 2n * PAGE_4K].map((gpa) => p.machine.gate.get('shared', gpa))).toEqual(['read', 'read']);
    p.setNptPageSize(R2, '4k');
    // Mapped 4 KiB, a hypervisor-owned page takes shared writes whatever its neighbours are.
    expect([R2 + PAGE_4K, R2 + 2n * PAGE_4K].map((gpa) => p.machine.gate.get('shared', gpa))).toEqual(['readwrite', 'readwrite']);
    p.machine.close();
  });

  it('a validated page whose reverse map names another GPA, after a gap, is closed to private accesses however alike its entry is', () => {
    const p = platform();
    const at = (k: bigint) => R2 + k * PAGE_4K;
    expect(p.rmpUpdate(at(0n), { assigned: true, pageSize: '4k', gpa: at(0n), asid: p.asid }).rc).toBe(0);
    p.rmp.setValidated(at(0n), true);
    // Page 2 names page 1's GPA (a hypervisor remapping), page 1 has no entry of its own.
    expect(p.rmpUpdate(at(2n), { assigned: true, pageSize: '4k', gpa: at(1n), asid: p.asid }).rc).toBe(0);
    p.rmp.setValidated(at(2n), true);
    p.setNptPageSize(R2, '4k');  // derives the region
    expect([0n, 1n, 2n].map((k) => p.machine.gate.get('private', at(k)))).toEqual(['readwrite', 'none', 'none']);
    p.machine.close();
  });

  it('with RAM ending 1 MiB into a region: a region emptied by a 2 MiB RMPUPDATE closes all its 512 pages to private accesses', () => {
    const p = platform({ memoryBytes: 3n << 20n });
    p.setNptPageSize(PAGE_2M, '4k');  // derives the short last region, all hypervisor-owned
    validated2m(p, 0n);
    p.setNptPageSize(0n, '2m');
    expect(p.machine.gate.get('private', 0x1ff000n)).toBe('readwrite');
    p.batchGateSync(() => {
      expect(p.rmpUpdate(0n, { assigned: false, pageSize: '2m', gpa: 0n, asid: 0 }).rc).toBe(0);
      p.setNptPageSize(0n, '4k');
    });
    expect([0n, 0x100000n, 0x1ff000n].map((gpa) => gate(p, gpa))).toEqual([['none', 'none', 'readwrite'], ['none', 'none', 'readwrite'], ['none', 'none', 'readwrite']]);
    p.machine.close();
  });
});

// An event the VMM injects is delivered as though it occurred in the guest (APM Vol. 2 §15.20): its
// IDT read and frame pushes are guest accesses, RMP-checked with the nested page size the VMM has
// set by then. A 2 MiB nested mapping over the 4 KiB RMP entries of the IDT and stack fails the
// page-size check (§15.36.10), so the delivery cannot complete, even inside a batch of host work
// whose gate is derived only at its end.
describe('an event the VMM injects', () => {
  it('inside a batch of host work is not delivered through a region the batch already mapped 2 MiB over 4 KiB RMP entries', () => {
    const g = snpGuest('hlt');
    g.platform.batchGateSync(() => {
      g.platform.setNptPageSize(0n, '2m');
      g.platform.injectFromHost(6);
    });
    expect(g.trace.ofType('shutdown')).toHaveLength(1);
    expect(g.trace.ofType('shutdown')[0]).toMatchObject({ vector: 6 });
    g.vm.close();
  });

  // A not-present IDT gate raises #NP; with no gate for #NP either, #DF; and a fault while
  // invoking the #DF handler shuts the processor down (AMD APM Vol. 2 §8.2.9 "Double-Fault
  // Exception"). KVM cannot reset an SEV-ES/SNP vCPU (its VMSA is encrypted) and exits with
  // KVM_EXIT_SHUTDOWN (svm.c shutdown_interception): the guest runs no further instruction.
  it('that cannot be delivered (no IDT gate for it, #NP or #DF) ends the run before the guest\'s next instruction', () => {
    const g = snpGuest('mov r12, 1\n hlt');
    g.platform.injectFromHost(0x40);
    expect(g.run()).toMatchObject({ outcome: 'terminated' });
    expect(g.vm.vcpu.regs.r12).not.toBe(1n);
    g.vm.close();
  });
});
