// TDX pages whose content the host may have decided (src/platform/foreign-content.ts): the
// module watches memory from the guest's own request to convert it to shared (TDG.VP.VMCALL
// <MapGPA>, GHCI 1.5 §3.2: R10 = 0, R11 = 0x10001, the shared bit set in R12) until the guest
// accepts it again, which zeroes it (tdg_mem_page_accept.c). A read in between is foreign.
import { describe, expect, it } from 'vitest';
import { gpaLevel } from '../../../src/platform/tdx/seamcall.js';
import { VMCALL_REGS } from '../../../src/platform/tdx/tdcall.js';
import type { VmcallRegs } from '../../../src/platform/tdx/td-module.js';
import { runTd } from '../../../src/vmm/tdx/run-td.js';
import { HALT, acceptAsm, tdGuest } from '../../helpers/tdx-guest.js';

const P = 0x400000n;           // accepted again at 4K after the conversion request
const KEPT = P + 0x1000n;      // still MAPPED from before: never accepted again
const P2M = 0x600000n;         // accepted again at 2M
const SHARED = 1n << 47n;

/** What the module sees pass through a TDG.VP.VMCALL: every exposable register 0 but `regs`. */
const vmcallSeen = (regs: Partial<VmcallRegs>): VmcallRegs =>
  ({ ...Object.fromEntries(VMCALL_REGS.map((r) => [r, 0n])), ...regs }) as VmcallRegs;

/** A guest whose page KEPT is MAPPED (accepted before the test's history starts). */
function guest(main: string) {
  const td = tdGuest(`${main}\n ${HALT}`);
  const m = td.platform.module;
  expect(m.host.memSeptAdd(gpaLevel(P, 1)).status).toBe(0n);
  expect(m.host.memPageAug(gpaLevel(KEPT, 0)).status).toBe(0n);
  m.sept.setState(0, KEPT, 'MAPPED');
  return { td, m };
}

describe('TDX foreign content', () => {
  it('after a MapGPA to shared, an ACCEPT at 4K or 2M makes the page the guest\'s own again; a page it kept is foreign', () => {
    const { td, m } = guest(`
      ${acceptAsm(P, 0)}
      ${acceptAsm(P2M, 1)}
      mov rax, [0x${P.toString(16)}]
      mov rax, [0x${(P2M + 0x1f0008n).toString(16)}]
      mov rax, [0x${KEPT.toString(16)}]`);
    m.observeVmcall(vmcallSeen({ r10: 0n, r11: 0x10001n, r12: P | SHARED, r13: 0x400000n }));
    expect(runTd(td).outcome).toBe('done');
    expect(td.trace.ofType('foreign-read').map((e) => e.gpa)).toEqual([KEPT]);
  });

  it('a page the guest accepts for the first time is its own (ACCEPT zeroed it)', () => {
    const { td } = guest(`${acceptAsm(P, 0)}\n mov rax, [0x${P.toString(16)}]\n ${acceptAsm(P2M, 1)}\n mov rax, [0x${P2M.toString(16)}]`);
    expect(runTd(td).outcome).toBe('done');
    expect(td.trace.ofType('foreign-read')).toEqual([]);
  });

  it('only a standard MapGPA (R10 = 0) ends a lifetime: the same registers in a vendor call (R10 ≠ 0) do not', () => {
    const { td, m } = guest(`mov rax, [0x${KEPT.toString(16)}]`);
    m.observeVmcall(vmcallSeen({ r10: 1n, r11: 0x10001n, r12: P | SHARED, r13: 0x200000n }));
    m.observeVmcall(vmcallSeen({ r10: 0n, r11: 0x10001n, r12: P, r13: 0x200000n })); // to private: no
    expect(runTd(td).outcome).toBe('done');
    expect(td.trace.ofType('foreign-read')).toEqual([]);
  });
});

describe('TDX foreign content: MapGPA requests that name no RAM', () => {
  // GHCI 1.5 §3.2: R12 the start GPA, R13 the size. A request of 0 bytes, or one that starts past
  // the TD's RAM, converts none of the guest's memory: nothing it reads later is foreign.
  it.each([
    ['of 0 bytes', P | SHARED, 0n],
    ['that starts past RAM', (1n << 40n) | SHARED, 0x200000n],
  ])('a MapGPA %s watches nothing', (_what, r12, r13) => {
    const { td, m } = guest(`mov rax, [0x${KEPT.toString(16)}]\n mov rax, [0x${P.toString(16)}]`);
    m.observeVmcall(vmcallSeen({ r10: 0n, r11: 0x10001n, r12, r13 }));
    expect(runTd(td).outcome).toBe('done');
    expect(td.trace.ofType('foreign-read')).toEqual([]);
  });
});
