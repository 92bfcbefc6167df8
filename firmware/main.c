/*
 * minivisor firmware: the part of OVMF/TDVF that matters for memory acceptance.
 *
 *  1. CPU state: GDT, IDT (every exception reports and stops), page tables, paging on.
 *  2. Platform: TDX (CPUID 0x21) or SNP (SEV_STATUS bit 2); SNP also gets a shared GHCB page.
 *  3. Pre-accept the first `pre_accept_bytes` of RAM (approach III of the design; ALL =
 *     approach I), like OVMF SEC/PEI does for memory below 4 GiB.
 *  4. An E820 map: accepted RAM usable, the rest "unaccepted" (the seed's Usable-but-Invalid,
 *     Linux's EFI_UNACCEPTED_MEMORY), the firmware range reserved; handed over in the boot
 *     params to the decompressor.
 */
#include <minivisor/guest.h>

/* firmware/linux.S: the 64-bit boot protocol's hand-off. */
noreturn void mv_enter_linux(u64 startup_64, u64 boot_params);

static const struct mv_fw_config *fw_config(void)
{
	return (const struct mv_fw_config *)(uintptr_t)MV_FW_CONFIG_GPA;
}

static void enable_paging(u64 root)
{
	u64 cr0, cr4;
	asm volatile("mov %%cr4, %0" : "=r"(cr4));
	cr4 |= 1ull << 5; /* PAE */
	asm volatile("mov %0, %%cr4" : : "r"(cr4));
	/* SNP: CR3 carries the C-bit so the PML4 is read as private (Linux head_64.S adds
	 * sme_me_mask to CR3). */
	asm volatile("mov %0, %%cr3" : : "r"(root | mv_platform.private_mask) : "memory");
	asm volatile("mov %%cr0, %0" : "=r"(cr0));
	cr0 |= (1ull << 31) | (1ull << 16); /* PG, WP */
	asm volatile("mov %0, %%cr0" : : "r"(cr0) : "memory");
}

/* Validates the VMM-provided configuration; every bad field is a named fatal reason. */
static void check_config(const struct mv_fw_config *c)
{
	if (c->magic != MV_FW_CONFIG_MAGIC)
		mv_fatal("fw_config_bad_magic", c->magic);
	if (c->version != MV_FW_CONFIG_VERSION || c->size != MV_FW_CONFIG_SIZE)
		mv_fatal("fw_config_bad_version", ((u64)c->version << 16) | c->size);
	if (c->memory_bytes < MV_MIN_MEMORY_BYTES || c->memory_bytes > MV_MAX_MEMORY_BYTES ||
	    !IS_ALIGNED(c->memory_bytes, MV_PAGE_SIZE))
		mv_fatal("fw_config_bad_memory_bytes", c->memory_bytes);
	if (c->accept_mode != MV_ACCEPT_MODE_LAZY && c->accept_mode != MV_ACCEPT_MODE_EAGER)
		mv_fatal("fw_config_bad_accept_mode", c->accept_mode);
	if (c->accept_unit != MV_PAGE_SIZE && c->accept_unit != MV_SIZE_2M)
		mv_fatal("fw_config_bad_accept_unit", c->accept_unit);
	if (c->flags & ~(u32)MV_FW_CONFIG_FLAG_LINUX)
		mv_fatal("fw_config_bad_flags", c->flags);
	if (c->flags & MV_FW_CONFIG_FLAG_LINUX) {
		/* The kernel lies in RAM above the firmware range, where the VMM launched it. */
		if (c->guest_image_entry < MV_FIRMWARE_RESERVED_END || c->guest_image_entry >= c->memory_bytes)
			mv_fatal("fw_config_bad_linux_entry", c->guest_image_entry);
	} else if (c->guest_image_entry < MV_GUEST_IMAGE_GPA || c->guest_image_entry >= MV_GUEST_IMAGE_LIMIT) {
		mv_fatal("fw_config_bad_guest_image_entry", c->guest_image_entry);
	}
}

/* Appends [start, end) to the E820 table, merging with the previous entry of the same type. */
static void e820_add(struct mv_boot_params *bp, u64 start, u64 end, u32 type)
{
	if (start >= end)
		return;
	if (bp->e820_count) {
		struct mv_e820_entry *last = &bp->e820[bp->e820_count - 1];
		if (last->type == type && last->addr + last->size == start) {
			last->size += end - start;
			return;
		}
	}
	/* At most seven entries (RAM and unaccepted on each side of the reserved range and above 4 GiB). */
	bp->e820[bp->e820_count++] = (struct mv_e820_entry){ .addr = start, .size = end - start, .type = type };
}

/* RAM [start, end) is split at accepted_end into usable and unaccepted parts. */
static void e820_add_ram(struct mv_boot_params *bp, u64 start, u64 end, u64 accepted_end)
{
	u64 split = MIN(MAX(accepted_end, start), end);
	e820_add(bp, start, split, MV_E820_RAM);
	e820_add(bp, split, end, MV_E820_UNACCEPTED);
}

#ifdef MV_FIXTURE_MAP_FROM_CONFIG
/* Test fixture (guest/DEFENCES.md), not a planted bug: when the VMM wrote a struct
 * mv_map_override into the config page, hand its memory map (and accept unit) to the
 * decompressor unchecked, like a firmware that passes the VMM's memory description through.
 * It lets the tests attack the decompressor's memory-map checks. */
static void map_from_config(struct mv_boot_params *bp)
{
	const struct mv_map_override *o = (const void *)(uintptr_t)(MV_FW_CONFIG_GPA + MV_MAP_OVERRIDE_OFFSET);
	if (o->magic != MV_MAP_OVERRIDE_MAGIC)
		return;
	u32 count = MIN(o->e820_count, (u32)MV_MAP_OVERRIDE_MAX_ENTRIES);
	if (count) {
		memcpy(bp->e820, o->e820, count * sizeof(o->e820[0]));
		bp->e820_count = o->e820_count;
	}
	if (o->accept_unit)
		bp->accept_unit = o->accept_unit;
}
#endif

