// What VMRUN accepts from a guest-written VMSA, and the launch digest once LAUNCH_FINISH fixed it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LaunchDigest, pageInfo } from '../../../src/platform/snp/launch.js';
import { applyGuestVmsa, applyVmsa, bspResetVmsa, decodeVmsaPage, resetVmsa, SNP_RESET_VECTOR, VMSA_MEASURED_GPA, vmsaEntryState, vmsaPage } from '../../../src/platform/snp/vmsa.js';
import { GPRS } from '../../../src/cpu/registers.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { snpCpuid } from '../../../src/platform/snp/sev-status.js';
import { flat32VmsaPage } from '../../helpers/snp-guest.js';

describe('VMSA entry state', () => {
  it('flat 32-bit protected mode needs CS base 0 with D=1 and L=0; other code segments are refused', () => {
    const flat = decodeVmsaPage(flat32VmsaPage());
    expect(vmsaEntryState(flat)).toEqual({ mode: 'protected32' });
    expect(vmsaEntryState({ ...flat, cs: { ...flat.cs, base: 0x10000n } })).toHaveProperty('refused');
    expect(vmsaEntryState({ ...flat, cs: { ...flat.cs, attrib: flat.cs.attrib & ~(1 << 10) } })).toHaveProperty('refused');  // D=0: 16-bit
    expect(vmsaEntryState({ ...flat, cs: { ...flat.cs, attrib: flat.cs.attrib | (1 << 9) } })).toHaveProperty('refused');  // L=1: 64-bit
    expect(vmsaEntryState({ ...flat, cr0: 0x10n })).toEqual({ mode: 'real16' });
  });

  it('a real-mode CS base up to FFFF_FFFFh is entered, not refused: any real-mode CS is legal VMRUN state (APM Vol. 2 §15.5.1), and the emulator enters every base below 4 GiB', () => {
    const real = { ...decodeVmsaPage(flat32VmsaPage()), cr0: 0x10n };
    for (const base of [0xffffffffn, 0xfffff000n]) {
      const v = { ...real, cs: { ...real.cs, selector: 0x800, base } };
      expect(vmsaEntryState(v)).toEqual({ mode: 'real16' });
      const m = SnpPlatform.create({ memoryBytes: 16n << 20n, countInstructions: false }).machine;
      applyGuestVmsa(m, v, 'real16');
      expect(m.vcpu.codeSegment()).toMatchObject({ protectedMode: false, selector: 0x800, base });
      m.close();
    }
    expect(vmsaEntryState({ ...real, cs: { ...real.cs, selector: 0x800, base: 1n << 32n } })).toHaveProperty('refused');
  });
});

