// The in-process link of assembled test snippets (test/helpers/link-flat.ts) against what it
// stands in for, ld -N -Ttext then objcopy -O binary -j .text, on one object with each kind of
// relocation GNU as leaves in a snippet; and the objects it must leave to ld.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linkFlatText } from '../helpers/link-flat.js';

const hasBinutils = ['as', 'ld', 'objcopy'].every((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).status === 0);
const dir = mkdtempSync(join(tmpdir(), 'minivisor-link-flat-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function object(name: string, body: string): Uint8Array {
  writeFileSync(join(dir, `${name}.S`), `.intel_syntax noprefix\n.code64\n.text\n${body}\n`);
  execFileSync('as', ['--64', '-o', join(dir, `${name}.o`), join(dir, `${name}.S`)]);
  return readFileSync(join(dir, `${name}.o`));
}

function ldText(name: string, origin: bigint): Uint8Array {
  const hex = `0x${origin.toString(16)}`;
  execFileSync('ld', ['-m', 'elf_x86_64', '-nostdlib', '-N', '--no-warn-rwx-segments', '-e', hex, `-Ttext=${hex}`, '-o', join(dir, `${name}.elf`), join(dir, `${name}.o`)]);
  execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, `${name}.elf`), join(dir, `${name}.bin`)]);
  return readFileSync(join(dir, `${name}.bin`));
}

describe.skipIf(!hasBinutils)('linking a snippet in process', () => {
  it('gives ld\'s bytes for 64-, 32-, 32S-, 16-bit, PC32 and PLT32 relocations', () => {
    // R_X86_64_32S, _32, _PLT32 and _PC32 (a global label: as leaves those to the linker), _64, _16.
    const obj = object('all', `
      .globl global
      mov rax, offset there
      mov eax, offset there
      call global
      lea rcx, [rip + global]
      jmp there
      .quad there
      .long there
      .word there
    global:
      ret
    there:
      nop`);
    for (const origin of [0x1000n, 0x7000n]) {
      const linked = linkFlatText(obj, origin);
      expect(linked).toBeDefined();
      expect(Buffer.from(linked!).equals(Buffer.from(ldText('all', origin)))).toBe(true);
    }
  });

  it('leaves to ld an object with bytes outside .text, or a value that does not fit', () => {
    expect(linkFlatText(object('data', 'mov rax, offset value\n .data\n value: .quad 7'), 0x1000n)).toBeUndefined();
    expect(linkFlatText(object('byte', 'there: nop\n .byte there'), 0x1000n)).toBeUndefined();
  });
});
