// The package's root directory, for the files it ships beside the code (package.json, the stubs,
// the native addon, the guest SDK, the compiled workers). Every module that reads one of them
// starts here rather than from its own location: the CLI also runs as one bundled file
// (scripts/bundle-cli.mjs), where each module's import.meta.url is the bundle's.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// src/shared/package-root.ts, dist/shared/package-root.js and the bundle dist/cli/minivisor.cjs
// all sit two levels below the root.
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
