// The VMM's own knowledge of where the guest has RAM (KVM's memslots): the hardware models back
// the whole guest-physical space, but an honest VMM adds, converts and maps pages only inside
// RAM. The firmware volume below 4 GiB lies in a hole with no RAM (boot_abi.h).

/** A guest-physical RAM range [start, end). */
export interface GuestRamRange { start: bigint; end: bigint }

/** Whether [gpa, gpa+size) lies inside one RAM range. */
export function inGuestRam(ram: readonly GuestRamRange[], gpa: bigint, size = 1n): boolean {
  return ram.some((r) => gpa >= r.start && gpa + size <= r.end);
}

/** All of [0, bytes) is RAM: the default for VMs built without a memory map. */
export function flatGuestRam(bytes: bigint): GuestRamRange[] {
  return [{ start: 0n, end: bytes }];
}
