// Rows 19 and 20 of issue 9: a TD starts where TDH.VP.INIT puts it (the reset vector 0xFFFFFFF0),
// an SNP BSP where the VMSA the VMM provides says (the reset state, 0xFFFF0000:FFF0); both run
// the firmware volume's reset vector and the firmware switches to long mode itself.
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { BootSession } from '../../../src/boot/boot-session.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';
import { runAtResetVector } from '../../helpers/tdx-guest.js';
import { tdCpuid } from '../../../src/platform/tdx/td-cpuid.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { bspResetVmsa, resetVmsa, vmsaPage } from '../../../src/platform/snp/vmsa.js';
import { HonestSnpVmm } from '../../../src/vmm/snp/honest-vmm.js';
import { decodeGhcbMsr, ghcbMsr } from '../../../src/platform/snp/ghcb-msr.js';

const ENTRY = 0x301000n;

describe('TDX: TDH.VP.INIT initial state (tdx-module tdh_vp_init.c, td_vmcs_init.c)', () => {
  it('32-bit protected mode, paging off, flat selector-0 CS, EFER.LME, RBX/RCX/R8/RSI as the module sets them', () => {
    const td = createTd({ memoryBytes: 64n << 20n, gpaWidth: 48 });
    td.platform.handle.vpInit(0x300000n);
    const vcpu = td.platform.machine.vcpu;
    expect(vcpu.codeSegment()).toMatchObject({ bits: 32, protectedMode: true, longMode: false, selector: 0, base: 0n });
    expect(vcpu.readSpecial('cr0')).toBe(0x21n);
    expect(vcpu.readSpecial('efer') & 0xd01n).toBe(0x901n);  // SCE, LME, NXE; LMA clear
    expect(vcpu.readSpecial('gdtrLimit')).toBe(0xffffn);
    // td_vmcs_init.c: GUEST_TR_LIMIT 0xFFFF (AR 0x8B), base 0: where a delivery below CPL 0 reads RSP0.
    expect([vcpu.readSpecial('trBase'), vcpu.readSpecial('trLimit')]).toEqual([0n, 0xffffn]);
    const r = vcpu.regs;
    expect([r.rip, r.rflags, r.rbx, r.rcx, r.r8, r.rsi]).toEqual([0xfffffff0n, 2n, 48n, 0x300000n, 0x300000n, 0n]);
    // RDX = CPUID(1).EAX, the family/model/stepping the TD's CPUID reports.
    const cpuid1 = tdCpuid(1, 0, { vcpuIndex: 0, cr4: 0n, in64BitMode: false });
    expect(cpuid1.kind === 'answer' && cpuid1.regs[0]).toBe(0x806f8);
    expect(r.rdx).toBe(0x806f8n);
    td.platform.machine.close();
  });

  it('every other GPR is 0 and RFLAGS 0x2 whatever the vCPU held, CR4 reads MCE only, IDTR is 0/0, GDTR base 0 and TR 0/FFFFh', () => {
    // tdh_vp_init.c init_vcpu_gprs_and_registers: "All other GPRs/Registers are set to 0". td_vmcs_init.c:
    // guest CR4 0x2040, whose VMXE (bit 13) the CR4 read shadow hides from the guest
    // (init_tdcs_dependent_fields_in_vmcs: "Bit MCE (6) is set to 1. Bit VMXE (13) is cleared to 0");
    // neither init map sets IDTR or the GDTR base, so they keep the VMCS's 0 (not the CPU reset's
    // IDTR limit 0xFFFF); the GDTR limit is 0xFFFF.
    const td = createTd({ memoryBytes: 64n << 20n, gpaWidth: 48 });
    const vcpu = td.platform.machine.vcpu;
    const others = ['rax', 'rsp', 'rbp', 'rdi', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;
    for (const r of others) vcpu.regs[r] = 0x1111_2222_3333_4444n;
    vcpu.regs.rflags = 0x246n;
    vcpu.writeSpecial('idtrLimit', 0xffffn);
    vcpu.writeSpecial('idtrBase', 0x1000n);
    vcpu.writeSpecial('gdtrBase', 0x2000n);
    vcpu.writeSpecial('trBase', 0x3000n);
    vcpu.writeSpecial('trLimit', 0x67n);
    td.platform.handle.vpInit(0x300000n);
    expect(others.map((r) => vcpu.regs[r])).toEqual(others.map(() => 0n));
    // td_vmcs_init.c sets GUEST_TR_LIMIT 0xFFFF (AR 0x8B) and leaves the TR base at the VMCS's 0.
    expect([vcpu.readSpecial('trBase'), vcpu.readSpecial('trLimit')]).toEqual([0n, 0xffffn]);
    expect(vcpu.regs.rflags).toBe(2n);  // td_vmcs_init.c: guest RFLAGS 0x2
    expect(vcpu.readSpecial('cr4')).toBe(0x40n);
    expect(vcpu.readSpecial('efer')).toBe(0x901n);  // SCE, LME, NXE exactly; LMA clear (paging off)
    expect([vcpu.readSpecial('idtrBase'), vcpu.readSpecial('idtrLimit'), vcpu.readSpecial('gdtrBase'), vcpu.readSpecial('gdtrLimit')]).toEqual([0n, 0n, 0n, 0xffffn]);
    td.platform.machine.close();
  });

  it('IA32_FMASK starts at 0x20200 (tdh_vp_init.c init_vcpu_msrs: IA32_FMASK_MSR_RESET_STATE, msr_defs.h), the only MSR TDH.VP.INIT sets outside the VMCS', () => {
    // TDH.VP.ENTER loads it from TDVPS (tdh_vp_enter.c safe_wrmsr(IA32_FMASK_MSR_ADDR, ...)), so the
    // TD's first SYSCALL clears IF (and VM) unless the guest wrote its own mask; a RDMSR reads it.
    const td = createTd({ memoryBytes: 64n << 20n, gpaWidth: 48 });
    const vcpu = td.platform.machine.vcpu;
    vcpu.writeMsr(0xc0000084, 0x700n);
    td.platform.handle.vpInit(0x300000n);
    expect(vcpu.readMsr(0xc0000084)).toBe(0x20200n);
    td.platform.machine.close();
  });

  it('RSI is the vCPU index the VMM gave TDH.VP.INIT (init_vcpu_gprs_and_registers: RSI = vcpu_index)', () => {
    const td = createTd({ memoryBytes: 64n << 20n, gpaWidth: 48, vcpus: 2 });
    td.platform.handle.vpInit(0n, 0);
    td.platform.handle.vpInit(0n, 1);
    td.platform.machine.switchVcpu(1);
    expect(td.platform.machine.vcpu.regs.rsi).toBe(1n);
    td.platform.machine.close();
  });

  it('the guest finds CPUID(1).EAX in RDX: its first instructions at 0xFFFFFFF0 compare them', () => {
    // A 4 KiB firmware volume below 4 GiB, PAGE.ADDed: mov esi, edx; mov eax, 1; xor ecx, ecx;
    // cpuid; jmp $ (the jump ends the translation block before 4 GiB).
    const { td, step } = runAtResetVector([0x89, 0xd6, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x31, 0xc9, 0x0f, 0xa2, 0xeb, 0xfe]);
    expect(step, JSON.stringify(step, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v))).toMatchObject({ kind: "outcome", outcome: { outcome: "budget" } });
    const r = td.platform.machine.vcpu.regs;
    expect(r.rip).toBe(0xfffffffbn);  // after the CPUID, which the module answered
    expect(r.rsi).toBe(r.rax & 0xffffffffn);
    expect(r.rsi).toBe(0x806f8n);
    td.platform.machine.close();
  });

  it('runs once per vCPU, before MR.FINALIZE', () => {
    const td = createTd({ memoryBytes: 64n << 20n, gpaWidth: 52 });
    td.platform.handle.vpInit(0n);
    expect(td.platform.machine.vcpu.regs.rip).toBe(0xfffffff0n);  // the architectural reset vector
    expect(td.platform.machine.vcpu.regs.rbx).toBe(52n);
    expect(() => td.platform.handle.vpInit(0n)).toThrow(/already initialized/);
    td.platform.machine.close();
  });
});

