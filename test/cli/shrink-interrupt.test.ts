// Ctrl-C (SIGINT) or SIGTERM during `minivisor shrink` keeps the work done, as libFuzzer's and
// AFL's minimisers do: the shrink stops at the next execution, prints the smallest program found
// so far and writes it to --out as a finished shrink does (whole: temporary file and rename), says
// how far it got, and the process ends by that signal (130/143), as `fuzz` does. A second signal
// quits at once, writing nothing and leaving no temporary file. Each case spawns the CLI as a user
// would and signals it once the shrink has reported a smaller program.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interruptWhileWriting, runInterrupted } from '../helpers/interrupted-cli.js';
import { attackProgramFromJson, attackProgramToJsonValue, type AttackProgram, type Decision, type LaunchAction } from '../../src/fuzz/attack-program.js';
import { findingFromJson } from '../../src/fuzz/finding-file.js';

/** The one decision the reaccept-skipped stubs' foreign-content finding needs (what `fuzz --variant reaccept-skipped` finds with seed 1). */
const NEEDED: Decision = {
  at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1_000_000,
  answer: { kind: 'map-gpa', convertBytes: 0x100_0000_0000n, status: 0n, sharedEptOnly: true },
};
/** Host writes after exits the run never reaches: the shrinker removes them all, half a list at a time. */
const PADDING: Decision[] = Array.from({ length: 203 }, (_, i) => ({
  at: 'exit', exitIndex: 900_000 + i, action: { kind: 'shared-write', gpa: 0x1a84f98n, value: 1n, size: 4 },
}));

/**
 * Launch actions the run does not need: UNBLOCKs of GPAs that have no SEPT entry, which the module
 * refuses. Each candidate launch part the shrinker tries is a fresh launch of the 32 GiB VM
 * (~0.25 s), and it tries about five.
 */
const LAUNCH_PADDING: LaunchAction[] = Array.from({ length: 16 }, (_, i) => ({
  kind: 'tdx.seamcall', op: 'UNBLOCK', gpa: 0x7_0000_0000n + BigInt(i) * 0x20_0000n, level: 0,
}));

/**
 * A reproducing finding of 204 decisions and 16 launch actions whose shrink takes 15 executions.
 * The decisions go first, in ~1 ms each after the first (the execution memo and early verdicts);
 * the launch actions after them, in ~0.25 s each. So the signal, sent at the first smaller
 * program, has about two seconds to land before the shrink ends, even on a loaded machine (the
 * CLI yields the CPU to the test: interrupted-cli.ts). `preAccept`: the memory the firmware
 * accepts before the kernel stage where executions start (hex).
 */
function slowFinding(dir: string, preAccept = '0x4000000'): string {
  const program: AttackProgram = { platform: 'tdx', decisions: [...PADDING.slice(0, 101), NEEDED, ...PADDING.slice(101)], launch: LAUNCH_PADDING };
  const file = join(dir, 'finding.json');
  writeFileSync(file, JSON.stringify({
    format: 'minivisor-finding', version: 1, id: 'foreign-content-000000000000', category: 'foreign-content', severity: 'high',
    summary: 's', detail: 'd', target: {
      platform: 'tdx', stage: 'kernel', memoryBytes: '0x800000000', workloadBytes: '0x100000', preAccept, accept: 'eager',
      unitBytes: '0x200000', guestSeed: '0x1', maxInstructions: '0x77359400', variant: 'reaccept-skipped',
    }, seed: '0x1', job: 0, execIndex: 0, outcome: { outcome: 'done', reason: 'r' }, traceSha256: '0'.repeat(64),
    replay: `minivisor replay ${file}`, program: attackProgramToJsonValue(program), unshrunk: attackProgramToJsonValue(program),
  }));
  return file;
}

