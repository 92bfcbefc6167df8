// `minivisor trace export --perfetto IN.jsonl OUT.json`: a JSON-lines trace (`boot --trace`) in the
// Chrome trace-event format that ui.perfetto.dev and chrome://tracing open.
// `minivisor trace diff A B`: the first divergence between two traces, in words (exit 0
// identical, 1 different, 2 unreadable input, like diff(1)).
import { Command } from 'commander';
import { InputFileError, readInputText } from '../../shared/input-file.js';
import { OutputFile, OutputFileError } from '../../shared/output-file.js';
import { toChromeTrace } from '../../view/perfetto.js';
import type { CliIo } from '../io.js';
import { escapeControls, quoteForError } from '../../shared/quote.js';
import { diffTraces } from '../../shared/trace-diff.js';
import { readTraceFile, TraceFileError } from '../../shared/trace-file.js';
import { MAX_TRACE_FILE_BYTES } from '../../shared/trace.js';
import { removeTempsOnStopSignals } from '../stop-signals.js';

export function traceCommand(io: CliIo): Command {
  const trace = new Command('trace').description('work with JSON-lines traces written by `boot --trace`');
  trace.addCommand(new Command('export')
    .description('convert a JSON-lines trace for a trace viewer (Perfetto, chrome://tracing)')
    .argument('<in>', 'a JSON-lines trace from `minivisor boot --trace`')
    .argument('<out>', 'the file to write')
    .option('--perfetto', 'write the Chrome/Perfetto trace-event JSON format (required: the only format so far)')
    .action((input: string, output: string, opts: { perfetto?: boolean }) => {
      if (!opts.perfetto) {
        io.err('minivisor trace export: choose the output format: --perfetto');
        io.exitCode = 2;
        return;
      }
      try {
        const { header, events } = readTraceFile(readInputText(input, 'trace', MAX_TRACE_FILE_BYTES), `trace ${quoteForError(input)}`);
        const chrome = toChromeTrace(events, header);
        let file: OutputFile;
        removeTempsOnStopSignals();
        try {
          file = new OutputFile(output, 'Perfetto trace', [input]);
        } catch (err) {
          if (!(err instanceof OutputFileError)) throw err;
          // Refused before writing (the input itself, a directory, no such folder): a usage error, as in boot, replay and shrink.
          io.err(`minivisor trace export: ${err.message}`);
          io.exitCode = 2;
          return;
        }
        try {
          file.write(`${JSON.stringify(chrome)}\n`);
        } catch (err) {
          if (err instanceof Error) err.message = `${err.message} (${file.abandon()})`;
          throw err;
        }
        file.commit();
        io.err(`minivisor trace export: ${events.length} events -> ${output} (open it at https://ui.perfetto.dev)`);
      } catch (err) {
        if (err instanceof InputFileError || err instanceof OutputFileError || err instanceof TraceFileError) {
          io.err(`minivisor trace export: ${err.message}`);
          io.exitCode = err instanceof TraceFileError || err instanceof InputFileError ? 2 : 1;
          return;
        }
        throw err;
      }
    }));
  trace.addCommand(new Command('diff')
    .description('print where two traces first differ, with the events around it')
    .argument('<a>', 'a trace file (minivisor boot --trace)')
    .argument('<b>', 'another trace file')
    .option('--context <n>', 'events shown around the divergence', '3')
    .action((pathA: string, pathB: string, opts: { context: string }) => {
      const context = Number(opts.context);
      if (!Number.isInteger(context) || context < 0 || context > 1000) {
        io.err(`minivisor trace diff: --context must be an integer from 0 to 1000, not ${JSON.stringify(opts.context.slice(0, 64))}`);
        io.exitCode = 2;
        return;
      }
      try {
        const text = (path: string) => readInputText(path, 'trace', MAX_TRACE_FILE_BYTES);
        const diff = diffTraces(text(pathA), text(pathB), [pathA, pathB], context);
        // The events' own strings are in the report: a hand-made or damaged trace must not put
        // escape sequences on the terminal.
        for (const line of diff.lines) io.out(escapeControls(line));
        io.exitCode = diff.identical ? 0 : 1;
      } catch (err) {
        if (err instanceof InputFileError || err instanceof TraceFileError) {
          io.err(`minivisor trace diff: ${err.message}`);
          io.exitCode = 2;
          return;
        }
        throw err;
      }
    }));
  return trace;
}