void firmware_main(void)
{
	mv_cpu_init();
	mv_platform_detect();

	/* Boot params and page tables live in the pre-accepted temporary RAM. */
	struct mv_boot_params *bp = mv_boot_params();
	memset(bp, 0, MV_BOOT_PARAMS_BYTES);
	mv_platform_use_stats(&bp->stats);
	bp->magic = MV_BOOT_PARAMS_MAGIC;
	bp->version = MV_BOOT_PARAMS_VERSION;
	bp->size = sizeof(*bp);
	bp->platform = mv_platform.kind;
	bp->shared_mask = mv_platform.shared_mask;
	bp->private_mask = mv_platform.private_mask;
	bp->pt_pool_gpa = MV_PT_POOL_GPA;
	bp->pt_pool_bytes = MV_PT_POOL_BYTES;
	bp->pt_root_gpa = MV_PT_POOL_GPA;
	bp->pt_pool_used = MV_PAGE_SIZE;
	memset((void *)(uintptr_t)bp->pt_root_gpa, 0, MV_PAGE_SIZE);

	/* Map only what the firmware touches: low RAM, temporary RAM and the initial image. */
	mv_map_private(bp, 0, MV_FIRMWARE_RESERVED_END);
	if (mv_platform.kind == MV_PLATFORM_SNP)
		mv_map_shared(bp, MV_GHCB_GPA, MV_GHCB_GPA + MV_PAGE_SIZE);
	enable_paging(bp->pt_root_gpa);

	if (mv_platform.kind == MV_PLATFORM_SNP) {
		mv_snp_setup_ghcb(MV_GHCB_GPA);
		bp->ghcb_gpa = MV_GHCB_GPA;
	} else {
		mv_tdx_console_setup(bp); /* one exit per console line from here on */
	}
	mv_report_stage("firmware");

	const struct mv_fw_config *cfg = fw_config();
	check_config(cfg);
	if (cfg->platform_hint != MV_PLATFORM_NONE && cfg->platform_hint != mv_platform.kind)
		bp->platform_hint_mismatch = 1; /* the hint is untrusted: report, never obey */
	bp->memory_bytes = cfg->memory_bytes;
	bp->workload_bytes = cfg->workload_bytes;
	bp->seed = cfg->seed;
	bp->accept_mode = cfg->accept_mode;
	bp->accept_unit = cfg->accept_unit;

	/* Pre-accept [0, accepted_end) of RAM: 2 MiB granular (rounded up) like OVMF's
	 * PcdTdxAcceptPageSize, never past the end of RAM, never the pre-accepted firmware range
	 * (accepting it again would be a double accept), never the hole below 4 GiB that holds the
	 * firmware volume (pre-accepted and not RAM). RAM is [0, MV_RAM_HOLE_GPA) and, for a guest
	 * above the hole, [4 GiB, memory): OVMF's PlatformInitLib splits it the same way. */
	u64 memory = cfg->memory_bytes;
	u64 low_end = MIN(memory, (u64)MV_RAM_HOLE_GPA);
	u64 accepted_end = cfg->pre_accept_bytes == MV_PRE_ACCEPT_ALL
				   ? memory
				   : MIN(ALIGN_UP(MIN(cfg->pre_accept_bytes, memory), MV_SIZE_2M), memory);
	mv_arch_accept(0, MIN(accepted_end, MV_FIRMWARE_RESERVED_GPA));
	if (accepted_end > MV_FIRMWARE_RESERVED_END)
		mv_arch_accept(MV_FIRMWARE_RESERVED_END, MIN(accepted_end, low_end));
	if (accepted_end > MV_RAM_HOLE_END)
		mv_arch_accept(MV_RAM_HOLE_END, accepted_end);

	e820_add_ram(bp, 0, MV_FIRMWARE_RESERVED_GPA, accepted_end);
	e820_add(bp, MV_FIRMWARE_RESERVED_GPA, MV_FIRMWARE_RESERVED_END, MV_E820_RESERVED);
	e820_add_ram(bp, MV_FIRMWARE_RESERVED_END, low_end, accepted_end);
	if (memory > MV_RAM_HOLE_END)
		e820_add_ram(bp, MV_RAM_HOLE_END, memory, accepted_end);

#ifdef MV_FIXTURE_MAP_FROM_CONFIG
	map_from_config(bp);
#endif
	mv_report_stat("firmware_accepted_bytes", bp->stats.accepted_bytes[MV_STAGE_FIRMWARE]);
	mv_report_stat("e820_entries", bp->e820_count);
	if (bp->platform_hint_mismatch)
		mv_report_stat("platform_hint_mismatch", 1);

	if (cfg->flags & MV_FW_CONFIG_FLAG_LINUX) {
		/* boot.rst "64-bit Boot Protocol": identity-mapped page tables covering the kernel's
		 * init_size, the zero page and the command line (here: all of RAM, 2 MiB/1 GiB leaves;
		 * the kernel's own #PF handler maps what it needs later), then startup_64. */
		mv_map_private(bp, 0, memory);
		mv_flush_tlb();
		mv_report_stat("linux_entry", cfg->guest_image_entry);
		mv_report_stage("decompressor"); /* Linux's own, from here on */
		mv_enter_linux(cfg->guest_image_entry, MV_LINUX_BOOT_DATA_GPA);
	}
	mv_enter(cfg->guest_image_entry, (u64)(uintptr_t)bp, MV_DECOMPRESSOR_STACK_TOP);
}
