// `npm run bench [-- --json]`: prints each figure beside its target and its same-run baseline.
import { unicornVersion } from '../cpu/machine.js';
import { benchCountingCost, benchCreate, benchExits, benchGate, benchRestore } from './foundation.js';
import { EAGER_LARGE, benchBoot } from './boot.js';
import { benchBootCost } from './boot-cost.js';
import { benchModelExits } from './model-exits.js';
import { benchSnapshot } from './snapshot.js';

const json = process.argv.includes('--json');
const log = (line: string) => { if (!json) console.log(line); };
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits });

log(`minivisor benchmarks (libunicorn ${unicornVersion()}, node ${process.version})`);
// Whole boots first: a child's peak RSS starts from this process's resident size when it is
// spawned (Linux carries the high-water mark across fork and exec), so this process stays small.
const boot = benchBoot();
const exits = benchExits();
log(`exitsPerSecond      ${fmt(exits.exitsPerSecond)} (target ≥ ${fmt(exits.target)}): the binding alone (runRaw + 3 register writes); a bare HLT run costs 1/${fmt(exits.exitCostVsBareRun, 2)} of it`);
const model = benchModelExits();
for (const p of ['tdx', 'snp'] as const) {
  const m = model[p];
  const what = p === 'tdx' ? 'TDG.MEM.PAGE.ACCEPT of a PENDING 4K page' : 'PVALIDATE of an assigned 4K page';
  log(`modelExitsPerSecond ${p} ${fmt(m.exitsPerSecond)} = ${fmt(m.microsecondsPerExit, 2)} µs ± ${fmt(m.rmePercent, 1)}% wall per exit (target ≤ ${model.targetMicroseconds} µs; ${fmt(m.microsecondsPerExit * exits.exitsPerSecond / 1e6, 1)}× the binding's round trip): ${what}, real model + honest VMM + trace`);
  if (m.cpuMicrosecondsPerExit !== undefined && m.waitMicrosecondsPerExit !== undefined) {
    log(`  of which on a CPU ${fmt(m.cpuMicrosecondsPerExit, 2)} µs, waiting for a CPU (other processes' load) ${fmt(m.waitMicrosecondsPerExit, 2)} µs (this thread's schedstat over the same samples)`);
  }
}
const gate = benchGate();
log(`gateOverhead        ${fmt(gate.gateOverhead, 3)} (target ≤ ${gate.target}); gated ${fmt(gate.gatedSeconds * 1000, 1)} ms vs plain Unicorn ${fmt(gate.plainSeconds * 1000, 1)} ms`);
const counting = benchCountingCost();
log(`countingCost        ${fmt(counting.countingNsPerInstruction, 2)} ns per instruction in counting mode vs ${fmt(counting.fastNsPerInstruction, 2)} ns in fast mode = ${fmt(counting.countingSlowdown, 1)}× (a load/store loop of ${fmt(counting.instructions)} instructions, no exits: the per-instruction code hook)`);
const create = benchCreate();
log(`createTiB           ${fmt(create.createTiBMs, 1)} ms, +${fmt(create.createTiBRssMiB, 1)} MiB RSS (targets < ${create.targetMs} ms, < ${create.targetRssMiB} MiB); ${fmt(create.tibVs64MiB, 2)}× a 64 MiB VM`);
const restore = benchRestore();
log(`restoresPerSecond   ${fmt(restore.restoresPerSecond)} (target ≥ ${fmt(restore.target)}); ${fmt(restore.speedupVsFullCopy, 1)}× restoring by copying all 64 MiB`);
const snapshot = benchSnapshot();
log('snapshot + restore of 256 dirty pages (1 MiB more resident):');
for (const s of snapshot.samples) log(`  ${s.memory.padEnd(4)} snapshot ${fmt(s.snapshotMs, 2).padStart(9)} ms  restore ${fmt(s.restoreMs, 3).padStart(9)} ms`);
log(`  16T vs 64M         ${fmt(snapshot.largestVsSmallest, 2)}× (target ≤ ${snapshot.target}×)`);

