// `npm run bench [-- --json]`: prints each figure beside its target and its same-run baseline.
import { unicornVersion } from '../cpu/machine.js';
import { benchCreate, benchExits, benchGate, benchRestore } from './foundation.js';
import { benchBoot } from './boot.js';

const json = process.argv.includes('--json');
const log = (line: string) => { if (!json) console.log(line); };
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });

log(`minivisor benchmarks (libunicorn ${unicornVersion()}, node ${process.version})`);
const exits = benchExits();
log(`exitsPerSecond      ${fmt(exits.exitsPerSecond)} (target ≥ ${fmt(exits.target)}); a bare HLT run costs 1/${fmt(exits.exitCostVsBareRun, 2)} of an exit round trip`);
const gate = benchGate();
log(`gateOverhead        ${fmt(gate.gateOverhead, 3)} (target ≤ ${gate.target}); gated ${fmt(gate.gatedSeconds * 1000, 1)} ms vs plain Unicorn ${fmt(gate.plainSeconds * 1000, 1)} ms`);
const create = benchCreate();
log(`createTiB           ${fmt(create.createTiBMs, 1)} ms, +${fmt(create.createTiBRssMiB, 1)} MiB RSS (targets < ${create.targetMs} ms, < ${create.targetRssMiB} MiB); ${fmt(create.tibVs64MiB, 2)}× a 64 MiB VM`);
const restore = benchRestore();
log(`restoresPerSecond   ${fmt(restore.restoresPerSecond)} (target ≥ ${fmt(restore.target)}); ${fmt(restore.speedupVsFullCopy, 1)}× restoring by copying all 64 MiB`);

const boot = benchBoot();
log('boots (best of 3 for 1G/64G/1T, each boot in its own process):');
for (const s of boot.samples) {
  log(`  ${s.platform} ${s.memory.padEnd(4)} ${s.accept.padEnd(5)} ${s.outcome.padEnd(5)} ${fmt(s.wallMs, 1).padStart(8)} ms  ${fmt(s.peakRssMiB, 1).padStart(7)} MiB peak RSS  accepted ${fmt(s.acceptedGiB, 3)} GiB -> ~${fmt(s.modelledAcceptSeconds, 2)} s of acceptance on real hardware`);
}
for (const p of ['tdx', 'snp'] as const) {
  log(`bootTiBvsGiB ${p}    time ${fmt(boot.tibVsGibTime[p], 2)}×, peak RSS ${fmt(boot.tibVsGibRss[p], 2)}× (target ≤ ${boot.target}×)`);
}
log(`lazy vs eager at 4G: modelled acceptance time ${fmt(boot.modelledLazySpeedup.tdx, 1)}× (TDX) and ${fmt(boot.modelledLazySpeedup.snp, 1)}× (SNP) less; Linux reported whole-boot speed-ups of ${boot.reportedLazySpeedups.map((r) => `${r.speedup.toFixed(1)}× (${r.platform} ${r.memory})`).join(', ')}`);

if (json) {
  console.log(JSON.stringify({
    unicorn: unicornVersion(),
    node: process.version,
    exitsPerSecond: exits.exitsPerSecond,
    exits,
    gateOverhead: gate.gateOverhead,
    gate,
    createTiB: { ms: create.createTiBMs, rssMiB: create.createTiBRssMiB, ...create },
    restoresPerSecond: restore.restoresPerSecond,
    restore,
    boot,
  }));
}
