/*
 * minivisor boot ABI: every structure and address that crosses a boundary between the VMM,
 * the firmware, the decompressor and the kernel. src/boot/layout.ts mirrors the numbers;
 * test/unit/boot/layout.test.ts parses this file and fails when the two disagree, so every
 * value here is a plain `#define NAME 0x...` on one line.
 *
 * Guest-physical layout (identity-mapped; all addresses are GPAs):
 *
 *   [0x000000, 0x200000)  ordinary RAM, unaccepted at start (the firmware accepts it as part
 *                         of the pre-accept range)
 *   [0x200000, 0x300000)  TEMPORARY RAM, pre-accepted by the VMM, zero-filled, not measured:
 *                         boot params, GHCB page, page-table pool, SNP CPUID page (SNP: launched
 *                         as page type CPUID, checked by the firmware), firmware + decompressor stacks
 *   [0x300000, 0x400000)  INITIAL IMAGE, pre-accepted and measured by the VMM (TDX PAGE.ADD +
 *                         MR.EXTEND, SNP LAUNCH_UPDATE): firmware config page, firmware ELF,
 *                         guest image (decompressor ELF with the compressed kernel inside)
 *   [0x400000, ...)       ordinary RAM, unaccepted at start
 *   [0x1000000, ...)      kernel output range (16 MiB, Linux's LOAD_PHYSICAL_ADDR)
 *   [0xff000000, 4 GiB)   no RAM: the FIRMWARE REGION, 16 MiB (td-shim's image: TD_SHIM_FIRMWARE_BASE
 *                         0xFF000000, TD_SHIM_FIRMWARE_SIZE 16 MiB; OVMF's 4 MiB fits too). A
 *                         firmware's FIRMWARE VOLUME is [its lowest PT_LOAD page in the region,
 *                         4 GiB), measured and pre-accepted by the VMM like the initial image
 *                         (TDVF's BFV: TDX metadata section type BFV, PAGE.ADD + MR.EXTEND of
 *                         every page; SNP LAUNCH_UPDATE), with the reset vector in its last 16
 *                         bytes; ours is the last page [0xfffff000, 4 GiB). The rest of the
 *                         region is a hole with no RAM (16 MiB, so RAM stays 2 MiB aligned).
 *   [4 GiB, memory_bytes) the rest of RAM, when memory_bytes is above the hole: memory_bytes is
 *                         the top of guest-physical RAM, so a guest has memory_bytes minus the
 *                         hole of RAM.
 *
 * [0x200000, 0x400000) stays E820-reserved for the whole boot: the kernel keeps using the
 * boot params and the page tables that live there.
 *
 * How the VMM starts the vCPU (see also src/boot/layout.ts):
 *   - pre-accept exactly [MV_TEMP_RAM_GPA, MV_INITIAL_IMAGE_END) as private memory (the rest
 *     of RAM stays unaccepted/pending);
 *   - pre-accept and measure the firmware volume (its pages in [MV_FIRMWARE_REGION_GPA, 4 GiB),
 *     from the lowest one up) the same way;
 *   - load firmware.elf's PT_LOAD segments (inside [MV_FIRMWARE_LOAD_GPA, MV_FIRMWARE_LOAD_LIMIT)
 *     or the firmware region; e_entry must be the reset vector MV_RESET_VECTOR_GPA) and the guest
 *     image's segments (inside [MV_GUEST_IMAGE_GPA, MV_GUEST_IMAGE_LIMIT));
 *   - write struct mv_fw_config at MV_FW_CONFIG_GPA;
 *   - start the vCPU in the platform's architectural reset state, at the reset vector:
 *     TDX (TDH.VP.INIT): 32-bit protected mode, flat CS/DS/SS with selector 0, paging off,
 *     EFER.LME set, RIP = 0xFFFFFFF0, RBX = GPA width, RCX = R8 = MV_FW_CONFIG_GPA,
 *     RSI = vCPU index;
 *     SNP (the VMSA, QEMU's reset state): real mode, CS selector 0xF000 with hidden base
 *     0xFFFF0000, IP = 0xFFF0.
 *     No RSP: the firmware loads its own stack, GDT, IDT and page tables.
 *
 * Handovers (each stage is replaceable: `minivisor boot --firmware/--decompressor/--kernel ELF`;
 * the SDK's headers and library are this folder and guest/lib, `minivisor new-stub` a template):
 *   - VMM -> firmware: as above. The firmware ELF's PT_LOAD segments must lie in
 *     [MV_FIRMWARE_LOAD_GPA, MV_FIRMWARE_LOAD_LIMIT) (252 KiB) or the firmware region
 *     [MV_FIRMWARE_REGION_GPA, 4 GiB) (16 MiB), its e_entry is the reset vector. Code that runs in
 *     64-bit mode from the region is above 2 GiB: build it position-independent or with
 *     -mcmodel=large (the SDK's -mcmodel=small code belongs in the initial image).
 *   - firmware -> decompressor: jump to fw_config.guest_image_entry in 64-bit mode, paging on with
 *     [0, MV_FIRMWARE_RESERVED_END) identity-mapped private (2 MiB pages, pt_root_gpa), interrupts
 *     off, RDI = MV_BOOT_PARAMS_GPA (struct mv_boot_params: platform, masks, the E820 map with
 *     accepted RAM as MV_E820_RAM and the rest MV_E820_UNACCEPTED, stats), RSP =
 *     MV_DECOMPRESSOR_STACK_TOP. SNP: the GHCB page at ghcb_gpa is registered and shared.
 *   - the guest image: the decompressor ELF, PT_LOAD segments in [MV_GUEST_IMAGE_GPA,
 *     MV_GUEST_IMAGE_LIMIT). Its kernel payload (struct mv_payload_header + one LZ4 block) is
 *     linked in (guest-image.elf) or, for a decompressor built with an empty one
 *     (decompressor.elf) or replaced with --decompressor, appended by the VMM at the image's
 *     end (the highest PT_LOAD end, bss included) rounded up to MV_PAGE_SIZE, still inside the
 *     window and so part of the measured initial image. --kernel builds that payload from a
 *     kernel ELF as a literal-only LZ4 block.
 *   - decompressor -> kernel: it validates the E820 map, places the acceptance bitmap (bitmap_gpa,
 *     bitmap_bytes, accept_unit; set bit = unaccepted) and accepts through it the kernel range
 *     [MV_KERNEL_LOAD_GPA, + memory_bytes rounded up to 2 MiB) and the bitmap's own units,
 *     decompresses and checks the CRC, zeroes the bss, then jumps to entry_gpa with RDI =
 *     MV_BOOT_PARAMS_GPA and RSP = MV_DECOMPRESSOR_STACK_TOP (a kernel switches to its own
 *     stack: the SDK's lib/kernel-entry.S), paging and interrupts as above. The kernel ELF is
 *     linked at MV_KERNEL_LOAD_GPA (lib/kernel.ld), memory_bytes + MV_KERNEL_STACK_BYTES at
 *     most MV_KERNEL_MAX_BYTES.
 *   - kernel -> VMM: "@mv stage/stat/done/fatal" lines on the console (below), then halt.
 */
