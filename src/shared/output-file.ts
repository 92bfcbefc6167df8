// Writing a file the user names (a trace, …) without ever damaging an input or leaving a
// half-written result under the final name: the data goes to a temporary file in the same
// directory, renamed into place by commit(). A target that is not a regular file (/dev/null, a
// FIFO, /dev/stdout) is written directly: renaming over it would replace the device node.
// writeFileAtomic does the same for a whole text at once (the files of a fuzz output directory).
import { closeSync, constants, existsSync, lstatSync, openSync, readdirSync, realpathSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { quoteForError } from './quote.js';

export class OutputFileError extends Error {
  override name = 'OutputFileError';
  /** The errno code behind it, if any (EPIPE: a reader that went away). */
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

/** Same file: same device and inode when both exist, else the same resolved path. */
export function sameFile(a: string, b: string): boolean {
  try {
    const sa = statSync(a);
    const sb = statSync(b);
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    const real = (p: string) => { try { return realpathSync(p); } catch { return join(realpathSync.native(dirname(resolve(p))), basename(p)); } };
    try { return real(a) === real(b); } catch { return false; }
  }
}

let sequence = 0;

/** `.NAME.tmp-PID-SEQ`: the temporary file an OutputFile for NAME writes (see the constructor). */
function tempName(path: string, pid: number, seq: number): string {
  return `.${basename(path)}.tmp-${pid}-${seq}`;
}

/** The process `pid` still exists (signal 0 checks without sending; EPERM: it exists, not ours). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `.NAME.tmp-PID-SEQ` of a process that no longer exists (not ours, then: this process is running). */
function isStaleTemp(name: string, prefix: string): boolean {
  if (!name.startsWith(prefix)) return false;
  const m = /^(\d+)-(\d+)$/.exec(name.slice(prefix.length));
  return m !== null && !isRunning(Number(m[1]));
}

/**
 * Removes the temporary files an earlier run left for `path` when a signal ended it that no
 * handler sees (SIGKILL; SIGINT, SIGTERM and SIGHUP during synchronous work have a native handler remove
 * them, cli/stop-signals.ts). Only files of exactly our naming for this output, of processes that
 * no longer exist.
 */
function removeStaleTemps(path: string): void {
  const prefix = tempName(path, 0, 0).replace(/0-0$/, '');
  unlinkStaleTemps(dirname(resolve(path)), () => prefix);
}

/**
 * Removes every temporary file of our naming (`.NAME.tmp-PID-SEQ`) in `dir` whose process no
 * longer exists: for a directory only minivisor writes (a fuzz output directory), where
 * writeFileAtomic writes many files and looking for each one's leftovers would read it each time.
 */
export function removeStaleTempsIn(dir: string): void {
  unlinkStaleTemps(dir, (name) => /^(\..+\.tmp-)\d+-\d+$/.exec(name)?.[1]);
}

/** Unlinks the files of `dir` that are stale temporaries (isStaleTemp) of the prefix `prefixOf` gives their name. */
function unlinkStaleTemps(dir: string, prefixOf: (name: string) => string | undefined): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const prefix = prefixOf(name);
    if (prefix === undefined || !isStaleTemp(name, prefix)) continue;
    try { unlinkSync(join(dir, name)); } catch { /* gone meanwhile, or not ours to remove */ }
  }
}

/**
 * The temporary files this thread is writing now. A process that quits at once (a second Ctrl-C:
 * removeLiveTemps; SIGINT, SIGTERM or SIGHUP during synchronous work: the native handler watchLiveTemps
 * feeds) or exits with one still open (an error nobody caught) removes them first, so none
 * outlives it; only a signal no handler can see (SIGKILL) leaves one, which the next run writing
 * there removes (removeStaleTemps, removeStaleTempsIn).
 */
const liveTemps = new Set<string>();
let removeOnExit = false;
let liveTempsWatcher: ((paths: readonly string[]) => void) | undefined;

