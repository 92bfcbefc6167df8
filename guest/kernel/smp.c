/*
 * Starting the APs through the ACPI multiprocessor wakeup mailbox, as Linux does in a TD
 * (arch/x86/kernel/acpi/madt_wakeup.c acpi_wakeup_cpu): write the APIC ID and the wakeup
 * vector, then the WAKEUP command (release order), and wait until the firmware clears the
 * command. The APs then run the work the BSP chose and park for good.
 */
#include "smp.h"

#define AP_STACK_BYTES  0x4000ull
/* Linux gives up after 1 s; here a bound in spins, so a firmware that never answers is fatal. */
#define WAKEUP_SPINS    (1ull << 22)
#define KERNEL_CS       0x08

struct mailbox {
	volatile u16 command;
	u16 reserved;
	volatile u32 apic_id;
	volatile u64 wakeup_vector;
};

/* The OS area of the mailbox: what ap-entry.S reads (its ARGS_* offsets). */
struct __attribute__((packed)) wakeup_args {
	u64 cr3, cr4;
	u16 gdt_limit;
	u32 gdt_base;
	u16 pad0;
	u32 entry_offset;
	u16 entry_selector;
	u16 pad1;
	u64 stacks[MV_MAX_VCPUS];
};
_Static_assert(__builtin_offsetof(struct wakeup_args, gdt_limit) == 0x10, "ARGS_GDTR");
_Static_assert(__builtin_offsetof(struct wakeup_args, entry_offset) == 0x18, "ARGS_ENTRY");
_Static_assert(__builtin_offsetof(struct wakeup_args, stacks) == 0x20, "ARGS_STACKS");

extern char mv_ap_wakeup32[], mv_ap_entry64[];
void kernel_ap_main(u64 cpu);

static void (*volatile smp_work)(void);
static volatile u64 aps_finished;
static volatile u64 work_generation;
static bool aps_started;

u32 smp_cpu_count(void)
{
	if (mv_platform.kind != MV_PLATFORM_TDX)
		return 1;
	struct mv_tdcall_regs r = { .rax = TDG_VP_INFO };
	mv_tdcall(&r); /* cannot fail: no operands */
	u32 cpus = (u32)r.r8;
	if (cpus == 0 || cpus > MV_MAX_VCPUS)
		mv_fatal("unsupported_vcpu_count", cpus);
	return cpus;
}

static void wake_aps(u32 cpus, u64 (*alloc)(u64 bytes, u64 align))
{
	struct mailbox *mb = (struct mailbox *)(uintptr_t)MV_MP_MAILBOX_GPA;
	struct wakeup_args *args = (struct wakeup_args *)(uintptr_t)(MV_MP_MAILBOX_GPA + MV_MP_MAILBOX_OFF_OS);
	struct __attribute__((packed)) { u16 limit; u64 base; } gdtr;
	u64 cr4;
	asm volatile("sgdt %0" : "=m"(gdtr));
	asm volatile("mov %%cr4, %0" : "=r"(cr4));
	args->cr3 = mv_read_cr3();
	args->cr4 = cr4;
	args->gdt_limit = gdtr.limit;
	args->gdt_base = (u32)gdtr.base;
	args->entry_offset = (u32)(uintptr_t)mv_ap_entry64;
	args->entry_selector = KERNEL_CS;
	u64 stacks = alloc((cpus - 1) * AP_STACK_BYTES, MV_PAGE_SIZE);
	for (u32 cpu = 1; cpu < cpus; cpu++)
		args->stacks[cpu] = stacks + cpu * AP_STACK_BYTES;
	for (u32 cpu = 1; cpu < cpus; cpu++) {
		mb->apic_id = cpu;
		mb->wakeup_vector = (u64)(uintptr_t)mv_ap_wakeup32;
		__atomic_store_n(&mb->command, MV_MP_WAKEUP_COMMAND_WAKEUP, __ATOMIC_RELEASE);
		u64 spins = 0;
		while (__atomic_load_n(&mb->command, __ATOMIC_ACQUIRE) != MV_MP_WAKEUP_COMMAND_NOOP) {
			if (++spins == WAKEUP_SPINS)
				mv_fatal("ap_wakeup_timeout", cpu);
			mv_cpu_relax();
		}
	}
}

void kernel_ap_main(u64 cpu)
{
	(void)cpu;
	mv_cpu_init();
	u64 done = 0;
	for (;;) {
		while (work_generation == done)
			mv_cpu_relax();
		done = work_generation;
		smp_work();
		mv_atomic_add(&aps_finished, 1);
	}
}

void smp_run_on_all(void (*work)(void), u64 (*alloc)(u64 bytes, u64 align))
{
	u32 cpus = smp_cpu_count();
	if (cpus == 1) {
		work();
		return;
	}
	aps_finished = 0;
	smp_work = work;
	mv_atomic_add(&work_generation, 1);
	if (!aps_started) {
		wake_aps(cpus, alloc);
		aps_started = true;
	}
	work();
	while (__atomic_load_n(&aps_finished, __ATOMIC_ACQUIRE) != cpus - 1)
		mv_cpu_relax();
}
