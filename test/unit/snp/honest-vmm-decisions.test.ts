// The honest SNP VMM's decisions (src/vmm/snp/honest-vmm.ts), one #VMEXIT at a time: the exit
// is handed to the policy as the hardware model would make it, the GHCB (shared memory) written as
// a guest would. What each answer must be comes from the GHCB spec (AMD 56421) and KVM's SNP host
// code (arch/x86/kvm/svm/sev.c).
import { describe, expect, it } from 'vitest';
import { NPF_BITS } from '../../../src/platform/snp/access-check.js';
import { ghcbMsr, PSC_OP } from '../../../src/platform/snp/ghcb-msr.js';
import { encodePscEntry, GHCB_ERR, GHCB_OFFSET, IOIO } from '../../../src/platform/snp/ghcb-page.js';
import { snpCpuid } from '../../../src/platform/snp/sev-status.js';
import { SNP_GUEST_SEV_FEATURES } from '../../../src/platform/snp/snp-cpu.js';
import { HonestSnpVmm } from '../../../src/vmm/snp/honest-vmm.js';
import { flat32VmsaPage, GHCB_GPA, snpGuest } from '../../helpers/snp-guest.js';

const MiB = 1n << 20n;

/**
 * A launched SNP guest of `memoryBytes` (nothing run) and its honest VMM. `registerGhcb`: vCPU 0
 * has registered GHCB_GPA as its GHCB (MSR protocol 0x012), as a guest must before it uses it.
 */
function launched(memoryBytes = 8n * MiB, vmm?: HonestSnpVmm, vcpus = 1, registerGhcb = true) {
  const g = snpGuest('hlt', { memoryBytes, vcpus });
  const v = vmm ?? g.vmm;
  const host = g.platform.handle;
  /** The GHCB MSR protocol: the VMM's answer to `request` (the GHCB MSR it leaves). */
  const msr = (request: bigint) => {
    host.ghcbMsr = request;  // the VMCB's GHCB GPA field holds what the guest wrote to the MSR
    const answer = v.onVmgexit(host, { kind: 'vmgexit', rip: 0n, ghcbMsr: request });
    return { answer, msr: host.ghcbMsr };
  };
  /** #VMEXIT(NPF) of a write to `gpa`, private (C-bit set, error code bit 34) or shared. */
  const npf = (gpa: bigint, space: 'private' | 'shared') => v.onNpf(host, {
    kind: 'npf', rip: 0x1000n, gpa, access: 'write', reason: 'rmp',
    errorCode: NPF_BITS.present | NPF_BITS.write | NPF_BITS.rmp | NPF_BITS.finalGpa | (space === 'private' ? NPF_BITS.enc : 0n),
  });
  const npfActions = () => g.trace.events.filter((e) => e.type === 'npf-handled').map((e) => e.action);
  /** Writes a GHCB at `gpa` as a guest fills one: the save-area fields given, each marked valid, nothing else. */
  const writeGhcb = (gpa: bigint, fields: Partial<Record<keyof typeof GHCB_OFFSET, bigint>>, notValid: (keyof typeof GHCB_OFFSET)[] = []) => {
    const area = Buffer.alloc(GHCB_OFFSET.validBitmap + 16);
    for (const [name, value] of Object.entries(fields) as [keyof typeof GHCB_OFFSET, bigint][]) {
      area.writeBigUInt64LE(value, GHCB_OFFSET[name]);
      if (notValid.includes(name)) continue;
      const bit = GHCB_OFFSET[name] / 8;
      area[GHCB_OFFSET.validBitmap + (bit >> 3)]! |= 1 << (bit & 7);
    }
    host.hostMemory.write(gpa, area);
  };
  const readGhcb = (gpa: bigint, name: keyof typeof GHCB_OFFSET) => Buffer.from(host.hostMemory.read(gpa + BigInt(GHCB_OFFSET[name]), 8)).readBigUInt64LE(0);
  if (registerGhcb) expect(msr(ghcbMsr.registerReq(GHCB_GPA >> 12n)).msr).toBe(ghcbMsr.registerResp(GHCB_GPA >> 12n));
  return { g, vmm: v, host, msr, npf, npfActions, writeGhcb, readGhcb, close: () => g.vm.close() };
}

/** Makes the hypervisor-owned 4K page at `gpa` Immutable in the RMP (RMPUPDATE), so that any conversion of it fails. */
function immutableHypervisorPage(t: ReturnType<typeof launched>, gpa: bigint): void {
  expect(t.host.rmpUpdate(gpa, { assigned: false, pageSize: '4k', gpa: 0n, asid: 0, immutable: true }).rc).toBe(0);
}

/** MSR-protocol PSC response (GHCB spec §2.3.1): error code in bits 63:32 of 0x015. */
const pscError = (msr: bigint) => { expect(msr & 0xfffn).toBe(0x15n); return msr >> 32n; };

describe('honest SNP VMM: which GPAs are RAM', () => {
  // KVM snp_begin_psc_msr checks no memslot: the page goes to userspace (KVM_HC_MAP_GPA_RANGE).
  // QEMU kvm_convert_memory finds no memory region there: to shared is "ignored" and succeeds,
  // to private fails, and QEMU stops the VM on a failed exit (kvm_cpu_exec, RUN_STATE_INTERNAL_ERROR).
  it('a page-state change of the last page of memory is done; of the first page past it: to shared a no-op that succeeds, to private the VM stops', () => {
    const t = launched();
    const last = 8n * MiB - 0x1000n;
    expect(pscError(t.msr(ghcbMsr.pscReq(last >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
    expect(t.host.rmpEntry(last)).toMatchObject({ assigned: true, pageSize: '4k', gpa: last });
    const shared = t.msr(ghcbMsr.pscReq((8n * MiB) >> 12n, PSC_OP.SHARED));
    expect([shared.answer, pscError(shared.msr)]).toEqual(['resume', 0n]);
    expect(t.msr(ghcbMsr.pscReq((8n * MiB) >> 12n, PSC_OP.PRIVATE)).answer).toMatchObject({ outcome: 'vmm-error' });
    t.close();
  });

  it('with a memory map, a page in a hole between RAM ranges (no memslot there): to shared succeeds and changes nothing, to private stops the VM', () => {
    const vmm = new HonestSnpVmm({ ram: [{ start: 0n, end: 4n * MiB }, { start: 6n * MiB, end: 8n * MiB }] });
    const t = launched(8n * MiB, vmm);
    const shared = t.msr(ghcbMsr.pscReq((5n * MiB) >> 12n, PSC_OP.SHARED));
    expect([shared.answer, pscError(shared.msr)]).toEqual(['resume', 0n]);
    expect(t.msr(ghcbMsr.pscReq((5n * MiB) >> 12n, PSC_OP.PRIVATE)).answer).toMatchObject({ outcome: 'vmm-error' });
    expect(t.host.rmpEntry(5n * MiB).assigned).toBe(false);
    expect(pscError(t.msr(ghcbMsr.pscReq((6n * MiB) >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
    t.close();
  });

  // Linux asm/sev-common.h: GHCB_MSR_PSC_RESP_ERROR = BIT_ULL(63) | GHCB_MSR_PSC_RESP, what KVM
  // sends for an operation other than private/shared (snp_begin_psc_msr) and for a failed
  // conversion (snp_complete_psc_msr): the error field [63:32] is 0x80000000.
  it('an MSR-protocol PSC with operation 3 (not private/shared), or one that cannot be done: response 0x8000000000000015', () => {
    const t = launched();
    expect(t.msr(ghcbMsr.pscReq(0x400n, PSC_OP.PSMASH)).msr).toBe(0x8000_0000_0000_0015n);
    expect(t.host.rmpUpdate(0x500000n, { assigned: true, pageSize: '4k', gpa: 0x500000n, asid: t.host.asid, immutable: true }).rc).toBe(0);
    expect(t.msr(ghcbMsr.pscReq(0x500n, PSC_OP.SHARED)).msr).toBe(0x8000_0000_0000_0015n);
    t.close();
  });

  // KVM snp_begin_psc_msr: "op != SNP_PAGE_STATE_PRIVATE && op != SNP_PAGE_STATE_SHARED" is
  // GHCB_MSR_PSC_RESP_ERROR at once, whatever side of 1..2 the operation is: 0 as well as 3 and up.
  it.each([0, 15])('an MSR-protocol PSC with operation %i: response 0x8000000000000015, the page (private) not changed', (op) => {
    const t = launched();
    expect(t.host.rmpUpdate(0x500000n, { assigned: true, pageSize: '4k', gpa: 0x500000n, asid: t.host.asid }).rc).toBe(0);
    expect(t.msr(ghcbMsr.pscReq(0x500n, op)).msr).toBe(0x8000_0000_0000_0015n);
    expect(t.host.rmpEntry(0x500000n)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });
});

describe('honest SNP VMM: nested page faults (KVM sev_handle_rmp_fault; QEMU kvm_convert_memory on KVM_EXIT_MEMORY_FAULT)', () => {
  const REGION = 0x400000n;

  it('an access in a hole between RAM ranges is a fault: no RMPUPDATE makes a page there', () => {
    const vmm = new HonestSnpVmm({ ram: [{ start: 0n, end: 4n * MiB }, { start: 6n * MiB, end: 8n * MiB }] });
    const t = launched(8n * MiB, vmm);
    expect(t.npf(5n * MiB, 'private')).toMatchObject({ outcome: 'fault' });
    expect(t.host.rmpEntry(5n * MiB).assigned).toBe(false);
    t.close();
  });

  it('a shared access to a 2 MiB private page of this guest converts that 4K page to shared (PSMASH, then RMPUPDATE); the rest stays private', () => {
    const t = launched();
    expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: t.host.asid }).rc).toBe(0);
    t.host.setNptPageSize(REGION, '2m');
    expect(t.npf(REGION + 0x3000n, 'shared')).toBe('resume');
    expect(t.npfActions()).toEqual(['make-shared']);
    // The region is mixed now: KVM maps it again at 4K (KVM_LPAGE_MIXED_FLAG), so the next access does not fault on the size.
    expect(t.host.nptPageSize(REGION + 0x3000n)).toBe('4k');
    expect(t.host.rmpEntry(REGION + 0x3000n).assigned).toBe(false);
    expect(t.host.rmpEntry(REGION + 0x4000n)).toMatchObject({ assigned: true, pageSize: '4k', asid: t.host.asid });
    t.close();
  });

  it.each(['private', 'shared'] as const)('a %s access to a page another guest owns: the VMM neither PSMASHes nor converts it', (space) => {
    const t = launched();
    const other = t.host.asid + 1;
    expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: other }).rc).toBe(0);
    t.host.setNptPageSize(REGION, '4k');
    // Nothing the VMM may do resolves it: it stops rather than resume into the same fault.
    expect(t.npf(REGION + 0x3000n, space)).toMatchObject({ outcome: 'vmm-error' });
    expect(t.npfActions()).toEqual([]);
    expect(t.host.rmpEntry(REGION + 0x3000n)).toMatchObject({ assigned: true, pageSize: '2m', asid: other });
    t.close();
  });

  // The NPF's GPA is the faulting byte's (APM Vol. 2 §15.25.6: EXITINFO2 holds the guest physical
  // address that faulted); KVM works on its page: sev_handle_rmp_fault takes gfn = gpa >> PAGE_SHIFT
  // and PSMASHes the 2 MiB page around it (pfn & ~(PTRS_PER_PMD - 1)); QEMU converts the page.
  describe.each(['123', 'fff'])('at byte offset 0x%s of its page, the fault is about that page', (hex) => {
    const offset = BigInt(`0x${hex}`);
    it('a private access in a 2 MiB private page of this guest: PSMASH of the region at its 2 MiB base, the NPT split there', () => {
      const t = launched();
      expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: t.host.asid }).rc).toBe(0);
      t.host.setNptPageSize(REGION, '2m');
      expect(t.npf(REGION + 0x3000n + offset, 'private')).toBe('resume');
      expect(t.npfActions()).toEqual(['psmash']);
      expect(t.host.rmpEntry(REGION)).toMatchObject({ assigned: true, pageSize: '4k', gpa: REGION });
      expect(t.host.rmpEntry(REGION + 0x3000n)).toMatchObject({ assigned: true, pageSize: '4k', gpa: REGION + 0x3000n });
      expect(t.host.nptPageSize(REGION)).toBe('4k');
      t.close();
    });

    // KVM sev_handle_rmp_fault: a PSMASH that fails (and the entry still 2M when looked up again)
    // is a warning ("SEV: Unable to split RMP entry"), then kvm_zap_gfn_range and the guest resumes:
    // no exit to userspace, the VM goes on. The mapping comes back at the entry's level (still 2M).
    // Was: the VM stopped (vmm-error). PSMASH fails here on an Immutable 2M entry (FAIL_PERMISSION).
    it('a private access in a 2 MiB private page whose PSMASH fails: the guest resumes, the RMP entry and the NPT as they were', () => {
      const t = launched();
      expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: t.host.asid, immutable: true }).rc).toBe(0);
      expect(t.npf(REGION + 0x3000n + offset, 'private')).toBe('resume');
      expect(t.g.trace.events.filter((e) => e.type === 'npf-handled')).toMatchObject([{ action: 'psmash', failed: 'FAIL_PERMISSION' }]);
      expect(t.host.rmpEntry(REGION + 0x3000n)).toMatchObject({ assigned: true, pageSize: '2m', immutable: true });
      expect(t.host.nptPageSize(REGION)).toBe('4k');
      t.close();
    });

    it('a private access to a shared page makes that page private, its reverse map the page\'s GPA', () => {
      const t = launched();
      expect(t.npf(REGION + 0x5000n + offset, 'private')).toBe('resume');
      expect(t.npfActions()).toEqual(['make-private']);
      expect(t.host.rmpEntry(REGION + 0x5000n)).toMatchObject({ assigned: true, pageSize: '4k', gpa: REGION + 0x5000n, asid: t.host.asid });
      expect([t.host.rmpEntry(REGION + 0x4000n).assigned, t.host.rmpEntry(REGION + 0x6000n).assigned]).toEqual([false, false]);
      t.close();
    });

    it('a shared access to a 4 KiB private page of this guest makes that page shared', () => {
      const t = launched();
      expect(t.host.rmpUpdate(REGION + 0x5000n, { assigned: true, pageSize: '4k', gpa: REGION + 0x5000n, asid: t.host.asid }).rc).toBe(0);
      expect(t.npf(REGION + 0x5000n + offset, 'shared')).toBe('resume');
      expect(t.npfActions()).toEqual(['make-shared']);
      expect(t.host.rmpEntry(REGION + 0x5000n).assigned).toBe(false);
      t.close();
    });
  });

  it('a private access to a hypervisor page the RMP makes immutable: the conversion fails and the VMM stops (QEMU stops the VM when kvm_convert_memory fails)', () => {
    const t = launched();
    immutableHypervisorPage(t, REGION);
    expect(t.npf(REGION, 'private')).toMatchObject({ outcome: 'vmm-error' });
    expect(t.host.rmpEntry(REGION).assigned).toBe(false);
    t.close();
  });

  it('a shared access to a private page of this guest that the RMP makes immutable: the conversion to shared fails and the VMM stops', () => {
    const t = launched();
    expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '4k', gpa: REGION, asid: t.host.asid, immutable: true }).rc).toBe(0);
    expect(t.npf(REGION, 'shared')).toMatchObject({ outcome: 'vmm-error' });
    expect(t.host.rmpEntry(REGION)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });
});

