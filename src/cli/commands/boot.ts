import { Command } from 'commander';
import { BootOptionError, parseBootOptions, type RawBootOptions } from '../boot-options.js';
import type { BootConfig } from '../../boot/boot-config.js';
import type { BootTrace } from '../../boot/accounting.js';
import { formatSize } from '../size.js';
import { groupThousands } from '../../shared/thousands.js';
import { DEFAULT_QUANTUM } from '../../cpu/vcpu-scheduler.js';
import type { CliIo } from '../io.js';
import { bootGuest, bootSucceeded, type BootResult, type BootRun } from '../../boot/boot-guest.js';
import { formatLinuxBootReport, type LinuxBootReport } from '../../boot/linux/linux-report.js';
import { formatFailure } from '../../boot/failure.js';
import { bootInputFiles, GuestImageError } from '../../boot/images.js';
import { OutputFile, OutputFileError, sameFile } from '../../shared/output-file.js';
import { acceptanceMapSvg, buildAcceptanceMap } from '../../view/acceptance-map.js';
import { acceptanceMapHtml } from '../../view/acceptance-map-html.js';
import { describeMismatch, verifyBoot, verifyReportJson, type VerifyReport } from '../../boot/verify.js';
import { verifyCrashDump, type CrashDumpReport } from '../../boot/crash-dump.js';
import { EXIT_READER_GONE, openTraceOutput, parseTraceFilter, TraceFilterError, traceFilterHelp, traceGoesToStdout, TraceReaderGone, type TraceFilter, type TraceOutput } from '../trace-output.js';
import { CONSOLE_LEGEND, readableConsoleLine } from '../readable-console.js';
import { BootProgress } from '../boot-progress.js';
import { quoteForError } from '../../shared/quote.js';
import { removeTempsOnStopSignals } from '../stop-signals.js';
import { withYoungGenerationKeptSmall } from '../v8-tuning.js';


function summary(r: BootResult): string[] {
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(b % 2 ** 20 ? 1 : 0)} MiB`;
  // Exit kinds are unique lower-case ASCII, so code-point order is their order; localeCompare
  // would set up ICU's collator, ~7 ms of CPU at the end of every boot (issue 11).
  const exits = Object.entries(r.exits).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    '',
    `minivisor: ${r.platform.toUpperCase()} guest, ${formatSize(BigInt(r.memoryBytes))}, seed ${r.seed}: ${r.outcome} (${r.outcomeReason})`,
    `  accepted memory: ${mib(r.acceptedBytes.distinct)} (distinct bytes); completed accept calls covered ${mib(r.acceptedBytes.total)}, re-accepts after a conversion included: ` +
      `firmware ${mib(r.acceptedBytes.firmware)}, decompressor ${mib(r.acceptedBytes.decompressor)}, kernel ${mib(r.acceptedBytes.kernel)}`,
    `  accept calls: ${r.acceptCalls['2M']} × 2M, ${r.acceptCalls['4K']} × 4K issued; ${r.acceptCallsCompleted['2M']} × 2M, ${r.acceptCallsCompleted['4K']} × 4K completed ` +
      '(the others exited to the VMM and ran again, or failed; the guest\'s accept_calls_* count completed ones)',
    `  exits: ${exits}`,
    `  ${groupThousands(r.guestInstructions)} guest instructions in ${r.wallMs} ms; launch measurement ${r.measurement.slice(0, 16)}…; trace ${r.traceSha256.slice(0, 16)}… (${r.traceEvents} events)`,
    ...(r.failure ? formatFailure(r.failure).map((line) => `  ${line}`) : []),
  ];
}

function crashDumpLines(d: CrashDumpReport): string[] {
  if (d.ok) return [`  crash dump: checked against the hardware, ${d.ranges.length} accepted range(s), ${formatSize(d.dumpedBytes)}; unaccepted memory skipped untouched`];
  return [`  crash dump: FAILED: ${d.problems.length} problem(s)`, ...d.problems.map((p) => `    ${p}`)];
}

function crashDumpJson(d: CrashDumpReport): { ok: boolean; ranges: number; dumpedBytes: number; problems: string[] } {
  return { ok: d.ok, ranges: d.ranges.length, dumpedBytes: Number(d.dumpedBytes), problems: d.problems };
}

function verifyLines(v: VerifyReport): string[] {
  if (v.noRecord) return [`  verify: FAILED: ${v.noRecord}`];
  if (v.ok) return [`  verify: clean (the guest's record matches the hardware over ${formatSize(v.checkedBytes)})`];
  return [`  verify: FAILED: ${v.mismatches.length} mismatch(es) between the guest's record and the hardware`, ...v.mismatches.map((m) => `    ${describeMismatch(m)}`)];
}

/**
 * Accepted bytes from which a boot keeps V8's young generation at its size (v8-tuning.ts):
 * what survives its scavenges grows with the memory it accepts (the model's page tables), and a
 * default boot (~80 MiB) stays far below.
 */
const LONG_BOOT_ACCEPTED_BYTES = 1n << 30n;

