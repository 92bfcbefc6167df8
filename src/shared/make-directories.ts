// `mkdir -p` without Node's recursive mkdir, which spins forever (100% CPU, never returning) when
// mkdir answers ENOENT under a parent that exists, as /proc does for any new name: it takes the
// ENOENT for a missing parent, makes the parent (EEXIST, fine) and tries the child again.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

function notADirectory(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR', syscall: 'mkdir', path });
}

/** Makes `path` and the directories above it that are missing; each mkdir is tried once. */
export function makeDirectories(path: string): void {
  const missing: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    let isDirectory: boolean;
    try {
      isDirectory = statSync(dir).isDirectory();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      missing.push(dir);
      if (dirname(dir) === dir) break;
      continue;
    }
    if (!isDirectory) throw notADirectory(path);
    break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir);
    } catch (err) {
      // Made meanwhile by someone else (a parallel shard): fine if it is a directory.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!statSync(dir).isDirectory()) throw notADirectory(path);
    }
  }
}
