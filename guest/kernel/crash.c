/*
 * kdump between two kernel stubs (handover.h). Compiled twice: into the first kernel (load the
 * crash kernel at boot, panic into it at a seeded point of the workload) and, with
 * MV_KEXEC_TARGET, into the crash kernel (dump the first kernel's accepted memory).
 */
#include "handover.h"

static struct mv_crash_record *record(void)
{
	return (struct mv_crash_record *)(uintptr_t)MV_KEXEC_RECORD_GPA;
}

#ifndef MV_KEXEC_TARGET
extern const u8 mv_kexec_image_start[], mv_kexec_image_end[];

/* crashkernel=: the region is reserved, accepted and loaded at boot (kexec -p), so a panic
 * needs no allocation and no accept. */
void mv_handover_boot(struct mv_boot_params *bp, const struct mv_handover_ops *ops)
{
	u64 end = MV_KEXEC_RECORD_GPA + MV_PAGE_SIZE;
	ops->reserve(MV_KEXEC_REGION_GPA, end);
	mv_map_private(bp, MV_KEXEC_REGION_GPA, end);
	ops->accept(MV_KEXEC_REGION_GPA, end - MV_KEXEC_REGION_GPA);
	u64 image_bytes = (u64)(mv_kexec_image_end - mv_kexec_image_start);
	if (image_bytes == 0 || image_bytes > MV_KEXEC_REGION_BYTES)
		mv_fatal("crash_kernel_image_too_large", image_bytes);
	u8 *dst = (u8 *)(uintptr_t)MV_KEXEC_REGION_GPA;
	memcpy(dst, mv_kexec_image_start, image_bytes);
	memset(dst + image_bytes, 0, MV_KEXEC_REGION_BYTES - image_bytes);
	struct mv_crash_record *r = record();
	*r = (struct mv_crash_record){ .magic = MV_CRASH_RECORD_MAGIC };
}

u64 mv_handover_panic_chunk(struct mv_boot_params *bp, u64 chunks)
{
	u64 rng = bp->seed ^ 0x70616e6963ull; /* "panic" */
	return chunks ? mv_splitmix64(&rng) % chunks : 0;
}

/* Linux panic() -> __crash_kexec() -> machine_crash_shutdown() -> the crash kernel's entry. */
noreturn void mv_handover_panic(struct mv_boot_params *bp, u64 chunk)
{
	struct mv_crash_record *r = record();
	r->panic_chunk = chunk;
	r->accept_calls_at_panic = bp->stats.accept_calls_4k + bp->stats.accept_calls_2m;
	mv_report_stat("crash_panic_chunk", chunk);
	mv_report_stat("crash_accept_calls_at_panic", r->accept_calls_at_panic);
	mv_console_flush();
	asm volatile("cli; jmp *%1" : : "D"(bp), "r"(MV_KEXEC_REGION_GPA) : "memory");
	__builtin_unreachable();
}

#else /* the crash kernel */

/* 64-bit FNV-1a over little-endian qwords (one multiply per qword, not per byte: the dump reads
 * every accepted byte, and the host recomputes it the same way, src/boot/crash-dump.ts). */
#define DUMP_DIGEST_BASIS 0xcbf29ce484222325ull
#define DUMP_DIGEST_PRIME 0x100000001b3ull

static u64 ranges, dumped_bytes, skipped_bytes;

static void dump_accepted(struct mv_boot_params *bp, u64 start, u64 end)
{
	/* The crash kernel's own region is not the first kernel's memory (Linux leaves the
	 * crashkernel region out of /proc/vmcore's ELF headers). */
	u64 own_start = MV_KEXEC_REGION_GPA, own_end = MV_KEXEC_RECORD_GPA + MV_PAGE_SIZE;
	if (start < own_start && end > own_start) {
		dump_accepted(bp, start, own_start);
		dump_accepted(bp, own_start, end);
		return;
	}
	if (start < own_end && end > own_end) {
		dump_accepted(bp, start, own_end);
		dump_accepted(bp, own_end, end);
		return;
	}
	if (start >= own_start && end <= own_end)
		return;
	mv_map_private(bp, start, end);
	u64 h = DUMP_DIGEST_BASIS;
	for (const u64 *q = (const u64 *)(uintptr_t)start; q < (const u64 *)(uintptr_t)end; q++)
		h = (h ^ *q) * DUMP_DIGEST_PRIME;
	/* One stat triple per range: dump_<n>_start, dump_<n>_end, dump_<n>_digest. */
	char name[32] = "dump_";
	u64 n = ranges++, digits = 1;
	for (u64 v = n; v >= 10; v /= 10)
		digits++;
	for (u64 i = 0, v = n; i < digits; i++, v /= 10)
		name[5 + digits - 1 - i] = (char)('0' + v % 10);
	char *tail = name + 5 + digits;
	memcpy(tail, "_start", 7);
	mv_report_stat(name, start);
	memcpy(tail, "_end", 5);
	mv_report_stat(name, end);
	memcpy(tail, "_digest", 8);
	mv_report_stat(name, h);
	dumped_bytes += end - start;
}

/* /proc/vmcore over the first kernel's RAM: accepted runs are read and digested; unaccepted
 * units are skipped without touching them and count as zeroes (Linux: the vmcore pfn_is_ram
 * callback returns !pfn_is_unaccepted_memory(), drivers/firmware/efi/unaccepted_memory.c), so
 * the crash kernel never takes a #VE/#VC and never accepts or validates anything. */
noreturn void mv_crash_kernel_main(struct mv_boot_params *bp)
{
	struct mv_crash_record *r = record();
	if (r->magic != MV_CRASH_RECORD_MAGIC)
		mv_fatal("crash_record_missing", r->magic);
	u64 unit = mv_bitmap.unit;
	for (u32 i = 0; i < bp->e820_count; i++) {
		const struct mv_e820_entry *e = &bp->e820[i];
		if (e->type != MV_E820_RAM && e->type != MV_E820_UNACCEPTED)
			continue;
		u64 end = e->addr + e->size, run = e->addr;
		bool run_accepted = !mv_bitmap_unaccepted(run);
		for (u64 at = e->addr; at < end;) {
			u64 next = MIN(ALIGN_DOWN(at, unit) + unit, end);
			bool accepted = !mv_bitmap_unaccepted(at);
			if (accepted != run_accepted) {
				if (run_accepted)
					dump_accepted(bp, run, at);
				else
					skipped_bytes += at - run;
				run = at;
				run_accepted = accepted;
			}
			at = next;
		}
		if (run_accepted)
			dump_accepted(bp, run, end);
		else
			skipped_bytes += end - run;
	}
	mv_report_stat("dump_ranges", ranges);
	mv_report_stat("dump_accepted_bytes", dumped_bytes);
	mv_report_stat("dump_unaccepted_bytes_skipped", skipped_bytes);
	mv_report_stat("dump_panic_chunk", r->panic_chunk);
	mv_report_done();
	mv_halt_forever();
}
#endif
