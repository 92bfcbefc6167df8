// Where the native addon is: shared by its loader (binding.ts) and the CLI's loader
// (src/cli/bundled-cli.ts), which maps the CLI bundle through it, so that both load the same file
// (and node then loads it once).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
// Imported, not required at run time, so that the CLI bundles hold it (scripts/bundle-cli.mjs):
// resolving and compiling it from node_modules was ~2 ms of every command that runs a guest.
import nodeGypBuild from 'node-gyp-build';

/**
 * The addon node-gyp-build picks in `root`/native: a local build (native/build/Release, what `npm install`
 * makes in a clone or a from-source fallback) before the prebuild the package ships
 * (native/prebuilds/linux-x64, scripts/prebuild.mjs).
 */
export function addonFile(root: string): string {
  // node-gyp-build's first choice, without its search (a require of native/package.json, which
  // there is none of, that throws; a directory listing; stats): ~1 ms of every guest run's start (issue 11).
  const localBuild = join(root, 'native', 'build', 'Release', 'minivisor.node');
  if (existsSync(localBuild)) return localBuild;
  try {
    return nodeGypBuild.path(join(root, 'native'));
  } catch (err) {
    const why = err instanceof Error ? err.message.trim().split('\n')[0] : String(err);
    throw new Error(`the native addon is not built and no prebuilt one fits this machine (${why}): run \`npm install\` in ${root}`);
  }
}
