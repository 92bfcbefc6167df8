// Bundles the compiled CLI (dist/cli/main.js and everything it imports, commander included) into
// one CommonJS module inside its wrapper, dist/cli/minivisor.cjs (ASCII only, see below), which bin/minivisor.js runs with a V8 code cache
// (src/cli/bundled-cli.ts says why), and that loader itself into dist/cli/bundled-cli.cjs, so the
// CommonJS bin starts without node's ES module loader. Run after tsc: `npm run build:ts` does both.
// In the bundle every module's import.meta.url is the bundle's own URL: files shipped beside the
// code are found from src/shared/package-root.ts, which holds for both layouts.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli');
const common = { bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning' };

// Node built-in modules that dependencies load when they load, for what a command seldom or never
// needs, rewritten in the bundle's copy of the file (each was ~0.1-3 ms of every command's start,
// issue 11). commander requires node:child_process for the one thing it uses it for, spawning a
// stand-alone executable subcommand, which minivisor has none of (child_process pulls in net,
// stream and dgram: ~3 ms), so it is required at the first spawn instead; its node:process is the
// global process. node-gyp-build loads node:os (~0.5 ms) for os.arch() and os.platform(), which are
// process.arch and process.platform. Should a dependency change such a line, the bundle keeps it as
// it is: slower, never wrong.
const REWRITES = [
  {
    file: /[\\/]commander[\\/]lib[\\/]command\.js$/,
    lines: [
      ["const childProcess = require('node:child_process');", "const childProcess = { spawn: (...args) => require('node:child_process').spawn(...args) };"],
      ["const process = require('node:process');", 'const process = globalThis.process;'],
    ],
  },
  {
    file: /[\\/]node-gyp-build[\\/]node-gyp-build\.js$/,
    lines: [["var os = require('os')", 'var os = { arch: () => process.arch, platform: () => process.platform }']],
  },
];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    for (const { file, lines } of REWRITES) {
      b.onLoad({ filter: file }, (args) => {
        let text = readFileSync(args.path, 'utf8');
        for (const [eager, lazy] of lines) {
          if (text.includes(eager)) text = text.replace(eager, lazy);
          else console.warn(`bundle-cli: ${args.path} no longer has \`${eager}\`; it stays as it is`);
        }
        return { contents: text, loader: 'js' };
      });
    }
  },
};

// Whitespace and comments out, names kept (no minifyIdentifiers): every command reads the bundle
// into a fresh buffer and copies it into a string, and on a host where each fresh page costs a
// fault and a first touch, the third of it that was comments and indentation was ~170 of a
// default boot's ~4,600 page faults (issue 11). Stack traces then point into long lines of the
// bundle rather than short ones: neither is the TypeScript source.
const bundle = join(cli, 'minivisor.cjs');
const { outputFiles: [built] } = await build({
  ...common,
  write: false,
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [lazyBuiltins],
  entryPoints: [join(cli, 'main.js')],
  outfile: bundle,
  define: { 'import.meta.url': '__minivisorBundleUrl' },
  banner: { js: "const __minivisorBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// The loader holds node-gyp-build too (it finds the addon, src/native/addon-file.ts).
await build({ ...common, minifyWhitespace: true, minifySyntax: true, plugins: [lazyBuiltins], entryPoints: [join(cli, 'bundled-cli.js')], outfile: join(cli, 'bundled-cli.cjs') });

// ASCII only, so the loader can take the file as Latin-1 (its bytes are its text) and V8
// holds it one byte a character: esbuild escapes non-ASCII characters in code (its default charset)
// but keeps comments as they are, so theirs become \u escapes, which a comment does not interpret.
const ascii = built.text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
// Inside the CommonJS module wrapper, which the loader compiles as it is (src/cli/bundled-cli.ts),
// with the bundle's SHA-256 on the first line: the key of its code caches, read rather than computed.
const { MODULE_WRAPPER, MODULE_WRAPPER_END, BUNDLE_DIGEST_MARK } = await import(join(cli, 'bundled-cli.js'));
const digest = createHash('sha256').update(`${MODULE_WRAPPER}${ascii}${MODULE_WRAPPER_END}`, 'latin1').digest('hex');
// Written beside it and renamed over it, never rewritten in place: a running command may have the
// old one mapped (src/cli/bundled-cli.ts), and keeps it so.
const partial = `${bundle}.${process.pid}.partial`;
writeFileSync(partial, `${MODULE_WRAPPER}${BUNDLE_DIGEST_MARK}${digest}*/${ascii}${MODULE_WRAPPER_END}`);
renameSync(partial, bundle);
