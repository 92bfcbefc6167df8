/*
 * The freestanding guest library shared by the firmware, the decompressor and the kernel
 * (guest/lib). Each stage links its own copy; state that must survive a stage lives in
 * struct mv_boot_params.
 */
#ifndef MINIVISOR_GUEST_H
#define MINIVISOR_GUEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "boot_abi.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define ALIGN_DOWN(x, a) ((x) & ~((u64)(a) - 1))
#define ALIGN_UP(x, a) (((x) + (u64)(a) - 1) & ~((u64)(a) - 1))
#define IS_ALIGNED(x, a) (((x) & ((u64)(a) - 1)) == 0)
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define noreturn __attribute__((noreturn))

/* ---- string.c ---- */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
/* rep stosq: cheap in instructions, which the emulator counts. */
void mv_fill64(void *dst, u64 value, u64 qwords);

/* splitmix64 (Steele, Lea, Flood 2014): the one PRNG; everything derives from the VM seed. */
u64 mv_splitmix64(u64 *state);

/* ---- several CPUs ---- */
/* Memory shared between vCPUs is sequentially consistent at instruction granularity (one vCPU
 * runs at a time in minivisor); these are still the real x86 atomics a kernel would use. */
static inline void mv_atomic_add(volatile u64 *p, u64 v) { __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline u64 mv_atomic_fetch_add(volatile u64 *p, u64 v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline void mv_cpu_relax(void) { __builtin_ia32_pause(); }
/* A test-and-set spinlock that spins with PAUSE (Linux cpu_relax), like arch_spin_lock. */
typedef struct { volatile u32 locked; } mv_spinlock_t;
static inline void mv_spin_lock(mv_spinlock_t *l)
{
	while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
		while (l->locked)
			mv_cpu_relax();
}
static inline void mv_spin_unlock(mv_spinlock_t *l) { __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE); }

/* ---- cpu ---- */
static inline void mv_cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	asm volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline u64 mv_rdmsr(u32 msr)
{
	u32 lo, hi;
	asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}
static inline void mv_wrmsr(u32 msr, u64 v)
{
	asm volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
static inline u64 mv_read_cr2(void) { u64 v; asm volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline u64 mv_read_cr3(void) { u64 v; asm volatile("mov %%cr3, %0" : "=r"(v)); return v; }
/* Stops this vCPU for good (platform.c): HLT, or on TDX the TDVMCALL that replaces it. */
noreturn void mv_halt_forever(void);

/* cpu.S / cpu.c: a flat GDT (code 0x08, data 0x10), an IDT whose 32 exception vectors all
 * report and stop (#VE, #VC, #PF, #GP, #DF included). */
void mv_cpu_init(void);
/* The next boot stage: sends the console output still buffered (the next stage links its own
 * console and cannot send it), then switches to `stack` and jumps to `entry` with RDI = arg
 * (console.c; the jump is mv_jump in cpu.S). */
noreturn void mv_enter(u64 entry, u64 arg, u64 stack);
noreturn void mv_jump(u64 entry, u64 arg, u64 stack);
struct mv_exception_frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error_code, rip, cs, rflags, rsp, ss;
};

void mv_exception_dispatch(struct mv_exception_frame *frame);
noreturn void mv_exception_fatal(struct mv_exception_frame *frame);

/* ---- platform.c ---- */
struct mv_tdcall_regs {
	u64 rax, rcx, rdx, rbx, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15;
};
u64 mv_tdcall(struct mv_tdcall_regs *regs);           /* cpu.S; returns RAX */
int mv_pvalidate_insn(u64 va, u32 size_2m, u32 validate); /* cpu.S; 255 when CF=1 */
int mv_rmpadjust_insn(u64 va, u32 size_2m, u64 attrs);   /* cpu.S; EAX */
void mv_vmgexit(void);                                /* cpu.S */

#define TDG_VP_VMCALL            0
#define TDG_VP_INFO              1
#define TDG_VP_VEINFO_GET        3
#define TDG_MEM_PAGE_ACCEPT      6
#define TDX_SUCCESS              0ull
#define TDX_PAGE_ALREADY_ACCEPTED 0x00000B0A00000000ull
#define TDX_PAGE_SIZE_MISMATCH   0xC0000B0B00000000ull
#define TDX_OPERAND_BUSY         0x8000020000000000ull
#define TDX_STATUS_CLASS_MASK    0xFFFFFFFF00000000ull
#define TDVMCALL_HLT             12
#define TDVMCALL_IO              30
#define TDVMCALL_MAP_GPA         0x10001
#define TDVMCALL_REPORT_FATAL    0x10003
#define TDVMCALL_STATUS_SUCCESS  0
#define TDVMCALL_STATUS_RETRY    1

#define MSR_SEV_STATUS           0xC0010131
#define MSR_SEV_STATUS_SNP       (1ull << 2)
#define MSR_GHCB                 0xC0010130
#define GHCB_MSR_SEV_INFO_REQ    0x002
#define GHCB_MSR_SEV_INFO_RESP   0x001
#define GHCB_MSR_REG_GPA_REQ     0x012
#define GHCB_MSR_REG_GPA_RESP    0x013
#define GHCB_MSR_PSC_REQ         0x014
#define GHCB_MSR_PSC_RESP        0x015
#define GHCB_MSR_TERM_REQ        0x100
#define SNP_PSC_PRIVATE          1
#define SNP_PSC_SHARED           2
#define SVM_VMGEXIT_PSC          0x80000010
/* PSC NAE: an 8-byte header and at most 253 entries fill the GHCB shared buffer. */
#define SNP_PSC_MAX_ENTRIES      253
#define SNP_PSC_ENTRY_GFN_MASK   0x000ffffffffff000ull /* gfn[51:12], in place */
#define SNP_PSC_ENTRY_OP_SHIFT   52                    /* operation[55:52] */
#define SNP_PSC_ENTRY_2M         (1ull << 56)          /* pagesize[56]: 1 = 2 MiB */
#define PVALIDATE_FAIL_INPUT     1
#define PVALIDATE_FAIL_SIZEMISMATCH 6
#define PVALIDATE_FAIL_NOUPDATE  255
#define SVM_EXIT_IOIO            0x7B
#define SVM_EXIT_CPUID           0x72
#define GHCB_MSR_CPUID_REQ       0x004
#define GHCB_MSR_CPUID_RESP      0x005

/* GHCB page layout (GHCB spec 56421; Linux uapi svm.h struct ghcb). */
#define GHCB_OFF_RAX             0x1f8
#define GHCB_OFF_SW_EXIT_CODE    0x390
#define GHCB_OFF_SW_EXIT_INFO1   0x398
#define GHCB_OFF_SW_EXIT_INFO2   0x3a0
#define GHCB_OFF_SW_SCRATCH      0x3a8
#define GHCB_OFF_VALID_BITMAP    0x3f0
#define GHCB_OFF_SHARED_BUFFER   0x800
#define GHCB_OFF_PROTOCOL        0xffa
#define GHCB_OFF_USAGE           0xffc
#define GHCB_PROTOCOL_VERSION    2

struct mv_platform {
	u32 kind;            /* MV_PLATFORM_* */
	u32 stage;           /* MV_STAGE_* of this image */
	u64 shared_mask;     /* TDX: shared bit */
	u64 private_mask;    /* SNP: C-bit */
	u64 ghcb_gpa;        /* SNP, 0 until registered; with several CPUs the BSP's (see percpu_ghcb) */
	u64 console_gpa;     /* TDX: the shared console page, 0 until converted */
	struct mv_accept_stats *stats;
	/* SNP kernel with several CPUs: each CPU has its own GHCB (Linux's per-CPU runtime_data
	 * ghcb_page), named by the per-CPU area GS.base points at (struct mv_percpu). */
	bool percpu_ghcb;
};
extern struct mv_platform mv_platform;

/* What GS.base points at on each CPU of an SNP kernel with several CPUs. */
struct mv_percpu {
	u64 ghcb_gpa;        /* this CPU's registered, shared GHCB page */
	u64 cpu;             /* its index (= APIC ID) */
};
#define MSR_GS_BASE              0xC0000101
/* The GHCB page of the CPU that runs this (SNP). */
u64 mv_snp_ghcb_gpa(void);
/* SNP: registers `gpa` as this CPU's GHCB (MSR protocol 0x012/0x013, Linux
 * snp_register_ghcb_early); terminates if the hypervisor does not echo it. */
void mv_snp_register_ghcb(u64 gpa);
/* SNP: the hypervisor's feature bitmap (MSR protocol 0x080/0x081, Linux get_hv_features);
 * terminates on a malformed answer. */
u64 mv_snp_hv_features(void);
#define GHCB_HV_FT_SNP               (1ull << 0)
#define GHCB_HV_FT_SNP_AP_CREATION   (1ull << 1)
#define SVM_VMGEXIT_AP_CREATION      0x80000013ull
#define SVM_VMGEXIT_AP_CREATE        1ull
#define GHCB_MSR_HV_FT_REQ           0x080
#define GHCB_MSR_HV_FT_RESP          0x081

/* Detects TDX (CPUID 0x21 "IntelTDX    ") or SNP (SEV_STATUS bit 2); terminates otherwise. */
void mv_platform_detect(void);
/* Firmware: moves the early statistics into the boot params. */
void mv_platform_use_stats(struct mv_accept_stats *s);
/* Adopts what the firmware detected (decompressor, kernel). */
void mv_platform_adopt(struct mv_boot_params *bp, u32 stage);
/* SNP: rescinds, converts to shared and registers the GHCB page (needs paging on). */
void mv_snp_setup_ghcb(u64 gpa);
/* SNP #VC 0x72: answers the CPUID at frame->rip from the CPUID page like Linux do_vc_no_ghcb
 * (an empty or missing table is fatal, as in Linux setup_cpuid_table) and steps over it;
 * terminates on anything the VMM got wrong. */
void mv_snp_vc_cpuid(struct mv_exception_frame *frame);

/* Page conversion with hypervisor-interference checks (fatal on any misbehaviour). */
void mv_tdx_map_gpa(u64 gpa, u64 bytes, bool shared);
/* SNP page-state change through the GHCB MSR protocol, one 4 KiB page per request: only for
 * what happens before the GHCB page exists (its own conversion to shared). */
void mv_snp_psc_msr(u64 gpa, u64 bytes, u32 op);
/* SNP page-state change through the registered GHCB page (PSC NAE 0x80000010): 2 MiB entries
 * where the GPA is 2 MiB aligned and 2 MiB remain, 4 KiB entries otherwise, up to
 * SNP_PSC_MAX_ENTRIES per call, looping over partial progress with Linux's vmgexit_psc
 * checks. Does not PVALIDATE: callers keep the order (private: PSC then validate; shared:
 * rescind then PSC). */
void mv_snp_psc(u64 gpa, u64 bytes, u32 op);
/* Sets the GHCB's valid bitmap, protocol version and usage for one NAE call, and writes the
 * exit code and EXITINFO1/2 (all marked valid). Further fields: mv_snp_ghcb_set_valid. */
u8 *mv_snp_ghcb_begin(u64 exit_code, u64 info1, u64 info2);
void mv_snp_ghcb_set_valid(u8 *ghcb, u32 offset);
/* Points the GHCB MSR at the page (the MSR protocol reuses it) and exits. */
void mv_snp_ghcb_exit(void);
void mv_snp_pvalidate_range(u64 gpa, u64 bytes, bool validate);

/* Accepts [start, end) through the platform: TDX ACCEPT 2M with 4K fallback on size
 * mismatch; SNP PSC(private) then PVALIDATE 2M with 4K fallback. Not bitmap-aware: the
 * caller guarantees the range is unaccepted. Counts into the current stage's statistics. */
void mv_arch_accept(u64 start, u64 end);

/* ---- console.c ---- */
/* Buffers console output and sends it in batches, one exit each (boot_abi.h, console);
 * mv_console_flush sends what is buffered now (every guest exit path calls it first). */
void mv_putc(char c);
void mv_console_flush(void);
/* TDX firmware: converts MV_CONSOLE_PAGE_GPA to shared for the batched console. */
void mv_tdx_console_setup(struct mv_boot_params *bp);
void mv_puts(const char *s);
void mv_put_dec(u64 v);
void mv_put_hex(u64 v);
/* "@mv stage <name>" / "@mv stat <name> <decimal>" / "@mv done" */
void mv_report_stage(const char *name);
void mv_report_stat(const char *name, u64 value);
void mv_report_done(void);
/* Prints "@mv fatal <reason>[ 0x<detail>]" and stops through the platform's fatal path
 * (TDX ReportFatalError, SNP GHCB termination request). snp_set/snp_code choose the SNP
 * termination reason (MV_SNP_TERM_*). */
noreturn void mv_fatal_code(const char *reason, u64 detail, u32 snp_set, u32 snp_code);
#define mv_fatal(reason, detail) \
	mv_fatal_code((reason), (detail), MV_SNP_TERM_SET_MINIVISOR, MV_SNP_TERM_MINIVISOR_FATAL)
/* kvm-unit-tests/selftests style: a failed guest assertion is a fatal report. */
#define MV_ASSERT(cond, detail) \
	do { if (!(cond)) mv_fatal("assert " #cond, (u64)(detail)); } while (0)
/* An unconditional failure (the selftests' GUEST_FAIL): "@mv fatal <reason> 0x<detail>". */
#define MV_FAIL(reason, detail) mv_fatal((reason), (u64)(detail))
/* The platform fatal path alone, after the caller printed its own "@mv fatal" line. */
noreturn void mv_fatal_stop(const char *reason, u64 detail, u32 snp_set, u32 snp_code);
/* Every fatal report starts here: the first CPU to stop reports, any later one waits for good
 * (the console has one line buffer, and the first error is the one that counts). */
void mv_fatal_begin(void);
/* Termination without a console (before the platform is known or before the GHCB exists). */
noreturn void mv_terminate_silently(u32 snp_set, u32 snp_code);

/* ---- paging.c ---- */
/* Identity map [start, end) (2 MiB pages, private) and the shared window for [start, end).
 * Tables come from the boot-params page-table pool; already-mapped 2 MiB slots are kept. */
void mv_map_private(struct mv_boot_params *bp, u64 start, u64 end);
void mv_map_shared(struct mv_boot_params *bp, u64 start, u64 end);
static inline void *mv_shared_ptr(u64 gpa) { return (void *)(MV_SHARED_WINDOW_VA + gpa); }
/* Flushes the TLB entries of [start, end) after a PTE change. */
void mv_flush_tlb(void);

/* ---- unaccepted.c (decompressor, kernel): the acceptance bitmap ---- */
struct mv_bitmap {
	u64 *words;   /* bit set = unit unaccepted */
	u64 bytes;
	u64 unit;
	u64 span;     /* bytes of guest-physical space covered from GPA 0 */
};
extern struct mv_bitmap mv_bitmap;
void mv_bitmap_attach(struct mv_boot_params *bp);
bool mv_bitmap_unaccepted(u64 gpa);
/* Accepts every unit of [start, end) whose bit is set, then clears the bits (Linux libstub
 * accept_memory; no guard unit). Returns the bytes accepted. */
u64 mv_accept_bitmap_range(u64 start, u64 end);
/* Optional: called after each newly accepted run (the kernel checks TDX zeroing with it). */
extern void (*mv_on_accepted)(u64 start, u64 end);
#ifdef MV_TRACKING_MEMMAP
/* --tracking memmap: the kernel's checked validation path (kernel/memmap-state.c), set at kernel
 * entry; the exception path of a planted variant sends its requests there. Null before. */
extern void (*mv_validation_request)(u64 start, u64 end);
#endif

static inline struct mv_boot_params *mv_boot_params(void)
{
	return (struct mv_boot_params *)(uintptr_t)MV_BOOT_PARAMS_GPA;
}

#endif /* MINIVISOR_GUEST_H */
