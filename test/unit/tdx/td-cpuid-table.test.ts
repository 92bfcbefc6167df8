// The TDX module's CPUID table as a TD sees it, row by row, against intel/tdx-module TDX_1.5.01:
// include/auto_gen/cpuid_configurations.c (cpuid_lookup[]: leaf/subleaf, faulting, verify_mask/
// verify_value, fixed1, fixed0_or_dynamic; cpuid_configurable[]: config_direct, allow_direct;
// xfam_mask_*), src/common/helpers/helpers.c get_cpuid_lookup_entry, src/td_dispatcher/vm_exits/
// td_cpuid.c td_cpuid_exit and src/vmm_dispatcher/api_calls/tdh_mng_init.c
// read_and_set_cpuid_configurations. The constants below are copied from those files.
import { describe, expect, it } from 'vitest';
import { TD_XFAM, tdCpuid, type CpuidAnswer } from '../../../src/platform/tdx/td-cpuid.js';
import { tdcall, tdxModule } from '../../helpers/tdx-module.js';

const ANY = undefined;
/** Dynamic state with every dynamic bit clear: vCPU 0, CR4 0, not in 64-bit mode. */
const CLEAR = { vcpuIndex: 0, cr4: 0n, in64BitMode: false };
const answer = (leaf: number, subleaf = 0): readonly number[] | 've' => {
  const a: CpuidAnswer = tdCpuid(leaf, subleaf, CLEAR);
  return a.kind === 'answer' ? a.regs : 've';
};
const hex = (n: number) => `0x${n.toString(16)}`;

// cpuid_lookup[] sorted by leaf and subleaf (CPUID_SUBLEAF_NA: ANY); true: `.faulting = true`.
const LOOKUP: readonly (readonly [number, number | undefined, boolean?])[] = [
  [0x0, ANY], [0x1, ANY], [0x3, ANY], [0x4, 0x0], [0x4, 0x1], [0x4, 0x2], [0x4, 0x3], [0x4, 0x4], [0x5, ANY],
  [0x6, ANY, true], [0x7, 0x0], [0x7, 0x1], [0x7, 0x2], [0x8, ANY], [0xa, ANY],
  [0xd, 0x0], [0xd, 0x1], [0xd, 0x2], [0xd, 0x3], [0xd, 0x4], [0xd, 0x5], [0xd, 0x6], [0xd, 0x7], [0xd, 0x8], [0xd, 0x9],
  [0xd, 0xa], [0xd, 0xb], [0xd, 0xc], [0xd, 0xd], [0xd, 0xe], [0xd, 0xf], [0xd, 0x10], [0xd, 0x11], [0xd, 0x12],
  [0xe, ANY], [0x11, ANY], [0x12, ANY], [0x13, ANY], [0x14, 0x0], [0x14, 0x1], [0x15, ANY], [0x19, ANY], [0x1c, ANY],
  [0x1d, 0x0], [0x1d, 0x1], [0x1e, ANY],
  [0x1f, 0x0, true], [0x1f, 0x1, true], [0x1f, 0x2, true], [0x1f, 0x3, true], [0x1f, 0x4, true], [0x1f, 0x5, true],
  [0x20, ANY], [0x21, 0x0], [0x22, ANY], [0x23, 0x0], [0x23, 0x1], [0x23, 0x2], [0x23, 0x3],
  [0x80000000, ANY], [0x80000001, ANY], [0x80000006, ANY, true], [0x80000007, ANY], [0x80000008, ANY],
];