const costs = (['tdx', 'snp'] as const).map((p) => benchBootCost(p));
log('default boot (4G, 64M workload; CPU time: the guest run best of 3, the whole process best of 7 taken in turn with node\'s start):');
for (const c of costs) {
  log(`  ${c.platform} counting vs fast  ${fmt(c.countingVsFast, 2)}× fast mode's speed (target ≥ ${c.targetCountingVsFast}): guest run ${fmt(c.counting.runCpuMs, 1)} ms counting vs ${fmt(c.fast.runCpuMs, 1)} ms fast, ${fmt(c.counting.instructions)} instructions (${fmt(c.counting.instructions / c.counting.runCpuMs / 1000, 1)} M/s); traces ${c.identicalTraces ? 'identical' : 'DIFFER'} (icount aside, which fast mode does not count)`);
  log(`  ${c.platform} whole process     ${fmt(c.boot.cpuMs, 1)} ms CPU, ${fmt(c.boot.wallMs, 1)} ms wall = ${fmt(c.bootVsFloor, 2)}× the floor (target ≤ ${c.targetBootVsFloor}×): node start ${fmt(c.nodeStart.cpuMs, 1)} ms CPU (${fmt(c.nodeStart.wallMs, 1)} ms wall) + the same instructions on plain Unicorn ${fmt(c.plainUnicornMs, 1)} ms`);
  log(`  ${c.platform} median of the 7   ${fmt(c.median.bootCpuMs, 1)} ms CPU = ${fmt(c.median.bootVsFloor, 2)}× node start's median ${fmt(c.median.nodeStartCpuMs, 1)} ms + plain Unicorn`);
}

log(`boots (each in its own process; best of 3 for 1G/64G/1T, of 2 for lazy 4G, of 5 for eager 4G and ${EAGER_LARGE}, taken in turn):`);
for (const s of boot.samples) {
  log(`  ${s.platform} ${s.memory.padEnd(4)} ${s.accept.padEnd(5)} ${s.outcome.padEnd(5)} ${fmt(s.processCpuMs, 1).padStart(8)} ms CPU ${fmt(s.processWallMs, 1).padStart(8)} ms wall (boot itself ${fmt(s.wallMs, 1)} ms)  ${fmt(s.peakRssMiB, 1).padStart(7)} MiB peak RSS  accepted ${fmt(s.acceptedGiB, 3)} GiB`);
}
for (const p of ['tdx', 'snp'] as const) {
  log(`bootTiBvsGiB ${p}    CPU ${fmt(boot.tibVsGibTime[p], 2)}×, peak RSS ${fmt(boot.tibVsGibRss[p], 2)}× (target ≤ ${boot.target}×)`);
}
for (const p of ['tdx', 'snp'] as const) {
  log(`eager acceptance ${p} ${fmt(boot.eagerMarginalMsPerGiB[p], 1)} ms CPU per further GiB, eager ${EAGER_LARGE} vs 4G (target ≤ ${boot.eagerTargetMsPerGiB}); ${fmt(boot.eagerMsPerGiB[p], 1)} ms per GiB eager vs lazy at 4G, which includes ${fmt(boot.eagerOnceMs[p], 0)} ms paid once whatever the size (V8 optimising the accept path); eager/lazy at 4G, measured in the emulator: ${fmt(boot.measuredEagerVsLazy[p], 2)}×`);
}
log('MODEL, not measured: acceptance on real hardware, computed from published rates (TDX ~1.5 GiB/s, SNP ~0.58 GiB/s):');
for (const s of boot.samples) {
  log(`  ${s.platform} ${s.memory.padEnd(4)} ${s.accept.padEnd(5)} ${fmt(s.acceptedGiB, 3)} GiB -> ~${fmt(s.modelledAcceptSeconds, 2)} s`);
}
log(`  lazy vs eager at 4G: ${fmt(boot.modelledLazySpeedup.tdx, 1)}× (TDX) and ${fmt(boot.modelledLazySpeedup.snp, 1)}× (SNP) less acceptance time (the emulator measured ${fmt(boot.measuredEagerVsLazy.tdx, 2)}× and ${fmt(boot.measuredEagerVsLazy.snp, 2)}× above); Linux reported whole-boot speed-ups of ${boot.reportedLazySpeedups.map((r) => `${r.speedup.toFixed(1)}× (${r.platform} ${r.memory})`).join(', ')}`);

if (json) {
  console.log(JSON.stringify({
    unicorn: unicornVersion(),
    node: process.version,
    exitsPerSecond: exits.exitsPerSecond,
    exits,
    modelExitsPerSecond: { tdx: model.tdx.exitsPerSecond, snp: model.snp.exitsPerSecond },
    modelExits: model,
    gateOverhead: gate.gateOverhead,
    gate,
    countingCost: counting,
    createTiB: { ms: create.createTiBMs, rssMiB: create.createTiBRssMiB, ...create },
    restoresPerSecond: restore.restoresPerSecond,
    restore,
    snapshot,
    bootCost: costs,
    boot,
  }));
}
