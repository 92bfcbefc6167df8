// Issue 9 row 15: CPUID in an SNP guest raises #VC 0x72; the guest answers from the CPUID page
// the firmware checked at launch, or asks the VMM through the GHCB (MSR protocol 0x004/0x005 or
// the GHCB page) (GHCB spec §2.3.1, §4.1.1; Linux do_vc_no_ghcb; SEV-SNP ABI §8.17.2).
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { decodeCpuidPage, encodeCpuidPage, SEV_RET_INVALID_PARAM, type CpuidEntry } from '../../../src/platform/snp/cpuid-page.js';
import { ghcbMsr } from '../../../src/platform/snp/ghcb-msr.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { honestCpuidPage } from '../../../src/vmm/snp/honest-vmm.js';
import { REGISTER_GHCB, msrProtocol, privateIdentityWithGhcb, snpGuest } from '../../helpers/snp-guest.js';

describe('CPUID in an SNP guest', () => {
  it('raises #VC with error code 0x72 and RIP at the CPUID, which has not run', () => {
    const g = snpGuest(`
      mov eax, 0x8000001f
      xor ecx, ecx
      mov ebx, 0x1234
      lea r11, [rip + 1f]
    1:
      cpuid
      hlt`, { vcHandler: 'pop r15\nmov r12, [rsp]\nmov r13, 29\nhlt' });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    const r = g.vm.vcpu.regs;
    expect([r.r13, r.r15]).toEqual([29n, 0x72n]);
    expect(r.r12).toBe(r.r11);           // the #VC frame's RIP is the CPUID instruction
    expect(r.rbx).toBe(0x1234n);          // CPUID did not execute
    expect(g.trace.ofType('inject-vc')[0]).toMatchObject({ errorCode: 0x72n });
  });

  it('a #VC handler like Linux do_vc_no_ghcb answers it through the MSR protocol and resumes after it', () => {
    // The handler asks for EBX (register 1) of the leaf in EAX, then skips the 2-byte CPUID.
    const handler = `
      pop r15
      mov r14, rax
      shl r14, 32
      or r14, 0x40000004
      mov ecx, 0xc0010130
      mov rax, r14
      mov rdx, r14
      shr rdx, 32
      wrmsr
      .byte 0xf3,0x0f,0x01,0xd9
      rdmsr
      mov rbx, rdx
      add qword ptr [rsp], 2
      iretq`;
    const g = snpGuest(`
      mov eax, 0x8000001f
      xor ecx, ecx
      cpuid
      mov r9, rbx
      hlt`, { vcHandler: handler });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r9 & 0x3fn).toBe(51n);
    expect(g.trace.ofType('ghcb-msr')[0]).toMatchObject({ request: 'cpuid' });
  });

  it('the GHCB page CPUID call (exit code 0x72) returns all four registers', () => {
    // Valid bitmap bit = offset / 8: RAX 0x1f8 -> bit 63, RCX 0x308 -> bit 97, exit code and
    // EXITINFO1/2 -> bits 114..116.
    const g = snpGuest(`
      ${REGISTER_GHCB}
      mov rdi, 0x30000
      mov qword ptr [rdi+0x390], 0x72
      mov qword ptr [rdi+0x398], 0
      mov qword ptr [rdi+0x3a0], 0
      mov rax, 0x8000001f
      mov [rdi+0x1f8], rax
      mov qword ptr [rdi+0x308], 0
      mov byte ptr [rdi+0x3f7], 0x80
      mov byte ptr [rdi+0x3fc], 0x02
      mov byte ptr [rdi+0x3fe], 0x1c
      mov ecx, 0xc0010130
      mov eax, 0x30000
      xor edx, edx
      wrmsr
      .byte 0xf3,0x0f,0x01,0xd9
      mov r8, [rdi+0x398]
      mov r9, [rdi+0x318]
      mov r10, [rdi+0x1f8]
      hlt`, { mappings: privateIdentityWithGhcb() });
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.r8).toBe(0n);
    expect(g.vm.vcpu.regs.r9 & 0x3fn).toBe(51n);   // EBX: C-bit position
    expect(g.vm.vcpu.regs.r10 & 0x12n).toBe(0x12n); // EAX: SEV and SNP
  });

  it('the MSR protocol CPUID request 0x004 answers one register per call', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.cpuidReq(0x8000001f, 1))}\nhlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(g.vm.vcpu.regs.rax & 0xfffn).toBe(0x005n);
    expect((g.vm.vcpu.regs.rax >> 32n) & 0x3fn).toBe(51n);
  });

  // An SNP part (our CPU reports Genoa, family 19h model 11h) has VMPLs 0-3: APM Vol. 3 CPUID
  // Fn8000_001F EAX[5] VMPL supported, EBX[15:12] number of VMPLs (Linux kcpuid cpuid.csv
  // vm_permission_levels, vmpl_count; `snphost ok` on Genoa: "Number of VMPLs: 4").
  it('Fn8000_001F reports VMPL support: EAX bit 5 set, EBX[15:12] four VMPLs', () => {
    const g = snpGuest(`${msrProtocol(ghcbMsr.cpuidReq(0x8000001f, 0))}\nmov r12, rax\n${msrProtocol(ghcbMsr.cpuidReq(0x8000001f, 1))}\nhlt`);
    expect(g.run()).toMatchObject({ outcome: 'done' });
    expect(((g.vm.vcpu.regs.r12 >> 32n) >> 5n) & 1n).toBe(1n);
    expect(((g.vm.vcpu.regs.rax >> 32n) >> 12n) & 0xfn).toBe(4n);
  });
});

