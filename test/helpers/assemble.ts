// Assembles tiny guest snippets with the machine's GNU as/ld at test time, so tests carry
// their source instead of binary fixtures. Results are cached by content hash in test/.tmp. A clean
// checkout assembles every snippet, so as is the one process a snippet usually costs: its object
// is linked in process (link-flat.ts), and ld and objcopy run only for what that leaves to them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';
import { linkFlatText } from './link-flat.js';

const cacheDir = join(dirname(fileURLToPath(import.meta.url)), '..', '.tmp', 'asm');

/**
 * Assembles `source` (GNU as, Intel syntax without prefixes, 64-bit) linked at `origin` and
 * returns the flat binary. Labels are available; `.org`, `.align`, `.quad` work as usual.
 */
export function assemble(source: string, origin = 0x1000n): Uint8Array {
  const text = `.intel_syntax noprefix\n.code64\n.text\n${source}\n`;
  const key = createHash('sha256').update(text).update(origin.toString()).digest('hex').slice(0, 24);
  const bin = join(cacheDir, `${key}.bin`);
  if (!existsSync(bin)) {
    mkdirSync(cacheDir, { recursive: true });
    // Files of this process and thread only, renamed into place at the end: two test workers
    // assembling the same snippet at once used to write the same .o/.elf under each other (an
    // empty ELF for one of them).
    const work = join(cacheDir, `${key}.${process.pid}.${threadId}`);
    const [src, obj, elf, part] = ['.S', '.o', '.elf', '.bin'].map((ext) => work + ext) as [string, string, string, string];
    try {
      writeFileSync(src, text);
      execFileSync('as', ['--64', '-o', obj, src]);
      const linked = linkFlatText(readFileSync(obj), origin);
      if (linked) writeFileSync(part, linked);
      else {
        execFileSync('ld', ['-m', 'elf_x86_64', '-nostdlib', '-N', '--no-warn-rwx-segments', '-e', `0x${origin.toString(16)}`, `-Ttext=0x${origin.toString(16)}`, '-o', elf, obj]);
        execFileSync('objcopy', ['-O', 'binary', '-j', '.text', elf, part]);
      }
      renameSync(part, bin);
    } finally {
      for (const f of [src, obj, elf, part]) rmSync(f, { force: true });
    }
  }
  return new Uint8Array(readFileSync(bin));
}
