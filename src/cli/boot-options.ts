// `minivisor boot` flags, validated into a BootConfig. Every bad value gets one clear message.
import { parseSize, SizeError, formatSize } from './size.js';
import { quoteForError } from '../shared/quote.js';
import { HANDOVERS, MAX_INSTRUCTION_BUDGET, MAX_MEMORY, MIN_MEMORY, type BootConfig, type Handover } from '../boot/boot-config.js';
import { ACCEPTANCE_TRACKINGS, isAcceptanceTracking, isStubVariant, MEMMAP_VARIANTS, STUB_VARIANTS } from '../boot/images.js';
import { MAX_VCPUS } from '../cpu/machine.js';
import { DEFAULT_QUANTUM, SCHEDULE_POLICIES, type SchedulePolicy } from '../cpu/vcpu-scheduler.js';
import { MASK64 } from '../shared/u64.js';

export interface RawBootOptions {
  platform?: string;
  memory?: string;
  preAccept?: string;
  accept?: string;
  unit?: string;
  workload?: string;
  seed?: string;
  maxInstructions?: string;
  trace?: string;
  json?: boolean;
  firmware?: string;
  decompressor?: string;
  kernel?: string;
  verify?: boolean;
  variant?: string;
  vcpus?: string;
  schedule?: string;
  quantum?: string;
  handover?: string;
  linux?: string;
  cmdline?: string;
  fast?: boolean;
  tracking?: string;
}

export class BootOptionError extends Error {
  override name = 'BootOptionError';
}

/**
 * The largest workload the stub kernel runs: its table holds MAX_CHUNKS (4096) allocations of
 * CHUNK_BYTES (1 MiB) (guest/kernel/main.c); a larger one ends the boot in workload_too_large.
 */
export const MAX_STUB_WORKLOAD = 4096n << 20n;
export const DEFAULT_MAX_INSTRUCTIONS = 2_000_000_000n;
/**
 * The decompressor prints through the serial port (earlyprintk; on TDX its port I/O is
 * TDVMCALL Instruction.IO), takes no random load address (nokaslr: the run stays deterministic
 * and the output lands at the launched load address) and stays in 4-level paging (no5lvl).
 */
export const DEFAULT_LINUX_CMDLINE = 'console=ttyS0 earlyprintk=serial,ttyS0,115200 nokaslr no5lvl';

function size(value: string, flag: string): bigint {
  try {
    return parseSize(value, flag);
  } catch (err) {
    if (err instanceof SizeError) throw new BootOptionError(err.message);
    throw err;
  }
}

function unsigned(value: string, flag: string, max: bigint): bigint {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(value.trim())) throw new BootOptionError(`${flag} ${quoteForError(value)} is not a non-negative integer`);
  const n = BigInt(value.trim());
  if (n > max) throw new BootOptionError(`${flag} ${quoteForError(value)} is larger than ${max}`);
  return n;
}