describe('cpuid_lookup[]: which leaves and subleaves the module answers (td_cpuid_exit)', () => {
  it.each(LOOKUP.map(([leaf, subleaf, faulting]) => [hex(leaf), subleaf === ANY ? 'any' : hex(subleaf), faulting === true, leaf, subleaf] as const))(
    'leaf %s subleaf %s: faulting %s', (_l, _s, faulting, leaf, subleaf) => {
      // A CPUID_SUBLEAF_NA row answers every subleaf (get_cpuid_lookup_entry).
      for (const s of subleaf === ANY ? [0, 1, 0x55, 0xffffffff] : [subleaf]) {
        expect(answer(leaf, s) === 've', `CPUID(${hex(leaf)}, ${hex(s)})`).toBe(faulting);
      }
    });

  it('a leaf or subleaf cpuid_lookup[] has no row for is #VE (CPUID_LOOKUP_IDX_NA)', () => {
    // Leaves at or below the last base leaf 0x23 and in the extended range up to 0x8000_0008 are
    // looked up as they are; these have no row.
    for (const leaf of [0x2, 0x9, 0xb, 0xc, 0xf, 0x10, 0x16, 0x17, 0x18, 0x1a, 0x1b, 0x80000002, 0x80000003, 0x80000004, 0x80000005]) {
      expect(answer(leaf), `leaf ${hex(leaf)}`).toBe('ve');
    }
    for (const [leaf, subleaf] of [[0x4, 0x5], [0x7, 0x3], [0xd, 0x13], [0x14, 0x2], [0x1d, 0x2], [0x1f, 0x6], [0x21, 0x1], [0x23, 0x4]] as const) {
      expect(answer(leaf, subleaf), `CPUID(${hex(leaf)}, ${hex(subleaf)})`).toBe('ve');
    }
  });

  // td_cpuid_exit: outside CPUID_RESERVED_START..END (0x4000_0000..0x4FFF_FFFF), a leaf above the
  // last extended leaf, or above the last base leaf (CPUID_LAST_BASE_LEAF 0x23) and below
  // 0x8000_0000, becomes the last base leaf; the subleaf stays as it was.
  it('a leaf above its range is looked up as leaf 0x23 with its own subleaf; the hypervisor range is not', () => {
    for (const leaf of [0x24, 0x3fffffff, 0x50000000, 0x7fffffff, 0x80000009, 0xffffffff]) {
      for (const subleaf of [0, 3]) expect(answer(leaf, subleaf), `CPUID(${hex(leaf)}, ${subleaf})`).toEqual(answer(0x23, subleaf));
      expect(answer(leaf, 4), `CPUID(${hex(leaf)}, 4): leaf 0x23 has subleaves 0..3`).toBe('ve');
    }
    for (const leaf of [0x40000000, 0x40000100, 0x4fffffff]) expect(answer(leaf), hex(leaf)).toBe('ve');
    expect(answer(0x23, 0)).not.toBe('ve');
  });

  // TDG.VM.RD of a CPUID_VALUES element finds the row with get_cpuid_lookup_entry (metadata_td.c):
  // a row whose CPUID_VALID is 0 (faulting, tdh_mng_init.c) is NOT_READABLE, a missing row
  // FIELD_ID_INCORRECT. Field code: subleaf in bits 7:1, leaf in 15:9 (as td-metadata.test.ts).
  it('TDG.VM.RD of CPUID_VALUES: the last subleaf of leaves 0xD and 0x1F is a row, the next is not', () => {
    const m = tdxModule();
    const FIELD_ID_INCORRECT = 0xc0000c0000000000n;
    const FIELD_NOT_READABLE = 0xc0000c0200000000n;
    const read = (leaf: number, subleaf: number) =>
      tdcall(m, { rax: 7n, rcx: 0n, rdx: 0x9410000300000000n | BigInt(((leaf & 0x7f) << 9) | (subleaf << 1)), r8: 0n }).regs.rax;
    expect(read(0x1f, 0x5)).toBe(FIELD_NOT_READABLE);
    expect(read(0x1f, 0x6)).toBe(FIELD_ID_INCORRECT);
    expect(read(0xd, 0x12)).toBe(FIELD_NOT_READABLE);
    expect(read(0xd, 0x13)).toBe(FIELD_ID_INCORRECT);
  });
});

