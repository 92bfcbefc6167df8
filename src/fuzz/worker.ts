// One fuzzing job in a worker thread (one emulator per thread): runs a campaign and reports its
// progress, findings (with their trace) and corpus to the parent (parallel.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { HonestRunOverBudgetError } from './campaign.js';
import { runJob, type JobMessage, type JobSpec, type StopMessage } from './parallel.js';

const spec = workerData as JobSpec;
const post = (m: JobMessage) => parentPort!.postMessage(m);
// The campaign yields to the event loop after every execution, so a stop arrives between two.
// Unreferenced: listening must not keep the thread alive once the campaign is done.
let stopped = false;
parentPort!.on('message', (m: StopMessage) => {
  if (m.kind === 'stop') stopped = true;
});
parentPort!.unref();
runJob(spec, post, () => stopped).then(
  (result) => post({ kind: 'done', job: spec.job, result }),
  (err: unknown) => post(err instanceof HonestRunOverBudgetError
    ? { kind: 'error', job: spec.job, message: err.message, overBudget: true }
    : { kind: 'error', job: spec.job, message: err instanceof Error ? err.stack ?? err.message : String(err) }),
);
