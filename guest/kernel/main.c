/*
 * minivisor kernel: a page allocator over all usable RAM that accepts memory lazily when it
 * hands it out (Linux mm/page_alloc.c + drivers/firmware/efi/unaccepted_memory.c, reduced to
 * their acceptance behaviour), a fixed-size workload, and the final report.
 */
#include <minivisor/guest.h>
#include "smp.h"
#ifdef MV_HANDOVER
#include "handover.h"
#endif
#include "tracking.h"

#define CHUNK_BYTES      0x100000ull /* workload allocation size: below a 2 MiB unit on purpose */
#define MAX_CHUNKS       4096
_Static_assert(MAX_CHUNKS <= MV_KERNEL_MAX_CHUNKS, "tracking.h bounds the allocations");
/* Free extents: one per E820 range, plus the holes the workload punches by freeing every other
 * chunk (at most MAX_CHUNKS / 2 + 1), plus the boot-time reservations that split one. Sized for
 * the largest workload (MAX_CHUNKS chunks), so a valid --workload never fills it; 16 bytes each. */
#define MAX_EXTENTS      (MV_E820_MAX_ENTRIES + MAX_CHUNKS / 2 + 8)
#define CONVERT_BIG      MV_SIZE_2M  /* one 2 MiB-aligned buffer: the 2M accept path */
#define CONVERT_SMALL    0x4000ull   /* 16 KiB: the 4K path */

static struct mv_boot_params *bp;

/* ---------------- statistics ---------------- */
static u64 workload_bytes_verified, conversions, reallocated_bytes;
static volatile u64 zero_checked_pages;

/* ---------------- acceptance ---------------- */

/* Linux accept_memory (drivers/firmware/efi/unaccepted_memory.c): when the range ends on a
 * unit boundary, accept one more unit, because load_unaligned_zeropad() may read across the
 * end and a TDX guest cannot recover from touching unaccepted memory. Bits already clear are
 * never accepted again, so freed and reallocated memory costs nothing. */
static void accept_memory(u64 start, u64 size)
{
	u64 end = start + size; /* sizes are the kernel's own, at most a workload chunk */
	if (end % tracking_unit(bp) == 0)
		end += tracking_unit(bp);
	tracking_accept_range(start, end);
}

/* The qwords of a page the workload writes and the zero checks read: the first (a tag), the last
 * (the pattern), and the first 64 bytes for the zero checks. Page-granular on purpose: whatever a
 * VMM can do to private memory (REMOVE+AUG, RMPUPDATE, a remap or replay) replaces whole 4 KiB
 * pages, so one tagged qword per page sees it. Filling and scanning all 512 qwords of every page
 * saw nothing more and cost 256 times the guest instructions (a kernel-stage fuzz execution was
 * 1.36M instructions, 97% of them REP STOSQ/SCASQ steps over the 2 MiB conversion buffer). */
#define PAGE_QWORDS      (MV_PAGE_SIZE / 8)

/* The page's first 64 bytes and its last qword are all zero: the same qwords and the same verdict
 * as the REPE SCASQ helper this replaces (mv_scan64(p, 0, 8) == 8 && p[PAGE_QWORDS - 1] == 0), a
 * page with any of them non-zero still fails, without the call and the counted step per qword for
 * every page of the 2 MiB conversion buffer (issue 10). */
static bool page_zero(const u64 *p)
{
	return (p[0] | p[1] | p[2] | p[3] | p[4] | p[5] | p[6] | p[7] | p[PAGE_QWORDS - 1]) == 0;
}

/* TDX zeroes a page when it is accepted (TDG.MEM.PAGE.ACCEPT, module init_sept_4k_page):
 * check the first 64 bytes and the last qword of every freshly accepted page. */
static void check_fresh_pages_zero(u64 start, u64 end)
{
	mv_map_private(bp, start, end);
	for (u64 page = start; page < end; page += MV_PAGE_SIZE) {
		if (!page_zero((const u64 *)(uintptr_t)page))
			mv_fatal("tdx_accepted_page_not_zero", page);
		mv_atomic_add(&zero_checked_pages, 1);
	}
}