describe('the launch VMSA', () => {
  it('the BSP starts in the x86 reset state: CS F000h with base FFFF0000h and limit FFFFh, IP FFF0h, RFLAGS 2 (APM Vol. 2 §14.1.5 Table 14-1), CR0 10h (ET: KVM clears the reset CD and NW, svm_set_cr0 with KVM_X86_QUIRK_CD_NW_CLEARED), with EFER.SVME set as every SEV-ES VMSA needs', () => {
    expect(SNP_RESET_VECTOR).toBe(0xfffffff0n);
    const v = bspResetVmsa();
    expect(v).toMatchObject({ cs: { selector: 0xf000, base: 0xffff0000n, limit: 0xffff }, rip: 0xfff0n, rflags: 0x2n, cr0: 0x10n, efer: 1n << 12n });
    // Code segment attributes in VMCB form: present, S, type 0xB (execute/read, accessed).
    expect(v.cs.attrib).toBe(0x9b);
    // Another reset vector by the same SEV-ES reset-block convention: base from bits 31:16, IP from 15:0.
    expect(resetVmsa(0x8765_4321n)).toMatchObject({ cs: { selector: 0xf000, base: 0x8765_0000n }, rip: 0x4321n });
  });

  it('RDX holds the processor signature, CPUID Fn0000_0001_EAX, as at an x86 reset (APM Vol. 2 Table 14-1; QEMU x86_cpu_reset_hold: EDX = cpuid_version; sev-snp-measure: the measured VMSA\'s rdx is the vCPU signature)', () => {
    const rdx = bspResetVmsa().rdx;
    expect(rdx).toBe(BigInt(snpCpuid(1, 0, 0).eax));
    expect(resetVmsa(0x8765_4321n).rdx).toBe(rdx);  // an AP's reset-block VMSA is a reset too
    // The EPYC 9004 (Genoa) signature the model's CPU reports: family 0Fh + extended family 0Ah = 19h,
    // extended model 1 with model 1 = 11h, stepping 1 (APM Vol. 3 CPUID Fn0000_0001_EAX).
    const family = Number((rdx >> 8n) & 0xfn) + Number((rdx >> 20n) & 0xffn);
    const model = (Number((rdx >> 16n) & 0xfn) << 4) | Number((rdx >> 4n) & 0xfn);
    expect([family, model, Number(rdx & 0xfn)]).toEqual([0x19, 0x11, 1]);
  });

  it('its page holds each field at its sev_es_save_area offset, the other registers in their reset state (Table 14-1: DR6 FFFF0FF0h, DR7 400h, descriptor tables limit FFFFh; LDTR type LDT; TR a busy TSS, type 11 as QEMU resets it)', () => {
    const v = { ...bspResetVmsa(), rdx: 0xa10f11n };
    const page = Buffer.from(vmsaPage(v));
    const d = decodeVmsaPage(page);
    expect(d.cs).toEqual({ selector: 0xf000, attrib: 0x9b, limit: 0xffff, base: 0xffff0000n });
    for (const seg of [d.es, d.ss, d.ds, d.fs, d.gs]) expect(seg).toEqual({ selector: 0, attrib: 0x93, limit: 0xffff, base: 0n });
    expect([d.gdtr, d.idtr]).toEqual([{ limit: 0xffff, base: 0n }, { limit: 0xffff, base: 0n }]);
    expect([page.readUInt16LE(0x72), page.readUInt32LE(0x74)]).toEqual([0x82, 0xffff]);  // LDTR
    expect([page.readUInt16LE(0x92), page.readUInt32LE(0x94)]).toEqual([0x8b, 0xffff]);  // TR
    // GDTR, LDTR and IDTR whole, every vmcb_seg field: as sev-snp-measure's VMSA.build_save_area
    // (vmsa.py: gdtr = idtr = VmcbSeg(0, 0, 0xffff, 0), ldtr = VmcbSeg(0, 0x82, 0xffff, 0)).
    const whole = (off: number) => [page.readUInt16LE(off), page.readUInt16LE(off + 2), page.readUInt32LE(off + 4), page.readBigUInt64LE(off + 8)];
    expect([whole(0x60), whole(0x70), whole(0x80)]).toEqual([[0, 0, 0xffff, 0n], [0, 0x82, 0xffff, 0n], [0, 0, 0xffff, 0n]]);
    // TR's selector and base are 0 at reset (APM Vol. 2 Table 14-1: TR selector 0000h, base 0).
    expect([page.readUInt16LE(0x90), page.readBigUInt64LE(0x98)]).toEqual([0, 0n]);
    // One 4 KiB page, as SNP_LAUNCH_UPDATE measures it (struct sev_es_save_area fills a page; svm.h
    // EXPECTED_SEV_ES_SAVE_AREA_SIZE 1648, the rest of the page reserved).
    expect(page.length).toBe(4096);
    expect({ efer: d.efer, cr0: d.cr0, rflags: d.rflags, rip: d.rip, rdx: d.gprs.rdx }).toEqual({ efer: 0x1000n, cr0: 0x10n, rflags: 2n, rip: 0xfff0n, rdx: 0xa10f11n });
    expect([page.readBigUInt64LE(0x160), page.readBigUInt64LE(0x168)]).toEqual([0x400n, 0xffff0ff0n]);  // DR7, DR6
    // The CS a VMM puts in its launch VMSA is measured as given, every vmcb_seg field of it: selector,
    // attrib, u32 limit at +4, base at +8 (svm.h struct vmcb_seg).
    const cs = { selector: 0x1234, attrib: 0x93, limit: 0xfffff, base: 0x12340n };
    expect(decodeVmsaPage(vmsaPage({ ...v, cs })).cs).toEqual(cs);
  });

  it('is, byte for byte, the BSP VMSA sev-snp-measure builds for a QEMU/KVM guest (vmsa.py build_save_area, VMM type QEMU): the page the launch digest measures', () => {
    // Each field sev-snp-measure sets, at its SevEsSaveArea offset (Linux struct sev_es_save_area,
    // APM Vol. 2 Table B-4); every other byte is zero.
    const expected = Buffer.alloc(4096);
    const seg = (off: number, selector: number, attrib: number, limit: number, base: bigint) => {
      expected.writeUInt16LE(selector, off); expected.writeUInt16LE(attrib, off + 2);
      expected.writeUInt32LE(limit, off + 4); expected.writeBigUInt64LE(base, off + 8);
    };
    seg(0x00, 0, 0x93, 0xffff, 0n);              // es
    seg(0x10, 0xf000, 0x9b, 0xffff, 0xffff0000n); // cs: eip & 0xffff0000
    seg(0x20, 0, 0x93, 0xffff, 0n);              // ss
    seg(0x30, 0, 0x93, 0xffff, 0n);              // ds
    seg(0x40, 0, 0x93, 0xffff, 0n);              // fs
    seg(0x50, 0, 0x93, 0xffff, 0n);              // gs
    seg(0x60, 0, 0, 0xffff, 0n);                 // gdtr
    seg(0x70, 0, 0x82, 0xffff, 0n);              // ldtr
    seg(0x80, 0, 0, 0xffff, 0n);                 // idtr
    seg(0x90, 0, 0x8b, 0xffff, 0n);              // tr: tr_flags 0x8b (QEMU)
    const q = (off: number, value: bigint) => expected.writeBigUInt64LE(value, off);
    q(0xd0, 0x1000n);                   // efer: "KVM enables EFER_SVME"
    q(0x148, 0x40n);                    // cr4: "KVM enables X86_CR4_MCE"
    q(0x158, 0x10n);                    // cr0
    q(0x160, 0x400n);                   // dr7
    q(0x168, 0xffff0ff0n);              // dr6
    q(0x170, 0x2n);                     // rflags
    q(0x178, 0xfff0n);                  // rip: eip & 0xffff
    q(0x268, 0x7040600070406n);         // g_pat
    q(0x310, BigInt(snpCpuid(1, 0, 0).eax));  // rdx: the vCPU signature
    q(0x3b0, 1n);                       // sev_features: SNP
    q(0x3e8, 1n);                       // xcr0
    expect(Buffer.from(vmsaPage(bspResetVmsa())).equals(expected)).toBe(true);
  });

  it('is measured at GPA 0xFFFFFFFFF000 (sev-snp-measure gctx.py VMSA_GPA: the RMP records a VMSA page with GPA -1, page-aligned, bits above 51 cleared)', () => {
    expect(VMSA_MEASURED_GPA).toBe(0xffff_ffff_f000n);
  });
});

