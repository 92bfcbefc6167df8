// The hardware side of SNP AP creation: VMRUN of an AP from the VMSA page the guest wrote. It runs
// only from a page that passes VMRUN's VMSA page checks (APM Vol. 2 §15.36.12 "VMRUN Page Checks": assigned to its
// ASID, mapped at its own GPA, mutable, VMSA bit set by RMPADJUST; Validated is not checked), with the guest's VMPL and SEV_FEATURES and EFER.SVME; then the AP starts in the
// state the page holds (Linux struct sev_es_save_area offsets). Until then the AP does not exist.
import { describe, expect, it } from 'vitest';
import { GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, ghcbMsr } from '../../../src/platform/snp/ghcb-msr.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { flat32VmsaPage } from '../../helpers/snp-guest.js';

const VMSA = 0x11000n;
const RIP = 0x1000015n;

/** A VMSA page: flat 32-bit protected mode at RIP with RSI = 3, as the stub kernel writes one. */
function vmsaBytes(edit: (b: Buffer) => void = () => {}): Buffer {
  const b = flat32VmsaPage();
  b.writeBigUInt64LE(RIP, 0x178);
  b.writeBigUInt64LE(3n, 0x330);                      // RSI
  b.writeBigUInt64LE(0x4000n, 0x1d8);                 // RSP
  edit(b);
  return b;
}

function platformWithVmsa(page: Buffer, rmp: { assigned?: boolean; validated?: boolean; vmsaBit?: boolean; gpa?: bigint; immutable?: boolean; otherAsid?: boolean } = {}) {
  const p = SnpPlatform.create({ memoryBytes: 32n << 20n, vcpus: 2 });
  p.machine.memory.write(VMSA, page);
  if (rmp.assigned ?? true) {
    expect(p.handle.rmpUpdate(VMSA, { assigned: true, pageSize: '4k', gpa: rmp.gpa ?? VMSA, asid: rmp.otherAsid ? p.asid + 1 : p.asid, immutable: rmp.immutable ?? false }).rc).toBe(0);
    if (rmp.validated ?? true) p.rmp.setValidated(VMSA, true);
    if (rmp.vmsaBit ?? true) p.rmp.adjustPermissions(VMSA, 1, 0, true);
  }
  return p;
}