#ifndef MINIVISOR_BOOT_ABI_H
#define MINIVISOR_BOOT_ABI_H

#define MV_PAGE_SIZE                 0x1000
#define MV_SIZE_2M                   0x200000

/* ---- temporary RAM (pre-accepted, zero-filled) ---- */
#define MV_TEMP_RAM_GPA              0x200000
#define MV_TEMP_RAM_BYTES            0x100000
#define MV_BOOT_PARAMS_GPA           0x200000
#define MV_BOOT_PARAMS_BYTES         0x2000
#define MV_GHCB_GPA                  0x202000
#define MV_PT_POOL_GPA               0x204000
#define MV_PT_POOL_BYTES             0x7a000
/* The multiprocessor wakeup mailbox (ACPI 6.4 §5.2.12.19, as TDVF publishes it in the MADT):
 * command u16 at 0, APIC ID u32 at 4, wakeup vector u64 at 8, then 2032 bytes for the OS
 * and 2048 for the firmware. The firmware parks every AP on it; the APIC ID is the vCPU
 * index (TDG.VP.INFO VCPU_INDEX, RSI at TDH.VP.INIT). The AP acknowledges a wakeup by
 * writing command 0, then jumps to the vector in 32-bit protected mode, paging off, flat
 * segments (TDVF's ApRunLoop is in long mode; here the firmware never maps the kernel). */
