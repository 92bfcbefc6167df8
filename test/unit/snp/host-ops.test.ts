// The hypervisor's and the firmware's RMP operations, pinned cell by cell: rmp.test.ts checks that
// the platform does what RMP_LEGALITY says, this file checks what RMP_LEGALITY says.
import { describe, expect, it } from 'vitest';
import { Machine } from '../../../src/cpu/machine.js';
import { createHash } from 'node:crypto';
import { RMP_LEGALITY, RMP_RC, LAUNCH_INVALID_PAGE_STATE, LAUNCH_STATUS } from '../../../src/platform/snp/rmp-legality.js';
import { LaunchDigest, pageInfo } from '../../../src/platform/snp/launch.js';
import { SEV_RET_INVALID_PARAM, encodeCpuidPage } from '../../../src/platform/snp/cpuid-page.js';
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
      'launch-update': { 'misaligned': 'INVALID_PARAM', 'immutable': 'SUCCESS', 'hv-owned': 'INVALID_PAGE_STATE', 'assigned-4k': 'INVALID_PAGE_STATE', 'assigned-2m': 'INVALID_PAGE_STATE' },
    });
  });

  it('return codes (Linux asm/sev.h; MS __rmpupdate/__psmash: 7 "the page doesn\'t meet the requirements for expansion"; uapi psp-sev.h SEV_RET_INVALID_PAGE_STATE)', () => {
    expect(RMP_RC).toEqual({ SUCCESS: 0, FAIL_INPUT: 1, FAIL_PERMISSION: 2, FAIL_INUSE: 3, FAIL_OVERLAP: 4, FAIL_BADADDR: 7 });
    expect(LAUNCH_INVALID_PAGE_STATE).toBe(0x1a);
  });
});

