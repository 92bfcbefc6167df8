// `minivisor shrink FINDING`: shrinks a finding's attack program further (a larger budget than
// the campaign's) and prints the result; --out writes it as a new finding.json. The input file is
// never changed: --out is opened (and refused when it is the input) before any execution, written
// whole or not at all, and a device such as /dev/null is written, never replaced. Ctrl-C (SIGINT),
// SIGTERM or SIGHUP stops it at the next execution with the smallest program found so far, printed
// and written as a finished shrink's is; the process then ends by that signal (130/143/129), as
// `fuzz` does.
import { Command } from 'commander';
import { attackProgramToJson } from '../../fuzz/attack-program.js';
import { createExecutor } from '../../fuzz/create-executor.js';
import { bootConfigFor } from '../../fuzz/executor.js';
import { bootInputFiles, GuestImageError } from '../../boot/images.js';
import { findingToJson, FindingFileError } from '../../fuzz/finding-file.js';
import { replayCommand as replayLine } from '../../fuzz/output-dir.js';
import { OutputFile, OutputFileError } from '../../shared/output-file.js';
import { shrinkProgram } from '../../fuzz/shrink.js';
import { FuzzOptionError, loadRunnableFinding, positiveInt } from '../fuzz-options.js';
import type { CliIo } from '../io.js';
import { StatusLine } from '../status-line.js';
import { quoteForError } from '../../shared/quote.js';
import { catchStopSignals, removeTempsOnStopSignals, STOP_SIGNALS } from '../stop-signals.js';
import { counted } from '../../shared/counted.js';

export function shrinkCommand(io: CliIo): Command {
  return new Command('shrink')
    .description('shrink a fuzz finding to the fewest decisions that still reproduce its category')
    .argument('<finding>', 'a finding.json, or its findings/<id>/ directory')
    .option('--budget <n>', 'executions to spend at most', '1000')
    .option('--out <file>', 'write the shrunk finding as a new finding.json')
    .action(async (path: string, opts: { budget: string; out?: string }) => {
      let loaded;
      let out: OutputFile | undefined;
      let executor;
      // Until catchStopSignals below: setting up the executor runs synchronously, with --out open.
      removeTempsOnStopSignals();
      try {
        // Bounded as --runs is: 99999999999999999999 was taken, as the double 1e20.
        positiveInt(opts.budget, '--budget', 1_000_000_000);
        loaded = loadRunnableFinding(path);
        // The finding and the images its executions boot are inputs: never overwritten.
        if (opts.out !== undefined) out = new OutputFile(opts.out, 'shrunk finding', [loaded.file, ...bootInputFiles(bootConfigFor(loaded.finding.target))]);
        // GuestImageError: an image the finding names that is gone, or no longer one minivisor can boot.
        executor = createExecutor(loaded.finding.target);
      } catch (err) {
        if (!(err instanceof FindingFileError) && !(err instanceof FuzzOptionError) && !(err instanceof OutputFileError) && !(err instanceof GuestImageError)) throw err;
        out?.abandon();
        io.err(`minivisor shrink: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      const { finding } = loaded;
      const controller = new AbortController();
      const status = new StatusLine(io);
      const stopSignals = catchStopSignals(controller, (name) => {
        status.end();
        io.err(`minivisor shrink: ${name}: stopping after the current execution, keeping the smallest program found so far (again to quit at once)`);
      });
      try {
        let executions = 0;
        const original = finding.program.decisions.length;
        let smallest = original;
        const reproduces = async (p: typeof finding.program) => {
          // Signal handlers run here, between executions.
          await new Promise((resolve) => setImmediate(resolve));
          // Stopped: no more executions; the shrinker keeps what it has reduced, as a campaign's shrink does.
          if (controller.signal.aborted) return false;
          executions++;
          const reproduced = executor.execute(p).judgement.findings.some((f) => f.category === finding.category);
          // The shrinker keeps every candidate that reproduces: each is the smallest so far. Shown
          // as it changes, as libFuzzer's crash minimisation reports each smaller input.
          if (reproduced && executions > 1 && p.decisions.length < smallest) {
            smallest = p.decisions.length;
            status.update(() => `shrink: ${counted(smallest, 'decision')} (from ${original}) after ${counted(executions - 1, 'execution')}`, true);
          }
          return reproduced;
        };
        if (!(await reproduces(finding.program))) {
          out?.abandon();
          const interrupted = stopSignals.signal();
          if (interrupted !== undefined) {
            io.err(`minivisor shrink: interrupted (${interrupted}) before the first execution; nothing written`);
            io.exitCode = STOP_SIGNALS[interrupted];
            return;
          }
          io.err(`minivisor shrink: ${finding.id} does not reproduce any more; nothing to shrink`);
          io.exitCode = 1;
          return;
        }
        const budget = Number(opts.budget);
        const shrunk = await shrinkProgram(finding.program, reproduces, budget);
        const interrupted = stopSignals.signal();
        status.end();
        io.out(attackProgramToJson(shrunk.program).trimEnd());
        const decisions = `${original} -> ${counted(shrunk.program.decisions.length, 'decision')}`;
        io.err(interrupted === undefined
          ? `minivisor shrink: ${decisions} in ${counted(shrunk.executions, 'execution')}`
          : `minivisor shrink: interrupted (${interrupted}) after ${executions - 1} of at most ${counted(budget, 'execution')}: ${decisions} so far`);
        if (out !== undefined) {
          // Once more for the trace hash and outcome the finding records (interrupted or not).
          const e = executor.execute(shrunk.program);
          try {
            out.write(findingToJson({ ...finding, program: shrunk.program, traceSha256: e.traceSha256, outcome: e.judgement.outcome }, replayLine(out.path)));
            out.commit();
          } catch (err) {
            if (!(err instanceof OutputFileError)) throw err;
            io.err(`minivisor shrink: ${err.message}${out.isOpen ? ` (${out.abandon()})` : ''}`);
            io.exitCode = 1;
            return;
          }
        }
        // Interrupted: 128 + the signal's number; bin/minivisor.js then ends the process by that signal, as `fuzz` does.
        if (interrupted !== undefined) io.exitCode = STOP_SIGNALS[interrupted];
      } finally {
        stopSignals.stop();
        if (out?.isOpen) out.abandon();
        executor.close();
      }
    });
}
