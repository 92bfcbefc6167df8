// `minivisor test`: our own stubs regression-tested through scenario files (scenarios/), and
// what a failing scenario looks like.
import { describe, expect, it } from 'vitest';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { BUILT_FIRMWARE } from '../../src/boot/images.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { capture } from '../helpers/captured-io.js';

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

  it('--update refuses scenarios that share a golden, before any runs (before: each rewrote it, the last one\'s trace stayed)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-golden-'));
    writeFileSync(join(dir, 'a.scenario.json'), JSON.stringify({ boot: { maxInstructions: '1000' }, expect: { golden: 'shared.json' } }));
    writeFileSync(join(dir, 'b.scenario.yaml'), 'boot: { maxInstructions: 2000 }\nexpect: { golden: ./shared.json }\n');
    const io = capture();
    expect(await main(['test', dir, '--update'], io)).toBe(2);
    expect(io.stdout.filter((l) => l.startsWith('ERROR '))).toEqual([
      expect.stringMatching(/^ERROR .*a\.scenario\.json: .*a\.scenario\.json: with --update, its golden ".*shared\.json" is also that of ".*b\.scenario\.yaml", and each would rewrite it: give each scenario its own golden$/),
      expect.stringMatching(/^ERROR .*b\.scenario\.yaml: .* is also that of ".*a\.scenario\.json"/),
    ]);
    expect(existsSync(join(dir, 'shared.json'))).toBe(false);
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

  it('refuses a guestStats value that is not a number as that scenario\'s error, and runs the others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-bad-stats-'));
    writeFileSync(join(dir, 'a-words.scenario.yaml'), 'boot: { memory: 256M, workload: 1M }\nexpect: { guestStats: { workload_bytes_verified: lots } }\n');
    writeFileSync(join(dir, 'b-fraction.scenario.yaml'), 'boot: { memory: 256M, workload: 1M }\nexpect: { guestStats: { workload_bytes_verified: 1.5 } }\n');
    writeFileSync(join(dir, 'c-good.scenario.yaml'), 'boot: { memory: 256M, workload: 1M }\nexpect: { outcome: done }\n');
    const io = capture();
    // Before: BigInt("lots") threw a SyntaxError out of the run: exit 1, "minivisor: Cannot convert lots to a BigInt", no scenario reported.
    expect(await main(['test', dir], io)).toBe(2);
    expect(io.stderr).toEqual([]);
    expect(io.stdout[0]).toMatch(/^ERROR .*a-words\.scenario\.yaml: .*expect\.guestStats\.workload_bytes_verified must be a non-negative integer, not "lots"$/);
    expect(io.stdout[1]).toMatch(/^ERROR .*b-fraction\.scenario\.yaml: .*not "1\.5"$/);
    expect(io.stdout[2]).toMatch(/^PASS +c-good /);
  });

  it('a guestStats key of Object.prototype is a statistic the guest did not report', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-proto-stats-'));
    writeFileSync(join(dir, 'proto.scenario.yaml'), 'boot: { memory: 256M, workload: 1M }\nexpect: { guestStats: { constructor: 1 } }\n');
    const io = capture();
    expect(await main(['test', dir], io)).toBe(1);
    expect(io.stdout.join('\n')).toMatch(/guestStats\.constructor: expected 1, got nothing/);
  });

  it('walks each folder once: symlinks back up the tree are skipped, not followed until the path is too long', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-loop-'));
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'one.scenario.yaml'), 'boot: { memory: 256M, workload: 1M }\nexpect: { outcome: done }\n');
    symlinkSync('..', join(dir, 'sub', 'up'));
    symlinkSync('..', join(dir, 'sub', 'up-again'));
    symlinkSync(join(dir, 'nowhere'), join(dir, 'sub', 'dangling'));
    const io = capture();
    expect(await main(['test', dir], io)).toBe(0);
    expect(io.stdout.filter((l) => l.startsWith('PASS'))).toHaveLength(1);
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

describe('minivisor test never writes a file a scenario reads', () => {
  /** A scenario booting a copy of our firmware with an empty adversary file; `golden` as given. */
  function scenarioWithInputs(golden?: string): { dir: string; scenario: string; firmware: string; adversary: string } {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-scenario-inputs-'));
    const firmware = join(dir, 'fw.elf');
    copyFileSync(BUILT_FIRMWARE, firmware);
    const adversary = join(dir, 'adversary.json');
    writeFileSync(adversary, JSON.stringify({ format: 'minivisor-attack-program', version: 1, platform: 'tdx', decisions: [] }));
    const scenario = join(dir, 'inputs.scenario.yaml');
    writeFileSync(scenario, `boot: { platform: tdx, memory: 256M, workload: 1M, firmware: fw.elf }\nadversary: adversary.json\n${golden ? `expect: { golden: ${golden} }\n` : ''}`);
    return { dir, scenario, firmware, adversary };
  }

  // Before, only the scenario file itself was protected: --update rewrote its firmware or its
  // adversary as a golden, and --junit wrote the report over any of them.
  it.each(['fw.elf', 'adversary.json'])('--update with a golden that is the scenario\'s %s: unusable, the file intact', async (name) => {
    const { scenario, dir } = scenarioWithInputs(name);
    const before = readFileSync(join(dir, name));
    const io = capture();
    expect(await main(['test', scenario, '--update'], io)).toBe(2);
    expect(io.stdout[0]).toMatch(new RegExp(`^ERROR .*inputs\\.scenario\\.yaml: golden ".*${name.replace('.', '\\.')}" is the input .*; inputs are never overwritten$`));
    expect(readFileSync(join(dir, name)).equals(before)).toBe(true);
  });

  it('--junit naming a file a scenario reads is refused before any scenario runs (exit 2), the file intact', async () => {
    const { dir, scenario, firmware, adversary } = scenarioWithInputs();
    // Our guest image through a symlink: were it not refused, the rename would replace the link only.
    const guestImage = join(dir, 'guest-image.elf');
    symlinkSync(BUILT_FIRMWARE.replace(/firmware\/build\/firmware\.elf$/, 'guest/build/guest-image.elf'), guestImage);
    for (const target of [adversary, firmware, guestImage]) {
      const before = readFileSync(target);
      const io = capture();
      expect(await main(['test', scenario, '--junit', target], io)).toBe(2);
      expect(io.stdout).toEqual([]);
      expect(io.stderr).toHaveLength(1);
      expect(io.stderr[0]).toMatch(/^minivisor test: JUnit report ".*" is the input ".*"; inputs are never overwritten$/);
      expect(readFileSync(target).equals(before)).toBe(true);
    }
  });

  it('--junit in a directory that does not exist is refused before any scenario runs (exit 2)', async () => {
    const { dir, scenario } = scenarioWithInputs();
    const io = capture();
    expect(await main(['test', scenario, '--junit', join(dir, 'no/such/dir/report.xml')], io)).toBe(2);
    expect(io.stdout).toEqual([]);
    expect(io.stderr).toEqual([expect.stringMatching(/^minivisor test: cannot write JUnit report .*ENOENT/)]);
  });
});