describe('SNP: the BSP starts from the VMSA the VMM provides', () => {
  it('the BSP reset state: real mode, CS 0xF000 with the hidden base 0xFFFF0000, IP 0xFFF0', () => {
    const p = SnpPlatform.create({ memoryBytes: 64n << 20n });
    p.handle.launchUpdateVmsa(bspResetVmsa());
    const vcpu = p.machine.vcpu;
    expect(vcpu.codeSegment()).toMatchObject({ bits: 16, protectedMode: false, selector: 0xf000, base: 0xffff0000n });
    expect(vcpu.regs.rip).toBe(0xfff0n);
    p.machine.close();
  });

  it('an AP-style VMSA: real mode at CS 0xF000 with the hidden base of the SEV-ES reset block, measured as a VMSA page', () => {
    const digests: string[] = [];
    for (const entry of [ENTRY, ENTRY + 0x10n]) {
      const p = SnpPlatform.create({ memoryBytes: 64n << 20n });
      p.handle.launchUpdateVmsa(resetVmsa(entry));
      const vcpu = p.machine.vcpu;
      expect(vcpu.codeSegment()).toMatchObject({ bits: 16, protectedMode: false, selector: 0xf000, base: 0x300000n });
      expect(vcpu.regs.rip).toBe(entry & 0xffffn);
      expect(vcpu.readSpecial('cr0')).toBe(0x10n);  // ET: KVM clears the reset CD and NW (svm_set_cr0)
      digests.push(p.handle.launchFinish());
      expect(() => p.handle.launchUpdateVmsa(resetVmsa(entry))).toThrow(/encrypted/);
      p.machine.close();
    }
    expect(digests[0]).not.toBe(digests[1]);  // the VMSA (its RIP) is part of the launch digest
  });

  it('lays the VMSA out as struct sev_es_save_area (Linux asm/svm.h, APM Vol. 2 Table B-4)', () => {
    const page = Buffer.from(vmsaPage(resetVmsa(ENTRY)));
    expect([page.readUInt16LE(0x10), page.readUInt16LE(0x12), page.readUInt32LE(0x14), page.readBigUInt64LE(0x18)])
      .toEqual([0xf000, 0x9b, 0xffff, 0x300000n]);  // CS: selector, attrib, limit, base
    expect(page.readBigUInt64LE(0x178)).toBe(0x1000n);        // RIP
    expect(page.readBigUInt64LE(0x158)).toBe(0x10n);          // CR0 as KVM measures it (sev-snp-measure cr0=0x10)
    expect(page.readBigUInt64LE(0xd0) & 0x1000n).toBe(0x1000n);  // EFER.SVME
  });
});