function trackTemp(path: string): void {
  liveTemps.add(path);
  if (!removeOnExit) {
    removeOnExit = true;
    process.on('exit', removeLiveTemps);
  }
  liveTempsWatcher?.([...liveTemps]);
}

function untrackTemp(path: string): void {
  if (liveTemps.delete(path)) liveTempsWatcher?.([...liveTemps]);
}

/**
 * Tells `watcher` the temporary files being written whenever they change (and now): a command
 * that writes while it runs synchronously has them removed when a signal ends it (cli/stop-signals.ts).
 */
export function watchLiveTemps(watcher: (paths: readonly string[]) => void): void {
  liveTempsWatcher = watcher;
  watcher([...liveTemps]);
}

/** Removes the temporary files being written now (see liveTemps); their outputs stay as they were. */
export function removeLiveTemps(): void {
  for (const path of liveTemps) rmSync(path, { force: true });
  liveTemps.clear();
  liveTempsWatcher?.([]);
}

/**
 * Writes `text` to `path` whole or not at all: a temporary file in the same directory, renamed
 * into place. On failure (a full disk, a directory in the way) the temporary file is removed.
 */
export function writeFileAtomic(path: string, text: string): void {
  const temp = join(dirname(resolve(path)), tempName(path, process.pid, sequence++));
  trackTemp(temp);
  try {
    writeFileSync(temp, text);
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  } finally {
    untrackTemp(temp);
  }
}

/** Why a file cannot be created at `path`, in words (the errno code stays at the end for searching). */
function whyNotWritable(path: string, err: NodeJS.ErrnoException): string {
  const dir = quoteForError(dirname(resolve(path)));
  switch (err.code) {
    // A directory that exists may still refuse new files with ENOENT: /proc, /sys (before, this said it did not exist).
    case 'ENOENT': return existsSync(dirname(resolve(path))) ? `the directory ${dir} takes no new files (ENOENT)` : `the directory ${dir} does not exist (ENOENT)`;
    case 'ENOTDIR': return `a part of ${dir} is not a directory (ENOTDIR)`;
    case 'EACCES': case 'EPERM': return `no permission to write in ${dir} (${err.code})`;
    case 'EROFS': return `${dir} is on a read-only file system (EROFS)`;
    case 'ENOSPC': return `no space left on the device of ${dir} (ENOSPC)`;
    default: return err.code ?? String(err);
  }
}

/** Error codes whyNotWritable puts in words. */
const WORDED_CODES = new Set(['ENOENT', 'ENOTDIR', 'EACCES', 'EPERM', 'EROFS', 'ENOSPC']);

/**
 * A failed mkdir or file write, in words: "the directory "/proc" takes no new files (ENOENT)"
 * rather than Node's "ENOENT: no such file or directory, mkdir '/proc/x'" (under a folder that exists).
 */
export function creationErrorInWords(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof Error && typeof e.path === 'string' && e.code !== undefined && WORDED_CODES.has(e.code)) return whyNotWritable(e.path, e);
  return err instanceof Error ? err.message : String(err);
}

export class OutputFile {
  readonly path: string;
  readonly #what: string;
  /** Where the data goes: `path`, or the file a symbolic link `path` leads to (see the constructor). */
  #target: string;
  #fd: number | undefined;
  #temp: string | undefined;
  #bytes = 0;