describe('guest VMSA page layout', () => {
  it('decodes each field from its offset in Linux struct sev_es_save_area (arch/x86/include/asm/svm.h; KVM selftests sev_init2: vmpl 0xca, rip 0x178, sev_features 0x3b0)', () => {
    // Offsets worked out from the struct: vmcb_seg {u16 selector, u16 attrib, u32 limit, u64 base} x 10 from 0,
    // then 4 SSPs and u_cet (0xa0..0xc7), reserved_0xc8[2], vmpl 0xca, cpl, reserved_0xcc[4], efer 0xd0,
    // reserved_0xd8[104], xss 0x140, cr4, cr3, cr0, dr7, dr6, rflags, rip 0x178, ..., reserved_0x1c0[24], rsp 0x1d8,
    // s_cet, ssp, isst_addr, rax 0x1f8, ..., reserved_0x2f0[24], rcx 0x308, rdx, rbx, reserved_0x320, rbp 0x328 .. r15 0x378,
    // reserved_0x380[16], four exit fields, sev_features 0x3b0.
    const page = Buffer.alloc(4096);
    const segs = { es: 0x00, cs: 0x10, ss: 0x20, ds: 0x30, fs: 0x40, gs: 0x50 } as const;
    Object.values(segs).forEach((off, i) => {
      page.writeUInt16LE(0x100 + i, off);
      page.writeUInt16LE(0x200 + i, off + 2);
      page.writeUInt32LE(0x30000 + i, off + 4);
      page.writeBigUInt64LE(0x4000_0000n + BigInt(i), off + 8);
    });
    page.writeUInt32LE(0x57, 0x60 + 4); page.writeBigUInt64LE(0x6000n, 0x60 + 8);  // GDTR limit, base
    page.writeUInt32LE(0xff, 0x80 + 4); page.writeBigUInt64LE(0x8000n, 0x80 + 8);  // IDTR limit, base
    page.writeUInt8(2, 0xca);
    page.writeUInt8(3, 0xcb);  // cpl, the byte after vmpl: not part of it
    const q: Record<string, number> = {
      efer: 0xd0, cr4: 0x148, cr3: 0x150, cr0: 0x158, rflags: 0x170, rip: 0x178, rsp: 0x1d8, rax: 0x1f8, rcx: 0x308, rdx: 0x310, rbx: 0x318,
      rbp: 0x328, rsi: 0x330, rdi: 0x338, r8: 0x340, r9: 0x348, r10: 0x350, r11: 0x358, r12: 0x360, r13: 0x368, r14: 0x370, r15: 0x378, sevFeatures: 0x3b0,
    };
    for (const off of Object.values(q)) page.writeBigUInt64LE(0x1111_0000_0000n | BigInt(off), off);
    const v = decodeVmsaPage(page);
    Object.keys(segs).forEach((name, i) => {
      expect(v[name as keyof typeof segs]).toEqual({ selector: 0x100 + i, attrib: 0x200 + i, limit: 0x30000 + i, base: 0x4000_0000n + BigInt(i) });
    });
    expect(v.gdtr).toEqual({ limit: 0x57, base: 0x6000n });
    expect(v.idtr).toEqual({ limit: 0xff, base: 0x8000n });
    expect(v.vmpl).toBe(2);
    for (const [name, off] of Object.entries(q)) {
      const got = name in v.gprs ? v.gprs[name as keyof typeof v.gprs] : (v as unknown as Record<string, bigint>)[name];
      expect([name, got]).toEqual([name, 0x1111_0000_0000n | BigInt(off)]);
    }
  });
});

