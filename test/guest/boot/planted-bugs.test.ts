// The planted-bug variants (guest/lib/variants.mk, guest/DEFENCES.md): for each, one scripted
// attack that the honest stubs detect (they stop on the fatal path with the expected reason) and
// the variant does not (it goes on past that check). The fuzz oracle then classifies the
// variant's runs; here we only show that the planted bug is what lets the attack through.
import { describe, expect, it } from 'vitest';
import { ABI } from '../../../src/boot/layout.js';
import { parseBootOptions, type RawBootOptions } from '../../../src/cli/boot-options.js';
import { TdvmcallStatus } from '../../../src/platform/tdx/status.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import type { VmmOverride } from '../../../src/boot/platforms.js';
import type { StubVariant } from '../../../src/boot/images.js';
import { augRange, honestTdxPolicy, removePrivateRange } from '../../../src/vmm/tdx/honest-vmm.js';
import {
  mapGpaKeepsPrivatePages, mapOverride, snpAfterPsc, snpAtFirstSharedPsc, snpLaunchPageBeforeLaunch, snpPscSkipsAssignedPage,
  tdxAtKernelMapGpa, tdxPageAddBeforeLaunch, tdxPolicy,
} from '../../helpers/attacks.js';
import { GHCB_OFFSET } from '../../../src/platform/snp/ghcb-page.js';

const M = 1n << 20n;
/** A page of the kernel's second workload chunk: freed, reallocated and refilled before it is verified. */
const REFILLED_PAGE = 0x101000n;

interface PlantedBugAttack {
  variant: StubVariant;
  platform: 'tdx' | 'snp';
  attack: string;
  vmm: () => VmmOverride;
  /** What the honest stubs stop with. */
  honest: RegExp;
  /** The honest stubs run with this variant instead (map-from-config: the same firmware fixture). */
  honestVariant?: StubVariant;
  /** The variant ends the boot `done` (otherwise: it only gets past the check). */
  variantDone: boolean;
  flags?: RawBootOptions;
}

const PLANTED_BUG_ATTACKS: PlantedBugAttack[] = [
  { variant: 'accept-already-accepted', platform: 'tdx', attack: 'PAGE.ADD of a page inside the pre-accepted range before launch', vmm: () => ({ tdxPrelaunch: tdxPageAddBeforeLaunch(0x600000n) }), honest: /^tdx_accept_already_accepted/, variantDone: true },
  { variant: 'accept-already-accepted', platform: 'snp', attack: 'a page validated at launch and skipped by the PSC', vmm: () => ({ snpPrelaunch: snpLaunchPageBeforeLaunch(0x600000n), snp: snpPscSkipsAssignedPage(0x600000n) }), honest: /^snp_pvalidate_unchanged/, variantDone: true },
  { variant: 'map-gpa-unbounded-retry', platform: 'tdx', attack: 'MapGPA RETRY without progress ten times, then honest', vmm: () => {
    let stalls = 0;
    return tdxPolicy({
      mapGpa: (ctx, call) => (stalls++ < 10 ? { kind: 'return', regs: { r10: TdvmcallStatus.RETRY, r11: call.regs.r12 } } : honestTdxPolicy.mapGpa(ctx, call)),
    });
  }, honest: /^tdx_map_gpa_no_progress/, variantDone: true },
  { variant: 'psc-error-ignored', platform: 'tdx', attack: 'MapGPA converts, then answers INVALID_OPERAND', vmm: () => tdxPolicy({
    mapGpa: (ctx, call) => {
      const answer = honestTdxPolicy.mapGpa(ctx, call);
      return answer.kind === 'return' && answer.regs.r10 === TdvmcallStatus.SUCCESS ? { kind: 'return', regs: { r10: TdvmcallStatus.INVALID_OPERAND } } : answer;
    },
  }), honest: /^tdx_map_gpa_failed/, variantDone: true },
  { variant: 'psc-error-ignored', platform: 'snp', attack: 'every PSC is done, then answered with an error in SW_EXITINFO2', vmm: () => snpAfterPsc((host, g) => host.hostMemory.writeU64(g + BigInt(GHCB_OFFSET.swExitInfo2), (1n << 32n) | 2n)), honest: /^snp_psc_failed/, variantDone: true },
  { variant: 'e820-unchecked', platform: 'tdx', attack: 'a memory map whose unaccepted RAM overlaps accepted RAM', honestVariant: 'map-from-config', vmm: () => mapOverride([
    { addr: 0n, size: ABI.MV_FIRMWARE_RESERVED_GPA, type: 1 },
    { addr: ABI.MV_FIRMWARE_RESERVED_GPA, size: ABI.MV_FIRMWARE_RESERVED_END - ABI.MV_FIRMWARE_RESERVED_GPA, type: 2 },
    { addr: ABI.MV_FIRMWARE_RESERVED_END, size: 64n * M - ABI.MV_FIRMWARE_RESERVED_END, type: 1 },
    { addr: 60n * M, size: 68n * M, type: 15 },
  ]), honest: /^e820_overlap/, variantDone: false },
  { variant: 'reaccept-skipped', platform: 'tdx', attack: 'MapGPA(shared) keeps the private pages, MapGPA(private) re-adds nothing', vmm: () => mapGpaKeepsPrivatePages(), honest: /^tdx_accept_already_accepted/, variantDone: true },
  { variant: 'trusts-injected-exception', platform: 'tdx', attack: 'a workload page removed and re-added (BLOCK, TRACK, REMOVE, AUG) at the kernel\'s first MapGPA', vmm: () => tdxAtKernelMapGpa((ctx) => {
    removePrivateRange(ctx.host, REFILLED_PAGE, REFILLED_PAGE + 0x1000n);
    augRange(ctx.host, REFILLED_PAGE, REFILLED_PAGE + 0x1000n);
  }), honest: /^unexpected_ve/, variantDone: true },
  { variant: 'trusts-injected-exception', platform: 'snp', attack: 'a workload page PSMASHed and re-assigned (RMPUPDATE) at the first PSC to shared', vmm: () => snpAtFirstSharedPsc((host) => {
    host.psmash(REFILLED_PAGE & ~0x1fffffn);
    host.rmpUpdate(REFILLED_PAGE, { assigned: true, pageSize: '4k', gpa: REFILLED_PAGE, asid: host.asid });
  }), honest: /^unexpected_vc/, variantDone: true },
];

describe('planted bugs: the honest stubs detect the attack, the variant goes on', () => {
  it.each(PLANTED_BUG_ATTACKS.map((a) => [`${a.variant} on ${a.platform}: ${a.attack}`, a] as const))('%s', (_name, a) => {
    const boot = (variant?: StubVariant) => bootGuest(
      parseBootOptions({ platform: a.platform, memory: '128M', workload: '4M', ...a.flags, ...(variant ? { variant } : {}) }),
      { vmm: a.vmm() },
    );
    const honest = boot(a.honestVariant);
    const planted = boot(a.variant);
    try {
      expect(honest.result.outcome).toBe('guest-fatal');
      expect(honest.result.outcomeReason).toMatch(a.honest);
      expect(planted.result.outcomeReason).not.toMatch(a.honest);
      if (a.variantDone) expect(planted.result.outcome, planted.result.outcomeReason).toBe('done');
      else expect(planted.report.stages.length).toBeGreaterThan(honest.report.stages.length);
    } finally {
      honest.platform.machine.close();
      planted.platform.machine.close();
    }
  });
});
