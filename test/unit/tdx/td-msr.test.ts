// The TD's MSR actions from msr_config_lookup.c and set_msr_bitmaps / is_msr_dynamic_bit_cleared
// (helpers.c) as td_rdmsr_exit / td_wrmsr_exit (td_msr_access.c) apply them, intel/tdx-module TDX_1.5.01.
import { describe, expect, it } from 'vitest';
import { TdAttributes } from '../../../src/platform/tdx/td-module.js';
import { msrAction } from '../../../src/platform/tdx/td-msr.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';

const module = (attributes = 0n) => createTd({ memoryBytes: 8n << 20n, attributes }).platform.module;

describe('msrAction over the whole bitmap range', () => {
  // rd_wr_msr_generic_case() stops the module (FATAL_ERROR) when an MSR with bitmap bit 0 exits or an
  // exit has no handler: for a consistent table that never happens, for any TD configuration.
  it('every MSR of both bitmap ranges, read and write, has an action (with and without PERFMON)', () => {
    for (const td of [module(), module(TdAttributes.PERFMON)]) {
      for (const base of [0, 0xc0000000]) {
        for (let msr = base; msr < base + 0x2000; msr++) {
          expect(() => msrAction(td, msr, false)).not.toThrow();
          expect(() => msrAction(td, msr, true)).not.toThrow();
        }
      }
    }
  });

  it('DYN_PERFMON rows run natively only with ATTRIBUTES.PERFMON; without it they are #GP(0)', () => {
    expect(msrAction(module(), 0xc1, true).action).toBe('gp'); // IA32_PMC0
    expect(msrAction(module(TdAttributes.PERFMON), 0xc1, true).action).toBe('native');
    expect(msrAction(module(TdAttributes.PERFMON), 0x1a0, false).action).toBe('native'); // IA32_MISC_ENABLE read
    expect(msrAction(module(), 0x1a0, false).action).toBe('emulate');
  });

  // The model's TD: XFAM x87|SSE (no AVX, PT, CET, ULI, LBR), CPUID without HLE, WAITPKG, XFD, DCA,
  // TME or PCONFIG, ATTRIBUTES without PKS: each dynamic row exits, and its action is #GP(0).
  it.each([
    ['IA32_TSX_CTRL (DYN_TSX)', 0x122], ['IA32_UMWAIT_CONTROL (DYN_UMWAIT)', 0xe1], ['IA32_XFD (DYN_XFD)', 0x1c4],
    ['IA32_RTIT_CTL (DYN_XFAM_PT)', 0x570], ['IA32_U_CET (DYN_XFAM_CET)', 0x6a0], ['IA32_UINTR_RR (DYN_XFAM_ULI)', 0x985],
    ['IA32_LBR_CTL (DYN_XFAM_LBR)', 0x14ce], ['IA32_PKRS (DYN_PKS)', 0x6e1], ['IA32_PERF_METRICS (DYN_OTHER)', 0x329],
    ['IA32_PLATFORM_DCA_CAP (GP_OR_VE, no DCA)', 0x1f8], ['IA32_TME_CAPABILITY (GP_OR_VE, no TME)', 0x981],
    ['IA32_MKTME_PARTITIONING (GP_OR_VE, no PCONFIG)', 0x87],
  ])('%s → #GP(0) both ways for a TD without the feature', (_n, msr) => {
    expect([msrAction(module(), msr, false).action, msrAction(module(), msr, true).action]).toEqual(['gp', 'gp']);
  });

  // rd_wr_msr_generic_case (td_msr_access.c), MSR_ACTION_GP_OR_VE: IA32_PLATFORM_DCA_CAP,
  // IA32_CPU_DCA_CAP and IA32_DCA_CAP (0x1F8-0x1FA) follow the TD's CPUID(1).ECX[18] (DCA), the four
  // TME MSRs (0x981-0x984) CPUID(7,0).ECX[13] (TME), IA32_MKTME_PARTITIONING (0x87) CPUID(7,0).EDX[18]
  // (PCONFIG) and IA32_TSC_DEADLINE (0x6E0) CPUID(1).ECX[24]: #GP(0) without the feature, #VE with it
  // (cpuid_flags, tdh_mng_init.c). The model's TD has TSC-deadline only.
  it.each([0x1f8, 0x1f9, 0x1fa, 0x981, 0x982, 0x983, 0x984, 0x87].map((m) => [m.toString(16), m] as const))('GP_OR_VE row 0x%s without its feature → #GP(0) both ways', (_hex, msr) => {
    expect([msrAction(module(), msr, false).action, msrAction(module(), msr, true).action]).toEqual(['gp', 'gp']);
  });
  it('IA32_TSC_DEADLINE (GP_OR_VE, CPUID(1).ECX[24] set) → #VE both ways', () => {
    expect([msrAction(module(), 0x6e0, false).action, msrAction(module(), 0x6e0, true).action]).toEqual(['ve', 've']);
  });

  // msr_config_lookup.c rows that cover a range of MSRs: the first and the last MSR of each take
  // the row's action (find_msr_entry: start_address <= msr <= end_address), read and write. For
  // the model's TD (no ATTRIBUTES.PERFMON, XFAM without LBR) the DYN_PERFMON and DYN_XFAM_LBR rows
  // exit to MSR_ACTION_GP; the x2APIC ISR/TMR/IRR rows are FIXED_0 (the TD's own).
  it.each([
    ['IA32_SGXLEPUBKEYHASHx', 0x8c, 0x8f, 'gp'], ['IA32_PMCx', 0xc1, 0xc8, 'gp'], ['IA32_PERFEVTSELx', 0x186, 0x18d, 'gp'],
    ['MSR_OFFCORE_RSPx', 0x1a6, 0x1a7, 'gp'], ['IA32_FIXED_CTRx', 0x309, 0x310, 'gp'], ['IA32_A_PMCx', 0x4c1, 0x4c8, 'gp'],
    ['xAPIC reserved', 0x800, 0x801, 'gp'], ['xAPIC reserved', 0x804, 0x807, 'gp'], ['IA32_X2APIC_ISRx', 0x810, 0x817, 'native'],
    ['IA32_X2APIC_TMRx', 0x818, 0x81f, 'native'], ['IA32_X2APIC_IRRx', 0x820, 0x827, 'native'], ['xAPIC reserved', 0x829, 0x82e, 'gp'],
    ['xAPIC reserved', 0x840, 0x87f, 'gp'], ['xAPIC reserved', 0x880, 0x8bf, 'gp'], ['xAPIC reserved', 0x8c0, 0x8ff, 'gp'],
    ['IA32_LBR_INFO', 0x1200, 0x12ff, 'gp'], ['IA32_LBR_x_FROM_IP', 0x1500, 0x15ff, 'gp'], ['IA32_LBR_x_TO_IP', 0x1600, 0x16ff, 'gp'],
  ] as const)('%s: its first (%i) and last (%i) MSR → %s both ways', (_name, first, last, action) => {
    for (const msr of [first, last]) expect([msr, msrAction(module(), msr, false).action, msrAction(module(), msr, true).action]).toEqual([msr, action, action]);
  });

  // Rows whose read bit is FIXED_0 and write bit FIXED_1 with MSR_ACTION_VE: the TD reads the MSR
  // itself; a write exits and is #VE (IA32_TIME_STAMP_COUNTER, IA32_MISC_PACKAGE_CTLS,
  // IA32_DEBUG_INTERFACE); IA32_MISC_ENABLE's write row is the same, its read DYN_PERFMON + OTHER.
  it.each([['IA32_TIME_STAMP_COUNTER', 0x10], ['IA32_MISC_PACKAGE_CTLS', 0xbc], ['IA32_DEBUG_INTERFACE', 0xc80]] as const)('%s (%i): read native, write #VE', (_name, msr) => {
    expect([msrAction(module(), msr, false).action, msrAction(module(), msr, true).action]).toEqual(['native', 've']);
  });

  // is_msr_dynamic_bit_cleared (helpers.c): DYN_PKS follows ATTRIBUTES.PKS (bit 30,
  // is_pks_supported_in_tdcs), so a PKS TD owns IA32_PKRS; DYN_OTHER clears IA32_PERF_CAPABILITIES'
  // read bit only with PERFMON and XFAM.PT both, so a PERFMON TD without PT still exits and the
  // module answers it (rdmsr_ia32_perf_capabilities).
  it('IA32_PKRS is native both ways with ATTRIBUTES.PKS; IA32_PERF_CAPABILITIES is emulated for a PERFMON TD without XFAM.PT', () => {
    const pks = module(1n << 30n);
    expect([msrAction(pks, 0x6e1, false).action, msrAction(pks, 0x6e1, true).action]).toEqual(['native', 'native']);
    expect(msrAction(module(TdAttributes.PERFMON), 0x345, false).action).toBe('emulate');
  });

  it('the VMX capability reads rdmsr_l1_only_special_msrs answers from TDCS values are emulated; the rest of 0x480-0x492 are the table\'s #VE', () => {
    expect(msrAction(module(), 0x480, false).action).toBe('emulate');
    expect(msrAction(module(), 0x481, false).action).toBe('ve'); // PINBASED_CTLS: the table's #VE
  });
});
