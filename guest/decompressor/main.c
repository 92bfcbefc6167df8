/*
 * minivisor decompressor: the part of Linux's arch/x86/boot/compressed that matters here.
 *
 *  1. Validate the firmware's E820 map (it comes from outside the kernel's trust boundary).
 *  2. Allocate the acceptance bitmap at a pseudo-random place derived from the VM seed (the
 *     seed's Validation Bitmap: "allocates a physically contiguous data structure at a random
 *     memory location"), accept its own pages, and fill it from the unaccepted entries with
 *     Linux's process_unaccepted_memory rules.
 *  3. Accept the kernel's output range (misc.c extract_kernel: accept_memory(output, size)),
 *     decompress the kernel there (one LZ4 block, checked against the header's CRC-32) and
 *     jump to it with the boot params.
 */
#include <minivisor/guest.h>
#include "lz4.h"
#ifdef MV_TRACKING_MEMMAP
#include "memmap-record.h"
#endif

extern const u8 mv_payload_start[], mv_payload_end[];
extern const u8 __image_end[]; /* decompressor.ld: the end of this image's bss */

static bool usable(u32 type)
{
	return type == MV_E820_RAM || type == MV_E820_UNACCEPTED;
}

static noreturn void e820_fatal(const char *reason, u32 index)
{
	mv_fatal_code(reason, index, MV_SNP_TERM_SET_MINIVISOR, MV_SNP_TERM_MINIVISOR_FATAL);
}

/* Strict: sorted, non-overlapping, 4 KiB aligned, non-empty, known types, inside RAM, and no
 * usable entry over the firmware range where the boot params and page tables live. */
static void validate_e820(const struct mv_boot_params *bp)
{
	if (bp->e820_count == 0 || bp->e820_count > MV_E820_MAX_ENTRIES)
		e820_fatal("e820_bad_entry_count", bp->e820_count);
	u64 memory_end = ALIGN_UP(bp->memory_bytes, MV_PAGE_SIZE);
	for (u32 i = 0; i < bp->e820_count; i++) {
		const struct mv_e820_entry *e = &bp->e820[i];
		u64 end = e->addr + e->size;
		if (e->size == 0)
			e820_fatal("e820_empty_entry", i);
		if (!IS_ALIGNED(e->addr, MV_PAGE_SIZE) || !IS_ALIGNED(e->size, MV_PAGE_SIZE))
			e820_fatal("e820_unaligned_entry", i);
		if (end < e->addr || end > MV_MAX_MEMORY_BYTES)
			e820_fatal("e820_entry_out_of_range", i);
		if (end > memory_end)
			e820_fatal("e820_entry_beyond_memory", i);
		if (!usable(e->type) && e->type != MV_E820_RESERVED)
			e820_fatal("e820_unknown_type", i);
		if (e->reserved != 0)
			e820_fatal("e820_reserved_field_set", i);
		if (i > 0) {
			const struct mv_e820_entry *prev = &bp->e820[i - 1];
			if (e->addr < prev->addr)
				e820_fatal("e820_unsorted", i);
			if (e->addr < prev->addr + prev->size)
				e820_fatal("e820_overlap", i);
		}
		if (usable(e->type) && e->addr < MV_FIRMWARE_RESERVED_END && end > MV_FIRMWARE_RESERVED_GPA)
			e820_fatal("e820_usable_over_firmware", i);
	}
}

#ifndef MV_TRACKING_MEMMAP /* the bitmap (Roedel), the default */
/* The [start, end) part of an entry where the bitmap may go without colliding with the
 * head/tail acceptance of process_unaccepted (unaccepted entries: unit-aligned interior). */
static bool bitmap_window(const struct mv_e820_entry *e, u64 unit, u64 floor, u64 *lo, u64 *hi)
{
	u64 start = e->addr, end = e->addr + e->size;
	if (e->type == MV_E820_UNACCEPTED) {
		start = ALIGN_UP(start, unit);
		end = ALIGN_DOWN(end, unit);
	}
	start = MAX(start, floor);
	*lo = start;
	*hi = end;
	return usable(e->type) && start < end;
}

/* KASLR-style slot choice (Linux kaslr.c find_random_phys_addr): count the 4 KiB-aligned
 * positions that fit above the kernel, pick one with the seed. */
static u64 choose_bitmap_gpa(const struct mv_boot_params *bp, u64 bytes, u64 floor)
{
	u64 unit = bp->accept_unit, slots = 0;
	for (u32 i = 0; i < bp->e820_count; i++) {
		u64 lo, hi;
		if (bitmap_window(&bp->e820[i], unit, floor, &lo, &hi) && hi - lo >= bytes)
			slots += (hi - lo - bytes) / MV_PAGE_SIZE + 1;
	}
	if (slots == 0)
		mv_fatal("no_room_for_acceptance_bitmap", bytes);
	u64 state = bp->seed ^ 0x6269746d61700000ull; /* "bitmap": a stream of its own */
	u64 pick = mv_splitmix64(&state) % slots;
	for (u32 i = 0; i < bp->e820_count; i++) {
		u64 lo, hi;
		if (!bitmap_window(&bp->e820[i], unit, floor, &lo, &hi) || hi - lo < bytes)
			continue;
		u64 here = (hi - lo - bytes) / MV_PAGE_SIZE + 1;
		if (pick < here)
			return lo + pick * MV_PAGE_SIZE;
		pick -= here;
	}
	__builtin_unreachable(); /* pick < slots, counted by the same loop above */
}

