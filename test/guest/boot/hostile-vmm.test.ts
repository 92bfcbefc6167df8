// A hostile VMM replaces one decision of the honest one; the guest stubs must notice and stop
// through their platform's fatal path, as Linux does (tdx-snp-architecture.md part C).
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { GHCB_OFFSET, SVM_EXIT } from '../../../src/platform/snp/ghcb-page.js';
import type { SnpVmmHandle } from '../../../src/platform/snp/vmm-handle.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { HonestSnpVmm } from '../../../src/vmm/snp/honest-vmm.js';
import { honestTdxPolicy, type TdxVmmPolicy } from '../../../src/vmm/tdx/honest-vmm.js';

const TDVMCALL_RETRY = 1n;

/** The honest SNP VMM, except that it tampers with the GHCB after each Page State Change. */
function snpPscTamperer(tamper: (host: SnpVmmHandle, ghcb: bigint) => void) {
  return (echo: (line: string) => void) => {
    const vmm = new HonestSnpVmm({ echo });
    const honest = vmm.onVmgexit.bind(vmm);
    vmm.onVmgexit = (host, exit) => {
      const answer = honest(host, exit);
      const ghcb = exit.ghcbMsr;
      if ((ghcb & 0xfffn) === 0n && host.hostMemory.readU64(ghcb + BigInt(GHCB_OFFSET.swExitCode)) === BigInt(SVM_EXIT.PSC)) tamper(host, ghcb);
      return answer;
    };
    return vmm;
  };
}

describe('hostile VMM', () => {
  it('TDX: MapGPA RETRY with a resume address outside the range is fatal for the guest', () => {
    const lie: TdxVmmPolicy = {
      ...honestTdxPolicy,
      mapGpa: () => ({ kind: 'return', regs: { r10: TDVMCALL_RETRY, r11: 0xdead000n } }),
    };
    const run = bootGuest(parseBootOptions({ platform: 'tdx', memory: '512M' }), { vmm: { tdx: lie } });
    expect(run.result.outcome).toBe('guest-fatal');
    expect(run.result.outcomeReason).toMatch(/^tdx_map_gpa_retry_out_of_range/);
    run.platform.machine.close();
  });

  it('TDX: MapGPA RETRY without progress is fatal after Linux\'s three retries', () => {
    const stall: TdxVmmPolicy = {
      ...honestTdxPolicy,
      // Resume exactly where the call started: no progress.
      mapGpa: (_ctx, call) => ({ kind: 'return', regs: { r10: TDVMCALL_RETRY, r11: call.regs.r12 } }),
    };
    const run = bootGuest(parseBootOptions({ platform: 'tdx', memory: '512M' }), { vmm: { tdx: stall } });
    expect(run.result.outcome).toBe('guest-fatal');
    expect(run.result.outcomeReason).toMatch(/^tdx_map_gpa_no_progress/);
    run.platform.machine.close();
  });

  it('SNP: a Page State Change that reports an error in SW_EXITINFO2 terminates the guest', () => {
    const vmm = snpPscTamperer((host, ghcb) => host.hostMemory.writeU64(ghcb + BigInt(GHCB_OFFSET.swExitInfo2), (1n << 32n) | 2n));
    const run = bootGuest(parseBootOptions({ platform: 'snp', memory: '512M' }), { vmm: { snp: vmm } });
    expect(run.result.outcome).toBe('guest-fatal');
    expect(run.result.outcomeReason).toMatch(/snp_psc_failed/);
    run.platform.machine.close();
  });

  it('SNP: a Page State Change whose progress goes backwards terminates the guest', () => {
    const vmm = snpPscTamperer((host, ghcb) => {
      const header = ghcb + BigInt(GHCB_OFFSET.sharedBuffer);
      host.hostMemory.writeU16(header + 2n, host.hostMemory.readU16(header + 2n) + 1);  // end_entry grows
    });
    const run = bootGuest(parseBootOptions({ platform: 'snp', memory: '512M' }), { vmm: { snp: vmm } });
    expect(run.result.outcome).toBe('guest-fatal');
    expect(run.result.outcomeReason).toMatch(/snp_psc_backwards/);
    run.platform.machine.close();
  });
});
