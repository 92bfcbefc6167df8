// The guest -> host report protocol on the console. Lines starting with "@mv " are protocol:
//   @mv stage firmware|decompressor|kernel
//   @mv stat <name> <decimal>          name: [a-z0-9_]+
//   @mv done
//   @mv fatal <reason text>
// Every other line is ordinary console output. A malformed protocol line is recorded as an
// error, never thrown: the guest is untrusted input too.
import { STAGES } from './layout.js';
import type { Snapshottable } from '../shared/snapshottable.js';
import { U64_LIMIT } from '../shared/u64.js';

export type BootStage = (typeof STAGES)[number];

export type ConsoleEvent =
  | { kind: 'stage'; stage: BootStage }
  | { kind: 'stat'; name: string; value: bigint }
  | { kind: 'done' }
  | { kind: 'fatal'; reason: string };

export type ParsedLine = ConsoleEvent | { kind: 'text'; line: string } | { kind: 'malformed'; line: string; why: string };

export interface BootReport {
  /** Stages in the order they were announced. */
  stages: BootStage[];
  /** Statistics by name; a repeated name keeps the last value. */
  stats: Record<string, bigint>;
  done: boolean;
  /** The first fatal reason, if any. */
  fatal?: string;
  /** Protocol violations: malformed lines, stages out of order, lines after done/fatal. */
  errors: string[];
  /** Non-protocol console lines. */
  text: string[];
}

const PREFIX = '@mv ';
const STAT_NAME = /^[a-z0-9_]+$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

const malformed = (line: string, why: string): ParsedLine => ({ kind: 'malformed', line, why });

/** Parses one console line (without its newline). */
export function parseConsoleLine(rawLine: string): ParsedLine {
  const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
  if (!line.startsWith(PREFIX)) return { kind: 'text', line };
  const rest = line.slice(PREFIX.length);
  const space = rest.indexOf(' ');
  const verb = space < 0 ? rest : rest.slice(0, space);
  const args = space < 0 ? '' : rest.slice(space + 1);
  switch (verb) {
    case 'stage':
      return (STAGES as readonly string[]).includes(args) ? { kind: 'stage', stage: args as BootStage } : malformed(line, `unknown stage "${args}"`);
    case 'stat': {
      // Exactly one space between the name and the value (what splitting at every space into two parts allows).
      const between = args.indexOf(' ');
      if (between < 0 || args.indexOf(' ', between + 1) >= 0) return malformed(line, 'stat needs exactly a name and a value');
      const name = args.slice(0, between);
      const value = args.slice(between + 1);
      if (!STAT_NAME.test(name)) return malformed(line, `bad stat name "${name}"`);
      if (!DECIMAL.test(value)) return malformed(line, `stat value "${value}" is not a decimal number`);
      const n = BigInt(value);
      if (n >= U64_LIMIT) return malformed(line, `stat value ${value} does not fit in 64 bits`);
      return { kind: 'stat', name, value: n };
    }
    case 'done':
      return args === '' ? { kind: 'done' } : malformed(line, 'done takes no arguments');
    case 'fatal':
      return args.trim() !== '' ? { kind: 'fatal', reason: args.trim() } : malformed(line, 'fatal needs a reason');
    default:
      return malformed(line, `unknown verb "${verb}"`);
  }
}

/** Incremental parser: feed console bytes or text as they arrive, read `report` any time. */
export class ConsoleProtocolParser implements Snapshottable<{ report: BootReport; partial: string }> {
  readonly report: BootReport = { stages: [], stats: {}, done: false, errors: [], text: [] };
  #partial = '';
  /**
   * The state last loaded, while nothing changed the report since (most fuzz executions end
   * before the guest prints a line): loading it again copies nothing. Cleared by every change
   * (the report is read, never changed, outside this class).
   */
  #unchangedSince: { report: BootReport; partial: string } | undefined;

  saveState(): { report: BootReport; partial: string } {
    return { report: copyReport(this.report), partial: this.#partial };
  }

  loadState(state: { report: BootReport; partial: string }): void {
    if (state === this.#unchangedSince) return;
    const saved = copyReport(state.report);
    delete this.report.fatal;
    Object.assign(this.report, saved);
    this.#partial = state.partial;
    this.#unchangedSince = state;
  }

  /** Feeds console output (a string or latin1 bytes); complete lines are parsed. */
  push(chunk: string | Uint8Array): void {
    this.#unchangedSince = undefined;
    this.#partial += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('latin1');
    let nl: number;
    while ((nl = this.#partial.indexOf('\n')) >= 0) {
      this.#line(this.#partial.slice(0, nl));
      this.#partial = this.#partial.slice(nl + 1);
    }
  }

  /**
   * push() of one whole line and its newline (`line` holds none): the console hands over line by
   * line, and gluing each to the pending text only to cut it off again showed in every fuzz
   * execution (issue 10).
   */
  pushLine(line: string): void {
    if (this.#partial !== '' || line.includes('\n')) {
      this.push(`${line}\n`);
      return;
    }
    this.#unchangedSince = undefined;
    this.#line(line);
  }

  /** Parses a trailing line without a newline (call when the guest has stopped). */
  end(): BootReport {
    if (this.#partial) {
      this.#unchangedSince = undefined;
      this.#line(this.#partial);
    }
    this.#partial = '';
    return this.report;
  }

  #line(line: string): void {
    const parsed = parseConsoleLine(line);
    const r = this.report;
    if (parsed.kind === 'text') {
      r.text.push(parsed.line);
      return;
    }
    if (parsed.kind === 'malformed') {
      r.errors.push(`${parsed.why}: ${JSON.stringify(parsed.line)}`);
      return;
    }
    if (r.done || r.fatal !== undefined) {
      // After a fatal report the fatal path itself may not print more; after done nothing may.
      r.errors.push(`protocol line after ${r.done ? 'done' : 'fatal'}: ${JSON.stringify(line)}`);
      return;
    }
    switch (parsed.kind) {
      case 'stage': {
        const expected = STAGES.indexOf(parsed.stage);
        const last = r.stages.length ? STAGES.indexOf(r.stages[r.stages.length - 1]!) : -1;
        if (expected <= last) r.errors.push(`stage ${parsed.stage} out of order after ${r.stages.join(',')}`);
        r.stages.push(parsed.stage);
        break;
      }
      case 'stat':
        r.stats[parsed.name] = parsed.value;
        break;
      case 'done':
        r.done = true;
        break;
      case 'fatal':
        r.fatal = parsed.reason;
        break;
    }
  }
}

/** Parses a complete console transcript. */
export function parseConsoleOutput(text: string | Uint8Array): BootReport {
  const p = new ConsoleProtocolParser();
  p.push(text);
  return p.end();
}

function copyReport(r: BootReport): BootReport {
  // The stats by Object.assign, not a spread: Node 20 gives an object made by spread a map that
  // each property added later replaces at ~10 us a time, and a fuzz execution that runs to the end
  // adds a dozen stats to the copy it restored (~1/20 of its CPU time; issue 10). The same own
  // properties in the same order: a stat name is never "__proto__" as an own property
  // (#line's assignment of that name sets no property), so Object.assign's [[Set]] is the spread's copy.
  const copy: BootReport = { stages: [...r.stages], stats: Object.assign({}, r.stats), done: r.done, errors: [...r.errors], text: [...r.text] };
  if (r.fatal !== undefined) copy.fatal = r.fatal;
  return copy;
}
