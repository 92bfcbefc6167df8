// BootSession (src/boot/boot-session.ts), the booted VM that `boot` runs once and the fuzzer runs
// many times: what its callers are promised besides snapshots (snapshot.test.ts): the config is
// checked, console lines and stage announcements reach them as the guest printed them, the trace
// counts instructions, and several vCPUs run the schedule the config asks for.
import { describe, expect, it } from 'vitest';
import { BootSession } from '../../../src/boot/boot-session.js';
import { BootConfigError, type BootConfig } from '../../../src/boot/boot-config.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { HonestSnpVmm } from '../../../src/vmm/snp/honest-vmm.js';

const small = { memory: '128M', workload: '4M' } as const;

describe.each(['tdx', 'snp'] as const)('%s boot session', (platform) => {
  const config = parseBootOptions({ platform, ...small });

  it('refuses a config with a misspelt field before building anything', () => {
    // A JavaScript caller's `vcpu` for `vcpus` must not boot one vCPU silently.
    const typo = { ...config, vcpu: 4 } as unknown as BootConfig;
    expect(() => BootSession.create(typo)).toThrow(BootConfigError);
    expect(() => BootSession.create(typo)).toThrow(/"vcpu"/);
  });

  it('hands each console line over as printed, without its newline, and announces each stage once, at its trace event', () => {
    const lines: string[] = [];
    const announced: Array<{ stage: string; type: unknown; eventStage: unknown }> = [];
    let session: BootSession | undefined;
    session = BootSession.create(config, {
      keepTrace: true,
      consoleLine: (line) => lines.push(line),
      onStageEntered: (stage, seq) => {
        const event = session!.trace.events[seq] as unknown as Record<string, unknown>;
        announced.push({ stage, type: event.type, eventStage: event.stage });
      },
    });
    try {
      const { outcome } = session.finish();
      expect(outcome.outcome).toBe('done');
      // The console the guest printed, line by line.
      expect(lines.length).toBeGreaterThan(3);
      expect(lines.every((l) => !l.includes('\n'))).toBe(true);
      expect(lines.join('\n') + '\n').toBe(session.platform.console.text);
      // docs/trace-schema.md: one `stage` event where the guest entered a stage, and the callback's
      // seq is that event.
      const stageEvents = session.trace.events.filter((e) => e.type === 'stage').map((e) => e.stage);
      expect(stageEvents).toEqual(['firmware', 'decompressor', 'kernel']);
      expect(announced).toEqual(['firmware', 'decompressor', 'kernel'].map((stage) => ({ stage, type: 'stage', eventStage: stage })));
    } finally {
      session.platform.machine.close();
    }
  });

  it('stamps trace events with the guest instructions retired (icount), up to the run\'s count', () => {
    const session = BootSession.create(config, { keepTrace: true });
    try {
      session.finish();
      const icounts = session.trace.events.map((e) => e.icount as bigint);
      const last = icounts[icounts.length - 1]!;
      expect(last).toBeGreaterThan(0n);
      expect(last).toBeLessThanOrEqual(session.platform.machine.vcpu.instructions);
      // Never backwards (one vCPU).
      expect(icounts.every((v, i) => i === 0 || v >= icounts[i - 1]!)).toBe(true);
    } finally {
      session.platform.machine.close();
    }
  });

  it('a run stopped by the budget explains itself with the guest\'s last console line', () => {
    // README "Reading the output": the failure names the stage and its lastConsoleLine then.
    const run = bootGuest(parseBootOptions({ platform, ...small, maxInstructions: '300000' }));
    run.platform.machine.close();
    expect(run.result.outcome).toBe('budget');
    const printed = run.result.console.split('\n').filter((l) => l.trim() !== '');
    expect(printed.length).toBeGreaterThan(0);
    expect(run.result.failure?.lastConsoleLine).toBe(printed[printed.length - 1]);
  });

  it('with several vCPUs, runs the schedule the config asks for, seeded by its seed', () => {
    const session = BootSession.create(parseBootOptions({ platform, ...small, vcpus: '2', seed: '9', schedule: 'pct', quantum: '700' }));
    try {
      expect(session.platform.scheduler?.options).toMatchObject({ policy: 'pct', seed: 9n, quantum: 700 });
    } finally {
      session.platform.machine.close();
    }
  });
});

