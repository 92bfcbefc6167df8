/*
 * The kernel's record of what it accepted, chosen at build time (`--tracking`, issue 14 part 3):
 * the default is Roedel's acceptance bitmap (lib/unaccepted.c, handed over by the decompressor);
 * -DMV_TRACKING_MEMMAP is Kleen's variant (kernel/memmap-state.c: the memory map plus private
 * state). kernel/main.c only calls these names.
 */
#ifndef MINIVISOR_KERNEL_TRACKING_H
#define MINIVISOR_KERNEL_TRACKING_H
#include <minivisor/guest.h>

/* Allocations the kernel can make: the workload's chunks plus the two conversion buffers. */
#define MV_KERNEL_MAX_CHUNKS        4096
#define MV_KERNEL_MAX_ALLOCATIONS   (MV_KERNEL_MAX_CHUNKS + 2)

#ifdef MV_TRACKING_MEMMAP
void mv_memmap_state_init(const struct mv_boot_params *bp);
u64 mv_memmap_accept_range(u64 start, u64 end);
void mv_memmap_validate(u64 start, u64 end);
bool mv_memmap_unaccepted(u64 gpa);
u64 mv_memmap_unaccepted_bytes(void);
void mv_memmap_report(void);
#define tracking_attach(bp)             (mv_memmap_state_init(bp), mv_validation_request = mv_memmap_validate)
#define tracking_unit(bp)               ((u64)(bp)->accept_unit)
#define tracking_accept_range           mv_memmap_accept_range
#define tracking_unaccepted             mv_memmap_unaccepted
#define tracking_unaccepted_bytes(stats) mv_memmap_unaccepted_bytes()
#define tracking_report()               mv_memmap_report()
#else
#define tracking_attach(bp)             mv_bitmap_attach(bp)
#define tracking_unit(bp)               mv_bitmap.unit
#define tracking_accept_range           mv_accept_bitmap_range
#define tracking_unaccepted             mv_bitmap_unaccepted
#define tracking_unaccepted_bytes(stats) ((stats)->unaccepted_units * mv_bitmap.unit)
#define tracking_report()               ((void)0)
#endif
#endif
