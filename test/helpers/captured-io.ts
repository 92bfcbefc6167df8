// A CliIo that keeps what a command prints, line by line, for tests that run `main` in-process.
import type { CliIo } from '../../src/cli/io.js';

export function capture(): CliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l) => stdout.push(l), err: (l) => stderr.push(l), exitCode: 0 };
}