#define MV_MP_MAILBOX_GPA            0x27e000
#define MV_MP_MAILBOX_OFF_COMMAND    0x0
#define MV_MP_MAILBOX_OFF_APIC_ID    0x4
#define MV_MP_MAILBOX_OFF_VECTOR     0x8
#define MV_MP_MAILBOX_OFF_OS         0x10
#define MV_MP_WAKEUP_COMMAND_NOOP    0x0
#define MV_MP_WAKEUP_COMMAND_WAKEUP  0x1
#define MV_MAX_VCPUS                 0x40
#define MV_SNP_CPUID_PAGE_GPA        0x27f000
#define MV_FW_STACK_BOTTOM           0x280000
#define MV_FW_STACK_TOP              0x2c0000
#define MV_DECOMPRESSOR_STACK_TOP    0x300000

/* ---- initial image (pre-accepted, measured) ---- */
#define MV_INITIAL_IMAGE_GPA         0x300000
#define MV_INITIAL_IMAGE_BYTES       0x100000
#define MV_INITIAL_IMAGE_END         0x400000
#define MV_FW_CONFIG_GPA             0x300000
#define MV_FIRMWARE_LOAD_GPA         0x301000
#define MV_FIRMWARE_LOAD_LIMIT       0x340000
#define MV_GUEST_IMAGE_GPA           0x340000
#define MV_GUEST_IMAGE_LIMIT         0x400000

/* ---- firmware region and volume (pre-accepted, measured), the RAM hole below 4 GiB ---- */
#define MV_FIRMWARE_REGION_GPA       0xff000000
#define MV_FIRMWARE_REGION_BYTES     0x1000000
/* minivisor's own firmware's volume: the last page, with the reset vector. */
#define MV_FIRMWARE_VOLUME_GPA       0xfffff000
#define MV_FIRMWARE_VOLUME_BYTES     0x1000
#define MV_RESET_VECTOR_GPA          0xfffffff0
#define MV_RAM_HOLE_GPA              0xff000000
#define MV_RAM_HOLE_END              0x100000000

/* The E820-reserved firmware range: temporary RAM + initial image. */
#define MV_FIRMWARE_RESERVED_GPA     0x200000
#define MV_FIRMWARE_RESERVED_END     0x400000

/* ---- kernel ---- */
#define MV_KERNEL_LOAD_GPA           0x1000000
#define MV_KERNEL_MAX_BYTES          0x800000
#define MV_KERNEL_STACK_BYTES        0x10000

/* Shared mappings live at VA = MV_SHARED_WINDOW_VA + GPA (2 MiB pages, shared bit set on TDX,
 * C-bit clear on SNP); the identity map [0, memory) is private. */
#define MV_SHARED_WINDOW_VA          0x400000000000

/* ---- guest memory limits ---- */
#define MV_MIN_MEMORY_BYTES          0x2000000
#define MV_MAX_MEMORY_BYTES          0x400000000000

/* ---- firmware config (VMM -> firmware) ---- */
#define MV_FW_CONFIG_MAGIC           0x4346564d
#define MV_FW_CONFIG_VERSION         0x1
#define MV_PRE_ACCEPT_ALL            0xffffffffffffffff
#define MV_DEFAULT_PRE_ACCEPT_BYTES  0x4000000
#define MV_DEFAULT_WORKLOAD_BYTES    0x4000000
#define MV_ACCEPT_MODE_LAZY          0x0
#define MV_ACCEPT_MODE_EAGER         0x1
#define MV_PLATFORM_NONE             0x0
#define MV_PLATFORM_TDX              0x1
#define MV_PLATFORM_SNP              0x2

