// A finding.json as the fuzzer writes it, for tests that need a finding without a campaign.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attackProgramToJsonValue, type AttackProgram } from '../../src/fuzz/attack-program.js';

/** A finding.json as the fuzzer writes it, for a program the honest stubs detect. */
export function handMadeFinding(dir: string): string {
  const program: AttackProgram = {
    platform: 'tdx',
    decisions: [{ at: 'call', point: 'tdx.mapGpa', occurrence: 0, repeat: 1_000_000, answer: { kind: 'map-gpa', convertBytes: 0n, status: 1n, resumeDelta: 0n } }],
  };
  const findingDir = join(dir, 'findings', 'double-acceptance-000000000000');
  mkdirSync(findingDir, { recursive: true });
  const file = join(findingDir, 'finding.json');
  writeFileSync(file, JSON.stringify({
    format: 'minivisor-finding', version: 1, id: 'double-acceptance-000000000000', category: 'double-acceptance', severity: 'high',
    summary: 's', detail: 'd', target: {
      platform: 'tdx', stage: 'all', memoryBytes: '0x8000000', workloadBytes: '0x100000', preAccept: '0x4000000', accept: 'lazy',
      unitBytes: '0x200000', guestSeed: '0x1', maxInstructions: '0x2faf080',
    }, seed: '0x1', job: 0, execIndex: 3, outcome: { outcome: 'done', reason: 'r' }, traceSha256: '0'.repeat(64),
    replay: `minivisor replay ${file}`, program: attackProgramToJsonValue(program), unshrunk: attackProgramToJsonValue(program),
  }));
  return file;
}

