// `minivisor`: composes the commands; each lives in src/cli/commands/. Returns the exit status
// instead of calling process.exit, so tests can run it in-process.
import { Command, CommanderError } from 'commander';
import { bootCommand } from './commands/boot.js';
import { fuzzCommand } from './commands/fuzz.js';
import { infoCommand } from './commands/info.js';
import { replayCommand } from './commands/replay.js';
import { shrinkCommand } from './commands/shrink.js';
import { traceCommand } from './commands/trace.js';
import { testCommand } from './commands/test.js';
import { newStubCommand } from './commands/new-stub.js';
import { addHelpTexts } from './help.js';
import { processIo, type CliIo } from './io.js';
import { minivisorVersion } from '../shared/version.js';

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const program = new Command('minivisor')
    .description('boot, attack and regression-test TDX and SEV-SNP memory acceptance on an emulated CPU')
    .version(minivisorVersion(), '-V, --version', 'print the minivisor version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError('(run `minivisor --help` for usage)')
    .enablePositionalOptions();
  program.addCommand(bootCommand(io)).addCommand(fuzzCommand(io)).addCommand(replayCommand(io)).addCommand(shrinkCommand(io)).addCommand(infoCommand(io)).addCommand(traceCommand(io)).addCommand(testCommand(io)).addCommand(newStubCommand(io));
  const configure = (cmd: Command): void => {
    cmd.exitOverride().configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
    cmd.commands.forEach(configure);
  };
  program.commands.forEach(configure);
  addHelpTexts(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return io.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exit code 0; usage errors with 1 (already printed).
      return err.exitCode === 0 ? 0 : 2;
    }
    io.err(`minivisor: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
