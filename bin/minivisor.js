#!/usr/bin/env node
// The installed CLI entry point: the compiled TypeScript lives in dist/ (built by `npm install`),
// and runs from its one-file bundle there when that is up to date (src/cli/bundled-cli.ts). This
// file is CommonJS (bin/package.json) and so is the bundle's loader, dist/cli/bundled-cli.cjs:
// node then starts without its ES module loader, ~6 ms of every command (issue 11).
'use strict';
const { existsSync, statSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const entry = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(entry)) {
  console.error(`minivisor: not built yet (${entry} is missing); run \`npm install\` in ${root}`);
  process.exit(1);
}
// The CommonJS loader when the bundler made it from the current dist/cli/bundled-cli.js: in a clone
// (it has tsconfig.json) tsc may have rewritten dist/ since; a package's dist/ was bundled once, by
// `npm pack`'s prepack, and unpacking it gives its files new mtimes in no particular order.
const loader = join(root, 'dist', 'cli', 'bundled-cli.js');
const loaderCjs = join(root, 'dist', 'cli', 'bundled-cli.cjs');
const fresh = existsSync(loaderCjs) && (!existsSync(join(root, 'tsconfig.json')) || statSync(loaderCjs).mtimeMs >= statSync(loader).mtimeMs);
// A command stopped by SIGINT, SIGTERM or SIGHUP saves its work and returns 128 + the signal's number
// (`fuzz`); the process then ends by that signal, so the shell that ran it sees an interruption
// and a script or loop around it stops too, not an ordinary exit it would carry on after.
const ENDED_BY_SIGNAL = { 129: 'SIGHUP', 130: 'SIGINT', 143: 'SIGTERM' };
// Otherwise the process ends at once: every command has finished its work when runCli returns
// and writes its output and files synchronously (src/cli/io.ts), so nothing is left in flight,
// and node's teardown of its heap and of the addon's mappings is work the kernel does anyway at
// exit: after a default boot's exit event the process used ~5-10 ms of CPU instead of ~14-18 (issue 11).
(fresh ? Promise.resolve(require(loaderCjs)) : import(loader))
  .then(({ runCli }) => runCli(entry, process.argv.slice(2)))
  .then((status) => {
    process.exitCode = status;
    if (Object.hasOwn(ENDED_BY_SIGNAL, status)) process.kill(process.pid, ENDED_BY_SIGNAL[status]);
    else process.exit(status);
  });