#define MV_FW_CONFIG_OFF_MAGIC             0x0
#define MV_FW_CONFIG_OFF_VERSION           0x4
#define MV_FW_CONFIG_OFF_SIZE              0x6
#define MV_FW_CONFIG_OFF_MEMORY_BYTES      0x8
#define MV_FW_CONFIG_OFF_PRE_ACCEPT_BYTES  0x10
#define MV_FW_CONFIG_OFF_WORKLOAD_BYTES    0x18
#define MV_FW_CONFIG_OFF_SEED              0x20
#define MV_FW_CONFIG_OFF_ACCEPT_MODE       0x28
#define MV_FW_CONFIG_OFF_ACCEPT_UNIT       0x2c
#define MV_FW_CONFIG_OFF_PLATFORM_HINT     0x30
#define MV_FW_CONFIG_OFF_FLAGS             0x34
#define MV_FW_CONFIG_OFF_GUEST_IMAGE_ENTRY 0x38
#define MV_FW_CONFIG_SIZE                  0x40

/* flags: guest_image_entry is a Linux bzImage's startup_64 (64-bit boot protocol,
 * Documentation/arch/x86/boot.rst) that the VMM launched in RAM; the firmware pre-accepts as
 * usual, identity-maps all of RAM and enters it with RSI = MV_LINUX_BOOT_DATA_GPA (the zero
 * page the VMM built, followed by the command line and EFI tables; src/boot/linux/). */
#define MV_FW_CONFIG_FLAG_LINUX            0x1
#define MV_LINUX_BOOT_DATA_GPA             0x340000

/* ---- the CPU table (VMM -> kernel), beside the config in the same measured page ----
 * struct mv_cpu_table at MV_FW_CONFIG_GPA + MV_CPU_TABLE_OFFSET stands for the ACPI MADT a VMM
 * publishes: how many vCPUs the guest has, with APIC IDs 0..count-1 (= vCPU indexes). Written
 * only with several vCPUs; no table (magic 0) means one. An SNP kernel reads it to know which
 * APs to create with the AP Creation VMGEXIT (a TD asks TDG.VP.INFO instead). Untrusted: the
 * kernel bounds the count, and an AP the VMM never starts is a timeout. */
#define MV_CPU_TABLE_OFFSET          0x80
#define MV_CPU_TABLE_MAGIC           0x5550434d

/* ---- test fixture only (firmware variant map-from-config, guest/DEFENCES.md) ----
 * struct mv_map_override at MV_FW_CONFIG_GPA + MV_MAP_OVERRIDE_OFFSET: the memory map the VMM
 * wants the decompressor to see. The honest firmware never reads it. */
#define MV_MAP_OVERRIDE_OFFSET       0x100
#define MV_MAP_OVERRIDE_MAGIC        0x564f564d
#define MV_MAP_OVERRIDE_MAX_ENTRIES  0x80

/* ---- E820 memory map (firmware -> decompressor -> kernel) ---- */
#define MV_E820_RAM                  0x1
#define MV_E820_RESERVED             0x2
/* Seed: "Usable-but-Invalid"; the number is Linux's EFI_UNACCEPTED_MEMORY. */
#define MV_E820_UNACCEPTED           0xf
#define MV_E820_MAX_ENTRIES          0x80
#define MV_E820_ENTRY_SIZE           0x18

/* ---- boot params (firmware -> decompressor -> kernel) ---- */
#define MV_BOOT_PARAMS_MAGIC         0x5042564d
#define MV_BOOT_PARAMS_VERSION       0x1
#define MV_STAGE_FIRMWARE            0x0
#define MV_STAGE_DECOMPRESSOR        0x1
#define MV_STAGE_KERNEL              0x2
#define MV_STAGE_COUNT               0x3