// VMRUN loads the guest state from the save area (AMD APM Vol. 2 §15.5.1 "VMRUN": the processor
// loads the guest's CR0, CR3, CR4, EFER, RFLAGS, RIP, RSP, RAX, descriptor-table registers and
// segment state from it; an SEV-ES guest's other registers come from its encrypted VMSA too).
describe('VMRUN from a VMSA', () => {
  const machine = () => SnpPlatform.create({ memoryBytes: 16n << 20n, countInstructions: false }).machine;

  it('the launch VMSA: the reset state, every GPR 0 but RDX, whatever the vCPU held (APM Vol. 2 §14.1.5 Table 14-1)', () => {
    const m = machine();
    const gprs = GPRS.filter((r) => r !== 'rip' && r !== 'rflags');
    gprs.forEach((r, i) => { m.vcpu.regs[r] = 0x1000n + BigInt(i); });
    // A special-register access hands the run area's GPRs to the emulator: the vCPU now holds them
    // (Vcpu.enter alone would take the emulator's zeros over values written only to the run area).
    m.vcpu.readSpecial('cr0');
    const v = { ...bspResetVmsa(), rdx: 0xa10f11n, cr0: 0x10n };  // CR0: ET only, another real-mode CR0
    applyVmsa(m, v);
    const regs = m.vcpu.regs;
    expect(Object.fromEntries(gprs.map((r) => [r, regs[r]]))).toEqual(Object.fromEntries(gprs.map((r) => [r, r === 'rdx' ? 0xa10f11n : 0n])));
    expect([regs.rip, regs.rflags, m.vcpu.readSpecial('cr0')]).toEqual([0xfff0n, 0x2n, 0x10n]);
    expect(m.vcpu.codeSegment()).toMatchObject({ protectedMode: false, selector: 0xf000 });
    m.close();
  });

  it('TR is loaded from the VMSA: the launch VMSA\'s (base 0, limit FFFFh), and a guest-written one\'s selector, base and limit (sev_es_save_area tr at 0x90; Linux wakeup_cpu_via_vmgexit sets its limit), where a delivery below CPL 0 reads RSP0', () => {
    const m = machine();
    m.vcpu.writeSpecial('trSelector', 0x28n);
    m.vcpu.writeSpecial('trBase', 0x5000n);
    m.vcpu.writeSpecial('trLimit', 0n);
    applyVmsa(m, bspResetVmsa());
    expect([m.vcpu.readSpecial('trSelector'), m.vcpu.readSpecial('trBase'), m.vcpu.readSpecial('trLimit')]).toEqual([0n, 0n, 0xffffn]);
    m.close();
    const ap = machine();  // an AP's vCPU starts from its own reset state
    const page = flat32VmsaPage();
    page.writeUInt16LE(0x40, 0x90);
    page.writeUInt32LE(0x67, 0x94);
    page.writeBigUInt64LE(0x31000n, 0x98);
    applyGuestVmsa(ap, decodeVmsaPage(page), 'protected32');
    expect([ap.vcpu.readSpecial('trSelector'), ap.vcpu.readSpecial('trBase'), ap.vcpu.readSpecial('trLimit')]).toEqual([0x40n, 0x31000n, 0x67n]);
    ap.close();
  });

  it('the launch VMSA\'s EFER is loaded as it holds it (APM Vol. 2 §15.5.1: VMRUN loads EFER from the save area)', () => {
    const m = machine();
    applyVmsa(m, { ...bspResetVmsa(), efer: 0x1800n });  // SVME, NXE
    // NXE as written; SVME is the one bit the emulator's EFER cannot hold (README: EFER.SVME).
    expect(m.vcpu.readSpecial('efer')).toBe(0x800n);
    m.close();
  });

  it('the launch VMSA\'s CR4 is loaded as it holds it, whatever the vCPU held (APM Vol. 2 §15.5.1: VMRUN loads CR4 from the save area; sev-snp-measure cr4=0x40, MCE)', () => {
    const m = machine();
    m.vcpu.writeSpecial('cr4', 0x200n);
    applyVmsa(m, bspResetVmsa());
    expect(m.vcpu.readSpecial('cr4')).toBe(0x40n);
    m.close();
    const other = machine();
    applyVmsa(other, { ...bspResetVmsa(), cr4: 0x240n });  // MCE, OSFXSR
    expect(other.vcpu.readSpecial('cr4')).toBe(0x240n);
    other.close();
  });

  it('the launch VMSA\'s RFLAGS is loaded as it holds it (APM Vol. 2 §15.5.1: VMRUN loads RFLAGS from the save area)', () => {
    const m = machine();
    applyVmsa(m, { ...bspResetVmsa(), rflags: 0x46n });  // bit 1, PF, ZF
    expect(m.vcpu.regs.rflags).toBe(0x46n);
    m.close();
  });

  it('a guest-written VMSA\'s CR0 is loaded as written, the bits beyond PE too (APM Vol. 2 §15.5.1)', () => {
    const m = machine();
    const v = decodeVmsaPage(flat32VmsaPage());
    const cr0 = 0x50031n;  // PE, ET, NE, WP, AM
    expect(vmsaEntryState({ ...v, cr0 })).toEqual({ mode: 'protected32' });
    applyGuestVmsa(m, { ...v, cr0 }, 'protected32');
    expect(m.vcpu.readSpecial('cr0')).toBe(cr0);
    m.close();
  });

  it('a guest-written flat 32-bit VMSA: CR3, CR4, GDTR, IDTR, FS/GS bases, RSP, RIP and the GPRs as written; RFLAGS bit 1 always set', () => {
    const m = machine();
    const page = flat32VmsaPage();
    const v = decodeVmsaPage(page);
    const written = {
      ...v, cr3: 0x5000n, cr4: 0x20n, gdtr: { limit: 0x27, base: 0x6000n }, idtr: { limit: 0xfff, base: 0x7000n },
      fs: { ...v.fs, base: 0x12340000n }, gs: { ...v.gs, base: 0x56780000n }, rsp: 0x9000n, rip: 0x3000n, rflags: 0x200n,
      gprs: Object.fromEntries(Object.keys(v.gprs).map((r, i) => [r, 0x100n + BigInt(i)])) as typeof v.gprs,
    };
    expect(vmsaEntryState(written)).toEqual({ mode: 'protected32' });
    applyGuestVmsa(m, written, 'protected32');
    const c = m.vcpu;
    expect(['cr3', 'cr4', 'gdtrBase', 'gdtrLimit', 'idtrBase', 'idtrLimit', 'fsBase', 'gsBase'].map((r) => c.readSpecial(r as 'cr3')))
      .toEqual([0x5000n, 0x20n, 0x6000n, 0x27n, 0x7000n, 0xfffn, 0x12340000n, 0x56780000n]);
    expect([c.regs.rsp, c.regs.rip, c.regs.rflags]).toEqual([0x9000n, 0x3000n, 0x202n]);  // RFLAGS bit 1 reads as 1 (APM Vol. 2 §3.1.6)
    expect(Object.fromEntries(Object.keys(written.gprs).map((r) => [r, c.regs[r as 'rax']]))).toEqual(written.gprs);
    m.close();
  });
});