describe('the CPUID page (SNP_LAUNCH_UPDATE page type CPUID)', () => {
  const GPA = 0x5000n;
  function launch(table: Uint8Array) {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    p.rmpUpdate(GPA, { assigned: true, pageSize: '4k', immutable: true, gpa: GPA, asid: p.asid });
    return { vm, p, r: p.launchUpdatePage(GPA, 'CPUID', table) };
  }

  it("the CPU's own answers pass the firmware's check: the page is validated guest memory holding the table", () => {
    const table = honestCpuidPage(51);
    const { vm, p, r } = launch(table);
    expect(r).toMatchObject({ rc: 0, result: 'SUCCESS' });
    expect(p.rmp.lookup(GPA)).toMatchObject({ validated: true, immutable: false });
    expect([...vm.memory.read(GPA, 4096)]).toEqual([...table]);
    vm.close();
  });

  it('a table that adds features or moves the C-bit fails with INVALID_PARAM and comes back corrected as AMD\'s firmware corrects it', () => {
    const good = decodeCpuidPage(honestCpuidPage(51)).entries;
    // Fn8000_001F: EAX is a mask of the CPU's features, EBX[5:0] (the C-bit) is exact.
    const bad = good.map((e) => (e.eaxIn === 0x8000001f ? { ...e, eax: e.eax | 0x40, ebx: (e.ebx & ~0x3f) | 47 } : e));
    const { vm, p, r } = launch(encodeCpuidPage(bad));
    expect(r).toMatchObject({ rc: SEV_RET_INVALID_PARAM, result: 'INVALID_PARAM' });
    // FN8000001F_CUSTOM "Clear and OR the strict part": EBX[11:6] cleared and the C-bit 0x33 ORed
    // into 47 (0x2f), so EBX[5:0] comes back 0x3f and the reduction (1) as 0; four VMPLs kept.
    const corrected = good.map((e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: 0x3f | (4 << 12) } : e));
    expect(decodeCpuidPage(r.corrected!).entries).toEqual(corrected);
    expect(p.rmp.lookup(GPA)).toMatchObject({ validated: false, immutable: true }); // still pre-guest
    expect(p.trace.ofType('launch-cpuid-rejected')[0]).toMatchObject({ leaves: [0x8000001f] });
    vm.close();
  });

  // The rules of AMD's SEV firmware (amd/AMD-ASPFW cpuid_lookup.c) for what the VMM may put in
  // the table: each case is one entry changed from the CPU's own answer.
  const cases: { name: string; change: (e: CpuidEntry) => CpuidEntry | undefined; accepted: boolean; corrected?: (e: CpuidEntry) => CpuidEntry }[] = [
    { name: 'Fn0000_0000 vendor string (unchecked)', accepted: true, change: (e) => (e.eaxIn === 0 ? { ...e, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 } : e) },
    { name: 'Fn0000_0000 highest leaf lowered (lessThan)', accepted: true, change: (e) => (e.eaxIn === 0 ? { ...e, eax: 1 } : e) },
    { name: 'Fn0000_0000 highest leaf raised (lessThan)', accepted: false, change: (e) => (e.eaxIn === 0 ? { ...e, eax: 0x20 } : e) },
    { name: 'Fn8000_001F EBX[11:6] physical-address reduction (unchecked)', accepted: true, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0xfc0) | (5 << 6) } : e) },
    { name: 'Fn8000_001F EBX[15:12] VMPL count above the CPU\'s 4 (lessThan)', accepted: false, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0xf000) | (5 << 12) } : e) },
    { name: 'Fn8000_001F EBX[15:12] VMPL count lowered to 1 (lessThan)', accepted: true, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0xf000) | (1 << 12) } : e) },
    { name: 'Fn8000_001F EAX VMPL support (bit 5) dropped (mask)', accepted: true, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, eax: e.eax & ~(1 << 5) } : e) },
    { name: 'Fn8000_001F EDX minimum SEV ASID (unchecked)', accepted: true, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, edx: 0x100 } : e) },
    { name: 'Fn8000_001F EAX feature the CPU lacks (mask)', accepted: false, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, eax: e.eax | (1 << 24) } : e) },
    // Only flagged (sanitize_cpuid_list): the firmware does not rewrite the reserved field.
    { name: 'a reserved field set', accepted: false, change: (e) => (e.eaxIn === 0 ? { ...e, reserved: 1n } : e), corrected: (e) => (e.eaxIn === 0 ? { ...e, reserved: 1n } : e) },
    // FN00000001_CUSTOM: family/model/stepping not above the CPU's, CLFLUSH exact, ECX/EDX a subset
    // but for OSXSAVE and the hypervisor bit.
    { name: 'Fn0000_0001 EAX an older stepping (FMS not above)', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, eax: e.eax & ~0xf } : e) },
    { name: 'Fn0000_0001 EAX a later stepping (FMS above)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: e.eax + 1 } : e) },
    { name: 'Fn0000_0001 EAX a later family (FMS above)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: e.eax + (1 << 20) } : e) },
    // The model number compare_FMS uses is cpuid_lookup.h FMS_MODEL: EMODEL [19:16] + BMODEL [7:4],
    // 1 + 1 = 2 for the CPU's 00A10F11h (not its architectural model 11h).
    { name: 'Fn0000_0001 EAX model 03h of the same family (FMS_MODEL 3 above 2)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: 0x00a00f30 } : e) },
    { name: 'Fn0000_0001 EAX model 30h (FMS_MODEL 3 above 2)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: 0x00a30f00 } : e) },
    { name: 'Fn0000_0001 EAX model 20h, the same stepping (FMS_MODEL 2, equal)', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, eax: 0x00a20f01 } : e) },
    // compare_FMS: a lower family passes whatever the model and stepping.
    { name: 'Fn0000_0001 EAX an older family with a higher model and stepping', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, eax: 0x00900fff } : e) },
    // FN00000001_EAX_RESERVED 0xF000F000 and FN00000001_EBX_RESERVED 0xFF are "Zeros mask": set, they are cleared and the page fails.
    { name: 'Fn0000_0001 EAX reserved bit 12 set', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: e.eax | 0x1000 } : e) },
    { name: 'Fn0000_0001 EBX[7:0] set (reserved: zero)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, ebx: e.ebx | 0x5 } : e) },
    { name: 'Fn0000_0001 EBX APIC ID and processor count (unchecked)', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, ebx: (e.ebx & 0xffff) | (7 << 24) | (4 << 16) } : e) },
    { name: 'Fn0000_0001 EBX CLFLUSH size (exact)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, ebx: (e.ebx & ~0xff00) | (16 << 8) } : e) },
    { name: 'Fn0000_0001 ECX OSXSAVE (unchecked)', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, ecx: e.ecx | (1 << 27) } : e) },
    { name: 'Fn0000_0001 ECX RDRAND dropped (mask)', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, ecx: e.ecx & ~(1 << 30) } : e) },
    { name: 'Fn0000_0001 ECX AVX the CPU lacks (mask)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, ecx: e.ecx | (1 << 28) } : e) },
    { name: 'Fn0000_0001 EDX a feature the CPU lacks (mask)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, edx: (e.edx | (1 << 28)) >>> 0 } : e) },
    // The fields' widths and the reserved masks of cpuid_lookup.h (FN00000001_EAX_*_MASK,
    // FN00000001_EAX_RESERVED 0xF000F000, FN00000001_EBX_CFLUSH_MASK 0xFF00, FN00000001_EBX_RESERVED 0xFF).
    { name: 'Fn0000_0001 EAX stepping 9 (FMS_STEPPING is all of EAX[3:0], 9 above 1)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: (e.eax & ~0xf) | 9 } : e) },
    { name: 'Fn0000_0001 EAX extended family 1Ah (FMS_FAMILY: EAX[27:20] + [11:8] = 29h above 19h)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: (e.eax & ~0x0ff00000) | (0x1a << 20) } : e) },
    { name: 'Fn0000_0001 EAX base family Eh, extended family Bh (FMS_FAMILY Eh + Bh = 19h, the same)', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, eax: (e.eax & ~0x0ff00f00) | (0xb << 20) | (0xe << 8) } : e) },
    { name: 'Fn0000_0001 EAX reserved bit 28 set', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, eax: e.eax | (1 << 28) } : e) },
    { name: 'Fn0000_0001 EBX CLFLUSH size 88h (exact over all of [15:8])', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, ebx: (e.ebx & ~0xff00) | (0x88 << 8) } : e) },
    { name: 'Fn0000_0001 EBX bit 7 set (reserved: zero)', accepted: false, change: (e) => (e.eaxIn === 1 ? { ...e, ebx: e.ebx | 0x80 } : e) },
    { name: 'Fn0000_0001 EDX MMX dropped (mask)', accepted: true, change: (e) => (e.eaxIn === 1 ? { ...e, edx: e.edx & ~(1 << 23) } : e) },
    // lookup_table CPUID_Fn80000000: EAX CPUID_RULE_LESSTHAN (cpuid_entry_rule_check: *reg > valmask,
    // unsigned), EBX/ECX/EDX CPUID_RULE_UNCHECKED.
    { name: 'Fn8000_0000 EAX lowered to 0 (lessThan, an unsigned compare)', accepted: true, change: (e) => (e.eaxIn === 0x80000000 ? { ...e, eax: 0 } : e) },
    { name: 'Fn8000_0000 EAX raised to 8000_0028h (lessThan)', accepted: false, change: (e) => (e.eaxIn === 0x80000000 ? { ...e, eax: 0x80000028 } : e) },
    { name: 'Fn8000_0000 vendor string (unchecked)', accepted: true, change: (e) => (e.eaxIn === 0x80000000 ? { ...e, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 } : e) },
    // FN8000001F_CUSTOM: ECX unchecked; EBX[11:6] (FN8000001F_EBX_UNCHECKED_MASK 0x3F << 6) unchecked;
    // a VMPL count above FN8000001F_EBX_VMPL_SUP_MAX (mask 0xF << 12) is written back as that maximum.
    { name: 'Fn8000_001F ECX encrypted guests (unchecked)', accepted: true, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ecx: e.ecx + 1 } : e) },
    { name: 'Fn8000_001F EBX[11:6] zero, below the CPU\'s 1 (unchecked)', accepted: true, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: e.ebx & ~0xfc0 } : e) },
    { name: 'Fn8000_001F EBX[11:6] all set (unchecked)', accepted: true, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0xfc0) | (0x3f << 6) } : e) },
    { name: 'Fn8000_001F EBX[15:12] VMPL count 8 (comes back as the CPU\'s 4)', accepted: false, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0xf000) | (8 << 12) } : e) },
    // A C-bit whose bits include the CPU's 0x33 (0x37) comes back unchanged by the OR, and the
    // table still fails: the check compares, the correction only ORs.
    { name: 'Fn8000_001F EBX C-bit 0x37, [11:6] zero (fails, comes back as it was)', accepted: false, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0xfff) | 0x37 } : e), corrected: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0xfff) | 0x37 } : e) },
    // A reserved bit fails the strict compare too (ebx_check keeps [31:16]): [11:6] is cleared
    // with the OR, then the reserved bit with the "Zeros mask".
    { name: 'Fn8000_001F EBX reserved bit 16 set (EBX[11:6] lost in the correction)', accepted: false, change: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: e.ebx | (1 << 16) } : e), corrected: (e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: e.ebx & ~0xfc0 } : e) },
  ];
  it.each(cases)('$name: accepted $accepted', ({ change, accepted, corrected }) => {
    const good = decodeCpuidPage(honestCpuidPage(51)).entries;
    const { vm, r } = launch(encodeCpuidPage(good.map((e) => change(e)!)));
    expect(r.rc).toBe(accepted ? 0 : SEV_RET_INVALID_PARAM);
    if (!accepted) expect(decodeCpuidPage(r.corrected!).entries).toEqual(good.map(corrected ?? ((e) => e)));
    vm.close();
  });

  it('a standard or extended leaf the CPU does not have must be all zero; a hypervisor leaf is not checked', () => {
    const good = decodeCpuidPage(honestCpuidPage(51)).entries;
    const extra = (eaxIn: number): CpuidEntry => ({ eaxIn, ecxIn: 0, xcr0In: 0n, xssIn: 0n, eax: 0x4b4d564b, ebx: 0x564b4d56, ecx: 0x4b4d, edx: 1, reserved: 0n });
    const hypervisor = launch(encodeCpuidPage([...good, extra(0x40000000)]));
    expect(hypervisor.r.rc).toBe(0);
    hypervisor.vm.close();
    // The ranges end at Fn0000_FFFF and Fn8000_FFFF (sanitize_cpuid_list): past them, unchecked.
    for (const leaf of [0x10000, 0x80010000]) {
      const beyond = launch(encodeCpuidPage([...good, extra(leaf)]));
      expect(beyond.r.rc).toBe(0);
      beyond.vm.close();
    }
    for (const leaf of [0x7, 0xffff, 0x80000002, 0x8000ffff]) {
      const { vm, r } = launch(encodeCpuidPage([...good, extra(leaf)]));
      expect(r.rc).toBe(SEV_RET_INVALID_PARAM);
      expect(decodeCpuidPage(r.corrected!).entries.at(-1)).toMatchObject({ eaxIn: leaf, eax: 0, ebx: 0, ecx: 0, edx: 0 });
      vm.close();
    }
  });

  it('a reserved field set on an entry otherwise right is a mismatch of that leaf, and comes back as it was', () => {
    // AMD-ASPFW sanitize_cpuid_list: a non-zero reserved field only sets `failed`; the
    // sanitized copy the firmware writes back (sev_mcmd.c copy_to_x86) still holds it.
    const good = decodeCpuidPage(honestCpuidPage(51)).entries;
    const proposed = good.map((e) => (e.eaxIn === 0x80000000 ? { ...e, reserved: 1n } : e));
    const { vm, p, r } = launch(encodeCpuidPage(proposed));
    expect(r.rc).toBe(SEV_RET_INVALID_PARAM);
    expect(p.trace.ofType('launch-cpuid-rejected')[0]).toMatchObject({ leaves: [0x80000000] });
    expect(decodeCpuidPage(r.corrected!).entries).toEqual(proposed);
    vm.close();
  });

  it('entries are matched by (EAX_IN, ECX_IN): a sub-leaf the firmware does not list must be all zero, even of a leaf it checks', () => {
    // AMD-ASPFW sanitize_cpuid_entry looks up lookup_table[i].eax_in == EAX_IN && .ecx_in ==
    // ECX_IN for every leaf, indexed or not; Fn8000_001F has only its x00 entry.
    const good = decodeCpuidPage(honestCpuidPage(51)).entries;
    const sevLeaf = good.find((e) => e.eaxIn === 0x8000001f)!;
    const { vm, p, r } = launch(encodeCpuidPage([...good, { ...sevLeaf, ecxIn: 1 }]));
    expect(r.rc).toBe(SEV_RET_INVALID_PARAM);
    expect(p.trace.ofType('launch-cpuid-rejected')[0]).toMatchObject({ leaves: [0x8000001f] });
    expect(decodeCpuidPage(r.corrected!).entries.at(-1)).toMatchObject({ eaxIn: 0x8000001f, ecxIn: 1, eax: 0, ebx: 0, ecx: 0, edx: 0 });
    vm.close();
    const zero = launch(encodeCpuidPage([...good, { ...sevLeaf, ecxIn: 1, eax: 0, ebx: 0, ecx: 0, edx: 0 }]));
    expect(zero.r.rc).toBe(0);
    zero.vm.close();
  });

  it('bytes past the last entry are not looked at, and a rejected page comes back with them as they were', () => {
    // sanitize_cpuid_list walks COUNT entries; the scratch copy written back is the whole page.
    const page = honestCpuidPage(51);
    page[4095] = 0xa5;
    const accepted = launch(page);
    expect(accepted.r.rc).toBe(0);
    accepted.vm.close();
    const bad = encodeCpuidPage(decodeCpuidPage(honestCpuidPage(51)).entries.map((e) => (e.eaxIn === 0 ? { ...e, eax: 0x20 } : e)));
    bad[4095] = 0xa5;
    const { vm, r } = launch(bad);
    expect(r.rc).toBe(SEV_RET_INVALID_PARAM);
    expect(r.corrected![4095]).toBe(0xa5);
    vm.close();
  });

  it('a table whose header reserved bytes are not zero is refused (Firmware ABI CPUID page: count, then reserved)', () => {
    const page = honestCpuidPage(51);
    page[8] = 1;
    const { vm, r } = launch(page);
    expect(r.rc).toBe(SEV_RET_INVALID_PARAM);
    expect(r.corrected).toBeUndefined(); // refused before the entries: nothing written back (sev_mcmd.c)
    vm.close();
  });

  it('a table of 64 entries, SNP_CPUID_COUNT_MAX, is accepted (sev_mcmd.c refuses only count > SNP_CPUID_COUNT_MAX)', () => {
    const good = decodeCpuidPage(honestCpuidPage(51)).entries;
    // Hypervisor-range leaves fill the table: sanitize_cpuid_list does not check them.
    const fill = Array.from({ length: 64 - good.length }, (_, i): CpuidEntry => ({ eaxIn: 0x40000000 + i, ecxIn: 0, xcr0In: 0n, xssIn: 0n, eax: 0, ebx: 0, ecx: 0, edx: 0 }));
    const { vm, r } = launch(encodeCpuidPage([...good, ...fill]));
    expect(r).toMatchObject({ rc: 0, result: 'SUCCESS' });
    vm.close();
  });

  it('either header reserved field set is refused: the u32 after COUNT and the u64 after it (sev_mcmd.c snp_launch_update_cpuid_page_t reserved, reserved2)', () => {
    for (const at of [4, 7, 8, 15]) {
      const page = honestCpuidPage(51);
      page[at] = 1;
      const { vm, r } = launch(page);
      expect(r.rc, `byte ${at}`).toBe(SEV_RET_INVALID_PARAM);
      expect(r.corrected).toBeUndefined();
      vm.close();
    }
  });

  it('an entry is laid out as AMD-ASPFW cpuid_lookup.h snp_cpuid_function_t: EAX_IN, ECX_IN (u32), XCR0_IN, XSS_IN (u64), EAX..EDX (u32), reserved (u64)', () => {
    const entry: CpuidEntry = { eaxIn: 0xd, ecxIn: 1, xcr0In: 0x0102030405060708n, xssIn: 0x1112131415161718n, eax: 0x21, ebx: 0x22, ecx: 0x23, edx: 0x24, reserved: 0x3132333435363738n };
    const page = encodeCpuidPage([entry]);
    const v = new DataView(page.buffer, page.byteOffset, page.byteLength);
    const at = 16; // after COUNT (u32), reserved (u32), reserved2 (u64)
    expect(v.getUint32(0, true)).toBe(1);
    expect([v.getUint32(at, true), v.getUint32(at + 4, true)]).toEqual([0xd, 1]);
    expect([v.getBigUint64(at + 8, true), v.getBigUint64(at + 16, true)]).toEqual([0x0102030405060708n, 0x1112131415161718n]);
    expect([24, 28, 32, 36].map((o) => v.getUint32(at + o, true))).toEqual([0x21, 0x22, 0x23, 0x24]);
    expect(v.getBigUint64(at + 40, true)).toBe(0x3132333435363738n);
    expect(decodeCpuidPage(page)).toEqual({ count: 1, entries: [entry] });
  });

  it('a table of more than 64 entries is refused, with nothing written back', () => {
    const page = new Uint8Array(4096);
    new DataView(page.buffer).setUint32(0, 65, true);
    const { vm, r } = launch(page);
    expect(r.rc).toBe(SEV_RET_INVALID_PARAM);
    expect(r.corrected).toBeUndefined();
    vm.close();
  });

  it('an empty table (COUNT 0) is accepted and launched: the guest, not the firmware, refuses it', () => {
    // AMD-ASPFW sev_mcmd.c (SNP_LAUNCH_UPDATE, page type CPUID) refuses only a header with
    // reserved bits set or COUNT > SNP_CPUID_COUNT_MAX; sanitize_cpuid_list over 0 entries
    // succeeds. Linux setup_cpuid_table is what refuses COUNT 0 (GHCB_TERM_CPUID).
    const page = new Uint8Array(4096);
    page[4095] = 0xa5; // bytes past COUNT entries are not looked at either
    const { vm, p, r } = launch(page);
    expect(r).toMatchObject({ rc: 0, result: 'SUCCESS' });
    expect(p.rmp.lookup(GPA)).toMatchObject({ validated: true, immutable: false });
    expect([...vm.memory.read(GPA, 4096)]).toEqual([...page]);
    vm.close();
  });
});