#define MV_BOOT_PARAMS_OFF_MAGIC            0x0
#define MV_BOOT_PARAMS_OFF_PLATFORM         0x8
#define MV_BOOT_PARAMS_OFF_E820_COUNT       0x14
#define MV_BOOT_PARAMS_OFF_MEMORY_BYTES     0x18
#define MV_BOOT_PARAMS_OFF_SHARED_MASK      0x30
#define MV_BOOT_PARAMS_OFF_PRIVATE_MASK     0x38
#define MV_BOOT_PARAMS_OFF_BITMAP_GPA       0x68
#define MV_BOOT_PARAMS_OFF_STATS            0x90
#define MV_BOOT_PARAMS_OFF_E820             0x100
#define MV_BOOT_PARAMS_OFF_ACCEPT_UNIT      0x10
#define MV_BOOT_PARAMS_OFF_WORKLOAD_BYTES   0x20
#define MV_BOOT_PARAMS_OFF_BITMAP_BYTES     0x70
#define MV_BOOT_PARAMS_OFF_KERNEL_GPA       0x78
#define MV_BOOT_PARAMS_OFF_KERNEL_BYTES     0x80

/* ---- compressed kernel payload header (build time -> decompressor) ---- */
#define MV_PAYLOAD_MAGIC             0x344c564d
#define MV_PAYLOAD_HEADER_SIZE       0x28

/* ---- SNP GHCB termination reasons (MSR protocol 0x100: set in [15:12], code in [23:16]) ---- */
#define MV_SNP_TERM_SET_GENERAL      0x0
#define MV_SNP_TERM_SET_LINUX        0x1
#define MV_SNP_TERM_GENERAL          0x0
#define MV_SNP_TERM_REGISTER         0x0
#define MV_SNP_TERM_PSC              0x1
#define MV_SNP_TERM_PVALIDATE        0x2
#define MV_SNP_TERM_NOT_VMPL0        0x3
#define MV_SNP_TERM_CPUID            0x4
/* minivisor's own set for everything else (memory map, decompression, workload...). */
#define MV_SNP_TERM_SET_MINIVISOR    0x3
#define MV_SNP_TERM_MINIVISOR_FATAL  0x1

/* ---- console ----
 * Byte by byte: an OUT to MV_CONSOLE_PORT (COM1 data), i.e. TDG.VP.VMCALL<Instruction.IO> or a
 * GHCB IOIO exit per byte. Every VMM must keep accepting that (user firmware uses it).
 * Batched, what the stubs use: one exit carries up to MV_CONSOLE_BATCH_MAX bytes, any number of
 * lines (the guest sends when the batch is full, after a "@mv stage" line, and before its own
 * next exit or its end, so the host sees the text in order with everything else):
 *   - SNP: the GHCB IOIO NAE with string semantics (Linux vc_handle_ioio for OUTS): SW_EXITCODE
 *     0x7B, EXITINFO1 = port << 16 | SZ8 | STR | REP, EXITINFO2 = byte count, SW_SCRATCH = the
 *     GHCB shared buffer holding the bytes.
 *   - TDX: the GHCI has no string I/O, so a vendor-specific TDG.VP.VMCALL (GHCI: R10 != 0):
 *     R10 = MV_CONSOLE_VMCALL, R11 = MV_CONSOLE_VMCALL_WRITE, R12 = shared GPA (shared bit set) of
 *     the bytes, R13 = count, all inside the page at MV_CONSOLE_PAGE_GPA, which the firmware
 *     converts to shared (MapGPA) and records in the boot params' console_gpa. The VMM answers
 *     R10 = 0; anything else makes the guest fall back to byte by byte for that batch.
 *   The buffer and the page are shared: the VMM may change them at any time, so the guest never
 *   reads them back, and the VMM bounds the count to the page (TDX) or the GHCB shared buffer. */
#define MV_CONSOLE_PORT              0x3f8
#define MV_CONSOLE_BATCH_MAX         0x7f0
#define MV_CONSOLE_PAGE_GPA          0x203000
#define MV_CONSOLE_VMCALL            0x4d56
#define MV_CONSOLE_VMCALL_WRITE      0x1

#ifndef __ASSEMBLER__
#include <stdint.h>

