// Where CLI output goes, so tests can capture it without touching process.stdout.
import { fstatSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';

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
 * Writes all of `bytes` to the descriptor `fd` before it returns, as process.stdout does on Linux
 * for files, pipes and terminals; a non-blocking descriptor that is full is waited on a moment.
 * Throws the write's error (EPIPE when the reader went away, ENOSPC, ...).
 */
export function writeFullySync(fd: number, bytes: Uint8Array): void {
  let rest = bytes;
  while (rest.length > 0) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
  }
}

/** `fd` is a terminal. Pipes and files, what most runs write to, are told apart without loading node:tty (and with it node:net). */
function isTerminal(fd: number): boolean {
  try {
    return fstatSync(fd).isCharacterDevice() && (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(fd);
  } catch {
    return false;
  }
}

/**
 * stdout and stderr of the process, written with writeSync rather than through process.stdout and
 * process.stderr: for a pipe those are sockets, and making them loaded node's net and stream
 * modules, ~2-3 ms of every command's start (issue 11). A reader that goes away
 * (`minivisor boot | head -1`: EPIPE) or a full disk (`> /dev/full`: ENOSPC) silences that
 * stream: the run finishes and exits with its outcome's status, with no stack trace.
 */
export function processIo(): CliIo {
  const guarded = (fd: number) => {
    let broken = false;
    return (text: string) => {
      if (broken) return;
      try {
        writeFullySync(fd, Buffer.from(text, 'utf8'));
      } catch {
        broken = true;
      }
    };
  };
  const out = guarded(1);
  const err = guarded(2);
  return {
    out: (line) => out(`${line}\n`), err: (line) => err(`${line}\n`), exitCode: 0,
    errTty: isTerminal(2), errRaw: err,
  };
}
