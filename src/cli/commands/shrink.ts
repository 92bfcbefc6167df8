// `minivisor shrink FINDING`: shrinks a finding's attack program further (a larger budget than
// the campaign's) and prints the result; --out writes it as a new finding.json. The input file is
// never changed: --out is opened (and refused when it is the input) before any execution, written
// whole or not at all, and a device such as /dev/null is written, never replaced.
import { Command } from 'commander';
import { attackProgramToJson } from '../../fuzz/attack-program.js';
import { createExecutor } from '../../fuzz/create-executor.js';
import { bootConfigFor } from '../../fuzz/executor.js';
import { bootInputFiles } from '../../boot/images.js';
import { findingToJson, FindingFileError } from '../../fuzz/finding-file.js';
import { replayCommand as replayLine } from '../../fuzz/output-dir.js';
import { OutputFile, OutputFileError } from '../../shared/output-file.js';
import { shrinkProgram } from '../../fuzz/shrink.js';
import { FuzzOptionError, loadRunnableFinding } from '../fuzz-options.js';
import type { CliIo } from '../io.js';
import { quoteForError } from '../../shared/quote.js';

export function shrinkCommand(io: CliIo): Command {
  return new Command('shrink')
    .description('shrink a fuzz finding to the fewest decisions that still reproduce its category')
    .argument('<finding>', 'a finding.json, or its findings/<id>/ directory')
    .option('--budget <n>', 'executions to spend at most', '1000')
    .option('--out <file>', 'write the shrunk finding as a new finding.json')
    .action(async (path: string, opts: { budget: string; out?: string }) => {
      let loaded;
      let out: OutputFile | undefined;
      try {
        if (!/^\d+$/.test(opts.budget) || Number(opts.budget) < 1) throw new FuzzOptionError(`--budget ${quoteForError(opts.budget)} is not a positive integer`);
        loaded = loadRunnableFinding(path);
        // The finding and the images its executions boot are inputs: never overwritten.
        if (opts.out !== undefined) out = new OutputFile(opts.out, 'shrunk finding', [loaded.file, ...bootInputFiles(bootConfigFor(loaded.finding.target))]);
      } catch (err) {
        if (!(err instanceof FindingFileError) && !(err instanceof FuzzOptionError) && !(err instanceof OutputFileError)) throw err;
        io.err(`minivisor shrink: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      const { finding } = loaded;
      const executor = createExecutor(finding.target);
      try {
        const reproduces = async (p: typeof finding.program) => {
          await new Promise((resolve) => setImmediate(resolve));
          return executor.execute(p).judgement.findings.some((f) => f.category === finding.category);
        };
        if (!(await reproduces(finding.program))) {
          out?.abandon();
          io.err(`minivisor shrink: ${finding.id} does not reproduce any more; nothing to shrink`);
          io.exitCode = 1;
          return;
        }
        const shrunk = await shrinkProgram(finding.program, reproduces, Number(opts.budget));
        io.out(attackProgramToJson(shrunk.program).trimEnd());
        io.err(`minivisor shrink: ${finding.program.decisions.length} -> ${shrunk.program.decisions.length} decisions in ${shrunk.executions} executions`);
        if (out !== undefined) {
          const e = executor.execute(shrunk.program);
          try {
            out.write(findingToJson({ ...finding, program: shrunk.program, traceSha256: e.traceSha256, outcome: e.judgement.outcome }, replayLine(out.path)));
            out.commit();
          } catch (err) {
            if (!(err instanceof OutputFileError)) throw err;
            io.err(`minivisor shrink: ${err.message}${out.isOpen ? ` (${out.abandon()})` : ''}`);
            io.exitCode = 1;
          }
        }
      } finally {
        if (out?.isOpen) out.abandon();
        executor.close();
      }
    });
}