/* ---------------- page allocator ---------------- */
/* Free memory as a sorted list of extents: its size depends on fragmentation, never on the
 * amount of RAM, so a 1 TiB guest costs what a 64 MiB one does. */
struct extent { u64 start, end; };
static struct extent free_list[MAX_EXTENTS];
static u32 free_count;

static void insert_extent(u32 at, u64 start, u64 end)
{
	if (free_count == MAX_EXTENTS)
		mv_fatal("allocator_extent_table_full", start);
	for (u32 i = free_count; i > at; i--)
		free_list[i] = free_list[i - 1];
	free_list[at] = (struct extent){ start, end };
	free_count++;
}

static void remove_extent(u32 at)
{
	for (u32 i = at; i + 1 < free_count; i++)
		free_list[i] = free_list[i + 1];
	free_count--;
}

/* Returns [start, end) to the allocator, merging neighbours; a double free is fatal. */
static void free_pages(u64 start, u64 end)
{
	u32 at = 0;
	while (at < free_count && free_list[at].start < start)
		at++;
	if ((at > 0 && free_list[at - 1].end > start) || (at < free_count && free_list[at].start < end))
		mv_fatal("allocator_double_free", start);
	insert_extent(at, start, end);
	if (at + 1 < free_count && free_list[at].end == free_list[at + 1].start) {
		free_list[at].end = free_list[at + 1].end;
		remove_extent(at + 1);
	}
	if (at > 0 && free_list[at - 1].end == free_list[at].start) {
		free_list[at - 1].end = free_list[at].end;
		remove_extent(at);
	}
}

/* Removes [start, end) from whatever free extents it overlaps (boot-time reservations). */
static void reserve_pages(u64 start, u64 end)
{
	for (u32 i = 0; i < free_count; i++) {
		struct extent *e = &free_list[i];
		if (e->end <= start || e->start >= end)
			continue;
		if (e->start < start && e->end > end) {
			u64 tail = e->end;
			e->end = start;
			insert_extent(i + 1, end, tail);
			return;
		}
		if (e->start >= start && e->end <= end) {
			remove_extent(i--);
			continue;
		}
		if (e->start < start)
			e->end = start;
		else
			e->start = end;
	}
}

/* First fit: low addresses first, so the workload never wanders through a huge guest. */
static u64 alloc_pages(u64 bytes, u64 align)
{
	for (u32 i = 0; i < free_count; i++) {
		struct extent *e = &free_list[i];
		u64 start = ALIGN_UP(e->start, align);
		if (start >= e->end || e->end - start < bytes)
			continue;
		u64 old_start = e->start, old_end = e->end;
		remove_extent(i);
		if (start + bytes < old_end)
			insert_extent(i, start + bytes, old_end);
		if (old_start < start)
			insert_extent(i, old_start, start);
		return start;
	}
	mv_fatal("out_of_memory", bytes);
}

/* Allocation = take pages, map them, accept what is still unaccepted (lazy mode). The free
 * list is the zone lock's; the accept runs outside it, as Linux accepts outside zone->lock. */
static mv_spinlock_t allocator_lock;

static u64 kalloc(u64 bytes, u64 align)
{
	mv_spin_lock(&allocator_lock);
	u64 pa = alloc_pages(bytes, align);
	mv_spin_unlock(&allocator_lock);
	mv_map_private(bp, pa, pa + bytes);
	accept_memory(pa, bytes);
	return pa;
}