describe('SNP_LAUNCH_UPDATE (amd/AMD-ASPFW sev_mcmd.c snp_mcmd_launch_update, sev_rmp.c rmp_entry_get_state)', () => {
  const R = 0x400000n;
  const preGuest = (p: SnpPlatform, spa: bigint, fields: { gpa?: bigint; asid?: number; pageSize?: '4k' | '2m' } = {}) =>
    expect(p.rmpUpdate(spa, { assigned: true, pageSize: fields.pageSize ?? '4k', immutable: true, gpa: fields.gpa ?? spa, asid: fields.asid ?? p.asid }).rc).toBe(0);

  it('statuses (Linux uapi psp-sev.h SEV_RET_*)', () => {
    expect(LAUNCH_STATUS).toEqual({ INVALID_GUEST_STATE: 0x02, INVALID_PARAM: 0x16, INVALID_PAGE_SIZE: 0x19, INVALID_PAGE_STATE: 0x1a, INVALID_PAGE_OWNER: 0x1c });
    expect(LAUNCH_STATUS.INVALID_PARAM).toBe(SEV_RET_INVALID_PARAM);
  });

  it("another guest's pre-guest page: INVALID_PAGE_OWNER (the page's ASID is not the guest's), the entry as it was", () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    preGuest(p, R, { asid: p.asid + 1 });
    const before = p.rmp.lookup(R);
    expect(p.launchUpdatePage(R)).toMatchObject({ rc: 0x1c, result: 'INVALID_PAGE_OWNER' });
    expect(p.rmp.lookup(R)).toEqual(before);
    vm.close();
  });

  it('the entry\'s GPA is not checked: it is the GPA the measurement records (page_info.gpa = the RMP entry\'s GPA)', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    preGuest(p, R + 0x1000n, { gpa: R + 0x2000n });
    const expected = new LaunchDigest();
    expected.extend('ZERO', R + 0x2000n, undefined);
    expect(p.launchUpdatePage(R + 0x1000n, 'ZERO')).toMatchObject({ rc: 0, result: 'SUCCESS' });
    expect(p.launch.hex).toBe(expected.hex);
    expect(p.rmp.lookup(R + 0x1000n)).toMatchObject({ gpa: R + 0x2000n, validated: true, immutable: false });
    vm.close();
  });

  it('a 2 MiB pre-guest entry under a 4 KiB command: INVALID_PAGE_SIZE; a page the RMP does not cover: INVALID_PAGE_STATE (a DEFAULT page); bits 11:0 set: INVALID_PARAM', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    preGuest(p, R, { pageSize: '2m' });
    expect(p.launchUpdatePage(R)).toMatchObject({ rc: 0x19, result: 'INVALID_PAGE_SIZE' });
    expect(p.launchUpdatePage(p.memoryBytes)).toMatchObject({ rc: 0x1a, result: 'INVALID_PAGE_STATE' });
    expect(p.launchUpdatePage(R + 0x10n)).toMatchObject({ rc: 0x16, result: 'INVALID_PARAM' });
    vm.close();
  });

  // rmp_entry_get_state (sev_rmp.c) calls a page PRE_GUEST only when Assigned, not Validated, of a
  // non-zero ASID and Immutable: an Immutable page of the hypervisor (assigned 0: HV_FIXED), of
  // ASID 0 (FIRMWARE), not assigned yet naming an ASID (a state the function does not know:
  // INVALID) or Validated (PRE_SWAP) is immutable too, but not pre-guest, so INVALID_PAGE_STATE.
  it('an immutable page that is not pre-guest (HV_FIXED, FIRMWARE, unassigned with an ASID, PRE_SWAP): INVALID_PAGE_STATE, the entry as it was', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    expect(p.rmpUpdate(R, { assigned: false, pageSize: '4k', immutable: true, gpa: 0n, asid: 0 }).rc).toBe(0);
    expect(p.rmpUpdate(R + 0x1000n, { assigned: true, pageSize: '4k', immutable: true, gpa: 0n, asid: 0 }).rc).toBe(0);
    expect(p.rmpUpdate(R + 0x2000n, { assigned: false, pageSize: '4k', immutable: true, gpa: R + 0x2000n, asid: p.asid }).rc).toBe(0);
    // PRE_SWAP: a pre-guest entry with Validated set (what the firmware's page swap leaves).
    preGuest(p, R + 0x3000n);
    p.rmp.setValidated(R + 0x3000n, true);
    for (const page of [R, R + 0x1000n, R + 0x2000n, R + 0x3000n]) {
      const before = p.rmp.lookup(page);
      expect(p.launchUpdatePage(page, 'ZERO')).toMatchObject({ rc: 0x1a, result: 'INVALID_PAGE_STATE', state: 'immutable' });
      expect(p.rmp.lookup(page)).toEqual(before);
    }
    vm.close();
  });

  // Without a source the firmware takes the page as the host left it while it was still its own
  // (KVM's sev_gmem_post_populate copies the CPUID table there first): that is the table it checks.
  it('a CPUID page launched without a source is checked as it is in memory', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    vm.memory.write(R, new Uint8Array(4096).fill(0xff));  // COUNT 0xffffffff > 64: refused
    vm.memory.write(R + 0x1000n, encodeCpuidPage([]));    // COUNT 0: passes (sev_mcmd.c refuses only COUNT > 64)
    preGuest(p, R);
    preGuest(p, R + 0x1000n);
    expect(p.launchUpdatePage(R, 'CPUID')).toMatchObject({ rc: 0x16, result: 'INVALID_PARAM' });
    expect(p.rmp.lookup(R)).toMatchObject({ immutable: true, validated: false });
    expect(p.launchUpdatePage(R + 0x1000n, 'CPUID')).toMatchObject({ rc: 0, result: 'SUCCESS' });
    expect(p.rmp.lookup(R + 0x1000n)).toMatchObject({ immutable: false, validated: true });
    vm.close();
  });

  it('after SNP_LAUNCH_FINISH: INVALID_GUEST_STATE for a pre-guest page (the page state is checked first: INVALID_PAGE_STATE for any other)', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    preGuest(p, R);
    p.launchFinish();
    expect(p.launchUpdatePage(R)).toMatchObject({ rc: 0x02, result: 'INVALID_GUEST_STATE' });
    expect(p.launchUpdatePage(R + 0x1000n)).toMatchObject({ rc: 0x1a, result: 'INVALID_PAGE_STATE' });
    vm.close();
  });

  it('a VMSA page: measured by its bytes, and the firmware sets the RMP VMSA bit', () => {
    const vm = new Machine({ memoryBytes: 16n << 20n });
    const p = new SnpPlatform(vm);
    preGuest(p, R);
    const bytes = new Uint8Array(4096).fill(0x5a);
    const expected = new LaunchDigest();
    expected.extend('VMSA', R, bytes);
    expect(p.launchUpdatePage(R, 'VMSA', bytes)).toMatchObject({ rc: 0 });
    expect(p.launch.hex).toBe(expected.hex);
    expect(p.rmp.lookup(R)).toMatchObject({ vmsa: true, validated: true, immutable: false });
    vm.close();
  });

  it('an UNMEASURED page still extends the launch digest, with zero CONTENTS ("Unconditionally update GCTX.LD")', () => {
    const d = new LaunchDigest();
    const before = d.hex;
    d.extend('UNMEASURED', R, undefined);
    expect(d.hex).not.toBe(before);
    const byHand = createHash('sha384').update(pageInfo(new Uint8Array(48), new Uint8Array(48), 'UNMEASURED', R)).digest('hex');
    expect(d.hex).toBe(byHand);
  });
});
