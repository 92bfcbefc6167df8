// The progress line of a long boot on a terminal (stderr): stage, accepted bytes, acceptance
// rate and, when the kernel accepts eagerly, an ETA for the rest of memory. Silent when stderr is
// not a terminal, and for boots shorter than a second. Wall-clock time is read here only to show
// it: nothing the guest sees depends on it.
import { monotonicMs } from '../shared/monotonic-clock.js';
import type { CliIo } from './io.js';
import { StatusLine } from './status-line.js';
import { formatBinary } from '../view/acceptance-map.js';

export interface BootProgressSample {
  stage: string;
  /** Bytes accepted so far (every completed accept, the hardware's count). */
  acceptedBytes: bigint;
}

export interface BootProgressOptions {
  memoryBytes: bigint;
  accept: 'lazy' | 'eager';
  /** Nothing is shown before this much of the run has passed (default 1 s). */
  delayMs?: number;
  now?: () => number;
}

export class BootProgress {
  readonly #line: StatusLine;
  readonly #options: Required<BootProgressOptions>;
  readonly #start: number;
  readonly enabled: boolean;

  constructor(io: CliIo, options: BootProgressOptions) {
    this.#line = new StatusLine(io);
    this.#options = { delayMs: 1000, now: () => monotonicMs(), ...options };
    this.#start = this.#options.now();
    this.enabled = io.errTty === true && io.errRaw !== undefined;
  }

  /** The line for a sample `elapsedMs` into the run. */
  text(sample: BootProgressSample, elapsedMs: number): string {
    const { memoryBytes, accept } = this.#options;
    const rate = elapsedMs > 0 ? Number(sample.acceptedBytes) / (elapsedMs / 1000) : 0;
    const parts = [`minivisor: ${sample.stage}`, `accepted ${formatBinary(sample.acceptedBytes)} of ${formatBinary(memoryBytes)}`, `${formatBinary(BigInt(Math.round(rate)))}/s`];
    if (accept === 'eager' && sample.stage === 'kernel' && rate > 0 && sample.acceptedBytes < memoryBytes) {
      parts.push(`ETA ${formatSeconds(Number(memoryBytes - sample.acceptedBytes) / rate)}`);
    }
    return parts.join(', ');
  }

  update(sample: () => BootProgressSample): void {
    if (!this.enabled) return;
    const elapsed = this.#options.now() - this.#start;
    if (elapsed < this.#options.delayMs) return;
    this.#line.update(() => this.text(sample(), elapsed));
  }

  /** Clears the line (before other output on the terminal, and at the end). */
  clear(): void {
    if (this.enabled) this.#line.clear();
  }
}

function formatSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.ceil((s % 3600) / 60)} min`;
}
