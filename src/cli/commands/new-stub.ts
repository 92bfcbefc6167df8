// `minivisor new-stub DIR [--stage firmware|decompressor|kernel]`: writes a stage that builds with
// the guest SDK this package ships (guest/include, guest/lib) and boots with `minivisor boot`.
// The Makefile and the vitest file are one template each (guest/template), filled in per stage.
// The kernel's C source is a small template of its own; the firmware and decompressor templates
// are our own stages' sources (firmware/, guest/decompressor/), copied without the build variants
// only this repository compiles, so the template is the code every default boot runs.
import { Command } from 'commander';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { makeDirectories } from '../../shared/make-directories.js';
import { basename, join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../shared/package-root.js';
import { quoteForError } from '../../shared/quote.js';
import { creationErrorInWords } from '../../shared/output-file.js';
import { minivisorVersion } from '../../shared/version.js';
import { StripVariantsError, stripBuildVariants } from '../strip-build-variants.js';
import type { CliIo } from '../io.js';

/** The guest SDK: headers in include/, library, kernel entry and linker script in lib/. */
export const GUEST_SDK_DIR = join(PACKAGE_ROOT, 'guest');
const TEMPLATE_DIR = join(GUEST_SDK_DIR, 'template');

interface StageTemplate {
  /** The `minivisor boot` flag that loads the stage (and the `bootStub` option of the same name). */
  bootFlag: string;
  /** Our stage's sources copied into the folder, relative to the package root. */
  copied: readonly string[];
  /** The Makefile's SRCS: the folder's sources, then the SDK's (make variables). */
  srcs: string;
  ldscript: string;
}

/** Stages a template exists for. */
export const STUB_TEMPLATES = {
  firmware: {
    bootFlag: '--firmware',
    copied: ['firmware/reset-vector.S', 'firmware/entry.S', 'firmware/ap-park.S', 'firmware/linux.S', 'firmware/main.c', 'firmware/firmware.ld'],
    srcs: 'reset-vector.S entry.S ap-park.S linux.S main.c $(GUEST_LIB_SRCS)',
    ldscript: 'firmware.ld',
  },
  decompressor: {
    bootFlag: '--decompressor',
    copied: ['guest/decompressor/entry.S', 'guest/decompressor/main.c', 'guest/decompressor/lz4.c', 'guest/decompressor/lz4.h', 'guest/decompressor/payload.S', 'guest/decompressor/decompressor.ld'],
    srcs: 'entry.S main.c lz4.c payload.S $(GUEST_LIB_SRCS) $(MINIVISOR_SDK)/lib/unaccepted.c',
    ldscript: 'decompressor.ld',
  },
  kernel: {
    bootFlag: '--kernel',
    copied: [],
    srcs: '$(MINIVISOR_SDK)/lib/kernel-entry.S main.c $(GUEST_LIB_SRCS) $(MINIVISOR_SDK)/lib/unaccepted.c',
    ldscript: '$(MINIVISOR_SDK)/lib/kernel.ld',
  },
} as const satisfies Record<string, StageTemplate>;
export type StubTemplate = keyof typeof STUB_TEMPLATES;

export class NewStubError extends Error {
  override name = 'NewStubError';
}

function readSource(path: string, what: string): string {
  if (!existsSync(path)) throw new NewStubError(`the ${what} is missing from this installation (${path})`);
  return readFileSync(path, 'utf8');
}

/** The files of the `stage` template, by name: filled-in shared files, the stage's own, and our copied sources. */
export function stubTemplateFiles(stage: StubTemplate): Map<string, string> {
  const t: StageTemplate = STUB_TEMPLATES[stage];
  const fill = (text: string) => text
    // The Makefile names this installation's SDK; `make MINIVISOR_SDK=...` still overrides it.
    .replaceAll('@MINIVISOR_SDK@', GUEST_SDK_DIR)
    .replaceAll('@STAGE@', stage)
    .replaceAll('@SRCS@', t.srcs)
    .replaceAll('@LDSCRIPT@', t.ldscript);
  const files = new Map<string, string>();
  for (const name of ['Makefile', 'stub.test.mjs']) files.set(name, fill(readSource(join(TEMPLATE_DIR, name), `${stage} template's ${name}`)));
  const own = join(TEMPLATE_DIR, stage);
  if (!existsSync(own)) throw new NewStubError(`the ${stage} template is missing from this installation (${own})`);
  for (const name of readdirSync(own)) files.set(name, readFileSync(join(own, name), 'utf8'));
  for (const source of t.copied) {
    const text = readSource(join(PACKAGE_ROOT, source), `${stage} source ${source}`);
    try {
      // Where the copy came from, in a comment C, assembly and linker scripts all read.
      const origin = `/* Copied by \`minivisor new-stub --stage ${stage}\` from minivisor ${minivisorVersion()}'s ${source}, without its build variants. */\n`;
      files.set(basename(source), origin + stripBuildVariants(text, source));
    } catch (err) {
      if (err instanceof StripVariantsError) throw new NewStubError(`cannot copy the ${stage} sources: ${err.message}`);
      throw err;
    }
  }
  return new Map([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** How a template file is written: `writeFileSync`, or a failing stand-in in tests of the rollback. */
export type WriteTemplateFile = (path: string, text: string) => void;

/**
 * Writes the template for `stage` into `dir` (which must be absent or empty); returns the files written.
 * All or nothing: when a write fails (a full disk, a quota), the files already written and the folder,
 * if this call made it, are removed again, so a later `new-stub` into the same folder is not refused
 * as "not empty" over a half-written template.
 */
export function writeStubTemplate(dir: string, stage: StubTemplate = 'kernel', writeFile: WriteTemplateFile = writeFileSync): string[] {
  const files = stubTemplateFiles(stage);
  const existed = existsSync(dir);
  if (existed && !statSync(dir).isDirectory()) throw new NewStubError(`${quoteForError(dir)} is not a folder: new-stub writes only into a new or empty folder`);
  if (existed && readdirSync(dir).length > 0) throw new NewStubError(`${quoteForError(dir)} is not empty: new-stub writes only into a new or empty folder`);
  const started: string[] = [];
  try {
    makeDirectories(dir);
    for (const [name, text] of files) {
      started.push(join(dir, name));
      writeFile(join(dir, name), text);
    }
  } catch (err) {
    for (const path of started) rmSync(path, { force: true });
    // Only an emptied folder of our own making goes; rmdir refuses one anybody else has filled meanwhile.
    if (!existed) try { rmdirSync(dir); } catch { /* not made, or no longer ours to remove */ }
    // Under a file, under /proc, without permission: said in one line, not as a bare errno.
    throw new NewStubError(`cannot write the template into ${quoteForError(dir)}: ${creationErrorInWords(err)}`);
  }
  return [...files.keys()];
}

export function newStubCommand(io: CliIo): Command {
  const stages = Object.keys(STUB_TEMPLATES);
  return new Command('new-stub')
    .description('write a guest stage template (C, Makefile, a vitest file) that builds with the guest SDK and boots in place of that stage')
    .argument('<dir>', 'a new or empty folder')
    .option('--stage <stage>', `the stage to replace: ${stages.join(', ')}`, 'kernel')
    .action((dir: string, options: { stage: string }) => {
      if (!Object.hasOwn(STUB_TEMPLATES, options.stage)) {
        io.err(`minivisor new-stub: --stage must be ${stages.slice(0, -1).join(', ')} or ${stages.at(-1)}, not ${quoteForError(options.stage)}`);
        io.exitCode = 2;
        return;
      }
      // resolve('') is the working directory: an empty name (an unset variable) must not mean it.
      if (dir.trim() === '') {
        io.err(`minivisor new-stub: ${quoteForError(dir)} is an empty folder name`);
        io.exitCode = 2;
        return;
      }
      const stage = options.stage as StubTemplate;
      try {
        const target = resolve(dir);
        const files = writeStubTemplate(target, stage);
        io.out(`wrote ${files.join(', ')} to ${target}`);
        io.out(`next: cd ${dir} && make && npx minivisor boot ${STUB_TEMPLATES[stage].bootFlag} build/${stage}.elf --verify`);
      } catch (err) {
        if (!(err instanceof NewStubError)) throw err;
        io.err(`minivisor new-stub: ${err.message}`);
        io.exitCode = 1;
      }
    });
}
