// The minivisor version, read from the package's own package.json (the one source of truth: the
// CLI's --version and the trace header both report it).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// src/shared/version.ts and dist/shared/version.js both sit two levels below the package root.
const packageJson = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');

let cached: string | undefined;

export function minivisorVersion(): string {
  cached ??= (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
  return cached;
}