  /**
   * Opens `path` for writing `what`. Refuses it (OutputFileError) when it is one of `inputs`, a
   * directory, or in a directory that does not exist or cannot be written.
   */
  constructor(path: string, what: string, inputs: readonly string[]) {
    this.path = path;
    this.#target = path;
    this.#what = what;
    const name = `${what} ${quoteForError(path)}`;
    // An empty name is the current directory's temporary file renamed to nothing: only after the run would that fail.
    if (path === '') throw new OutputFileError(`${what} "" is an empty file name`);
    // "x/" names a directory: the temporary file beside x could never be renamed onto it, which
    // only the end of the run would find out.
    if (path.endsWith('/')) throw new OutputFileError(`${name} ends in "/": a directory's name, not a file's`);
    const input = inputs.find((i) => sameFile(path, i));
    if (input !== undefined) throw new OutputFileError(`${name} is the input ${quoteForError(input)}; inputs are never overwritten`);
    let existing: import('node:fs').Stats | undefined;
    try { existing = statSync(path); } catch { existing = undefined; }
    if (existing?.isDirectory()) throw new OutputFileError(`${name} is a directory`);
    // A symbolic link to a file (run.jsonl -> runs/3.jsonl; /dev/stdout -> /proc/self/fd/1 -> the
    // file a shell sent stdout to) has that file replaced, as writing through the link would:
    // renaming onto the link would replace the link itself (/dev/stdout with a regular file).
    if (existing?.isFile() && lstatSync(path).isSymbolicLink()) {
      try {
        const real = realpathSync(path);
        if (sameFile(real, path)) this.#target = real;
      } catch { /* a link into a deleted file ("… (deleted)"): the link is replaced, as before */ }
    }
    const target = this.#target;
    try {
      if (existing && !existing.isFile()) {
        this.#fd = openSync(path, constants.O_WRONLY | constants.O_NOCTTY);
      } else {
        removeStaleTemps(target);
        const temp = join(dirname(resolve(target)), tempName(target, process.pid, sequence++));
        // Tracked before it exists: a signal handler that removes the live ones (watchLiveTemps)
        // must know it from the moment it appears.
        trackTemp(temp);
        try {
          this.#fd = openSync(temp, 'wx', 0o644);
        } catch (err) {
          untrackTemp(temp);
          throw err;
        }
        this.#temp = temp;
      }
    } catch (err) {
      throw new OutputFileError(`cannot write ${name}: ${whyNotWritable(target, err as NodeJS.ErrnoException)}`);
    }
  }

  write(text: string): void {
    if (this.#fd === undefined) throw new OutputFileError(`${this.#what} ${quoteForError(this.path)} is already closed`);
    try {
      this.#bytes += writeSync(this.#fd, text);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new OutputFileError(`cannot write ${this.#what} ${quoteForError(this.path)}: ${code ?? String(err)}`, code);
    }
  }

  /** Whether the file is still being written (neither committed nor abandoned). */
  get isOpen(): boolean {
    return this.#fd !== undefined;
  }

  /** Closes and renames the data into place. */
  commit(): void {
    this.#close();
    if (this.#temp === undefined) return;
    try {
      renameSync(this.#temp, this.#target);
      untrackTemp(this.#temp);
    } catch (err) {
      const left = this.#leaveBehind();
      throw new OutputFileError(`cannot put ${this.#what} in place at ${quoteForError(this.path)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}; ${left}`);
    }
    this.#temp = undefined;
  }

  /**
   * Gives up after a failure: `path` is left untouched. Returns what was left behind, for the
   * error message: nothing, or the partial data under `<path>.partial`.
   */
  abandon(): string {
    this.#close();
    if (this.#temp === undefined) return `${this.#what} ${quoteForError(this.path)} was written directly and may be incomplete`;
    return this.#leaveBehind();
  }

  #leaveBehind(): string {
    const temp = this.#temp!;
    this.#temp = undefined;
    untrackTemp(temp);  // moved to .partial or removed below; else the message says where it is
    try {
      if (this.#bytes === 0) {
        unlinkSync(temp);
        return `no ${this.#what} was written`;
      }
      const partial = `${this.#target}.partial`;
      renameSync(temp, partial);
      return `the partial ${this.#what} (${this.#bytes} bytes) is in ${quoteForError(partial)}`;
    } catch {
      return `the partial ${this.#what} is in ${quoteForError(temp)}`;
    }
  }

  #close(): void {
    if (this.#fd === undefined) return;
    try { closeSync(this.#fd); } finally { this.#fd = undefined; }
  }
}
