// The planted-bug variants of the stubs (guest/DEFENCES.md, guest/lib/variants.mk) and the finding
// category a campaign must report for each: what `npm run bench:fuzz` times and the tests check.
// e820-unchecked's runs all end detected (what its decompressor lets through, the kernel's own
// checks stop: overlapping memory is freed twice, or its accept returns ALREADY_ACCEPTED); what the
// oracle finds is the record its decompressor handed the kernel, checked at that handover
// (stage-handover.ts): accepted RAM recorded as unaccepted.
import type { StubVariant } from '../boot/images.js';
import type { AttackPlatform } from './attack-program.js';
import { DEFAULT_EXECUTION_BUDGET, type FuzzTarget } from './executor.js';
import type { FindingCategory } from './oracle.js';

export interface PlantedBug {
  variant: StubVariant;
  platform: AttackPlatform;
  expect: FindingCategory;
  /** The same stubs without the planted bug, where they differ from the honest build in more than the bug. */
  withoutBug?: StubVariant;
}

export const PLANTED_BUGS: readonly PlantedBug[] = [
  { variant: 'accept-already-accepted', platform: 'tdx', expect: 'double-acceptance' },
  { variant: 'accept-already-accepted', platform: 'snp', expect: 'double-acceptance' },
  { variant: 'map-gpa-unbounded-retry', platform: 'tdx', expect: 'liveness' },
  { variant: 'reaccept-skipped', platform: 'tdx', expect: 'foreign-content' },
  { variant: 'trusts-injected-exception', platform: 'tdx', expect: 'double-acceptance' },
  { variant: 'trusts-injected-exception', platform: 'snp', expect: 'double-acceptance' },
  { variant: 'psc-error-ignored', platform: 'tdx', expect: 'unchecked-state-change' },
  { variant: 'psc-error-ignored', platform: 'snp', expect: 'unchecked-state-change' },
  // Built with the map-from-config fixture firmware (which passes the VMM's map through).
  { variant: 'e820-unchecked', platform: 'tdx', expect: 'latent-double-acceptance', withoutBug: 'map-from-config' },
  { variant: 'e820-unchecked', platform: 'snp', expect: 'latent-double-acceptance', withoutBug: 'map-from-config' },
];

/**
 * The configuration every planted-bug campaign runs (bench and tests alike): the CLI's defaults
 * (kernel stage, 128 MiB, 1 MiB workload, the default per-execution budget), 64 MiB pre-accepted.
 */
export function plantedBugTarget(platform: AttackPlatform, variant?: StubVariant): FuzzTarget {
  return {
    platform, stage: 'kernel', memoryBytes: 128n << 20n, workloadBytes: 1n << 20n, preAccept: 64n << 20n, accept: 'lazy',
    unitBytes: 0x200000n, guestSeed: 1n, maxInstructions: DEFAULT_EXECUTION_BUDGET, ...(variant ? { variant } : {}),
  };
}
