// The guest's console as `minivisor boot` shows it by default: the `@mv` protocol lines
// (src/boot/console-protocol.ts) in words, byte counts in binary units, addresses in hex; other
// console lines unchanged. `--raw-console` prints the protocol as the guest wrote it.
import { parseConsoleLine } from '../boot/console-protocol.js';
import { formatBinary } from '../view/acceptance-map.js';
import { groupThousands } from '../shared/thousands.js';

/** Printed once, before the first console line. */
export const CONSOLE_LEGEND = 'guest console (its @mv protocol in words: bytes in binary units, addresses in hex; --raw-console prints the raw lines):';

/** What some of the guest's own counters mean, where the hardware's count of the same name differs (see the summary). */
const STAT_NOTES: Readonly<Record<string, string>> = {
  accept_calls_4k: 'completed calls, all stages: retries after a TD exit not counted',
  accept_calls_2m: 'completed calls, all stages: retries after a TD exit not counted',
  accepted_bytes_total: 're-accepts after a conversion included',
};

const STAT_WIDTH = 28;

function statValue(name: string, value: bigint): string {
  if (/(_gpa|_addr|_address)$/.test(name)) return `0x${value.toString(16)}`;
  if (/_bytes(_|$)/.test(name)) return value < 1024n ? `${value} B` : `${formatBinary(value)} (${value} bytes)`;
  return groupThousands(value);
}

/** One console line in words (protocol lines) or as it is (anything else). */
export function readableConsoleLine(line: string): string {
  const parsed = parseConsoleLine(line);
  switch (parsed.kind) {
    case 'stage': return `== stage ${parsed.stage} ==`;
    case 'stat': {
      const note = STAT_NOTES[parsed.name];
      return `   ${parsed.name.replace(/_/g, ' ').padEnd(STAT_WIDTH)} ${statValue(parsed.name, parsed.value)}${note ? `  (${note})` : ''}`;
    }
    case 'done': return 'guest: done';
    case 'fatal': return `guest: FATAL: ${parsed.reason}`;
    case 'malformed': return `${line}   <- not a valid @mv line: ${parsed.why}`;
    case 'text': return parsed.line;
  }
}
