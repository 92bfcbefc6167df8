// `--decompressor` and `--kernel` replace one stage each and keep ours for the others. Our own
// stages passed back in as "user" images must boot exactly like the default (the same stats), and
// a wrong image stops the boot with one line naming the file and the problem.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';

const built = (name: string) => join(process.cwd(), 'guest', 'build', name);

async function boot(args: string[]) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io = { out: (l: string) => stdout.push(l), err: (l: string) => stderr.push(l), exitCode: 0 };
  const status = await main(['boot', '--memory', '512M', '--verify', '--json', ...args], io);
  return { status, stderr, result: status === 0 ? JSON.parse(stdout.join('\n')) as { outcome: string; guestStats: Record<string, string>; verify: { ok: boolean } } : undefined };
}

describe('replaceable stages', () => {
  it.each(['tdx', 'snp'])('%s: our kernel as --kernel, our decompressor as --decompressor, and both, boot like the default', async (platform) => {
    const reference = await boot(['--platform', platform]);
    for (const args of [['--kernel', built('kernel.elf')], ['--decompressor', built('decompressor.elf')],
      ['--decompressor', built('decompressor.elf'), '--kernel', built('kernel.elf')]]) {
      const run = await boot(['--platform', platform, ...args]);
      expect(run.status, `${args.join(' ')}: ${run.stderr.join('\n')}`).toBe(0);
      expect(run.result?.verify.ok).toBe(true);
      for (const stat of ['workload_bytes_verified', 'kernel_accepted_bytes', 'conversions']) {
        expect(run.result?.guestStats[stat], `${args.join(' ')}: ${stat}`).toBe(reference.result?.guestStats[stat]);
      }
    }
  }, 120_000);

  it('refuses an image for the wrong stage or not an ELF, naming the file', async () => {
    const cases: [string[], RegExp][] = [
      [['--kernel', built('guest-image.elf')], /^minivisor boot: kernel image ".*guest-image\.elf": invalid ELF image: PT_LOAD #0 at 0x340000: .* outside the ABI window \[0x1000000, 0x17f0000\)/],
      [['--decompressor', built('kernel.elf')], /^minivisor boot: decompressor image ".*kernel\.elf": invalid ELF image: PT_LOAD #0 at 0x1000000: .* outside the ABI window \[0x340000, 0x400000\)/],
      [['--kernel', join(process.cwd(), 'package.json')], /^minivisor boot: kernel image ".*package\.json": invalid ELF image: missing \\x7fELF magic/],
      [['--decompressor', 'no-such.elf'], /^minivisor boot: decompressor image "no-such\.elf" does not exist/],
    ];
    for (const [args, message] of cases) {
      const run = await boot(args);
      expect(run.status, args.join(' ')).toBe(1);
      expect(run.stderr[0], args.join(' ')).toMatch(message);
    }
  });
});
