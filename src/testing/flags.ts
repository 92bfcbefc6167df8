// The options of minivisor/testing's functions, as the CLI's flags: a JavaScript caller's typo or
// wrong type is a BootOptionError that names it, not a TypeError from inside the parser or an
// option silently ignored.
import { BootOptionError } from '../cli/boot-options.js';

/** Text, a count or size (also a number or bigint; a size then in bytes), or a switch. */
export type OptionKind = 'text' | 'numeric' | 'switch';
type KindTable = Readonly<Record<string, OptionKind>>;
type NumericKeys<K extends KindTable> = { [P in keyof K]: K[P] extends 'numeric' ? P : never }[keyof K];

/** `Raw` (a command's flags, all text) with its numeric options also taking numbers and bigints. */
export type TestingOptions<Raw, K extends KindTable> = Omit<Raw, 'json' | NumericKeys<K>> & { [P in NumericKeys<K>]?: string | number | bigint };

/** `options` as flags for the CLI's parser, each checked against `kinds`; `caller` names the function in errors. */
export function asFlags(options: object, kinds: KindTable, caller: string): Record<string, string | boolean> {
  const raw: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(options) as Array<[string, unknown]>) {
    if (value === undefined) continue;
    const kind: OptionKind | undefined = Object.hasOwn(kinds, key) ? kinds[key] : undefined;
    if (kind === undefined) throw new BootOptionError(`${caller} has no option ${JSON.stringify(key)} (options: ${Object.keys(kinds).join(', ')})`);
    if (kind === 'switch') {
      if (typeof value !== 'boolean') throw new BootOptionError(`${caller} option ${key} must be true or false, got ${typeof value}`);
      raw[key] = value;
    } else if (kind === 'numeric' && ((typeof value === 'number' && Number.isSafeInteger(value)) || typeof value === 'bigint')) {
      raw[key] = value.toString();
    } else {
      if (typeof value !== 'string') throw new BootOptionError(`${caller} option ${key} must be a string${kind === 'numeric' ? ' or an integer' : ''}, got ${typeof value}`);
      raw[key] = value;
    }
  }
  return raw;
}
