// The CLI's stdout and stderr (src/cli/io.ts): whether stderr is a terminal (the live status
// line) is told without loading node:tty for what is never one, a pipe, a file or /dev/null.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceMajor } from '../../src/cli/io.js';

/** glibc's gnu_dev_makedev: the minor's low byte, the major's low 12 bits at 8, the rest above bit 32. */
const makedev = (major: number, minor: number) =>
  (minor & 0xff) + (major & 0xfff) * 0x100 + (minor & ~0xff) * 0x1000 + (major & ~0xfff) * 0x1_0000_0000;

describe('processIo', () => {
  it('reads the major number of a device as Linux packs it, the high bits too', () => {
    expect(deviceMajor(makedev(1, 3))).toBe(1);      // /dev/null
    expect(deviceMajor(makedev(136, 2))).toBe(136);  // /dev/pts/2
    expect(deviceMajor(makedev(0x1234, 0x56789))).toBe(0x1234);
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
