// A finding file (or corpus program) that is not JSON text: `replay` and `shrink` say so in one
// line, with at most a short escaped excerpt, never the raw bytes (control characters and escape
// sequences reached the terminal through JSON.parse's message, which quotes the text it choked on).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILT_FIRMWARE } from '../../src/boot/images.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'minivisor-binary-finding-'));

function minivisor(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['bin/minivisor.js', ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** Control characters other than the newline ending each line: C0, DEL, C1, and U+FFFD for invalid bytes. */
// eslint-disable-next-line no-control-regex
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\ufffd]/;

function expectEscapedOneLine(r: SpawnSyncReturns<string>, command: string, pattern: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.status).toBe(2);
  expect(r.stderr).not.toMatch(RAW);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]!.length).toBeLessThan(300);
  expect(lines[0]).toMatch(new RegExp(`^minivisor ${command}: `));
  expect(lines[0]).toMatch(pattern);
}

describe('replay and shrink of a file that is not a finding', () => {
  const dir = scratch();
  const elf = join(dir, 'firmware.json');
  copyFileSync(BUILT_FIRMWARE, elf);
  const latin1 = join(dir, 'latin1.json');
  writeFileSync(latin1, Buffer.from([0x7b, 0x22, 0xe9, 0x1b, 0x5b, 0x32, 0x4a, 0x22, 0x3a, 0x31, 0x7d]));  // {"é<ESC>[2J":1} in Latin-1
  const escapes = join(dir, 'escapes.json');
  writeFileSync(escapes, 'format\x1b]0;pwned\x07\x1b[2J: minivisor-finding\n');  // text, but not JSON
  const c1 = join(dir, 'c1.json');
  writeFileSync(c1, Buffer.from('\u009b31mred\u009b0m', 'utf8'));  // UTF-8 C1 CSI, which some terminals obey
  const findingDir = join(dir, 'findings', 'x');
  mkdirSync(findingDir, { recursive: true });
  copyFileSync(BUILT_FIRMWARE, join(findingDir, 'finding.json'));

  for (const command of ['replay', 'shrink']) {
    it(`${command}: an ELF image is binary, not a finding file; the excerpt is escaped`, () => {
      const r = minivisor([command, elf]);
      expectEscapedOneLine(r, command, /finding ".*firmware\.json" is not a finding file: binary data, not JSON text \(it starts "\\x7fELF\\x02\\x01\\x01/);
      expect(readFileSync(elf).equals(readFileSync(BUILT_FIRMWARE))).toBe(true);
    });

    it(`${command}: bytes that are not UTF-8`, () => {
      expectEscapedOneLine(minivisor([command, latin1]), command, /is not a finding file: not UTF-8 text \(it starts "\{\\"\\xe9\\x1b\[2J\\":1\}"\)/);
    });

    it(`${command}: text with escape sequences that is not JSON`, () => {
      expectEscapedOneLine(minivisor([command, escapes]), command, /escapes\.json: not JSON \(.*\\u001b/);
    });

    it(`${command}: C1 control characters are escaped too`, () => {
      expectEscapedOneLine(minivisor([command, c1]), command, /c1\.json: not JSON \(.*\\u009b/);
    });

    it(`${command}: a findings/<id>/ directory whose finding.json is binary`, () => {
      expectEscapedOneLine(minivisor([command, findingDir]), command, /finding\.json" is not a finding file: binary data/);
    });
  }

  it('fuzz skips a binary corpus file with an escaped one-line warning', () => {
    const out = scratch();
    mkdirSync(join(out, 'corpus'));
    copyFileSync(BUILT_FIRMWARE, join(out, 'corpus', 'elf.json'));
    writeFileSync(join(out, 'corpus', 'escapes.json'), 'x\x1b[2J');
    const r = minivisor(['fuzz', '--runs', '1', '--out', out]);
    expect(r.status).toBe(0);
    expect(r.stderr).not.toMatch(RAW);
    expect(r.stderr).toMatch(/skipping .*elf\.json: corpus program ".*elf\.json" is not a corpus program file: binary data, not JSON text/);
    expect(r.stderr).toMatch(/skipping .*escapes\.json: .*not JSON \(.*\\u001b\[2J/);
  });
});
