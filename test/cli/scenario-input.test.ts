// `minivisor test` reads scenario files and the attack programs they name: one that is binary, not
// UTF-8 or not valid JSON/YAML is reported (ERROR line, exit 2) with the parser's message escaped
// and whole, and a scenario's name, printed and written to the JUnit XML, is one line of text.
import { describe, expect, it } from 'vitest';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { BUILT_FIRMWARE } from '../../src/boot/images.js';
import { capture } from '../helpers/captured-io.js';

// eslint-disable-next-line no-control-regex
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\ufffd]/;

async function errorLine(name: string, content: string | Buffer): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'minivisor-scenario-input-'));
  writeFileSync(join(dir, name), content);
  const io = capture();
  expect(await main(['test', dir], io)).toBe(2);
  expect(io.stdout.join('\n')).not.toMatch(RAW);
  const errors = io.stdout.filter((l) => l.startsWith('ERROR '));
  expect(errors).toHaveLength(1);
  return errors[0]!;
}

describe('minivisor test: scenario files that cannot be read', () => {
  it('an image named as a scenario is binary, not a scenario file (before: "must be a mapping", YAML took it for a string)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-scenario-input-'));
    copyFileSync(BUILT_FIRMWARE, join(dir, 'fw.scenario.yaml'));
    const io = capture();
    expect(await main(['test', dir], io)).toBe(2);
    expect(io.stdout[0]).toMatch(/^ERROR .*fw\.scenario\.yaml: scenario ".*fw\.scenario\.yaml" is not a scenario file: binary data, not YAML text \(it starts "\\x7fELF/);
  });

  it('bytes that are not UTF-8', async () => {
    expect(await errorLine('latin1.scenario.json', Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]))).toMatch(/is not a scenario file: not UTF-8 text \(it starts "\{\\"\\xe9\\":1\}"\)$/);
  });

  it('JSON that is not valid: the parser\'s whole message, its quoted excerpt escaped (before: cut at the excerpt\'s newline)', async () => {
    expect(await errorLine('bad.scenario.json', 'hello\n\x1b[2J')).toMatch(/bad\.scenario\.json: not valid JSON: Unexpected token 'h', "hello\\u000a\\u001b\[2J" is not valid JSON$/);
  });

  it('a name with a control character is refused (it is printed and written to the JUnit XML, which cannot hold one)', async () => {
    expect(await errorLine('n.scenario.json', JSON.stringify({ name: 'red\u001b[31m', boot: { platform: 'tdx' } }))).toMatch(/n\.scenario\.json: name "red\\u001b\[31m" must be one line of text without control characters$/);
  });

  it('an adversary file that is binary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-scenario-input-'));
    copyFileSync(BUILT_FIRMWARE, join(dir, 'attack.json'));
    writeFileSync(join(dir, 'a.scenario.json'), JSON.stringify({ boot: { platform: 'tdx' }, adversary: 'attack.json' }));
    const io = capture();
    expect(await main(['test', dir], io)).toBe(2);
    expect(io.stdout[0]).toMatch(/^ERROR .*a\.scenario\.json: .*a\.scenario\.json: adversary: attack program ".*attack\.json" is not an attack program file: binary data, not JSON text \(it starts "\\x7fELF/);
  });

  // Each of these was accepted before and ran the boot: a rounded seed passed with another seed
  // than written, the others failed (exit 1) however the guest ran, or printed a Node warning.
  it('a number past 2^53, unquoted, is refused rather than rounded (JSON and YAML)', async () => {
    expect(await errorLine('big.scenario.json', '{"boot":{"seed":12345678901234567890}}')).toMatch(/big\.scenario\.json: boot\.seed: 12345678901234567000 is past 2\^53, where a number is no longer exact: write it as a string/);
    expect(await errorLine('big.scenario.yaml', 'boot: { maxInstructions: 12345678901234567890 }\n')).toMatch(/big\.scenario\.yaml: boot\.maxInstructions: .* is past 2\^53/);
  });

  it('an expected outcome that no run has', async () => {
    expect(await errorLine('o.scenario.yaml', 'expect: { outcome: dne }\n')).toMatch(/o\.scenario\.yaml: expect\.outcome must be one of done, guest-fatal, terminated, vmm-error, fault, budget, handover, not "dne"$/);
  });

  it('acceptedBytes bounds no run can meet', async () => {
    expect(await errorLine('a.scenario.yaml', 'expect: { acceptedBytes: { min: 1G, max: 1M } }\n')).toMatch(/a\.scenario\.yaml: expect\.acceptedBytes: min 1073741824 is more than max 1048576$/);
  });

  it('a YAML tag the parser does not know (before: a Node "YAMLWarning" on stderr, and the tagged value taken as a string)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'minivisor-scenario-input-'));
    writeFileSync(join(dir, 't.scenario.yaml'), 'boot: { memory: !!foo 4G }\n');
    const io = capture();
    const warnings: unknown[] = [];
    const onWarning = (w: unknown) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      expect(await main(['test', dir], io)).toBe(2);
    } finally {
      process.off('warning', onWarning);
    }
    expect(io.stdout[0]).toMatch(/^ERROR .*t\.scenario\.yaml: not valid YAML: Unresolved tag: tag:yaml\.org,2002:foo at line 1, column 17:$/);
    expect(warnings).toEqual([]);
  });
});