/** Runs `minivisor shrink ARGS` and sends `signals` once it reports a program smaller than the finding's. */
async function shrinkInterrupted(args: string[], signals: NodeJS.Signals[]) {
  const r = await runInterrupted(['shrink', ...args], /^shrink: (\d+) decisions? \(from 204\) after \d+ executions?$/m, signals);
  return { ...r, smallestSeen: r.trigger ? Number(r.trigger[1]) : 0 };
}

describe('an interrupted shrink keeps the smallest program found so far', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('%s: printed and written to --out as a finished shrink does, and the process ends by that signal', async (signal) => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-shrink-int-'));
    const input = slowFinding(dir);
    const before = readFileSync(input, 'utf8');
    const out = join(dir, 'smaller.json');
    const r = await shrinkInterrupted([input, '--out', out], [signal]);
    expect([r.status, r.signal]).toEqual([null, signal]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr).toMatch(new RegExp(`^minivisor shrink: ${signal}: stopping after the current execution, keeping the smallest program found so far \\(again to quit at once\\)$`, 'm'));
    const m = new RegExp(`^minivisor shrink: interrupted \\(${signal}\\) after (\\d+) of at most 1000 executions: 204 -> (\\d+) decisions? so far$`, 'm').exec(r.stderr);
    expect(m).not.toBeNull();
    // Stopped before the end (the whole shrink is 15 executions, down to 1 decision and no launch action), with at most what it had reported.
    const [executions, kept] = [Number(m![1]), Number(m![2])];
    expect(executions).toBeLessThan(15);
    expect(kept).toBeLessThanOrEqual(r.smallestSeen);
    const printed = attackProgramFromJson(r.stdout, 'stdout');
    expect(printed.decisions).toHaveLength(kept);
    expect(printed.decisions).toContainEqual(NEEDED);
    // The finding is written whole, with the printed program, and replays with the trace hash it records.
    const written = findingFromJson(readFileSync(out, 'utf8'), out);
    expect(written.program).toEqual(printed);
    const replay = spawnSync(process.execPath, ['bin/minivisor.js', 'replay', out, '--json'], { encoding: 'utf8' });
    expect(JSON.parse(replay.stdout)).toMatchObject({ reproduced: true, identicalTrace: true, category: 'foreign-content' });
    expect(readFileSync(input, 'utf8')).toBe(before);
    expect(readdirSync(dir).sort()).toEqual(['finding.json', 'smaller.json']);
  }, 60_000);

  it('a second signal quits at once: nothing printed or written, and no temporary file left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-shrink-int2-'));
    const input = slowFinding(dir);
    // Two different signals: two of the same sent back to back may reach the process as one.
    const r = await shrinkInterrupted([input, '--out', join(dir, 'smaller.json')], ['SIGTERM', 'SIGINT']);
    expect(r.status).toBeNull();
    expect(['SIGINT', 'SIGTERM']).toContain(r.signal);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr).toMatch(/^minivisor shrink: SIG(INT|TERM): stopping after the current execution/m);
    expect(r.stderr).not.toMatch(/interrupted \(SIG(INT|TERM)\) after/);
    expect(r.stdout).toBe('');
    expect(existsSync(join(dir, 'smaller.json'))).toBe(false);
    expect(readdirSync(dir)).toEqual(['finding.json']);
  }, 60_000);

  it('a signal while the shrink sets up, before it handles signals itself, ends it by that signal and removes the temporary --out file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-shrink-setup-'));
    // Half of the 32 GiB accepted by the firmware on the way to the kernel stage: seconds of setup with --out open.
    const input = slowFinding(dir, '0x400000000');
    const before = readFileSync(input, 'utf8');
    const r = await interruptWhileWriting(['shrink', input, '--out', join(dir, 'smaller.json')], dir, 'SIGINT');
    expect(r.sawTemp).toEqual([expect.stringMatching(/^\.smaller\.json\.tmp-\d+-\d+$/)]);
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expect(r.stderr).toBe('');
    expect(readdirSync(dir)).toEqual(['finding.json']);
    expect(readFileSync(input, 'utf8')).toBe(before);
  }, 60_000);
});
