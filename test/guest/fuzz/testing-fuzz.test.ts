// minivisor/testing's fuzzStub and assertNoFindings: a user's suite sets the fuzzer on its own
// stub in a few lines. The "user's" stub here is our planted kernel reaccept-skipped, copied out;
// the honest kernel is its fix.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertNoFindings, fuzzStub } from '../../../src/testing/index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'minivisor-fuzz-stub-'));

describe('minivisor/testing fuzzStub', () => {
  it('finds the planted bug in a kernel of "yours" in its default 300 executions, and the assertion says how to replay it', async () => {
    const dir = tmp();
    const kernel = join(dir, 'kernel.elf');
    copyFileSync('guest/build/variants/reaccept-skipped/kernel.elf', kernel);
    const out = join(dir, 'fuzz-out');
    const run = await fuzzStub({ platform: 'tdx', kernel, out });
    expect(run.execs).toBe(300);
    expect(run.findings.map((f) => f.category)).toEqual(['foreign-content']);
    const file = run.findings[0]!.file!;
    expect(file).toBe(join(out, 'findings', run.findings[0]!.id, 'finding.json'));
    expect(JSON.parse(readFileSync(file, 'utf8')).target.images.kernel.file).toBe(kernel);
    expect(() => assertNoFindings(run)).toThrow(new RegExp(`^TDX fuzz: 1 finding in 300 executions:\\n  foreign-content-[0-9a-f]{12} \\(high\\): the guest read private memory[^\\n]*\\n    the guest read 0x[0-9a-f]+ at RIP[^\\n]*\\n    replay: minivisor replay ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  }, 60_000);

  it('passes the honest kernel, and a campaign is a pure function of its options, whatever its out directory holds', async () => {
    const out = join(tmp(), 'fuzz-out');
    const options = { platform: 'snp' as const, kernel: 'guest/build/kernel.elf', runs: 60, seed: 3n, out };
    const first = await fuzzStub(options);
    assertNoFindings(first);
    expect(first.execs).toBe(60);
    expect(first.verdicts.finding).toBe(0);
    // The corpus it kept is there for the CLI to resume, and is not this function's seed list.
    expect(readdirSync(join(out, 'corpus')).length).toBeGreaterThan(1);
    expect(await fuzzStub(options)).toEqual(first);
  }, 60_000);

  it('without out it keeps nothing, and says so when it fails', async () => {
    const run = await fuzzStub({ platform: 'tdx', variant: 'reaccept-skipped', runs: 300 });
    expect(run.findings).toHaveLength(1);
    expect(run.findings[0]!.file).toBeUndefined();
    expect(() => assertNoFindings(run)).toThrow(/give fuzzStub an `out` directory to keep it for `minivisor replay`$/);
  }, 60_000);

  it('refuses what the CLI refuses, and options the suite cannot mean', async () => {
    await expect(fuzzStub({ time: '5s' } as never)).rejects.toThrow(/^fuzzStub has no option "time" \(options: platform, stage, runs, /);
    await expect(fuzzStub({ runs: 0 })).rejects.toThrow(/--runs must be between 1 and 1000000000/);
    await expect(fuzzStub({ runs: 1.5 })).rejects.toThrow(/^fuzzStub option runs must be a string or an integer, got number$/);
    await expect(fuzzStub({ kernel: join(tmp(), 'missing.elf') })).rejects.toThrow(/kernel image ".*missing\.elf" does not exist/);
  });
});
