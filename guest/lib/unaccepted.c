/*
 * The acceptance bitmap (the seed's Validation Bitmap; Linux's EFI unaccepted-memory table
 * with phys_base 0): one bit per unit, set = unaccepted. It is the guest's own record of
 * what it accepted, so a hypervisor claim that contradicts it is an attack.
 */
#include <minivisor/guest.h>

struct mv_bitmap mv_bitmap;
void (*mv_on_accepted)(u64 start, u64 end);

void mv_bitmap_attach(struct mv_boot_params *bp)
{
	mv_bitmap.words = (u64 *)(uintptr_t)bp->bitmap_gpa;
	mv_bitmap.bytes = bp->bitmap_bytes;
	mv_bitmap.unit = bp->accept_unit;
	mv_bitmap.span = bp->bitmap_bytes * 8 * bp->accept_unit;
}

bool mv_bitmap_unaccepted(u64 gpa)
{
	if (gpa >= mv_bitmap.span)
		return false;
	u64 bit = gpa / mv_bitmap.unit;
	return (mv_bitmap.words[bit / 64] >> (bit % 64)) & 1;
}

static void clear_bits(u64 first, u64 last)
{
	for (u64 bit = first; bit < last; bit++)
		mv_bitmap.words[bit / 64] &= ~(1ull << (bit % 64));
	mv_boot_params()->stats.unaccepted_units -= last - first;
}

/* Index of the first bit in [from, to) equal to `value`, or `to`. Skips whole words. */
static u64 find_bit(u64 from, u64 to, bool value)
{
	u64 bit = from;
	while (bit < to) {
		u64 word = mv_bitmap.words[bit / 64];
		if (!value)
			word = ~word;
		word &= ~0ull << (bit % 64);
		if (word) {
			u64 found = (bit & ~63ull) + (u64)__builtin_ctzll(word);
			return found < to ? found : to;
		}
		bit = (bit & ~63ull) + 64;
	}
	return to;
}

/* A range some CPU is accepting right now, on the accepting list (Linux struct accept_range). */
struct accept_range {
	u64 start, end; /* units */
	struct accept_range *next;
};
static mv_spinlock_t unaccepted_lock;     /* Linux unaccepted_memory_lock */
static struct accept_range *accepting_list;

static __attribute__((unused)) bool overlaps_an_accept_in_flight(u64 first, u64 last)
{
	for (struct accept_range *r = accepting_list; r; r = r->next)
		if (r->end > first && r->start < last)
			return true;
	return false;
}

static __attribute__((unused)) void list_del(struct accept_range *range)
{
	struct accept_range **at = &accepting_list;
	while (*at != range)
		at = &(*at)->next;
	*at = range->next;
}

/* Linux accept_memory (drivers/firmware/efi/unaccepted_memory.c, with 50e782a86c98's
 * accepting_list): under the lock, wait until no other CPU is accepting an overlapping range
 * (in units), put ours on the list, then for each run of set bits drop the lock for the accept
 * itself (it is slow) and take it again to clear the bits. Another CPU that wants any of these
 * units waits on the list instead of reading bits we have not cleared yet and accepting them
 * a second time. */
u64 mv_accept_bitmap_range(u64 start, u64 end)
{
	end = MIN(end, mv_bitmap.span);
	if (start >= end)
		return 0;
	u64 unit = mv_bitmap.unit;
	struct accept_range range = { start / unit, (end + unit - 1) / unit, 0 };
	u64 accepted = 0;
	for (;;) {
		mv_spin_lock(&unaccepted_lock);
#ifndef MV_PLANT_NO_ACCEPTING_LIST
		if (overlaps_an_accept_in_flight(range.start, range.end)) {
			mv_spin_unlock(&unaccepted_lock);
			mv_cpu_relax();
			continue;
		}
		range.next = accepting_list;
		accepting_list = &range;
#endif
		break;
	}
	/* Planted bug (MV_PLANT_NO_ACCEPTING_LIST): the lock is still dropped around each accept,
	 * but nothing tells another CPU that these units are being accepted, so it can find the
	 * same bits still set and accept the same unit again (TDX: PAGE_ALREADY_ACCEPTED or
	 * OPERAND_BUSY, which Linux panics on; SNP: PVALIDATE CF=1). */
	for (u64 bit = find_bit(range.start, range.end, true); bit < range.end; bit = find_bit(bit, range.end, true)) {
		u64 run_end = find_bit(bit, range.end, false);
		mv_spin_unlock(&unaccepted_lock);
		mv_arch_accept(bit * unit, run_end * unit);
		if (mv_on_accepted)
			mv_on_accepted(bit * unit, run_end * unit);
		mv_spin_lock(&unaccepted_lock);
		clear_bits(bit, run_end);
		accepted += (run_end - bit) * unit;
		bit = run_end;
	}
#ifndef MV_PLANT_NO_ACCEPTING_LIST
	list_del(&range);
#endif
	mv_spin_unlock(&unaccepted_lock);
	return accepted;
}
