// A file the user names as an output (src/shared/output-file.ts), in process: written to a temporary
// file and renamed into place, written directly when it is not a regular file (/dev/null), never
// left half-written under its name, and every refusal a sentence with its errno code (README: bad
// input gives a clear error; never damage an input file). The CLI tests reach it through a child.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { creationErrorInWords, OutputFile, OutputFileError, removeLiveTemps, removeStaleTempsIn, sameFile, watchLiveTemps, writeFileAtomic } from '../../../src/shared/output-file.js';
import { quoteForError } from '../../../src/shared/quote.js';

const scratch = (): string => mkdtempSync(join(tmpdir(), 'minivisor-outfile-'));
/** A process id no process can have: kill(2) of it fails with ESRCH (proc(5): pid_max). */
const NO_SUCH_PID = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1;

describe('sameFile', () => {
  it('is the same inode when both exist, else the same path once symbolic links are resolved', () => {
    const dir = scratch();
    mkdirSync(join(dir, 'real'));
    symlinkSync('real', join(dir, 'link'));
    writeFileSync(join(dir, 'real', 'a'), '');
    writeFileSync(join(dir, 'real', 'b'), '');
    expect(sameFile(join(dir, 'link', 'a'), join(dir, 'real', 'a'))).toBe(true);
    expect(sameFile(join(dir, 'real', 'a'), join(dir, 'real', 'b'))).toBe(false);
    // Neither exists yet: the folder they are in decides.
    expect(sameFile(join(dir, 'link', 'new'), join(dir, 'real', 'new'))).toBe(true);
    expect(sameFile(join(dir, 'link', 'new'), join(dir, 'real', 'other'))).toBe(false);
    expect(sameFile(join(dir, 'real', 'a'), join(dir, 'real', 'new'))).toBe(false);
  });
});

