// The stubs' fatal checks that no VMM action reaches (guest/DEFENCES.md, test column F): they
// guard against a faulty TDX module or a corrupted private page. Each is reached here by a fault
// injected in this file only (a wrapped TdModule.handleExit: a TDCALL register changed, or a private
// byte written through the machine's raw memory), to show the check works and is not dead code. The
// hardware model and the VMM handle in src/ stay as they are: nothing here is an attack a VMM can run.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bootGuest, type BootRun } from '../../../src/boot/boot-guest.js';
import { parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import type { VmExit } from '../../../src/cpu/exits.js';
import { TdcallLeaf } from '../../../src/platform/tdx/tdcall.js';
import { TdModule } from '../../../src/platform/tdx/td-module.js';

/** TDX GHCI: TDG.VP.VMCALL<MapGPA> sub-function in R11. */
const TDVMCALL_MAP_GPA = 0x10001n;

type Fault = (td: TdModule, exit: VmExit) => void;

const originalHandleExit = TdModule.prototype.handleExit;
afterEach(() => vi.restoreAllMocks());

/**
 * Boots a TDX guest (128 MiB, 4 MiB workload unless told) with `before` run on every exit the
 * TDX module handles, before the module sees it, and `after` once the module has answered.
 */
function bootWithFault(raw: RawBootOptions, before?: Fault, after?: Fault): BootRun {
  vi.spyOn(TdModule.prototype, 'handleExit').mockImplementation(function (this: TdModule, exit: VmExit) {
    before?.(this, exit);
    const step = originalHandleExit.call(this, exit);
    after?.(this, exit);
    return step;
  });
  return bootGuest(parseBootOptions({ platform: 'tdx', memory: '128M', workload: '4M', ...raw }));
}

function expectFatal(run: BootRun, reason: RegExp): void {
  const { result } = run;
  expect(result.outcome, `${result.outcomeReason}\n${result.console.slice(-1500)}`).toBe('guest-fatal');
  expect(result.outcomeReason).toMatch(reason);
}

const isTdcall = (exit: VmExit, leaf: number): boolean => exit.kind === 'tdcall' && exit.leaf === BigInt(leaf);

describe('platform checks behind a trusted TDX module (guest/lib/platform.c), reached by a faulty module', () => {
  it('tdx_vp_info_failed: TDG.VP.INFO with its RAX version field flipped to 1 is refused (OPERAND_INVALID)', () => {
    // The module's own dispatcher answers: only TDG.VM.RD has versions beyond 0 (tdx_td_dispatcher.c).
    let flipped = false;
    const run = bootWithFault({}, (td, exit) => {
      if (flipped || !isTdcall(exit, TdcallLeaf.VP_INFO)) return;
      flipped = true;
      td.machine.vcpu.regs.rax |= 1n << 16n;
    });
    expectFatal(run, /^tdx_vp_info_failed 0xc000010000000000/);
  });

  for (const gpaw of [50, 47]) {
    it(`tdx_bad_gpaw: TDG.VP.INFO answers GPAW ${gpaw} (the module sets 48 or 52 only, TDH.MNG.INIT)`, () => {
      let lied = false;
      const run = bootWithFault({}, undefined, (td, exit) => {
        if (lied || !isTdcall(exit, TdcallLeaf.VP_INFO)) return;
        lied = true;
        td.machine.vcpu.regs.rcx = BigInt(gpaw);
      });
      expectFatal(run, new RegExp(`^tdx_bad_gpaw 0x${gpaw.toString(16)}\\b`));
    });
  }

  it('tdx_vmcall_failed: the kernel\'s first MapGPA TDG.VP.VMCALL with RAX exposed in its RCX mask is refused (OPERAND_INVALID)', () => {
    // tdg_vp_vmcall.c: RCX bits 0 (RAX), 1 (RCX), 4 (RSP) may not be exposed. The firmware's
    // MapGPA of its console page is left alone so the reason reaches the console.
    let mapGpas = 0;
    const run = bootWithFault({}, (td, exit) => {
      const regs = td.machine.vcpu.regs;
      if (!isTdcall(exit, TdcallLeaf.VP_VMCALL) || regs.r11 !== TDVMCALL_MAP_GPA || mapGpas++ !== 1) return;
      regs.rcx |= 1n;
    });
    expectFatal(run, /^tdx_vmcall_failed 0xc000010000000001/);
  });
});

describe('the wakeup mailbox (guest/kernel/smp.c), reached by a module that miscounts the vCPUs', () => {
  it('ap_wakeup_timeout: TDG.VP.INFO reports 2 vCPUs (R8 NUM_VCPUS) in a TD with one: nobody answers the mailbox', () => {
    // A --firmware whose APs never poll the mailbox reaches it too, but then every PAUSE of the
    // waiting BSP hands the turn to the spinning AP, and a 2-vCPU boot runs out of its default
    // instruction budget (2e9) before the BSP's 2^22 polls end.
    const run = bootWithFault({}, undefined, (td, exit) => {
      if (isTdcall(exit, TdcallLeaf.VP_INFO)) td.machine.vcpu.regs.r8 = 2n | (2n << 32n); // NUM_VCPUS | MAX_VCPUS << 32
    });
    expectFatal(run, /^ap_wakeup_timeout 0x1\b/);
  });
});
