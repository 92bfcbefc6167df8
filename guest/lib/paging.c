/*
 * 4-level page tables with 2 MiB and 1 GiB leaves, built lazily: a stage maps a range just before it
 * touches it, so the tables grow with the memory in use, not with the guest size (a 1 TiB
 * guest costs a handful of table pages). Table pages come from the boot-params pool in
 * pre-accepted temporary RAM, which the page walk must be able to read.
 *
 * Private mappings: identity, C-bit set on SNP (also in CR3 and table pointers, as Linux's
 * __sme_pa does), no shared bit on TDX. Shared mappings: MV_SHARED_WINDOW_VA + GPA, with the
 * TDX shared bit set or the SNP C-bit clear.
 */
#include <minivisor/guest.h>

#define PTE_PRESENT   (1ull << 0)
#define PTE_WRITABLE  (1ull << 1)
#define PTE_LARGE     (1ull << 7)
#define PTE_ADDR_MASK 0x000ffffffffff000ull
#define SIZE_1G       0x40000000ull

static u64 table_pointer_bits(void)
{
	return PTE_PRESENT | PTE_WRITABLE | mv_platform.private_mask;
}

static u64 *alloc_table(struct mv_boot_params *bp)
{
	if (bp->pt_pool_used + MV_PAGE_SIZE > bp->pt_pool_bytes)
		mv_fatal("page_table_pool_exhausted", bp->pt_pool_used);
	u64 *table = (u64 *)(uintptr_t)(bp->pt_pool_gpa + bp->pt_pool_used);
	bp->pt_pool_used += MV_PAGE_SIZE;
	memset(table, 0, MV_PAGE_SIZE);
	return table;
}

static u64 *child_table(struct mv_boot_params *bp, u64 *table, u64 index)
{
	u64 entry = table[index];
	if (entry & PTE_PRESENT) { /* never a large page: leaves are 2 MiB, one level below */
		u64 addr = entry & PTE_ADDR_MASK & ~mv_platform.private_mask & ~mv_platform.shared_mask;
		return (u64 *)(uintptr_t)addr;
	}
	u64 *child = alloc_table(bp);
	table[index] = (u64)(uintptr_t)child | table_pointer_bits();
	return child;
}

/* Installs a 1 GiB leaf in an empty PDPT slot; returns false when the slot is in use (a 2 MiB
 * table or a leaf already there), so the caller maps that GiB with 2 MiB leaves instead. */
static bool map_1g(struct mv_boot_params *bp, u64 va, u64 leaf)
{
	u64 *pml4 = (u64 *)(uintptr_t)bp->pt_root_gpa;
	u64 *pdpt = child_table(bp, pml4, (va >> 39) & 511);
	u64 *slot = &pdpt[(va >> 30) & 511];
	if (*slot & PTE_PRESENT)
		return false;
	*slot = leaf;
	return true;
}

/* Installs a 2 MiB leaf; returns true when the slot was empty. An existing leaf is kept, and a
 * 1 GiB leaf already covering `va` maps it (both are the same identity mapping). */
static bool map_2m(struct mv_boot_params *bp, u64 va, u64 leaf)
{
	u64 *pml4 = (u64 *)(uintptr_t)bp->pt_root_gpa;
	u64 *pdpt = child_table(bp, pml4, (va >> 39) & 511);
	if ((pdpt[(va >> 30) & 511] & (PTE_PRESENT | PTE_LARGE)) == (PTE_PRESENT | PTE_LARGE))
		return false;
	u64 *pd = child_table(bp, pdpt, (va >> 30) & 511);
	u64 *slot = &pd[(va >> 21) & 511];
	if (*slot & PTE_PRESENT)
		return false;
	*slot = leaf;
	return true;
}

static void check_range(u64 start, u64 end)
{
	if (start > end || end > MV_MAX_MEMORY_BYTES)
		mv_fatal("map_range_out_of_bounds", end);
}

/* Whole aligned GiBs get 1 GiB leaves: accepting all of a large guest up front (SNP PVALIDATE
 * needs a mapping) then costs one table page per 512 GiB instead of one per GiB, so 128 GiB fits
 * the pool easily. */
/* Table pages come from one pool and a missing table is allocated on the way down: two CPUs
 * mapping at once would each allocate one for the same slot, and one's mappings would vanish. */
static mv_spinlock_t page_table_lock;

void mv_map_private(struct mv_boot_params *bp, u64 start, u64 end)
{
	check_range(start, end);
	mv_spin_lock(&page_table_lock);
	u64 bits = PTE_PRESENT | PTE_WRITABLE | PTE_LARGE | mv_platform.private_mask;
	for (u64 pa = ALIGN_DOWN(start, MV_SIZE_2M); pa < end;) {
		if (IS_ALIGNED(pa, SIZE_1G) && end - pa >= SIZE_1G && map_1g(bp, pa, pa | bits)) {
			pa += SIZE_1G;
			continue;
		}
		map_2m(bp, pa, pa | bits);
		pa += MV_SIZE_2M;
	}
	mv_spin_unlock(&page_table_lock);
}

void mv_map_shared(struct mv_boot_params *bp, u64 start, u64 end)
{
	check_range(start, end);
	mv_spin_lock(&page_table_lock);
	for (u64 pa = ALIGN_DOWN(start, MV_SIZE_2M); pa < end; pa += MV_SIZE_2M)
		map_2m(bp, MV_SHARED_WINDOW_VA + pa,
		       pa | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE | mv_platform.shared_mask);
	mv_spin_unlock(&page_table_lock);
}

void mv_flush_tlb(void)
{
	u64 cr3 = mv_read_cr3();
	asm volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
}
