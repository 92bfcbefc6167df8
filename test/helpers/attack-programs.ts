// Scripted attacks as attack programs (src/fuzz/attack-program.ts): the same format the fuzzer
// mutates and writes into findings, so every defence test is also a replayable program. These
// builders turn "what the VMM does" into decisions and launch actions; `runAttack` executes one
// through the fuzzer's executor (a fresh launch, the program's decisions from `stage` on) and
// returns the outcome and the oracle's verdict.
import { parseBootOptions, type RawBootOptions } from '../../src/cli/boot-options.js';
import { loadBootImages } from '../../src/boot/images.js';
import { ABI, FW_CONFIG_GPA } from '../../src/boot/layout.js';
import type { E820Entry } from '../../src/boot/fw-config.js';
import type { AttackPlatform, AttackProgram, Decision, LaunchAction } from '../../src/fuzz/attack-program.js';
import type { Execution, FuzzStage, FuzzTarget } from '../../src/fuzz/executor.js';
import { executeFromLaunch } from '../../src/fuzz/launch-executor.js';

/** A lie repeated for as long as the guest asks. */
export const FOREVER = 1_000_000;

/** One launch write of `size` bytes of `value` into the initial image at `gpa`. */
export function imageWrite(gpa: bigint, value: bigint, size: 1 | 2 | 4 | 8): LaunchAction {
  return { kind: 'image-write', gpa, value: BigInt.asUintN(size * 8, value), size };
}

/** A write into the firmware config page (`offset` from its start). */
export function configWrite(offset: number | bigint, value: bigint, size: 1 | 2 | 4 | 8 = 8): LaunchAction {
  return imageWrite(FW_CONFIG_GPA + BigInt(offset), value, size);
}

/**
 * A struct mv_map_override in the config page (read only by the map-from-config fixture
 * firmware and the e820-unchecked variant): magic, count, accept unit, then the entries.
 */
export function mapOverride(e820: readonly Partial<E820Entry & { reserved: number }>[], opts: { count?: number; acceptUnit?: number } = {}): LaunchAction[] {
  const at = ABI.MV_MAP_OVERRIDE_OFFSET;
  const writes = [
    configWrite(at, ABI.MV_MAP_OVERRIDE_MAGIC, 4),
    configWrite(at + 4n, BigInt(opts.count ?? e820.length), 4),
    configWrite(at + 8n, BigInt(opts.acceptUnit ?? 0), 4),
  ];
  e820.forEach((e, i) => {
    const o = at + 16n + BigInt(i) * ABI.MV_E820_ENTRY_SIZE;
    writes.push(configWrite(o, e.addr ?? 0n), configWrite(o + 8n, e.size ?? 0n), configWrite(o + 16n, BigInt(e.type ?? 1), 4));
    if (e.reserved) writes.push(configWrite(o + 20n, BigInt(e.reserved), 4));
  });
  return writes;
}

const MAGIC = Buffer.from('MVL4', 'latin1');

/**
 * The compressed kernel's header (struct mv_payload_header) in the guest image the VMM loads:
 * its GPA and a read view of the bytes after it (so an edit can start from the real values).
 */
export function payloadHeader(flags: RawBootOptions = {}): { gpa: bigint; bytes: Buffer } {
  const images = loadBootImages(parseBootOptions({ memory: '128M', ...flags }));
  for (const s of images.guestImage.segments) {
    const data = Buffer.from(s.data.buffer, s.data.byteOffset, s.data.byteLength);
    // The magic is also an immediate in the decompressor's code: the header is the occurrence
    // followed by the kernel's load address.
    for (let at = data.indexOf(MAGIC); at >= 0; at = data.indexOf(MAGIC, at + 1)) {
      if (at + 40 <= data.length && data.readBigUInt64LE(at + 16) === ABI.MV_KERNEL_LOAD_GPA) return { gpa: s.gpa + BigInt(at), bytes: data.subarray(at) };
    }
  }
  throw new Error('no kernel payload header in the guest image');
}

export function program(platform: AttackPlatform, decisions: Decision[], launch: LaunchAction[] = []): AttackProgram {
  return launch.length > 0 ? { platform, decisions, launch } : { platform, decisions };
}

export interface AttackRun {
  execution: Execution;
  outcome: Execution['judgement']['outcome'];
}

/**
 * Runs `attack` on a fresh launch of the configuration `flags` describe (default 128 MiB, 4 MiB
 * workload), honestly up to `stage` and under the program from there (exit 0 = the stage's first
 * exit to the VMM).
 */
export function runAttack(attack: AttackProgram, flags: RawBootOptions = {}, stage: FuzzStage = 'all'): AttackRun {
  const config = parseBootOptions({ platform: attack.platform, memory: '128M', workload: '4M', ...flags });
  const target: FuzzTarget = {
    platform: config.platform, stage, memoryBytes: config.memoryBytes, workloadBytes: config.workloadBytes, preAccept: config.preAccept,
    accept: config.accept, unitBytes: config.unitBytes, guestSeed: config.seed, maxInstructions: config.maxInstructions,
    ...(config.variant !== undefined ? { variant: config.variant } : {}),
    ...(config.tracking !== undefined ? { tracking: config.tracking } : {}),
    ...(config.vcpus !== undefined ? { vcpus: config.vcpus } : {}),
  };
  const execution = executeFromLaunch(target, attack);
  return { execution, outcome: execution.judgement.outcome };
}
