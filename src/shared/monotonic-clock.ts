// Milliseconds on the monotonic clock, for the wall times a run reports and the progress line
// (nothing the guest sees depends on them). process.hrtime rather than perf_hooks' performance.now():
// loading perf_hooks was ~1 ms of every boot's start (issue 11).
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