/* Written by the VMM at MV_FW_CONFIG_GPA before the vCPU starts. Part of the measured image,
 * so it is attestable, but the firmware still validates it. */
struct mv_fw_config {
	uint32_t magic;             /* MV_FW_CONFIG_MAGIC ("MVFC") */
	uint16_t version;           /* MV_FW_CONFIG_VERSION */
	uint16_t size;              /* MV_FW_CONFIG_SIZE */
	uint64_t memory_bytes;      /* guest RAM, a multiple of 4 KiB */
	uint64_t pre_accept_bytes;  /* accept [0, this) in firmware; MV_PRE_ACCEPT_ALL = approach I */
	uint64_t workload_bytes;    /* kernel workload size */
	uint64_t seed;              /* everything pseudo-random derives from it */
	uint32_t accept_mode;       /* MV_ACCEPT_MODE_LAZY or _EAGER */
	uint32_t accept_unit;       /* bitmap unit: 0x1000 (the seed's Validation Bitmap) or 0x200000 (Linux) */
	uint32_t platform_hint;     /* MV_PLATFORM_*: NOT trusted, only reported when it disagrees */
	uint32_t flags;             /* 0 or MV_FW_CONFIG_FLAG_LINUX */
	uint64_t guest_image_entry; /* e_entry of the guest image ELF (in the guest-image range), or Linux's startup_64 */
};

struct mv_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;              /* MV_E820_* */
	uint32_t reserved;          /* 0 */
};

/* Cumulative acceptance statistics, carried through every stage. */
struct mv_accept_stats {
	uint64_t accepted_bytes[MV_STAGE_COUNT]; /* bytes newly accepted by each stage */
	uint64_t accept_calls_4k;   /* TDX ACCEPT / SNP PVALIDATE calls at 4 KiB */
	uint64_t accept_calls_2m;   /* ... at 2 MiB */
	uint64_t size_mismatch_fallbacks; /* 2 MiB requests split into 4 KiB ones */
	/* Page-state-change round trips to the hypervisor, i.e. calls, not pages: SNP GHCB MSR
	 * protocol requests (one 4 KiB page each) plus PSC NAE VMGEXITs (up to 253 entries each,
	 * repeats after partial progress included); TDX MapGPA calls (RETRYs included).
	 * Reported as the kernel's page_state_requests stat. */
	uint64_t psc_requests;
	uint64_t unaccepted_units;  /* set bits in the acceptance bitmap (decompressor, kernel) */
	uint64_t reserved;
};

/* At MV_BOOT_PARAMS_GPA; built by the firmware, extended by the decompressor, read by the kernel. */
struct mv_boot_params {
	uint32_t magic;             /* 0x00 MV_BOOT_PARAMS_MAGIC ("MVBP") */
	uint16_t version;           /* 0x04 */
	uint16_t size;              /* 0x06 sizeof(struct mv_boot_params) */
	uint32_t platform;          /* 0x08 MV_PLATFORM_TDX or _SNP, as detected */
	uint32_t accept_mode;       /* 0x0c */
	uint32_t accept_unit;       /* 0x10 */
	uint32_t e820_count;        /* 0x14 */
	uint64_t memory_bytes;      /* 0x18 */
	uint64_t workload_bytes;    /* 0x20 */
	uint64_t seed;              /* 0x28 */
	uint64_t shared_mask;       /* 0x30 TDX: the shared GPA bit; SNP: 0 */
	uint64_t private_mask;      /* 0x38 SNP: the C-bit; TDX: 0 */
	uint64_t ghcb_gpa;          /* 0x40 SNP: the shared GHCB page (registered); TDX: 0 */
	uint64_t pt_root_gpa;       /* 0x48 PML4 (CR3) */
	uint64_t pt_pool_gpa;       /* 0x50 page-table pool: later stages take pages from here */
	uint64_t pt_pool_bytes;     /* 0x58 */
	uint64_t pt_pool_used;      /* 0x60 bytes of the pool already used */
	/* Filled by the decompressor. The bitmap has one bit per accept_unit from GPA 0; a set bit
	 * means unaccepted (Linux's convention); GPAs beyond bitmap_bytes*8*unit count as accepted. */
	uint64_t bitmap_gpa;        /* 0x68 */
	uint64_t bitmap_bytes;      /* 0x70 */
	uint64_t kernel_gpa;        /* 0x78 */
	uint64_t kernel_bytes;      /* 0x80 memory size incl. bss and stack, 2 MiB aligned */
	uint64_t platform_hint_mismatch; /* 0x88 1 when fw_config.platform_hint disagreed */
	struct mv_accept_stats stats; /* 0x90 .. 0xd8 */
	uint64_t console_gpa;       /* 0xd8 TDX: the shared console page (MV_CONSOLE_PAGE_GPA), 0 = none */
	uint8_t pad[0x100 - 0xe0];
	struct mv_e820_entry e820[MV_E820_MAX_ENTRIES]; /* 0x100 */
};

