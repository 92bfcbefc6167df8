import { defineConfig } from 'vitest/config';
import SlowFirstSequencer from './test/helpers/slow-first-sequencer.js';

// Files that need a fresh module graph of their own: a vi.mock of a module others load first
// (host-fuzz-child-death), the module-level state of output-file.ts they inspect, and the CLI
// bundle's loading. Their project resets modules before each file; the worker process is shared.
const FRESH_MODULES = [
  'test/fuzz/host-fuzz-child-death.test.ts',
  'test/unit/shared/output-file.test.ts',
  'test/cli/bundled-cli.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each test file boots its own VMs; two workers match the 2-core CI machine.
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    setupFiles: ['./test/helpers/yield-between-tests.ts'],
    sequence: { sequencer: SlowFirstSequencer },
    pool: 'forks',
    // isolate false: a worker process runs file after file and keeps the modules it loaded.
    // A fresh process and module graph per file cost ~40% of the suite's CPU time (node start,
    // vitest's worker set-up, importing src/ again: 265 s against 163 s, session 14).
    poolOptions: { forks: { maxForks: 2, minForks: 1, isolate: false } },
    projects: [
      { extends: true, test: { name: 'shared-modules', include: ['test/**/*.test.ts', 'src/**/*.test.ts'], exclude: FRESH_MODULES } },
      { extends: true, test: { name: 'fresh-modules', include: FRESH_MODULES, poolOptions: { forks: { isolate: true } } } },
    ],
  },
});
