// The CLI's stdout and stderr (src/cli/io.ts): every byte of an output reaches its reader, however
// the kernel splits the writes; whether stderr is a terminal (the live status line) is told
// without loading node:tty for what is never one, a pipe, a file or /dev/null.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs, { closeSync, mkdtempSync, openSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceMajor, isMemoryDevice, processIo, writeFullySync } from '../../src/cli/io.js';
import { HAS_PYTHON3, runThenCtrlC } from '../helpers/terminal.js';

/** glibc's gnu_dev_makedev: the minor's low byte, the major's low 12 bits at 8, the rest above bit 32. */
const makedev = (major: number, minor: number) =>
  (minor & 0xff) + (major & 0xfff) * 0x100 + (minor & ~0xff) * 0x1000 + (major & ~0xfff) * 0x1_0000_0000;

describe('processIo', () => {
  it('reads the major number of a device as Linux packs it, the high bits too', () => {
    expect(deviceMajor(makedev(1, 3))).toBe(1);      // /dev/null
    expect(deviceMajor(makedev(136, 2))).toBe(136);  // /dev/pts/2
    expect(deviceMajor(makedev(0x1234, 0x56789))).toBe(0x1234);
    // glibc's minor takes dev_t bits 20-43 for its bits 8-31: bits 32-43 are no part of the major.
    expect(deviceMajor(makedev(8, 0x123456))).toBe(8);
  });

  it('takes only character devices of major 1 for memory devices: block major 1 is a RAM disk (devices.txt)', () => {
    const stat = (char: boolean, rdev: number) => ({ isCharacterDevice: () => char, rdev }) as import('node:fs').Stats;
    expect(isMemoryDevice(stat(true, makedev(1, 3)))).toBe(true);    // /dev/null
    expect(isMemoryDevice(stat(false, makedev(1, 0)))).toBe(false);  // /dev/ram0
    expect(isMemoryDevice(stat(true, makedev(5, 0)))).toBe(false);   // /dev/tty
  });

  it('says stderr is no terminal for a pipe, a file and /dev/null, without loading node:tty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-io-'));
    // The built module, as the CLI runs it: whether node:tty was loaded is the process's own record.
    const script = "import('./dist/cli/io.js').then(({ processIo }) => { const io = processIo(); " +
      "process.stdout.write(JSON.stringify({ tty: io.errTty, ttyLoaded: process.moduleLoadList.includes('NativeModule tty') })); })";
    const file = openSync(join(dir, 'stderr'), 'w');
    const devNull = openSync('/dev/null', 'w');
    try {
      for (const stderr of ['pipe', file, devNull] as const) {
        const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', stderr] });
        expect(r.status).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ tty: false, ttyLoaded: false });
      }
    } finally {
      closeSync(file);
      closeSync(devNull);
    }
  });
});