type MapFormat = 'svg' | 'html';

/** `--map`'s format from the file's extension; anything else is a usage error before the boot. */
function mapFormat(path: string): MapFormat {
  if (/\.svg$/i.test(path)) return 'svg';
  if (/\.html?$/i.test(path)) return 'html';
  throw new BootOptionError(`--map ${JSON.stringify(path)}: the file name must end in .svg (a static map) or .html (a page with a time slider)`);
}

/** `--map`: the acceptance map of the finished run, from its trace and the hardware's page states, into `file` (opened before the boot). */
function writeMap(file: OutputFile, run: BootRun): void {
  const path = file.path;
  const r = run.result;
  const stats = r.guestStats;
  const bitmap = stats.bitmap_gpa !== undefined && stats.bitmap_bytes !== undefined
    ? { start: BigInt(stats.bitmap_gpa), end: BigInt(stats.bitmap_gpa) + BigInt(stats.bitmap_bytes) }
    : undefined;
  const map = buildAcceptanceMap(run.trace.events, BigInt(r.memoryBytes), (gpa) => run.platform.pageState(gpa), bitmap);
  const title = `minivisor boot: ${r.platform.toUpperCase()} guest, ${formatSize(BigInt(r.memoryBytes))}, seed ${r.seed}: ${r.outcome}`;
  try {
    file.write(mapFormat(path) === 'svg' ? acceptanceMapSvg(map, title) : acceptanceMapHtml(map, run.trace.events, title));
  } catch (err) {
    if (err instanceof Error) err.message = `${err.message} (${file.abandon()})`;
    throw err;
  }
  file.commit();
}

