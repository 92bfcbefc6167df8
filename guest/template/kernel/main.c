/*
 * A kernel stage for minivisor, made by `minivisor new-stub`. minivisor's firmware and
 * decompressor run first; the decompressor accepts this image's range, copies it to
 * MV_KERNEL_LOAD_GPA and jumps to _start (the SDK's lib/kernel-entry.S) with RDI = the boot
 * params: the E820 map (MV_E820_UNACCEPTED ranges), the acceptance bitmap and the statistics
 * (minivisor/boot_abi.h, "Handovers").
 *
 * This one accepts ACCEPT_BYTES of the first unaccepted range through the bitmap, writes and
 * reads back every page, and reports. Put your own accept routine in accept_and_check().
 * Build: `make`; boot: `npx minivisor boot --kernel build/kernel.elf --verify`.
 */
#include <minivisor/guest.h>

#define ACCEPT_BYTES 0x800000ull /* 8 MiB: four 2 MiB units, or 2048 4 KiB ones */

static struct mv_boot_params *bp;

/* The first E820 range the firmware left unaccepted. */
static const struct mv_e820_entry *first_unaccepted(void)
{
	for (u32 i = 0; i < bp->e820_count; i++)
		if (bp->e820[i].type == MV_E820_UNACCEPTED)
			return &bp->e820[i];
	return 0;
}

static u64 accept_and_check(u64 start, u64 end)
{
	u64 accepted = mv_accept_bitmap_range(start, end); /* TDG.MEM.PAGE.ACCEPT or PVALIDATE */
	MV_ASSERT(!mv_bitmap_unaccepted(start) && !mv_bitmap_unaccepted(end - 1), start);
	mv_map_private(bp, start, end);
	for (u64 page = start; page < end; page += MV_PAGE_SIZE)
		*(volatile u64 *)(uintptr_t)page = page ^ bp->seed;
	for (u64 page = start; page < end; page += MV_PAGE_SIZE)
		MV_ASSERT(*(volatile u64 *)(uintptr_t)page == (page ^ bp->seed), page);
	return accepted;
}

void kernel_main(struct mv_boot_params *params)
{
	bp = params;
	mv_cpu_init();
	mv_platform_adopt(bp, MV_STAGE_KERNEL);
	mv_report_stage("kernel");
	mv_bitmap_attach(bp);

	const struct mv_e820_entry *range = first_unaccepted();
	if (!range)
		MV_FAIL("no unaccepted memory to accept", bp->e820_count);
	u64 start = ALIGN_UP(range->addr, mv_bitmap.unit);
	u64 end = MIN(start + ACCEPT_BYTES, range->addr + range->size);
	u64 accepted = accept_and_check(start, end);

	mv_report_stat("template_accepted_bytes", accepted);
	mv_report_stat("template_checked_pages", (end - start) / MV_PAGE_SIZE);
	mv_report_done();
	mv_halt_forever();
}
