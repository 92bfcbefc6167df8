/*
 * Starting the APs. In a TD, through the ACPI multiprocessor wakeup mailbox, as Linux does
 * (arch/x86/kernel/acpi/madt_wakeup.c acpi_wakeup_cpu): write the APIC ID and the wakeup
 * vector, then the WAKEUP command (release order), and wait until the firmware clears the
 * command. In an SNP guest, with the AP Creation VMGEXIT and a VMSA page the kernel writes, as
 * Linux does (arch/x86/coco/sev/core.c wakeup_cpu_via_vmgexit): the hypervisor cannot set the
 * state of an encrypted vCPU, so the guest gives it one. The APs then run the work the BSP
 * chose and park for good.
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
/* SNP: the per-CPU areas GS.base points at, and how many APs reached kernel_ap_main. */
static struct mv_percpu percpu[MV_MAX_VCPUS];
static volatile u64 aps_online;

/* TDX: NUM_VCPUS from TDG.VP.INFO. SNP: the VMM's CPU table (boot_abi.h MV_CPU_TABLE_OFFSET, the
 * MADT's stand-in), in the measured config page the firmware keeps reserved. */
u32 smp_cpu_count(void)
{
	if (mv_platform.kind == MV_PLATFORM_SNP) {
		const volatile struct mv_cpu_table *t =
			(const volatile struct mv_cpu_table *)(uintptr_t)(MV_FW_CONFIG_GPA + MV_CPU_TABLE_OFFSET);
		if (t->magic != MV_CPU_TABLE_MAGIC)
			return 1;
		u32 cpus = t->count;
		if (cpus == 0 || cpus > MV_MAX_VCPUS)
			mv_fatal("unsupported_vcpu_count", cpus);
		return cpus;
	}
	if (mv_platform.kind != MV_PLATFORM_TDX)
		return 1;
	struct mv_tdcall_regs r = { .rax = TDG_VP_INFO };
	mv_tdcall(&r); /* cannot fail: no operands */
	u32 cpus = (u32)r.r8;
	if (cpus == 0 || cpus > MV_MAX_VCPUS)
		mv_fatal("unsupported_vcpu_count", cpus);
	return cpus;
}

/* What ap-entry.S needs, in the mailbox's OS area: the BSP's paging and GDT, a stack per AP. */
static void write_wakeup_args(u32 cpus, u64 (*alloc)(u64 bytes, u64 align))
{
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
}