describe('honest SNP VMM: MSR-protocol page-state changes (GHCB spec §2.3.1; KVM snp_handle_page_state_change / kvm_vm_set_mem_attributes)', () => {
  const REGION = 0x400000n;
  const rmpUpdates = (t: ReturnType<typeof launched>) => t.g.trace.events.filter((e) => e.type === 'rmpupdate');

  it('to shared, of a page that is already shared: nothing to do, no RMPUPDATE ("Nothing to do if the entire range has the desired attributes")', () => {
    const t = launched();
    const before = rmpUpdates(t).length;
    expect(pscError(t.msr(ghcbMsr.pscReq((REGION + 0x1000n) >> 12n, PSC_OP.SHARED)).msr)).toBe(0n);
    expect(rmpUpdates(t)).toHaveLength(before);
    t.close();
  });

  it('to private, of one page of a shared region the NPT maps at 2M: the region is mixed now, so its NPT goes to 4K', () => {
    const t = launched();
    t.host.setNptPageSize(REGION, '2m');
    expect(pscError(t.msr(ghcbMsr.pscReq((REGION + 0x1000n) >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
    expect(t.host.rmpEntry(REGION + 0x1000n)).toMatchObject({ assigned: true, pageSize: '4k', gpa: REGION + 0x1000n });
    expect(t.host.nptPageSize(REGION + 0x1000n)).toBe('4k');
    t.close();
  });

  it('to private, of a page inside a 2 MiB private page of this guest: nothing to do, the 2M entry stays (no PSMASH, no RMPUPDATE)', () => {
    const t = launched();
    expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: t.host.asid }).rc).toBe(0);
    const before = rmpUpdates(t).length;
    expect(pscError(t.msr(ghcbMsr.pscReq((REGION + 0x1000n) >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
    expect(t.host.rmpEntry(REGION + 0x1000n).pageSize).toBe('2m');
    expect(rmpUpdates(t)).toHaveLength(before);
    t.close();
  });

  it('to private, of a page inside a 2 MiB entry of this guest that maps other GPAs: PSMASH, then the page gets its own 4K entry', () => {
    const t = launched();
    // The RMP's reverse map says this 2 MiB backs the guest's [6 MiB, 8 MiB), not [4 MiB, 6 MiB).
    expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: 6n * MiB, asid: t.host.asid }).rc).toBe(0);
    expect(pscError(t.msr(ghcbMsr.pscReq((REGION + 0x1000n) >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
    expect(t.host.rmpEntry(REGION + 0x1000n)).toMatchObject({ assigned: true, pageSize: '4k', gpa: REGION + 0x1000n, asid: t.host.asid });
    t.close();
  });

  it('to shared, of a private page the RMP makes immutable: the RMPUPDATE fails and the response carries a non-zero error', () => {
    const t = launched();
    expect(t.host.rmpUpdate(REGION, { assigned: true, pageSize: '4k', gpa: REGION, asid: t.host.asid, immutable: true }).rc).toBe(0);
    expect(pscError(t.msr(ghcbMsr.pscReq(REGION >> 12n, PSC_OP.SHARED)).msr)).not.toBe(0n);
    expect(t.host.rmpEntry(REGION).assigned).toBe(true);
    t.close();
  });
});

describe('honest SNP VMM: MSR-protocol preferred GHCB GPA (GHCB spec §2.3.1, request 0x010, response 0x011)', () => {
  // KVM sev_handle_vmgexit_msr_protocol, GHCB_MSR_PREF_GPA_REQ: set_ghcb_msr_bits(svm, GHCB_MSR_PREF_GPA_NONE,
  // GHCB_MSR_GPA_VALUE_MASK, GHCB_MSR_GPA_VALUE_POS) then GHCB_MSR_PREF_GPA_RESP in bits 11:0; the guest resumes.
  // GHCB_MSR_PREF_GPA_NONE is 0xfffffffffffff (asm/sev-common.h): bits 63:12 all ones, over whatever the request left there.
  it('is answered 0x011 with no preferred GPA (all ones in bits 63:12), and the guest resumes', () => {
    const t = launched();
    for (const request of [0x010n, 0x12345010n]) expect(t.msr(request)).toEqual({ answer: 'resume', msr: 0xfffffffffffff011n });
    t.close();
  });
});

describe('honest SNP VMM: MSR-protocol CPUID (GHCB spec §2.3.1: bits 31:30 name the register, 0 EAX, 1 EBX, 2 ECX, 3 EDX)', () => {
  it('answers each register of leaf 0 with the CPU\'s own value', () => {
    const t = launched();
    const cpu = snpCpuid(0, 0, t.host.cBit);
    const answers = [0, 1, 2, 3].map((reg) => t.msr(ghcbMsr.cpuidReq(0, reg)).msr);
    expect(answers).toEqual([cpu.eax, cpu.ebx, cpu.ecx, cpu.edx].map((value, reg) => ghcbMsr.cpuidResp(value, reg)));
    t.close();
  });
});

describe('honest SNP VMM: which GHCB it serves (KVM sev_handle_vmgexit, GHCB spec §2.3.2 GHCB GPA registration)', () => {
  const HV_FEATURES_NAE = { swExitCode: 0x8000fffdn, swExitInfo1: 0n, swExitInfo2: 0n };

  // KVM sev_handle_vmgexit (torvalds/linux arch/x86/kvm/svm/sev.c): "if (!ghcb_gpa) { ... /* Without
  // a GHCB, just return right back to the guest */ return 1; }", and the same when kvm_vcpu_map of
  // the GHCB's gfn fails (no memslot there). Nothing is read or written: no answer in the GHCB, the
  // MSR as the guest wrote it, the run goes on.
  /** A VMGEXIT whose GHCB GPA KVM does not serve resumes the guest with the page at `gpa` (if any) and the MSR untouched. */
  const resumedUnanswered = (t: ReturnType<typeof launched>, gpa: bigint, page: bigint) => {
    t.writeGhcb(page, HV_FEATURES_NAE);
    const before = Buffer.from(t.host.hostMemory.read(page, 0x1000));
    const r = t.msr(gpa);
    expect(r.answer).toBe('resume');
    expect(r.msr).toBe(gpa);
    expect(Buffer.from(t.host.hostMemory.read(page, 0x1000)).equals(before)).toBe(true);
    expect(t.g.trace.ofType('ghcb-unmapped').at(-1)).toMatchObject({ gpa });
    expect(t.g.trace.ofType('ghcb-exit')).toHaveLength(0);
  };

  it('a VMGEXIT with no GHCB GPA in the MSR (0) resumes the guest unanswered ("GHCB gpa is not set")', () => {
    const t = launched();
    resumedUnanswered(t, 0n, 0n);
    t.close();
  });

  it('a GHCB GPA in a hole between RAM ranges, or past the end of RAM, resumes the guest unanswered (KVM cannot map it)', () => {
    const vmm = new HonestSnpVmm({ ram: [{ start: 0n, end: 4n * MiB }, { start: 6n * MiB, end: 8n * MiB }] });
    const t = launched(8n * MiB, vmm);
    resumedUnanswered(t, 5n * MiB, 5n * MiB);
    const r = t.msr(8n * MiB);
    expect([r.answer, r.msr]).toEqual(['resume', 8n * MiB]);
    expect(t.g.trace.ofType('ghcb-unmapped').at(-1)).toMatchObject({ gpa: 8n * MiB });
    t.close();
  });

  // KVM sev_handle_vmgexit: "SEV-SNP guest requires that the GHCB GPA must be registered": if
  // !ghcb_gpa_is_registered(svm, ghcb_gpa) (svm.h: ghcb_registered_gpa == ghcb_gpa) it returns
  // -EINVAL, no SW_EXITINFO answer: KVM_RUN fails and QEMU stops the VM. ghcb_registered_gpa is
  // written only by the GHCB MSR registration request (GHCB_MSR_REG_GPA_REQ), so it is 0 until then.
  /** The GHCB at `gpa` is refused as KVM refuses it: the VM stops, the page as the guest left it. */
  const refused = (t: ReturnType<typeof launched>, gpa: bigint) => {
    t.writeGhcb(gpa, HV_FEATURES_NAE);
    const before = Buffer.from(t.host.hostMemory.read(gpa, 0x1000));
    const answer = t.msr(gpa).answer;
    expect(answer).toMatchObject({ outcome: 'vmm-error' });
    expect(Buffer.from(t.host.hostMemory.read(gpa, 0x1000)).equals(before)).toBe(true);
    return answer === 'resume' ? '' : answer.reason;
  };
  const served = (t: ReturnType<typeof launched>, gpa: bigint) => {
    t.writeGhcb(gpa, HV_FEATURES_NAE);
    expect(t.msr(gpa).answer).toBe('resume');
    expect([t.readGhcb(gpa, 'swExitInfo1'), t.readGhcb(gpa, 'swExitInfo2')]).toEqual([0n, 3n]);
  };

  it('a vCPU that registered no GHCB has its first GHCB exit refused (KVM: "GHCB GPA … is not registered", -EINVAL): the VM stops', () => {
    const t = launched(8n * MiB, undefined, 1, false);
    expect(refused(t, GHCB_GPA)).toMatch(/^GHCB GPA 0x30000 is not registered \(this vCPU registered no GHCB\)/);
    t.close();
  });

  // GHCB spec (AMD 56421) "GHCB GPA Registration": request 0x012 with the GFN in [63:12], response
  // 0x013 with the GFN the hypervisor registered (all ones if it cannot, Linux commit 0c76b1d08280:
  // "respond back with the same GPA otherwise return -1"). KVM never refuses: it stores the GFN and
  // echoes it, whatever it is.
  it('a registration request is answered 0x013 with the same GFN, whatever the GFN (KVM checks none)', () => {
    const t = launched(8n * MiB, undefined, 1, false);
    for (const gfn of [GHCB_GPA >> 12n, (8n * MiB) >> 12n, (1n << 40n) - 1n]) {
      const r = t.msr(ghcbMsr.registerReq(gfn));
      expect([r.answer, r.msr]).toEqual(['resume', ghcbMsr.registerResp(gfn)]);
      expect(t.vmm.registeredGhcb).toBe(gfn << 12n);
    }
    t.close();
  });

  it('a VMGEXIT with a GHCB GPA other than the registered one is refused; the registered one is served', () => {
    const t = launched();
    expect(refused(t, GHCB_GPA + 0x1000n)).toMatch(/this vCPU registered 0x30000/);
    served(t, GHCB_GPA);
    t.close();
  });

  it('a second registration replaces the first (KVM overwrites ghcb_registered_gpa): the old GHCB is refused', () => {
    const t = launched();
    t.msr(ghcbMsr.registerReq((GHCB_GPA + 0x1000n) >> 12n));
    served(t, GHCB_GPA + 0x1000n);
    refused(t, GHCB_GPA);
    t.close();
  });

  it('a restore takes back a GHCB registration made after the snapshot', () => {
    const t = launched(8n * MiB, undefined, 1, false);
    const saved = t.vmm.saveState();
    t.msr(ghcbMsr.registerReq(GHCB_GPA >> 12n));
    expect(t.vmm.registeredGhcb).toBe(GHCB_GPA);
    t.vmm.loadState(saved);
    expect(t.vmm.registeredGhcb).toBeUndefined();
    t.close();
  });

  it('a restore brings back the GHCB registration the snapshot held: that GHCB is served again, a later one refused', () => {
    const t = launched();
    const saved = t.vmm.saveState();
    t.msr(ghcbMsr.registerReq((GHCB_GPA + 0x1000n) >> 12n));
    t.vmm.loadState(saved);
    expect(t.vmm.registeredGhcb).toBe(GHCB_GPA);
    served(t, GHCB_GPA);
    refused(t, GHCB_GPA + 0x1000n);
    t.close();
  });

  it('each vCPU registers its own GHCB (KVM keeps ghcb_registered_gpa per vCPU): an AP cannot use the BSP\'s, and the BSP\'s stays valid after an AP registers another', () => {
    const t = launched(8n * MiB, undefined, 2);
    t.g.vm.switchVcpu(1);
    expect(refused(t, GHCB_GPA)).toMatch(/this vCPU registered no GHCB/);
    t.msr(ghcbMsr.registerReq((GHCB_GPA + 0x1000n) >> 12n));
    served(t, GHCB_GPA + 0x1000n);
    t.g.vm.switchVcpu(0);
    served(t, GHCB_GPA);
    t.close();
  });
});

describe('honest SNP VMM: the console at the end of a run', () => {
  it('a last line without its newline still reaches the echo when the guest halts or asks to terminate (MSR protocol or NAE)', () => {
    for (const end of ['hlt', 'terminate', 'terminate-nae'] as const) {
      const echoed: string[] = [];
      const t = launched(8n * MiB, new HonestSnpVmm({ echo: (text) => echoed.push(text) }));
      for (const b of Buffer.from('last words')) t.vmm.console.write(b);
      if (end === 'hlt') t.vmm.onHlt();
      else if (end === 'terminate') expect(t.msr(ghcbMsr.termReq(0, 1)).answer).toMatchObject({ outcome: 'guest-fatal' });
      else {
        t.writeGhcb(GHCB_GPA, { swExitCode: 0x8000fffen, swExitInfo1: 0x10n, swExitInfo2: 0n });
        expect(t.msr(GHCB_GPA).answer).toMatchObject({ outcome: 'guest-fatal' });
      }
      expect(echoed).toEqual(['last words']);
      t.close();
    }
  });
});

describe('honest SNP VMM: GHCB requests (GHCB spec §4.1; KVM sev_es_validate_vmgexit, sev_es_string_io)', () => {
  const HV_FEATURES_NAE = { swExitCode: 0x8000fffdn, swExitInfo1: 0n, swExitInfo2: 0n };
  /** A launched guest and a VMGEXIT with the GHCB at GHCB_GPA as `fields` leave it; returns the VMM's answer. */
  const request = (fields: Partial<Record<keyof typeof GHCB_OFFSET, bigint>>, notValid: (keyof typeof GHCB_OFFSET)[] = []) => {
    const t = launched();
    t.writeGhcb(GHCB_GPA, fields, notValid);
    const answer = t.msr(GHCB_GPA).answer;
    return { t, answer, result: [t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')] };
  };
  const ioioOut = (port: bigint, size: bigint) => (port << 16n) | size;
  const validBit = (t: ReturnType<typeof launched>, name: keyof typeof GHCB_OFFSET) => {
    const bit = GHCB_OFFSET[name] / 8;
    return (t.host.hostMemory.read(GHCB_GPA + BigInt(GHCB_OFFSET.validBitmap + (bit >> 3)), 1)[0]! >> (bit & 7)) & 1;
  };

  // KVM sev_es_sync_from_ghcb clears the whole valid bitmap; what KVM then writes with its
  // ghcb_set_<field> accessors is marked valid again (asm/svm.h DEFINE_GHCB_ACCESSORS: __set_bit of
  // the field's bit): SW_EXITINFO1 and 2 (the result), and RAX, RBX, RCX, RDX (sev_es_sync_to_ghcb).
  it('HV features NAE → SW_EXITINFO2 = SNP | SNP_AP_CREATION (KVM GHCB_HV_FT_SUPPORTED); of the fields the guest supplied, only those KVM writes back are valid', () => {
    const { t, result } = request(HV_FEATURES_NAE);
    expect(result).toEqual([0n, 3n]);
    expect((['swExitCode', 'swExitInfo1', 'swExitInfo2'] as const).map((f) => validBit(t, f))).toEqual([0, 1, 1]);
    t.close();
  });

  it('after any exit, RAX, RBX, RCX and RDX are returned marked valid: the value the guest supplied, 0 for one it did not mark valid (KVM sev_es_sync_from_ghcb, sev_es_sync_to_ghcb)', () => {
    // An OUT to the debug port with RAX supplied, RBX and RCX written but not marked valid, and
    // SW_SCRATCH (not returned) marked valid.
    const { t, result } = request({ swExitCode: 0x7bn, swExitInfo1: ioioOut(0x80n, IOIO.SZ8), swExitInfo2: 0n, rax: 0x1234n, rbx: 0x55n, rcx: 0x66n, swScratch: 0x77n }, ['rbx', 'rcx']);
    expect(result).toEqual([0n, 0n]);
    expect((['rax', 'rbx', 'rcx', 'rdx'] as const).map((r) => [t.readGhcb(GHCB_GPA, r), validBit(t, r)])).toEqual([[0x1234n, 1], [0n, 1], [0n, 1], [0n, 1]]);
    expect([validBit(t, 'swScratch'), validBit(t, 'swExitCode')]).toEqual([0, 0]);
    t.close();
  });

  it('a request KVM refuses (GHCB usage 1) still has its valid bitmap cleared and RAX..RDX returned, with the error in SW_EXITINFO1/2 marked valid', () => {
    const t = launched();
    t.writeGhcb(GHCB_GPA, { ...HV_FEATURES_NAE, rax: 9n });
    t.host.hostMemory.write(GHCB_GPA + BigInt(GHCB_OFFSET.usage), Buffer.from([1, 0, 0, 0]));
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([2n, GHCB_ERR.INVALID_USAGE]);
    expect((['swExitCode', 'swExitInfo1', 'swExitInfo2', 'rax', 'rbx'] as const).map((f) => validBit(t, f))).toEqual([0, 1, 1, 1, 1]);
    expect(t.readGhcb(GHCB_GPA, 'rax')).toBe(9n);
    t.close();
  });

  it('CPUID NAE: RAX, RBX, RCX, RDX hold the answer and are marked valid (Linux vc_handle_cpuid rejects the answer otherwise)', () => {
    const { t, result } = request({ swExitCode: 0x72n, swExitInfo1: 0n, swExitInfo2: 0n, rax: 0n, rcx: 0n });
    expect(result).toEqual([0n, 0n]);
    const cpu = snpCpuid(0, 0, t.host.cBit);
    expect((['rax', 'rbx', 'rcx', 'rdx'] as const).map((r) => [t.readGhcb(GHCB_GPA, r), validBit(t, r)]))
      .toEqual([cpu.eax, cpu.ebx, cpu.ecx, cpu.edx].map((v) => [BigInt(v >>> 0), 1]));
    t.close();
  });

  // KVM sev_es_sync_from_ghcb clears the whole valid bitmap (memset of all 16 bytes), and sev_es_sync_to_ghcb
  // marks only RAX, RBX, RCX and RDX valid again: XCR0 (0x3e8, bit 125, in the bitmap's last byte), which a
  // CPUID of leaf 0xD must supply, is not valid after the exit.
  it('CPUID NAE of leaf 0xD with XCR0: after the exit XCR0 is no longer marked valid, only RAX, RBX, RCX, RDX are', () => {
    const { t, result } = request({ swExitCode: 0x72n, swExitInfo1: 0n, swExitInfo2: 0n, rax: 0xdn, rcx: 0n, xcr0: 1n });
    expect(result).toEqual([0n, 0n]);
    expect((['xcr0', 'swExitCode', 'rax', 'rbx', 'rcx', 'rdx'] as const).map((f) => validBit(t, f))).toEqual([0, 0, 1, 1, 1, 1]);
    t.close();
  });

  // KVM kvm_emulate_cpuid takes the answer in u32s and writes each with kvm_rax_write / kvm_rbx_write / …,
  // zero-extended into the 64-bit register that sev_es_sync_to_ghcb copies to the GHCB: a value with bit 31
  // set (leaf 1 ECX, leaf 0x80000000 EAX here) has bits 63:32 clear, not sign-extended.
  it('CPUID NAE: a 32-bit answer with bit 31 set reaches the GHCB zero-extended', () => {
    for (const leaf of [0x1n, 0x80000000n]) {
      const { t, result } = request({ swExitCode: 0x72n, swExitInfo1: 0n, swExitInfo2: 0n, rax: leaf, rcx: 0n });
      expect(result).toEqual([0n, 0n]);
      const cpu = snpCpuid(Number(leaf), 0, t.host.cBit);
      const regs = (['rax', 'rbx', 'rcx', 'rdx'] as const).map((r) => t.readGhcb(GHCB_GPA, r));
      expect(regs).toEqual([cpu.eax, cpu.ebx, cpu.ecx, cpu.edx].map((v) => BigInt(v >>> 0)));
      expect(regs.some((v) => v >= 0x80000000n)).toBe(true);
      expect(regs.every((v) => v >> 32n === 0n)).toBe(true);
      t.close();
    }
  });

  it.each([
    ['not marked valid (KVM: PSC needs SW_SCRATCH valid)', GHCB_GPA + 0x800n, ['swScratch'], 4n],
    ['in the save area, before the shared buffer', GHCB_GPA + 0x400n, [], 3n],
    // KVM setup_vmgexit_scratch: a scratch area that begins in the GHCB page must begin at or after
    // offsetof(struct ghcb, shared_buffer) (0x800), "scratch_gpa_beg < ghcb_scratch_beg", even if it ends there.
    ['8 bytes before the shared buffer (its header would end at 0x800)', GHCB_GPA + 0x7f8n, [], 3n],
    ['one byte before the shared buffer', GHCB_GPA + 0x7ffn, [], 3n],
    ['with no room for the 8-byte header before the GHCB trailer', GHCB_GPA + 0xff0n, [], 3n],
    // KVM: setup_vmgexit_scratch(svm, true, sizeof(struct psc_hdr)), "scratch_gpa_end > ghcb_scratch_end".
    ['whose 8-byte header would end one byte past the shared buffer (0xff1)', GHCB_GPA + 0xfe9n, [], 3n],
    ['whose 8-byte header would end at 0xff4', GHCB_GPA + 0xfecn, [], 3n],
  ] as const)('Page State Change with SW_SCRATCH %s → a GHCB error, no page changed', (_what, scratch, notValid, code) => {
    const t = launched();
    // A header (cur 0, end 0) and one entry making 0x400000 private, wherever SW_SCRATCH points.
    t.host.hostMemory.write(scratch, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch }, [...notValid]);
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([2n, code]);
    t.close();
  });

  /** A PSC NAE with `entries` in the shared buffer (cur_entry 0); returns the answer and the buffer after it. */
  const psc = (t: ReturnType<typeof launched>, entries: bigint[], curEntry = 0) => {
    const scratch = GHCB_GPA + 0x800n;
    const buf = Buffer.alloc(8 + entries.length * 8);
    buf.writeUInt16LE(curEntry, 0);
    buf.writeUInt16LE(entries.length - 1, 2);
    entries.forEach((e, i) => buf.writeBigUInt64LE(e, 8 + i * 8));
    t.host.hostMemory.write(scratch, buf);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch });
    const answer = t.msr(GHCB_GPA).answer;
    const after = Buffer.from(t.host.hostMemory.read(scratch, buf.length));
    return { answer, info2: t.readGhcb(GHCB_GPA, 'swExitInfo2'), curEntry: after.readUInt16LE(0), entries: entries.map((_, i) => after.readBigUInt64LE(8 + i * 8)) };
  };

  it('Page State Change progress is written back: cur_entry past the last entry, a 2M entry\'s cur_page 512 (GHCB spec §4.1.6)', () => {
    const t = launched();
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true }),
      encodePscEntry({ curPage: 0, gfn: 0x600000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 2]);
    expect(r.entries[0]! & 0xfffn).toBe(512n);
    expect(t.host.rmpEntry(0x400000n)).toMatchObject({ assigned: true, pageSize: '2m' });
    t.close();
  });

  it('a 2M entry to private over a region with one page already private: every page of it ends private (not skipped as "already")', () => {
    const t = launched();
    expect(pscError(t.msr(ghcbMsr.pscReq(0x400000n >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true })]);
    expect([r.answer, r.info2]).toEqual(['resume', 0n]);
    for (const page of [0x400000n, 0x401000n, 0x5ff000n]) expect(t.host.rmpEntry(page)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });

  // A 2M private RMP entry makes the region private to this guest only with this guest's ASID and,
  // in its reverse map, the region's own GPA (APM Vol. 2 §15.36.10 "RMP Memory Access Checks": the
  // guest's ASID and the GPA must match the entry's; KVM sev_gmem_prepare: rmp_make_private(pfn,
  // gfn_to_gpa(gfn), level, asid)). One that names another GPA or ASID is not that already.
  it.each([
    ['of this guest that maps other GPAs (6 MiB)', 6n * MiB, 0],
    ['of another ASID at the region\'s GPA', 0x400000n, 1],
  ])('a 2M entry to private over a 2 MiB private page %s: the region ends a 2M page of this guest at its own GPA', (_what, mappedGpa, asidDelta) => {
    const t = launched();
    expect(t.host.rmpUpdate(0x400000n, { assigned: true, pageSize: '2m', gpa: mappedGpa, asid: t.host.asid + asidDelta }).rc).toBe(0);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true })]);
    expect([r.answer, r.info2, r.entries[0]! & 0xfffn]).toEqual(['resume', 0n, 512n]);
    expect(t.host.rmpEntry(0x400000n)).toMatchObject({ assigned: true, pageSize: '2m', gpa: 0x400000n, asid: t.host.asid });
    t.close();
  });

  it('a 2M entry to shared over a region that is all shared already: nothing to do, no RMPUPDATE', () => {
    const t = launched();
    const updates = () => t.g.trace.events.filter((e) => e.type === 'rmpupdate').length;
    const before = updates();
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.SHARED, size2m: true })]);
    expect([r.answer, r.info2]).toEqual(['resume', 0n]);
    expect(updates()).toBe(before);
    t.close();
  });

  it('a 2M entry to shared over an all-shared region next to private pages (the page before it, the page after it): still nothing to do', () => {
    const t = launched();
    for (const gpa of [0x3ff000n, 0x600000n]) expect(t.host.rmpUpdate(gpa, { assigned: true, pageSize: '4k', gpa, asid: t.host.asid }).rc).toBe(0);
    const updates = () => t.g.trace.events.filter((e) => e.type === 'rmpupdate').length;
    const before = updates();
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.SHARED, size2m: true })]);
    expect([r.answer, r.info2]).toEqual(['resume', 0n]);
    expect(updates()).toBe(before);
    expect([t.host.rmpEntry(0x3ff000n).assigned, t.host.rmpEntry(0x600000n).assigned]).toEqual([true, true]);
    t.close();
  });

  // GHCB spec §4.1.6: a 2M entry changes the state of all 512 pages of its region; KVM converts the
  // whole range (snp_begin_psc: npages = 512). "Nothing to do" holds only when every one of them,
  // the last included, is shared already.
  it('a 2M entry to shared over a region whose only private page is its last one: that page ends shared too', () => {
    const t = launched();
    const last = 0x5ff000n;
    expect(t.host.rmpUpdate(last, { assigned: true, pageSize: '4k', gpa: last, asid: t.host.asid }).rc).toBe(0);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.SHARED, size2m: true })]);
    expect([r.answer, r.info2]).toEqual(['resume', 0n]);
    expect(t.host.rmpEntry(last).assigned).toBe(false);
    t.close();
  });

  // The same for the region's first page (snp_begin_psc: gfn, npages = 512 from the entry's gfn).
  it('a 2M entry to shared over a region whose only private page is its first one: that page ends shared too', () => {
    const t = launched();
    expect(t.host.rmpUpdate(0x400000n, { assigned: true, pageSize: '4k', gpa: 0x400000n, asid: t.host.asid }).rc).toBe(0);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.SHARED, size2m: true })]);
    expect([r.answer, r.info2]).toEqual(['resume', 0n]);
    expect(t.host.rmpEntry(0x400000n).assigned).toBe(false);
    t.close();
  });

  // GHCB spec §4.1.6 / KVM: a page made private is assigned to this guest (its ASID, its own GPA in
  // the reverse map); a page that some other ASID holds at that address is not that already.
  it('a 4K entry to private of a page another ASID holds at that GPA: the page ends assigned to this guest', () => {
    const t = launched();
    const page = 0x400000n;
    expect(t.host.rmpUpdate(page, { assigned: true, pageSize: '4k', gpa: page, asid: t.host.asid + 1 }).rc).toBe(0);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: page >> 12n, op: PSC_OP.PRIVATE, size2m: false })]);
    expect([r.answer, r.info2]).toEqual(['resume', 0n]);
    expect(t.host.rmpEntry(page)).toMatchObject({ assigned: true, asid: t.host.asid, gpa: page });
    t.close();
  });

  // Expected values from KVM arch/x86/kvm/svm/sev.c (torvalds/linux 0097f9df): snp_begin_psc
  // carries out only VMGEXIT_PSC_OP_PRIVATE/SHARED; its default case completes any other
  // operation through __snp_complete_one_psc (cur_page = pagesize ? 512 : 1, cur_entry past it)
  // and reports success, SW_EXITINFO2 0.
  it.each([
    ['PSMASH (3), 2M', PSC_OP.PSMASH, true],
    ['PSMASH (3), 4K', PSC_OP.PSMASH, false],
    ['UNSMASH (4), 2M', PSC_OP.UNSMASH, true],
    ['undefined operation 0, 4K', 0, false],
    ['undefined operation 15, 2M', 15, true],
  ])('a %s entry is completed without being carried out (KVM snp_begin_psc default case): no error, cur_page set, RMP unchanged', (_what, op, size2m) => {
    const t = launched();
    expect(t.host.rmpUpdate(0x400000n, { assigned: true, pageSize: '2m', gpa: 0x400000n, asid: t.host.asid }).rc).toBe(0);
    const before = [0x400000n, 0x401000n, 0x600000n].map((gpa) => t.host.rmpEntry(gpa));
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op, size2m }),
      encodePscEntry({ curPage: 0, gfn: 0x600000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 2]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([size2m ? 512n : 1n, 1n]);
    expect([0x400000n, 0x401000n].map((gpa) => t.host.rmpEntry(gpa))).toEqual(before.slice(0, 2));
    expect(t.host.rmpEntry(0x600000n)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });

  // KVM snp_begin_psc: npages = pagesize ? 512 : 1; cur_page > npages is an invalid entry, and
  // cur_page == npages leaves nothing to do for the entry (skipped, cur_entry++).
  it('a 4K entry with cur_page 1 is done already: skipped, the page unchanged, the next entry done', () => {
    const t = launched();
    const r = psc(t, [
      encodePscEntry({ curPage: 1, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x600000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 2]);
    expect(t.host.rmpEntry(0x400000n).assigned).toBe(false);
    expect(t.host.rmpEntry(0x600000n).assigned).toBe(true);
    t.close();
  });

  it('a 4K entry with cur_page 2 → invalid entry (KVM snp_begin_psc: cur_page > npages), nothing done', () => {
    const t = launched();
    const r = psc(t, [encodePscEntry({ curPage: 2, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false })]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', (1n << 32n) | 2n, 0]);
    expect(t.host.rmpEntry(0x400000n).assigned).toBe(false);
    t.close();
  });

  it('a done 4K entry gets cur_page 1 written back (KVM __snp_complete_one_psc: cur_page = pagesize ? 512 : 1)', () => {
    const t = launched();
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x401000n >> 12n, op: PSC_OP.SHARED, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 2]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([1n, 1n]);
    expect(r.entries.map((e) => e & ~0xfffn)).toEqual([
      encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x401000n >> 12n, op: PSC_OP.SHARED, size2m: false }),
    ]);
    t.close();
  });

  it('a 4K entry that cannot be done (an immutable page to make shared) → GENERIC error, the entries after it not done', () => {
    const t = launched();
    expect(t.host.rmpUpdate(0x400000n, { assigned: true, pageSize: '4k', gpa: 0x400000n, asid: t.host.asid, immutable: true }).rc).toBe(0);
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.SHARED, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x600000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 0]);
    expect(t.host.rmpEntry(0x600000n).assigned).toBe(false);
    t.close();
  });

  it('a 2M entry to shared over a region with one private page in it (not its first): that page ends shared too', () => {
    const t = launched();
    expect(pscError(t.msr(ghcbMsr.pscReq(0x401000n >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.SHARED, size2m: true })]);
    expect([r.answer, r.info2]).toEqual(['resume', 0n]);
    expect(t.host.rmpEntry(0x401000n).assigned).toBe(false);
    t.close();
  });

  it('a 2M entry to shared over a 2 MiB private page of this guest: every page of the region ends hypervisor-owned', () => {
    const t = launched();
    expect(t.host.rmpUpdate(0x400000n, { assigned: true, pageSize: '2m', gpa: 0x400000n, asid: t.host.asid }).rc).toBe(0);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.SHARED, size2m: true })]);
    expect([r.answer, r.info2, r.entries[0]! & 0xfffn]).toEqual(['resume', 0n, 512n]);
    for (const gpa of [0x400000n, 0x4ff000n, 0x5ff000n]) expect(t.host.rmpEntry(gpa)).toMatchObject({ assigned: false, asid: 0, validated: false });
    t.close();
  });

  // GHCB spec §4.1.6: a 2M entry's cur_page is the 4K page it continues from (the guest resubmits
  // an entry the hypervisor left part done); 512 means done, more is an invalid entry.
  it('a 2M entry to private from cur_page 256: only its pages 256..511 change, cur_page ends at 512', () => {
    const t = launched();
    const r = psc(t, [encodePscEntry({ curPage: 256, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true })]);
    expect([r.answer, r.info2, r.entries[0]! & 0xfffn]).toEqual(['resume', 0n, 512n]);
    // The entry ends at its page 511: the next region's first page (0x600000) is not its to change.
    expect([0x400000n, 0x4ff000n, 0x500000n, 0x5ff000n, 0x600000n].map((gpa) => t.host.rmpEntry(gpa).assigned)).toEqual([false, false, true, true, false]);
    t.close();
  });

  // KVM converts the entry's pages left in one exit to userspace; when that fails
  // (snp_complete_one_psc) it writes no cur_page: the guest's 256 stays, cur_entry names the entry.
  it('a 2M entry that stops at a page it cannot change: GENERIC, its cur_page left as the guest gave it', () => {
    const t = launched();
    const stuck = 0x400000n + 300n * 0x1000n;
    immutableHypervisorPage(t, stuck);
    const r = psc(t, [encodePscEntry({ curPage: 256, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true })]);
    expect([r.info2, r.curEntry, r.entries[0]! & 0xfffn]).toEqual([0x100n << 32n, 0, 256n]);
    t.close();
  });

  // KVM snp_begin_psc combines entry 1 and 2 (same operation and size, cur_page 0, gfn = first +
  // pages so far) into one exit to userspace; entry 0 (another operation) was one before it. When
  // the run 1..2 fails, snp_complete_one_psc marks none of its entries (no __snp_complete_one_psc)
  // and cur_entry stays at its first, 1; entry 0's run was completed already: cur_page 1.
  it('a later entry fails: the entries of its run (combined with it by KVM) are not marked done, cur_entry is the run\'s first; earlier runs stay done', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x501000n);
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x600000n >> 12n, op: PSC_OP.SHARED, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x500000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x501000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 1]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([1n, 0n, 0n]);
    t.close();
  });

  // KVM snp_begin_psc combines, after the first entry not done, every next one with "entry.operation
  // == entry_start.operation", "entry.gfn == entry_start.gfn + npages" (npages counting the whole
  // run so far), cur_page 0 and the same page size; any other entry, a done one included, ends the run.
  it('a run goes on over any number of adjacent entries: the third fails, so none of the three is done', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x502000n);
    const r = psc(t, [0x500000n, 0x501000n, 0x502000n].map((gpa) => encodePscEntry({ curPage: 0, gfn: gpa >> 12n, op: PSC_OP.PRIVATE, size2m: false })));
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 0]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([0n, 0n, 0n]);
    t.close();
  });

  it('two adjacent 2M entries are one run: the second fails, so neither is done', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x605000n);
    const r = psc(t, [0x400000n, 0x600000n].map((gpa) => encodePscEntry({ curPage: 0, gfn: gpa >> 12n, op: PSC_OP.PRIVATE, size2m: true })));
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 0]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([0n, 0n]);
    t.close();
  });

  // A partly done 2M entry goes on at 4K ("npages -= entry_start.cur_page; gfn += entry_start.cur_page;
  // huge = false"), and the next entry joins it only at entry_start.gfn + npages: the entry's own gfn
  // plus the pages it has left, 256 here, not 768.
  it('after a 2M entry done up to cur_page 256, a 4K entry at its gfn + 768 pages is a run of its own: it fails alone', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x700000n);
    const r = psc(t, [
      encodePscEntry({ curPage: 256, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true }),
      encodePscEntry({ curPage: 0, gfn: 0x700000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 1]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([512n, 0n]);
    t.close();
  });

  it('a run that fails after cur_entry 1: the entries before cur_entry and those of the failed run are as the guest wrote them, byte for byte', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x502000n);
    const entries = [
      encodePscEntry({ curPage: 0, gfn: 0x7ff000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),  // before cur_entry: not looked at
      encodePscEntry({ curPage: 0, gfn: 0x600000n >> 12n, op: PSC_OP.SHARED, size2m: false }),   // a run of its own: done
      encodePscEntry({ curPage: 0, gfn: 0x501000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),  // the failing run: 0x501000, 0x502000
      encodePscEntry({ curPage: 0, gfn: 0x502000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ];
    const r = psc(t, entries, 1);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 2]);
    expect(r.entries).toEqual([entries[0], entries[1]! | 1n, entries[2], entries[3]]);
    expect(t.host.rmpEntry(0x7ff000n).assigned).toBe(false);
    t.close();
  });

  it('a done entry between two adjacent ones ends the run: the entry after it that fails leaves the first done', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x501000n);
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x500000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 1, gfn: 0x700000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x501000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 2]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([1n, 1n, 0n]);
    expect(t.host.rmpEntry(0x500000n)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });

  // KVM snp_begin_psc (torvalds/linux 0097f9df) ends a run at the first following entry with
  // "entry.operation != entry_start.operation || entry.gfn != entry_start.gfn + npages ||
  // entry.cur_page || !!entry.pagesize != huge". Each condition on its own: an entry that breaks
  // only that one starts a run of its own, so the run before it is done (__snp_complete_one_psc:
  // cur_page 512 or 1, cur_entry past it) whatever happens to the entry.
  it('an adjacent entry with the other operation is a run of its own: it fails alone, the entry before it done', () => {
    const t = launched();
    // 0x501000: a private page the RMP makes immutable, which no RMPUPDATE makes shared.
    expect(t.host.rmpUpdate(0x501000n, { assigned: true, pageSize: '4k', gpa: 0x501000n, asid: t.host.asid, immutable: true }).rc).toBe(0);
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x500000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x501000n >> 12n, op: PSC_OP.SHARED, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 1]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([1n, 0n]);
    expect(t.host.rmpEntry(0x500000n)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });

  it('an adjacent entry with cur_page 1 does not join the run: it is done already, its page not changed', () => {
    const t = launched();
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x500000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 1, gfn: 0x501000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 2]);
    expect([0x500000n, 0x501000n].map((gpa) => t.host.rmpEntry(gpa).assigned)).toEqual([true, false]);
    t.close();
  });

  // A 2M entry done up to cur_page 256 goes on at 4K (huge = false) and its npages is 256: the next
  // entry joins it only as a 4K entry at its gfn + 256. A 2M entry there is a run of its own, and as
  // one its gfn is not 2 MiB aligned: invalid entry, with the run before it done (cur_page 512).
  it('after a 2M entry done up to cur_page 256, a 2M entry at its gfn + 256 pages does not join it (4K run): invalid entry, the first done', () => {
    const t = launched();
    const r = psc(t, [
      encodePscEntry({ curPage: 256, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true }),
      encodePscEntry({ curPage: 0, gfn: 0x500000n >> 12n, op: PSC_OP.PRIVATE, size2m: true }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', (1n << 32n) | 2n, 1]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([512n, 0n]);
    expect([0x4ff000n, 0x500000n, 0x5ff000n, 0x600000n].map((gpa) => t.host.rmpEntry(gpa).assigned)).toEqual([false, true, true, false]);
    t.close();
  });

  // The join test is "entry_start.gfn + npages", npages being 512 - cur_page for a part-done 2M
  // entry: a 4K entry right after the entry's region (gfn + 512) is not adjacent to what is left of it.
  it('after a 2M entry done up to cur_page 256, a 4K entry at its gfn + 512 pages is a run of its own: it fails alone', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x600000n);
    const r = psc(t, [
      encodePscEntry({ curPage: 256, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true }),
      encodePscEntry({ curPage: 0, gfn: 0x600000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 1]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([512n, 0n]);
    t.close();
  });

  // "npages += huge ? 512 : 1" for each entry joined: a third 2M entry joins at the first gfn + 1024.
  it('three adjacent 2M entries are one run: the third fails, so none of them is done', () => {
    const t = launched();
    immutableHypervisorPage(t, 0x605000n);
    const r = psc(t, [0x200000n, 0x400000n, 0x600000n].map((gpa) => encodePscEntry({ curPage: 0, gfn: gpa >> 12n, op: PSC_OP.PRIVATE, size2m: true })));
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0x100n << 32n, 0]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([0n, 0n, 0n]);
    t.close();
  });

  // KVM: the run before an invalid entry went to userspace and came back done (snp_complete_one_psc
  // -> __snp_complete_one_psc writes its cur_page and cur_entry into the guest's buffer), then
  // snp_begin_psc finds the invalid entry and answers VMGEXIT_PSC_ERROR_INVALID_ENTRY.
  it('an invalid entry after a valid one: INVALID_ENTRY, the valid one done and written back, cur_entry names the invalid one', () => {
    const t = launched();
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: 0x500000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
      encodePscEntry({ curPage: 2, gfn: 0x600000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', (1n << 32n) | 2n, 1]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([1n, 2n]);
    expect([0x500000n, 0x600000n].map((gpa) => t.host.rmpEntry(gpa).assigned)).toEqual([true, false]);
    t.close();
  });

  // KVM never reads psc_entry.reserved (bits 63:57) or psc_hdr.reserved (asm/sev-common.h; only
  // end_entry, cur_page and the gfn's alignment are checked in snp_begin_psc).
  it('an entry with its reserved bits (63:57) set is carried out as if they were clear, and keeps them', () => {
    const t = launched();
    const entry = encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false, reserved: 0x7f });
    const r = psc(t, [entry]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 1]);
    expect(r.entries[0]).toBe(entry | 1n);
    expect(t.host.rmpEntry(0x400000n)).toMatchObject({ assigned: true, gpa: 0x400000n });
    t.close();
  });

  it('a header with its reserved word set is processed as usual (KVM does not look at it)', () => {
    const t = launched();
    const scratch = GHCB_GPA + 0x800n;
    const header = Buffer.alloc(16);
    header.writeUInt32LE(0xffffffff, 4);
    header.writeBigUInt64LE(encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }), 8);
    t.host.hostMemory.write(scratch, header);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect(t.readGhcb(GHCB_GPA, 'swExitInfo2')).toBe(0n);
    expect(t.host.hostMemory.readU16(scratch)).toBe(1);
    expect(t.host.rmpEntry(0x400000n).assigned).toBe(true);
    t.close();
  });

  it('a 2M entry with cur_page 512 is done already (nothing changes); one with 513 is an invalid entry', () => {
    const t = launched();
    const done = psc(t, [encodePscEntry({ curPage: 512, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true })]);
    expect([done.answer, done.info2]).toEqual(['resume', 0n]);
    expect(t.host.rmpEntry(0x5ff000n).assigned).toBe(false);
    const bad = psc(t, [encodePscEntry({ curPage: 513, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: true })]);
    expect(bad.info2).toBe((1n << 32n) | 2n);
    t.close();
  });

  // KVM checks no memslot (snp_begin_psc); QEMU kvm_convert_memory fails a range that starts in
  // RAM and runs past it ("Overrun block") whatever the direction, and one where no memory region
  // is when it is to private; shared there is ignored. A failed conversion stops the VM.
  it('a 2M entry that runs past the end of RAM: the VM stops, nothing changed', () => {
    const t = launched(7n * MiB);
    const r = psc(t, [encodePscEntry({ curPage: 0, gfn: (6n * MiB) >> 12n, op: PSC_OP.PRIVATE, size2m: true })]);
    expect(r.answer).toMatchObject({ outcome: 'vmm-error' });
    expect(t.host.rmpEntry(6n * MiB).assigned).toBe(false);
    t.close();
  });

  it('4K entries wholly outside RAM: to shared done and nothing changed (cur_page 1), then one to private stops the VM', () => {
    const t = launched(8n * MiB);
    const shared = psc(t, [encodePscEntry({ curPage: 0, gfn: (9n * MiB) >> 12n, op: PSC_OP.SHARED, size2m: false })]);
    expect([shared.answer, shared.info2, shared.curEntry, shared.entries[0]! & 0xfffn]).toEqual(['resume', 0n, 1, 1n]);
    const priv = psc(t, [encodePscEntry({ curPage: 0, gfn: (9n * MiB) >> 12n, op: PSC_OP.PRIVATE, size2m: false })]);
    expect(priv.answer).toMatchObject({ outcome: 'vmm-error' });
    t.close();
  });

  // QEMU ignores a conversion to shared where no memory region is (success, KVM marks the run done:
  // __snp_complete_one_psc) and KVM goes on with the next range (snp_begin_psc, next_range).
  it('a 4K entry to shared outside RAM does not end the PSC: the entry after it, in RAM, is done too', () => {
    const t = launched(8n * MiB);
    const r = psc(t, [
      encodePscEntry({ curPage: 0, gfn: (9n * MiB) >> 12n, op: PSC_OP.SHARED, size2m: false }),
      encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }),
    ]);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 2]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual([1n, 1n]);
    expect(t.host.rmpEntry(0x400000n)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });

  // KVM snp_begin_psc: with idx_start > idx_end the entry loop does not run, idx > idx_end, and
  // snp_complete_psc(svm, 0) reports success ("Nothing more to process"); only end_entry >=
  // VMGEXIT_PSC_MAX_COUNT is an invalid header.
  it('Page State Change whose header has cur_entry past end_entry → success, nothing done (KVM snp_begin_psc)', () => {
    const t = launched();
    const scratch = GHCB_GPA + 0x800n;
    const header = Buffer.alloc(16);
    header.writeUInt16LE(2, 0); // cur_entry 2
    header.writeUInt16LE(1, 2); // end_entry 1
    header.writeBigUInt64LE(encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }), 8);
    t.host.hostMemory.write(scratch, header);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([0n, 0n]);
    expect(t.host.hostMemory.readU16(scratch)).toBe(2);
    expect(t.host.rmpEntry(0x400000n).assigned).toBe(false);
    t.close();
  });

  // Linux's PSC descriptor fills the shared buffer: struct snp_psc_desc (asm/sev-common.h) is the
  // 8-byte psc_hdr and VMGEXIT_PSC_MAX_ENTRY (253) entries, 2032 bytes, which the guest puts at the
  // start of the shared buffer (arch/x86/coco/sev vmgexit_psc: sizeof(*desc) into ghcb_shared_buffer)
  // and KVM serves (snp_begin_psc refuses only end_entry >= VMGEXIT_PSC_MAX_COUNT).
  it('a Page State Change of 253 entries, the whole shared buffer as Linux fills it (end_entry 252) → all done', () => {
    const t = launched();
    const entries = Array.from({ length: 253 }, (_, i) => encodePscEntry({ curPage: 0, gfn: (0x400000n >> 12n) + BigInt(i), op: PSC_OP.PRIVATE, size2m: false }));
    const r = psc(t, entries);
    expect([r.answer, r.info2, r.curEntry]).toEqual(['resume', 0n, 253]);
    expect(r.entries.map((e) => e & 0xfffn)).toEqual(entries.map(() => 1n));
    for (const i of [0n, 251n, 252n]) expect(t.host.rmpEntry(0x400000n + i * 0x1000n)).toMatchObject({ assigned: true, asid: t.host.asid });
    t.close();
  });

  // KVM snp_begin_psc: "idx_start = hdr->cur_entry; idx_end = hdr->end_entry;" and the entries
  // idx_start..idx_end are processed, no others.
  it('only the entries from cur_entry to end_entry are looked at: none before, none after', () => {
    const t = launched();
    const scratch = GHCB_GPA + 0x800n;
    const buf = Buffer.alloc(8 + 4 * 8);
    buf.writeUInt16LE(1, 0); // cur_entry 1
    buf.writeUInt16LE(2, 2); // end_entry 2
    for (let i = 0; i < 4; i++) buf.writeBigUInt64LE(encodePscEntry({ curPage: 0, gfn: (0x400000n >> 12n) + BigInt(i), op: PSC_OP.PRIVATE, size2m: false }), 8 + i * 8);
    t.host.hostMemory.write(scratch, buf);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([0n, 0n]);
    expect([0n, 1n, 2n, 3n].map((i) => t.host.rmpEntry(0x400000n + i * 0x1000n).assigned)).toEqual([false, true, true, false]);
    const after = Buffer.from(t.host.hostMemory.read(scratch, buf.length));
    expect(after.readUInt16LE(0)).toBe(3);
    expect([0, 1, 2, 3].map((i) => after.readBigUInt64LE(8 + i * 8) & 0xfffn)).toEqual([0n, 1n, 1n, 0n]);
    t.close();
  });

  // KVM snp_begin_psc: "max_nr_entries = (sev_es->ghcb_sa_len - sizeof(struct psc_hdr)) / sizeof(struct
  // psc_entry)" of the area from the header to the shared buffer's end; "idx_end >= max_nr_entries" is
  // an invalid header. A header in the buffer's last 8 bytes is a scratch area, with room for no entry.
  it.each([['0xfe8 (the header ends the buffer)', 0xfe8n], ['0xfe1 (entry 0 would end at 0xff1)', 0xfe1n]])('Page State Change whose header is at %s, end_entry 0 → invalid header, nothing done', (_what, offset) => {
    const t = launched();
    const scratch = GHCB_GPA + offset;
    t.host.hostMemory.write(scratch, Buffer.alloc(8));
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([0n, (1n << 32n) | 1n]);
    t.close();
  });

  it('Page State Change whose end_entry is 253 (VMGEXIT_PSC_MAX_COUNT) → invalid header (KVM snp_begin_psc)', () => {
    const t = launched();
    const scratch = GHCB_GPA + 0x800n;
    const header = Buffer.alloc(8);
    header.writeUInt16LE(253, 2);
    t.host.hostMemory.write(scratch, header);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect(t.readGhcb(GHCB_GPA, 'swExitInfo2')).toBe((1n << 32n) | 1n);
    t.close();
  });

  it('Page State Change whose entries would run past the shared buffer (into the GHCB trailer) → invalid header, nothing done', () => {
    const t = launched();
    const scratch = GHCB_GPA + 0xf00n;
    const header = Buffer.alloc(8);
    header.writeUInt16LE(29, 2); // end_entry 29: entries up to 0xf08 + 30 * 8 = 0xff8 > 0xff0
    t.host.hostMemory.write(scratch, header);
    const entries = Buffer.alloc(30 * 8);
    for (let i = 0; i < 30; i++) entries.writeBigUInt64LE((BigInt(PSC_OP.PRIVATE) << 52n) | ((0x400000n >> 12n) + BigInt(i)) << 12n, i * 8);
    t.host.hostMemory.write(scratch + 8n, entries.subarray(0, 0xff0 - 0xf08));
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0n, swExitInfo2: 0n, swScratch: scratch });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect(t.readGhcb(GHCB_GPA, 'swExitInfo2')).toBe((1n << 32n) | 1n);
    expect(t.host.rmpEntry(0x400000n).assigned).toBe(false);
    t.close();
  });

  it.each(['swExitCode', 'swExitInfo1', 'swExitInfo2'] as const)('%s not marked valid → SW_EXITINFO1 2, SW_EXITINFO2 MISSING_INPUT (4), nothing done', (field) => {
    const { t, answer, result } = request(HV_FEATURES_NAE, [field]);
    expect(answer).toBe('resume');
    expect(result).toEqual([2n, 4n]);
    t.close();
  });

  it('a GHCB usage other than 0 → SW_EXITINFO2 INVALID_USAGE (2), before the valid bitmap is looked at (KVM: "Only GHCB Usage code 0 is supported")', () => {
    // struct ghcb's ghcb_usage is a u32 at 0xffc (asm/svm.h), and KVM tests all of it:
    // sev_es_validate_vmgexit "if (svm->sev_es.ghcb->ghcb_usage)": a usage of 0x100 or 0x80000000 is not 0 either.
    for (const [usage, notValid] of [[[1, 0, 0, 0], []], [[1, 0, 0, 0], ['swExitCode']], [[0, 1, 0, 0], []], [[0, 0, 0, 0x80], []]] as const) {
      const t = launched();
      t.host.hostMemory.write(GHCB_GPA + BigInt(GHCB_OFFSET.usage), Buffer.from(usage));
      t.writeGhcb(GHCB_GPA, HV_FEATURES_NAE, [...notValid]);
      expect(t.msr(GHCB_GPA).answer).toBe('resume');
      expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([2n, 2n]);
      t.close();
    }
  });

  // KVM io_interception (svm.c) takes size = (exit_info_1 & SVM_IOIO_SIZE_MASK) >> SVM_IOIO_SIZE_SHIFT
  // without a check, so no size bit is size 0: kvm_fast_pio exits to userspace with size 0 and QEMU
  // accesses 0 bytes (address_space_write / address_space_read_full: "if (len > 0)"). The exit
  // succeeds (svm_vmgexit_success(svm, 0) in sev_handle_vmgexit) and no byte reaches the UART.
  // Was: SW_EXITINFO1 2 (INVALID_INPUT), which KVM never answers here.
  it('IOIO OUT with no operand size in EXITINFO1 → served as a 0-byte OUT: SW_EXITINFO1 0, SW_EXITINFO2 0, nothing written', () => {
    const { t, answer, result } = request({ swExitCode: 0x7bn, swExitInfo1: 0x3f8n << 16n, swExitInfo2: 0n, rax: 0x41n });
    expect(answer).toBe('resume');
    expect(result).toEqual([0n, 0n]);
    expect(t.vmm.console.text).toBe('');
    t.close();
  });

  // kvm_fast_pio_in: for a size below 4 it starts from RAX and merges what the port gave (0 bytes);
  // sev_es_sync_to_ghcb returns RAX, the guest's value when it marked it valid (else 0).
  it.each([
    ['RAX marked valid comes back as the guest gave it', [] as (keyof typeof GHCB_OFFSET)[], 0x1122334455667788n],
    ['RAX not marked valid comes back as 0', ['rax'] as (keyof typeof GHCB_OFFSET)[], 0n],
  ])('IOIO IN with no operand size: SW_EXITINFO1 0; %s', (_what, notValid, rax) => {
    const { t, answer, result } = request({ swExitCode: 0x7bn, swExitInfo1: (0x3f8n << 16n) | IOIO.TYPE_IN, swExitInfo2: 0n, rax: 0x1122334455667788n }, notValid);
    expect(answer).toBe('resume');
    expect(result).toEqual([0n, 0n]);
    expect(t.readGhcb(GHCB_GPA, 'rax')).toBe(rax);
    t.close();
  });

  // KVM sev_handle_vmgexit zeroes both before it serves the exit: "ghcb_set_sw_exit_info_1(ghcb, 0);
  // ghcb_set_sw_exit_info_2(ghcb, 0);"; an exit that succeeds sets only what its answer needs.
  it('HV features, CPUID and a Page State Change that succeed answer SW_EXITINFO1 = 0, and CPUID SW_EXITINFO2 = 0, whatever the guest left in them', () => {
    const hv = request({ swExitCode: 0x8000fffdn, swExitInfo1: 0x77n, swExitInfo2: 0x1234n });
    expect([hv.answer, ...hv.result]).toEqual(['resume', 0n, 3n]);
    hv.t.close();
    const cpuid = request({ swExitCode: 0x72n, swExitInfo1: 0x77n, swExitInfo2: 0x1234n, rax: 0n, rcx: 0n });
    expect([cpuid.answer, ...cpuid.result]).toEqual(['resume', 0n, 0n]);
    cpuid.t.close();
    const t = launched();
    const scratch = GHCB_GPA + 0x800n;
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64LE(encodePscEntry({ curPage: 0, gfn: 0x400000n >> 12n, op: PSC_OP.PRIVATE, size2m: false }), 8);
    t.host.hostMemory.write(scratch, buf);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000010n, swExitInfo1: 0x77n, swExitInfo2: 0x1234n, swScratch: scratch });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([0n, 0n]);
    t.close();
  });

  it('IOIO IN and OUT that succeed answer SW_EXITINFO1 = SW_EXITINFO2 = 0, whatever the guest left in SW_EXITINFO2', () => {
    for (const info1 of [(0x3fdn << 16n) | IOIO.SZ8 | IOIO.TYPE_IN, ioioOut(0x80n, IOIO.SZ8)]) {
      const { t, answer, result } = request({ swExitCode: 0x7bn, swExitInfo1: info1, swExitInfo2: 0x1234n, rax: 0x41n });
      expect([answer, ...result]).toEqual(['resume', 0n, 0n]);
      t.close();
    }
  });

  // KVM kvm_fast_pio_out / emulator_pio_out hand userspace `size` bytes of RAX (KVM_EXIT_IO io.size),
  // and QEMU kvm_handle_io writes those: an OUT of 1 byte with RAX 0xdeadbe41 writes 0x41, which is
  // what the VMM's I/O record says it wrote.
  it('IOIO OUT of one byte: the bytes above it in RAX are not written, nor recorded as written', () => {
    for (const [port, size, rax, value] of [[0x80n, IOIO.SZ8, 0xdeadbe41n, 0x41n], [0x80n, IOIO.SZ16, 0xdeadbe41n, 0xbe41n]] as const) {
      const { t, result } = request({ swExitCode: 0x7bn, swExitInfo1: ioioOut(port, size), swExitInfo2: 0n, rax });
      expect(result).toEqual([0n, 0n]);
      expect(t.g.trace.ofType('io')).toMatchObject([{ direction: 'out', port: Number(port), value }]);
      t.close();
    }
  });

  it('IOIO IN: the COM1 line status reads "transmitter empty" (0x60); a port with no device reads all ones at the access size', () => {
    for (const [port, size, value] of [[0x3fdn, IOIO.SZ8, 0x60n], [0x80n, IOIO.SZ16, 0xffffn], [0x80n, IOIO.SZ32, 0xffffffffn]] as const) {
      const { t, result } = request({ swExitCode: 0x7bn, swExitInfo1: (port << 16n) | size | IOIO.TYPE_IN, swExitInfo2: 0n });
      expect(result).toEqual([0n, 0n]);
      expect(t.readGhcb(GHCB_GPA, 'rax')).toBe(value);
      // Marked valid: Linux vc_handle_ioio takes an IN's value only from a valid RAX (else ES_VMM_ERROR).
      expect(validBit(t, 'rax')).toBe(1);
      t.close();
    }
  });

  // KVM kvm_fast_pio_in / complete_fast_pio_in (x86.c): "For size less than 4 we merge, else we zero
  // extend": val starts as RAX (the guest's, if it marked it valid: sev_es_sync_from_ghcb) for a size
  // below 4 and as 0 otherwise, and the port's bytes replace its low `size` bytes. Was: RAX = the
  // bytes read, the guest's upper bytes dropped.
  it.each([
    ['1 byte: merged into the guest\'s RAX', IOIO.SZ8, true, 0x11223344556677ffn],
    ['2 bytes: merged into the guest\'s RAX', IOIO.SZ16, true, 0x112233445566ffffn],
    ['4 bytes: zero-extended', IOIO.SZ32, true, 0xffffffffn],
    ['1 byte, RAX not marked valid: merged into 0', IOIO.SZ8, false, 0xffn],
  ] as const)('IOIO IN of %s', (_what, size, raxValid, expected) => {
    const { t, result } = request({ swExitCode: 0x7bn, swExitInfo1: (0x80n << 16n) | size | IOIO.TYPE_IN, swExitInfo2: 0n, rax: 0x1122334455667788n }, raxValid ? [] : ['rax']);
    expect(result).toEqual([0n, 0n]);
    expect(t.readGhcb(GHCB_GPA, 'rax')).toBe(expected);
    t.close();
  });

  // KVM io_interception: size = (exit_info_1 & SVM_IOIO_SIZE_MASK) >> SVM_IOIO_SIZE_SHIFT, the 3-bit
  // field as a number: SZ8|SZ16 is 3 bytes, all three bits 7 bytes (not the lowest bit's size, as
  // the model had it). QEMU accesses that many bytes from the port on (at the UART one byte each).
  it('IOIO with several size bits: SZ8|SZ16 is a 3-byte OUT (its third byte reaches the COM1 data port from 0x3f6), all three a 7-byte IN (zero-extended)', () => {
    const out = request({ swExitCode: 0x7bn, swExitInfo1: ioioOut(0x3f6n, IOIO.SZ8 | IOIO.SZ16), swExitInfo2: 0n, rax: 0xdd410000n });
    expect(out.result).toEqual([0n, 0n]);
    expect(out.t.vmm.console.text).toBe('A');
    expect(out.t.g.trace.ofType('io')).toMatchObject([{ direction: 'out', port: 0x3f6, value: 0x410000n }]);
    out.t.close();
    const inp = request({ swExitCode: 0x7bn, swExitInfo1: (0x80n << 16n) | IOIO.SZ8 | IOIO.SZ16 | IOIO.SZ32 | IOIO.TYPE_IN, swExitInfo2: 0n, rax: 0x1122334455667788n });
    expect(inp.result).toEqual([0n, 0n]);
    expect(inp.t.readGhcb(GHCB_GPA, 'rax')).toBe(0x00ffffffffffffffn);
    inp.t.close();
  });

  describe('string OUT (OUTS) from the shared buffer', () => {
    const BUFFER = GHCB_GPA + BigInt(GHCB_OFFSET.sharedBuffer);
    const outs = (port: bigint, size: bigint, count: bigint, data: string, notValid: (keyof typeof GHCB_OFFSET)[] = []) => {
      const t = launched();
      t.host.hostMemory.write(BUFFER, Buffer.from(data, 'latin1'));
      t.writeGhcb(GHCB_GPA, { swExitCode: 0x7bn, swExitInfo1: ioioOut(port, size) | IOIO.STRING | IOIO.REP, swExitInfo2: count, swScratch: BUFFER }, notValid);
      expect(t.msr(GHCB_GPA).answer).toBe('resume');
      return { t, result: [t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')] };
    };

    it('of 16-bit elements: EXITINFO2 counts elements, each puts its low byte on the COM1 data port', () => {
      const { t, result } = outs(0x3f8n, IOIO.SZ16, 3n, 'H\0i\0\n\0');
      expect(result).toEqual([0n, 0n]);
      expect(t.vmm.console.text).toBe('Hi\n');
      t.close();
    });

    it('to a port other than the COM1 data port prints nothing', () => {
      const { t, result } = outs(0x80n, IOIO.SZ8, 3n, 'Hi\n');
      expect(result).toEqual([0n, 0n]);
      expect(t.vmm.console.text).toBe('');
      t.close();
    });

    it('without SW_SCRATCH marked valid → SW_EXITINFO2 MISSING_INPUT (4), nothing printed (even with a usable address there)', () => {
      // KVM sev_es_validate_vmgexit: SVM_EXIT_IOIO with SVM_IOIO_STR_MASK needs kvm_ghcb_sw_scratch_is_valid.
      const { t, result } = outs(0x3f8n, IOIO.SZ8, 3n, 'Hi\n', ['swScratch']);
      expect(result).toEqual([2n, 4n]);
      expect(t.vmm.console.text).toBe('');
      t.close();
    });
  });

  describe('string I/O operands (KVM sev_es_validate_vmgexit, sev_es_string_io, setup_vmgexit_scratch)', () => {
    const BUFFER = GHCB_GPA + BigInt(GHCB_OFFSET.sharedBuffer);
    const OUTSIDE = 0x400000n; // a hypervisor-owned (shared) page of the launched guest
    const stringIo = (info1: bigint, count: bigint, scratch: bigint, notValid: (keyof typeof GHCB_OFFSET)[] = [], prepare?: (t: ReturnType<typeof launched>) => void) => {
      const t = launched();
      prepare?.(t);
      t.writeGhcb(GHCB_GPA, { swExitCode: 0x7bn, swExitInfo1: info1 | IOIO.STRING | IOIO.REP, swExitInfo2: count, swScratch: scratch }, notValid);
      const answer = t.msr(GHCB_GPA).answer;
      return { t, answer, result: [t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')] };
    };

    it('SW_SCRATCH not valid comes first: with no operand size either it is MISSING_INPUT', () => {
      const { t, result } = stringIo(0x3f8n << 16n, 3n, BUFFER, ['swScratch']);
      expect(result).toEqual([2n, 4n]);
      t.close();
    });

    // No size bit: sev_es_string_io gets size 0, so bytes = count * 0 = 0 (the INT_MAX check on the
    // count still comes first), setup_vmgexit_scratch checks a 0-byte area (a scratch GPA of 0, or one
    // in the GHCB page outside [0x800, 0xff0], is INVALID_SCRATCH_AREA; GHCB + 0xff0 itself fits, as
    // its end is not past reserved_0xff0), and then kvm_sev_es_outs / kvm_sev_es_ins divide PAGE_SIZE
    // by the size (x86.c): a divide error in the host kernel, the VM does not go on.
    it.each([
      ['OUTS, scratch in the shared buffer', 0n, BUFFER, 'outs'],
      ['INS, scratch at the shared buffer\'s end (GHCB + 0xff0)', IOIO.TYPE_IN, GHCB_GPA + 0xff0n, 'ins'],
      ['OUTS, scratch outside the GHCB and past RAM (0 bytes are copied: no memslot is looked at)', 0n, 1n << 40n, 'outs'],
    ] as const)('size 0, %s → the VM stops (KVM divides by the size), nothing printed', (_what, direction, scratch, fn) => {
      const { t, answer } = stringIo((0x3f8n << 16n) | direction, 3n, scratch);
      expect(answer).toMatchObject({ outcome: 'vmm-error', reason: expect.stringContaining(`kvm_sev_es_${fn}`) });
      expect(t.vmm.console.text).toBe('');
      t.close();
    });

    it.each([
      ['0', 0n, 3n],
      ['in the GHCB page before its shared buffer', GHCB_GPA + 0x7f8n, 3n],
      ['in the GHCB page after its shared buffer', GHCB_GPA + 0xff8n, 3n],
    ])('size 0 with a scratch area %s → INVALID_SCRATCH_AREA, the guest gets it back', (_what, scratch, count) => {
      const { t, answer, result } = stringIo(0x3f8n << 16n, count, scratch);
      expect([answer, ...result]).toEqual(['resume', 2n, 3n]);
      t.close();
    });

    it('size 0 with a count above INT_MAX → the VM stops on the count (sev_es_string_io -EINVAL), before the size matters', () => {
      const { t, answer } = stringIo(0x3f8n << 16n, 0x80000000n, BUFFER);
      expect(answer).toMatchObject({ outcome: 'vmm-error', reason: expect.stringContaining('INT_MAX') });
      t.close();
    });

    it.each([
      ['0 (scratch gpa not provided)', 0n, 3n],
      ['in the GHCB page but before its shared buffer', GHCB_GPA + 0x7f8n, 3n],
      ['in the GHCB page, running past the shared buffer (0xff0)', GHCB_GPA + 0xfe8n, 0x10n],
      ['outside the GHCB page, over the 16-page limit', OUTSIDE, 16n * 4096n + 1n],
    ])('a scratch area %s → SW_EXITINFO2 INVALID_SCRATCH_AREA (3), nothing printed', (_what, scratch, count) => {
      const { t, answer, result } = stringIo(ioioOut(0x3f8n, IOIO.SZ8), count, scratch);
      expect(answer).toBe('resume');
      expect(result).toEqual([2n, 3n]);
      expect(t.vmm.console.text).toBe('');
      t.close();
    });

    // KVM setup_vmgexit_scratch: "scratch_gpa_end = scratch_gpa_beg + len" in u64, refused (a GHCB
    // error) only when it wraps ("if (scratch_gpa_end < scratch_gpa_beg)"); an area that ends at
    // 2^64 - 1 exactly does not wrap, and lies outside the GHCB, so kvm_read_guest must copy it and
    // fails (-EFAULT): the VM stops.
    it('an area ending exactly at 2^64 - 1 does not wrap (the copy fails, the VM stops); one byte further wraps (INVALID_SCRATCH_AREA)', () => {
      const fits = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 3n, 0xffff_ffff_ffff_fffcn);
      expect(fits.answer).toMatchObject({ outcome: 'vmm-error' });
      fits.t.close();
      const wraps = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 3n, 0xffff_ffff_ffff_fffdn);
      expect([wraps.answer, ...wraps.result]).toEqual(['resume', 2n, 3n]);
      wraps.t.close();
    });

    // Whether the area begins in the GHCB page is "(scratch_gpa_beg & PAGE_MASK) == control->ghcb_gpa":
    // the page of its first byte, at any byte offset.
    it('an area at an odd address of the GHCB page is judged as in the GHCB: before the shared buffer refused, inside it served', () => {
      const before = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 1n, GHCB_GPA + 0x7ffn);
      expect([before.answer, ...before.result]).toEqual(['resume', 2n, 3n]);
      before.t.close();
      const inside = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 2n, BUFFER + 1n, [], (u) => u.host.hostMemory.write(BUFFER, Buffer.from('xok', 'latin1')));
      expect([inside.answer, ...inside.result]).toEqual(['resume', 0n, 0n]);
      expect(inside.t.vmm.console.text).toBe('ok');
      inside.t.close();
    });

    // The same test on the page right after the GHCB page: its first byte's page is not the GHCB's, so
    // the shared-buffer bounds do not apply; KVM copies it in (kvm_read_guest) like any other area.
    it('OUTS from the first bytes of the page right after the GHCB page: outside the GHCB, copied in and served', () => {
      const NEXT = GHCB_GPA + 0x1000n;
      const { t, result } = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 3n, NEXT, [], (u) => u.host.hostMemory.write(NEXT, Buffer.from('ok\n', 'latin1')));
      expect(result).toEqual([0n, 0n]);
      expect(t.vmm.console.text).toBe('ok\n');
      t.close();
    });

    it('OUTS from a shared page outside the GHCB: KVM copies the area in, the bytes reach the port', () => {
      const { t, result } = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 3n, OUTSIDE, [], (u) => u.host.hostMemory.write(OUTSIDE, Buffer.from('ok\n', 'latin1')));
      expect(result).toEqual([0n, 0n]);
      expect(t.vmm.console.text).toBe('ok\n');
      t.close();
    });

    // sev_es_string_io takes the size as io_interception computed it (3 for SZ8|SZ16, 7 for all
    // three bits): count * size bytes, each element `size` bytes from the port on.
    it('string I/O with several size bits: OUTS of 3-byte elements from 0x3f6 prints every third byte; INS of 7-byte elements fills 7 bytes each', () => {
      const outs = stringIo(ioioOut(0x3f6n, IOIO.SZ8 | IOIO.SZ16), 2n, BUFFER, [], (u) => u.host.hostMemory.write(BUFFER, Buffer.from('ABCDEF', 'latin1')));
      expect([outs.answer, ...outs.result]).toEqual(['resume', 0n, 0n]);
      expect(outs.t.vmm.console.text).toBe('CF');
      outs.t.close();
      const ins = stringIo((0x80n << 16n) | IOIO.SZ8 | IOIO.SZ16 | IOIO.SZ32 | IOIO.TYPE_IN, 2n, BUFFER, [], (u) => u.host.hostMemory.write(BUFFER, Buffer.alloc(16, 0x11)));
      expect([ins.answer, ...ins.result]).toEqual(['resume', 0n, 0n]);
      expect(Buffer.from(ins.t.host.hostMemory.read(BUFFER, 16)).toString('hex')).toBe(`${'ff'.repeat(14)}1111`);
      ins.t.close();
    });

    it('INS into the shared buffer: each element is what an IN of the port reads (COM1 LSR 0x60; no device: all ones)', () => {
      const lsr = stringIo((0x3fdn << 16n) | IOIO.SZ8 | IOIO.TYPE_IN, 3n, BUFFER, [], (u) => u.host.hostMemory.write(BUFFER, Buffer.alloc(8, 0x11)));
      expect(lsr.result).toEqual([0n, 0n]);
      expect([...lsr.t.host.hostMemory.read(BUFFER, 4)]).toEqual([0x60, 0x60, 0x60, 0x11]);
      lsr.t.close();
      const none = stringIo((0x80n << 16n) | IOIO.SZ16 | IOIO.TYPE_IN, 2n, OUTSIDE);
      expect(none.result).toEqual([0n, 0n]);
      expect([...none.t.host.hostMemory.read(OUTSIDE, 5)]).toEqual([0xff, 0xff, 0xff, 0xff, 0]);
      none.t.close();
    });

    // KVM sev_es_unmap_ghcb writes INS data back with kvm_write_guest(kvm, sw_scratch, ghcb_sa, len) and does
    // not look at its result; the write goes through the memslot's host mapping (the shared backing), so into a
    // page the guest made private it lands where the guest does not see it, and the exit is answered as any
    // other: SW_EXITINFO1 = SW_EXITINFO2 = 0, no VM stop. The guest's page keeps what it held.
    it('INS into a private page outside the GHCB: answered as done, the page unchanged, the VM goes on', () => {
      let before = Buffer.alloc(0);
      const { t, answer, result } = stringIo((0x3fdn << 16n) | IOIO.SZ8 | IOIO.TYPE_IN, 3n, OUTSIDE + 0x10n, [], (u) => {
        expect(pscError(u.msr(ghcbMsr.pscReq(OUTSIDE >> 12n, PSC_OP.PRIVATE)).msr)).toBe(0n);
        expect(u.host.rmpEntry(OUTSIDE)).toMatchObject({ assigned: true });
        before = Buffer.from(u.g.platform.machine.memory.read(OUTSIDE, 0x20));
      });
      expect(before.length).toBe(0x20);
      expect([answer, ...result]).toEqual(['resume', 0n, 0n]);
      expect(Buffer.from(t.g.platform.machine.memory.read(OUTSIDE, 0x20))).toEqual(before);
      t.close();
    });

    // Each INS element is one port read of the element's size, in order: KVM kvm_sev_es_ins / emulator_pio_in
    // exit to userspace with count elements of size bytes (KVM_EXIT_IO), and QEMU kvm_handle_io does one
    // address_space_rw of `size` bytes per element, which the 16550 (1-byte registers) serves as reads of
    // port and port + 1. QEMU serial.c: enabling THRI in IER while the THR is empty raises it (thr_ipending),
    // IIR then reads 0x02 and the read acknowledges it ("if ((ret & UART_IIR_ID) == UART_IIR_THRI)
    // s->thr_ipending = 0"), so the next IIR read is 0x01; LCR (port 0x3fb) reads 0 after reset.
    it('INS of two words from IIR: each element reads IIR then LCR once, the first IIR read acknowledging the THR-empty interrupt', () => {
      const { t, result } = stringIo((0x3fan << 16n) | IOIO.SZ16 | IOIO.TYPE_IN, 2n, BUFFER, [], (u) => {
        u.writeGhcb(GHCB_GPA, { swExitCode: 0x7bn, swExitInfo1: ioioOut(0x3f9n, IOIO.SZ8), swExitInfo2: 0n, rax: 0x02n });
        expect(u.msr(GHCB_GPA).answer).toBe('resume');
        u.host.hostMemory.write(BUFFER, Buffer.alloc(8, 0x11));
      });
      expect(result).toEqual([0n, 0n]);
      expect([...t.host.hostMemory.read(BUFFER, 5)]).toEqual([0x02, 0x00, 0x01, 0x00, 0x11]);
      t.close();
    });

    // KVM sev_es_string_io: "if (svm->vmcb->control.exit_info_2 > INT_MAX) return -EINVAL;", then
    // "if (unlikely(check_mul_overflow(count, size, &bytes))) return -EINVAL;" on int count and
    // bytes; only then setup_vmgexit_scratch, whose area outside the GHCB may be up to
    // GHCB_SCRATCH_AREA_LIMIT (16ULL * PAGE_SIZE) bytes ("if (len > GHCB_SCRATCH_AREA_LIMIT)": a
    // GHCB error, SW_EXITINFO2 = GHCB_ERR_INVALID_SCRATCH_AREA, and the guest goes on).
    it('an area outside the GHCB of exactly 16 pages (count × size) is served; one element more is INVALID_SCRATCH_AREA', () => {
      for (const [size, elements] of [[IOIO.SZ8, 1n], [IOIO.SZ16, 2n], [IOIO.SZ32, 4n]] as const) {
        const count = (16n * 4096n) / elements;
        const fits = stringIo(ioioOut(0x3f8n, size), count, OUTSIDE);
        expect([fits.answer, ...fits.result], `${count} elements of ${elements} bytes`).toEqual(['resume', 0n, 0n]);
        fits.t.close();
        const over = stringIo(ioioOut(0x3f8n, size), count + 1n, OUTSIDE);
        expect([over.answer, ...over.result], `${count + 1n} elements of ${elements} bytes`).toEqual(['resume', 2n, 3n]);
        over.t.close();
      }
    });

    it('a count of INT_MAX bytes passes the count checks: the 16-page limit refuses it with a GHCB error, the VM goes on', () => {
      const { t, answer, result } = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 0x7fffffffn, OUTSIDE);
      expect([answer, ...result]).toEqual(['resume', 2n, 3n]);
      t.close();
    });

    it('a count below INT_MAX whose bytes (count × size) overflow an int stops the VM (check_mul_overflow: -EINVAL)', () => {
      for (const [size, count] of [[IOIO.SZ16, 0x40000000n], [IOIO.SZ32, 0x20000000n]] as const) {
        const { t, answer } = stringIo(ioioOut(0x3f8n, size), count, OUTSIDE);
        expect(answer, `count 0x${count.toString(16)}`).toMatchObject({ outcome: 'vmm-error' });
        t.close();
      }
      // One element fewer fits in an int: the scratch-area limit answers it, as a GHCB error.
      const { t, answer, result } = stringIo(ioioOut(0x3f8n, IOIO.SZ16), 0x3fffffffn, OUTSIDE);
      expect([answer, ...result]).toEqual(['resume', 2n, 3n]);
      t.close();
    });

    it('an area outside the GHCB that starts in RAM and runs past its end stops the VM (kvm_read_guest of the whole area fails: -EFAULT)', () => {
      const { t, answer } = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 16n, 8n * MiB - 8n);
      expect(answer).toMatchObject({ outcome: 'vmm-error' });
      t.close();
    });

    // KVM setup_vmgexit_scratch with len = count × size = 0, outside the GHCB: kvzalloc(0) gives ZERO_SIZE_PTR
    // (not NULL, so no -ENOMEM), and kvm_read_guest(kvm, gpa, data, 0) returns 0 without looking at any
    // memslot (its "while ((seg = next_segment(len, offset)) != 0)" loop never runs): nothing to copy, nothing
    // fails, wherever SW_SCRATCH points; the exit ends with SW_EXITINFO1 = SW_EXITINFO2 = 0.
    it('a count of 0 with an area outside guest RAM (at its end, or far past it) copies nothing and is served, IN or OUT', () => {
      for (const scratch of [8n * MiB, 8n * MiB + 0x1000n, 0x10_0000_0000n]) {
        for (const info1 of [ioioOut(0x3f8n, IOIO.SZ8), (0x3f8n << 16n) | IOIO.SZ8 | IOIO.TYPE_IN]) {
          const { t, answer, result } = stringIo(info1, 0n, scratch);
          expect([answer, ...result], `scratch 0x${scratch.toString(16)}, info1 0x${info1.toString(16)}`).toEqual(['resume', 0n, 0n]);
          expect(t.vmm.console.text).toBe('');
          t.close();
        }
      }
    });

    it('a count above INT_MAX, or an area outside guest RAM, stops the VM (KVM\'s exit handler fails: -EINVAL, -EFAULT)', () => {
      const big = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 0x80000000n, BUFFER);
      expect(big.answer).toMatchObject({ outcome: 'vmm-error' });
      big.t.close();
      const outside = stringIo(ioioOut(0x3f8n, IOIO.SZ8), 3n, 8n * MiB);
      expect(outside.answer).toMatchObject({ outcome: 'vmm-error' });
      outside.t.close();
    });
  });

  describe('CPUID NAE operands (KVM sev_es_validate_vmgexit: RAX and RCX valid; XCR0 too when RAX is 0xD)', () => {
    it.each([
      ['RCX (the sub-leaf) not valid', { rax: 1n, rcx: 0n }, ['rcx'], [2n, 4n]],
      ['RAX not valid', { rax: 1n, rcx: 0n }, ['rax'], [2n, 4n]],
      ['leaf 0xD without XCR0 valid', { rax: 0xdn, rcx: 0n }, [], [2n, 4n]],
      ['leaf 0xD with XCR0 valid', { rax: 0xdn, rcx: 0n, xcr0: 1n }, [], [0n, 0n]],
      ['RAX 0x1_0000_000D (KVM compares all 64 bits) without XCR0', { rax: 0x1_0000_000dn, rcx: 0n }, [], [0n, 0n]],
    ] as const)('%s', (_what, regs, notValid, expected) => {
      const { t, result } = request({ swExitCode: 0x72n, swExitInfo1: 0n, swExitInfo2: 0n, ...regs }, [...notValid]);
      expect(result).toEqual(expected);
      t.close();
    });

    // KVM kvm_emulate_cpuid: eax = kvm_rax_read(vcpu), ecx = kvm_rcx_read(vcpu), both u32: the
    // leaf is RAX's low half. Fn8000_001F (APM Vol. 3, CPUID): EAX bit 4 SNP, EBX[5:0] the C-bit.
    it('RAX 0x1_8000_001F is leaf 0x8000001F: the answer has SNP (EAX bit 4) and the C-bit position (EBX[5:0])', () => {
      const { t, result } = request({ swExitCode: 0x72n, swExitInfo1: 0n, swExitInfo2: 0n, rax: 0x1_8000_001fn, rcx: 0n });
      expect(result).toEqual([0n, 0n]);
      expect((t.readGhcb(GHCB_GPA, 'rax') >> 4n) & 1n).toBe(1n);
      expect(t.readGhcb(GHCB_GPA, 'rbx') & 0x3fn).toBe(BigInt(t.host.cBit));
      t.close();
    });
  });
});

