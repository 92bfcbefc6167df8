// Where CLI output goes, so tests can capture it without touching process.stdout.
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Set by commands: the process exit status. */
  exitCode: number;
}

export function processIo(): CliIo {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    exitCode: 0,
  };
}