static void allocator_init(void)
{
	for (u32 i = 0; i < bp->e820_count; i++) {
		const struct mv_e820_entry *e = &bp->e820[i];
		if (e->type == MV_E820_RAM || e->type == MV_E820_UNACCEPTED)
			free_pages(e->addr, e->addr + e->size);
	}
	reserve_pages(0, MV_PAGE_SIZE); /* keep GPA 0 out of use: null pointers must fault */
	reserve_pages(bp->kernel_gpa, bp->kernel_gpa + bp->kernel_bytes);
	reserve_pages(bp->bitmap_gpa, bp->bitmap_gpa + ALIGN_UP(bp->bitmap_bytes, MV_PAGE_SIZE));
}

/* ---------------- workload ---------------- */

/* Pattern fill, per page: the first qword = pattern ^ GPA (a tag: two GPAs backed by the same
 * host page, or a page left from another fill, show up as a mismatch), the last = pattern. */
static void fill_pattern(void *va, u64 gpa, u64 bytes, u64 pattern)
{
	for (u64 off = 0; off < bytes; off += MV_PAGE_SIZE) {
		u64 *page = (u64 *)((u8 *)va + off);
		page[0] = pattern ^ (gpa + off);
		page[PAGE_QWORDS - 1] = pattern;
	}
}

static void verify_pattern(const void *va, u64 gpa, u64 bytes, u64 pattern)
{
	for (u64 off = 0; off < bytes; off += MV_PAGE_SIZE) {
		const u64 *page = (const u64 *)((const u8 *)va + off);
		if (page[0] != (pattern ^ (gpa + off)) || page[PAGE_QWORDS - 1] != pattern)
			mv_fatal("workload_pattern_mismatch", gpa + off);
	}
	workload_bytes_verified += bytes;
}

/* Private -> shared -> private round trip (Linux set_memory_decrypted/encrypted), then
 * re-accept before reuse (seed point 8: memory that was shared must be validated again). */
static void convert_round_trip(u64 pa, u64 bytes, u64 *rng)
{
	void *private_va = (void *)(uintptr_t)pa;
	fill_pattern(private_va, pa, bytes, mv_splitmix64(rng));

	if (mv_platform.kind == MV_PLATFORM_TDX) {
		mv_tdx_map_gpa(pa, bytes, true);
	} else {
		/* SNP order: rescind the validation, then make it shared (Linux __set_pages_state). */
		mv_snp_pvalidate_range(pa, bytes, false);
		mv_snp_psc(pa, bytes, SNP_PSC_SHARED);
	}
	mv_map_shared(bp, pa, pa + bytes);
	u64 shared_pattern = mv_splitmix64(rng);
	fill_pattern(mv_shared_ptr(pa), pa, bytes, shared_pattern);
	verify_pattern(mv_shared_ptr(pa), pa, bytes, shared_pattern);

	if (mv_platform.kind == MV_PLATFORM_TDX)
		mv_tdx_map_gpa(pa, bytes, false); /* then ACCEPT: Linux tdx_enc_status_changed */
#ifdef MV_PLANT_REACCEPT_SKIPPED
	/* Planted bug: the page-state change back to private is taken as enough, no re-accept, and
	 * the memory is used as the accept would have left it on TDX, zeroed: the second qword of each
	 * page counts the round trips it went through, from that zero (a read before any write). */
	if (mv_platform.kind == MV_PLATFORM_SNP) {
		mv_snp_psc(pa, bytes, SNP_PSC_PRIVATE);
	} else {
		for (u64 off = 0; off < bytes; off += MV_PAGE_SIZE)
			((volatile u64 *)(uintptr_t)(pa + off))[1] += 1;
	}
#else
	mv_arch_accept(pa, pa + bytes);       /* TDX ACCEPT; SNP PSC private + PVALIDATE */
	if (mv_platform.kind == MV_PLATFORM_TDX) {
		for (u64 off = 0; off < bytes; off += MV_PAGE_SIZE) {
			if (!page_zero((const u64 *)(uintptr_t)(pa + off)))
				mv_fatal("tdx_reaccepted_page_not_zero", pa + off);
		}
		zero_checked_pages += bytes / MV_PAGE_SIZE;
	}
#endif
	u64 private_pattern = mv_splitmix64(rng);
	fill_pattern(private_va, pa, bytes, private_pattern);
	verify_pattern(private_va, pa, bytes, private_pattern);
	conversions++;
}

