// `minivisor test [FILES|DIRS]`: runs scenario files (src/cli/scenario.ts), one line each and a
// summary; --junit FILE writes a JUnit XML report, --update rewrites golden files. Exit status 0
// when every scenario passed, 1 when one failed, 2 for unusable arguments or scenario files.
import { Command } from 'commander';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { CliIo } from '../io.js';
import { loadScenario, runScenario, ScenarioError, SCENARIO_FILE, type Scenario, type ScenarioResult } from '../scenario.js';
import { OutputFile, OutputFileError } from '../../shared/output-file.js';
import { GuestImageError } from '../../boot/images.js';
import { quoteForError } from '../../shared/quote.js';
import { removeTempsOnStopSignals } from '../stop-signals.js';

/**
 * Scenario files under the arguments, each directory walked in name order, once: a symlink back to
 * a folder already walked is skipped (two links to `..` made the walk double at every level until
 * the path was too long, which then ended the run as "does not exist").
 */
export function scenarioFiles(paths: string[]): string[] {
  const out: string[] = [];
  const walked = new Set<string>();
  const walk = (path: string, explicit: boolean) => {
    let st;
    try {
      st = statSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Inside a folder, an entry that cannot be read (a dangling link) is skipped unless it is named as a scenario.
      if (!explicit && !SCENARIO_FILE.test(path)) return;
      throw new ScenarioError(code === 'ENOENT' ? `${quoteForError(path)} does not exist` : `cannot read ${quoteForError(path)}: ${code ?? String(err)}`);
    }
    if (st.isDirectory()) {
      const id = `${st.dev}:${st.ino}`;
      if (walked.has(id)) return;
      walked.add(id);
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
        if (files.length === 0) throw new ScenarioError(`no scenario files (*.scenario.json, *.scenario.yaml) under ${paths.map(quoteForError).join(', ')}`);
      } catch (err) {
        if (!(err instanceof ScenarioError)) throw err;
        io.err(`minivisor test: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      // Every scenario is loaded first, so the files they all read are known before anything is
      // written: no golden (--update) and no --junit report may overwrite one of them.
      const loaded: Array<{ file: string; scenario?: Scenario; error?: string }> = files.map((file) => {
        try {
          return { file, scenario: loadScenario(file) };
        } catch (err) {
          if (!(err instanceof ScenarioError)) throw err;
          return { file, error: err.message };
        }
      });
      const inputs = [...new Set([...files, ...loaded.flatMap((l) => l.scenario?.inputs ?? [])])];
      const goldens = loaded.flatMap((l) => (l.scenario?.expect.golden !== undefined ? [l.scenario.expect.golden] : []));
      if (opts.update) {
        // Two scenarios with one golden: --update rewrote it for each in turn, so the last one's
        // trace stayed and the others failed on the next run. Neither is run, nothing is written.
        const byGolden = new Map<string, string[]>();
        for (const l of loaded) if (l.scenario?.expect.golden !== undefined) byGolden.set(l.scenario.expect.golden, [...(byGolden.get(l.scenario.expect.golden) ?? []), l.file]);
        for (const l of loaded) {
          const sharing = l.scenario?.expect.golden !== undefined ? byGolden.get(l.scenario.expect.golden)! : [];
          if (sharing.length < 2) continue;
          l.error = `${l.file}: with --update, its golden ${quoteForError(l.scenario!.expect.golden!)} is also that of ${sharing.filter((f) => f !== l.file).map(quoteForError).join(', ')}, and each would rewrite it: give each scenario its own golden`;
          delete l.scenario;
        }
      }
      let junit: OutputFile | undefined;
      removeTempsOnStopSignals();
      try {
        if (opts.junit !== undefined) junit = new OutputFile(opts.junit, 'JUnit report', [...inputs, ...goldens]);
      } catch (err) {
        if (!(err instanceof OutputFileError)) throw err;
        io.err(`minivisor test: ${err.message}`);
        io.exitCode = 2;
        return;
      }
      const results: ScenarioResult[] = [];
      let unusable = 0;
      let failed = 0;
      try {
        for (const { file, scenario, error } of loaded) {
          try {
            if (scenario === undefined) throw new ScenarioError(error!);
            const result = runScenario(scenario, { update: opts.update ?? false, inputs });
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
        failed = results.filter((r) => !r.passed).length;
        io.out(`\n${results.length - failed} passed, ${failed} failed${unusable ? `, ${unusable} unusable` : ''} (${files.length} scenario files)`);
        if (junit !== undefined) {
          junit.write(junitReport(results));
          junit.commit();
        }
      } catch (err) {
        if (!(err instanceof OutputFileError)) throw err;
        io.err(`minivisor test: ${err.message}${junit?.isOpen ? ` (${junit.abandon()})` : ''}`);
        io.exitCode = 1;
        return;
      } finally {
        if (junit?.isOpen) junit.abandon();
      }
      io.exitCode = unusable ? 2 : failed ? 1 : 0;
    });
}
