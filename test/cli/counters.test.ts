// One definition per counter, the same words on both platforms (issue 13): `acceptCalls` is every
// accept call the hardware saw, `acceptCallsCompleted` the ones that accepted their page (what the
// guest's own accept_calls_* count), `acceptedBytes.total` the bytes of completed calls with
// re-accepts after a conversion, `acceptedBytes.distinct` each byte once.
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { capture } from '../helpers/captured-io.js';

interface Counters {
  memoryBytes: number;
  acceptedBytes: { firmware: number; decompressor: number; kernel: number; total: number; distinct: number };
  acceptCalls: { '4K': number; '2M': number };
  acceptCallsCompleted: { '4K': number; '2M': number };
  guestStats: Record<string, string>;
}

async function boot(args: string[]): Promise<Counters> {
  const io = capture();
  expect(await main(['boot', '--json', ...args], io)).toBe(0);
  return JSON.parse(io.stdout[0]!) as Counters;
}

describe('acceptance counters', () => {
  it.each(['tdx', 'snp'])('%s: completed calls are the guest\'s own count; bytes add up', async (platform) => {
    const r = await boot(['--platform', platform, '--memory', '256M', '--workload', '16M']);
    expect(r.acceptCallsCompleted['2M']).toBe(Number(r.guestStats.accept_calls_2m));
    expect(r.acceptCallsCompleted['4K']).toBe(Number(r.guestStats.accept_calls_4k));
    expect(r.acceptCalls['2M']).toBeGreaterThanOrEqual(r.acceptCallsCompleted['2M']);
    expect(r.acceptedBytes.total).toBe(r.acceptCallsCompleted['2M'] * 2 ** 21 + r.acceptCallsCompleted['4K'] * 4096);
    expect(r.acceptedBytes.total).toBe(r.acceptedBytes.firmware + r.acceptedBytes.decompressor + r.acceptedBytes.kernel);
    expect(r.acceptedBytes.distinct).toBeLessThanOrEqual(r.acceptedBytes.total);
    expect(Number(r.guestStats.accepted_bytes_total)).toBe(r.acceptedBytes.total);
  });

  it('TDX: calls that exit to the VMM first are issued twice but complete once', async () => {
    const r = await boot(['--memory', '256M', '--workload', '16M']);
    expect(r.acceptCalls['2M']).toBeGreaterThan(r.acceptCallsCompleted['2M']);
  });

  it('an eager boot re-accepts after its conversions: total counts them again, distinct does not', async () => {
    const r = await boot(['--accept', 'eager', '--memory', '1G', '--workload', '16M']);
    expect(r.acceptedBytes.total).toBeGreaterThan(r.acceptedBytes.distinct);
    expect(r.acceptedBytes.distinct).toBeLessThanOrEqual(r.memoryBytes);
  });

  it('the summary says which is which', async () => {
    const io = capture();
    expect(await main(['boot', '--memory', '128M', '--workload', '16M'], io)).toBe(0);
    expect(io.stdout.find((l) => l.includes('accepted memory:'))).toMatch(/\(distinct bytes\); completed accept calls covered [\d.]+ MiB, re-accepts after a conversion included/);
    expect(io.stdout.find((l) => l.includes('accept calls:'))).toMatch(/issued; \d+ × 2M, \d+ × 4K completed/);
  });
});
