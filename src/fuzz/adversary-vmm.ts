// An attack program as the VMM of one boot (bootGuest's `vmm` option): the honest VMM with the
// program's decisions taken at its decision points. The fuzzer's executor and `minivisor test`
// scenario files (an `adversary`) both boot through it.
import type { VmmOverride } from '../boot/platforms.js';
import { HonestSnpVmm } from '../vmm/snp/honest-vmm.js';
import { type DecisionBook, snpAdversaryPolicy, tdxAdversaryPolicy } from './adversary.js';
import type { AttackPlatform } from './attack-program.js';

export function adversaryVmm(platform: AttackPlatform, book: DecisionBook): VmmOverride {
  if (platform === 'tdx') return { tdx: tdxAdversaryPolicy(book) };
  return {
    snp: (echo: (line: string) => void) => {
      const honest = new HonestSnpVmm({ echo });
      return Object.assign(snpAdversaryPolicy(book, honest), { console: honest.console });
    },
  };
}
