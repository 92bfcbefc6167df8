// The real x86 decompressor of Debian's cloud kernel under the TDX and SEV-SNP models, to the
// hand-over into the kernel it decompressed (issue 15). Part of `npm test`: beforeAll fetches the kernel into
// .linux/ when it is not there yet (scripts/linux-kernel.mjs, about 14 MB from a Debian mirror,
// as the browser test fetches Chromium), and a fetch that fails fails the file, saying why: CI
// reaches Debian's mirrors, so a missing kernel is a broken setup, not a reason to skip. The runs
// are in fast mode (no instruction count): nothing checked here depends on the count.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureLinuxKernel, type LocalKernel } from '../../scripts/linux-kernel.mjs';
import { bootGuest } from '../../src/boot/boot-guest.js';
import type { BootConfig } from '../../src/boot/boot-config.js';
import { parseBzImage, Xlf } from '../../src/boot/linux/bzimage.js';
import { DEFAULT_LINUX_CMDLINE } from '../../src/cli/boot-options.js';
import { honestTdxPolicy, type TdxVmmPolicy } from '../../src/vmm/tdx/honest-vmm.js';
import type { TdxPlatform } from '../../src/platform/tdx/tdx-platform.js';

const M = 0x100000n;
let kernel: LocalKernel;

beforeAll(() => {
  kernel = ensureLinuxKernel((m) => console.log(`fetch-linux: ${m}`));
}, 300_000);

function linuxConfig(overrides: Partial<BootConfig> = {}): BootConfig {
  return {
    platform: 'tdx', memoryBytes: 512n * M, preAccept: 16n * M, accept: 'lazy', unitBytes: 2n * M, workloadBytes: 0n, seed: 1n,
    maxInstructions: 0n, countInstructions: false, linux: { kernelFile: kernel.vmlinuz, cmdline: DEFAULT_LINUX_CMDLINE }, ...overrides,
  };
}

// Each boot of the real kernel takes ~20 s alone and up to a minute with the suite's other files on
// two cores: a hang guard, not a timing assertion (vitest.config's 60 s was hit under load).
const REAL_KERNEL_TIMEOUT_MS = 240_000;

describe("the fetched Debian cloud kernel's bzImage", () => {
  it('is a relocatable 64-bit bzImage whose header is consistent', () => {
    const image = parseBzImage(readFileSync(kernel.vmlinuz));
    expect(image.protocol).toBeGreaterThanOrEqual(0x20c);
    expect(image.relocatable).toBe(true);
    expect(image.xloadflags & Xlf.KERNEL_64).toBe(Xlf.KERNEL_64);
    expect(image.initSize).toBeGreaterThan(BigInt(image.kernel.byteLength));
    expect(image.version.startsWith(kernel.abi)).toBe(true);
  });
});

