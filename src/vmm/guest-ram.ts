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

/** Whether any byte of [gpa, gpa+size) is RAM. */
export function touchesGuestRam(ram: readonly GuestRamRange[], gpa: bigint, size: bigint): boolean {
  return ram.some((r) => gpa < r.end && gpa + size > r.start);
}

/**
 * What userspace (QEMU kvm_convert_memory, accel/kvm/kvm-all.c) makes of a conversion that KVM
 * hands it (KVM_HC_MAP_GPA_RANGE; KVM checks no memslot) for [gpa, gpa+size) not wholly inside
 * one RAM range. Where no memory region is, memory_region_find finds none: a conversion to shared
 * is ignored and reported done ("Ignore converting non-assigned region to shared": OVMF maps MMIO
 * shared), one to private fails. A range that reaches RAM but runs past its region fails either
 * way (physmem.c ram_block_discard_range: "Overrun block"; ram-block-attributes.c
 * ram_block_attributes_is_valid_range: offset + size past the region fails the state change). A failure is a negative exit-handler result, which QEMU's kvm_cpu_exec
 * turns into RUN_STATE_INTERNAL_ERROR: the VM stops; it never reaches the guest as an error.
 */
export function userspaceConversionOutsideRam(ram: readonly GuestRamRange[], gpa: bigint, size: bigint, toPrivate: boolean): 'ignored' | 'vm-stopped' {
  return !toPrivate && !touchesGuestRam(ram, gpa, size) ? 'ignored' : 'vm-stopped';
}