describe('OutputFile', () => {
  it('writes to a temporary file beside the target and puts it in place only on commit', () => {
    const dir = scratch();
    const path = join(dir, 'run.jsonl');
    writeFileSync(path, 'old\n');
    const out = new OutputFile(path, 'trace', []);
    out.write('new\n');
    expect(readFileSync(path, 'utf8')).toBe('old\n');
    expect(readdirSync(dir).filter((n) => n !== 'run.jsonl')).toEqual([expect.stringMatching(/^\.run\.jsonl\.tmp-\d+-\d+$/)]);
    out.commit();
    expect(readFileSync(path, 'utf8')).toBe('new\n');
    expect(readdirSync(dir)).toEqual(['run.jsonl']);
    expect(out.isOpen).toBe(false);
    out.commit();  // a second commit changes nothing
    expect(readFileSync(path, 'utf8')).toBe('new\n');
  });

  it('refuses to write after commit, saying the file is closed', () => {
    const dir = scratch();
    const path = join(dir, 'a.json');
    const out = new OutputFile(path, 'map', []);
    out.commit();
    expect(() => out.write('x')).toThrow(new OutputFileError(`map ${quoteForError(path)} is already closed`));
  });

  it('removes the temporary files of ended processes for this output only, and keeps those of live ones', () => {
    const dir = scratch();
    const path = join(dir, 'run.jsonl');
    const stale = `.run.jsonl.tmp-${NO_SUCH_PID}-0`;
    const kept = [
      `.run.jsonl.tmp-${process.pid}-99`,  // this process's own (another OutputFile still writing it)
      `.run.jsonl.tmp-${process.ppid}-0`,  // a process that still runs
      `.run.jsonl.tmp-${NO_SUCH_PID}-x`,   // not our naming
      `.run.jsonl.tmp-${NO_SUCH_PID}-0.old`,
      `.log.jsonl.tmp-${NO_SUCH_PID}-0`,   // another output's (a name as long)
      `.other.jsonl.tmp-${NO_SUCH_PID}-0`,
      'notes.txt',
    ];
    for (const name of [stale, ...kept]) writeFileSync(join(dir, name), 'x');
    const out = new OutputFile(path, 'trace', []);
    expect(readdirSync(dir)).not.toContain(stale);
    for (const name of kept) expect(readdirSync(dir)).toContain(name);
    out.abandon();
  });

  it('removes every stale temporary file of our naming from a directory only minivisor writes, and nothing else', () => {
    const dir = scratch();
    const stale = [`.finding.json.tmp-${NO_SUCH_PID}-0`, `.stats.json.tmp-${NO_SUCH_PID}-17`];
    const kept = [
      `.finding.json.tmp-${process.ppid}-0`,      // a process that still runs
      `finding.json.tmp-${NO_SUCH_PID}-0`,        // not hidden: not our naming
      `.finding.json.tmp-${NO_SUCH_PID}-0.old`,
      `.finding.json.tmp-${NO_SUCH_PID}`,
      'finding.json',
    ];
    for (const name of [...stale, ...kept]) writeFileSync(join(dir, name), 'x');
    removeStaleTempsIn(dir);
    expect(readdirSync(dir).sort()).toEqual([...kept].sort());
  });

  // Through a symbolic link in a scratch folder: a broken OutputFile (a mutant of it) that renames
  // over its target then replaces the link, never the machine's /dev/null.
  it('writes a target that is not a regular file directly, and commit leaves it what it was', () => {
    const devNull = join(scratch(), 'null');
    symlinkSync('/dev/null', devNull);
    const out = new OutputFile(devNull, 'trace', []);
    out.write('discarded\n');
    out.commit();
    expect(lstatSync(devNull).isSymbolicLink()).toBe(true);
    expect(statSync(devNull).isCharacterDevice()).toBe(true);
    expect(readdirSync(dirname(devNull))).toEqual(['null']);
    const again = new OutputFile(devNull, 'trace', []);
    expect(again.abandon()).toBe(`trace ${quoteForError(devNull)} was written directly and may be incomplete`);
  });

  it('reports a failed write with its errno code, on the error too (a full device)', () => {
    const devFull = join(scratch(), 'full');
    symlinkSync('/dev/full', devFull);
    const out = new OutputFile(devFull, 'trace', []);
    let caught: unknown;
    try { out.write('x'); } catch (err) { caught = err; }
    expect(caught).toBeInstanceOf(OutputFileError);
    expect((caught as OutputFileError).message).toBe(`cannot write trace ${quoteForError(devFull)}: ENOSPC`);
    expect((caught as OutputFileError).code).toBe('ENOSPC');
    out.abandon();
  });

  it('says in words why a file cannot be created, with the errno code at the end', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'file'), '');
    const q = quoteForError;
    expect(() => new OutputFile(join(dir, 'none', 'a.json'), 'map', []))
      .toThrow(new OutputFileError(`cannot write map ${q(join(dir, 'none', 'a.json'))}: the directory ${q(join(dir, 'none'))} does not exist (ENOENT)`));
    expect(() => new OutputFile(join(dir, 'file', 'a.json'), 'map', []))
      .toThrow(new OutputFileError(`cannot write map ${q(join(dir, 'file', 'a.json'))}: a part of ${q(join(dir, 'file'))} is not a directory (ENOTDIR)`));
    // sysfs lets no one create a file, root included.
    expect(() => new OutputFile('/sys/minivisor-test.json', 'map', []))
      .toThrow(new OutputFileError('cannot write map "/sys/minivisor-test.json": no permission to write in "/sys" (EACCES)'));
    // A folder that exists may still take no new files.
    expect(() => new OutputFile('/proc/minivisor-test.json', 'map', []))
      .toThrow(new OutputFileError('cannot write map "/proc/minivisor-test.json": the directory "/proc" takes no new files (ENOENT)'));
    const long = join(dir, `${'n'.repeat(300)}.json`);
    expect(() => new OutputFile(long, 'map', [])).toThrow(new OutputFileError(`cannot write map ${q(long)}: ENAMETOOLONG`));
  });

  it('refuses an empty name, a directory and an input before it creates anything', () => {
    const dir = scratch();
    const input = join(dir, 'firmware.elf');
    writeFileSync(input, 'elf');
    expect(() => new OutputFile('', 'trace', [])).toThrow(new OutputFileError('trace "" is an empty file name'));
    expect(() => new OutputFile(dir, 'trace', [])).toThrow(new OutputFileError(`trace ${quoteForError(dir)} is a directory`));
    expect(() => new OutputFile(join(dir, '.', 'firmware.elf'), 'trace', [input]))
      .toThrow(new OutputFileError(`trace ${quoteForError(join(dir, 'firmware.elf'))} is the input ${quoteForError(input)}; inputs are never overwritten`));
    expect(readdirSync(dir)).toEqual(['firmware.elf']);
    expect(readFileSync(input, 'utf8')).toBe('elf');
    // The same file under another name: a hard link, or the path through a linked folder.
    linkSync(input, join(dir, 'hard.elf'));
    symlinkSync(dir, join(dir, 'here'));
    for (const other of [join(dir, 'hard.elf'), join(dir, 'here', 'firmware.elf')]) {
      expect(() => new OutputFile(other, 'trace', [input])).toThrow(/inputs are never overwritten/);
    }
    // A name ending in "/" is a directory's, even one that does not exist yet.
    expect(() => new OutputFile(join(dir, 'out/'), 'trace', []))
      .toThrow(new OutputFileError(`trace ${quoteForError(join(dir, 'out/'))} ends in "/": a directory's name, not a file's`));
    expect(readdirSync(dir).sort()).toEqual(['firmware.elf', 'hard.elf', 'here']);
    expect(readFileSync(input, 'utf8')).toBe('elf');
  });

  it('writes through a symbolic link to a file into that file, and leaves the link a link', () => {
    const dir = scratch();
    mkdirSync(join(dir, 'runs'));
    writeFileSync(join(dir, 'runs', '3.jsonl'), 'old\n');
    symlinkSync(join('runs', '3.jsonl'), join(dir, 'run.jsonl'));
    const out = new OutputFile(join(dir, 'run.jsonl'), 'trace', []);
    out.write('new\n');
    out.commit();
    expect(lstatSync(join(dir, 'run.jsonl')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'runs', '3.jsonl'), 'utf8')).toBe('new\n');
    // Abandoned, the partial data lies beside the file the link leads to.
    const again = new OutputFile(join(dir, 'run.jsonl'), 'trace', []);
    again.write('part');
    expect(again.abandon()).toBe(`the partial trace (4 bytes) is in ${quoteForError(join(dir, 'runs', '3.jsonl.partial'))}`);
    expect(readFileSync(join(dir, 'runs', '3.jsonl'), 'utf8')).toBe('new\n');
  });

  it('removeLiveTemps deletes the temporary files being written, and their outputs stay as they were', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'run.jsonl'), 'old\n');
    const out = new OutputFile(join(dir, 'run.jsonl'), 'trace', []);
    out.write('new\n');
    removeLiveTemps();
    expect(readdirSync(dir)).toEqual(['run.jsonl']);
    expect(readFileSync(join(dir, 'run.jsonl'), 'utf8')).toBe('old\n');
    out.abandon();
  });

  it('writes a FIFO directly, to its reader, and leaves it a FIFO', () => {
    const fifo = join(scratch(), 'pipe');
    execFileSync('mkfifo', [fifo]);
    // A reader first, so opening it for writing does not wait for one.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const out = new OutputFile(fifo, 'trace', []);
      out.write('line\n');
      out.commit();
      const got = Buffer.alloc(16);
      expect(got.subarray(0, readSync(reader, got)).toString()).toBe('line\n');
      expect(statSync(fifo).isFIFO()).toBe(true);
      expect(readdirSync(dirname(fifo))).toEqual(['pipe']);
    } finally {
      closeSync(reader);
    }
  });

  it('never opens a file already at its temporary name: a link planted there does not lead it to another file', () => {
    const dir = scratch();
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'keep me');
    // This process's next temporary names for out.json (the sequence is the module's: a few dozen so far).
    for (let seq = 0; seq < 1000; seq++) symlinkSync(victim, join(dir, `.out.json.tmp-${process.pid}-${seq}`));
    expect(() => new OutputFile(join(dir, 'out.json'), 'map', [])).toThrow(/cannot write map .*: EEXIST/);
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
  });

  it('tells the watcher of live temporary files of each one until it is committed, abandoned or fails to open', () => {
    const dir = scratch();
    const seen: string[][] = [];
    watchLiveTemps((paths) => seen.push([...paths]));
    const out = new OutputFile(join(dir, 'run.jsonl'), 'trace', []);
    const temp = join(dir, readdirSync(dir).find((n) => n.startsWith('.run.jsonl.tmp-'))!);
    expect(seen.at(-1)).toEqual([temp]);
    out.commit();
    expect(seen.at(-1)).toEqual([]);
    expect(() => new OutputFile(join(dir, 'none', 'a.json'), 'map', [])).toThrow(OutputFileError);
    expect(seen.at(-1)).toEqual([]);
    writeFileAtomic(join(dir, 'stats.json'), '{}');
    expect(seen.at(-2)).toEqual([expect.stringMatching(/\/\.stats\.json\.tmp-\d+-\d+$/)]);
    expect(seen.at(-1)).toEqual([]);
    watchLiveTemps(() => {});
  });

  describe('abandon and a failed commit leave the target untouched', () => {
    it('abandon keeps what was written as <path>.partial, or nothing when nothing was', () => {
      const dir = scratch();
      const path = join(dir, 'run.jsonl');
      writeFileSync(path, 'old\n');
      const some = new OutputFile(path, 'trace', []);
      some.write('12');
      some.write('345');
      expect(some.abandon()).toBe(`the partial trace (5 bytes) is in ${quoteForError(`${path}.partial`)}`);
      expect(readFileSync(`${path}.partial`, 'utf8')).toBe('12345');
      expect(readFileSync(path, 'utf8')).toBe('old\n');
      const none = new OutputFile(join(dir, 'map.svg'), 'map', []);
      expect(none.abandon()).toBe('no map was written');
      expect(readdirSync(dir).sort()).toEqual(['run.jsonl', 'run.jsonl.partial']);
    });

    it('a commit whose rename fails (a folder put in the way meanwhile) says where the data is', () => {
      const dir = scratch();
      const path = join(dir, 'run.jsonl');
      const out = new OutputFile(path, 'trace', []);
      out.write('abc');
      mkdirSync(join(path, 'x'), { recursive: true });
      expect(() => out.commit()).toThrow(new OutputFileError(
        `cannot put trace in place at ${quoteForError(path)}: EISDIR; the partial trace (3 bytes) is in ${quoteForError(`${path}.partial`)}`));
      expect(readFileSync(`${path}.partial`, 'utf8')).toBe('abc');
      expect(readdirSync(path)).toEqual(['x']);
    });

    it('when even <path>.partial cannot be made, the temporary file is named instead', () => {
      const dir = scratch();
      const path = join(dir, 'run.jsonl');
      const out = new OutputFile(path, 'trace', []);
      out.write('abc');
      mkdirSync(join(`${path}.partial`, 'x'), { recursive: true });
      const temp = readdirSync(dir).find((n) => n.startsWith('.run.jsonl.tmp-'))!;
      expect(out.abandon()).toBe(`the partial trace is in ${quoteForError(join(dir, temp))}`);
      expect(readFileSync(join(dir, temp), 'utf8')).toBe('abc');
      expect(existsSync(path)).toBe(false);
    });
  });
});

