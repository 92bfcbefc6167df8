/*
 * kexec between two kernel stubs (handover.h). Compiled twice: into the first kernel (load and
 * jump) and, with MV_KEXEC_TARGET, into the second kernel it loads (adopt the handed-over state).
 */
#include "handover.h"

static struct mv_kexec_record *record(void)
{
	return (struct mv_kexec_record *)(uintptr_t)MV_KEXEC_RECORD_GPA;
}

#ifndef MV_KEXEC_TARGET
/* The second kernel's flat image (kexec-image.S: .incbin of build/.../kexec-target.bin). */
extern const u8 mv_kexec_image_start[], mv_kexec_image_end[];

void mv_handover_boot(struct mv_boot_params *bp, const struct mv_handover_ops *ops)
{
	(void)bp;
	u64 end = MV_KEXEC_RECORD_GPA + MV_PAGE_SIZE;
	ops->reserve(MV_KEXEC_REGION_GPA, end);
	mv_map_private(bp, MV_KEXEC_REGION_GPA, end);
	ops->accept(MV_KEXEC_REGION_GPA, end - MV_KEXEC_REGION_GPA);
}

noreturn void mv_handover_kexec(struct mv_boot_params *bp, const struct mv_handover_ops *ops)
{
	u64 image_bytes = (u64)(mv_kexec_image_end - mv_kexec_image_start);
	if (image_bytes == 0 || image_bytes > MV_KEXEC_REGION_BYTES)
		mv_fatal("kexec_image_too_large", image_bytes);

	/* Data for the next kernel, in memory this kernel allocated (so accepted) and never frees. */
	u64 rng = bp->seed ^ 0x6b65786563ull; /* "kexec" */
	u64 pattern = mv_splitmix64(&rng);
	u64 preserved = ops->alloc(MV_KEXEC_PRESERVED_BYTES, MV_PAGE_SIZE);
	for (u64 off = 0; off < MV_KEXEC_PRESERVED_BYTES; off += MV_PAGE_SIZE) {
		u64 *page = (u64 *)(uintptr_t)(preserved + off);
		page[0] = pattern ^ (preserved + off);
		page[MV_PAGE_SIZE / 8 - 1] = pattern;
	}

	struct mv_kexec_record *r = record();
	*r = (struct mv_kexec_record){
		.magic = MV_KEXEC_RECORD_MAGIC,
		.preserved_gpa = preserved,
		.preserved_bytes = MV_KEXEC_PRESERVED_BYTES,
		.preserved_pattern = pattern,
		.first_kernel_accepted_bytes = bp->stats.accepted_bytes[MV_STAGE_KERNEL],
		.first_kernel_unaccepted_units = bp->stats.unaccepted_units,
	};
	/* The next kernel's workload is twice this one's: first fit reuses what this kernel
	 * accepted (no accept may happen there) and runs on into memory still unaccepted. */
	bp->workload_bytes *= 2;

	/* Load: a fresh image with a zeroed bss, as kexec's purgatory hands over. */
	u8 *dst = (u8 *)(uintptr_t)MV_KEXEC_REGION_GPA;
	memcpy(dst, mv_kexec_image_start, image_bytes);
	memset(dst + image_bytes, 0, MV_KEXEC_REGION_BYTES - image_bytes);
	mv_report_stat("kexec_first_kernel_accepted_bytes", r->first_kernel_accepted_bytes);
	mv_console_flush();
	/* The second kernel's entry is the start of its image (kernel.ld: .text.entry first); it
	 * takes the boot params in RDI like the decompressor's jump. */
	asm volatile("cli; jmp *%1" : : "D"(bp), "r"(MV_KEXEC_REGION_GPA) : "memory");
	__builtin_unreachable();
}

#else /* the second kernel */

static u64 preserved_bytes_verified;

void mv_handover_boot(struct mv_boot_params *bp, const struct mv_handover_ops *ops)
{
	(void)bp;
	struct mv_kexec_record *r = record();
	if (r->magic != MV_KEXEC_RECORD_MAGIC)
		mv_fatal("kexec_record_missing", r->magic);
	ops->reserve(MV_KEXEC_REGION_GPA, MV_KEXEC_RECORD_GPA + MV_PAGE_SIZE);
	u64 start = r->preserved_gpa, bytes = r->preserved_bytes;
	if (start % MV_PAGE_SIZE || bytes % MV_PAGE_SIZE || start + bytes < start || start + bytes > bp->memory_bytes)
		mv_fatal("kexec_preserved_region_invalid", start);
	ops->reserve(start, start + bytes);
	/* Accepted by the first kernel: the table says so, and no accept may be needed to read it. */
	for (u64 gpa = start; gpa < start + bytes; gpa += MV_PAGE_SIZE)
		if (mv_bitmap_unaccepted(gpa))
			mv_fatal("kexec_preserved_region_unaccepted", gpa);
	mv_map_private(bp, start, start + bytes);
	for (u64 off = 0; off < bytes; off += MV_PAGE_SIZE) {
		const u64 *page = (const u64 *)(uintptr_t)(start + off);
		if (page[0] != (r->preserved_pattern ^ (start + off)) || page[MV_PAGE_SIZE / 8 - 1] != r->preserved_pattern)
			mv_fatal("kexec_preserved_data_mismatch", start + off);
	}
	preserved_bytes_verified = bytes;
	/* The table handed over must be the one the first kernel left: same number of unaccepted units. */
	if (bp->stats.unaccepted_units != r->first_kernel_unaccepted_units)
		mv_fatal("kexec_acceptance_table_changed", bp->stats.unaccepted_units);
}

void mv_handover_report(struct mv_boot_params *bp)
{
	const struct mv_kexec_record *r = record();
	mv_report_stat("kexec_preserved_bytes_verified", preserved_bytes_verified);
	mv_report_stat("kexec_second_kernel_accepted_bytes",
		       bp->stats.accepted_bytes[MV_STAGE_KERNEL] - r->first_kernel_accepted_bytes);
}
#endif