describe('launch digest', () => {
  it('a VMSA page is measured by its contents, page type 2 (Firmware ABI §8.17 PAGE_INFO)', () => {
    const sha384 = (b: Uint8Array) => createHash('sha384').update(b).digest();
    const vmsa = new Uint8Array(4096).fill(0x5a);
    const d = new LaunchDigest();
    d.extend('VMSA', 0xfffffffff000n, vmsa);
    const info = pageInfo(new Uint8Array(48), sha384(vmsa), 'VMSA', 0xfffffffff000n);
    expect(info[0x62]).toBe(2);
    expect(d.hex).toBe(sha384(info).toString('hex'));
  });
});

describe('launch digest: PAGE_INFO built here, byte by byte', () => {
  // PAGE_INFO (SEV-SNP Firmware ABI §8.17; AMD-ASPFW snp_launch_update_page_info_t, 0x70 bytes):
  // DIGEST_CUR[48] at 0x00, CONTENTS[48] at 0x30, LENGTH u16 at 0x60, PAGE_TYPE at 0x62, IMI_PAGE at
  // 0x63, reserved at 0x64, VMPL1/2/3_PERMS at 0x65/0x66/0x67, GPA u64 at 0x68. Page types: NORMAL 1,
  // VMSA 2, ZERO 3, UNMEASURED 4, SECRETS 5, CPUID 6; all but NORMAL and VMSA digest zero CONTENTS.
  const sha384 = (b: Uint8Array) => createHash('sha384').update(b).digest();
  const info = (cur: Uint8Array, contents: Uint8Array, type: number, gpa: bigint, perms: readonly [number, number, number]) => {
    const b = Buffer.alloc(0x70);
    b.set(cur, 0x00);
    b.set(contents, 0x30);
    b.writeUInt16LE(0x70, 0x60);
    b[0x62] = type;
    [b[0x65], b[0x66], b[0x67]] = perms;
    b.writeBigUInt64LE(gpa, 0x68);
    return b;
  };
  it.each([['ZERO', 3], ['UNMEASURED', 4], ['SECRETS', 5], ['CPUID', 6]] as const)('a %s page extends the digest with its page type %i and zero contents', (type, code) => {
    const perms = [0x0f, 0x03, 0x01] as const;
    const d = new LaunchDigest();
    d.extend('NORMAL', 0x1000n, new Uint8Array(4096).fill(0xa5), perms);
    d.extend(type, 0x7f000n, undefined, perms);
    const first = sha384(info(new Uint8Array(48), sha384(new Uint8Array(4096).fill(0xa5)), 1, 0x1000n, perms));
    expect(d.hex).toBe(sha384(info(first, new Uint8Array(48), code, 0x7f000n, perms)).toString('hex'));
  });

  it('a saved digest restores its value and whether LAUNCH_FINISH has run', () => {
    const d = new LaunchDigest();
    d.extend('ZERO', 0n, undefined);
    const saved = d.saveState();
    const before = d.hex;
    d.extend('ZERO', 0x1000n, undefined);
    d.finish();
    d.loadState(saved);
    expect([d.hex, d.finished]).toEqual([before, false]);
    d.extend('ZERO', 0x1000n, undefined);  // not refused: the restored launch is still open
  });
});