/** An errno error as node:fs throws it. */
function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: write`), { code, syscall: 'write' });
}

/**
 * Runs `body` with node:fs's writeSync replaced by `fake` for every module that imported it
 * (syncBuiltinESMExports updates the named exports too), then puts the real one back.
 */
function withWriteSync(fake: (fd: number, bytes: Uint8Array) => number, body: () => void): void {
  const real = fs.writeSync;
  fs.writeSync = fake as typeof fs.writeSync;
  syncBuiltinESMExports();
  try {
    body();
  } finally {
    fs.writeSync = real;
    syncBuiltinESMExports();
  }
}

/**
 * A writeSync that answers each call with the next of `answers`: a count of bytes it takes, or an
 * errno code it throws. `written` collects the bytes taken, in order.
 */
function scriptedWrites(answers: Array<number | string>) {
  const written: number[] = [];
  const fake = (_fd: number, rest: Uint8Array) => {
    const answer = answers.shift();
    if (typeof answer === 'string') throw errnoError(answer);
    written.push(...rest.subarray(0, answer));
    return answer!;
  };
  return { fake, written };
}

describe('writeFullySync', () => {
  const bytes = Uint8Array.from({ length: 10 }, (_, i) => i + 1);

  it('goes on from where a short write stopped until every byte is written, in order, to its descriptor', () => {
    const written: number[] = [];
    const asked: Array<[number, number]> = [];
    withWriteSync((fd, rest) => {
      asked.push([fd, rest.length]);
      const n = Math.min(3, rest.length);  // a pipe with room for 3 bytes at a time
      written.push(...rest.subarray(0, n));
      return n;
    }, () => writeFullySync(7, bytes));
    expect(written).toEqual([...bytes]);
    expect(asked).toEqual([[7, 10], [7, 7], [7, 4], [7, 1]]);
  });

  it('a non-blocking descriptor that is full (EAGAIN) is tried again: nothing lost, nothing written twice', () => {
    const answers: Array<number | string> = [4, 'EAGAIN', 'EAGAIN', 6];
    const { fake, written } = scriptedWrites(answers);
    withWriteSync(fake, () => writeFullySync(1, bytes));
    expect(written).toEqual([...bytes]);
    expect(answers).toEqual([]);
  });

  it('throws any other error of the write (EPIPE: the reader went away), after what it wrote', () => {
    const { fake, written } = scriptedWrites([4, 'EPIPE']);
    let thrown: unknown;
    withWriteSync(fake, () => {
      try {
        writeFullySync(1, bytes);
      } catch (err) {
        thrown = err;
      }
    });
    expect((thrown as NodeJS.ErrnoException).code).toBe('EPIPE');
    expect(written).toEqual([1, 2, 3, 4]);
  });

  it('a stdout pipe left non-blocking gets all of a long output, in order', () => {
    // The flag belongs to the pipe's open file description, shared by every process holding it:
    // node sets it on a pipe it opens as process.stdout (libuv's uv_pipe_open), here the child's
    // own. Such a pipe (node's are socket pairs, alike in this) takes a write only up to the room
    // it has (a short write), then refuses with EAGAIN until the reader makes room.
    const script = "const fs = require('node:fs'); process.stdout; " +
      "if (!(parseInt(/flags:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/fdinfo/1', 'utf8'))[1], 8) & 0o4000)) fs.writeSync(2, 'stdout is blocking'); " +
      "import('./dist/cli/io.js').then(({ processIo }) => { const io = processIo(); for (let i = 0; i < 16; i++) io.out(String(i).padStart(2, '0').repeat(64 * 1024)); })";
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toHaveLength(17);
    lines.slice(0, 16).forEach((line, i) => expect(line === String(i).padStart(2, '0').repeat(64 * 1024), `line ${i}`).toBe(true));
    expect(lines[16]).toBe('');
  });
});

describe('processIo', () => {
  it('a stream whose write failed stays silent, even should a later write succeed (a full disk that gets room again)', () => {
    const written: string[] = [];
    let full = true;
    withWriteSync((fd, bytes) => {
      if (fd !== 1) throw new Error(`only stdout is written here, not fd ${fd}`);
      if (full) throw errnoError('ENOSPC');
      written.push(Buffer.from(bytes).toString('utf8'));
      return bytes.length;
    }, () => {
      const io = processIo();
      io.out('first');
      full = false;
      io.out('second');
    });
    expect(written).toEqual([]);
  });
});

describe.skipIf(!HAS_PYTHON3)('processIo on a terminal', () => {
  it('says stderr is a terminal when it is one, with stdout sent elsewhere (`minivisor fuzz > log` still shows its live status there)', async () => {
    const script = "import('./dist/cli/io.js').then(({ processIo }) => { const io = processIo(); io.errRaw('\\rstatus'); io.err(` errTty=${io.errTty}`); setInterval(() => {}, 1000); })";
    for (const stdout of ['/dev/null', join(mkdtempSync(join(tmpdir(), 'minivisor-io-tty-')), 'log')]) {
      const r = await runThenCtrlC(['bash', '-c', 'exec "$@" > "$0"', stdout, process.execPath, '-e', script], 'errTty=(true|false)');
      expect(r.matched).toBe(true);
      expect(r.output).toMatch(/\rstatus errTty=true/);
    }
  });
});
