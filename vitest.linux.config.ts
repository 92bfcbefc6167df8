// `npm run test:linux`: boots the real Debian cloud kernel fetched into .linux/ (issue 15). Kept
// out of `npm test`: it needs the 14 MB download and about a billion guest instructions.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/linux/**/*.linux.ts'],
    testTimeout: 300_000,
    pool: 'forks',
    poolOptions: { forks: { maxForks: 1, minForks: 1 } },
  },
});
