// Live progress on stderr: one line redrawn in place on a terminal (at most 4 times a second),
// plain lines every few seconds otherwise (logs, CI).
import type { CliIo } from './io.js';
import { monotonicMs } from '../shared/monotonic-clock.js';

const TTY_INTERVAL_MS = 250;
const PLAIN_INTERVAL_MS = 5000;

export class StatusLine {
  readonly #io: CliIo;
  readonly #tty: boolean;
  #last = Number.NEGATIVE_INFINITY;
  #shown = false;

  constructor(io: CliIo) {
    this.#io = io;
    this.#tty = io.errTty === true && io.errRaw !== undefined;
  }

  /** Shows `text` if enough time has passed since the last update (always when `force`). */
  update(text: () => string, force = false): void {
    const now = monotonicMs();
    if (!force && now - this.#last < (this.#tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS)) return;
    this.#last = now;
    if (this.#tty) {
      this.#io.errRaw!(`\r${text()}\x1b[K`);
      this.#shown = true;
    } else {
      this.#io.err(text());
    }
  }

  /** Erases the redrawn line (before other output to the same terminal); the next update draws it again. */
  clear(): void {
    if (this.#tty && this.#shown) this.#io.errRaw!('\r\x1b[K');
    this.#shown = false;
    this.#last = Number.NEGATIVE_INFINITY;
  }

  /** Ends the redrawn line so later output starts on a fresh one. */
  end(): void {
    if (this.#tty && this.#shown) this.#io.errRaw!('\n');
    this.#shown = false;
  }
}
