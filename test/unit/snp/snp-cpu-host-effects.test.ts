// What SnpPlatform's host operations, snapshots and exit handling leave behind, pinned where a
// mutation sweep of snp-cpu.ts found nothing checking it. Each test names the primary source.
import { describe, expect, it } from 'vitest';
import { SnpPlatform } from '../../../src/platform/snp/snp-cpu.js';
import { PAGE_2M, PAGE_4K } from '../../../src/platform/snp/rmp.js';

const MEMORY = 16n << 20n;
const REGION = 0x400000n;

function platform(): SnpPlatform {
  return SnpPlatform.create({ memoryBytes: MEMORY, countInstructions: false });
}

describe('a 2 MiB RMPUPDATE back to the hypervisor', () => {
  // APM Vol. 2 §15.36.3/§15.36.10: a 2 MiB RMP entry governs all 512 pages of its range, and
  // after RMPUPDATE makes the range hypervisor-owned (Assigned = 0) a private (C=1) access to any
  // of them fails the Guest-Owned check (#VMEXIT(NPF)) while shared accesses pass; KVM's
  // rmp_make_shared(pfn, PG_LEVEL_2M) hands back the whole range at once.
  it('gives every page of the range back, not only the first: private accesses refused, shared ones open, under either nested page size', () => {
    for (const npt of ['2m', '4k'] as const) {
      const p = platform();
      expect(p.rmpUpdate(REGION, { assigned: true, pageSize: '2m', gpa: REGION, asid: p.asid }).rc).toBe(0);
      p.rmp.setValidated(REGION, true);
      p.setNptPageSize(REGION, npt);
      const pages = [REGION, REGION + PAGE_4K, REGION + 0x100000n, REGION + PAGE_2M - PAGE_4K];
      // Assigned: shared reads see ciphertext, shared writes refused (APM §15.36.10: a C=0 write to a guest page).
      for (const page of pages) expect(p.machine.gate.get('shared', page)).toBe('ciphertext');
      if (npt === '2m') for (const page of pages) expect(p.machine.gate.get('private', page)).toBe('readwrite');
      expect(p.rmpUpdate(REGION, { assigned: false, pageSize: '2m', gpa: 0n, asid: 0 }).rc).toBe(0);
      for (const page of pages) {
        expect([npt, page, p.machine.gate.get('private', page), p.machine.gate.fetch('private', page), p.machine.gate.get('shared', page)])
          .toEqual([npt, page, 'none', 'none', 'readwrite']);
      }
      p.machine.close();
    }
  });
});
