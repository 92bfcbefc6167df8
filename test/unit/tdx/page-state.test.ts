// TdxPlatform.pageState: what the platform reports of one 4 KiB page, from the S-EPT leaf that
// governs it. The classes come from the module's S-EPT state encodings (intel/tdx-module TDX_1.5
// include/auto_gen/sept_state_lookup.h): MAPPED 0x60, PENDING 0x70 (bit 4: not yet accepted),
// and BLOCKED 0x68 / PENDING_BLOCKED 0x78 are those two with bit 3 (the host's block) added. So
// a BLOCKED page stays one the guest accepted, and a PENDING_BLOCKED one still awaits its
// TDG.MEM.PAGE.ACCEPT. FREE (0xE) and REMOVED (0xC) hold no page for the TD.
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { createTd } from '../../../src/vmm/tdx/run-td.js';

const SHARED = 1n << 47n; // GPAW 48

/** A TD with a MAPPED 4K page at 0x1000 (PAGE.ADD) and a PENDING 2M page at 0x400000 (AUG), finalized. */
function td() {
  const t = createTd({ memoryBytes: 16n << 20n });
  const h = t.platform.module.host;
  expect(h.memSeptAdd(gpaLevel(0n, 3)).status).toBe(0n);
  expect(h.memSeptAdd(gpaLevel(0n, 2)).status).toBe(0n);
  expect(h.memSeptAdd(gpaLevel(0n, 1)).status).toBe(0n);
  expect(h.memPageAdd(gpaLevel(0x1000n, 0), new Uint8Array(4096)).status).toBe(0n);
  expect(h.mrFinalize().status).toBe(0n);
  expect(h.memPageAug(gpaLevel(0x400000n, 1)).status).toBe(0n);
  return t;
}

describe('TdxPlatform.pageState (the S-EPT leaf of the page, sept_state_lookup.h encodings)', () => {
  it('MAPPED 4K: private, accepted, not pending; the GPA asked is reduced to its private 4 KiB page', () => {
    const t = td();
    expect(t.platform.pageState(0x1abdn | SHARED)).toEqual({ gpa: 0x1000n, visibility: 'private', accepted: true, pending: false, pageSize: '4k', raw: 'MAPPED' });
    t.platform.machine.close();
  });

  it('BLOCKED (MAPPED | bit 3): still accepted, not pending', () => {
    const t = td();
    expect(t.platform.module.host.memRangeBlock(gpaLevel(0x1000n, 0)).status).toBe(0n);
    expect(t.platform.pageState(0x1000n)).toEqual({ gpa: 0x1000n, visibility: 'private', accepted: true, pending: false, pageSize: '4k', raw: 'BLOCKED' });
    t.platform.machine.close();
  });

  it('PENDING 2M: private, pending, not accepted, the 2M leaf\'s size for any page in it', () => {
    const t = td();
    expect(t.platform.pageState(0x5ff000n)).toEqual({ gpa: 0x5ff000n, visibility: 'private', accepted: false, pending: true, pageSize: '2m', raw: 'PENDING' });
    t.platform.machine.close();
  });

  it('PENDING_BLOCKED (PENDING | bit 3): still pending, not accepted', () => {
    const t = td();
    expect(t.platform.module.host.memRangeBlock(gpaLevel(0x400000n, 1)).status).toBe(0n);
    expect(t.platform.pageState(0x400000n)).toEqual({ gpa: 0x400000n, visibility: 'private', accepted: false, pending: true, pageSize: '2m', raw: 'PENDING_BLOCKED' });
    t.platform.machine.close();
  });

  it('FREE: no private page (shared), neither accepted nor pending', () => {
    const t = td();
    expect(t.platform.pageState(0x2000n)).toMatchObject({ gpa: 0x2000n, visibility: 'shared', accepted: false, pending: false, pageSize: '4k', raw: 'FREE' });
    t.platform.machine.close();
  });

  // The walk stops at the first FREE entry (secure_ept_walk): with no SEPT page under the PDPT entry
  // of a 1 GiB range, that entry decides for the whole 1 GiB; above it (a FREE PML4 entry) the
  // largest page a TD can map, 1G, is reported.
  it('FREE at the 1G level or above: the 1G size for any page under it', () => {
    const t = td();
    expect(t.platform.pageState(0x4000_5000n)).toMatchObject({ gpa: 0x4000_5000n, accepted: false, pending: false, pageSize: '1g', raw: 'FREE' });
    expect(t.platform.pageState((1n << 39n) + 0x5000n)).toMatchObject({ accepted: false, pending: false, pageSize: '1g', raw: 'FREE' });
    // Inside the first 1 GiB, under the PD page the TD has, a FREE 2M entry is a 2M one.
    expect(t.platform.pageState(0x800000n)).toMatchObject({ pageSize: '2m', raw: 'FREE' });
    t.platform.machine.close();
  });

  it('after BLOCK, TRACK and REMOVE the 2M page is FREE again: shared, not pending', () => {
    const t = td();
    const h = t.platform.module.host;
    h.memRangeBlock(gpaLevel(0x400000n, 1));
    h.memTrack();
    expect(h.memPageRemove(gpaLevel(0x400000n, 1)).status).toBe(0n);
    expect(t.platform.pageState(0x400000n)).toMatchObject({ visibility: 'shared', accepted: false, pending: false, pageSize: '2m', raw: 'FREE' });
    t.platform.machine.close();
  });
});
