/*
 * Kleen's variant, the kernel's side (issue 14 part 3, the design seed): "the kernel needs to
 * maintain something ... on its own, but it doesn't need to be visible in any outside interfaces".
 * At entry the kernel takes a private copy of the memory map the decompressor handed over (what
 * the map calls RAM was accepted before the kernel ran, statically) and keeps its own per-page
 * state as a sorted list of still-unaccepted extents in its .bss: its size follows the number of
 * accepts, not the amount of RAM. Every validation request passes Kleen's rule: "Anything that's
 * in a BIOS reserved region or in a region already marked as validated must be already validated
 * and can be rejected (or rather panic'ed)". Built only with -DMV_TRACKING_MEMMAP.
 */
#include <minivisor/guest.h>
#include "tracking.h"

/* Each accept removes one contiguous range, so it splits at most one extent: the list holds at
 * most the map's entries plus one per accept call. The kernel makes one per allocation (at most
 * MV_KERNEL_MAX_ALLOCATIONS: the workload's chunks, the two conversion buffers, the eager pass
 * never splits), so this bound is never reached by the honest kernel; 16 bytes each. */
#define MAX_UNACCEPTED_EXTENTS (MV_E820_MAX_ENTRIES + MV_KERNEL_MAX_ALLOCATIONS)

struct extent { u64 start, end; };
static struct extent unaccepted[MAX_UNACCEPTED_EXTENTS];
static u32 unaccepted_count, unaccepted_peak;
static struct mv_e820_entry boot_map[MV_E820_MAX_ENTRIES];
static u32 boot_map_count;
static u64 unit;

void mv_memmap_state_init(const struct mv_boot_params *bp)
{
	unit = bp->accept_unit;
	boot_map_count = bp->e820_count;
	for (u32 i = 0; i < boot_map_count; i++) {
		boot_map[i] = bp->e820[i];
		if (bp->e820[i].type == MV_E820_UNACCEPTED) /* sorted: the decompressor checked the map */
			unaccepted[unaccepted_count++] = (struct extent){ bp->e820[i].addr, bp->e820[i].addr + bp->e820[i].size };
	}
	unaccepted_peak = unaccepted_count;
}

/* Kleen's rule, first against the map as handed over, then against the kernel's own state. */
static void check_validation_request(u64 start, u64 end)
{
	u64 at = start;
	for (u32 i = 0; i < boot_map_count && at < end; i++) {
		const struct mv_e820_entry *e = &boot_map[i];
		if (e->addr + e->size <= at)
			continue;
		if (e->addr > at || e->type == MV_E820_RESERVED)
			mv_fatal("memmap_validate_reserved", at); /* a reserved entry or a hole */
		if (e->type == MV_E820_RAM)
			mv_fatal("memmap_validate_accepted", at); /* accepted before the kernel ran */
		at = e->addr + e->size;
	}
	if (at < end)
		mv_fatal("memmap_validate_reserved", at); /* beyond the map */
	at = start;
	for (u32 i = 0; i < unaccepted_count && at < end; i++) {
		if (unaccepted[i].end <= at)
			continue;
		if (unaccepted[i].start > at)
			break;
		at = unaccepted[i].end;
	}
	if (at < end)
		mv_fatal("memmap_validate_accepted_privately", at); /* the kernel accepted it itself */
}

static void remove_extent_range(u64 start, u64 end)
{
	for (u32 i = 0; i < unaccepted_count; i++) {
		struct extent *x = &unaccepted[i];
		if (x->end <= start || x->start >= end)
			continue;
		if (x->start < start && x->end > end) {
			if (unaccepted_count == MAX_UNACCEPTED_EXTENTS)
				mv_fatal("memmap_state_full", start);
			for (u32 j = unaccepted_count; j > i + 1; j--)
				unaccepted[j] = unaccepted[j - 1];
			unaccepted[i + 1] = (struct extent){ end, x->end };
			x->end = start;
			unaccepted_count++;
			unaccepted_peak = MAX(unaccepted_peak, unaccepted_count);
			return;
		}
		if (x->start >= start && x->end <= end) {
			for (u32 j = i; j + 1 < unaccepted_count; j++)
				unaccepted[j] = unaccepted[j + 1];
			unaccepted_count--;
			i--;
			continue;
		}
		if (x->start < start)
			x->end = start;
		else
			x->start = end;
	}
}

void mv_memmap_validate(u64 start, u64 end)
{
	check_validation_request(start, end);
	mv_arch_accept(start, end);
	remove_extent_range(start, end);
	if (mv_on_accepted)
		mv_on_accepted(start, end);
}

/* The allocator's lazy accept (Linux accept_memory): whole units, like the bitmap path, but only
 * the parts the kernel's own state still calls unaccepted become validation requests. */
u64 mv_memmap_accept_range(u64 start, u64 end)
{
	start = ALIGN_DOWN(start, unit);
	end = ALIGN_UP(end, unit);
	u64 accepted = 0;
	for (u32 i = 0; i < unaccepted_count && unaccepted[i].start < end;) {
		u64 lo = MAX(start, unaccepted[i].start), hi = MIN(end, unaccepted[i].end);
		if (lo >= hi) {
			i++;
			continue;
		}
		mv_memmap_validate(lo, hi); /* entry i is now the head left before lo, or the next */
		accepted += hi - lo;
	}
	return accepted;
}

bool mv_memmap_unaccepted(u64 gpa)
{
	for (u32 i = 0; i < unaccepted_count && unaccepted[i].start <= gpa; i++)
		if (gpa < unaccepted[i].end)
			return true;
	return false;
}

u64 mv_memmap_unaccepted_bytes(void)
{
	u64 bytes = 0;
	for (u32 i = 0; i < unaccepted_count; i++)
		bytes += unaccepted[i].end - unaccepted[i].start;
	return bytes;
}

void mv_memmap_report(void)
{
	mv_report_stat("memmap_entries", boot_map_count);
	mv_report_stat("memmap_private_extents_peak", unaccepted_peak);
	mv_report_stat("memmap_private_state_bytes", sizeof(unaccepted) + sizeof(boot_map));
}
