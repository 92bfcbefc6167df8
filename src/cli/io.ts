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

/**
 * Linux's memory devices, /dev/null, /dev/zero, /dev/full, /dev/random and the like: character
 * devices of major number 1, never a terminal (Documentation/admin-guide/devices.txt, "1 char
 * Memory devices").
 */
const MEMORY_DEVICES_MAJOR = 1;

/** One of Linux's memory devices (/dev/null, /dev/zero, /dev/full, …): see MEMORY_DEVICES_MAJOR. */
export function isMemoryDevice(stat: import('node:fs').Stats): boolean {
  return stat.isCharacterDevice() && deviceMajor(stat.rdev) === MEMORY_DEVICES_MAJOR;
}

/** The major number of a device number as Linux packs it (glibc's gnu_dev_major: bits 8-19 and 44-63). */
export function deviceMajor(rdev: number): number {
  return (Math.floor(rdev / 0x100) & 0xfff) | (Math.floor(rdev / 0x1_0000_0000) & ~0xfff);
}

/**
 * `fd` is a terminal. Pipes and files, what most runs write to, and the memory devices (`2>/dev/null`)
 * are told apart without loading node:tty, which loads node:net and the stream modules with it:
 * ~3 ms of CPU for a command whose stderr goes to /dev/null (issue 11).
 */
function isTerminal(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    if (!stat.isCharacterDevice() || isMemoryDevice(stat)) return false;
    return (createRequire(import.meta.url)('node:tty') as typeof import('node:tty')).isatty(fd);
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
