// The order in which the VMM adds and measures the launch image (src/boot/platforms.ts): the
// firmware and guest image first, then the firmware volume, the firmware config page last, as
// TDVF's metadata lists its configuration volume after its code. The config is still measured:
// a VMM that changes it changes the launch measurement.
import { describe, expect, it } from 'vitest';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { BootSession } from '../../../src/boot/boot-session.js';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { FIRMWARE_VOLUME, FW_CONFIG_PAGE, INITIAL_IMAGE_PAST_CONFIG } from '../../../src/boot/layout.js';

/** The GPAs of the measured launch ranges, in the order the VMM measured them. */
function measuredOrder(platform: 'tdx' | 'snp'): bigint[] {
  const run = bootGuest(parseBootOptions({ platform, memory: '128M' }), { keepTrace: true });
  run.platform.machine.close();
  const events = run.trace.events as unknown as Array<Record<string, unknown>>;
  return platform === 'tdx'
    ? events.filter((e) => e.type === 'seamcall' && e.leaf === 'TDH_MR_EXTEND').map((e) => BigInt(e.rcx as bigint))
    : events.filter((e) => e.type === 'launch-update' && e.pageType === 'NORMAL').map((e) => BigInt(e.gpa as bigint));
}

function measurement(platform: 'tdx' | 'snp', preAccept: string): string {
  const session = BootSession.create(parseBootOptions({ platform, memory: '128M', preAccept }));
  const m = session.platform.measurement;
  session.platform.machine.close();
  return m;
}

describe.each(['tdx', 'snp'] as const)('%s launch', (platform) => {
  it('measures the image, then the firmware volume, then the config page', () => {
    expect(measuredOrder(platform)).toEqual([INITIAL_IMAGE_PAST_CONFIG.gpa, FIRMWARE_VOLUME.gpa, FW_CONFIG_PAGE.gpa]);
  });

  it('measures the config page: another config is another measurement', () => {
    expect(measurement(platform, '32M')).toBe(measurement(platform, '32M'));
    expect(measurement(platform, '32M')).not.toBe(measurement(platform, '64M'));
  });
});
