// `npm run fuzz:host -- [--executions N] [--from I] [--children K] [--seed S] [--budget B] [--out DIR]`
// runs the host-robustness fuzzer (src/fuzz/host-campaign.ts) and prints one JSON report;
// `--replay FILE` runs a reproducer it wrote. Exit status 1 when there is a finding.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'fuzz', 'host-campaign.js');
if (!existsSync(dist)) {
  console.error(`host-fuzz: ${dist} is missing; run \`npm install\` first`);
  process.exit(2);
}
const { runHostFuzz, replayHostFinding } = await import(dist);
let args;
try {
  ({ values: args } = parseArgs({ options: {
    executions: { type: 'string', default: '1000' }, from: { type: 'string', default: '0' }, children: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' }, budget: { type: 'string', default: '20000' },
    out: { type: 'string', default: 'host-fuzz-findings' }, replay: { type: 'string' },
  } }));
} catch (err) {
  console.error(`host-fuzz: ${err.message}`);
  process.exit(2);
}
const integer = (name, text) => {
  if (!/^\d{1,19}$/.test(text)) { console.error(`host-fuzz: --${name} must be a non-negative integer`); process.exit(2); }
  return BigInt(text);
};
if (args.replay) {
  const f = JSON.parse(readFileSync(args.replay, 'utf8'));
  const verdict = await replayHostFinding(f.platform, f.minimisedHex || f.codeHex, BigInt(f.budget));
  console.log(`${f.kind} finding on ${f.platform}, execution ${f.index}: now ${verdict}`);
  process.exit(verdict.startsWith('ok') ? 0 : 1);
}
const report = await runHostFuzz({
  seed: integer('seed', args.seed), executions: Number(integer('executions', args.executions)), from: Number(integer('from', args.from)),
  children: Number(integer('children', args.children)) || 1, budget: integer('budget', args.budget),
  outDir: args.out, log: (line) => console.error(line),
});
console.log(JSON.stringify(report));
process.exit(report.findings.length ? 1 : 0);