// SNP_LAUNCH_UPDATE of the BSP's VMSA (Firmware ABI §8.17): the firmware measures the page, type
// VMSA, at the GPA the RMP records for a VMSA (sev-snp-measure VMSA_GPA), into the digest
// LAUNCH_START began at zero; VMRUN then starts the BSP from it. After LAUNCH_FINISH the guest
// state is encrypted and no launch command takes another page.
describe('SnpPlatform.launchUpdateVmsa', () => {
  it('measures the VMSA page at 0xFFFFFFFFF000 as type VMSA, starts the BSP from it, and is refused after LAUNCH_FINISH', () => {
    const sha384 = (b: Uint8Array) => createHash('sha384').update(b).digest();
    const p = SnpPlatform.create({ memoryBytes: 16n << 20n, countInstructions: false });
    const v = { ...bspResetVmsa(), rdx: 0xa10f11n };
    p.launchUpdateVmsa(v);
    expect(p.launch.hex).toBe(sha384(pageInfo(new Uint8Array(48), sha384(vmsaPage(v)), 'VMSA', 0xffff_ffff_f000n)).toString('hex'));
    expect([p.machine.vcpu.regs.rip, p.machine.vcpu.regs.rdx]).toEqual([0xfff0n, 0xa10f11n]);
    expect(p.machine.vcpu.codeSegment()).toMatchObject({ protectedMode: false, selector: 0xf000 });
    const digest = p.launchFinish();
    expect(digest).toBe(p.launch.hex);
    expect(() => p.launchUpdateVmsa(v)).toThrow();
    expect(p.launch.hex).toBe(digest);
    p.machine.close();
  });
});

describe('launch digest after SNP_LAUNCH_FINISH', () => {
  it('refuses every further page, measured or not, and keeps the digest (Firmware ABI §8.17: LAUNCH_UPDATE only before LAUNCH_FINISH)', () => {
    const d = new LaunchDigest();
    d.extend('NORMAL', 0x1000n, new Uint8Array(4096).fill(7));
    const digest = d.finish();
    expect(() => d.extend('ZERO', 0x2000n, undefined)).toThrow(/finished/);
    expect(() => d.extendRange('ZERO', 0x2000n, 2, undefined)).toThrow(/finished/);
    expect(d.hex).toBe(digest);
    expect(d.finished).toBe(true);
  });
});
