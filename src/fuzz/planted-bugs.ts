// The planted-bug variants of the stubs (guest/DEFENCES.md, guest/lib/variants.mk) and the finding
// category a campaign must report for each: what `npm run bench:fuzz` times and the tests check.
// e820-unchecked is not here: what its decompressor lets through, the kernel's own checks stop
// (overlapping memory is freed twice, or its accept returns ALREADY_ACCEPTED), so every run of it
// ends detected (defence in depth; test/guest/boot/planted-bugs.test.ts shows it gets further).
import type { StubVariant } from '../boot/images.js';
import type { AttackPlatform } from './attack-program.js';
import type { FindingCategory } from './oracle.js';

export const PLANTED_BUGS: readonly { variant: StubVariant; platform: AttackPlatform; expect: FindingCategory }[] = [
  { variant: 'accept-already-accepted', platform: 'tdx', expect: 'double-acceptance' },
  { variant: 'accept-already-accepted', platform: 'snp', expect: 'double-acceptance' },
  { variant: 'map-gpa-unbounded-retry', platform: 'tdx', expect: 'liveness' },
  { variant: 'reaccept-skipped', platform: 'tdx', expect: 'foreign-content' },
  { variant: 'trusts-injected-exception', platform: 'tdx', expect: 'double-acceptance' },
  { variant: 'trusts-injected-exception', platform: 'snp', expect: 'double-acceptance' },
  { variant: 'psc-error-ignored', platform: 'tdx', expect: 'unchecked-state-change' },
  { variant: 'psc-error-ignored', platform: 'snp', expect: 'unchecked-state-change' },
];