export function parseBootOptions(raw: RawBootOptions): BootConfig {
  const platform = raw.platform ?? 'tdx';
  if (platform !== 'tdx' && platform !== 'snp') throw new BootOptionError(`--platform must be tdx or snp, not ${quoteForError(platform)}`);
  const memoryBytes = size(raw.memory ?? '4G', '--memory');
  if (memoryBytes < MIN_MEMORY || memoryBytes > MAX_MEMORY) {
    throw new BootOptionError(`--memory must be between ${formatSize(MIN_MEMORY)} and ${formatSize(MAX_MEMORY)}, not ${quoteForError(raw.memory ?? '4G')}`);
  }
  if (memoryBytes % 4096n !== 0n) throw new BootOptionError(`--memory must be a multiple of 4K, not ${quoteForError(raw.memory ?? '4G')}`);
  // A Linux boot pre-accepts up to the kernel's usual load address (LOAD_PHYSICAL_ADDR, 16 MiB):
  // the VMM launches the kernel there, and the firmware must not accept it again.
  const preAcceptText = raw.preAccept ?? (raw.linux !== undefined ? '16M' : '64M');
  const preAccept = preAcceptText.trim().toLowerCase() === 'all' ? 'all' : size(preAcceptText, '--pre-accept');
  if (preAccept !== 'all' && preAccept > memoryBytes) throw new BootOptionError(`--pre-accept ${quoteForError(preAcceptText)} is larger than --memory`);
  if (preAccept !== 'all' && preAccept % 4096n !== 0n) throw new BootOptionError('--pre-accept must be a multiple of 4K');
  const accept = raw.accept ?? 'lazy';
  if (accept !== 'lazy' && accept !== 'eager') throw new BootOptionError(`--accept must be lazy or eager, not ${quoteForError(accept)}`);
  const unitText = (raw.unit ?? '2M').toUpperCase();
  if (unitText !== '4K' && unitText !== '2M') throw new BootOptionError(`--unit must be 4K or 2M, not ${quoteForError(raw.unit ?? '2M')}`);
  const unitBytes = size(unitText, '--unit');
  const workloadBytes = size(raw.workload ?? '64M', '--workload');
  if (workloadBytes % 4096n !== 0n) throw new BootOptionError('--workload must be a multiple of 4K');
  if (workloadBytes > memoryBytes / 2n) throw new BootOptionError(`--workload ${quoteForError(raw.workload ?? '64M')} must be at most half of --memory`);
  const seed = unsigned(raw.seed ?? '1', '--seed', MASK64);
  const maxInstructions = unsigned(raw.maxInstructions ?? DEFAULT_MAX_INSTRUCTIONS.toString(), '--max-instructions', MAX_INSTRUCTION_BUDGET);
  if (maxInstructions === 0n) throw new BootOptionError('--max-instructions must be at least 1');
  const config: BootConfig = { platform, memoryBytes, preAccept, accept, unitBytes, workloadBytes, seed, maxInstructions };
  if (raw.trace !== undefined) config.traceFile = raw.trace;
  if (raw.firmware !== undefined) config.firmwareFile = raw.firmware;
  if (raw.decompressor !== undefined) config.decompressorFile = raw.decompressor;
  if (raw.kernel !== undefined) config.kernelFile = raw.kernel;
  if (raw.variant !== undefined) {
    if (!isStubVariant(raw.variant)) throw new BootOptionError(`--variant must be one of ${Object.keys(STUB_VARIANTS).join(', ')}, not ${quoteForError(raw.variant)}`);
    config.variant = raw.variant;
  }
  const vcpus = Number(unsigned(raw.vcpus ?? '1', '--vcpus', BigInt(MAX_VCPUS)));
  if (vcpus < 1) throw new BootOptionError('--vcpus must be at least 1');
  const policy = raw.schedule ?? 'random';
  if (!(SCHEDULE_POLICIES as readonly string[]).includes(policy)) throw new BootOptionError(`--schedule must be one of ${SCHEDULE_POLICIES.join(', ')}, not ${quoteForError(policy)}`);
  const quantum = Number(unsigned(raw.quantum ?? String(DEFAULT_QUANTUM), '--quantum', 1n << 32n));
  if (quantum < 1) throw new BootOptionError('--quantum must be at least 1');
  if (vcpus > 1) {
    config.vcpus = vcpus;
    config.schedule = { policy: policy as SchedulePolicy, quantum };
  }
  if (raw.handover !== undefined) {
    if (!(HANDOVERS as readonly string[]).includes(raw.handover)) throw new BootOptionError(`--handover must be ${HANDOVERS.join(' or ')}, not ${quoteForError(raw.handover)}`);
    if (config.variant !== undefined) throw new BootOptionError('--handover boots the honest stubs: it cannot be combined with --variant');
    if (config.firmwareFile !== undefined) throw new BootOptionError('--handover boots the built firmware: it cannot be combined with --firmware');
    if (config.decompressorFile !== undefined || config.kernelFile !== undefined) throw new BootOptionError('--handover boots the built kernel with its handover: it cannot be combined with --decompressor or --kernel');
    if (config.vcpus !== undefined) throw new BootOptionError('--handover runs one vCPU: the kernel jumps to the next one with no APs to stop');
    // The second kernel's workload is twice the first's (guest/kernel/kexec.c), beside the first's memory.
    if (raw.handover === 'kexec' && workloadBytes > memoryBytes / 4n) throw new BootOptionError(`--workload ${quoteForError(raw.workload ?? '64M')} must be at most a quarter of --memory with --handover kexec: the second kernel's workload is twice it`);
    if (raw.handover === 'kexec' && 2n * workloadBytes > MAX_STUB_WORKLOAD) throw new BootOptionError(`--workload ${quoteForError(raw.workload ?? '64M')} must be at most ${formatSize(MAX_STUB_WORKLOAD / 2n)} with --handover kexec: the second kernel's workload is twice it, and the stub kernel runs at most ${formatSize(MAX_STUB_WORKLOAD)}`);
    config.handover = raw.handover as Handover;
  }
  if (raw.fast) {
    if (raw.maxInstructions !== undefined) throw new BootOptionError('--fast counts no instructions, so it takes no --max-instructions');
    config.countInstructions = false;
  }
  if (raw.cmdline !== undefined && raw.linux === undefined) throw new BootOptionError('--cmdline needs --linux');
  if (raw.linux !== undefined) {
    if (vcpus > 1) throw new BootOptionError('--linux boots one vCPU for now');
    if (raw.handover !== undefined) throw new BootOptionError('--handover hands the stub kernel to a second one; --linux boots a Linux kernel instead');
    if (raw.variant !== undefined) throw new BootOptionError('--variant selects a stub guest image; --linux boots a kernel instead');
    config.linux = { kernelFile: raw.linux, cmdline: raw.cmdline ?? DEFAULT_LINUX_CMDLINE };
  }
  // Only our kernel runs the workload (not one of --kernel's, nor Linux).
  if (config.kernelFile === undefined && config.linux === undefined && workloadBytes > MAX_STUB_WORKLOAD) {
    throw new BootOptionError(`--workload ${quoteForError(raw.workload ?? '64M')} must be at most ${formatSize(MAX_STUB_WORKLOAD)}: the stub kernel's workload table holds 4096 allocations of 1M`);
  }
  if (raw.tracking !== undefined) {
    if (!isAcceptanceTracking(raw.tracking)) throw new BootOptionError(`--tracking must be one of ${ACCEPTANCE_TRACKINGS.join(', ')}, not ${quoteForError(raw.tracking)}`);
    // 'bitmap' is the default build: leave the field out so the config (and its trace) is the default's.
    if (raw.tracking === 'memmap') {
      if (config.variant !== undefined && !MEMMAP_VARIANTS.includes(config.variant)) {
        throw new BootOptionError(`--tracking memmap is built with --variant ${MEMMAP_VARIANTS.join(' or ')} only, not "${config.variant}"`);
      }
      // Kleen's design keeps the kernel's record private ("doesn't need to be visible in any outside
      // interfaces"): there is no guest record for --verify to compare with the hardware.
      if (raw.verify) throw new BootOptionError('--verify reads the acceptance bitmap; --tracking memmap keeps the kernel\'s record private, so there is nothing to compare');
      // Both memmap stages come as one build; replacing one would pair it with a bitmap stage.
      if (config.decompressorFile !== undefined || config.kernelFile !== undefined) throw new BootOptionError('--tracking memmap boots our memmap decompressor and kernel together: it does not take --decompressor or --kernel');
      // The memmap kernel's private state has no accepting_list: one CPU accepts.
      if (config.vcpus !== undefined) throw new BootOptionError('--tracking memmap runs on one vCPU: its private record has no accepting_list yet');
      if (config.handover !== undefined || config.linux !== undefined) throw new BootOptionError('--tracking memmap boots our memmap stubs: it does not take --handover or --linux');
      config.tracking = 'memmap';
    }
  }
  return config;
}