describe("Debian's cloud kernel on TDX", () => {
  it('decompresses under TDX, accepting exactly the units its table marks, and reaches the kernel entry', () => {
    const run = bootGuest(linuxConfig());
    try {
      expect(run.result.outcome, run.result.outcomeReason).toBe('handover');
      const linux = run.linux!;
      const plan = run.session.images.linux!.plan;
      // The jump lands in the decompression output, below the decompressor's own working area.
      expect(linux.handoverRip).toBeGreaterThanOrEqual(plan.loadAddress);
      expect(linux.handoverRip).toBeLessThan(plan.workRange.start);
      // It printed through the serial port (TDVMCALL Instruction.IO on TDX).
      expect(run.result.console).toContain("KASLR disabled: 'nokaslr' on cmdline.");
      expect(run.result.console).not.toContain('\x01'); // the UART's divisor latch is not output
      // Its accept_memory() accepted the output buffer the launch left unaccepted, in 2 MiB units,
      // and cleared exactly those bits; no call failed and no #VE was needed.
      // misc.c's accept_memory(__pa(output), needed_size) covers the output buffer from the load
      // address; the launch accepted the kernel's own bytes below it and the working area above,
      // so what is left to accept is exactly the units between them (14 × 2 MiB for 7.2.12).
      expect(linux.accepted).toEqual([{ start: plan.kernelRange.end, end: plan.workRange.start }]);
      expect(linux.acceptCalls.length).toBe(Number((plan.workRange.start - plan.kernelRange.end) / (2n * M)));
      expect(linux.acceptCalls.every((c) => c.bytes === 2n * M && c.status === 0n)).toBe(true);
      // Each accept first exited to the VMM, which added the page (TDH.MEM.PAGE.AUG) on demand.
      expect(linux.acceptTdExits).toBe(linux.acceptCalls.length);
      expect(linux.acceptedWasMarkedUnaccepted).toBe(true);
      expect(linux.bitmapClearedExactly).toBe(true);
      expect(linux.failedAcceptCalls).toBe(0);
      expect(linux.virtualizationExceptions).toEqual({});
      expect(run.result.acceptedBytes.decompressor).toBe(Number(linux.accepted.reduce((s, r) => s + (r.end - r.start), 0n)));
      // Launched as QEMU launches a TD (tdx.c tdx_guest_init): ATTRIBUTES.SEPT_VE_DISABLE, bit 28
      // in the TDX module ABI, which the kernel's tdx_early_init insists on.
      const td = run.platform.vm.platform as TdxPlatform;
      expect(td.module.config.attributes & (1n << 28n)).toBe(1n << 28n);
    } finally {
      run.platform.machine.close();
    }
  }, REAL_KERNEL_TIMEOUT_MS);
});

describe("Debian's cloud kernel with KASLR", () => {
  // Without nokaslr the decompressor picks its output from the EFI memory map's conventional and
  // unaccepted regions (kaslr.c process_efi_entries) with RDRAND and RDTSC, which the CPU model
  // answers from the seed: the choice repeats with the seed and moves with it.
  const kaslr = (seed: bigint) => bootGuest(linuxConfig({ seed, linux: { kernelFile: kernel.vmlinuz, cmdline: DEFAULT_LINUX_CMDLINE.replace(' nokaslr', '') } }));
  it('decompresses to a seeded random address in unaccepted memory, accepts exactly the units there, and reaches that kernel', () => {
    const runs = [kaslr(1n), kaslr(1n), kaslr(2n)];
    try {
      const [one, again, other] = runs.map((r) => r.linux!);
      for (const r of runs) expect(r.result.outcome, r.result.outcomeReason).toBe('handover');
      const plan = runs[0]!.session.images.linux!.plan;
      expect(runs[0]!.result.console).not.toContain('KASLR disabled');
      // The output lies above the kernel's own buffer (kaslr.c avoids [input, output + init_size)).
      expect(one!.accepted.length).toBe(1);
      const output = one!.accepted[0]!;
      expect(output.start).toBeGreaterThanOrEqual(plan.workRange.end);
      expect(one!.handoverRip).toBeGreaterThanOrEqual(output.start);
      expect(one!.handoverRip).toBeLessThan(output.end);
      expect(one!.acceptCalls.every((c) => c.bytes === 2n * M && c.status === 0n)).toBe(true);
      expect(one!.acceptedWasMarkedUnaccepted).toBe(true);
      expect(one!.bitmapClearedExactly).toBe(true);
      // The same seed, the same address and trace; another seed, another address.
      expect(again!.accepted).toEqual(one!.accepted);
      expect(runs[1]!.result.traceSha256).toBe(runs[0]!.result.traceSha256);
      expect(other!.accepted[0]!.start).not.toBe(output.start);
    } finally {
      for (const r of runs) r.platform.machine.close();
    }
  }, REAL_KERNEL_TIMEOUT_MS);
});

