#!/usr/bin/env node
// The installed CLI entry point: the compiled TypeScript lives in dist/ (built by `npm install`),
// and runs from its one-file bundle there when that is up to date (src/cli/bundled-cli.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(entry)) {
  console.error(`minivisor: not built yet (${entry} is missing); run \`npm install\` in ${root}`);
  process.exit(1);
}
const { runCli } = await import(join(root, 'dist', 'cli', 'bundled-cli.js'));
process.exitCode = await runCli(entry, process.argv.slice(2));