describe('creationErrorInWords', () => {
  it('puts the codes it knows in words, and leaves any other error its own message', () => {
    const err = (code: string, message = code) => Object.assign(new Error(message), { code, path: '/data/runs/out.json' });
    expect(creationErrorInWords(err('EROFS'))).toBe('"/data/runs" is on a read-only file system (EROFS)');
    expect(creationErrorInWords(err('ENOSPC'))).toBe('no space left on the device of "/data/runs" (ENOSPC)');
    expect(creationErrorInWords(err('EIO', 'EIO: i/o error, open \'/data/runs/out.json\''))).toBe('EIO: i/o error, open \'/data/runs/out.json\'');
    expect(creationErrorInWords('not an error')).toBe('not an error');
  });
});

describe('writeFileAtomic', () => {
  it('writes the whole text under the name, with no temporary file left', () => {
    const dir = scratch();
    writeFileAtomic(join(dir, 'stats.json'), '{"execs":1}\n');
    expect(readFileSync(join(dir, 'stats.json'), 'utf8')).toBe('{"execs":1}\n');
    expect(readdirSync(dir)).toEqual(['stats.json']);
  });

  it('leaves no temporary file and the obstacle untouched when the rename fails (a folder in the way)', () => {
    const dir = scratch();
    const target = join(dir, 'stats.json');
    mkdirSync(join(target, 'inside'), { recursive: true });
    expect(() => writeFileAtomic(target, '{}')).toThrow(expect.objectContaining({ code: 'EISDIR' }));
    expect(readdirSync(dir)).toEqual(['stats.json']);
    expect(readdirSync(target)).toEqual(['inside']);
  });
});
