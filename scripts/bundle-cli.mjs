// Bundles the compiled CLI (dist/cli/main.js and everything it imports, commander included) into
// one CommonJS module inside its wrapper, dist/cli/minivisor.cjs (ASCII only, see below), which bin/minivisor.js runs with a V8 code cache
// (src/cli/bundled-cli.ts says why), and that loader itself into dist/cli/bundled-cli.cjs, so the
// CommonJS bin starts without node's ES module loader. Run after tsc: `npm run build:ts` does both.
// In the bundle every module's import.meta.url is the bundle's own URL: files shipped beside the
// code are found from src/shared/package-root.ts, which holds for both layouts.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli');
const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning' };

// commander requires node:child_process when it loads, for the one thing it uses it for: spawning
// a stand-alone executable subcommand, which minivisor has none of. Loading child_process (and the
// net, stream and dgram modules it pulls in) was ~3 ms of every command's start (issue 11), so the
// bundle's copy requires it at the first spawn instead. Should commander change that line, the
// bundle keeps the eager require: slower, never wrong.
const EAGER_CHILD_PROCESS = "const childProcess = require('node:child_process');";
const lazyChildProcess = {
  name: 'commander-lazy-child-process',
  setup(b) {
    b.onLoad({ filter: /[\\/]commander[\\/]lib[\\/]command\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes(EAGER_CHILD_PROCESS)) {
        console.warn(`bundle-cli: ${args.path} no longer has \`${EAGER_CHILD_PROCESS}\`; child_process stays eager`);
        return undefined;
      }
      const lazy = "const childProcess = { spawn: (...args) => require('node:child_process').spawn(...args) };";
      return { contents: text.replace(EAGER_CHILD_PROCESS, lazy), loader: 'js' };
    });
  },
};

// Whitespace and comments out, names kept (no minifyIdentifiers): every command reads the bundle
// into a fresh buffer and copies it into a string, and on a host where each fresh page costs a
// fault and a first touch, the third of it that was comments and indentation was ~170 of a
// default boot's ~4,600 page faults (issue 11). Stack traces then point into long lines of the
// bundle rather than short ones: neither is the TypeScript source.
await build({
  ...common,
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [lazyChildProcess],
  entryPoints: [join(cli, 'main.js')],
  outfile: join(cli, 'minivisor.cjs'),
  define: { 'import.meta.url': '__minivisorBundleUrl' },
  banner: { js: "const __minivisorBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
await build({ ...common, entryPoints: [join(cli, 'bundled-cli.js')], outfile: join(cli, 'bundled-cli.cjs') });

// ASCII only, so the loader can take the file as Latin-1 (a copy, where UTF-8 needs decoding) and V8
// holds it one byte a character: esbuild escapes non-ASCII characters in code (its default charset)
// but keeps comments as they are, so theirs become \u escapes, which a comment does not interpret.
const bundle = join(cli, 'minivisor.cjs');
const text = readFileSync(bundle, 'utf8');
const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
// Inside the CommonJS module wrapper, which the loader compiles as it is (src/cli/bundled-cli.ts),
// with the bundle's SHA-256 on the first line: the key of its code caches, read rather than computed.
const { MODULE_WRAPPER, MODULE_WRAPPER_END, BUNDLE_DIGEST_MARK } = await import(join(cli, 'bundled-cli.js'));
const digest = createHash('sha256').update(`${MODULE_WRAPPER}${ascii}${MODULE_WRAPPER_END}`, 'latin1').digest('hex');
writeFileSync(bundle, `${MODULE_WRAPPER}${BUNDLE_DIGEST_MARK}${digest}*/${ascii}${MODULE_WRAPPER_END}`);
