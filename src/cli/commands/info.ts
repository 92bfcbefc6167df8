import { Command } from 'commander';
import { unicornVersion } from '../../cpu/machine.js';
import type { CliIo } from '../io.js';

export function infoCommand(io: CliIo): Command {
  return new Command('info')
    .description('show the emulator and build this minivisor runs on')
    .option('--json', 'print one JSON object')
    .action((options: { json?: boolean }) => {
      const info = { unicorn: unicornVersion(), node: process.version, platforms: ['tdx', 'snp'] };
      if (options.json) io.out(JSON.stringify(info));
      else io.out(`minivisor on libunicorn ${info.unicorn}, node ${info.node}; platforms: ${info.platforms.join(', ')}`);
    });
}
