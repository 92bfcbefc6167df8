/*
 * Kernel handover (issue 14 part 2), built only into the handover variants of the kernel
 * (guest/lib/variants.mk: handover-kexec, handover-crash): the honest default kernel compiles none of it, so
 * its image, measurement and trace stay what they were.
 *
 * kexec: after its workload the kernel loads a second kernel image (linked into it, the way
 * kexec-tools reads one from a file) into a region it reserved and accepted at boot, leaves data
 * in a preserved region, and jumps to it. The acceptance state crosses the boundary the way
 * Linux passes the EFI unaccepted-memory table through kexec: the table stays where it is, in
 * reserved memory, and the next kernel finds it through its boot parameters (Linux: efi.unaccepted
 * from the EFI config table, reserve_unaccepted() in drivers/firmware/efi/efi.c; the kexec'd
 * kernel's decompressor looks it up through boot_params.efi_info). Here that is bp->bitmap_gpa.
 *
 * crash: the crash kernel is loaded at boot into the same region (reserved and accepted, like
 * crashkernel= and kexec -p); the first kernel panics at a seeded point of its workload and jumps
 * to it; it reads the table and dumps the memory the first kernel had accepted (crash.c).
 */
#ifndef MINIVISOR_KERNEL_HANDOVER_H
#define MINIVISOR_KERNEL_HANDOVER_H
#include <minivisor/guest.h>

/* Where the second kernel runs: its image, bss and stack (kernel.ld with MV_KERNEL_BASE). Like
 * a crashkernel=2M@24M reservation: fixed, so the second kernel can be linked there. */
#define MV_KEXEC_REGION_GPA      0x1800000ull
#define MV_KEXEC_REGION_BYTES    0x200000ull
/* One page after the region: the handover record (Linux: a setup_data entry for the next kernel). */
#define MV_KEXEC_RECORD_GPA      (MV_KEXEC_REGION_GPA + MV_KEXEC_REGION_BYTES)
#define MV_KEXEC_RECORD_MAGIC    0x4f4448584543454bull /* "KEXECHDO" */
/* Data the first kernel leaves for the second: four 2 MiB units' worth would be wasteful, one
 * 256 KiB buffer is enough to show every page of it arrives intact. */
#define MV_KEXEC_PRESERVED_BYTES 0x40000ull

struct mv_kexec_record {
	u64 magic;
	u64 preserved_gpa;
	u64 preserved_bytes;
	u64 preserved_pattern;        /* per page: qword 0 = pattern ^ GPA, last qword = pattern */
	u64 first_kernel_accepted_bytes;  /* bp->stats.accepted_bytes[MV_STAGE_KERNEL] at the jump */
	u64 first_kernel_unaccepted_units; /* set bits in the table at the jump */
};

/* crash: the record the first kernel leaves at MV_KEXEC_RECORD_GPA for the crash kernel. */
#define MV_CRASH_RECORD_MAGIC    0x50554d4448534152ull /* "RASHDUMP" */
struct mv_crash_record {
	u64 magic;
	u64 panic_chunk;              /* the workload chunk the first kernel panicked at */
	u64 accept_calls_at_panic;    /* the guest's own accept_calls_4k + _2m then */
};

/* The kernel's allocator, lent to the handover code (main.c keeps them static). */
struct mv_handover_ops {
	void (*reserve)(u64 start, u64 end);
	u64 (*alloc)(u64 bytes, u64 align);   /* take, map and accept (kalloc) */
	void (*accept)(u64 start, u64 size);  /* accept_memory: only what the table says is unaccepted */
};

/* After allocator_init: the first kernel reserves and accepts the second kernel's region (Linux
 * kexec_core sanity_check_segment_list() accepts every segment destination); the second kernel
 * reserves its own region, the record and the preserved region, and checks the preserved data. */
void mv_handover_boot(struct mv_boot_params *bp, const struct mv_handover_ops *ops);
#ifdef MV_HANDOVER_KEXEC
#ifndef MV_KEXEC_TARGET
/* After the workload: load the second kernel, leave the preserved data, jump. */
noreturn void mv_handover_kexec(struct mv_boot_params *bp, const struct mv_handover_ops *ops);
#else
/* The second kernel's report, after its own workload. */
void mv_handover_report(struct mv_boot_params *bp);
#endif
#endif

#ifdef MV_HANDOVER_CRASH
#ifdef MV_KEXEC_TARGET
#define MV_CRASH_KERNEL 1
#endif
#ifndef MV_KEXEC_TARGET
/* The workload chunk, of `chunks`, at which the first kernel panics (from the seed). */
u64 mv_handover_panic_chunk(struct mv_boot_params *bp, u64 chunks);
noreturn void mv_handover_panic(struct mv_boot_params *bp, u64 chunk);
#else
/* The crash kernel: dump the first kernel's accepted memory, never accepting anything. */
noreturn void mv_crash_kernel_main(struct mv_boot_params *bp);
#endif
#endif

#endif
