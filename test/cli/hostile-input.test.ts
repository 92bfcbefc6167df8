// Bad inputs get one clear error and a non-zero exit, never a hang, a stack trace or a damaged
// file (issue 8). Each case runs the installed command in a child process, as a user would.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILT_FIRMWARE } from '../../src/boot/images.js';
import { handMadeFinding } from '../helpers/hand-made-finding.js';
import { NewStubError, writeStubTemplate, type WriteTemplateFile } from '../../src/cli/commands/new-stub.js';

const SMALL = ['--memory', '256M', '--workload', '16M'];
const scratch = () => mkdtempSync(join(tmpdir(), 'minivisor-hostile-'));

function minivisor(args: string[], options: { shell?: string } = {}): SpawnSyncReturns<string> {
  if (options.shell !== undefined) return spawnSync('bash', ['-c', options.shell], { encoding: 'utf8', timeout: 60_000 });
  return spawnSync(process.execPath, ['bin/minivisor.js', ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** One line on stderr, starting with the command's name, and no stack trace; exit 1, or 2 for a usage error. */
function expectOneClearError(r: SpawnSyncReturns<string>, pattern: RegExp, status: 1 | 2 = 1): void {
  expect(r.signal).toBeNull();  // not killed by the timeout: no hang
  expect(r.status).toBe(status);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^minivisor( [a-z-]+)*: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('file inputs are read with a bound and only from regular files', () => {
  const dir = scratch();
  const fifo = join(dir, 'fifo');
  spawnSync('mkfifo', [fifo]);
  const cases: Array<[string, RegExp]> = [
    ['/dev/zero', /"\/dev\/zero" is a character device; give a regular file/],
    ['/dev/urandom', /is a character device/],
    [fifo, /is a FIFO; give a regular file/],
    [dir, /is a directory; give a regular file/],
    [join(dir, 'missing.elf'), /does not exist/],
  ];
  for (const [path, pattern] of cases) {
    it(`--firmware ${path.replace(dir, '<tmp>')}`, () => {
      expectOneClearError(minivisor(['boot', ...SMALL, '--firmware', path]), pattern);
    });
  }

  it('refuses a firmware file larger than the bound without reading it', () => {
    const big = join(scratch(), 'huge.elf');
    writeFileSync(big, '');
    truncateSync(big, 64 * 2 ** 30);  // sparse: 64 GiB that would take minutes to read
    expectOneClearError(minivisor(['boot', ...SMALL, '--firmware', big]), /is 68719476736 bytes, more than the 33554432 allowed/);
  });
});

describe('finding files and fuzz output directories are read with a bound and only from regular files', () => {
  // Before, these were read whole with readFileSync: /dev/zero grew without end and a FIFO blocked on open.
  it.each(['replay', 'shrink'])('%s of /dev/zero or of a FIFO is one clear error', (command) => {
    const fifo = join(scratch(), 'finding.json');
    spawnSync('mkfifo', [fifo]);
    expectOneClearError(minivisor([command, '/dev/zero']), /^minivisor (replay|shrink): finding "\/dev\/zero" is a character device; give a regular file$/, 2);
    expectOneClearError(minivisor([command, fifo]), /finding ".*finding\.json" is a FIFO; give a regular file$/, 2);
  });

  it('fuzz skips a corpus entry that is a device or a FIFO, with a warning, and runs', () => {
    const out = scratch();
    mkdirSync(join(out, 'corpus'));
    symlinkSync('/dev/zero', join(out, 'corpus', 'zero.json'));
    spawnSync('mkfifo', [join(out, 'corpus', 'fifo.json')]);
    const r = minivisor(['fuzz', '--runs', '1', '--memory', '128M', '--out', out]);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/skipping .*fifo\.json: corpus program .* is a FIFO/);
    expect(r.stderr).toMatch(/skipping .*zero\.json: corpus program .* is a character device/);
  });

  it('fuzz merge skips a finding.json or trace.jsonl that is a FIFO, with a warning', () => {
    const source = scratch();
    const finding = handMadeFinding(source);
    const trace = join(dirname(finding), 'trace.jsonl');
    spawnSync('mkfifo', [trace]);
    mkdirSync(join(source, 'findings', 'fifo-finding'));
    spawnSync('mkfifo', [join(source, 'findings', 'fifo-finding', 'finding.json')]);
    const into = scratch();
    const r = minivisor(['fuzz', 'merge', into, source]);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/skipping .*fifo-finding\/finding\.json: finding .* is a FIFO/);
    expect(r.stderr).toMatch(/trace .* is a FIFO; give a regular file: the merged finding has no trace/);
    expect(r.stdout).toMatch(/now holds 0 corpus programs and 1 findings/);
  });
});

describe('output directories under /proc end in one error instead of spinning', () => {
  // procfs answers ENOENT to mkdir of any new name; Node's recursive mkdir took that for a missing
  // parent, made the parent (EEXIST) and tried again, forever at 100% CPU. Then the error was Node's
  // own text ("ENOENT: no such file or directory, mkdir '/proc/…'"), though /proc exists.
  it.each([
    [['fuzz', '--runs', '1', '--memory', '128M', '--out', '/proc/minivisor-out'], /^minivisor fuzz: cannot use --out "\/proc\/minivisor-out" as the output directory: the directory "\/proc" takes no new files \(ENOENT\)$/, 2],
    [['fuzz', 'merge', dirname(dirname(dirname(handMadeFinding(scratch())))), '--out', '/proc/minivisor-out'], /^minivisor fuzz merge: cannot use --out "\/proc\/minivisor-out" as the output directory: the directory "\/proc" takes no new files \(ENOENT\)$/, 2],
    [['new-stub', '/proc/minivisor-stub'], /^minivisor new-stub: cannot write the template into "\/proc\/minivisor-stub": the directory "\/proc" takes no new files \(ENOENT\)$/, 1],
  ] as const)('%j', (args, pattern, status) => {
    expectOneClearError(spawnSync(process.execPath, ['bin/minivisor.js', ...args], { encoding: 'utf8', timeout: 20_000 }), pattern, status);
  });

  it('an output file there: the directory exists and takes no new files (before: "the directory "/proc" does not exist")', () => {
    expectOneClearError(minivisor(['boot', ...SMALL, '--trace', '/proc/minivisor-trace.jsonl']), /^minivisor boot: cannot write trace "\/proc\/minivisor-trace\.jsonl": the directory "\/proc" takes no new files \(ENOENT\)$/, 2);
  });
});

describe('new-stub names what is wrong with its folder in one line', () => {
  // Before: a bare "minivisor: ENOTDIR: not a directory, scandir ..." from readdirSync or mkdir.
  it('a file, or a path under a file, is not a folder, and the file is intact', () => {
    const file = join(scratch(), 'notes.txt');
    writeFileSync(file, 'keep me');
    expectOneClearError(minivisor(['new-stub', file]), /^minivisor new-stub: ".*notes\.txt" is not a folder: new-stub writes only into a new or empty folder$/);
    expectOneClearError(minivisor(['new-stub', join(file, 'stub')]), /^minivisor new-stub: cannot write the template into ".*notes\.txt\/stub": a part of ".*notes\.txt" is not a directory \(ENOTDIR\)$/);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });
});

describe('new-stub that fails part-way (a full disk) leaves no half-written template', () => {
  const diskFullAt = (failing: number): WriteTemplateFile => {
    let written = 0;
    return (path, text) => {
      if (++written === failing) {
        writeFileSync(path, text.slice(0, 10)); // the short write a full disk leaves behind
        throw Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC' });
      }
      writeFileSync(path, text);
    };
  };

  it('a new folder is removed again, and the same command then succeeds', () => {
    const dir = join(scratch(), 'my-kernel');
    expect(() => writeStubTemplate(dir, 'kernel', diskFullAt(3))).toThrow(/^cannot write the template into ".*my-kernel": ENOSPC/);
    expect(existsSync(dir)).toBe(false);
    expect(writeStubTemplate(dir, 'kernel')).toEqual(readdirSync(dir).sort());
  });

  it('an empty folder given by the user stays, emptied again', () => {
    const dir = scratch();
    expect(() => writeStubTemplate(dir, 'firmware', diskFullAt(5))).toThrow(NewStubError);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('new-stub of an empty name', () => {
  it('is a usage error, and nothing is written into the working directory (resolve("") is it)', () => {
    const cwd = scratch();
    const r = spawnSync(process.execPath, [join(process.cwd(), 'bin/minivisor.js'), 'new-stub', ''], { cwd, encoding: 'utf8', timeout: 60_000 });
    expectOneClearError(r, /^minivisor new-stub: "" is an empty folder name$/, 2);
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe('inputs are never overwritten; outputs appear only when complete', () => {
  function firmwareCopy(): { dir: string; fw: string; original: Buffer } {
    const dir = scratch();
    const fw = join(dir, 'fw.elf');
    copyFileSync(BUILT_FIRMWARE, fw);
    return { dir, fw, original: readFileSync(fw) };
  }

  it('--trace naming the --firmware file is refused and the firmware is intact', () => {
    const { fw, original } = firmwareCopy();
    expectOneClearError(minivisor(['boot', ...SMALL, '--firmware', fw, '--trace', fw]), /trace ".*fw\.elf" is the input .*inputs are never overwritten/, 2);
    expect(readFileSync(fw).equals(original)).toBe(true);
  });

  it('the same file through a symlink or a hard link is refused too (compared by inode)', () => {
    const { dir, fw, original } = firmwareCopy();
    symlinkSync(fw, join(dir, 'via-symlink'));
    linkSync(fw, join(dir, 'via-hardlink'));
    for (const alias of ['via-symlink', 'via-hardlink']) {
      expectOneClearError(minivisor(['boot', ...SMALL, '--firmware', fw, '--trace', join(dir, alias)]), /inputs are never overwritten/, 2);
    }
    expect(readFileSync(fw).equals(original)).toBe(true);
  });

  it.each([['--kernel', 'kernel.elf'], ['--decompressor', 'decompressor.elf']])('--trace or --map naming the %s file is refused and it is intact', (flag, name) => {
    const dir = scratch();
    // Named .svg so that --map takes the name; the ELF reader does not care about it.
    const input = join(dir, `${name}.svg`);
    copyFileSync(BUILT_FIRMWARE.replace(/firmware\/build\/firmware\.elf$/, `guest/build/${name}`), input);
    const original = readFileSync(input);
    expectOneClearError(minivisor(['boot', ...SMALL, flag, input, '--trace', input]), /inputs are never overwritten/, 2);
    expectOneClearError(minivisor(['boot', ...SMALL, flag, input, '--map', input]), /map ".*\.svg" is the input .*inputs are never overwritten/, 2);
    expect(readFileSync(input).equals(original)).toBe(true);
  });

  /** A finding that reproduces on the planted-bug stubs (a program the fuzzer found and shrank). */
  function reproducingFinding(): string {
    const file = handMadeFinding(scratch());
    const f = JSON.parse(readFileSync(file, 'utf8'));
    f.target = { ...f.target, stage: 'kernel', maxInstructions: '0x4c4b40', variant: 'accept-already-accepted' };
    f.program.decisions = [
      { at: 'call', point: 'tdx.otherVmcall', occurrence: 1, answer: { kind: 'stop' } },
      { at: 'call', point: 'tdx.mapGpa', occurrence: 1, answer: { kind: 'map-gpa', convertBytes: '0x10000000000', status: '0x0', sharedEptOnly: true }, repeat: 1000000 },
      { at: 'call', point: 'tdx.otherVmcall', occurrence: 0, answer: { kind: 'vmcall-return', effect: 'honest', regs: { r10: '0xffffffffffffffff' } } },
    ];
    f.unshrunk = f.program;
    writeFileSync(file, JSON.stringify(f));
    return file;
  }

  it('shrink --out naming its own finding is refused before shrinking, and the finding is intact', () => {
    const file = reproducingFinding();
    const original = readFileSync(file);
    expectOneClearError(minivisor(['shrink', file, '--out', file]), /^minivisor shrink: shrunk finding ".*finding\.json".* is the input .*; inputs are never overwritten$/, 2);
    expectOneClearError(minivisor(['shrink', dirname(file), '--out', file]), /inputs are never overwritten/, 2);
    expect(readFileSync(file).equals(original)).toBe(true);
  });

  it('replay --trace and shrink --out naming an image the finding boots are refused (here through a symlink to the built firmware)', () => {
    const file = handMadeFinding(scratch());  // the honest stubs: the built firmware
    const link = join(scratch(), 'firmware.jsonl');
    symlinkSync(BUILT_FIRMWARE, link);
    const before = readFileSync(BUILT_FIRMWARE);
    // Only the finding counted as an input: the temporary file was renamed over the symlink (and,
    // named directly, over the built firmware itself).
    expectOneClearError(minivisor(['replay', file, '--trace', link]), /^minivisor replay: trace ".*firmware\.jsonl" is the input ".*firmware\.elf"; inputs are never overwritten$/, 2);
    expectOneClearError(minivisor(['shrink', file, '--out', link]), /^minivisor shrink: shrunk finding ".*firmware\.jsonl" is the input ".*firmware\.elf"; inputs are never overwritten$/, 2);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(BUILT_FIRMWARE).equals(before)).toBe(true);
  });

  it('shrink --out in a directory that does not exist is refused before shrinking', () => {
    const file = reproducingFinding();
    expectOneClearError(minivisor(['shrink', file, '--out', join(scratch(), 'no/such/dir/small.json')]), /^minivisor shrink: cannot write shrunk finding .*ENOENT/, 2);
  });

  it('shrink --out naming a device writes to it and leaves it in place (here through a symlink to /dev/null)', () => {
    const file = reproducingFinding();
    const link = join(scratch(), 'to-dev-null.json');
    symlinkSync('/dev/null', link);
    const r = minivisor(['shrink', file, '--out', link]);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/3 -> 3 decisions/);
    // Renaming a temporary file over the name replaced the symlink (and, named directly, /dev/null itself).
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it('shrink --out replaces an old file whole and leaves no temporary file', () => {
    const file = reproducingFinding();
    const dir = scratch();
    const small = join(dir, 'small.json');
    writeFileSync(small, 'old');
    expect(minivisor(['shrink', file, '--out', small]).status).toBe(0);
    expect(JSON.parse(readFileSync(small, 'utf8'))).toMatchObject({ format: 'minivisor-finding', replay: `minivisor replay ${small}` });
    expect(readdirSync(dir)).toEqual(['small.json']);
  });

  it('--trace naming the built guest image is refused', () => {
    const image = BUILT_FIRMWARE.replace(/firmware\/build\/firmware\.elf$/, 'guest/build/guest-image.elf');
    const before = readFileSync(image);
    expectOneClearError(minivisor(['boot', ...SMALL, '--trace', image]), /inputs are never overwritten/, 2);
    expect(readFileSync(image).equals(before)).toBe(true);
  });

  it('a run that fails before its first event leaves no trace file and keeps an old one intact', () => {
    const dir = scratch();
    const fresh = join(dir, 'fresh.jsonl');
    const old = join(dir, 'old.jsonl');
    writeFileSync(old, 'previous run\n');
    // Not enough address space for 1 TiB of guest RAM: the VM cannot be created.
    for (const trace of [fresh, old]) {
      const r = minivisor([], { shell: `ulimit -v 4000000; exec ${process.execPath} bin/minivisor.js boot --memory 1T --trace ${trace}` });
      expectOneClearError(r, /cannot reserve host address space .*\(no trace was written\)/);
    }
    expect(existsSync(fresh)).toBe(false);
    expect(readFileSync(old, 'utf8')).toBe('previous run\n');
    expect(readdirSync(dir).sort()).toEqual(['old.jsonl']);  // no temporary file left behind
  });

  it('a successful run replaces the old trace whole', () => {
    const dir = scratch();
    const trace = join(dir, 'run.jsonl');
    writeFileSync(trace, 'previous run\n');
    const r = minivisor(['boot', ...SMALL, '--trace', trace]);
    expect(r.status).toBe(0);
    expect(readFileSync(trace, 'utf8')).toMatch(/^\{.*\}\n/);
    expect(readdirSync(dir)).toEqual(['run.jsonl']);
  });

  it('--trace through a symbolic link replaces the file it leads to, whole, and keeps the link', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'real.jsonl'), 'the earlier trace\n');
    symlinkSync('real.jsonl', join(dir, 'link.jsonl'));
    // Before: the trace was renamed onto the link's name, replacing the link with a regular file
    // and leaving real.jsonl as it was.
    expect(minivisor(['boot', ...SMALL, '--trace', join(dir, 'link.jsonl')]).status).toBe(0);
    expect(lstatSync(join(dir, 'link.jsonl')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'real.jsonl'), 'utf8')).toMatch(/^\{"type":"minivisor-trace"/);
    expect(readdirSync(dir).sort()).toEqual(['link.jsonl', 'real.jsonl']);
  });

  it('--trace /dev/null writes to the device and leaves it a device', () => {
    const r = minivisor(['boot', ...SMALL, '--trace', '/dev/null']);
    expect(r.status).toBe(0);
    expect(spawnSync('test', ['-c', '/dev/null']).status).toBe(0);
  });

  it('an empty output file name is refused before the run, and leaves nothing behind', () => {
    const cwd = scratch();
    // Before: the boot ran, the rename to "" failed, and the trace stayed behind as <cwd>/.partial.
    const r = spawnSync(process.execPath, [join(process.cwd(), 'bin/minivisor.js'), 'boot', ...SMALL, '--trace', ''], { cwd, encoding: 'utf8', timeout: 60_000 });
    expectOneClearError(r, /^minivisor boot: trace "" is an empty file name$/, 2);
    const file = handMadeFinding(cwd);
    expectOneClearError(minivisor(['replay', file, '--trace', '']), /^minivisor replay: trace "" is an empty file name$/, 2);
    expectOneClearError(minivisor(['shrink', file, '--out', '']), /^minivisor shrink: shrunk finding "" is an empty file name$/, 2);
    expect(readdirSync(cwd)).toEqual(['findings']);
  });

  it('an output name that ends in "/" (a directory\'s name) is refused before the run, and leaves nothing behind', () => {
    const cwd = scratch();
    // Before: the boot ran, the rename onto "run.jsonl/" failed (ENOTDIR), and the whole trace stayed
    // behind under the hidden temporary name, which the next run's sweep then removed.
    expectOneClearError(minivisor(['boot', ...SMALL, '--trace', `${cwd}/run.jsonl/`]), /^minivisor boot: trace ".*\/run\.jsonl\/" ends in "\/": a directory's name, not a file's$/, 2);
    const file = handMadeFinding(cwd);
    expectOneClearError(minivisor(['replay', file, '--trace', `${cwd}/replay.jsonl/`]), /^minivisor replay: trace ".*\/replay\.jsonl\/" ends in "\/"/, 2);
    expectOneClearError(minivisor(['shrink', file, '--out', `${cwd}/small.json/`]), /^minivisor shrink: shrunk finding ".*\/small\.json\/" ends in "\/"/, 2);
    expect(readdirSync(cwd)).toEqual(['findings']);
  });

  it('--trace in a directory that does not exist is one clear error', () => {
    expectOneClearError(minivisor(['boot', ...SMALL, '--trace', join(scratch(), 'no/such/dir/t.jsonl')]), /cannot write trace .*ENOENT/, 2);
  });
});

describe('stdout that goes away ends the run quietly with the outcome status', () => {
  it('EPIPE (`boot | head -1`): exit 0 for a finished boot, nothing on stderr', async () => {
    const child = spawn(process.execPath, ['bin/minivisor.js', 'boot', ...SMALL], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.stdout.once('data', () => child.stdout.destroy());
    const [status, signal] = await new Promise<[number | null, string | null]>((done) => child.on('exit', (c, s) => done([c, s])));
    expect(signal).toBeNull();
    expect(status).toBe(0);
    expect(stderr).toBe('');
  });

  it('ENOSPC (stdout on /dev/full): exit status of the outcome, nothing on stderr', () => {
    const full = openSync('/dev/full', 'w');
    try {
      for (const [args, status] of [[SMALL, 0], [[...SMALL, '--max-instructions', '100000'], 1]] as const) {
        const r = spawnSync(process.execPath, ['bin/minivisor.js', 'boot', ...args], { stdio: ['ignore', full, 'pipe'], encoding: 'utf8', timeout: 60_000 });
        expect(r.status).toBe(status);
        expect(r.stderr).toBe('');
      }
    } finally {
      closeSync(full);
    }
  });
});

describe('echoed values are cut short', () => {
  const huge = '9'.repeat(100_000);
  for (const flag of ['--seed', '--memory', '--max-instructions', '--platform']) {
    it(`a 100,000-character ${flag}`, () => {
      const r = minivisor(['boot', flag, huge]);
      expect(r.status).toBe(2);
      expect(r.stderr.length).toBeLessThan(400);
      expect(r.stderr).toMatch(/"9+"…"9+" \(100000 characters\)/);
    });
  }
});
