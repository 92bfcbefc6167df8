// `--help` on every command (found by walking the help's own command lists, so a new command is
// checked too) shows every flag's default, the exit statuses and two examples; `minivisor info`
// lists platforms, modelled features, the Unicorn version and the limits (issue 13).
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { UNDESCRIBED_DEFAULT } from '../../src/cli/help.js';
import { capture } from '../helpers/captured-io.js';

async function help(path: string[]): Promise<string> {
  const io = capture();
  expect(await main([...path, '--help'], io)).toBe(0);
  return io.stdout.join('\n');
}

/** The lines of a help section ("Options:", "Commands:", …) up to the next blank line. */
function section(text: string, title: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(title);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.trim() === '');
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** Help entries ("  --flag <v>  description" plus its wrapped continuation lines), joined. */
function entries(lines: string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    if (/^ {2}\S/.test(line)) out.push(line.trim());
    else if (out.length) out[out.length - 1] += ` ${line.trim()}`;
  }
  return out;
}

async function allCommandPaths(): Promise<string[][]> {
  const paths: string[][] = [[]];
  for (let i = 0; i < paths.length; i++) {
    const subcommands = entries(section(await help(paths[i]!), 'Commands:')).map((e) => e.split(/\s/)[0]!).filter((n) => n !== 'help');
    for (const name of subcommands) paths.push([...paths[i]!, name]);
  }
  return paths;
}

describe('--help on every command', async () => {
  const paths = await allCommandPaths();

  it('finds the commands through the help itself', () => {
    expect(paths.map((p) => p.join(' '))).toEqual(expect.arrayContaining(['', 'boot', 'fuzz', 'fuzz merge', 'replay', 'shrink', 'info']));
  });

  it.each(paths.map((p) => [p.join(' ') || '(minivisor)', p] as const))('%s: exit statuses, two examples, a default for every flag with a value', async (_name, path) => {
    const text = await help(path);
    const statuses = entries(section(text, 'Exit status:'));
    expect(statuses.length).toBeGreaterThan(0);
    for (const s of statuses) expect(s).toMatch(/^([0-2]|130|141)\s+\S/);
    const examples = entries(section(text, 'Examples:'));
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const e of examples) expect(e.startsWith(`$ minivisor ${path.join(' ')}`.trimEnd())).toBe(true);
    for (const option of entries(section(text, 'Options:')).filter((o) => /^(-\w, )?--[\w-]+ [<[]/.test(o))) {
      expect(option, option).toMatch(/\(default:? [^)]/);
      expect(option, option).not.toContain(UNDESCRIBED_DEFAULT);
    }
  });

  it('boot lists every outcome that is not done under exit status 1, and usage errors under 2', async () => {
    const statuses = entries(section(await help(['boot']), 'Exit status:'));
    const one = statuses.find((s) => s.startsWith('1 '))!;
    // The outcome kinds of src/shared/outcome.ts other than done.
    for (const outcome of ['guest-fatal', 'terminated', 'vmm-error', 'fault', 'budget']) expect(one).toContain(outcome);
    expect(statuses.find((s) => s.startsWith('0 '))).toContain('done');
    expect(statuses.find((s) => s.startsWith('2 '))).toMatch(/bad flags/);
  });

  it('the documented exit statuses are the real ones: a bad flag is 2, a budget outcome is 1', async () => {
    expect(await main(['boot', '--unit', '3K'], capture())).toBe(2);
    expect(await main(['boot', '--json', '--memory', '128M', '--max-instructions', '1000'], capture())).toBe(1);
  });
});

describe('minivisor info', () => {
  it('--json lists both platforms with their modelled features, the Unicorn version and the limits', async () => {
    const io = capture();
    expect(await main(['info', '--json'], io)).toBe(0);
    const info = JSON.parse(io.stdout[0]!);
    expect(info.platforms).toEqual(['tdx', 'snp']);
    expect(info.unicorn).toMatch(/^2\.\d+\.\d+/);
    const tdx = info.models.find((m: { name: string }) => m.name === 'tdx');
    const snp = info.models.find((m: { name: string }) => m.name === 'snp');
    expect(tdx.features.join(' ')).toMatch(/TDG\.MEM\.PAGE\.ACCEPT/);
    expect(snp.features.join(' ')).toMatch(/PVALIDATE/);
    // The memory range is the one `boot --memory` enforces.
    expect(info.limits.join(' ')).toMatch(/128M to 64T/);
    const big = capture();
    expect(await main(['boot', '--memory', '65T'], big)).toBe(2);
    expect(big.stderr.join('\n')).toMatch(/between 128M and 64T/);
    // The vCPU limits are the ones `boot --vcpus` enforces.
    expect(info.limits.join(' ')).toMatch(/vCPUs: up to 64 on TDX and SNP .*one with --linux, --handover or --tracking memmap/);
    expect(await main(['boot', '--vcpus', '65'], capture())).toBe(2);
    expect(await main(['boot', '--platform', 'snp', '--vcpus', '2', '--handover', 'kexec'], capture())).toBe(2);
    expect(await main(['boot', '--platform', 'snp', '--vcpus', '2', '--tracking', 'memmap'], capture())).toBe(2);
  });

  it('prints the same as text', async () => {
    const io = capture();
    expect(await main(['info'], io)).toBe(0);
    const text = io.stdout.join('\n');
    expect(text).toMatch(/libunicorn 2\./);
    expect(text).toMatch(/^tdx: /m);
    expect(text).toMatch(/^snp: /m);
    expect(text).toMatch(/^limits:/m);
  });
});
