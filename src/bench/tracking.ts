// `npm run bench:tracking [-- --json] [-- --runs N]`: Roedel's acceptance bitmap (`--tracking
// bitmap`, the default) against Kleen's variant (`--tracking memmap`, issue 14 part 3), measured
// on the same boots and the same fuzz campaigns:
// - acceptance work: completed accept calls (4K, 2M), bytes accepted per stage, guest instructions;
// - memory overhead: the bitmap's bytes against the map's entries and the kernel's private extents;
// - attacks: fuzz campaigns with the same seed and --runs for both designs (honest stubs, and the
//   trusts-injected-exception planted bug, whose #VE/#VC-driven validation requests are exactly
//   what Kleen's rule rejects): verdicts, guest-fatal reasons and oracle findings. Coverage guides
//   each campaign, so the two explore different programs; the attack programs of both corpora are
//   then replayed on both designs, which compares them on the very same attacks.
// Counts, not times: every figure is deterministic for the seed.
import { bootGuest } from '../boot/boot-guest.js';
import type { AcceptanceTracking, StubVariant } from '../boot/images.js';
import { runCampaign } from '../fuzz/campaign.js';
import { createExecutor } from '../fuzz/create-executor.js';
import type { Executor, FuzzTarget } from '../fuzz/executor.js';
import type { AttackProgram } from '../fuzz/attack-program.js';
import type { Verdict } from '../fuzz/oracle.js';

const json = process.argv.includes('--json');
const runsArg = process.argv.indexOf('--runs');
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 300;
const log = (line: string) => { if (!json) console.log(line); };
const TRACKINGS: AcceptanceTracking[] = ['bitmap', 'memmap'];
const PLATFORMS = ['tdx', 'snp'] as const;
const G = 1n << 30n;
const M = 1n << 20n;

interface BootFigures {
  platform: string; tracking: AcceptanceTracking; memory: string; unit: string; outcome: string;
  acceptCalls4k: number; acceptCalls2m: number; acceptedBytes: { firmware: number; decompressor: number; kernel: number };
  guestInstructions: number; bitmapBytes: number; memmapEntries: number; privateExtentsPeak: number; privateStateBytes: number;
}

function bootFigures(platform: 'tdx' | 'snp', tracking: AcceptanceTracking, memoryBytes: bigint, unitBytes: bigint, preAccept: bigint): BootFigures {
  const run = bootGuest({
    platform, memoryBytes, preAccept, accept: 'lazy', unitBytes, workloadBytes: 64n * M, seed: 1n,
    maxInstructions: 2_000_000_000n, ...(tracking === 'memmap' ? { tracking } : {}),
  });
  try {
    const r = run.result;
    const s = r.guestStats;
    const n = (k: string) => Number(s[k] ?? 0);
    return {
      platform, tracking, memory: `${memoryBytes / G}G`, unit: unitBytes === 0x1000n ? '4K' : '2M', outcome: r.outcome,
      acceptCalls4k: n('accept_calls_4k'), acceptCalls2m: n('accept_calls_2m'),
      acceptedBytes: { firmware: n('firmware_accepted_bytes'), decompressor: n('decompressor_accepted_bytes'), kernel: n('kernel_accepted_bytes') },
      guestInstructions: Number(r.guestInstructions), bitmapBytes: n('bitmap_bytes'), memmapEntries: n('memmap_entries') || n('e820_entries'),
      privateExtentsPeak: n('memmap_private_extents_peak'), privateStateBytes: n('memmap_private_state_bytes'),
    };
  } finally {
    run.platform.machine.close();
  }
}

/** Records every execution's outcome on top of the campaign's own statistics. */
function recording(executor: Executor, reasons: Map<string, number>): Executor {
  return {
    target: executor.target,
    execute(program, options) {
      const e = executor.execute(program, options);
      if (e.judgement.outcome.outcome === 'guest-fatal') {
        const reason = e.judgement.outcome.reason.split(' ')[0]!;
        reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      }
      return e;
    },
    close: () => executor.close(),
  };
}

const fuzzTarget = (platform: 'tdx' | 'snp', tracking: AcceptanceTracking, variant?: StubVariant): FuzzTarget => ({
    platform, stage: 'kernel', memoryBytes: 128n * M, workloadBytes: M, preAccept: 64n * M, accept: 'lazy', unitBytes: 0x200000n,
    guestSeed: 1n, maxInstructions: 50_000_000n, ...(variant ? { variant } : {}), ...(tracking === 'memmap' ? { tracking } : {}),
});

