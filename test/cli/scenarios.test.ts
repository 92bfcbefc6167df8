// `minivisor test`: our own stubs regression-tested through scenario files (scenarios/), and
// what a failing scenario looks like.
import { describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';

function capture() {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (l: string) => stdout.push(l), err: (l: string) => stderr.push(l), exitCode: 0 };
}

describe('minivisor test', () => {
  it('runs scenarios/ green: one line per scenario and a summary, and a JUnit report', async () => {
    const junit = join(mkdtempSync(join(tmpdir(), 'minivisor-junit-')), 'report.xml');
    const io = capture();
    const status = await main(['test', 'scenarios', '--junit', junit], io);
    expect(io.stdout.join('\n'), io.stdout.join('\n')).not.toMatch(/FAIL|ERROR/);
    expect(status).toBe(0);
    expect(io.stdout.filter((l) => l.startsWith('PASS'))).toHaveLength(4);
    expect(io.stdout[io.stdout.length - 1]).toBe('\n4 passed, 0 failed (4 scenario files)');
    const xml = readFileSync(junit, 'utf8');
    expect(xml).toMatch(/<testsuite name="minivisor" tests="4" failures="0"/);
    expect(xml).toMatch(/<testcase classname="minivisor.scenarios" name="TDX default boot"/);
  });

  it('turns red with a readable diff on a broken expectation and a stale golden', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-scenarios-'));
    cpSync('scenarios/golden', join(dir, 'golden'), { recursive: true });
    // The TDX golden, but a boot with another seed: same event kinds, different trace.
    writeFileSync(join(dir, 'broken.scenario.yaml'), [
      'name: broken', 'boot: { platform: tdx, seed: 2 }',
      'expect:', '  outcome: guest-fatal', '  acceptedBytes: { max: 1M }', '  guestStats: { workload_bytes_verified: 1 }', '  golden: golden/tdx-default.json',
    ].join('\n'));
    const junit = join(dir, 'report.xml');
    const io = capture();
    expect(await main(['test', dir, '--junit', junit], io)).toBe(1);
    const out = io.stdout.join('\n');
    expect(out).toMatch(/^FAIL {2}broken {2}\(tdx done, accepted \d+ MiB, \d+ events\)$/m);
    expect(out).toMatch(/^ {6}outcome: expected guest-fatal, got done \(guest halted/m);
    expect(out).toMatch(/^ {6}acceptedBytes: expected at most 1048576, got \d+$/m);
    expect(out).toMatch(/^ {6}guestStats\.workload_bytes_verified: expected 1, got 104890368$/m);
    expect(out).toMatch(/^ {6}golden: trace [0-9a-f]{16}… differs from the golden [0-9a-f]{16}… \(\d+ → \d+ events\)$/m);
    expect(out).toMatch(/0 passed, 1 failed \(1 scenario files\)$/);
    expect(readFileSync(junit, 'utf8')).toMatch(/failures="1"[\s\S]*<failure message="outcome: expected guest-fatal, got done/);
  });

  it('--update writes a missing golden, after which the scenario passes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-golden-'));
    writeFileSync(join(dir, 'small.scenario.json'), JSON.stringify({ boot: { platform: 'snp', memory: '256M', workload: '16M' }, expect: { golden: 'small.golden.json' } }));
    const first = capture();
    expect(await main(['test', dir], first)).toBe(1);
    expect(first.stdout.join('\n')).toMatch(/golden: .*small\.golden\.json is missing or unreadable \(run with --update to write it\)/);
    const update = capture();
    expect(await main(['test', dir, '--update'], update)).toBe(0);
    expect(update.stdout[0]).toMatch(/^PASS {2}small {2}\(.*; golden updated\)$/);
    expect(JSON.parse(readFileSync(join(dir, 'small.golden.json'), 'utf8'))).toMatchObject({ traceSha256: expect.stringMatching(/^[0-9a-f]{64}$/), eventCounts: expect.objectContaining({ pvalidate: expect.any(Number) }) });
    const again = capture();
    expect(await main(['test', dir], again)).toBe(0);
  });

  it('refuses an unusable scenario with one message (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-bad-scenario-'));
    writeFileSync(join(dir, 'typo.scenario.yaml'), 'boot: { platfrom: tdx }\n');
    const io = capture();
    expect(await main(['test', dir], io)).toBe(2);
    expect(io.stdout[0]).toMatch(/^ERROR .*typo\.scenario\.yaml: .*boot: unknown key "platfrom"/);
    const io2 = capture();
    expect(await main(['test', join(dir, 'nothing-here')], io2)).toBe(2);
    expect(io2.stderr[0]).toMatch(/does not exist/);
  });

  it('runs an adversary (an attack program) as the VMM: without it the same expectations fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-adversary-'));
    const stall = readFileSync(join(process.cwd(), 'scenarios', 'tdx-mapgpa-stall.scenario.yaml'), 'utf8');
    // The program from a file, as `minivisor fuzz` writes findings: { ..., program: {...} }.
    const program = { format: 'minivisor-attack-program', version: 1, platform: 'tdx', decisions: [
      { at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1_000_000, answer: { kind: 'map-gpa', convertBytes: '0x0', status: '0x1', resumeDelta: '0x0' } }] };
    writeFileSync(join(dir, 'finding.json'), JSON.stringify({ id: 'x', program }));
    writeFileSync(join(dir, 'file.scenario.yaml'), 'boot: { platform: tdx, memory: 512M }\nadversary: finding.json\nexpect: { outcome: guest-fatal, reason: ^tdx_map_gpa_no_progress }\n');
    writeFileSync(join(dir, 'honest.scenario.yaml'), stall.replace(/^adversary:[\s\S]*?(?=^expect:)/m, '').replace(/^\s+golden:.*$/m, ''));
    const io = capture();
    expect(await main(['test', dir], io)).toBe(1);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/^PASS +file /m);
    expect(text).toMatch(/^FAIL +TDX hostile MapGPA stall is refused .*\n +outcome: expected guest-fatal, got done/m);
  });

  it('refuses an adversary that is not a program, or one for the other platform', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-bad-adversary-'));
    const write = (name: string, adversary: string) => writeFileSync(join(dir, `${name}.scenario.yaml`), `boot: { platform: snp }\nadversary: ${adversary}\n`);
    write('tdx-on-snp', '{ format: minivisor-attack-program, version: 1, platform: tdx, decisions: [] }');
    write('typo', '{ format: minivisor-attack-program, version: 1, platform: snp, decisoins: [] }');
    write('missing', 'nowhere.json');
    for (const [name, message] of [
      ['tdx-on-snp', /adversary: a tdx attack program cannot run on the scenario's snp boot/],
      ['typo', /adversary/],
      ['missing', /adversary: .*nowhere\.json.* does not exist/],
    ] as const) {
      const io = capture();
      expect(await main(['test', join(dir, `${name}.scenario.yaml`)], io)).toBe(2);
      expect(io.stdout[0], name).toMatch(message);
    }
  });
});
