// `minivisor`: composes the commands; each lives in src/cli/commands/. Returns the exit status
// instead of calling process.exit, so tests can run it in-process.
import { Command, CommanderError } from 'commander';
import { addHelpTexts } from './help.js';
import { processIo, type CliIo } from './io.js';
import { minivisorVersion } from '../shared/version.js';
import { escapeControls } from '../shared/quote.js';

type CommandFactory = (io: CliIo) => Command;

/**
 * Each command's module, loaded only when needed: a boot does not pay for loading the fuzzer,
 * the scenario runner and the trace viewers (about a third of a default boot's module loading).
 * In the order `--help` lists them.
 */
const COMMANDS: Readonly<Record<string, () => Promise<CommandFactory>>> = {
  boot: async () => (await import('./commands/boot.js')).bootCommand,
  fuzz: async () => (await import('./commands/fuzz.js')).fuzzCommand,
  replay: async () => (await import('./commands/replay.js')).replayCommand,
  shrink: async () => (await import('./commands/shrink.js')).shrinkCommand,
  info: async () => (await import('./commands/info.js')).infoCommand,
  trace: async () => (await import('./commands/trace.js')).traceCommand,
  test: async () => (await import('./commands/test.js')).testCommand,
  'new-stub': async () => (await import('./commands/new-stub.js')).newStubCommand,
};

/**
 * The commands to register: only the one named first, when it is one (commander then dispatches
 * to it exactly as with all of them); every command for anything else (`--help`, `help boot`,
 * an unknown or misspelt command, whose suggestion needs them all).
 */
async function commandsFor(argv: readonly string[], io: CliIo): Promise<Command[]> {
  const first = argv[0];
  const names = first !== undefined && Object.hasOwn(COMMANDS, first) ? [first] : Object.keys(COMMANDS);
  const factories = await Promise.all(names.map((name) => COMMANDS[name]!()));
  return factories.map((make) => make(io));
}

/** "minivisor fuzz merge": the command's name and its parents'. */
function commandPath(cmd: Command): string {
  return cmd.parent ? `${commandPath(cmd.parent)} ${cmd.name()}` : cmd.name();
}

/**
 * commander's usage error ("error: unknown option '--x'", perhaps with "(Did you mean --y?)" on a
 * line of its own) as one line in the form of every other error: the command, what is wrong, and
 * where the usage is.
 */
function usageError(cmd: Command, message: string): string {
  const path = commandPath(cmd);
  const what = message.trim().replace(/^error: /, '').split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
  return `${path}: ${escapeControls(what)} (run \`${path} --help\` for usage)`;
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const program = new Command('minivisor')
    .description('boot, attack and regression-test TDX and SEV-SNP memory acceptance on an emulated CPU')
    .version(minivisorVersion(), '-V, --version', 'print the minivisor version')
    .enablePositionalOptions();
  for (const command of await commandsFor(argv, io)) program.addCommand(command);
  const configure = (cmd: Command): void => {
    cmd.exitOverride().configureOutput({
      writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()),
      outputError: (s) => io.err(usageError(cmd, s)),
    });
    cmd.commands.forEach(configure);
  };
  configure(program);
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
