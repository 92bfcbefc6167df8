// Stop signals (src/cli/stop-signals.ts) as a long command meets them: the first SIGINT, SIGTERM or
// SIGHUP asks the work to stop and is reported once; a second one removes the temporary files being
// written and ends the process by that second signal; stop() gives the signals back to their
// default action. Each case runs the built module in a node process of its own and signals it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STOP_SIGNALS, stopSignalNumber, type StopSignal } from '../../src/cli/stop-signals.js';

/**
 * Runs `body` (JavaScript, with `catchStopSignals`, `removeTempsOnStopSignals`, `OutputFile`,
 * `say(text)` writing a line to stdout at once, and `dir`, an empty directory) in a node process
 * kept alive until a signal ends it. Killed (SIGKILL) if it is still running after 20 s.
 */
function runScript(body: string) {
  const dir = mkdtempSync(join(tmpdir(), 'minivisor-stop-signals-'));
  const script = `
    const { writeSync } = require('node:fs');
    const say = (text) => writeSync(1, text + '\\n');
    const dir = process.argv[1];
    Promise.all([import('./dist/cli/stop-signals.js'), import('./dist/shared/output-file.js'), import('./dist/native/binding.js')])
      .then(([{ catchStopSignals, removeTempsOnStopSignals }, { OutputFile }, { addon }]) => {
        setInterval(() => {}, 1000);
        ${body}
      });`;
  const r = spawnSync(process.execPath, ['-e', script, dir], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
  return { ...r, dir };
}

describe('the stop signals', () => {
  it('are SIGHUP, SIGINT and SIGTERM, each ending a command with the shell\'s status for it, 128 + its number', () => {
    expect(Object.keys(STOP_SIGNALS).sort()).toEqual(['SIGHUP', 'SIGINT', 'SIGTERM']);
    for (const name of Object.keys(STOP_SIGNALS) as StopSignal[]) {
      expect(stopSignalNumber(name)).toBe(constants.signals[name]);
      expect(STOP_SIGNALS[name]).toBe(128 + constants.signals[name]);
    }
  });
});

describe('catchStopSignals', () => {
  it.each([
    ['SIGHUP', 'SIGINT'],
    ['SIGTERM', 'SIGHUP'],
    ['SIGINT', 'SIGTERM'],
  ] as const)('the first %s is reported once and stops the work; a second signal, %s, ends the process by itself', (first, second) => {
    const r = runScript(`
      const controller = new AbortController();
      const signals = catchStopSignals(controller, (name) => say('first ' + name));
      controller.signal.addEventListener('abort', () => {
        say('stopping; received ' + signals.signal());
        process.kill(process.pid, '${second}');
      });
      process.kill(process.pid, '${first}');`);
    expect(r.stdout).toBe(`first ${first}\nstopping; received ${first}\n`);
    expect([r.status, r.signal]).toEqual([null, second]);
  });

  it('the second signal removes the temporary file being written, and its output is never made', () => {
    const r = runScript(`
      const out = new OutputFile(dir + '/result.json', 'result', []);
      out.write('half of it');
      const controller = new AbortController();
      catchStopSignals(controller, () => {});
      controller.signal.addEventListener('abort', () => process.kill(process.pid, 'SIGTERM'));
      process.kill(process.pid, 'SIGTERM');`);
    expect([r.status, r.signal]).toEqual([null, 'SIGTERM']);
    expect(readdirSync(r.dir)).toEqual([]);
  });

  it('stop() gives the signals back to their default action: the next one ends the process, unreported', () => {
    const r = runScript(`
      const signals = catchStopSignals(new AbortController(), (name) => say('first ' + name));
      signals.stop();
      process.kill(process.pid, 'SIGHUP');`);
    expect(r.stdout).toBe('');
    expect([r.status, r.signal]).toEqual([null, 'SIGHUP']);
  });
});

describe('removeTempsOnStopSignals', () => {
  it('leaves a signal with a JavaScript listener to it: the file being written stays, and the command finishes it', () => {
    const r = runScript(`
      const controller = new AbortController();
      const signals = catchStopSignals(controller, () => {});
      removeTempsOnStopSignals();
      const out = new OutputFile(dir + '/result.json', 'result', []);
      out.write('all of it');
      controller.signal.addEventListener('abort', () => {
        out.commit();
        signals.stop();
        say(require('node:fs').readFileSync(dir + '/result.json', 'utf8'));
        process.exit(0);
      });
      process.kill(process.pid, 'SIGINT');`);
    expect(r.stderr).toBe('');
    expect([r.status, r.signal]).toEqual([0, null]);
    expect(r.stdout).toBe('all of it\n');
    expect(readFileSync(join(r.dir, 'result.json'), 'utf8')).toBe('all of it');
  });

  it('with an addon built before SIGHUP was a stop signal (it refuses that number), guards the others', () => {
    // That addon's removeOnStopSignal threw a TypeError for any signal but SIGINT and SIGTERM.
    const r = runScript(`
      const native = addon();
      const guard = native.removeOnStopSignal;
      native.removeOnStopSignal = function (paths, signals) {
        if (signals.includes(${constants.signals.SIGHUP})) throw new TypeError('expected removeOnStopSignal(paths: string[], signals: number[])');
        return guard.call(this, paths, signals);
      };
      removeTempsOnStopSignals();
      const out = new OutputFile(dir + '/result.json', 'result', []);
      out.write('half of it');
      say('writing');
      process.kill(process.pid, 'SIGINT');`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('writing\n');
    expect([r.status, r.signal]).toEqual([null, 'SIGINT']);
    expect(readdirSync(r.dir)).toEqual([]);
  });
});
