import { Command } from 'commander';
import { BootOptionError, parseBootOptions, type RawBootOptions } from '../boot-options.js';
import type { CliIo } from '../io.js';

export function bootCommand(io: CliIo): Command {
  return new Command('boot')
    .description('boot an emulated TDX or SNP guest: firmware -> decompressor -> kernel, accepting memory as it goes')
    .option('--platform <name>', 'tdx or snp', 'tdx')
    .option('--memory <size>', 'guest memory (e.g. 512M, 4095M, 64G, 1T)', '4G')
    .option('--pre-accept <size|all>', 'memory the firmware accepts before handing over', '64M')
    .option('--accept <mode>', 'lazy or eager acceptance in the kernel', 'lazy')
    .option('--unit <size>', 'acceptance bitmap unit, 4K or 2M', '2M')
    .option('--workload <size>', 'memory the kernel workload allocates and verifies', '64M')
    .option('--seed <n>', 'seed for everything pseudo-random in the run', '1')
    .option('--max-instructions <n>', 'stop the guest after this many instructions')
    .option('--trace <file>', 'write the structured trace as JSON lines')
    .option('--json', 'print one JSON object instead of the console and a summary')
    .option('--firmware <file>', 'boot your own firmware ELF image on the same platform')
    .action((raw: RawBootOptions) => {
      try {
        parseBootOptions(raw);
      } catch (err) {
        if (err instanceof BootOptionError) {
          io.err(`minivisor boot: ${err.message}`);
          io.exitCode = 2;
          return;
        }
        throw err;
      }
      io.err('minivisor boot: no guest is installed yet (the firmware and guest stubs are not built into this version)');
      io.exitCode = 1;
    });
}
