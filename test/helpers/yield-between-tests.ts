// Test files run whole boots synchronously, one after another. Between two tests, let the
// worker's event loop run its I/O phase, so vitest's RPC answers arrive before their timers
// fire: a long synchronous stretch across many tests otherwise ends in
// "[vitest-worker]: Timeout calling onTaskUpdate".
import { beforeEach } from 'vitest';

beforeEach(() => new Promise<void>((resolve) => setImmediate(resolve)));