export function bootCommand(io: CliIo): Command {
  return new Command('boot')
    .description('boot an emulated TDX or SNP guest: firmware -> decompressor -> kernel, accepting memory as it goes')
    .option('--platform <name>', 'tdx or snp', 'tdx')
    .option('--memory <size>', 'guest memory (e.g. 512M, 4095M, 64G, 1T)', '4G')
    .option('--pre-accept <size|all>', 'memory the firmware accepts before handing over (default 64M; 16M with --linux)')
    .option('--accept <mode>', 'lazy or eager acceptance in the kernel', 'lazy')
    .option('--unit <size>', 'acceptance bitmap unit, 4K or 2M', '2M')
    .option('--workload <size>', 'memory the kernel workload allocates and verifies', '64M')
    .option('--seed <n>', 'seed for everything pseudo-random in the run', '1')
    .option('--max-instructions <n>', 'stop the guest after this many instructions')
    .option('--trace <file>', 'write the structured trace: FILE.jsonl JSON lines (docs/trace-schema.md), FILE.json the Chrome/Perfetto format, - JSON lines on stdout')
    .option('--trace-filter <types>', 'keep only these event types or sources in the trace, comma-separated; `help` lists them')
    .option('--raw-console', 'print the guest console as written, @mv protocol lines included')
    .option('--json', 'print one JSON object instead of the console and a summary')
    .option('--firmware <file>', 'boot your own firmware ELF: segments in 0x301000-0x340000 or the 16 MiB below 4 GiB, entry at the reset vector 0xFFFFFFF0')
    .option('--decompressor <file>', 'boot your own decompressor ELF (our kernel payload is appended after it)')
    .option('--kernel <file>', 'boot your own kernel ELF, linked at 0x1000000, behind our firmware and decompressor')
    .option('--verify', "compare the guest's record of accepted memory with the hardware's page states; fail on any mismatch")
    .option('--variant <name>', 'boot a planted-bug variant of the stubs (guest/DEFENCES.md)')
    .option('--vcpus <n>', 'vCPUs (TDX): the APs park in the firmware and the kernel accepts from all of them at once', '1')
    .option('--schedule <policy>', 'with several vCPUs: round-robin, random or pct turns, seeded by --seed', 'random')
    .option('--quantum <n>', 'with several vCPUs: the most instructions a vCPU runs before another may', String(DEFAULT_QUANTUM))
    .option('--handover <kind>', 'the kernel hands over to a second kernel: kexec after its workload, or crash (a panic mid-workload into a crash kernel that dumps accepted memory, checked against the hardware) (guest/kernel/handover.h)')
    .option('--tracking <design>', "the guest's record of accepted memory: bitmap (Roedel's validation bitmap) or memmap (Kleen's: the memory map plus private kernel state) (default: bitmap)")
    .option('--map <file>', 'draw a map of guest memory, who accepted what and what stays unaccepted: FILE.svg static, FILE.html with a time slider')
    .option('--linux <bzImage>', 'boot a real Linux kernel (e.g. `npm run fetch:linux`) through the 64-bit boot protocol (TDX, or SEV-SNP with a CC blob)')
    .option('--fast', 'fast mode: count no instructions and impose no instruction budget (a wall-clock hang guard only)')
    .option('--cmdline <text>', 'the kernel command line with --linux (default: serial console, nokaslr, no5lvl)')
    .action((raw: RawBootOptions & { map?: string; traceFilter?: string; rawConsole?: boolean }) => {
      if (raw.traceFilter?.trim() === 'help') {
        for (const line of traceFilterHelp()) io.out(line);
        return;
      }
      removeTempsOnStopSignals();
      let config: BootConfig;
      let result: BootResult;
      let verified: VerifyReport | undefined;
      let crashDump: CrashDumpReport | undefined;
      let traceWriter: TraceOutput | undefined;
      let mapFile: OutputFile | undefined;
      // With `--trace -` (or /dev/stdout) stdout is the trace's: the console and the summary go to stderr.
      const traceOnStdout = raw.trace !== undefined && traceGoesToStdout(raw.trace);
      const say = traceOnStdout ? (line: string) => io.err(line) : (line: string) => io.out(line);
      let linuxReport: LinuxBootReport | undefined;
      try {
        config = parseBootOptions(raw);
        if (raw.map !== undefined) mapFormat(raw.map);
        if (traceOnStdout && raw.json) throw new BootOptionError(`--trace ${raw.trace === '-' ? '-' : quoteForError(raw.trace!)} and --json both want stdout: write the trace to a file`);
        if (raw.traceFilter !== undefined && raw.trace === undefined) throw new BootOptionError('--trace-filter needs --trace');
        // Two outputs in one file: the one written last would silently replace the other.
        if (raw.map !== undefined && raw.trace !== undefined && !traceOnStdout && sameFile(raw.map, raw.trace)) {
          throw new BootOptionError(`--map and --trace both name ${quoteForError(raw.map)}: give each its own file`);
        }
        const filter: TraceFilter | undefined = raw.traceFilter !== undefined ? parseTraceFilter(raw.traceFilter) : undefined;
        // Opened before the guest runs, like the trace (and before it: a trace that cannot be
        // opened abandons the map below, while nothing would abandon an opened trace).
        if (raw.map !== undefined) mapFile = new OutputFile(raw.map, 'map', bootInputFiles(config));
        if (config.traceFile !== undefined) {
          traceWriter = openTraceOutput(config.traceFile, bootInputFiles(config), filter);
          delete config.traceFile;
        }
        // A progress line on stderr when it is a terminal and the boot takes more than a second.
        const progress = new BootProgress(io, { memoryBytes: config.memoryBytes, accept: config.accept });
        let legendShown = false;
        const consoleLine = (line: string) => {
          progress.clear();
          if (raw.rawConsole) {
            say(line);
            return;
          }
          if (!legendShown) say(CONSOLE_LEGEND);
          legendShown = true;
          say(readableConsoleLine(line));
        };
        const run = withYoungGenerationKeptSmall((keepSmall) => bootGuest(config, {
          ...(raw.json ? {} : { consoleLine }), keepTrace: raw.map !== undefined, ...(traceWriter ? { traceWriter } : {}),
          onAccepted: (trace: BootTrace) => {
            if (trace.totals.acceptedBytes.total >= LONG_BOOT_ACCEPTED_BYTES) keepSmall();
            progress.update(() => ({ stage: trace.stage, acceptedBytes: trace.totals.acceptedBytes.total }));
          },
        }));
        progress.clear();
        result = run.result;
        linuxReport = run.linux;
        try {
          if (mapFile) writeMap(mapFile, run);
          if (raw.verify) verified = verifyBoot(run);
          if (config.handover === 'crash' && result.outcome === 'done') crashDump = verifyCrashDump(run);
        } finally {
          run.platform.machine.close();
        }
      } catch (err) {
        // A boot that stopped before the map was written leaves no map file behind.
        if (mapFile?.isOpen) mapFile.abandon();
        if (err instanceof TraceReaderGone || traceWriter?.readerGone) {
          io.exitCode = EXIT_READER_GONE;
          return;
        }
        // Bad flags and output files that cannot be written are usage errors (2), as in replay and
        // trace export; a missing or malformed image is a failed boot (1).
        if (err instanceof BootOptionError || err instanceof TraceFilterError || err instanceof GuestImageError || err instanceof OutputFileError) {
          io.err(`minivisor boot: ${err.message}`);
          io.exitCode = err instanceof GuestImageError ? 1 : 2;
          return;
        }
        throw err;
      }
      if (traceWriter?.readerGone) {
        // The reader of the trace went away (`--trace - | head`): the run was cut short; end quietly.
        io.exitCode = EXIT_READER_GONE;
        return;
      }
      if (raw.json) {
        io.out(JSON.stringify({ ...result, ...(verified ? { verify: verifyReportJson(verified) } : {}), ...(crashDump ? { crashDump: crashDumpJson(crashDump) } : {}) }));
      } else {
        for (const line of [...summary(result), ...(linuxReport ? formatLinuxBootReport(linuxReport) : []), ...(verified ? verifyLines(verified) : []), ...(crashDump ? crashDumpLines(crashDump) : [])]) say(line);
      }
      io.exitCode = bootSucceeded(config, result.outcome) && (verified?.ok ?? true) && (crashDump?.ok ?? true) ? 0 : 1;
    });
}
