// `boot --trace` as a user meets it (issue 13): `-` is stdout, a closed pipe ends the run quietly
// (exit 141, like a process SIGPIPE ends), a missing directory is one clear line, the format
// follows the file name (.json: Perfetto, checked against the schema; .jsonl: JSON lines), and
// `--trace-filter` keeps only the named event types, with `help` listing them; `replay --trace` alike.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { TRACE_EVENT_TYPES } from '../../src/shared/trace-event-types.js';
import { traceSha256OfJsonLines } from '../../src/shared/trace.js';
import { handMadeFinding } from '../helpers/hand-made-finding.js';
import { capture } from '../helpers/captured-io.js';

const BIN = join(__dirname, '../../bin/minivisor.js');
const SMALL = ['--memory', '128M', '--workload', '16M'];

/**
 * Runs the CLI in a shell pipeline into `true`, which closes the pipe before the CLI writes: the
 * CLI's exit status and stderr. (A reader such as `head -c 100` raced: the whole trace, ~50 KB,
 * fits in the pipe's 64 KiB buffer, so on a loaded machine the CLI could finish writing before
 * head had read and closed, and end 0 with nothing to test.)
 */
function intoClosedPipe(args: string[]): { status: number; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mv-trace-pipe-'));
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('bash', ['-c', `${quoted} 2>'${dir}/err' | true; echo "\${PIPESTATUS[0]}"`], { encoding: 'utf8' });
  return { status: Number(r.stdout.trim()), stderr: readFileSync(join(dir, 'err'), 'utf8') };
}

describe('boot --trace', () => {
  it('`-` writes the JSON lines to stdout (no file named "-"); the console and summary go to stderr', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'mv-trace-stdout-'));
    const r = spawnSync(process.execPath, [BIN, 'boot', ...SMALL, '--trace', '-'], { cwd, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
    expect(r.status).toBe(0);
    expect(existsSync(join(cwd, '-'))).toBe(false);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]!.type).toBe('minivisor-trace');
    expect(lines.slice(1).every((e) => typeof e.seq === 'number')).toBe(true);
    expect(r.stderr).toContain('minivisor: TDX guest, 128M, seed 1: done');
  });

  it('a reader that closes the pipe ends the run quietly, for `-` and for /dev/stdout', () => {
    for (const target of ['-', '/dev/stdout']) {
      const r = intoClosedPipe(['boot', ...SMALL, '--trace', target]);
      expect(r.status, target).toBe(141);
      expect(r.stderr, target).not.toMatch(/EPIPE|Error|at .*\.js/);
    }
  });

  it('a missing directory is one clear line and exit 2 (a usage error), before any guest runs', async () => {
    const io = capture();
    expect(await main(['boot', ...SMALL, '--trace', '/nonexistent-dir/run.jsonl'], io)).toBe(2);
    expect(io.stderr).toEqual(['minivisor boot: cannot write trace "/nonexistent-dir/run.jsonl": the directory "/nonexistent-dir" does not exist (ENOENT)']);
    expect(io.stdout).toEqual([]);
  });

  it('FILE.json is the Perfetto format (valid against the schema), FILE.jsonl the JSON lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mv-trace-ext-'));
    const io = capture();
    expect(await main(['boot', '--json', ...SMALL, '--trace', join(dir, 'run.json')], io)).toBe(0);
    const chrome = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    const schema = JSON.parse(readFileSync(join(__dirname, '../../docs/trace-event.schema.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
    expect(validate(chrome), JSON.stringify(validate.errors)).toBe(true);
    const boot = JSON.parse(io.stdout[0]!) as { traceEvents: number; acceptCalls: Record<string, number> };
    const instants = (chrome.traceEvents as Array<{ ph: string; cat?: string }>).filter((e) => e.ph === 'i');
    // Every event is an instant on its source's track, but the guest's three stage announcements, which are spans.
    expect(instants.length).toBe(boot.traceEvents - 3);
    expect(instants.filter((e) => e.cat === 'accept').length).toBe(boot.acceptCalls['2M']! + boot.acceptCalls['4K']!);
    expect(await main(['boot', '--json', ...SMALL, '--trace', join(dir, 'run.jsonl')], capture())).toBe(0);
    const first = readFileSync(join(dir, 'run.jsonl'), 'utf8').split('\n')[0]!;
    expect(JSON.parse(first).type).toBe('minivisor-trace');
  });

  it('--trace-filter keeps only the named types and says so in the header', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mv-trace-filter-'));
    const file = join(dir, 'run.jsonl');
    expect(await main(['boot', ...SMALL, '--trace', file, '--trace-filter', 'tdcall,guest'], capture())).toBe(0);
    const [header, ...events] = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(header!.filter).toEqual(['tdcall', 'guest']);
    expect(new Set(events.map((e) => e.type))).toEqual(new Set(['tdcall', 'stage']));
    expect(events.filter((e) => e.type === 'stage').map((e) => e.stage)).toEqual(['firmware', 'decompressor', 'kernel']);
  });

  it('--trace-filter help lists every event type; an unknown one or a filter without --trace is a usage error', async () => {
    const help = capture();
    expect(await main(['boot', '--trace-filter', 'help'], help)).toBe(0);
    for (const t of TRACE_EVENT_TYPES) expect(help.stdout.some((l) => l.trim().startsWith(`${t.type} `)), t.type).toBe(true);
    const bad = capture();
    expect(await main(['boot', '--trace', join(tmpdir(), 'x.jsonl'), '--trace-filter', 'tdcall,nope'], bad)).toBe(2);
    expect(bad.stderr[0]).toContain('unknown event type or source "nope"');
    const alone = capture();
    expect(await main(['boot', '--trace-filter', 'tdcall'], alone)).toBe(2);
    const both = capture();
    expect(await main(['boot', '--trace', '-', '--json'], both)).toBe(2);
    expect(both.stderr[0]).toContain('both want stdout');
  });

  it('a name for stdout itself (/proc/self/fd/1, like /dev/stdout) while stdout is a file is `-`: the trace alone in the file, the summary on stderr', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mv-trace-fd1-'));
    const file = join(dir, 'run.jsonl');
    const run = (args: string[]) => {
      const fd = openSync(file, 'w');
      try {
        return spawnSync(process.execPath, [BIN, ...args], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
      } finally {
        closeSync(fd);
      }
    };
    // Before: the console and the summary went into the middle of the trace, and the trace was
    // written beside the link's name and renamed onto it (in /proc/self/fd: refused, exit 2; for
    // /dev/stdout, as root: /dev/stdout replaced by a regular file).
    const r = run(['boot', ...SMALL, '--trace', '/proc/self/fd/1']);
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('minivisor: TDX guest, 128M, seed 1: done');
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]!.type).toBe('minivisor-trace');
    expect(lines.slice(1).every((e) => typeof e.seq === 'number')).toBe(true);
    expect(readdirSync(dir)).toEqual(['run.jsonl']);
    const both = run(['boot', ...SMALL, '--trace', '/proc/self/fd/1', '--json']);
    expect(both.status).toBe(2);
    expect(both.stderr).toBe('minivisor boot: --trace "/proc/self/fd/1" and --json both want stdout: write the trace to a file\n');
  });
});