/* Sets bits [first, last): whole words with rep stosq, so a 1 TiB guest with 4 KiB units
 * (a 32 MiB bitmap) costs about 4M stores, not 268M bit operations. */
static void set_bits(u64 first, u64 last)
{
	while (first < last && first % 64)
		mv_bitmap.words[first / 64] |= 1ull << (first % 64), first++;
	u64 whole = (last - first) / 64;
	mv_fill64(&mv_bitmap.words[first / 64], ~0ull, whole);
	first += whole * 64;
	while (first < last)
		mv_bitmap.words[first / 64] |= 1ull << (first % 64), first++;
}

/* Linux process_unaccepted_memory (libstub/unaccepted_memory.c): ranges shorter than two
 * units and unaligned heads/tails are accepted now; whole units are recorded in the bitmap. */
static void process_unaccepted(u64 start, u64 end, u64 unit)
{
	if (start >= end)
		return;
	if (end - start < 2 * unit) {
		mv_arch_accept(start, end);
		return;
	}
	u64 head_end = ALIGN_UP(start, unit), tail_start = ALIGN_DOWN(end, unit);
	mv_arch_accept(start, head_end);
	mv_arch_accept(tail_start, end);
	set_bits(head_end / unit, tail_start / unit);
	mv_boot_params()->stats.unaccepted_units += (tail_start - head_end) / unit;
}

#endif

/* The kernel output range must be backed by usable RAM entries without holes. */
static void check_kernel_range(const struct mv_boot_params *bp, u64 start, u64 end)
{
	u64 covered = start;
	for (u32 i = 0; i < bp->e820_count && covered < end; i++) {
		const struct mv_e820_entry *e = &bp->e820[i];
		if (usable(e->type) && e->addr <= covered && covered < e->addr + e->size)
			covered = e->addr + e->size;
	}
	if (covered < end)
		mv_fatal("kernel_range_not_usable_ram", covered);
}

/* The kernel payload: the one linked in (guest-image.elf, like piggy.S in a bzImage), or, when
 * that is empty (decompressor.elf), the one the VMM appended at this image's page-aligned end
 * inside the measured guest-image window (boot_abi.h, "Handovers"). */
static const struct mv_payload_header *check_payload(void)
{
	const u8 *start = mv_payload_start;
	u64 available = (u64)(mv_payload_end - mv_payload_start);
	if (available == 0) {
		u64 appended = ALIGN_UP((u64)(uintptr_t)__image_end, MV_PAGE_SIZE);
		start = (const u8 *)(uintptr_t)appended;
		available = appended < MV_GUEST_IMAGE_LIMIT ? MV_GUEST_IMAGE_LIMIT - appended : 0;
	}
	const struct mv_payload_header *h = (const void *)start;
	if (available < sizeof(*h) || h->magic != MV_PAYLOAD_MAGIC)
		mv_fatal("payload_bad_magic", available);
	if (h->compressed_bytes > available - sizeof(*h))
		mv_fatal("payload_truncated", h->compressed_bytes);
	if (h->load_gpa != MV_KERNEL_LOAD_GPA || h->image_bytes > h->memory_bytes ||
	    h->memory_bytes + MV_KERNEL_STACK_BYTES > MV_KERNEL_MAX_BYTES)
		mv_fatal("payload_bad_layout", h->memory_bytes);
	if (h->entry_gpa < h->load_gpa || h->entry_gpa >= h->load_gpa + h->image_bytes)
		mv_fatal("payload_bad_entry", h->entry_gpa);
	if (h->reserved != 0)
		mv_fatal("payload_reserved_field_set", h->reserved);
	return h;
}

