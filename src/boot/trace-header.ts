// The first line of a --trace file: what wrote it (minivisor version, trace schema version) and
// the boot config it ran. Everything in it is a pure function of the config, so two runs of one
// config write identical files; the trace hash covers the events only (src/shared/trace.ts skips
// this line). The schema is documented in docs/trace-schema.md.
import type { BootConfig } from './boot-config.js';
import { minivisorVersion } from '../shared/version.js';

/** Bumped when an event's envelope or a documented field changes meaning. */
export const TRACE_SCHEMA_VERSION = 3;

export interface TraceHeader {
  type: 'minivisor-trace';
  schema: number;
  minivisor: string;
  config: Record<string, string | number | boolean>;
}

export function traceHeader(config: BootConfig): TraceHeader {
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  return {
    type: 'minivisor-trace',
    schema: TRACE_SCHEMA_VERSION,
    minivisor: minivisorVersion(),
    config: {
      platform: config.platform,
      memoryBytes: hex(config.memoryBytes),
      preAccept: config.preAccept === 'all' ? 'all' : hex(config.preAccept),
      accept: config.accept,
      unitBytes: hex(config.unitBytes),
      workloadBytes: hex(config.workloadBytes),
      seed: hex(config.seed),
      maxInstructions: hex(config.maxInstructions),
      countInstructions: config.countInstructions ?? true,
      ...(config.firmwareFile !== undefined ? { firmwareFile: config.firmwareFile } : {}),
      ...(config.decompressorFile !== undefined ? { decompressorFile: config.decompressorFile } : {}),
      ...(config.kernelFile !== undefined ? { kernelFile: config.kernelFile } : {}),
      ...(config.variant !== undefined ? { variant: config.variant } : {}),
      ...(config.vcpus !== undefined && config.vcpus > 1 ? { vcpus: config.vcpus } : {}),
      ...(config.schedule !== undefined ? { schedule: config.schedule.policy, quantum: config.schedule.quantum } : {}),
      ...(config.handover !== undefined ? { handover: config.handover } : {}),
      ...(config.linux !== undefined ? { linuxKernel: config.linux.kernelFile, linuxCmdline: config.linux.cmdline } : {}),
    },
  };
}
