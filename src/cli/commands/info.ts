// `minivisor info`: what this build can do (platforms, the modelled features of each), the
// emulator it runs on and the limits a user meets first. The lists are the README's "The TDX
// module model" / "The SEV-SNP model" sections in short; the numbers come from the code.
import { Command } from 'commander';
import { MAX_VCPUS, unicornVersion } from '../../cpu/machine.js';
import { TdcallLeaf } from '../../platform/tdx/tdcall.js';
import { DEFAULT_MAX_INSTRUCTIONS } from '../boot-options.js';
import { MAX_MEMORY, MIN_MEMORY } from '../../boot/boot-config.js';
import { formatSize } from '../size.js';
import type { CliIo } from '../io.js';

/** TDCALL leaves the TDX module model implements; the others return OPERAND_INVALID (README, "Not modelled (TDX)"). */
const MODELLED_TDCALLS = ['VP_VMCALL', 'VP_INFO', 'VP_VEINFO_GET', 'MEM_PAGE_ACCEPT', 'VM_RD', 'VM_WR'] as const satisfies ReadonlyArray<keyof typeof TdcallLeaf>;

const PLATFORMS = [
  {
    name: 'tdx',
    model: 'Intel TDX module 1.5 (intel/tdx-module TDX_1.5.01)',
    features: [
      `TDCALL ${MODELLED_TDCALLS.map((l) => `TDG.${l.replace(/_/g, '.')}`).join(', ')}`,
      'Secure EPT with real levels; SEAMCALLs TDH.MEM.PAGE.AUG/ADD/REMOVE/PROMOTE/DEMOTE, SEPT.ADD/RD, RANGE.BLOCK/UNBLOCK, TRACK, MR.EXTEND/FINALIZE',
      '#VE for pending pages, HLT, CPUID and MSRs (the module\'s tables); #DF and triple fault',
      'TD exits: EPT violations and TDG.VP.VMCALL (MapGPA, ReportFatalError, I/O)',
    ],
  },
  {
    name: 'snp',
    model: 'AMD SEV-SNP (APM Vol. 2 §15.36, GHCB specification, SNP firmware ABI)',
    features: [
      'RMP with RMPUPDATE and PSMASH; SNP_LAUNCH_UPDATE (normal, zero, VMSA, CPUID pages) and the launch digest',
      'PVALIDATE and RMPADJUST (VMPL permissions) with NPT page-size checks',
      '#VC; GHCB MSR protocol and GHCB page (page-state change, CPUID, I/O, termination)',
      'nested page faults per the RMP Memory Access Checks (APM §15.36.10); ciphertext for C=0 reads of private pages',
    ],
  },
] as const;

const LIMITS = [
  `guest memory ${formatSize(MIN_MEMORY)} to ${formatSize(MAX_MEMORY)} (the top of guest RAM; [0xFF000000, 4G) is the firmware region, not RAM), CPL 0 only`,
  `vCPUs: up to ${MAX_VCPUS} on TDX and SNP (--vcpus; SNP APs through the AP Creation VMGEXIT; one with --linux, --handover or --tracking memmap)`,
  `instruction budget ${DEFAULT_MAX_INSTRUCTIONS} by default (--max-instructions)`,
  'no attestation (TDG.MR.REPORT, SNP guest requests), no migration, no VMPL switching',
];

export function infoCommand(io: CliIo): Command {
  return new Command('info')
    .description('show the platforms, modelled features, emulator and limits of this minivisor')
    .option('--json', 'print one JSON object')
    .action((options: { json?: boolean }) => {
      const info = { unicorn: unicornVersion(), node: process.version, platforms: PLATFORMS.map((p) => p.name), models: PLATFORMS, limits: LIMITS };
      if (options.json) {
        io.out(JSON.stringify(info));
        return;
      }
      io.out(`minivisor on libunicorn ${info.unicorn}, node ${info.node}; platforms: ${info.platforms.join(', ')}`);
      for (const p of PLATFORMS) {
        io.out('');
        io.out(`${p.name}: ${p.model}`);
        for (const f of p.features) io.out(`  - ${f}`);
      }
      io.out('');
      io.out('limits:');
      for (const l of LIMITS) io.out(`  - ${l}`);
    });
}
