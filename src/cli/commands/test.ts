// `minivisor test [FILES|DIRS]`: runs scenario files (src/cli/scenario.ts), one line each and a
// summary; --junit FILE writes a JUnit XML report, --update rewrites golden files. Exit status 0
// when every scenario passed, 1 when one failed, 2 for unusable arguments or scenario files.
import { Command } from 'commander';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CliIo } from '../io.js';
import { loadScenario, runScenario, ScenarioError, SCENARIO_FILE, type ScenarioResult } from '../scenario.js';
import { OutputFile, OutputFileError } from '../../shared/output-file.js';
import { GuestImageError } from '../../boot/images.js';

/** Scenario files under the arguments, each directory walked in name order. */
export function scenarioFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walk = (path: string, explicit: boolean) => {
    let st;
    try {
      st = statSync(path);
    } catch {
      throw new ScenarioError(`${path} does not exist`);
    }
    if (st.isDirectory()) {
      for (const entry of readdirSync(path).sort()) walk(join(path, entry), false);
    } else if (explicit || SCENARIO_FILE.test(path)) {
      out.push(path);
    }
  };
  for (const p of paths) walk(p, true);
  return out;
}

const xml = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!)
  // eslint-disable-next-line no-control-regex
  .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');

export function junitReport(results: ScenarioResult[]): string {
  const failed = results.filter((r) => !r.passed).length;
  const cases = results.map((r) => {
    const head = `  <testcase classname="minivisor.scenarios" name="${xml(r.scenario.name)}" file="${xml(r.scenario.file)}"`;
    if (r.passed) return `${head}/>`;
    return `${head}>\n    <failure message="${xml(r.failures[0]!.split('\n')[0]!)}">${xml(r.failures.join('\n'))}</failure>\n  </testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="minivisor" tests="${results.length}" failures="${failed}" errors="0">\n${cases.join('\n')}\n</testsuite>\n`;
}

export function testCommand(io: CliIo): Command {
  return new Command('test')
    .description('run scenario files (*.scenario.json|yaml|yml): boot, then check outcome, acceptance, verify and golden traces')
    .argument('[paths...]', 'scenario files or directories', ['scenarios'])
    .option('--junit <file>', 'also write a JUnit XML report')
    .option('--update', 'rewrite golden files that differ (review the diff before committing)')
    .action((paths: string[], opts: { junit?: string; update?: boolean }) => {
      let files: string[];
      try {
        files = scenarioFiles(paths);
        if (files.length === 0) throw new ScenarioError(`no scenario files (*.scenario.json, *.scenario.yaml) under ${paths.join(', ')}`);
      } catch (err) {
        if (!(err instanceof ScenarioError)) throw err;
        io.err(`minivisor test: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      const results: ScenarioResult[] = [];
      let unusable = 0;
      for (const file of files) {
        try {
          const result = runScenario(loadScenario(file), { update: opts.update ?? false });
          results.push(result);
          const mark = result.passed ? 'PASS' : 'FAIL';
          io.out(`${mark}  ${result.scenario.name}  (${result.summary}${result.updated ? '; golden updated' : ''})`);
          for (const f of result.failures) io.out(f.split('\n').map((l) => `      ${l}`).join('\n'));
        } catch (err) {
          if (!(err instanceof ScenarioError || err instanceof GuestImageError || err instanceof OutputFileError)) throw err;
          unusable++;
          io.out(`ERROR ${file}: ${err.message}`);
        }
      }
      const failed = results.filter((r) => !r.passed).length;
      io.out(`\n${results.length - failed} passed, ${failed} failed${unusable ? `, ${unusable} unusable` : ''} (${files.length} scenario files)`);
      if (opts.junit !== undefined) {
        const out = new OutputFile(opts.junit, 'JUnit report', files);
        out.write(junitReport(results));
        out.commit();
      }
      io.exitCode = unusable ? 2 : failed ? 1 : 0;
    });
}