describe('the outcome follows what the guest said on its console (the @mv protocol, boot_abi.h)', () => {
  // The console reaches the boot through the VMM; an honest SNP VMM whose console rewrites one
  // line stands in for a guest that said something else there. README: the outcome is `done`
  // only after the guest's own "@mv done"; a guest that merely halts is guest-fatal.
  const config = parseBootOptions({ platform: 'snp', ...small });
  const rewriting = (from: string, to: string[]) => ({
    snp: (echo: (line: string) => void) => new HonestSnpVmm({
      echo: (line: string) => { for (const l of line === `${from}\n` ? to : [line]) echo(l); },
    }),
  });
  const finish = (vmm: ReturnType<typeof rewriting>) => {
    const session = BootSession.create(config, { vmm });
    try {
      return session.finish();
    } finally {
      session.platform.machine.close();
    }
  };

  it('"@mv fatal <reason>" in place of done: guest-fatal with the guest\'s reason', () => {
    const { outcome, report } = finish(rewriting('@mv done', ['@mv fatal bitmap lost\n']));
    expect(report.fatal).toBe('bitmap lost');
    expect(outcome).toEqual({ outcome: 'guest-fatal', reason: 'bitmap lost' });
  });

  it('malformed protocol lines before done: guest-fatal, naming the console protocol and the first bad line', () => {
    const { outcome, report } = finish(rewriting('@mv done', ['@mv stat cpus many\n', '@mv bogus\n', '@mv done\n']));
    expect(report.done).toBe(true);
    expect(report.errors.length).toBe(2);
    expect(report.errors[0]).toContain('@mv stat cpus many');
    expect(outcome.outcome).toBe('guest-fatal');
    expect(outcome.reason).toBe(`console protocol: ${report.errors[0]}`);
  });

  it('a guest that said fatal, then a VMM that stopped the run: the outcome is the VMM\'s, as the run ended', () => {
    const snp = (echo: (line: string) => void) => {
      const honest = new HonestSnpVmm({ echo: (line: string) => echo(line === '@mv done\n' ? '@mv fatal no workload\n' : line) });
      return {
        onNpf: honest.onNpf.bind(honest), onVmgexit: honest.onVmgexit.bind(honest), console: honest.console,
        onHlt: () => ({ outcome: 'vmm-error' as const, reason: 'the VMM stops the guest at its halt' }),
      };
    };
    const session = BootSession.create(config, { vmm: { snp } });
    try {
      const { outcome, report } = session.finish();
      expect(report.fatal).toBe('no workload');
      expect(outcome).toEqual({ outcome: 'vmm-error', reason: 'the VMM stops the guest at its halt' });
    } finally {
      session.platform.machine.close();
    }
  });

  it('a run that ends before the stage asked for reports the outcome finish() would', () => {
    // The fuzzer's launch executor runs to a stage and takes this outcome when the run ends first.
    const vmm = rewriting('@mv stage kernel', ['@mv fatal no kernel\n']);
    const session = BootSession.create(config, { vmm });
    try {
      const ended = session.runToStageOrEnd('kernel');
      expect(ended).toMatchObject({ kind: 'ended', outcome: { outcome: 'guest-fatal', reason: 'no kernel' } });
    } finally {
      session.platform.machine.close();
    }
    expect(finish(vmm).outcome).toEqual({ outcome: 'guest-fatal', reason: 'no kernel' });
  });

  it('the report finish() returns is the caller\'s: a restore and another run leave it as it was', () => {
    const session = BootSession.create(config);
    try {
      expect(session.runToStage('kernel')).toBe(true);
      const atKernel = session.snapshot();
      const first = session.finish();
      const copy = structuredClone(first.report);
      expect(first.report.done).toBe(true);
      session.restore(atKernel);
      expect(first.report).toEqual(copy);
      session.finish();
      session.restore(atKernel);
      expect(first.report).toEqual(copy);
    } finally {
      session.platform.machine.close();
    }
  });
});
