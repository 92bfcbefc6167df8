// Parses sizes such as 4K, 2M, 512M, 4095M, 64G, 1T (binary units) or plain byte counts.
import { quoteForError } from '../shared/quote.js';
const UNITS: Record<string, bigint> = { '': 1n, B: 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

export function parseSize(text: string, what = 'size'): bigint {
  const m = /^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) throw new SizeError(`${what} ${quoteForError(text)} is not a size (examples: 4K, 512M, 4G, 1T, 4096)`);
  const value = BigInt(m[1]!) * UNITS[m[2]!.toUpperCase()]!;
  return value;
}

export function formatSize(bytes: bigint): string {
  for (const [unit, scale] of [['T', 1n << 40n], ['G', 1n << 30n], ['M', 1n << 20n], ['K', 1n << 10n]] as const) {
    if (bytes >= scale && bytes % scale === 0n) return `${bytes / scale}${unit}`;
  }
  return `${bytes}`;
}

export class SizeError extends Error {
  override name = 'SizeError';
}