/* See MV_CPU_TABLE_OFFSET. */
struct mv_cpu_table {
	uint32_t magic;             /* MV_CPU_TABLE_MAGIC ("MCPU") */
	uint32_t count;             /* vCPUs, APIC IDs 0..count-1 */
};

/* Test fixture: see MV_MAP_OVERRIDE_OFFSET. e820_count is handed over as is (so a bad count
 * reaches the decompressor); at most MV_MAP_OVERRIDE_MAX_ENTRIES entries are copied. */
struct mv_map_override {
	uint32_t magic;             /* MV_MAP_OVERRIDE_MAGIC ("MVOV") */
	uint32_t e820_count;
	uint32_t accept_unit;       /* 0: keep the firmware's */
	uint32_t reserved;
	struct mv_e820_entry e820[MV_MAP_OVERRIDE_MAX_ENTRIES];
};

/* Precedes the kernel's LZ4 block: linked into the decompressor (guest/tools/mkpayload.py) or
 * appended after it by the VMM (src/boot/kernel-payload.ts); see "Handovers" above. */
struct mv_payload_header {
	uint32_t magic;             /* MV_PAYLOAD_MAGIC ("MVL4") */
	uint32_t compressed_bytes;  /* LZ4 block (lz4_Block_format.md) that follows the header */
	uint32_t image_bytes;       /* flat kernel image (file contents) */
	uint32_t memory_bytes;      /* image + bss, what the kernel occupies */
	uint64_t load_gpa;          /* where the flat image goes: MV_KERNEL_LOAD_GPA */
	uint64_t entry_gpa;         /* kernel entry point */
	uint32_t image_crc32;       /* CRC-32 (IEEE, as zlib.crc32) of the flat image */
	uint32_t reserved;          /* 0 */
};

