// Where CLI output goes, so tests can capture it without touching process.stdout.
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Set by commands: the process exit status. */
  exitCode: number;
}

/**
 * stdout and stderr of the process. A reader that goes away (`minivisor boot | head -1`: EPIPE)
 * or a full disk (`> /dev/full`: ENOSPC) silences that stream: the run finishes and exits with
 * its outcome's status, with no stack trace.
 */
export function processIo(): CliIo {
  const guarded = (stream: NodeJS.WriteStream) => {
    let broken = false;
    stream.on('error', () => { broken = true; });
    return (line: string) => {
      if (broken) return;
      try {
        stream.write(`${line}\n`);
      } catch {
        broken = true;
      }
    };
  };
  return { out: guarded(process.stdout), err: guarded(process.stderr), exitCode: 0 };
}
