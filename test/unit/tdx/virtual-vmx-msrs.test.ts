// The virtual IA32_VMX_* MSRs a TD reads (intel/tdx-module TDX_1.5.01: virt_msr_helpers.h
// calc_virt_ia32_vmx_*, init_virt_ia32_vmx_msrs; td_msr_access.c rdmsr_l1_only_special_msrs).
// Each expected value is worked out here from the module's constants (vmcs_defs.h
// td_l2_vmcs_ctl_values_e) and the fixed platform the model documents (virtual-vmx-msrs.ts PLATFORM:
// the TRUE MSRs' must-be-1 bits pin 0x16, processor-based 0x04006172, exit 0x36DFB, entry 0x11FB;
// CR4_FIXED1 0x627FF); a controls MSR is may-be-1 in bits 63:32 and must-be-1 in bits 31:0.
import { describe, expect, it } from 'vitest';
import { TdAttributes } from '../../../src/platform/tdx/td-module.js';
import { msrAction } from '../../../src/platform/tdx/td-msr.js';
import { TDCS_VIRTUAL_VMX_MSRS, VIRTUAL_VMX_READS, virtualVmxMsrs } from '../../../src/platform/tdx/virtual-vmx-msrs.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';

const module = (attributes = 0n) => createTd({ memoryBytes: 8n << 20n, attributes }).platform.module;
const ATTRIBUTES_PKS = 1n << 30n;

describe('virtual VMX capability MSRs (init_virt_ia32_vmx_msrs)', () => {
  it('values that depend on neither the platform nor the TD: BASIC, MISC, CR0_FIXED0/1, VMFUNC, PROCBASED_CTLS3', () => {
    const v = virtualVmxMsrs(module());
    // calc_virt_ia32_vmx_basic: bits 54 (INS/OUTS exit info), 55 (TRUE MSRs), 56 (no-error-code delivery).
    expect(v.get(0x480)).toBe(0x01c0_0000_0000_0000n);
    // calc_virt_ia32_vmx_misc: bits 5, 6, 7, 14, 29, 30 and max CR3 targets 4 in 24:16.
    expect(v.get(0x485)).toBe(0x6004_40e0n);
    // calc_virt_ia32_vmx_cr0_fixed: GUEST_CR0_L2_INIT 0x21, variable 0x8005001F → 0x21 & ~var, 0x21 | var.
    expect([v.get(0x486), v.get(0x487)]).toEqual([0x20n, 0x8005_003fn]);
    expect(v.get(0x491)).toBe(0n); // calc_virt_ia32_vmx_vmfunc
    expect(v.get(0x492)).toBe(0x8en); // PROCBASED_CTLS3_L2_INIT 0x80 | L1 write mask 0x0E
  });

  it('a TD without PERFMON, PKS or DEBUG (the default TD): the control MSRs', () => {
    const v = virtualVmxMsrs(module());
    // Pin: init 0x29 | must-be-1 0x16 = 0x3F; L1 may change nothing.
    expect(v.get(0x48d)).toBe(0x0000_003f_0000_003fn);
    // Processor-based: 0x91220088 | 0x04006172, plus MWAIT (10) and MONITOR (29) exiting (no
    // CPUID MONITOR) and RDPMC exiting (11, no PERFMON) = 0xB5226DFA; L1 write mask 0x48D99A04
    // less RDPMC exiting = 0x48D99204 (disjoint from it): may-be-1 0xFDFBFFFE.
    expect(v.get(0x48e)).toBe(0xfdfb_fffe_b522_6dfan);
    // Secondary: init 0x1338B3FA less ENCLV exiting (28, no SGX), WAIT/PAUSE (26) and PCONFIG (27)
    // off = 0x0338B3FA; write mask 0x0C513E0C less 26 and 27 (no CPUID WAITPKG, PCONFIG) = 0x00513E0C.
    // Must-be-1 0x0338B3FA & ~0x00513E0C = 0x032881F2; may-be-1 0x0338B3FA | 0x00513E0C = 0x0379BFFE.
    expect(v.get(0x48b)).toBe(0x0379_bffe_0328_81f2n);
    // Exit: 0x1F3C8204 | 0x36DFB with both PERF_GLOBAL_CTRL bits (12, 30) clear = 0x1F3FEFFF, fixed.
    expect(v.get(0x48f)).toBe(0x1f3f_efff_1f3f_efffn);
    // Entry: 0x003EC004 | 0x11FB with LOAD_PERF_GLOBAL_CTRL (13) and LOAD_PKRS (22) clear =
    // 0x003ED1FF; L1 may change bit 9 (IA-32e mode guest): must-be-1 0x003ED1FF, may-be-1 0x003ED3FF.
    expect(v.get(0x490)).toBe(0x003e_d3ff_003e_d1ffn);
    // CR4: write mask 0x03FF1FBF & ~FIXED0 0x2000 & FIXED1 0x627FF = 0x607BF (XFAM x87|SSE
    // removes nothing more); init 0x2040 → FIXED0 0x2040, FIXED1 0x627FF.
    expect([v.get(0x488), v.get(0x489)]).toEqual([0x2040n, 0x627ffn]);
    // EPT/VPID: execute-only (0), 2M (16), 1G (17), advanced exit info (22); no CET_S in XFAM, HLAT prefix 0.
    expect(v.get(0x48c)).toBe(0x0043_0001n);
  });

  it('ATTRIBUTES.PERFMON frees RDPMC exiting for L1 and sets the PERF_GLOBAL_CTRL exit and entry controls; PKS sets LOAD_PKRS', () => {
    const perfmon = virtualVmxMsrs(module(TdAttributes.PERFMON));
    // RDPMC exiting (bit 11) is 0 in the init value and writable: must-be-1 0xB52265FA, may-be-1 unchanged.
    expect(perfmon.get(0x48e)).toBe(0xfdfb_fffe_b522_65fan);
    expect(perfmon.get(0x48f)).toBe(0x5f3f_ffff_5f3f_ffffn); // + bits 12 and 30
    expect(perfmon.get(0x490)).toBe(0x003e_f3ff_003e_f1ffn); // + bit 13
    const pks = virtualVmxMsrs(module(ATTRIBUTES_PKS));
    expect(pks.get(0x490)).toBe(0x007e_d3ff_007e_d1ffn); // + bit 22
    // ATTRIBUTES.DEBUG alone sets both, as calc_l2_vmcs_vm_entry_ctls_init ORs DEBUG into each.
    expect(virtualVmxMsrs(module(TdAttributes.DEBUG)).get(0x490)).toBe(0x007e_f3ff_007e_f1ffn);
  });

  it('every TDCS virtual VMX field but EXIT_CTLS2 is answered to RDMSR; the MSR table\'s VE rows stay #VE', () => {
    const td = module();
    for (const { msr } of TDCS_VIRTUAL_VMX_MSRS) {
      expect(msrAction(td, msr, false).action).toBe(msr === 0x493 ? 've' : 'emulate');
      if (msr !== 0x493) expect(msrAction(td, msr, true).action).toBe('gp'); // msr_config_lookup.c: write GP
    }
    expect(VIRTUAL_VMX_READS.size).toBe(14);
    // PINBASED/PROCBASED/EXIT/ENTRY (non-TRUE) and VMCS_ENUM: rd_action MSR_ACTION_VE.
    for (const msr of [0x481, 0x482, 0x483, 0x484, 0x48a]) expect(msrAction(td, msr, false).action).toBe('ve');
  });
});
