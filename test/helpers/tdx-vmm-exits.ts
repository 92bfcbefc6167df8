// Finalized TDs and the TD exits the honest TDX VMM decides on, for tests that hand
// TdxVmm.decide() one exit at a time (honest-vmm-decisions.test.ts, honest-vmm-kvm-rules.test.ts).
import { gpaLevel } from '../../src/platform/tdx/seamcall.js';
import type { SeptLevel, SeptStateName } from '../../src/platform/tdx/sept-states.js';
import { VMCALL_REGS } from '../../src/platform/tdx/tdcall.js';
import type { TdExit, VmcallRegs } from '../../src/platform/tdx/td-module.js';
import { createTd, type Td } from '../../src/vmm/tdx/run-td.js';

/** A finalized TD of `memory` bytes (16 MiB) with the SEPT pages above the first GiB's PD, as a launch leaves them. */
export function finalizedTd(memory = 16n << 20n): Td {
  const td = createTd({ memoryBytes: memory });
  const h = td.platform.module.host;
  h.memSeptAdd(gpaLevel(0n, 3));
  h.memSeptAdd(gpaLevel(0n, 2));
  h.mrFinalize();
  return td;
}

/** A TDG.VP.VMCALL exit with `regs` and every other VMCALL register 0. */
export const vmcallExit = (regs: Partial<VmcallRegs>): TdExit => ({
  reason: 'tdvmcall', rip: 0x1000n, mask: 0xfc00n,
  regs: { ...Object.fromEntries(VMCALL_REGS.map((r) => [r, 0n])) as VmcallRegs, ...regs },
});

/** The ACCEPT exit TDG.MEM.PAGE.ACCEPT of (`gpa`, `reqLevel`) makes when its walk stops at `errLevel` in `errState`. */
export const acceptExit = (gpa: bigint, reqLevel: SeptLevel, errLevel: SeptLevel, errState: SeptStateName): TdExit => ({
  reason: 'ept-violation', rip: 0x1000n, gpa, access: 'read', space: 'private', exitQualification: 0n, outsideRam: false,
  eeq: { type: 'accept', raw: 0n, reqLevel, errLevel, errState, isLeaf: false },
});

/** A guest access (not an ACCEPT) to a private GPA whose walk stopped on `state`. */
export const privateAccess = (gpa: bigint, state: SeptStateName, access: 'read' | 'write' = 'read'): TdExit => ({
  reason: 'ept-violation', rip: 0x1000n, gpa, access, space: 'private', exitQualification: 0n,
  outsideRam: false, septState: state, eeq: { type: 'none', raw: 0n },
});

/** The trace's SEAMCALL events, of one leaf when `leaf` is given. */
export const seamcalls = (td: Td, leaf?: string) => td.trace.events.filter((e) => e.type === 'seamcall' && (leaf === undefined || e.leaf === leaf));