describe('replay --trace', () => {
  it('writes the trace as boot does: a header line, the format by name, - on stdout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mv-replay-trace-'));
    const finding = handMadeFinding(dir);
    const jsonl = join(dir, 'replay.jsonl');
    const io = capture();
    await main(['replay', finding, '--trace', jsonl, '--json'], io);
    const result = JSON.parse(io.stdout[0]!) as { traceSha256: string };
    const text = readFileSync(jsonl, 'utf8');
    expect(JSON.parse(text.split('\n')[0]!)).toMatchObject({ type: 'minivisor-trace', config: { platform: 'tdx', memoryBytes: '0x8000000' } });
    expect(traceSha256OfJsonLines(text)).toBe(result.traceSha256);
    await main(['replay', finding, '--trace', join(dir, 'replay.json')], capture());
    expect(JSON.parse(readFileSync(join(dir, 'replay.json'), 'utf8')).traceEvents.length).toBeGreaterThan(10);
    const piped = spawnSync(process.execPath, [BIN, 'replay', finding, '--trace', '-', '--trace-filter', 'tdcall'], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
    const lines = piped.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]!.filter).toEqual(['tdcall']);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.slice(1).every((e) => e.type === 'tdcall')).toBe(true);
    expect(piped.stderr).toContain('minivisor replay:');
  });

  it('a path it cannot write is exit 2 before the replay runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mv-replay-trace-'));
    const io = capture();
    expect(await main(['replay', handMadeFinding(dir), '--trace', '/nonexistent-dir/r.jsonl'], io)).toBe(2);
    expect(io.stderr).toEqual(['minivisor replay: cannot write trace "/nonexistent-dir/r.jsonl": the directory "/nonexistent-dir" does not exist (ENOENT)']);
    expect(io.stdout).toEqual([]);
  });
});
