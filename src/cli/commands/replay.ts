// `minivisor replay FINDING`: runs a finding's attack program again on its exact configuration and
// says whether it reproduces, bit for bit (the same trace hash). Exit status 1 while the finding
// reproduces (like the fuzzer), 0 once it no longer does (the stub was fixed), 2 for bad input.
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { isStubVariant, STUB_VARIANTS } from '../../boot/images.js';
import { createExecutor } from '../../fuzz/create-executor.js';
import { FindingFileError, loadFinding } from '../../fuzz/finding-file.js';
import { traceLine } from '../../shared/trace.js';
import type { CliIo } from '../io.js';

export function replayCommand(io: CliIo): Command {
  return new Command('replay')
    .description('replay a fuzz finding: same configuration, same attack program, same trace hash')
    .argument('<finding>', 'a finding.json, or its findings/<id>/ directory')
    .option('--trace <file>', 'write the replay\'s trace as JSON lines')
    .option('--json', 'print one JSON object')
    .option('--variant <name|honest>', 'run it against other stubs: a planted-bug variant, or "honest" (after fixing a bug)')
    .action((path: string, opts: { trace?: string; json?: boolean; variant?: string }) => {
      let loaded;
      try {
        loaded = loadFinding(path);
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
          io.err(`minivisor replay: --variant must be "honest" or one of ${Object.keys(STUB_VARIANTS).join(', ')}, not "${opts.variant}"`);
          io.exitCode = 2;
          return;
        }
      }
      const executor = createExecutor(target);
      let execution;
      try {
        execution = executor.execute(finding.program, { keepTrace: true });
      } finally {
        executor.close();
      }
      if (opts.trace !== undefined) {
        const lines = (execution.events ?? []).map(traceLine);
        writeFileSync(opts.trace, lines.length ? `${lines.join('\n')}\n` : '');
      }
      const same = execution.judgement.findings.find((f) => f.category === finding.category);
      const identical = execution.traceSha256 === finding.traceSha256;
      const result = {
        id: finding.id, category: finding.category, reproduced: same !== undefined, identicalTrace: identical,
        traceSha256: execution.traceSha256, expectedTraceSha256: finding.traceSha256, verdict: execution.judgement.verdict,
        outcome: execution.judgement.outcome, findings: execution.judgement.findings.map((f) => ({ category: f.category, detail: f.detail })),
      };
      if (opts.json) {
        io.out(JSON.stringify(result));
      } else if (same) {
        io.out(`minivisor replay: ${finding.id} reproduces: ${same.detail}`);
        io.out(`  trace ${execution.traceSha256} (${identical ? 'identical to the finding\'s' : `the finding recorded ${finding.traceSha256}`})`);
      } else {
        io.out(`minivisor replay: ${finding.id} does not reproduce: the run is now ${execution.judgement.verdict} (${execution.judgement.outcome.outcome}: ${execution.judgement.outcome.reason})`);
      }
      io.exitCode = same ? 1 : 0;
    });
}
