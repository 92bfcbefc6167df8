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

  it('the VMX capability reads the module answers from TDCS values are marked not modelled (#VE in the model)', () => {
    expect(msrAction(module(), 0x480, false).action).toBe('not-modelled');
    expect(msrAction(module(), 0x481, false).action).toBe('ve'); // PINBASED_CTLS: the table's #VE
  });
});