void decompressor_main(struct mv_boot_params *bp)
{
	if (bp != mv_boot_params() || bp->magic != MV_BOOT_PARAMS_MAGIC || bp->version != MV_BOOT_PARAMS_VERSION)
		mv_halt_forever(); /* no platform known: nothing to report through */
	mv_cpu_init();
	mv_platform_adopt(bp, MV_STAGE_DECOMPRESSOR);
	mv_report_stage("decompressor");
#ifdef MV_PLANT_E820_UNCHECKED
	(void)validate_e820; /* planted bug: the firmware's memory map is used unchecked */
#else
	validate_e820(bp);
#endif
	if (bp->accept_unit != MV_PAGE_SIZE && bp->accept_unit != MV_SIZE_2M)
		mv_fatal("bad_accept_unit", bp->accept_unit);

	const struct mv_payload_header *payload = check_payload();
	u64 kernel_start = payload->load_gpa;
	u64 kernel_end = kernel_start + ALIGN_UP(payload->memory_bytes, MV_SIZE_2M);
	check_kernel_range(bp, kernel_start, kernel_end);

#ifdef MV_TRACKING_MEMMAP
	/* --tracking memmap (Kleen): no bitmap. Accept the output range and record it by splitting
	 * the map's unaccepted entries; the kernel learns what was accepted from the map alone. */
	mv_map_private(bp, kernel_start, kernel_end);
	mv_memmap_accept_and_record(bp, kernel_start, kernel_end);
	bp->bitmap_gpa = 0;
	bp->bitmap_bytes = 0;
	bp->stats.unaccepted_units = 0;
#else
	/* The bitmap covers [0, end of the last usable entry), one bit per unit. */
	u64 unit = bp->accept_unit, span_end = 0;
	for (u32 i = 0; i < bp->e820_count; i++)
		if (usable(bp->e820[i].type))
			span_end = bp->e820[i].addr + bp->e820[i].size;
	u64 units = ALIGN_UP(span_end, unit) / unit;
	u64 bitmap_bytes = ALIGN_UP((units + 7) / 8, 8);
	u64 bitmap_gpa = choose_bitmap_gpa(bp, ALIGN_UP(bitmap_bytes, MV_PAGE_SIZE), ALIGN_UP(kernel_end, unit));
	u64 bitmap_end = bitmap_gpa + ALIGN_UP(bitmap_bytes, MV_PAGE_SIZE);

	/* Accept the bitmap's own units first (they are inside one entry's unit-aligned interior,
	 * or in already-accepted RAM), then fill the bitmap leaving those units out. */
	u64 own_start = ALIGN_DOWN(bitmap_gpa, unit), own_end = ALIGN_UP(bitmap_end, unit);
	bool bitmap_in_unaccepted = false;
	for (u32 i = 0; i < bp->e820_count; i++) {
		const struct mv_e820_entry *e = &bp->e820[i];
		if (e->type == MV_E820_UNACCEPTED && e->addr <= own_start && own_end <= e->addr + e->size)
			bitmap_in_unaccepted = true;
	}
	mv_map_private(bp, bitmap_gpa, bitmap_end);
	if (bitmap_in_unaccepted)
		mv_arch_accept(own_start, own_end);
	mv_fill64((void *)(uintptr_t)bitmap_gpa, 0, bitmap_bytes / 8);
	bp->bitmap_gpa = bitmap_gpa;
	bp->bitmap_bytes = bitmap_bytes;
	mv_bitmap_attach(bp);
	bp->stats.unaccepted_units = 0;
	for (u32 i = 0; i < bp->e820_count; i++) {
		const struct mv_e820_entry *e = &bp->e820[i];
		if (e->type != MV_E820_UNACCEPTED)
			continue;
		u64 start = e->addr, end = e->addr + e->size;
		if (bitmap_in_unaccepted && start <= own_start && own_end <= end) {
			process_unaccepted(start, own_start, unit);
			process_unaccepted(own_end, end, unit);
		} else {
			process_unaccepted(start, end, unit);
		}
	}

	/* Accept the output range through the bitmap, then decompress into it. */
	mv_map_private(bp, kernel_start, kernel_end);
	mv_accept_bitmap_range(kernel_start, kernel_end);
#endif
	u8 *out = (u8 *)(uintptr_t)kernel_start;
	u64 got = 0;
	int err = lz4_decompress_block((const u8 *)(payload + 1), payload->compressed_bytes, out,
				       payload->image_bytes, &got);
	if (err < 0)
		mv_fatal("kernel_decompress_failed", (u64)-err);
	if (got != payload->image_bytes)
		mv_fatal("kernel_decompress_short", got);
	u32 crc = mv_crc32(0, out, got);
	if (crc != payload->image_crc32)
		mv_fatal("kernel_crc_mismatch", crc);
	/* bss: SNP-validated memory is not zeroed by the platform, TDX-accepted memory is. */
	memset(out + payload->image_bytes, 0, payload->memory_bytes - payload->image_bytes);
	bp->kernel_gpa = kernel_start;
	bp->kernel_bytes = kernel_end - kernel_start;

	mv_report_stat("decompressor_accepted_bytes", bp->stats.accepted_bytes[MV_STAGE_DECOMPRESSOR]);
#ifdef MV_TRACKING_MEMMAP
	mv_report_stat("memmap_entries", bp->e820_count);
#else
	mv_report_stat("bitmap_gpa", bitmap_gpa);
	mv_report_stat("bitmap_bytes", bitmap_bytes);
#endif
	mv_report_stat("kernel_compressed_bytes", payload->compressed_bytes);
	mv_report_stat("kernel_image_bytes", payload->image_bytes);
	mv_enter(payload->entry_gpa, (u64)(uintptr_t)bp, MV_DECOMPRESSOR_STACK_TOP);
}
