// Thousands separators without Intl: a process's first toLocaleString() sets up ICU, about 14 ms
// of CPU, which was over a tenth of a default `minivisor boot` (issue 11).

/** An integer in decimal with a comma between groups of three digits, as toLocaleString('en-US') writes it. */
export function groupThousands(n: number | bigint): string {
  if (typeof n === 'number' && !Number.isSafeInteger(n)) return n.toLocaleString('en-US');
  const negative = n < 0;
  const digits = String(negative ? -n : n).replace(/\B(?=(\d{3})+$)/g, ',');
  return negative ? `-${digits}` : digits;
}