/** A boot set up by the VMM (measured launch done), its vCPU not run yet. */
function launched(platform: 'tdx' | 'snp', memory = '256M'): BootSession {
  return BootSession.create(parseBootOptions({ platform, memory }));
}

/** Runs exactly `n` more guest instructions. */
function step(session: BootSession, n: bigint): void {
  const vcpu = session.platform.machine.vcpu;
  vcpu.instructionLimit = vcpu.instructions + n;
  vcpu.budgetLimit = vcpu.budgetLimit > vcpu.instructionLimit ? vcpu.budgetLimit : vcpu.instructionLimit;
  expect(vcpu.run().kind).toBe('budget');
}

describe('the first instructions are the reset vector in the firmware volume', () => {
  it('TDX: 32-bit code at 0xFFFFFFF0 (mov eax, cr0; test al, 1; jz; jmp rel32 into the volume)', () => {
    const session = launched('tdx');
    const vcpu = session.platform.machine.vcpu;
    expect(vcpu.regs.rip).toBe(0xfffffff0n);
    step(session, 1n);
    // One instruction ran: mov eax, cr0 at 0xFFFFFFF0 (3 bytes, the same in 16- and 32-bit code).
    expect(vcpu.regs.rip).toBe(0xfffffff3n);
    expect(vcpu.regs.rax).toBe(0x21n);
    step(session, 2n);
    expect(vcpu.regs.rip).toBe(0xfffffff7n);  // CR0.PE set: the jz fell through to the 32-bit jmp
    step(session, 1n);
    expect(vcpu.regs.rip >= 0xfffff000n && vcpu.regs.rip < 0xfffffff0n).toBe(true);  // still in the volume
    expect(vcpu.codeSegment()).toMatchObject({ bits: 32, protectedMode: true, selector: 0 });
    session.platform.machine.close();
  });

  it('SNP: 16-bit code at CS base 0xFFFF0000, IP 0xFFF0, which takes the real-mode branch', () => {
    const session = launched('snp');
    const vcpu = session.platform.machine.vcpu;
    expect(vcpu.codeSegment()).toMatchObject({ bits: 16, selector: 0xf000, base: 0xffff0000n });
    expect(vcpu.regs.rip).toBe(0xfff0n);
    step(session, 1n);
    expect(vcpu.regs.rip).toBe(0xfff3n);
    expect(vcpu.regs.rax & 0xffffffffn).toBe(0x10n);  // CR0 of the launch VMSA (KVM clears the reset CD and NW)
    step(session, 2n);
    expect(vcpu.regs.rip).toBe(0xfffcn);  // CR0.PE clear: jz taken to the 16-bit jmp
    step(session, 1n);
    expect(vcpu.regs.rip).toBe(0xf000n);  // the volume's real-mode code at 0xFFFFF000
    expect(vcpu.codeSegment()).toMatchObject({ bits: 16, base: 0xffff0000n });
    session.platform.machine.close();
  });
});

