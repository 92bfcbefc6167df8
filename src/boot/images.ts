// The guest images `npm install` builds: the firmware ELF and the guest image (decompressor with
// the compressed kernel linked in). A user's own firmware can replace ours.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILT_FIRMWARE = join(root, 'firmware', 'build', 'firmware.elf');
export const BUILT_GUEST_IMAGE = join(root, 'guest', 'build', 'guest-image.elf');

export class GuestImageError extends Error {
  override name = 'GuestImageError';
}

export function readImage(path: string, what: string): Uint8Array {
  if (!existsSync(path)) {
    const built = path === BUILT_FIRMWARE || path === BUILT_GUEST_IMAGE;
    throw new GuestImageError(built
      ? `no guest is installed: ${path} is missing (run \`npm install\`, which builds the stubs with gcc/binutils)`
      : `${what} ${path} does not exist`);
  }
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new GuestImageError(`cannot read ${what} ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
