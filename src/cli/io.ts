// Where CLI output goes, so tests can capture it without touching process.stdout.
export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** Set by commands: the process exit status. */
  exitCode: number;
  /** stderr is a terminal: live status may redraw one line (`errRaw` writes without a newline). */
  errTty?: boolean;
  errRaw?(text: string): void;
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
    return (text: string) => {
      if (broken) return;
      try {
        stream.write(text);
      } catch {
        broken = true;
      }
    };
  };
  const out = guarded(process.stdout);
  const err = guarded(process.stderr);
  return {
    out: (line) => out(`${line}\n`), err: (line) => err(`${line}\n`), exitCode: 0,
    errTty: process.stderr.isTTY === true, errRaw: err,
  };
}
