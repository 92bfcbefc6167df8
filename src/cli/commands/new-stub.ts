// `minivisor new-stub DIR`: writes a stage template (guest/template/<stage>) that builds with the
// guest SDK this package ships (guest/include, guest/lib) and boots with `minivisor boot`.
import { Command } from 'commander';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../shared/package-root.js';
import { quoteForError } from '../../shared/quote.js';
import type { CliIo } from '../io.js';

/** The guest SDK: headers in include/, library, kernel entry and linker script in lib/. */
export const GUEST_SDK_DIR = join(PACKAGE_ROOT, 'guest');
const TEMPLATE_DIR = join(GUEST_SDK_DIR, 'template');
/** Stages a template exists for; the flag's name for each is the `minivisor boot` flag that loads it. */
export const STUB_TEMPLATES = { kernel: '--kernel' } as const;
export type StubTemplate = keyof typeof STUB_TEMPLATES;

export class NewStubError extends Error {
  override name = 'NewStubError';
}

/** Copies the template for `stage` into `dir` (which must be absent or empty); returns the files written. */
export function writeStubTemplate(dir: string, stage: StubTemplate = 'kernel'): string[] {
  const source = join(TEMPLATE_DIR, stage);
  if (!existsSync(source)) throw new NewStubError(`the ${stage} template is missing from this installation (${source})`);
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new NewStubError(`${quoteForError(dir)} is not empty: new-stub writes only into a new or empty folder`);
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const name of readdirSync(source).sort()) {
    // The Makefile names this installation's SDK; `make MINIVISOR_SDK=...` still overrides it.
    const text = readFileSync(join(source, name), 'utf8').replaceAll('@MINIVISOR_SDK@', GUEST_SDK_DIR);
    writeFileSync(join(dir, name), text);
    written.push(name);
  }
  return written;
}

export function newStubCommand(io: CliIo): Command {
  return new Command('new-stub')
    .description('write a guest stage template (C, Makefile, a vitest file) that builds with the guest SDK and boots')
    .argument('<dir>', 'a new or empty folder')
    .option('--stage <stage>', `the stage to replace: ${Object.keys(STUB_TEMPLATES).join(', ')} (the templates so far)`, 'kernel')
    .action((dir: string, options: { stage: string }) => {
      if (!Object.hasOwn(STUB_TEMPLATES, options.stage)) {
        io.err(`minivisor new-stub: --stage must be ${Object.keys(STUB_TEMPLATES).join(' or ')}, not "${options.stage}" (a firmware or decompressor of your own starts from firmware/ or guest/decompressor/ in a clone)`);
        io.exitCode = 2;
        return;
      }
      const stage = options.stage as StubTemplate;
      try {
        const target = resolve(dir);
        const files = writeStubTemplate(target, stage);
        io.out(`wrote ${files.join(', ')} to ${target}`);
        io.out(`next: cd ${dir} && make && npx minivisor boot ${STUB_TEMPLATES[stage]} build/${stage}.elf --verify`);
      } catch (err) {
        if (!(err instanceof NewStubError)) throw err;
        io.err(`minivisor new-stub: ${err.message}`);
        io.exitCode = 1;
      }
    });
}
