// The hypervisor's and the firmware's RMP operations, pinned cell by cell: rmp.test.ts checks that
// the platform does what RMP_LEGALITY says, this file checks what RMP_LEGALITY says.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { RMP_LEGALITY, RMP_RC, LAUNCH_INVALID_PAGE_STATE } from '../../../src/platform/snp/rmp-legality.js';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';

describe('RMP legality cells', () => {
  it('RMPUPDATE, PSMASH and SNP_LAUNCH_UPDATE results per target state', () => {
    // Sources: tdx-snp-architecture.md B2/B3; MS __psmash (FAIL_BADADDR for an entry that is not 2 MiB); Linux arch/x86/include/asm/sev.h (RMPUPDATE_FAIL_OVERLAP
    // "RMPUPDATE detected 4K page and 2MB page overlap", PSMASH_FAIL_INUSE); KVM sev.c
    // snp_launch_update (only pre-guest pages: assigned + immutable). Immutable entries (firmware
    // and pre-guest pages) refuse every host change (APM Vol. 2 §15.36.3 "Immutable").
    expect(RMP_LEGALITY).toEqual({
      'rmpupdate-4k': { 'misaligned': 'FAIL_INPUT', 'immutable': 'FAIL_PERMISSION', 'hv-owned': 'SUCCESS', 'assigned-4k': 'SUCCESS', 'assigned-2m': 'FAIL_OVERLAP' },
      'rmpupdate-2m': { 'misaligned': 'FAIL_INPUT', 'immutable': 'FAIL_PERMISSION', 'hv-owned': 'SUCCESS', 'assigned-4k': 'FAIL_OVERLAP', 'assigned-2m': 'SUCCESS' },
      'psmash': { 'misaligned': 'FAIL_INPUT', 'immutable': 'FAIL_PERMISSION', 'hv-owned': 'FAIL_BADADDR', 'assigned-4k': 'FAIL_BADADDR', 'assigned-2m': 'SUCCESS' },
      'launch-update': { 'misaligned': 'FAIL_INPUT', 'immutable': 'SUCCESS', 'hv-owned': 'INVALID_PAGE_STATE', 'assigned-4k': 'INVALID_PAGE_STATE', 'assigned-2m': 'INVALID_PAGE_STATE' },
    });
  });

  it('return codes (Linux asm/sev.h; MS __rmpupdate/__psmash: 7 "the page doesn\'t meet the requirements for expansion"; uapi psp-sev.h SEV_RET_INVALID_PAGE_STATE)', () => {
    expect(RMP_RC).toEqual({ SUCCESS: 0, FAIL_INPUT: 1, FAIL_PERMISSION: 2, FAIL_INUSE: 3, FAIL_OVERLAP: 4, FAIL_BADADDR: 7 });
    expect(LAUNCH_INVALID_PAGE_STATE).toBe(0x1a);
  });
});

describe('SNP_LAUNCH_UPDATE', () => {
  const R = 0x400000n;

  it("takes only this guest's pre-guest page at its own GPA; anything else is INVALID_PAGE_STATE and stays as it was (Firmware ABI §8.17)", () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    const otherAsid = p.rmpUpdate(R, { assigned: true, pageSize: '4k', immutable: true, gpa: R, asid: p.asid + 1 });
    expect(otherAsid.rc).toBe(0);
    const remapped = p.rmpUpdate(R + 0x1000n, { assigned: true, pageSize: '4k', immutable: true, gpa: R + 0x2000n, asid: p.asid });
    expect(remapped.rc).toBe(0);
    for (const gpa of [R, R + 0x1000n]) {
      const before = p.rmp.lookup(gpa);
      expect(p.launchUpdatePage(gpa)).toMatchObject({ rc: LAUNCH_INVALID_PAGE_STATE, result: 'INVALID_PAGE_STATE' });
      expect(p.rmp.lookup(gpa)).toEqual(before);
    }
    vm.close();
  });
});