async function campaign(platform: 'tdx' | 'snp', tracking: AcceptanceTracking, variant?: StubVariant) {
  const target = fuzzTarget(platform, tracking, variant);
  const reasons = new Map<string, number>();
  const executor = recording(createExecutor(target), reasons);
  const result = await runCampaign({ executor, seed: 1n, runs });
  executor.close();
  return {
    platform, tracking, stubs: variant ?? 'honest', execs: result.stats.execs, verdicts: result.stats.verdicts,
    findings: result.stats.findingsByCategory, guestFatalReasons: Object.fromEntries([...reasons].sort((a, b) => b[1] - a[1])),
    corpus: result.corpus,
  };
}

/** Every program of both corpora on both designs: how often each pair of verdicts (bitmap/memmap) occurs. */
function crossReplay(platform: 'tdx' | 'snp', variant: StubVariant | undefined, programs: AttackProgram[]) {
  const unique = [...new Map(programs.map((p) => [JSON.stringify(p, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)), p])).values()];
  const verdicts = (tracking: AcceptanceTracking): Verdict[] => {
    const executor = createExecutor(fuzzTarget(platform, tracking, variant));
    try {
      return unique.map((p) => executor.execute(p).judgement.verdict);
    } finally {
      executor.close();
    }
  };
  const bitmap = verdicts('bitmap');
  const memmap = verdicts('memmap');
  const pairs: Record<string, number> = {};
  bitmap.forEach((b, i) => { const key = `${b}/${memmap[i]}`; pairs[key] = (pairs[key] ?? 0) + 1; });
  return { platform, stubs: variant ?? 'honest', programs: unique.length, pairs };
}

const boots: BootFigures[] = [];
for (const platform of PLATFORMS) {
  for (const unit of [0x200000n, 0x1000n]) {
    for (const tracking of TRACKINGS) boots.push(bootFigures(platform, tracking, 4n * G, unit, 64n * M));
  }
}
// Memory overhead as the guest grows: the bitmap follows RAM, the map and the extents do not.
const sizes: BootFigures[] = [];
for (const memory of [4n * G, 64n * G]) {
  for (const tracking of TRACKINGS) sizes.push(bootFigures('tdx', tracking, memory, 0x1000n, 64n * M));
}
const campaigns = [];
const replays = [];
for (const platform of PLATFORMS) {
  for (const variant of [undefined, 'trusts-injected-exception' as const]) {
    const pair = [];
    for (const tracking of TRACKINGS) pair.push(await campaign(platform, tracking, variant));
    campaigns.push(...pair);
    replays.push(crossReplay(platform, variant, pair.flatMap((c) => c.corpus)));
  }
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
log('acceptance work (4G guest, 64M pre-accepted, 64M workload, lazy, seed 1):');
for (const b of boots) {
  log(`  ${b.platform} ${b.unit} ${b.tracking.padEnd(6)} ${b.outcome}: ${b.acceptCalls2m} × 2M + ${b.acceptCalls4k} × 4K accept calls; MiB accepted fw ${mib(b.acceptedBytes.firmware)} / decompressor ${mib(b.acceptedBytes.decompressor)} / kernel ${mib(b.acceptedBytes.kernel)}; ${b.guestInstructions.toLocaleString('en-US')} guest instructions`);
}
log('memory overhead (TDX, 4K unit):');
for (const b of sizes) {
  log(`  ${b.memory.padEnd(3)} ${b.tracking.padEnd(6)} bitmap ${b.bitmapBytes} B; map ${b.memmapEntries} entries (${b.memmapEntries * 24} B); private extents peak ${b.privateExtentsPeak} (${b.privateExtentsPeak * 16} B used of ${b.privateStateBytes} B static)`);
}
log(`fuzz campaigns (kernel stage, 128M guest, 1M workload, seed 1, ${runs} runs each):`);
for (const c of campaigns) {
  log(`  ${c.platform} ${c.stubs.padEnd(25)} ${c.tracking.padEnd(6)} verdicts ${JSON.stringify(c.verdicts)} findings ${JSON.stringify(c.findings)} guest-fatal ${JSON.stringify(c.guestFatalReasons)}`);
}
log('the programs of both corpora replayed on both designs (verdict pairs bitmap/memmap):');
for (const r of replays) log(`  ${r.platform} ${r.stubs.padEnd(25)} ${r.programs} programs: ${JSON.stringify(r.pairs)}`);
if (json) console.log(JSON.stringify({ runs, boots, sizes, campaigns: campaigns.map(({ corpus: _, ...c }) => c), replays }));