static void wake_aps(u32 cpus, u64 (*alloc)(u64 bytes, u64 align))
{
	struct mailbox *mb = (struct mailbox *)(uintptr_t)MV_MP_MAILBOX_GPA;
	write_wakeup_args(cpus, alloc);
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

/* ---------------- SNP: AP creation ---------------- */

/* VMSA offsets (Linux arch/x86/include/asm/svm.h struct sev_es_save_area, APM Vol. 2 Table B-4). */
#define VMSA_CS      0x10
#define VMSA_SS      0x20
#define VMSA_DS      0x30
#define VMSA_ES      0x00
#define VMSA_FS      0x40
#define VMSA_GS      0x50
#define VMSA_GDTR    0x60
#define VMSA_LDTR    0x70
#define VMSA_IDTR    0x80
#define VMSA_TR      0x90
#define VMSA_VMPL    0xca
#define VMSA_EFER    0xd0
#define VMSA_CR0     0x158
#define VMSA_DR7     0x160
#define VMSA_DR6     0x168
#define VMSA_RFLAGS  0x170
#define VMSA_RIP     0x178
#define VMSA_G_PAT   0x268
#define VMSA_RSI     0x330
#define VMSA_SEV_FEATURES 0x3b0
#define VMSA_XCR0    0x3e8
#define EFER_LME     (1ull << 8)
#define EFER_SVME    (1ull << 12)
/* RMPADJUST RDX[16]: make the page a VMSA (Linux RMPADJUST_VMSA_PAGE_BIT). */
#define RMPADJUST_VMSA_PAGE_BIT (1ull << 16)

static void vmsa_seg(u8 *vmsa, u32 off, u16 selector, u16 attrib, u32 limit, u64 base)
{
	*(u16 *)(vmsa + off) = selector;
	*(u16 *)(vmsa + off + 2) = attrib;
	*(u32 *)(vmsa + off + 4) = limit;
	*(u64 *)(vmsa + off + 8) = base;
}

/* The AP's first state. Linux starts an AP in real mode at its trampoline, like INIT-SIPI, with
 * the APM's INIT values (wakeup_cpu_via_vmgexit). This kernel has no real-mode trampoline: the AP
 * starts where a TD's AP enters the OS from the firmware (ap-entry.S mv_ap_wakeup32: flat 32-bit
 * protected mode, paging off, EFER.LME set, ESI = its index), which the VMSA can say as well. The rest follows Linux: EFER.SVME (required), the INIT
 * values of DR6/DR7/RFLAGS/G_PAT/XCR0, VMPL 0 and SEV_FEATURES = SEV_STATUS >> 2. */
static void build_ap_vmsa(u8 *vmsa, u32 cpu, u64 sev_features)
{
	memset(vmsa, 0, MV_PAGE_SIZE);
	vmsa_seg(vmsa, VMSA_CS, KERNEL_CS, 0xc9b, 0xffffffff, 0);       /* 32-bit code, flat */
	for (u32 off = VMSA_ES; off <= VMSA_GS; off += 0x10)
		if (off != VMSA_CS)
			vmsa_seg(vmsa, off, 0x10, 0xc93, 0xffffffff, 0);  /* data, flat */
	vmsa_seg(vmsa, VMSA_GDTR, 0, 0, 0xffff, 0);
	vmsa_seg(vmsa, VMSA_LDTR, 0, 0x82, 0xffff, 0);
	vmsa_seg(vmsa, VMSA_IDTR, 0, 0, 0xffff, 0);
	vmsa_seg(vmsa, VMSA_TR, 0, 0x83, 0xffff, 0);
	*(u8 *)(vmsa + VMSA_VMPL) = 0; /* mv_platform_detect made sure this guest runs at VMPL0 */
	*(u64 *)(vmsa + VMSA_EFER) = EFER_SVME | EFER_LME;
	*(u64 *)(vmsa + VMSA_CR0) = 0x11;   /* PE | ET */
	*(u64 *)(vmsa + VMSA_DR7) = 0x400;
	*(u64 *)(vmsa + VMSA_DR6) = 0xffff0ff0;
	*(u64 *)(vmsa + VMSA_RFLAGS) = 0x2;
	*(u64 *)(vmsa + VMSA_RIP) = (u64)(uintptr_t)mv_ap_wakeup32;
	*(u64 *)(vmsa + VMSA_RSI) = cpu;
	*(u64 *)(vmsa + VMSA_G_PAT) = 0x0007040600070406ull;
	*(u64 *)(vmsa + VMSA_XCR0) = 1;
	*(u64 *)(vmsa + VMSA_SEV_FEATURES) = sev_features;
}

/* Linux vmgexit_ap_control(SVM_VMGEXIT_AP_CREATE): RAX = SEV_FEATURES, SW_EXITINFO1 = APIC ID << 32
 * | VMPL << 16 | request, SW_EXITINFO2 = the VMSA's GPA; any non-zero SW_EXITINFO1[31:0] back is
 * an error. */
static void snp_ap_create(u32 cpu, u64 vmsa_gpa, u64 sev_features)
{
	mv_console_flush(); /* the console shares the GHCB */
	u8 *ghcb = mv_snp_ghcb_begin(SVM_VMGEXIT_AP_CREATION, ((u64)cpu << 32) | SVM_VMGEXIT_AP_CREATE, vmsa_gpa);
	*(volatile u64 *)(ghcb + GHCB_OFF_RAX) = sev_features;
	mv_snp_ghcb_set_valid(ghcb, GHCB_OFF_RAX);
	mv_snp_ghcb_exit();
	u64 info1 = *(volatile u64 *)(ghcb + GHCB_OFF_SW_EXIT_INFO1);
	if ((u32)info1 != 0)
		mv_fatal("snp_ap_create_failed", cpu);
}

/* One page of the BSP's memory made shared for an AP's GHCB (Linux: the per-CPU GHCBs are
 * decrypted by the BSP, sev_es_init_vc_handling; each CPU registers its own). */
static void share_page(u64 gpa)
{
	mv_snp_pvalidate_range(gpa, MV_PAGE_SIZE, false);
	mv_snp_psc(gpa, MV_PAGE_SIZE, SNP_PSC_SHARED);
	mv_map_shared(mv_boot_params(), gpa, gpa + MV_PAGE_SIZE);
	memset(mv_shared_ptr(gpa), 0, MV_PAGE_SIZE);
}

static void start_aps_snp(u32 cpus, u64 (*alloc)(u64 bytes, u64 align))
{
	/* Linux wakeup_cpu_via_vmgexit: only a hypervisor that offers AP creation can start APs. */
	if (!(mv_snp_hv_features() & GHCB_HV_FT_SNP_AP_CREATION))
		mv_fatal("snp_no_ap_creation", cpus);
	write_wakeup_args(cpus, alloc);
	/* The BSP keeps the GHCB the firmware registered; from now on each CPU finds its own. */
	percpu[0] = (struct mv_percpu){ .ghcb_gpa = mv_platform.ghcb_gpa, .cpu = 0 };
	mv_wrmsr(MSR_GS_BASE, (u64)(uintptr_t)&percpu[0]);
	mv_platform.percpu_ghcb = true;
	u64 ghcbs = alloc((cpus - 1) * MV_PAGE_SIZE, MV_PAGE_SIZE);
	for (u32 cpu = 1; cpu < cpus; cpu++) {
		percpu[cpu] = (struct mv_percpu){ .ghcb_gpa = ghcbs + (cpu - 1) * MV_PAGE_SIZE, .cpu = cpu };
		share_page(percpu[cpu].ghcb_gpa);
	}
	u64 sev_features = mv_rdmsr(MSR_SEV_STATUS) >> 2;
	for (u32 cpu = 1; cpu < cpus; cpu++) {
		/* Linux snp_alloc_vmsa_page: the second 4K of an 8K-aligned 8K, never 2 MiB aligned (an
		 * SNP erratum: a large page over the VMSA's RMP entry faults; KVM refuses one). */
		u64 vmsa = alloc(2 * MV_PAGE_SIZE, 2 * MV_PAGE_SIZE) + MV_PAGE_SIZE;
		build_ap_vmsa((u8 *)(uintptr_t)vmsa, cpu, sev_features);
		/* Linux snp_set_vmsa at VMPL0: RMPADJUST of VMPL1's permissions with the VMSA bit. Its
		 * code depends only on these inputs and our VMPL (0, checked at detection): a hypervisor's
		 * change to the page is an NPF or #VC 0x404 instead, so the check guards the inputs. */
		int rc = mv_rmpadjust_insn(vmsa, 0, 1 | RMPADJUST_VMSA_PAGE_BIT);
		if (rc != 0)
			mv_fatal("snp_set_vmsa_failed", (u64)rc);
		snp_ap_create(cpu, vmsa, sev_features);
		/* Linux waits for the AP to check in (do_boot_cpu); a VMM that never runs it is fatal. */
		u64 spins = 0;
		while (__atomic_load_n(&aps_online, __ATOMIC_ACQUIRE) != cpu) {
			if (++spins == WAKEUP_SPINS)
				mv_fatal("ap_start_timeout", cpu);
			mv_cpu_relax();
		}
	}
}

void smp_finish(void)
{
	if (mv_platform.kind != MV_PLATFORM_SNP || !aps_started)
		return;
	/* The APs are parked and never talk to the hypervisor again: take their GHCB pages back as
	 * private, validated memory (Linux does the same before kexec, snp_kexec_finish), so every
	 * page the kernel's record calls accepted is private again when it reports. */
	u32 cpus = smp_cpu_count();
	for (u32 cpu = 1; cpu < cpus; cpu++) {
		u64 ghcb = percpu[cpu].ghcb_gpa;
		percpu[cpu].ghcb_gpa = 0;
		mv_snp_psc(ghcb, MV_PAGE_SIZE, SNP_PSC_PRIVATE);
		mv_map_private(mv_boot_params(), ghcb, ghcb + MV_PAGE_SIZE);
		mv_snp_pvalidate_range(ghcb, MV_PAGE_SIZE, true);
	}
}

void kernel_ap_main(u64 cpu)
{
	mv_cpu_init();
	/* SNP: GS.base at this CPU's area once the segments are loaded (loading GS clears it; Linux
	 * writes MSR_GS_BASE after that too), and its GHCB registered before anything may need it
	 * (Linux snp_register_per_cpu_ghcb). */
	if (mv_platform.kind == MV_PLATFORM_SNP) {
		mv_wrmsr(MSR_GS_BASE, (u64)(uintptr_t)&percpu[cpu]);
		mv_snp_register_ghcb(percpu[cpu].ghcb_gpa);
	}
	mv_atomic_add(&aps_online, 1);
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
		if (mv_platform.kind == MV_PLATFORM_SNP)
			start_aps_snp(cpus, alloc);
		else
			wake_aps(cpus, alloc);
		aps_started = true;
	}
	work();
	while (__atomic_load_n(&aps_finished, __ATOMIC_ACQUIRE) != cpus - 1)
		mv_cpu_relax();
}