describe('the bits of each answer the module fixes (cpuid_lookup[].fixed1 / fixed0_or_dynamic)', () => {
  // Every row with a fixed1 or fixed0_or_dynamic bit in the registers it answers: [leaf, subleaf,
  // fixed1, fixed0_or_dynamic], EAX..EDX. Rows tdh_mng_init.c zeroes for this TD (leaf 5 without
  // MONITOR, 0xA without PERFMON, 0xD subleaves of XFAM bits the TD lacks, 0x14 without PT, 0x19,
  // 0x1C without LBR, 0x1D without AMX) read 0 whatever their bits; they are left out. So is the EBX
  // of leaf 0xD subleaves 0 and 1, which td_cpuid_exit reads from the CPU.
  const FIXED: readonly (readonly [number, number | undefined, readonly number[], readonly number[]])[] = [
    [0x0, ANY, [0x23, 0, 0, 0], [0xffffffdc, 0, 0, 0]],
    [0x1, ANY, [0, 0, 0x80000000, 0x200], [0xf000c000, 0xff0000ff, 0x8010060, 0x40120400]],
    [0x3, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x4, 0x0, [0, 0, 0, 0], [0x3c00, 0, 0, 0x4]],
    [0x4, 0x1, [0, 0, 0, 0], [0x3c00, 0, 0, 0x4]],
    [0x4, 0x2, [0, 0, 0, 0], [0x3c00, 0, 0, 0x4]],
    [0x4, 0x3, [0, 0, 0, 0], [0x3c00, 0, 0, 0xfffffff8]],
    [0x4, 0x4, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x7, 0x0, [0, 0, 0, 0], [0, 0x404006, 0x643e8010, 0x2298c3]],
    [0x7, 0x1, [0, 0, 0, 0], [0xffffe2cf, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x7, 0x2, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffc0]],
    [0x8, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0xd, 0x0, [0, 0, 0, 0], [0xfff9fd18, 0, 0, 0xffffffff]],
    [0xd, 0x1, [0, 0, 0, 0], [0xffffffe0, 0, 0xffff26ff, 0xffffffff]],
    [0xd, 0x2, [0, 0, 0, 0], [0, 0, 0, 0xffffffff]],
    [0xe, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x11, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x12, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x13, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x15, ANY, [0x1, 0, 0x17d7840, 0], [0xfffffffe, 0, 0xfe8287bf, 0xffffffff]],
    [0x20, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x21, 0x0, [0, 0x65746e49, 0x20202020, 0x5844546c], [0xffffffff, 0x9a8b91b6, 0xdfdfdfdf, 0xa7bbab93]],
    [0x22, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x23, 0x0, [0, 0, 0, 0], [0xfffffff0, 0, 0xffffffff, 0xffffffff]],
    [0x23, 0x1, [0, 0, 0, 0], [0, 0, 0xffffffff, 0xffffffff]],
    [0x23, 0x2, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x23, 0x3, [0, 0, 0, 0], [0, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x80000000, ANY, [0x80000008, 0, 0, 0], [0x7ffffff7, 0xffffffff, 0xffffffff, 0xffffffff]],
    [0x80000001, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xfffffede, 0xd3efffff]],
    [0x80000007, ANY, [0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xfffffeff]],
    [0x80000008, ANY, [0, 0, 0, 0], [0xffff0000, 0xfffffdff, 0xffffffff, 0xffffffff]],
  ];
  it.each(FIXED.map(([leaf, subleaf, fixed1, fixed0]) => [hex(leaf), subleaf === ANY ? 'any' : hex(subleaf), leaf, subleaf ?? 0, fixed1, fixed0] as const))(
    'leaf %s subleaf %s: fixed-1 bits read 1, fixed-0 and dynamic bits 0 (dynamic state clear)', (_l, _s, leaf, subleaf, fixed1, fixed0) => {
      const regs = answer(leaf, subleaf);
      if (regs === 've') return expect.fail(`CPUID(${hex(leaf)}, ${hex(subleaf)}) is #VE`);
      for (let i = 0; i < 4; i++) {
        expect(hex((regs[i]! & fixed1[i]!) >>> 0), `register ${i} fixed1`).toBe(hex(fixed1[i]!));
        expect(hex((regs[i]! & fixed0[i]!) >>> 0), `register ${i} fixed0_or_dynamic`).toBe('0x0');
      }
    });
});

