// The minivisor version, read from the package's own package.json (the one source of truth: the
// CLI's --version and the trace header both report it).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.js';

const packageJson = join(PACKAGE_ROOT, 'package.json');

let cached: string | undefined;

export function minivisorVersion(): string {
  cached ??= (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;
  return cached;
}
