// Runs the slowest test files first, so that neither worker is left with one of them at the end
// while the other idles. Vitest orders files by their last durations when it has them
// (node_modules/.vite), and otherwise, as in a fresh clone on CI, by size: several of the slowest
// files are small (self-modifying guests, large guests, the packed package) and came late.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Slowest first (session 14, whole suite on 2 cores; seconds per file under load in brackets). */
const SLOW_FIRST = [
  'test/package/installed-tarball.test.ts', // [55-90: builds the prebuilt addon in a fresh clone]
  'test/cli/large-guests.test.ts', // [15-45]
  'test/guest/hostile/self-modifying.test.ts', // [15-35]
  'test/linux/real-decompressor.test.ts', // [25-32]
  'test/unit/boot/lz4.test.ts', // [13-24]
  'test/cli/hostile-input.test.ts', // [14-18]
  'test/browser/perfetto-ui.test.ts', // [12-16]
  'test/cli/shrink-interrupt.test.ts', // [10-17]
  'test/guest/boot/handover.test.ts', // [10-14]
];

export default class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const i = SLOW_FIRST.findIndex((path) => spec.moduleId.endsWith(`/${path}`));
      return i < 0 ? SLOW_FIRST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
