// The library entry point (`import … from 'minivisor'`): a small, deliberate surface. Everything
// else under src/ is internal and may change without notice.
//
//   boot(config)      one boot, returning the same object `minivisor boot --json` prints
//   BootConfig        what a boot is (platform, memory, acceptance policy, seed, your firmware)
//   Machine           the emulated CPU and memory under both platforms
//   TdxPlatform, SnpPlatform and their one Platform interface (page states, run loop)
//   TdxVmmPolicy, SnpVmmPolicy   what a (possibly hostile) VMM decides
//   Trace             the structured, deterministic event trace
//   verify(run)       the guest's own record of accepted memory against the hardware's page states
import { bootGuest, type BootResult, type BootIo } from './boot/boot-guest.js';
import type { BootConfig } from './boot/boot-config.js';

export type { BootConfig, PlatformName } from './boot/boot-config.js';
export type { BootResult, BootRun, BootIo } from './boot/boot-guest.js';
export type { VmmOverride } from './boot/platforms.js';
export { bootGuest } from './boot/boot-guest.js';
export { Machine } from './cpu/machine.js';
export type { Platform, PlatformKind, PageState, PlatformStep } from './platform/platform.js';
export { TdxPlatform } from './platform/tdx/tdx-platform.js';
export { SnpPlatform } from './platform/snp/snp-cpu.js';
export type { TdxVmmPolicy } from './vmm/tdx/honest-vmm.js';
export { honestTdxPolicy } from './vmm/tdx/honest-vmm.js';
export type { SnpVmmPolicy } from './vmm/snp/policy.js';
export { HonestSnpVmm } from './vmm/snp/honest-vmm.js';
export { Trace, traceLine, traceSha256OfJsonLines, type TraceEvent, type TraceValue } from './shared/trace.js';
export type { OutcomeKind, RunOutcome } from './shared/outcome.js';
export { GuestImageError } from './boot/images.js';
export { BootConfigError, checkBootConfig } from './boot/boot-config.js';
export { minivisorVersion } from './shared/version.js';
export { verifyBoot as verify, verifyAcceptance, describeMismatch, type VerifyReport, type VerifyMismatch, type PageStateSource } from './boot/verify.js';
export { readGuestMemoryRecord, type GuestMemoryRecord, type GuestMemoryRun, type GuestMemoryReader } from './boot/guest-record.js';

/**
 * Boots `config` (firmware -> decompressor -> kernel under an honest VMM unless `io.vmm` replaces
 * it) and returns the result `minivisor boot --json` prints. The emulated machine is released
 * before it returns; use `bootGuest` to keep it (e.g. to inspect memory).
 */
export function boot(config: BootConfig, io: BootIo = {}): BootResult {
  const run = bootGuest(config, io);
  run.platform.machine.close();
  return run.result;
}
