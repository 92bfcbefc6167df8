// An all-zero 4 KiB page: most pages of an initial image are (243 of the stubs' 257), so launch
// measurements compare against it instead of hashing or copying each.

/** 4 KiB of zeros (read-only by convention). */
export const ZERO_PAGE: Buffer = Buffer.alloc(0x1000);

/** Whether `bytes` is exactly one all-zero 4 KiB page. */
export function isZeroPage(bytes: Uint8Array): boolean {
  return bytes.byteLength === 0x1000 && ZERO_PAGE.equals(bytes);
}