describe("Debian's cloud kernel on SEV-SNP", () => {
  it('finds the CC blob, runs with its GHCB, validates exactly the units its table marks with PVALIDATE, and reaches the kernel entry', () => {
    const run = bootGuest(linuxConfig({ platform: 'snp' }));
    try {
      expect(run.result.outcome, run.result.outcomeReason).toBe('handover');
      const linux = run.linux!;
      const plan = run.session.images.linux!.plan;
      expect(linux.platform).toBe('snp');
      expect(linux.handoverRip).toBeGreaterThanOrEqual(plan.loadAddress);
      expect(linux.handoverRip).toBeLessThan(plan.workRange.start);
      // sev_enable() found the CC blob and its CPUID page, the SEV status MSR and the GHCB MSR
      // protocol; its console goes through the GHCB page it made shared (IOIO exits).
      expect(run.result.console).toContain("KASLR disabled: 'nokaslr' on cmdline.");
      expect(linux.virtualizationExceptions['0x7b']).toBeGreaterThan(0);
      // snp_accept_memory(): per 4 KiB page, a page-state change to private (GHCB MSR protocol)
      // then PVALIDATE, over the same units the TDX run accepts in 2 MiB.
      expect(linux.accepted).toEqual([{ start: plan.kernelRange.end, end: plan.workRange.start }]);
      expect(linux.acceptCalls.length).toBe(Number((plan.workRange.start - plan.kernelRange.end) / 0x1000n));
      expect(linux.acceptCalls.every((c) => c.bytes === 0x1000n && c.status === 0n)).toBe(true);
      // Its GHCB page came back private at the end (sev_es_shutdown_ghcb): one more change, one re-validation.
      expect(linux.revalidated.length).toBe(1);
      expect(linux.revalidated[0]!.end - linux.revalidated[0]!.start).toBe(0x1000n);
      expect(linux.pageStateChanges).toBe(linux.acceptCalls.length + 1);
      expect(linux.acceptedWasMarkedUnaccepted).toBe(true);
      expect(linux.bitmapClearedExactly).toBe(true);
      expect(linux.failedAcceptCalls).toBe(0);
      expect(run.result.acceptedBytes.decompressor).toBe(Number(plan.workRange.start - plan.kernelRange.end) + 0x1000);
      // The CC blob's secrets page was launched as page type SECRETS: the firmware wrote it
      // (SEV-SNP Firmware ABI, the secrets page layout: VERSION at 0, VMPCK0 at 0x20), version 3
      // as AMD's firmware writes it, with a VM communication key the guest can use.
      const secrets = run.platform.machine.memory.read(run.session.images.linux!.bootData.secretsPageGpa!, 0x1000);
      expect(new DataView(secrets.buffer, secrets.byteOffset).getUint32(0, true)).toBe(3);
      expect(secrets.subarray(0x20, 0x40).some((b) => b !== 0)).toBe(true);
    } finally {
      run.platform.machine.close();
    }
  }, REAL_KERNEL_TIMEOUT_MS);
});

describe("Debian's cloud kernel against a hostile VMM", () => {
  it('a VMM that keeps the SEPT entry of each page it adds busy makes the decompressor panic with its own message', () => {
    // OPERAND_BUSY is what a TDG.MEM.PAGE.ACCEPT returns while another host CPU holds the entry's
    // SEPT lock. Linux's try_accept_one() treats any error as failure (no retry, unlike EDK2's
    // TdAcceptPages), so its accept_memory() ends in error("TDX: Failed to accept memory").
    const busy: TdxVmmPolicy = {
      ...honestTdxPolicy,
      onAcceptViolation(ctx, exit) {
        const decision = honestTdxPolicy.onAcceptViolation(ctx, exit);
        if (exit.eeq.type === 'accept' && exit.gpa >= 16n * M) {
          const size = exit.eeq.reqLevel === 1 ? 2n * M : 0x1000n;
          ctx.host.lockEntry(exit.gpa & ~(size - 1n), exit.eeq.reqLevel);
        }
        return decision;
      },
    };
    const run = bootGuest(linuxConfig(), { vmm: { tdx: busy } });
    try {
      expect(run.result.console).toContain('TDX: Failed to accept memory');
      expect(run.result.console).toContain('-- System halted');
      // Its halt loop's HLT raises #VE, for which the decompressor has no handler.
      expect(run.result.outcome).toBe('terminated');
      expect(run.linux!.failedAcceptCalls).toBeGreaterThan(0);
      // It never reached the kernel, so the report names no hand-over address.
      expect(run.linux!.handoverRip).toBeUndefined();
      expect(run.linux!.accepted).toEqual([]);
    } finally {
      run.platform.machine.close();
    }
  }, REAL_KERNEL_TIMEOUT_MS);
});