describe('values every TD reads, whatever the platform and the VMM (tdh_mng_init.c)', () => {
  // TDH.SYS.INIT refuses a CPU whose native CPUID differs from verify_value under verify_mask;
  // TDH.MNG.INIT then passes such a bit to the TD unchanged unless it is fixed0_or_dynamic,
  // CONFIG_DIRECT or ALLOW_DIRECT (cpuid_configurable[]) or cleared by an XFAM mask for an XFAM
  // bit the TD lacks (xfam_mask_*; the TD's XFAM is x87 | SSE). These registers are
  // [leaf, subleaf, register, mask, value] with that mask. Not listed, because the model's virtual
  // CPU lacks verified bits there (the Unicorn-based CPU cannot run several, td-cpuid.ts): leaf 1
  // ECX bits 2, 4, 15 and EDX bit 21; leaf 4 EBX[11:0] = 0x3F; leaf 7.0 EBX, ECX, EDX; 7.2 EDX;
  // 0xD.1 EAX[3:1] (XSAVEC, XGETBV with ECX = 1, XSAVES).
  const VERIFIED: readonly (readonly [number, number, number, number, number])[] = [
    [0x0, 0, 1, 0xffffffff, 0x756e6547], [0x0, 0, 2, 0xffffffff, 0x6c65746e], [0x0, 0, 3, 0xffffffff, 0x49656e69],
    // CLFLUSH line size 8 × 8 bytes (EBX[15:8]); ECX and EDX less the four bits named above.
    [0x1, 0, 1, 0xff00, 0x800], [0x1, 0, 2, 0x46faa217 & ~0x8014, 0x46faa217 & ~0x8014], [0x1, 0, 3, 0x7a9fbff & ~0x200000, 0x7a9fbff & ~0x200000],
    // Leaf 7's last subleaf is 2.
    [0x7, 0, 0, 0xffffffff, 0x2],
    // XSAVE state x87 and SSE; XSAVEOPT.
    [0xd, 0, 0, 0x3, 0x3], [0xd, 1, 0, 0x1, 0x1],
    [0x23, 1, 0, 0xffffff00, 0], [0x23, 1, 1, 0xfffffff0, 0],
    // LAHF, LZCNT, PREFETCHW; NX, 1 GiB pages, RDTSCP, LM (SYSCALL, bit 11, is dynamic).
    [0x80000001, 0, 2, 0x121, 0x121], [0x80000001, 0, 3, 0x2c100000, 0x2c100000],
    // Invariant TSC.
    [0x80000007, 0, 3, 0x100, 0x100],
    // 52 physical address bits.
    [0x80000008, 0, 0, 0xff, 0x34],
  ];
  it.each(VERIFIED.map(([leaf, subleaf, reg, mask, value]) => [hex(leaf), hex(subleaf), 'ABCD'[reg], leaf, subleaf, reg, mask, value] as const))(
    'CPUID(%s, %s).E%sX under its verify mask', (_l, _s, _r, leaf, subleaf, reg, mask, value) => {
      const regs = answer(leaf, subleaf);
      if (regs === 've') return expect.fail('#VE');
      expect(hex((regs[reg]! & mask) >>> 0)).toBe(hex(value >>> 0));
    });

  it('CPUID(0x8000_0008).EAX[15:8], the linear address width, is 48 as CPUID(7, 0).ECX.LA57 is clear', () => {
    // read_and_set_cpuid_configurations: la_bits = LA57 ? LA57_LINEAR_ADDRESS_WIDTH : LEGACY_LINEAR_ADDRESS_WIDTH.
    const leaf7 = answer(7, 0), ext8 = answer(0x80000008);
    if (leaf7 === 've' || ext8 === 've') return expect.fail('#VE');
    expect(leaf7[2]! & (1 << 16)).toBe(0);
    expect((ext8[0]! >> 8) & 0xff).toBe(48);
  });

  it('CPUID(0x15).EBX, the TD\'s TSC_FREQUENCY in 25 MHz units, is within VIRT_TSC_FREQUENCY_MIN..MAX', () => {
    // tdh_mng_init.c: final_tdcs_values.ebx = td_params_ptr->tsc_frequency, which TDH.MNG.INIT
    // refuses outside 4..400 (100 MHz .. 10 GHz, td_control_structures.h).
    const regs = answer(0x15);
    if (regs === 've') return expect.fail('#VE');
    expect(regs[1]).toBeGreaterThanOrEqual(4);
    expect(regs[1]).toBeLessThanOrEqual(400);
  });

  it('CPUID(0xD, 0).ECX is calculate_xsave_area_max_size(XFAM): 576 bytes, the legacy region and header x87 and SSE need', () => {
    // tdh_mng_init.c sets ECX to the CPU's EBX with XCR0 = XFAM's user bits; SDM Vol. 1 §13.4: the
    // legacy region is 512 bytes and the XSAVE header 64, and x87 and SSE state lie in the former.
    const regs = answer(0xd, 0);
    if (regs === 've') return expect.fail('#VE');
    expect(TD_XFAM).toBe(3n);
    expect(regs[2]).toBe(576);
  });

  it('XFAM has x87 and SSE (TDX_XFAM_FIXED1 = 3); without XFAM[2] CPUID(1).ECX has none of FMA, AVX, F16C', () => {
    expect(TD_XFAM & 3n).toBe(3n); // td_control_structures.h TDX_XFAM_FIXED1
    // xfam_mask_0x1_0xffffffff[2].ecx = 0x30001000 (bits 12, 28, 29) is cleared when XFAM[2] is 0
    // (read_and_set_cpuid_configurations: if (!xfam.avx)); the model derives its XFAM from its AVX bit.
    const leaf1 = answer(1);
    if (leaf1 === 've') return expect.fail('#VE');
    // The model's TD has no AVX in XFAM: the emulated CPU cannot run FMA, AVX or F16C (td-cpuid.ts).
    expect(TD_XFAM).toBe(3n);
    expect(hex((leaf1[2]! & 0x30001000) >>> 0)).toBe('0x0');
  });
});