#define MV_ABI_CHECK(cond) _Static_assert(cond, #cond)
MV_ABI_CHECK(sizeof(struct mv_fw_config) == MV_FW_CONFIG_SIZE);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, memory_bytes) == MV_FW_CONFIG_OFF_MEMORY_BYTES);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, pre_accept_bytes) == MV_FW_CONFIG_OFF_PRE_ACCEPT_BYTES);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, workload_bytes) == MV_FW_CONFIG_OFF_WORKLOAD_BYTES);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, seed) == MV_FW_CONFIG_OFF_SEED);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, accept_mode) == MV_FW_CONFIG_OFF_ACCEPT_MODE);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, accept_unit) == MV_FW_CONFIG_OFF_ACCEPT_UNIT);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, platform_hint) == MV_FW_CONFIG_OFF_PLATFORM_HINT);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, flags) == MV_FW_CONFIG_OFF_FLAGS);
MV_ABI_CHECK(__builtin_offsetof(struct mv_fw_config, guest_image_entry) == MV_FW_CONFIG_OFF_GUEST_IMAGE_ENTRY);
MV_ABI_CHECK(sizeof(struct mv_e820_entry) == MV_E820_ENTRY_SIZE);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, platform) == MV_BOOT_PARAMS_OFF_PLATFORM);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, e820_count) == MV_BOOT_PARAMS_OFF_E820_COUNT);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, memory_bytes) == MV_BOOT_PARAMS_OFF_MEMORY_BYTES);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, shared_mask) == MV_BOOT_PARAMS_OFF_SHARED_MASK);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, private_mask) == MV_BOOT_PARAMS_OFF_PRIVATE_MASK);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, bitmap_gpa) == MV_BOOT_PARAMS_OFF_BITMAP_GPA);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, stats) == MV_BOOT_PARAMS_OFF_STATS);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, e820) == MV_BOOT_PARAMS_OFF_E820);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, accept_unit) == MV_BOOT_PARAMS_OFF_ACCEPT_UNIT);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, workload_bytes) == MV_BOOT_PARAMS_OFF_WORKLOAD_BYTES);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, bitmap_bytes) == MV_BOOT_PARAMS_OFF_BITMAP_BYTES);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, kernel_gpa) == MV_BOOT_PARAMS_OFF_KERNEL_GPA);
MV_ABI_CHECK(__builtin_offsetof(struct mv_boot_params, kernel_bytes) == MV_BOOT_PARAMS_OFF_KERNEL_BYTES);
MV_ABI_CHECK(sizeof(struct mv_boot_params) <= MV_BOOT_PARAMS_BYTES);
MV_ABI_CHECK(sizeof(struct mv_payload_header) == MV_PAYLOAD_HEADER_SIZE);
MV_ABI_CHECK(MV_MAP_OVERRIDE_OFFSET + sizeof(struct mv_map_override) <= MV_PAGE_SIZE);
MV_ABI_CHECK(MV_CPU_TABLE_OFFSET >= MV_FW_CONFIG_SIZE && MV_CPU_TABLE_OFFSET + sizeof(struct mv_cpu_table) <= MV_MAP_OVERRIDE_OFFSET);
MV_ABI_CHECK(MV_BOOT_PARAMS_GPA + MV_BOOT_PARAMS_BYTES <= MV_GHCB_GPA);
MV_ABI_CHECK(MV_GHCB_GPA + MV_PAGE_SIZE <= MV_CONSOLE_PAGE_GPA && MV_CONSOLE_PAGE_GPA + MV_PAGE_SIZE <= MV_PT_POOL_GPA);
MV_ABI_CHECK(MV_CONSOLE_BATCH_MAX <= 0x7f0); /* fits the GHCB shared buffer (and the 4K page) */
MV_ABI_CHECK(MV_PT_POOL_GPA + MV_PT_POOL_BYTES <= MV_SNP_CPUID_PAGE_GPA);
MV_ABI_CHECK(MV_SNP_CPUID_PAGE_GPA + MV_PAGE_SIZE <= MV_FW_STACK_BOTTOM);
/* The firmware volume ends at 4 GiB, inside the RAM hole, with the reset vector in its last 16 bytes. */
MV_ABI_CHECK((unsigned long long)MV_FIRMWARE_VOLUME_GPA + MV_FIRMWARE_VOLUME_BYTES == MV_RAM_HOLE_END);
MV_ABI_CHECK(MV_RAM_HOLE_GPA <= MV_FIRMWARE_VOLUME_GPA && (unsigned long long)MV_RESET_VECTOR_GPA + 16 == MV_RAM_HOLE_END);
MV_ABI_CHECK(MV_RAM_HOLE_GPA == MV_FIRMWARE_REGION_GPA && (unsigned long long)MV_FIRMWARE_REGION_GPA + MV_FIRMWARE_REGION_BYTES == MV_RAM_HOLE_END);
MV_ABI_CHECK(MV_RAM_HOLE_GPA % MV_SIZE_2M == 0);
MV_ABI_CHECK(MV_TEMP_RAM_GPA + MV_TEMP_RAM_BYTES == MV_INITIAL_IMAGE_GPA);
MV_ABI_CHECK(MV_INITIAL_IMAGE_GPA + MV_INITIAL_IMAGE_BYTES == MV_INITIAL_IMAGE_END);
#endif /* __ASSEMBLER__ */

#endif /* MINIVISOR_BOOT_ABI_H */