static u64 chunks[MAX_CHUNKS];
static u64 patterns[MAX_CHUNKS];
static u64 chunk_count;
static volatile u64 next_chunk;

#if defined(MV_HANDOVER_CRASH) && !defined(MV_KEXEC_TARGET)
static u64 panic_chunk; /* --handover crash: where the workload panics (one vCPU only) */
#endif

/* Run on every CPU at once: take the next chunk number, allocate (and so accept) the chunk,
 * fill it. Neighbouring chunks share a 2 MiB unit and the guard unit past each, so CPUs keep
 * asking to accept the same units: the accepting list is what keeps that to one accept each. */
static void allocate_chunks(void)
{
	for (u64 i = mv_atomic_fetch_add(&next_chunk, 1); i < chunk_count; i = mv_atomic_fetch_add(&next_chunk, 1)) {
#if defined(MV_HANDOVER_CRASH) && !defined(MV_KEXEC_TARGET)
		if (i == panic_chunk)
			mv_handover_panic(bp, i);
#endif
		chunks[i] = kalloc(CHUNK_BYTES, MV_PAGE_SIZE);
		u64 state = bp->seed ^ 0x6368756e6b000000ull ^ i; /* "chunk" */
		patterns[i] = mv_splitmix64(&state);
		fill_pattern((void *)(uintptr_t)chunks[i], chunks[i], CHUNK_BYTES, patterns[i]);
	}
}

static void workload(void)
{
	u64 count = (bp->workload_bytes + CHUNK_BYTES - 1) / CHUNK_BYTES;
	if (count > MAX_CHUNKS)
		mv_fatal("workload_too_large", bp->workload_bytes);
	u64 rng = bp->seed ^ 0x776f726b6c6f6164ull; /* "workload" */
	if (mv_platform.kind == MV_PLATFORM_TDX)
		mv_on_accepted = check_fresh_pages_zero;

	chunk_count = count;
#if defined(MV_HANDOVER_CRASH) && !defined(MV_KEXEC_TARGET)
	panic_chunk = mv_handover_panic_chunk(bp, count);
#endif
	smp_run_on_all(allocate_chunks, kalloc);
	for (u64 i = 0; i < count; i++)
		verify_pattern((const void *)(uintptr_t)chunks[i], chunks[i], CHUNK_BYTES, patterns[i]);

	u64 big = kalloc(CONVERT_BIG, MV_SIZE_2M);
	u64 small = kalloc(CONVERT_SMALL, MV_PAGE_SIZE);
	convert_round_trip(big, CONVERT_BIG, &rng);
	convert_round_trip(small, CONVERT_SMALL, &rng);

	/* Free every other chunk and allocate again: the memory is still accepted (freeing does
	 * not invalidate, seed point 8), so no accept may happen. */
	for (u64 i = 1; i < count; i += 2)
		free_pages(chunks[i], chunks[i] + CHUNK_BYTES);
	u64 accepted_before = bp->stats.accepted_bytes[MV_STAGE_KERNEL];
	u64 calls_before = bp->stats.accept_calls_4k + bp->stats.accept_calls_2m;
	for (u64 i = 1; i < count; i += 2) {
		chunks[i] = alloc_pages(CHUNK_BYTES, MV_PAGE_SIZE);
		mv_map_private(bp, chunks[i], chunks[i] + CHUNK_BYTES);
		if (tracking_unaccepted(chunks[i]) || tracking_unaccepted(chunks[i] + CHUNK_BYTES - 1))
			mv_fatal("reallocated_memory_not_accepted", chunks[i]);
		accept_memory(chunks[i], CHUNK_BYTES);
		patterns[i] = mv_splitmix64(&rng);
		fill_pattern((void *)(uintptr_t)chunks[i], chunks[i], CHUNK_BYTES, patterns[i]);
		reallocated_bytes += CHUNK_BYTES;
	}
	if (bp->stats.accepted_bytes[MV_STAGE_KERNEL] != accepted_before ||
	    bp->stats.accept_calls_4k + bp->stats.accept_calls_2m != calls_before)
		mv_fatal("reallocation_accepted_again", accepted_before);
	/* Reallocated chunks in full; the others by their per-page tags (cheap, still catches a
	 * page the conversions or the hypervisor disturbed). */
	for (u64 i = 0; i < count; i++) {
		if (i % 2) {
			verify_pattern((const void *)(uintptr_t)chunks[i], chunks[i], CHUNK_BYTES, patterns[i]);
			continue;
		}
		for (u64 off = 0; off < CHUNK_BYTES; off += MV_PAGE_SIZE)
			if (*(const u64 *)(uintptr_t)(chunks[i] + off) != (patterns[i] ^ (chunks[i] + off)))
				mv_fatal("workload_tag_mismatch", chunks[i] + off);
	}
	mv_on_accepted = 0;
}

