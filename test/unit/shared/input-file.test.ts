// A file the user names as an input (src/shared/input-file.ts), in process: read whole up to its
// size bound, and refused when it is larger or changes size while it is read.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputFileError, readInputFile } from '../../../src/shared/input-file.js';

describe('readInputFile', () => {
  it('reads a file of exactly its bound, and refuses one byte more', () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-infile-'));
    writeFileSync(join(dir, 'at'), 'x'.repeat(8));
    writeFileSync(join(dir, 'past'), 'x'.repeat(9));
    expect(Buffer.from(readInputFile(join(dir, 'at'), 'image', 8)).toString()).toBe('x'.repeat(8));
    expect(() => readInputFile(join(dir, 'past'), 'image', 8)).toThrow(new InputFileError(`image "${join(dir, 'past')}" is 9 bytes, more than the 8 allowed`));
  });

  it('refuses a file that holds more than its size said (a /proc file says 0 bytes)', () => {
    expect(() => readInputFile('/proc/self/status', 'image', 1 << 20)).toThrow(new InputFileError('image "/proc/self/status" changed size while being read'));
  });
});
