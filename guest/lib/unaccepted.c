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

u64 mv_accept_bitmap_range(u64 start, u64 end)
{
	end = MIN(end, mv_bitmap.span);
	if (start >= end)
		return 0;
	u64 unit = mv_bitmap.unit;
	u64 first = start / unit, last = (end + unit - 1) / unit;
	u64 accepted = 0;
	for (u64 bit = find_bit(first, last, true); bit < last; bit = find_bit(bit, last, true)) {
		u64 run_end = find_bit(bit, last, false);
		mv_arch_accept(bit * unit, run_end * unit);
		clear_bits(bit, run_end);
		if (mv_on_accepted)
			mv_on_accepted(bit * unit, run_end * unit);
		accepted += (run_end - bit) * unit;
		bit = run_end;
	}
	return accepted;
}