describe('honest SNP VMM: AP creation NAE (KVM sev_snp_ap_creation)', () => {
  // KVM sev_handle_vmgexit sets SW_EXITINFO1 and SW_EXITINFO2 to 0 before it serves the request,
  // and a CREATE that sev_snp_ap_creation accepts changes neither; the AP then runs from the page
  // (VMRUN Page Checks, APM Vol. 2 §15.36.12: the page must carry the VMSA bit). A VMRUN the
  // hardware refuses is KVM_EXIT_FAIL_ENTRY, which QEMU treats as fatal: the VM ends.
  const VMSA = 0x401000n;
  const createAp = (vmsaBit: boolean) => {
    const t = launched(8n * MiB, undefined, 2);
    const p = t.g.platform;
    p.machine.memory.write(VMSA, flat32VmsaPage());
    expect(p.handle.rmpUpdate(VMSA, { assigned: true, pageSize: '4k', gpa: VMSA, asid: p.asid }).rc).toBe(0);
    p.rmp.setValidated(VMSA, true);
    if (vmsaBit) p.rmp.adjustPermissions(VMSA, 1, 0, true);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000013n, swExitInfo1: (1n << 32n) | 1n, swExitInfo2: VMSA, rax: SNP_GUEST_SEV_FEATURES });
    return { t, answer: t.msr(GHCB_GPA).answer };
  };

  it('a CREATE of vCPU 1 from a VMSA page VMRUN accepts → SW_EXITINFO1 0, SW_EXITINFO2 0, the AP runnable', () => {
    const { t, answer } = createAp(true);
    expect(answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([0n, 0n]);
    expect(t.g.platform.isRunnable(1)).toBe(true);
    t.close();
  });

  it('a CREATE whose VMSA page VMRUN refuses (no VMSA bit) ends the VM; the AP never runs', () => {
    const { t, answer } = createAp(false);
    expect(answer).toMatchObject({ outcome: 'fault' });
    expect(t.g.platform.isRunnable(1)).toBe(false);
    t.close();
  });

  it.each([
    ['an APIC ID that names no vCPU (one past the last)', 2n, 0x401000n, []],
    ["RAX marked valid but not the VM's SEV features (mismatched AP sev_features)", 1n, 0x401000n, [], SNP_GUEST_SEV_FEATURES ^ 1n],
    ['a VMSA GPA that is not page aligned', 1n, 0x401800n, []],
    ['a 2 MiB-aligned VMSA GPA ("unsafe as it is 2M aligned", the SNP erratum)', 1n, 0x400000n, []],
    // page_address_valid: a bit above MAXPHYADDR (here the C-bit position, 51) is reserved.
    ['a VMSA GPA with a reserved bit (52)', 1n, (1n << 52n) | 0x1000n, []],
  ] as const)('%s → SW_EXITINFO1 2, SW_EXITINFO2 INVALID_INPUT; no AP starts, the VM goes on', (_what, apicId, vmsa, notValid, rax = SNP_GUEST_SEV_FEATURES) => {
    const t = launched(8n * MiB, undefined, 2);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000013n, swExitInfo1: (apicId << 32n) | 1n, swExitInfo2: vmsa, rax }, [...notValid]);
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([2n, 5n]);
    expect(t.g.trace.events.filter((e) => e.type === 'ap-vmrun')).toEqual([]);
    t.close();
  });

  // KVM (0097f9df) does not ask whether the VMSA GPA is in a memslot before it answers: the request
  // succeeds, and the target, reset by the kick, stays KVM_MP_STATE_HALTED without a VMSA
  // (sev_snp_init_protected_guest_state: "if (!slot) return;"). The C-bit is not a reserved bit.
  it.each([
    ['past the end of RAM', 8n * MiB + 0x1000n],
    ['with the C-bit set', (1n << 51n) | 0x401000n],
  ] as const)('a CREATE from a VMSA GPA %s → SW_EXITINFO1 0, SW_EXITINFO2 0; the AP is stopped, never run', (_what, vmsa) => {
    const t = launched(8n * MiB, undefined, 2);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000013n, swExitInfo1: (1n << 32n) | 1n, swExitInfo2: vmsa, rax: SNP_GUEST_SEV_FEATURES });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([0n, 0n]);
    expect(t.g.trace.events.filter((e) => e.type === 'ap-vmrun')).toEqual([]);
    expect(t.g.trace.events.filter((e) => e.type === 'vcpu-stopped')).toMatchObject([{ vcpu: 1, wasRunnable: false }]);
    expect(t.g.platform.isRunnable(1)).toBe(false);
    t.close();
  });

  // KVM sev_snp_ap_creation (torvalds/linux 0097f9df): the target is found by APIC ID first
  // (kvm_get_vcpu_by_id, else -EINVAL → INVALID_INPUT) whatever the request; AP_CREATE_ON_INIT makes
  // the checks AP_CREATE makes (RAX = sev->vmsa_features, page_address_valid, not 2M aligned);
  // AP_DESTROY needs neither RAX (sev_es_validate_vmgexit) nor a VMSA GPA.
  it.each([
    ['AP_DESTROY of an APIC ID that names no vCPU', (2n << 32n) | 2n, 0n, SNP_GUEST_SEV_FEATURES, [], [2n, 5n]],
    ['AP_DESTROY without RAX, with a VMSA GPA of 0', (1n << 32n) | 2n, 0n, 0n, ['rax'], [0n, 0n]],
    ['AP_CREATE_ON_INIT without RAX', (1n << 32n) | 0n, 0x401000n, SNP_GUEST_SEV_FEATURES, ['rax'], [2n, 4n]],
    ['AP_CREATE_ON_INIT with RAX not the VM\'s SEV features', (1n << 32n) | 0n, 0x401000n, SNP_GUEST_SEV_FEATURES ^ 1n, [], [2n, 5n]],
    ['AP_CREATE_ON_INIT of a 2 MiB-aligned VMSA GPA', (1n << 32n) | 0n, 0x400000n, SNP_GUEST_SEV_FEATURES, [], [2n, 5n]],
    ['AP_CREATE_ON_INIT of an unaligned VMSA GPA', (1n << 32n) | 0n, 0x401008n, SNP_GUEST_SEV_FEATURES, [], [2n, 5n]],
    ['AP_CREATE_ON_INIT of an APIC ID that names no vCPU', (2n << 32n) | 0n, 0x401000n, SNP_GUEST_SEV_FEATURES, [], [2n, 5n]],
    ['AP_CREATE_ON_INIT of a good VMSA GPA (recorded, the AP not started)', (1n << 32n) | 0n, 0x401000n, SNP_GUEST_SEV_FEATURES, [], [0n, 0n]],
  ] as const)('%s → SW_EXITINFO1/2 as KVM answers; no AP starts', (_what, info1, vmsa, rax, notValid, expected) => {
    const t = launched(8n * MiB, undefined, 2);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000013n, swExitInfo1: info1, swExitInfo2: vmsa, rax }, [...notValid]);
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual(expected);
    expect(t.g.trace.events.filter((e) => e.type === 'ap-vmrun')).toEqual([]);
    expect(t.g.platform.isRunnable(1)).toBe(false);
    expect(t.vmm.vmsaAtInit(1)).toBe(expected[0] === 0n && (info1 & 0xffffffffn) === 0n ? vmsa : undefined);
    t.close();
  });

  it('the CREATE_ON_INIT record is part of the VMM\'s saved state', () => {
    const t = launched(8n * MiB, undefined, 2);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000013n, swExitInfo1: 1n << 32n, swExitInfo2: 0x401000n, rax: SNP_GUEST_SEV_FEATURES });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    const saved = t.vmm.saveState();
    const other = new HonestSnpVmm();
    other.loadState(saved);
    expect(other.vmsaAtInit(1)).toBe(0x401000n);
    other.loadState({ registeredGhcbs: [] });
    expect(other.vmsaAtInit(1)).toBeUndefined();
    t.close();
  });

  // KVM sev_snp_ap_creation: request = lower_32_bits(exit_info_1); any value but AP_CREATE_ON_INIT (0),
  // AP_CREATE (1) and AP_DESTROY (2) is "invalid AP creation request" (-EINVAL), which sev_handle_vmgexit
  // answers with svm_vmgexit_bad_input(svm, GHCB_ERR_INVALID_INPUT). 0x101 is not CREATE, though its low byte is 1.
  it.each([['3', 3n], ['0x101', 0x101n], ['0x80000001', 0x80000001n]] as const)('an undefined request (%s) with RAX, the VMSA GPA and the APIC ID as a CREATE wants them → INVALID_INPUT; no AP starts', (_label, request) => {
    const t = launched(8n * MiB, undefined, 2);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000013n, swExitInfo1: (1n << 32n) | request, swExitInfo2: 0x401000n, rax: SNP_GUEST_SEV_FEATURES });
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([2n, 5n]);
    expect(t.g.trace.events.filter((e) => e.type === 'ap-vmrun')).toEqual([]);
    t.close();
  });

  // KVM sev_es_validate_vmgexit, before sev_snp_ap_creation looks at the request: for SVM_VMGEXIT_AP_CREATION,
  // "if (lower_32_bits(control->exit_info_1) != SVM_VMGEXIT_AP_DESTROY) if (!kvm_ghcb_rax_is_valid(svm))
  // goto vmgexit_err" with reason = GHCB_ERR_MISSING_INPUT (4), not the INVALID_INPUT of a request it refuses.
  it.each([
    ['a CREATE of vCPU 1 from a good VMSA GPA', 1n, 1n],
    ['a CREATE naming no vCPU', 2n, 1n],
    ['an undefined request (3)', 1n, 3n],
  ] as const)('%s without RAX marked valid → SW_EXITINFO1 2, SW_EXITINFO2 MISSING_INPUT; no AP starts', (_what, apicId, request) => {
    const t = launched(8n * MiB, undefined, 2);
    t.writeGhcb(GHCB_GPA, { swExitCode: 0x80000013n, swExitInfo1: (apicId << 32n) | request, swExitInfo2: 0x401000n, rax: SNP_GUEST_SEV_FEATURES }, ['rax']);
    expect(t.msr(GHCB_GPA).answer).toBe('resume');
    expect([t.readGhcb(GHCB_GPA, 'swExitInfo1'), t.readGhcb(GHCB_GPA, 'swExitInfo2')]).toEqual([2n, 4n]);
    expect(t.g.trace.events.filter((e) => e.type === 'ap-vmrun')).toEqual([]);
    t.close();
  });
});

