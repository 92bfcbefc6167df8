// What `--help` adds to commander's own text on every command: the default of every flag (commander
// prints one only for flags with a default value), the outcomes with their exit statuses, and two
// examples. One table for all commands, so the commands' files stay about what they do.
import type { Command } from 'commander';

interface CommandHelp {
  /** Exit status and what it means, in the order a user meets them. */
  exitStatus: ReadonlyArray<readonly [number, string]>;
  /** Two (or more) command lines with what they do. */
  examples: ReadonlyArray<readonly [string, string]>;
  /** What happens without a flag that has no default value (keyed by the long flag). */
  unset?: Readonly<Record<string, string>>;
}

const USAGE_ERROR: readonly [number, string] = [2, 'bad flags or arguments (one line on stderr says which)'];
/** A stage's image in a replay: the finding's own file (as it is now: rebuilt, it runs the new build), or ours. */
const RUN_BY_FINDING = "the finding's file as it is now, or ours";

/** Keyed by the command's path below `minivisor` ('' is the program itself). */
const HELP: Readonly<Record<string, CommandHelp>> = {
  '': {
    exitStatus: [[0, 'success (a boot that ends done, a fuzz run without findings)'], [1, 'the run failed or found something'], USAGE_ERROR],
    examples: [['minivisor boot --platform snp --memory 64G', 'boot an SEV-SNP guest'], ['minivisor fuzz --runs 200', 'fuzz a hostile VMM for 200 executions']],
  },
  boot: {
    exitStatus: [
      [0, 'done: the guest reported a clean finish ("@mv done"); with --linux, handover: the decompressor entered the kernel it decompressed'],
      [1, 'guest-fatal, terminated, vmm-error, fault or budget (the summary says why: the first fault, the stage, the registers); or an unreadable image'],
      [2, 'bad flags or arguments, or a --trace or --map file that cannot be written (refused before the guest runs); one line on stderr says which'],
      [130, 'stopped by Ctrl-C (143: SIGTERM; 129: SIGHUP, its terminal closed) at once: it ends by that signal; --trace and --map stay as they were (their temporary files are removed)'],
      [141, 'the reader of `--trace -` (or /dev/stdout) closed the pipe: the run was cut short, quietly (as SIGPIPE would)'],
    ],
    examples: [
      ['minivisor boot --platform snp --memory 4097M', 'SEV-SNP, a size that is not a multiple of 2M'],
      ['minivisor boot --accept eager --json --trace run.jsonl', 'one JSON object, the trace as JSON lines'],
      ['minivisor boot --trace run.json --map map.html', 'a Perfetto trace and a map with a time slider'],
      ['minivisor boot --linux .linux/vmlinuz-* --memory 512M --fast', 'a real Linux decompressor to its hand-over (npm run fetch:linux first)'],
    ],
    unset: {
      '--max-instructions': '2000000000', '--trace': 'no trace file', '--firmware': 'the built firmware/build/firmware.elf',
      '--decompressor': 'ours (guest/build/guest-image.elf)', '--kernel': 'ours (linked into the guest image)',
      '--variant': 'the stubs as built, no planted bug', '--map': 'no map', '--trace-filter': 'every event',
      '--handover': 'none: the kernel halts after its workload',
      '--pre-accept': '64M; 16M with --linux', '--linux': 'the stub guest image, no Linux kernel',
      '--cmdline': 'console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr no5lvl',
    },
  },
  fuzz: {
    exitStatus: [
      [0, 'no findings'], [1, 'at least one finding (each printed with its replay command); or an unreadable image'], USAGE_ERROR,
      [130, 'stopped by Ctrl-C (143: SIGTERM; 129: SIGHUP, its terminal closed) before the next execution, with corpus, findings and stats.json saved; it ends by that signal (a second one quits at once, saving nothing more)'],
    ],
    examples: [
      ['minivisor fuzz --runs 500 --seed 7', 'a deterministic campaign: same seed, same findings'],
      ['minivisor fuzz --platform snp --time 5m --jobs 2 --out snp-out', 'five minutes on two cores'],
    ],
    unset: {
      '--stage': 'kernel, or the first stage --firmware or --decompressor replaces',
      '--time': '60s, unless --runs', '--runs': 'run for --time', '--shard': 'the whole campaign',
      '--unit': '2M', '--accept': 'lazy', '--pre-accept': '64M', '--variant': 'the honest stubs',
      '--firmware': 'ours', '--decompressor': 'ours', '--kernel': 'ours',
    },
  },
  'fuzz merge': {
    exitStatus: [[0, 'merged'], [2, 'a directory cannot be read or written'],
      [130, 'stopped by Ctrl-C (143: SIGTERM; 129: SIGHUP, its terminal closed) at once: it ends by that signal; each file merged so far is whole, the one being written is removed (merge again to finish)']],
    examples: [
      ['minivisor fuzz merge out-1 out-2', 'merge out-2 into out-1'],
      ['minivisor fuzz merge a b --out all', 'merge both into a new directory'],
    ],
  },
  replay: {
    exitStatus: [
      [0, 'the finding no longer reproduces (the stub was fixed)'], [1, 'the finding reproduces'],
      [2, 'the finding file or an image it runs cannot be read, or --trace cannot be written'],
      [130, 'stopped by Ctrl-C (143: SIGTERM; 129: SIGHUP, its terminal closed) at once: it ends by that signal; --trace stays as it was (its temporary file is removed)'],
      [141, 'the reader of `--trace -` closed the pipe (quietly, as SIGPIPE would)'],
    ],
    examples: [
      ['minivisor replay fuzz-out/findings/<id>', 'replay one finding'],
      ['minivisor replay finding.json --json --trace replay.jsonl', 'as JSON, with the trace'],
    ],
    unset: {
      '--trace': 'no trace file', '--trace-filter': 'every event', '--variant': 'the stubs the finding was made with',
      '--firmware': RUN_BY_FINDING, '--decompressor': RUN_BY_FINDING, '--kernel': RUN_BY_FINDING,
    },
  },
  shrink: {
    exitStatus: [[0, 'shrunk (the program is printed)'], [1, 'the finding no longer reproduces, or --out could not be written (it is left untouched)'], [2, 'the finding file, an image it runs or --budget is bad, or --out is the finding or cannot be written (refused before shrinking)'],
      [130, 'stopped by Ctrl-C (143: SIGTERM; 129: SIGHUP, its terminal closed) before the next execution, the smallest program so far printed and written to --out; it ends by that signal (a second one quits at once, writing nothing)']],
    examples: [
      ['minivisor shrink fuzz-out/findings/<id>', 'print the shrunk attack program'],
      ['minivisor shrink finding.json --budget 5000 --out small.json', 'a larger budget, written as a new finding'],
    ],
    unset: { '--out': 'print only' },
  },
  trace: {
    exitStatus: [[0, 'done (trace diff: identical)'], [1, 'trace diff: the traces differ'], USAGE_ERROR],
    examples: [
      ['minivisor trace export --perfetto run.jsonl run.json', 'for ui.perfetto.dev'],
      ['minivisor trace diff a.jsonl b.jsonl', 'where two traces part, in words'],
    ],
  },
  'trace export': {
    exitStatus: [[0, 'written'], [1, 'writing the output failed on the way (an old file there is left untouched)'], [2, 'the input is missing or not a minivisor JSON-lines trace, or the output cannot be used (the input itself, a directory, no such folder)'],
      [130, 'stopped by Ctrl-C (143: SIGTERM; 129: SIGHUP, its terminal closed) at once: it ends by that signal; the output stays as it was (its temporary file is removed)']],
    examples: [
      ['minivisor trace export --perfetto run.jsonl run.json', 'open run.json at ui.perfetto.dev'],
      ['minivisor trace export --perfetto fuzz-out/replay.jsonl replay.json', 'a replay\'s trace'],
    ],
  },
  'trace diff': {
    exitStatus: [[0, 'the traces are identical'], [1, 'they differ (the first divergence is printed)'], [2, 'a file is not a readable trace, or --context is bad']],
    examples: [['minivisor trace diff a.jsonl b.jsonl', 'where two traces part, in words'], ['minivisor trace diff a.jsonl b.jsonl --context 10', 'with ten events around it']],
  },
  test: {
    exitStatus: [[0, 'every scenario passed'], [1, 'a scenario failed (each failed expectation is printed, expected vs got)'], [2, 'no scenario files, or one cannot be used (it says why), or --junit is a file a scenario reads or cannot be written (refused before any scenario runs)'],
      [130, 'stopped by Ctrl-C (143: SIGTERM; 129: SIGHUP, its terminal closed) at once: it ends by that signal; --junit stays as it was, each golden is the old one or a whole new one (temporary files are removed)']],
    examples: [['minivisor test scenarios/', 'run every *.scenario.yaml|json below scenarios/'], ['minivisor test my.scenario.yaml --update --junit report.xml', 'rewrite its golden, write a JUnit report']],
    unset: { '--junit': 'no report file' },
  },
  'new-stub': {
    exitStatus: [[0, 'the template is written (the next commands are printed)'], [1, 'the folder is not empty, or the template is missing'], USAGE_ERROR],
    examples: [['minivisor new-stub my-kernel', 'a kernel stage: main.c, Makefile, a vitest file; then `make`'], ['minivisor new-stub stubs/accept --stage kernel', 'the same, with the stage named']],
  },
  info: {
    exitStatus: [[0, 'always']],
    examples: [['minivisor info', 'platforms, modelled features, Unicorn version, limits'], ['minivisor info --json', 'the same as one JSON object']],
  },
};

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function helpText(path: string, help: CommandHelp): string {
  const width = Math.max(...help.examples.map(([line]) => line.length));
  return [
    '',
    'Exit status:',
    ...help.exitStatus.map(([code, meaning]) => `  ${code}  ${meaning}`),
    '',
    'Examples:',
    ...help.examples.map(([line, what]) => `  $ ${line.padEnd(width)}  # ${what}`),
  ].join('\n') + (path === '' ? '\n\nRun `minivisor <command> --help` for a command\'s flags.' : '');
}

/** What `--help` says for a flag without a default in a command missing from the table; test/cli/help.test.ts keeps it unused. */
export const UNDESCRIBED_DEFAULT = 'not described';

/**
 * Adds the exit statuses and examples to `cmd` and its subcommands, and says what an unset flag
 * means where commander has no default to print. A command or flag missing from the table still
 * works (help must never break the CLI); the help test names it.
 */
export function addHelpTexts(cmd: Command): void {
  const path = commandPath(cmd);
  const help = HELP[path];
  for (const option of cmd.options) {
    const takesValue = option.required || option.optional;
    if (!takesValue || option.defaultValue !== undefined || /default/i.test(option.description)) continue;
    option.description += ` (default: ${help?.unset?.[option.long ?? ''] ?? UNDESCRIBED_DEFAULT})`;
  }
  // Built when help is shown, not at every start.
  if (help !== undefined) cmd.addHelpText('after', () => helpText(path, help));
  cmd.commands.forEach(addHelpTexts);
}