describe('SNP AP creation: VMRUN from a guest VMSA', () => {
  it('starts the AP in the state the VMSA page holds, and only then makes it runnable', () => {
    const p = platformWithVmsa(vmsaBytes());
    expect(p.isRunnable(0)).toBe(true);
    expect(p.isRunnable(1)).toBe(false);
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    expect(p.isRunnable(1)).toBe(true);
    expect(p.machine.vcpuIndex).toBe(0); // the running vCPU is still the one that asked
    p.machine.switchVcpu(1);
    const v = p.machine.vcpu;
    expect(v.regs.rip).toBe(RIP);
    expect(v.regs.rsi).toBe(3n);
    expect(v.regs.rsp).toBe(0x4000n);
    expect(v.readSpecial('cr0') & 0x11n).toBe(0x11n);
    // EFER.LME; SVME is checked on the page but the emulated CPU has no SVM, so EFER drops it.
    expect(v.readSpecial('efer') & 0x100n).toBe(0x100n);
    expect(v.codeSegment().bits).toBe(32);
    expect(p.trace.ofType('ap-vmrun')).toHaveLength(1);
  });

  // Linux struct sev_es_save_area: star 0x200, lstar 0x208, cstar 0x210, sfmask 0x218,
  // kernel_gs_base 0x220, sysenter_cs 0x228, sysenter_esp 0x230, sysenter_eip 0x238, cr2 0x240.
  // They are guest state like the rest of the page, and VMRUN loads them from it.
  it('loads the SYSCALL/SYSENTER MSRs, KERNEL_GS_BASE and CR2 from the VMSA page', () => {
    const fields = [
      [0x200, 0xc0000081, 0x0023001000000000n], [0x208, 0xc0000082, 0xffffffff81000000n], [0x210, 0xc0000083, 0xffffffff81000100n],
      [0x218, 0xc0000084, 0x47700n], [0x220, 0xc0000102, 0xffff888000000000n], [0x228, 0x174, 0x10n],
      [0x230, 0x175, 0xfffffe0000001000n], [0x238, 0x176, 0xffffffff81000200n],
    ] as const;
    const p = platformWithVmsa(vmsaBytes((b) => {
      for (const [offset, , value] of fields) b.writeBigUInt64LE(value, offset);
      b.writeBigUInt64LE(0x7000n, 0x240);
    }));
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.machine.switchVcpu(1);
    const v = p.machine.vcpu;
    expect(fields.map(([, msr]) => v.readMsr(msr))).toEqual(fields.map(([, , value]) => value));
    expect(v.readSpecial('cr2')).toBe(0x7000n);
    // The vCPU that created it keeps its own.
    p.machine.switchVcpu(0);
    expect(p.machine.vcpu.readMsr(0xc0000082)).toBe(0n);
  });

  // An AP started in real mode, as after a SIPI: VMRUN loads the hidden CS base from the VMSA
  // (APM Vol. 2 §15.5.1: segment state comes from the save area), so the AP's first fetch is at
  // base + RIP, not at selector << 4 or at RIP alone.
  it('starts a real-mode AP at the VMSA\'s CS base + RIP', () => {
    const base = 0x9f000n;
    const p = platformWithVmsa(vmsaBytes((b) => {
      b.writeUInt16LE(0x1238, 0x10);            // CS selector: not base >> 4
      b.writeUInt16LE(0x9b, 0x12);              // present code, execute/read
      b.writeUInt32LE(0xffff, 0x14);
      b.writeBigUInt64LE(base, 0x18);           // CS base
      b.writeBigUInt64LE(0x1000n | 0x10n, 0xd0);  // EFER.SVME
      b.writeBigUInt64LE(0x10n, 0x158);         // CR0: PE clear, real mode
      b.writeBigUInt64LE(0x20n, 0x178);         // RIP
    }));
    p.launchUpdateRange(base, 0x1000n);
    p.machine.memory.write(base + 0x20n, new Uint8Array([0xf4]));  // HLT
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.machine.switchVcpu(1);
    expect(p.machine.vcpu.codeSegment()).toMatchObject({ protectedMode: false, selector: 0x1238 });
    expect(p.machine.vcpu.run()).toMatchObject({ kind: 'hlt', rip: 0x21n });
  });

  // A real-mode CS the emulator cannot load (vmsa.ts vmsaEntryState) is refused like any other
  // VMSA the model cannot run: a clear refusal (the honest VMM then ends the run), never a throw.
  it('refuses, without throwing, a real-mode AP whose CS selector has TI or RPL bits set, is 0, or has a base above 4 GiB', () => {
    for (const [selector, base] of [[0x1234, 0x9f000n], [0x1233, 0x9f000n], [0, 0x9f000n], [0xfff8, 0x9f000n], [0x1238, 1n << 32n]] as const) {
      const p = platformWithVmsa(vmsaBytes((b) => {
        b.writeUInt16LE(selector, 0x10);
        b.writeBigUInt64LE(base, 0x18);
        b.writeBigUInt64LE(0x10n, 0x158);  // CR0: real mode
      }));
      const r = p.runApFromVmsa(1, VMSA);
      expect(r, `selector 0x${selector.toString(16)}`).toMatchObject({ ok: false, reason: expect.stringMatching(/real-mode CS/) });
      expect(p.isRunnable(1)).toBe(false);
    }
  });

  it("leaves the AP's GHCB MSR as its vCPU RESET set it: the SEV Information response, unasked", () => {
    // The GHCB MSR is the VMCB's GHCB GPA field, not VMSA state. At vCPU RESET the hypervisor
    // puts the SEV Information response there (KVM sev_es_init_vmcb "as per the GHCB
    // specification"; COCONUT-SVSM d72a9aac "the HV is required to put an unsolicited SEV
    // Information response into the GHCB MSR"); SNP AP creation is an INIT-like reset that keeps
    // it (KVM svm_vcpu_reset(init_event) -> sev_snp_init_protected_guest_state). Was 0 here.
    const p = platformWithVmsa(vmsaBytes());
    const sevInfo = ghcbMsr.sevInfoResp(GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, p.cBit);
    expect(p.ghcbMsr).toBe(sevInfo); // the BSP's, before the guest wrote it
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.machine.switchVcpu(1);
    expect(p.ghcbMsr).toBe(sevInfo);
    expect(sevInfo & 0xfffn).toBe(0x001n);
  });

  it.each([
    ['an unassigned (hypervisor) page', vmsaBytes(), { assigned: false }, /not assigned/],
    ['a page assigned to another guest\'s ASID (Guest-Owned)', vmsaBytes(), { otherAsid: true }, /not assigned/],
    ['a page the RMP maps at another GPA (Reverse-Map)', vmsaBytes(), { gpa: VMSA + 0x1000n }, /reverse map/],
    ['an immutable page (Mutable)', vmsaBytes(), { immutable: true }, /immutable/],
    ['a page without the RMP VMSA bit', vmsaBytes(), { vmsaBit: false }, /VMSA bit clear/],
    ['other SEV_FEATURES', vmsaBytes((b) => b.writeBigUInt64LE(0n, 0x3b0)), {}, /SEV_FEATURES/],
    ['EFER.SVME clear', vmsaBytes((b) => b.writeBigUInt64LE(1n << 8n, 0xd0)), {}, /SVME/],
    ['another VMPL', vmsaBytes((b) => b.writeUInt8(1, 0xca)), {}, /VMPL/],
  ] as const)('refuses %s and leaves the AP not created', (_what, page, rmp, reason) => {
    const p = platformWithVmsa(page, rmp);
    const r = p.runApFromVmsa(1, VMSA);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
    expect(p.isRunnable(1)).toBe(false);
  });

  // Reverse-Map for a page inside a 2 MiB RMP entry: the entry holds the GPA of the 2 MiB page's
  // base (KVM sev_gmem_prepare: rmp_make_private(pfn_aligned, gfn_to_gpa(gfn_aligned), level, …)),
  // so a page in it is mapped at that GPA plus its offset. VMRUN Page Checks test it before Mutable and VMSA.
  it('checks the reverse map of a page inside a 2 MiB entry as the entry\'s GPA plus the page\'s offset', () => {
    const region = 0x400000n;
    const vmsa = region + 0x5000n;
    const mapped = SnpPlatform.create({ memoryBytes: 32n << 20n, vcpus: 2 });
    mapped.machine.memory.write(vmsa, vmsaBytes());
    expect(mapped.handle.rmpUpdate(region, { assigned: true, pageSize: '2m', gpa: region, asid: mapped.asid }).rc).toBe(0);
    // Past the reverse-map check: refused for the VMSA bit, which a 2 MiB entry here does not have.
    expect(mapped.runApFromVmsa(1, vmsa)).toEqual({ ok: false, reason: 'RMP VMSA bit clear' });
    const elsewhere = SnpPlatform.create({ memoryBytes: 32n << 20n, vcpus: 2 });
    expect(elsewhere.handle.rmpUpdate(region, { assigned: true, pageSize: '2m', gpa: region + 0x200000n, asid: elsewhere.asid }).rc).toBe(0);
    expect(elsewhere.runApFromVmsa(1, vmsa)).toEqual({ ok: false, reason: "VMSA page's reverse map says GPA 0x605000" });
    expect(elsewhere.isRunnable(1)).toBe(false);
    mapped.machine.close();
    elsewhere.machine.close();
  });

  it('runs from a page the guest rescinded after setting its VMSA bit: Validated is not one of the VMRUN page checks', () => {
    const p = platformWithVmsa(vmsaBytes(), { validated: false });
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
  });

  // KVM's AP creation resets the target before it loads the new VMSA (KVM_REQ_UPDATE_PROTECTED_GUEST_STATE
  // -> kvm_vcpu_reset(vcpu, true) -> sev_snp_init_protected_guest_state), whether or not it ran before:
  // an AP created again starts from the page, with nothing of what it had done.
  it('runs an AP again from a VMSA after it ran: it starts over in the state the page holds', () => {
    const p = platformWithVmsa(vmsaBytes());
    p.launchUpdateRange(0x1000000n, 0x1000n);
    p.machine.memory.write(RIP, new Uint8Array([0x83, 0xc6, 0x05, 0xf4]));  // add esi, 5; hlt
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.machine.switchVcpu(1);
    expect(p.machine.vcpu.run()).toMatchObject({ kind: 'hlt' });
    expect(p.machine.vcpu.regs.rsi).toBe(8n);
    p.machine.switchVcpu(0);
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.machine.switchVcpu(1);
    expect([p.machine.vcpu.regs.rip, p.machine.vcpu.regs.rsi]).toEqual([RIP, 3n]);
    expect(p.machine.vcpu.codeSegment().bits).toBe(32);
  });

  // An XCR0 the CPU lacks a feature for (bit 63, reserved) is found only when the vCPU is loaded,
  // after the reset (Vcpu.writeXcr0 throws): a refusal, not a throw, and the AP, which ran before,
  // is left with no state to run from (the VMRUN failed; vmsa.ts xcr0Refused).
  it('refuses, without throwing, an AP created again from a VMSA whose XCR0 has a bit the CPU lacks, and takes it out of the schedule', () => {
    const p = platformWithVmsa(vmsaBytes());
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    expect(p.isRunnable(1)).toBe(true);
    p.machine.memory.write(VMSA + 0x3e8n, Buffer.from(new BigUint64Array([(1n << 63n) | 3n]).buffer));
    expect(p.runApFromVmsa(1, VMSA)).toMatchObject({ ok: false, reason: expect.stringMatching(/^XCR0 0x8000000000000003: /) });
    expect(p.isRunnable(1)).toBe(false);
    expect(p.machine.vcpuIndex).toBe(0);
  });

  // KVM sev_snp_ap_creation finds the target with kvm_get_vcpu_by_id, which may return the vCPU
  // asking; the kick makes it reset and load the new VMSA at its next entry.
  it('runs the running vCPU itself from a VMSA (a vCPU creating itself): it starts over in the state the page holds', () => {
    const p = platformWithVmsa(vmsaBytes());
    p.machine.vcpu.regs.rsi = 0x99n;
    expect(p.runApFromVmsa(0, VMSA)).toEqual({ ok: true });
    expect(p.machine.vcpuIndex).toBe(0);
    expect([p.machine.vcpu.regs.rip, p.machine.vcpu.regs.rsi, p.machine.vcpu.regs.rsp]).toEqual([RIP, 3n, 0x4000n]);
    expect(p.machine.vcpu.codeSegment().bits).toBe(32);
    expect(p.isRunnable(1)).toBe(false);
  });

  // KVM AP destroy: the target's VMCB loses its VMSA (vmsa_pa = INVALID_PAGE), it is HALTED and
  // pre_sev_run refuses to run it; an AP creation runs it again. No vCPU left: nothing runs again.
  it('stopVcpu takes a vCPU out of the schedule until it is run from a VMSA again; with none left the run ends', () => {
    const p = platformWithVmsa(vmsaBytes());
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    p.stopVcpu(1);
    expect(p.isRunnable(1)).toBe(false);
    expect(p.runApFromVmsa(1, VMSA)).toEqual({ ok: true });
    expect(p.isRunnable(1)).toBe(true);
    p.stopVcpu(1);
    p.stopVcpu(0);
    expect(p.step()).toEqual({ kind: 'outcome', outcome: { outcome: 'done', reason: 'no vCPU left to run: the hypervisor stopped every one (SNP AP destroy)' } });
    expect(() => p.stopVcpu(2)).toThrow(RangeError);
    expect(p.trace.ofType('vcpu-stopped').map((e) => [e.vcpu, e.wasRunnable])).toEqual([[1, true], [1, true], [0, true]]);
  });

  it('refuses a vCPU that does not exist, the only vCPU of a one-vCPU machine (it cannot start over here), and an unaligned page', () => {
    const p = platformWithVmsa(vmsaBytes());
    expect(p.runApFromVmsa(2, VMSA).ok).toBe(false);
    const one = SnpPlatform.create({ memoryBytes: 32n << 20n });
    one.machine.memory.write(VMSA, vmsaBytes());
    expect(one.handle.rmpUpdate(VMSA, { assigned: true, pageSize: '4k', gpa: VMSA, asid: one.asid }).rc).toBe(0);
    one.rmp.adjustPermissions(VMSA, 1, 0, true);
    expect(one.runApFromVmsa(0, VMSA)).toEqual({ ok: false, reason: 'the target vCPU is the only one, running' });
    one.machine.close();
    // Refused for its address, not for what the bytes at VMSA + 8 happen to decode to.
    expect(p.runApFromVmsa(1, VMSA + 8n)).toMatchObject({ ok: false, reason: expect.stringMatching(/not a page/) });
  });
});