/* ---------------- main ---------------- */

void kernel_main(struct mv_boot_params *params)
{
	/* Only our decompressor enters here, with the boot params it checked and extended (the
	 * bitmap and the kernel range are its own choices). */
	bp = params;
	mv_cpu_init();
	mv_platform_adopt(bp, MV_STAGE_KERNEL);
#ifndef MV_KEXEC_TARGET
	mv_report_stage("kernel");
#endif
	tracking_attach(bp);
#ifdef MV_CRASH_KERNEL
	mv_crash_kernel_main(bp);
#endif
	allocator_init();
#if defined(MV_HANDOVER) && !defined(MV_CRASH_KERNEL)
	static const struct mv_handover_ops handover_ops = { reserve_pages, kalloc, accept_memory };
	mv_handover_boot(bp, &handover_ops);
#endif

	if (bp->accept_mode == MV_ACCEPT_MODE_EAGER) {
		/* accept_memory=eager: everything now, through the same bitmap path. */
		for (u32 i = 0; i < bp->e820_count; i++)
			if (bp->e820[i].type == MV_E820_UNACCEPTED)
				tracking_accept_range(bp->e820[i].addr, bp->e820[i].addr + bp->e820[i].size);
	}

	workload();
	smp_finish();
#if defined(MV_HANDOVER_KEXEC) && !defined(MV_KEXEC_TARGET)
	mv_handover_kexec(bp, &handover_ops);
#endif

	const struct mv_accept_stats *s = &bp->stats;
	mv_report_stat("kernel_accepted_bytes", s->accepted_bytes[MV_STAGE_KERNEL]);
	mv_report_stat("accepted_bytes_total", s->accepted_bytes[MV_STAGE_FIRMWARE] +
						      s->accepted_bytes[MV_STAGE_DECOMPRESSOR] +
						      s->accepted_bytes[MV_STAGE_KERNEL]);
	mv_report_stat("accept_calls_4k", s->accept_calls_4k);
	mv_report_stat("accept_calls_2m", s->accept_calls_2m);
	mv_report_stat("size_mismatch_fallbacks", s->size_mismatch_fallbacks);
	mv_report_stat("page_state_requests", s->psc_requests);
	mv_report_stat("unaccepted_bytes_remaining", tracking_unaccepted_bytes(s));
	mv_report_stat("workload_bytes_verified", workload_bytes_verified);
	mv_report_stat("reallocated_bytes", reallocated_bytes);
	mv_report_stat("conversions", conversions);
	mv_report_stat("zero_checked_pages", zero_checked_pages);
	mv_report_stat("cpus", smp_cpu_count());
#if defined(MV_HANDOVER_KEXEC) && defined(MV_KEXEC_TARGET)
	mv_handover_report(bp);
#endif
	tracking_report();
	mv_report_done();
	mv_halt_forever();
}
