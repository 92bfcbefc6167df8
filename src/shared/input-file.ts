// Reading a file the user names (a firmware image, …): only a regular file, and only up to a size
// bound, so `/dev/zero`, `/dev/urandom`, a FIFO or a directory ends in one clear error instead of
// an endless read or a hang on open. The file is opened non-blocking and checked on the open
// descriptor, so it cannot be swapped between the check and the read.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { quoteBytesForError, quoteForError } from './quote.js';

export class InputFileError extends Error {
  override name = 'InputFileError';
}

function kindOf(stat: import('node:fs').Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The whole of `path` if it is a regular file of at most `maxBytes`; InputFileError otherwise. */
export function readInputFile(path: string, what: string, maxBytes: number): Uint8Array {
  const name = `${what} ${quoteForError(path)}`;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputFileError(code === 'ENOENT' ? `${name} does not exist` : `cannot open ${name}: ${code ?? String(err)}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new InputFileError(`${name} is ${kindOf(stat)}; give a regular file`);
    if (stat.size > maxBytes) throw new InputFileError(`${name} is ${stat.size} bytes, more than the ${maxBytes} allowed`);
    // One byte more than fstat promised, so a file that changes while we read is noticed.
    const buf = new Uint8Array(stat.size + 1);
    let got = 0;
    for (let n = -1; n !== 0 && got < buf.length; got += n) n = readSync(fd, buf, got, buf.length - got, null);
    if (got !== stat.size) throw new InputFileError(`${name} changed size while being read`);
    return buf.subarray(0, got);
  } catch (err) {
    if (err instanceof InputFileError) throw err;
    throw new InputFileError(`cannot read ${name}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  } finally {
    closeSync(fd);
  }
}

/** readInputFile, decoded as UTF-8 (invalid bytes become U+FFFD; the parser that follows says what is wrong). */
export function readInputText(path: string, what: string, maxBytes: number): string {
  return Buffer.from(readInputFile(path, what, maxBytes)).toString('utf8');
}

/**
 * readInputFile for a text `format` (`kind`, e.g. "a finding file"): a file with a NUL byte (an image,
 * an archive) or one that is not UTF-8 is refused here, with its first bytes escaped, rather than
 * handed to a parser whose error would quote the raw bytes back to the terminal.
 */
export function readInputTextStrict(path: string, what: string, maxBytes: number, kind: string, format = 'JSON'): string {
  const bytes = readInputFile(path, what, maxBytes);
  const why = bytes.includes(0) ? `binary data, not ${format} text` : !isUtf8(bytes) ? 'not UTF-8 text' : undefined;
  if (why !== undefined) throw new InputFileError(`${what} ${quoteForError(path)} is not ${kind}: ${why} (it starts ${quoteBytesForError(bytes)})`);
  return Buffer.from(bytes).toString('utf8');
}
