// `minivisor replay FINDING`: runs a finding's attack program again on its exact configuration and
// says whether it reproduces, bit for bit (the same trace hash). Exit status 1 while the finding
// reproduces (like the fuzzer), 0 once it no longer does (the stub was fixed), 2 for bad input.
import { Command } from 'commander';
import { bootInputFiles, GuestImageError, isStubVariant, STUB_VARIANTS } from '../../boot/images.js';
import { BootOptionError } from '../boot-options.js';
import { changedStageImages, stageImagesOf, type StageFiles } from '../../fuzz/stage-images.js';
import { createExecutor } from '../../fuzz/create-executor.js';
import { bootConfigFor } from '../../fuzz/executor.js';
import { traceHeader } from '../../boot/trace-header.js';
import { OutputFileError } from '../../shared/output-file.js';
import { EXIT_READER_GONE, openTraceOutput, parseTraceFilter, TraceFilterError, traceGoesToStdout, TraceReaderGone, type TraceOutput } from '../trace-output.js';
import { FindingFileError } from '../../fuzz/finding-file.js';
import { checkRunnableTarget, loadRunnableFinding } from '../fuzz-options.js';
import { traceLine } from '../../shared/trace.js';
import type { CliIo } from '../io.js';
import { quoteForError } from '../../shared/quote.js';
import { removeTempsOnStopSignals } from '../stop-signals.js';

export function replayCommand(io: CliIo): Command {
  return new Command('replay')
    .description('replay a fuzz finding: same configuration, same attack program, same trace hash')
    .argument('<finding>', 'a finding.json, or its findings/<id>/ directory')
    .option('--trace <file>', 'write the replay\'s trace, as `boot --trace` does: FILE.jsonl JSON lines, FILE.json Perfetto, - stdout')
    .option('--trace-filter <types>', 'keep only these event types or sources in the trace (`minivisor boot --trace-filter help` lists them)')
    .option('--json', 'print one JSON object')
    .option('--variant <name|honest>', 'run it against other stubs: a planted-bug variant, or "honest" (after fixing a bug)')
    .option('--firmware <file>', 'run it with this firmware ELF instead of the finding\'s (a fixed build of yours)')
    .option('--decompressor <file>', 'run it with this decompressor ELF instead of the finding\'s')
    .option('--kernel <file>', 'run it with this kernel ELF instead of the finding\'s')
    .action((path: string, opts: { trace?: string; traceFilter?: string; json?: boolean; variant?: string } & StageFiles) => {
      let loaded;
      try {
        loaded = loadRunnableFinding(path);
      } catch (err) {
        if (!(err instanceof FindingFileError)) throw err;
        io.err(`minivisor replay: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      const { finding } = loaded;
      const target = { ...finding.target };
      if (opts.variant !== undefined) {
        if (opts.variant === 'honest') {
          delete target.variant;
        } else if (isStubVariant(opts.variant)) {
          target.variant = opts.variant;
        } else {
          io.err(`minivisor replay: --variant must be "honest" or one of ${Object.keys(STUB_VARIANTS).join(', ')}, not ${quoteForError(opts.variant)}`);
          io.exitCode = 2;
          return;
        }
      }
      // A stage given here replaces the finding's (or ours); the finding's own files are run as they are now.
      let changedImages: string[];
      try {
        const given = stageImagesOf({ firmware: opts.firmware, decompressor: opts.decompressor, kernel: opts.kernel });
        // Only the finding's own files still run are compared: one given here was just read.
        changedImages = changedStageImages(target.images, given);
        if (given) target.images = { ...target.images, ...given };
        // Checked as the fuzz flags are: --tracking memmap takes no other decompressor or kernel, say.
        if (given || opts.variant !== undefined) checkRunnableTarget(target);
      } catch (err) {
        if (!(err instanceof GuestImageError || err instanceof BootOptionError)) throw err;
        io.err(`minivisor replay: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      // The trace output is opened before the replay runs, so a bad path costs no execution.
      removeTempsOnStopSignals();
      let trace: TraceOutput | undefined;
      const traceOnStdout = opts.trace !== undefined && traceGoesToStdout(opts.trace);
      try {
        if (traceOnStdout && opts.json) throw new TraceFilterError(`--trace ${opts.trace === '-' ? '-' : quoteForError(opts.trace!)} and --json both want stdout: write the trace to a file`);
        if (opts.traceFilter !== undefined && opts.trace === undefined) throw new TraceFilterError('--trace-filter needs --trace');
        const filter = opts.traceFilter !== undefined ? parseTraceFilter(opts.traceFilter) : undefined;
        // The finding and the images the replay boots are inputs: never overwritten.
        if (opts.trace !== undefined) trace = openTraceOutput(opts.trace, [loaded.file, ...bootInputFiles(bootConfigFor(target))], filter);
      } catch (err) {
        if (!(err instanceof TraceFilterError || err instanceof OutputFileError)) throw err;
        io.err(`minivisor replay: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      // With `--trace -` (or /dev/stdout) stdout is the trace's: the verdict goes to stderr.
      const say = traceOnStdout ? (line: string) => io.err(line) : (line: string) => io.out(line);
      for (const line of changedImages) if (!opts.json) say(`minivisor replay: note: ${line}`);
      let execution;
      try {
        const executor = createExecutor(target);
        try {
          execution = executor.execute(finding.program, { keepTrace: true });
        } finally {
          executor.close();
        }
      } catch (err) {
        // An image the finding names that is gone, or no longer an image minivisor can boot.
        if (!(err instanceof GuestImageError)) throw err;
        trace?.abandon();
        io.err(`minivisor replay: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      if (trace !== undefined) {
        try {
          trace.write(`${JSON.stringify(traceHeader(bootConfigFor(target)))}\n`);
          for (const event of execution.events ?? []) trace.write(`${traceLine(event)}\n`);
          trace.commit();
        } catch (err) {
          if (err instanceof TraceReaderGone) {
            io.exitCode = EXIT_READER_GONE;
            return;
          }
          if (!(err instanceof OutputFileError)) throw err;
          io.err(`minivisor replay: ${err.message} (${trace.abandon()})`);
          io.exitCode = 2;
          return;
        }
      }
      const same = execution.judgement.findings.find((f) => f.category === finding.category);
      const identical = execution.traceSha256 === finding.traceSha256;
      const result = {
        id: finding.id, category: finding.category, reproduced: same !== undefined, identicalTrace: identical,
        traceSha256: execution.traceSha256, expectedTraceSha256: finding.traceSha256, verdict: execution.judgement.verdict,
        outcome: execution.judgement.outcome, findings: execution.judgement.findings.map((f) => ({ category: f.category, detail: f.detail })),
        ...(changedImages.length > 0 ? { changedImages } : {}),
      };
      if (opts.json) {
        io.out(JSON.stringify(result));
      } else if (same) {
        say(`minivisor replay: ${finding.id} reproduces: ${same.detail}`);
        say(`  trace ${execution.traceSha256} (${identical ? 'identical to the finding\'s' : `the finding recorded ${finding.traceSha256}`})`);
      } else {
        say(`minivisor replay: ${finding.id} does not reproduce: the run is now ${execution.judgement.verdict} (${execution.judgement.outcome.outcome}: ${execution.judgement.outcome.reason})`);
      }
      io.exitCode = same ? 1 : 0;
    });
}
