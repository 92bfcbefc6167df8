/* GDT, IDT and the fatal exception handler shared by every stage. */
#include <minivisor/guest.h>

struct __attribute__((packed)) descriptor_pointer {
	u16 limit;
	u64 base;
};

struct idt_gate {
	u16 offset_low;
	u16 selector;
	u8 ist;
	u8 type_attr;
	u16 offset_mid;
	u32 offset_high;
	u32 reserved;
};

/* null, 64-bit code (L=1) at 0x08, data at 0x10: the same flat layout KVM selftests use. */
static u64 gdt[3] __attribute__((aligned(16))) = {
	0,
	0x00af9b000000ffffull,
	0x00cf93000000ffffull,
};
static struct idt_gate idt[32] __attribute__((aligned(16)));

extern char mv_exception_stubs_start[];
void mv_load_gdt_idt(const struct descriptor_pointer *gdtr, const struct descriptor_pointer *idtr);

void mv_cpu_init(void)
{
	for (int v = 0; v < 32; v++) {
		u64 handler = (u64)(uintptr_t)mv_exception_stubs_start + (u64)v * 16;
		idt[v] = (struct idt_gate){
			.offset_low = (u16)handler,
			.selector = 0x08,
			.ist = 0,
			.type_attr = 0x8e, /* present, DPL0, 64-bit interrupt gate */
			.offset_mid = (u16)(handler >> 16),
			.offset_high = (u32)(handler >> 32),
		};
	}
	struct descriptor_pointer gdtr = { sizeof(gdt) - 1, (u64)(uintptr_t)gdt };
	struct descriptor_pointer idtr = { sizeof(idt) - 1, (u64)(uintptr_t)idt };
	mv_load_gdt_idt(&gdtr, &idtr);
}

static const char *vector_name(u64 vector)
{
	switch (vector) {
	case 8: return "double_fault";
	case 13: return "general_protection";
	case 14: return "page_fault";
	case 20: return "unexpected_ve";
	case 29: return "unexpected_vc";
	default: return "exception";
	}
}

#ifdef MV_TRACKING_MEMMAP
void (*mv_validation_request)(u64 start, u64 end);
#endif

#ifdef MV_PLANT_TRUSTS_INJECTED_EXCEPTION
/* Planted bug: a #VE (EPT violation) or #VC 0x404 (page not validated) is taken at its word as
 * "this page still needs accepting": the page it names is accepted and the access retried, with
 * no look at the guest's own record of what it accepted. A VMM that removed and re-added a page
 * the guest had accepted gets it accepted again (zeroed on TDX, its old contents on SNP). */
static bool accept_faulting_page(const struct mv_exception_frame *frame)
{
	u64 gpa;
	if (frame->vector == 20 && mv_platform.kind == MV_PLATFORM_TDX) {
		struct mv_tdcall_regs r = { .rax = TDG_VP_VEINFO_GET };
		if (mv_tdcall(&r) != 0 || (u32)r.rcx != 48 /* EPT violation */)
			return false;
		gpa = r.r9 & ~mv_platform.shared_mask;
	} else if (frame->vector == 29 && mv_platform.kind == MV_PLATFORM_SNP && frame->error_code == 0x404) {
		gpa = mv_read_cr2(); /* identity map: VA == GPA */
	} else {
		return false;
	}
	u64 page = ALIGN_DOWN(gpa, MV_PAGE_SIZE);
#ifdef MV_TRACKING_MEMMAP
	/* --tracking memmap: the request goes through Kleen's check like any other (the kernel's). */
	if (mv_validation_request) {
		mv_validation_request(page, page + MV_PAGE_SIZE);
		return true;
	}
#endif
	mv_arch_accept(page, page + MV_PAGE_SIZE);
	return true;
}
#endif

/* #VC 0x72 (CPUID) is answered and the guest resumes; every other exception is fatal. */
void mv_exception_dispatch(struct mv_exception_frame *frame)
{
	if (frame->vector == 29 && frame->error_code == SVM_EXIT_CPUID) {
		mv_snp_vc_cpuid(frame);
		return;
	}
#ifdef MV_PLANT_TRUSTS_INJECTED_EXCEPTION
	if (accept_faulting_page(frame))
		return;
#endif
	mv_exception_fatal(frame);
}

/* Every other exception is fatal in these stages, as in Linux's early boot code: an unexpected #VE
 * on private memory panics ("Unexpected EPT-violation on private memory."), an unhandled #VC
 * (e.g. 0x404 PAGE_NOT_VALIDATED on memory we validated) terminates. We report and stop. */
noreturn void mv_exception_fatal(struct mv_exception_frame *frame)
{
	mv_fatal_begin();
	mv_puts("@mv fatal ");
	mv_puts(vector_name(frame->vector));
	mv_puts(" vector=");
	mv_put_dec(frame->vector);
	mv_puts(" error=");
	mv_put_hex(frame->error_code);
	mv_puts(" rip=");
	mv_put_hex(frame->rip);
	if (frame->vector == 14 || frame->vector == 29) {
		mv_puts(" cr2=");
		mv_put_hex(mv_read_cr2());
	}
	if (frame->vector == 20 && mv_platform.kind == MV_PLATFORM_TDX) {
		/* TDG.VP.VEINFO.GET: what the #VE was about (R9 = GPA), as Linux's tdx_get_ve_info. */
		struct mv_tdcall_regs r = { .rax = TDG_VP_VEINFO_GET };
		if (mv_tdcall(&r) == 0) {
			mv_puts(" ve_reason=");
			mv_put_dec(r.rcx);
			mv_puts(" ve_gpa=");
			mv_put_hex(r.r9);
		}
	}
	mv_putc('\n');
	mv_fatal_stop(vector_name(frame->vector), frame->vector, MV_SNP_TERM_SET_MINIVISOR,
		      MV_SNP_TERM_MINIVISOR_FATAL);
}