describe('boots from the architectural entry state', () => {
  for (const platform of ['tdx', 'snp'] as const) {
    it(`${platform}: the firmware runs from its entry mode to long mode and the boot ends done`, () => {
      const run = bootGuest(parseBootOptions({ platform, memory: '256M' }), { keepTrace: true });
      expect(run.result.outcome).toBe('done');
      const entry = run.trace.ofType(platform === 'tdx' ? 'vp-init' : 'launch-vmsa')[0];
      expect(entry).toBeDefined();
      expect(run.platform.machine.vcpu.codeSegment().bits).toBe(64);
      run.platform.machine.close();
    });
  }

  it('SNP: a hypervisor lying about the C-bit before any #VC handler exists makes the 32-bit entry code terminate', () => {
    const liar = (echo: (line: string) => void) => {
      const vmm = new HonestSnpVmm({ echo });
      const honest = vmm.onVmgexit.bind(vmm);
      vmm.onVmgexit = (host, exit) => {
        const req = decodeGhcbMsr(exit.ghcbMsr);
        if (req.kind === 'cpuid' && req.fn === 0x8000001f && req.reg === 1) {
          host.ghcbMsr = ghcbMsr.cpuidResp(5, 1);  // C-bit 5: below any real position
          return 'resume';
        }
        return honest(host, exit);
      };
      return vmm;
    };
    const run = bootGuest(parseBootOptions({ platform: 'snp', memory: '256M' }), { vmm: { snp: liar } });
    expect(run.result.outcome).toBe('guest-fatal');
    expect(run.result.outcomeReason).toMatch(/GHCB termination request: reason set 0, code 0/);
    expect(run.result.console).toBe('');  // nothing ran past the entry code
    run.platform.machine.close();
  });
});
