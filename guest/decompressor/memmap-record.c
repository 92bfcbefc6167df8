/*
 * Kleen's variant (issue 14 part 3; the design seed's review of Roedel's proposal): no validation
 * bitmap is handed on. "The decompressor will just pre-validate all the memory it needs ... and the
 * later kernel can know about it in some static way": the decompressor accepts what it uses and
 * records that in the memory map itself, by turning the accepted part of an unaccepted entry into
 * RAM (one entry becomes up to three). Built only with -DMV_TRACKING_MEMMAP (`--tracking memmap`).
 */
#include <minivisor/guest.h>
#include "memmap-record.h"

/* Contiguous RAM entries become one, so recording never leaves more entries than needed. */
static void merge_adjacent_ram(struct mv_boot_params *bp)
{
	u32 out = 0;
	for (u32 i = 0; i < bp->e820_count; i++) {
		struct mv_e820_entry e = bp->e820[i];
		struct mv_e820_entry *prev = out ? &bp->e820[out - 1] : 0;
		if (prev && prev->type == MV_E820_RAM && e.type == MV_E820_RAM && prev->addr + prev->size == e.addr) {
			prev->size += e.size;
			continue;
		}
		bp->e820[out++] = e;
	}
	bp->e820_count = out;
}

void mv_memmap_accept_and_record(struct mv_boot_params *bp, u64 start, u64 end)
{
	for (u32 i = 0; i < bp->e820_count; i++) {
		struct mv_e820_entry *e = &bp->e820[i];
		u64 e_end = e->addr + e->size;
		if (e->type != MV_E820_UNACCEPTED || e_end <= start || e->addr >= end)
			continue;
		u64 lo = MAX(start, e->addr), hi = MIN(end, e_end);
		struct mv_e820_entry pieces[3];
		u32 n = 0;
		if (e->addr < lo)
			pieces[n++] = (struct mv_e820_entry){ e->addr, lo - e->addr, MV_E820_UNACCEPTED, 0 };
		pieces[n++] = (struct mv_e820_entry){ lo, hi - lo, MV_E820_RAM, 0 };
		if (hi < e_end)
			pieces[n++] = (struct mv_e820_entry){ hi, e_end - hi, MV_E820_UNACCEPTED, 0 };
		/* Checked before accepting: a record that cannot be written must not leave accepted
		 * memory that the map still calls unaccepted (the kernel would accept it again). */
		if (bp->e820_count + n - 1 > MV_E820_MAX_ENTRIES)
			mv_fatal("memmap_record_full", bp->e820_count);
		mv_arch_accept(lo, hi);
		for (u32 j = bp->e820_count; j-- > i + 1;)
			bp->e820[j + n - 1] = bp->e820[j];
		for (u32 k = 0; k < n; k++)
			bp->e820[i + k] = pieces[k];
		bp->e820_count += n - 1;
		i += n - 1;
	}
	merge_adjacent_ram(bp);
}
