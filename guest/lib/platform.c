/*
 * Platform detection and the memory-state protocols: TDX (TDG.MEM.PAGE.ACCEPT, MapGPA) and
 * SEV-SNP (page-state change through the GHCB page, or the GHCB MSR protocol before the page
 * exists; PVALIDATE). Any hypervisor behaviour the protocol does not allow is fatal, as in
 * Linux (tdx-shared.c, boot/compressed/sev.c, kernel/sev.c).
 */
#include <minivisor/guest.h>

struct mv_platform mv_platform;
static struct mv_accept_stats early_stats; /* until the boot params exist */

static struct mv_accept_stats *stats(void)
{
	return mv_platform.stats ? mv_platform.stats : &early_stats;
}

static u64 ghcb_msr_call(u64 request)
{
	mv_wrmsr(MSR_GHCB, request);
	mv_vmgexit();
	return mv_rdmsr(MSR_GHCB);
}

static bool cpuid_is_tdx(void)
{
	u32 a, b, c, d;
	mv_cpuid(0x21, 0, &a, &b, &c, &d);
	/* "IntelTDX    " in EBX, EDX, ECX (Linux early_is_tdx_guest, EDK2 TdIsEnabled). */
	return b == 0x65746e49 && d == 0x5844546c && c == 0x20202020;
}

void mv_platform_detect(void)
{
	mv_platform.stage = MV_STAGE_FIRMWARE;
	if (cpuid_is_tdx()) {
		mv_platform.kind = MV_PLATFORM_TDX; /* the console works from here on */
		struct mv_tdcall_regs r = { .rax = TDG_VP_INFO };
		u64 status = mv_tdcall(&r);
		if (status != TDX_SUCCESS)
			mv_fatal("tdx_vp_info_failed", status);
		u32 gpaw = (u32)(r.rcx & 0x3f);
		if (gpaw != 48 && gpaw != 52)
			mv_fatal("tdx_bad_gpaw", gpaw);
		mv_platform.shared_mask = 1ull << (gpaw - 1); /* Linux: BIT(gpa_width - 1) */
		return;
	}
	if (mv_rdmsr(MSR_SEV_STATUS) & MSR_SEV_STATUS_SNP) {
		mv_platform.kind = MV_PLATFORM_SNP; /* no console until the GHCB page is registered */
		u32 a, b, c, d;
		mv_cpuid(0x8000001f, 0, &a, &b, &c, &d);
		u32 cbit = b & 0x3f;
		if (cbit < 32 || cbit > 51)
			mv_terminate_silently(MV_SNP_TERM_SET_GENERAL, 2 /* SNP unsupported */);
		/* The hypervisor's SEV-info answer must agree with CPUID (Radev & Morbitzer 2020:
		 * a lying C-bit position would make "private" mappings shared). */
		u64 info = ghcb_msr_call(GHCB_MSR_SEV_INFO_REQ);
		u32 max_proto = (u32)(info >> 48), min_proto = (u32)((info >> 32) & 0xffff);
		if ((info & 0xfff) != GHCB_MSR_SEV_INFO_RESP || max_proto < 2 || min_proto > 2)
			mv_terminate_silently(MV_SNP_TERM_SET_GENERAL, 1 /* protocol unsupported */);
		if (((info >> 24) & 0xff) != cbit)
			mv_terminate_silently(MV_SNP_TERM_SET_GENERAL, 0);
		mv_platform.private_mask = 1ull << cbit;
		/* Linux enforce_vmpl0(): RMPADJUST of VMPL1's permissions (here: none, on the boot
		 * params page) succeeds only at VMPL0; with no SVSM support, any other VMPL is fatal. */
		if (mv_rmpadjust_insn(MV_BOOT_PARAMS_GPA, 0, 1) != 0)
			mv_terminate_silently(MV_SNP_TERM_SET_LINUX, MV_SNP_TERM_NOT_VMPL0);
		return;
	}
	/* Neither: real firmware would run as a normal VM; minivisor has nothing to test. */
	mv_terminate_silently(MV_SNP_TERM_SET_GENERAL, 2);
}

void mv_platform_adopt(struct mv_boot_params *bp, u32 stage)
{
	mv_platform.kind = bp->platform;
	mv_platform.stage = stage;
	mv_platform.shared_mask = bp->shared_mask;
	mv_platform.private_mask = bp->private_mask;
	mv_platform.ghcb_gpa = bp->ghcb_gpa;
	mv_platform.console_gpa = bp->console_gpa;
	mv_platform.stats = &bp->stats;
	if (bp->platform != MV_PLATFORM_TDX && bp->platform != MV_PLATFORM_SNP)
		mv_halt_forever();
}

/* HLT in a TD raises #VE (TDX module tdx_td_dispatcher.c: td_generic_ve_exit), so a TD halts
 * through TDG.VP.VMCALL<Instruction.HLT>, R12 = interrupts blocked (Linux tdx.c __halt). */
noreturn void mv_halt_forever(void)
{
	mv_console_flush();
	for (;;) {
		if (mv_platform.kind == MV_PLATFORM_TDX) {
			struct mv_tdcall_regs r = {
				.rax = TDG_VP_VMCALL, .rcx = 0xffcc, .r10 = 0, .r11 = TDVMCALL_HLT, .r12 = 1,
			};
			mv_tdcall(&r);
		} else {
			asm volatile("cli; hlt");
		}
	}
}

/* ---------------- TDX ---------------- */

static u64 tdx_accept_one(u64 gpa, u32 level)
{
	struct mv_tdcall_regs r = { .rax = TDG_MEM_PAGE_ACCEPT, .rcx = gpa | level };
	u64 status;
	/* OPERAND_BUSY is host lock contention: retry a few times like EDK2 TdAcceptPages. */
	for (int tries = 0; tries < 4; tries++) {
		r.rax = TDG_MEM_PAGE_ACCEPT;
		r.rcx = gpa | level;
		status = mv_tdcall(&r);
		if ((status & TDX_STATUS_CLASS_MASK) != TDX_OPERAND_BUSY)
			break;
	}
	return status;
}

static noreturn void tdx_accept_fatal(u64 gpa, u64 status)
{
	mv_fatal_begin();
	if ((status & TDX_STATUS_CLASS_MASK) == TDX_PAGE_ALREADY_ACCEPTED) {
		/* Our bookkeeping says unaccepted, the module says accepted: the VMM mapped memory
		 * behind our back (or replayed it). Linux panics here; OVMF only warns. */
		mv_puts("@mv fatal tdx_accept_already_accepted gpa=");
	} else {
		mv_puts("@mv fatal tdx_accept_failed gpa=");
	}
	mv_put_hex(gpa);
	mv_puts(" status=");
	mv_put_hex(status);
	mv_putc('\n');
	mv_fatal_stop("TDX: Failed to accept memory", status, 0, 0);
}

/* Whether an ACCEPT status means "the page is now accepted and zeroed by us". */
#ifdef MV_PLANT_PSC_ERROR_IGNORED
/* The planted bug's warning: a console line that goes out at once, like a printk to a serial
 * console, so the guest's first exit after the failure is its output. */
static void planted_warn(const char *what, u64 status)
{
	mv_puts("warning: ");
	mv_puts(what);
	mv_puts(" failed, status ");
	mv_put_hex(status);
	mv_puts(", ignored\n");
	mv_console_flush();
}
#endif

static bool tdx_accepted(u64 status)
{
#ifdef MV_PLANT_ACCEPT_ALREADY_ACCEPTED
	/* Planted bug: "already accepted" read as success, so a page the VMM added behind our
	 * back (or that we accepted before) is used as if freshly zeroed. */
	if ((status & TDX_STATUS_CLASS_MASK) == TDX_PAGE_ALREADY_ACCEPTED)
		return true;
#endif
	return status == TDX_SUCCESS;
}

/* Linux tdx_accept_memory without 1G (the module rejects it): 2M where aligned, 4K
 * otherwise; a 2M SIZE_MISMATCH (range already split into 4K SEPT leaves) falls back to 512
 * 4K accepts like EDK2. The VMM AUGs on demand: ACCEPT re-executes until it completes. */
static void tdx_accept_range(u64 start, u64 end)
{
	while (start < end) {
		if (IS_ALIGNED(start, MV_SIZE_2M) && end - start >= MV_SIZE_2M) {
			u64 status = tdx_accept_one(start, 1);
			if (tdx_accepted(status)) {
				mv_atomic_add(&stats()->accept_calls_2m, 1);
				start += MV_SIZE_2M;
				continue;
			}
			if ((status & TDX_STATUS_CLASS_MASK) != TDX_PAGE_SIZE_MISMATCH)
				tdx_accept_fatal(start, status);
			mv_atomic_add(&stats()->size_mismatch_fallbacks, 1);
			for (u64 page = start; page < start + MV_SIZE_2M; page += MV_PAGE_SIZE) {
				u64 s4 = tdx_accept_one(page, 0);
				if (!tdx_accepted(s4))
					tdx_accept_fatal(page, s4);
				mv_atomic_add(&stats()->accept_calls_4k, 1);
			}
			start += MV_SIZE_2M;
			continue;
		}
		u64 status = tdx_accept_one(start, 0);
		if (!tdx_accepted(status))
			tdx_accept_fatal(start, status);
		mv_atomic_add(&stats()->accept_calls_4k, 1);
		start += MV_PAGE_SIZE;
	}
}

/* TDG.VP.VMCALL<MapGPA> with Linux's RETRY rules (tdx.c __tdx_map_gpa): the resume address
 * must lie in [start, end); at most 3 retries without progress. */
void mv_tdx_map_gpa(u64 gpa, u64 bytes, bool shared)
{
	u64 start = gpa | (shared ? mv_platform.shared_mask : 0);
	u64 end = start + bytes;
	int stalled = 0;
	mv_console_flush(); /* the console goes out before this exit, as it was written */
	for (;;) {
		struct mv_tdcall_regs r = {
			.rax = TDG_VP_VMCALL, .rcx = 0xfc00, .r10 = 0, .r11 = TDVMCALL_MAP_GPA,
			.r12 = start, .r13 = end - start,
		};
		u64 status = mv_tdcall(&r);
		mv_atomic_add(&stats()->psc_requests, 1);
		if (status != TDX_SUCCESS)
			mv_fatal("tdx_vmcall_failed", status);
		if (r.r10 == TDVMCALL_STATUS_SUCCESS)
			return;
#ifdef MV_PLANT_PSC_ERROR_IGNORED
		/* Planted bug: a failed conversion is taken as done, after a warning (like a WARN_ON
		 * that prints and goes on). */
		if (r.r10 != TDVMCALL_STATUS_RETRY) {
			planted_warn("MapGPA", r.r10);
			return;
		}
#endif
		if (r.r10 != TDVMCALL_STATUS_RETRY)
			mv_fatal("tdx_map_gpa_failed", r.r10);
		if (r.r11 < start || r.r11 >= end)
			mv_fatal("tdx_map_gpa_retry_out_of_range", r.r11);
		if (r.r11 == start) {
#ifdef MV_PLANT_MAP_GPA_UNBOUNDED_RETRY
			stalled = 0; /* planted bug: retry for as long as the VMM says so */
#endif
			if (++stalled > 3)
				mv_fatal("tdx_map_gpa_no_progress", start);
			continue;
		}
		start = r.r11;
		stalled = 0;
	}
}

/* ---------------- SEV-SNP ---------------- */

/* "@mv fatal <reason> gpa=<gpa> <what>=<value>[ <what2>=<value2>]", then terminate with
 * Linux's PSC reason (set 1, code 1). */
static noreturn void psc_fatal2(const char *reason, u64 gpa, const char *what, u64 value,
				const char *what2, u64 value2)
{
	mv_fatal_begin();
	mv_puts("@mv fatal ");
	mv_puts(reason);
	mv_puts(" gpa=");
	mv_put_hex(gpa);
	mv_putc(' ');
	mv_puts(what);
	mv_putc('=');
	mv_put_hex(value);
	if (what2) {
		mv_putc(' ');
		mv_puts(what2);
		mv_putc('=');
		mv_put_hex(value2);
	}
	mv_putc('\n');
	mv_fatal_stop(reason, value, MV_SNP_TERM_SET_LINUX, MV_SNP_TERM_PSC);
}

static noreturn void psc_fatal(const char *reason, u64 gpa, const char *what, u64 value)
{
	psc_fatal2(reason, gpa, what, value, 0, 0);
}

/* GHCB MSR protocol page-state change, one 4K page per request (Linux __page_state_change).
 * Each request is one psc_requests. */
void mv_snp_psc_msr(u64 gpa, u64 bytes, u32 op)
{
	for (u64 page = gpa; page < gpa + bytes; page += MV_PAGE_SIZE) {
		u64 resp = ghcb_msr_call(GHCB_MSR_PSC_REQ | (page & SNP_PSC_ENTRY_GFN_MASK) |
					 ((u64)op << SNP_PSC_ENTRY_OP_SHIFT));
		mv_atomic_add(&stats()->psc_requests, 1);
#ifdef MV_PLANT_PSC_ERROR_IGNORED
		resp = GHCB_MSR_PSC_RESP; /* planted bug: the response is never looked at */
#endif
		if ((resp & 0xfff) != GHCB_MSR_PSC_RESP || (resp >> 32) != 0)
			psc_fatal("snp_psc_failed", page, "response", resp);
	}
}

/* ---- the GHCB page (shared, registered) ---- */

u64 mv_snp_ghcb_gpa(void)
{
	if (!mv_platform.percpu_ghcb)
		return mv_platform.ghcb_gpa;
	u64 gpa;
	asm volatile("movq %%gs:%c1, %0" : "=r"(gpa) : "i"(__builtin_offsetof(struct mv_percpu, ghcb_gpa)));
	return gpa;
}

static u8 *ghcb_page(void)
{
	return mv_shared_ptr(mv_snp_ghcb_gpa());
}

void mv_snp_ghcb_set_valid(u8 *ghcb, u32 offset)
{
	u32 qword = offset / 8;
	ghcb[GHCB_OFF_VALID_BITMAP + qword / 8] |= (u8)(1u << (qword % 8));
}

/* Linux sev_es_ghcb_hv_call's preamble: a fresh valid bitmap (the hypervisor must not see
 * stale fields), protocol version 2, usage 0 (standard format). */
u8 *mv_snp_ghcb_begin(u64 exit_code, u64 info1, u64 info2)
{
	u8 *ghcb = ghcb_page();
	memset(ghcb + GHCB_OFF_VALID_BITMAP, 0, 16);
	*(volatile u64 *)(ghcb + GHCB_OFF_SW_EXIT_CODE) = exit_code;
	*(volatile u64 *)(ghcb + GHCB_OFF_SW_EXIT_INFO1) = info1;
	*(volatile u64 *)(ghcb + GHCB_OFF_SW_EXIT_INFO2) = info2;
	*(volatile u16 *)(ghcb + GHCB_OFF_PROTOCOL) = GHCB_PROTOCOL_VERSION;
	*(volatile u32 *)(ghcb + GHCB_OFF_USAGE) = 0;
	mv_snp_ghcb_set_valid(ghcb, GHCB_OFF_SW_EXIT_CODE);
	mv_snp_ghcb_set_valid(ghcb, GHCB_OFF_SW_EXIT_INFO1);
	mv_snp_ghcb_set_valid(ghcb, GHCB_OFF_SW_EXIT_INFO2);
	return ghcb;
}

void mv_snp_ghcb_exit(void)
{
	/* The MSR protocol (early PSC, termination) reuses the GHCB MSR, so point it back at the
	 * page every time (Linux: sev_es_wr_ghcb_msr before each VMGEXIT). */
	mv_wrmsr(MSR_GHCB, mv_snp_ghcb_gpa());
	mv_vmgexit();
}

/* One PSC descriptor of `count` entries, already written to the shared buffer: Linux
 * vmgexit_psc. The hypervisor may return with part of the work done (cur_entry advanced, or
 * cur_page inside a 2M entry); the guest calls again while cur_entry <= end_entry. Fatal:
 * SW_EXITINFO1 or SW_EXITINFO2 non-zero, a reserved header field set, cur_entry going
 * backwards or end_entry growing. Each check runs against the previous return (Linux compares
 * with the initial values; per-call monotonicity implies that). `first` is the descriptor's
 * first GPA, for the report. */
static void psc_ghcb_desc(u64 first, u32 count)
{
	u8 *ghcb = ghcb_page();
	volatile u16 *hdr_cur = (volatile u16 *)(ghcb + GHCB_OFF_SHARED_BUFFER);
	volatile u16 *hdr_end = (volatile u16 *)(ghcb + GHCB_OFF_SHARED_BUFFER + 2);
	volatile u32 *hdr_reserved = (volatile u32 *)(ghcb + GHCB_OFF_SHARED_BUFFER + 4);
	volatile u64 *entries = (volatile u64 *)(ghcb + GHCB_OFF_SHARED_BUFFER + 8);
	u16 cur = 0, end = (u16)(count - 1);
	int stalled = 0;
	*hdr_cur = cur;
	*hdr_end = end;
	*hdr_reserved = 0;
	while (cur <= end) {
		/* cur_page of the entry in progress (bits 11:0): a 2M entry may advance inside itself. */
		u64 cur_page = entries[cur] & 0xfff;
		ghcb = mv_snp_ghcb_begin(SVM_VMGEXIT_PSC, 0, 0);
		*(volatile u64 *)(ghcb + GHCB_OFF_SW_SCRATCH) = mv_snp_ghcb_gpa() + GHCB_OFF_SHARED_BUFFER;
		mv_snp_ghcb_set_valid(ghcb, GHCB_OFF_SW_SCRATCH);
		mv_snp_ghcb_exit();
		mv_atomic_add(&stats()->psc_requests, 1);
		/* Everything the hypervisor wrote is read once (it may change it at any time). */
		u64 info1 = *(volatile u64 *)(ghcb + GHCB_OFF_SW_EXIT_INFO1);
		u64 info2 = *(volatile u64 *)(ghcb + GHCB_OFF_SW_EXIT_INFO2);
		u16 new_cur = *hdr_cur, new_end = *hdr_end;
		u32 reserved = *hdr_reserved;
#ifdef MV_PLANT_PSC_ERROR_IGNORED
		/* Planted bug: an error answer ends the request as if everything had been done, after
		 * a warning. */
		if ((u32)info1 != 0 || info2 != 0) {
			planted_warn("PSC", info2 ? info2 : info1);
			return;
		}
#endif
		if ((u32)info1 != 0)
			psc_fatal("snp_psc_ghcb_error", first, "exit_info1", info1);
		if (info2 != 0)
			psc_fatal("snp_psc_failed", first, "exit_info2", info2);
		if (reserved != 0)
			psc_fatal("snp_psc_header_reserved", first, "reserved", reserved);
		if (new_end > end || new_cur < cur)
			psc_fatal2("snp_psc_backwards", first, "cur_entry", new_cur, "end_entry", new_end);
		/* Linux vmgexit_psc calls again for as long as the hypervisor returns without progress;
		 * like the MapGPA RETRY rule (tdx.c __tdx_map_gpa) we give up after 3 calls that moved
		 * neither cur_entry nor the entry's cur_page: a VMM that never progresses is a denial of
		 * service we report, not a loop we spin in. */
		if (new_cur == cur && new_end == end && (entries[cur] & 0xfff) == cur_page) {
			if (++stalled > 3)
				psc_fatal("snp_psc_no_progress", first, "cur_entry", cur);
		} else {
			stalled = 0;
		}
		cur = new_cur;
		end = new_end;
	}
}

/* Linux __set_pages_state: 2M entries where the GPA is 2 MiB aligned and 2 MiB remain, 4K
 * entries otherwise, SNP_PSC_MAX_ENTRIES per descriptor. The entries are built in the shared
 * buffer (the hypervisor reads them there; nothing the guest later relies on is read back
 * except the header). Each PSC VMGEXIT is one psc_requests, including the repeats after
 * partial progress. */
void mv_snp_psc(u64 gpa, u64 bytes, u32 op)
{
	/* Callers: mv_arch_accept (alignment checked there) and the kernel's conversions, all after
	 * the firmware registered the GHCB page. The console goes out first, as it was written:
	 * it shares the GHCB's buffer with the entries built below. */
	mv_console_flush();
	volatile u64 *entries = (volatile u64 *)(ghcb_page() + GHCB_OFF_SHARED_BUFFER + 8);
	u64 end = gpa + bytes;
	while (gpa < end) {
		u64 first = gpa;
		u32 count = 0;
		while (gpa < end && count < SNP_PSC_MAX_ENTRIES) {
			bool big = IS_ALIGNED(gpa, MV_SIZE_2M) && end - gpa >= MV_SIZE_2M;
			entries[count++] = (gpa & SNP_PSC_ENTRY_GFN_MASK) |
					   ((u64)op << SNP_PSC_ENTRY_OP_SHIFT) | (big ? SNP_PSC_ENTRY_2M : 0);
			gpa += big ? MV_SIZE_2M : MV_PAGE_SIZE;
		}
		psc_ghcb_desc(first, count);
	}
}

static noreturn void pvalidate_fatal(u64 va, int rc, bool validate)
{
	mv_fatal_begin();
	mv_puts(rc == PVALIDATE_FAIL_NOUPDATE ? "@mv fatal snp_pvalidate_unchanged va="
					      : "@mv fatal snp_pvalidate_failed va=");
	mv_put_hex(va);
	mv_puts(" rc=");
	mv_put_dec((u64)rc);
	mv_puts(validate ? " validate\n" : " rescind\n");
	mv_fatal_stop("snp_pvalidate", (u64)rc, MV_SNP_TERM_SET_LINUX, MV_SNP_TERM_PVALIDATE);
}

/* Whether a PVALIDATE result means "the validated bit is now what we asked for, changed by us". */
static bool pvalidate_done(int rc)
{
#ifdef MV_PLANT_ACCEPT_ALREADY_ACCEPTED
	/* Planted bug: CF=1 ("already in that state") read as success. */
	if (rc == PVALIDATE_FAIL_NOUPDATE)
		return true;
#endif
	return rc == 0;
}

/* Linux pval_pages: 2M where aligned, SIZEMISMATCH falls back to 512 x 4K, any other
 * result (including CF=1, "already in that state") terminates. The range is identity-mapped
 * with the C-bit, so VA == GPA. */
void mv_snp_pvalidate_range(u64 gpa, u64 bytes, bool validate)
{
	u64 end = gpa + bytes;
	while (gpa < end) {
		if (IS_ALIGNED(gpa, MV_SIZE_2M) && end - gpa >= MV_SIZE_2M) {
			int rc = mv_pvalidate_insn(gpa, 1, validate);
			if (pvalidate_done(rc)) {
				if (validate)
					mv_atomic_add(&stats()->accept_calls_2m, 1);
				gpa += MV_SIZE_2M;
				continue;
			}
			if (rc != PVALIDATE_FAIL_SIZEMISMATCH)
				pvalidate_fatal(gpa, rc, validate);
			mv_atomic_add(&stats()->size_mismatch_fallbacks, 1);
			for (u64 page = gpa; page < gpa + MV_SIZE_2M; page += MV_PAGE_SIZE) {
				int r4 = mv_pvalidate_insn(page, 0, validate);
				if (!pvalidate_done(r4))
					pvalidate_fatal(page, r4, validate);
				if (validate)
					mv_atomic_add(&stats()->accept_calls_4k, 1);
			}
			gpa += MV_SIZE_2M;
			continue;
		}
		int rc = mv_pvalidate_insn(gpa, 0, validate);
		if (!pvalidate_done(rc))
			pvalidate_fatal(gpa, rc, validate);
		if (validate)
			mv_atomic_add(&stats()->accept_calls_4k, 1);
		gpa += MV_PAGE_SIZE;
	}
}

void mv_snp_setup_ghcb(u64 gpa)
{
	/* Shared conversion order (Linux): rescind the validation first, then ask the hypervisor
	 * to make the page shared; the page is reached through the shared window afterwards. */
	mv_snp_pvalidate_range(gpa, MV_PAGE_SIZE, false);
	mv_snp_psc_msr(gpa, MV_PAGE_SIZE, SNP_PSC_SHARED);
	memset(mv_shared_ptr(gpa), 0, MV_PAGE_SIZE);
	mv_snp_register_ghcb(gpa);
	mv_platform.ghcb_gpa = gpa;
}

void mv_snp_register_ghcb(u64 gpa)
{
	u64 gfn = gpa >> 12;
	u64 resp = ghcb_msr_call(GHCB_MSR_REG_GPA_REQ | (gfn << 12));
	if ((resp & 0xfff) != GHCB_MSR_REG_GPA_RESP || (resp >> 12) != gfn)
		mv_terminate_silently(MV_SNP_TERM_SET_LINUX, MV_SNP_TERM_REGISTER);
}

u64 mv_snp_hv_features(void)
{
	u64 resp = ghcb_msr_call(GHCB_MSR_HV_FT_REQ);
	if ((resp & 0xfff) != GHCB_MSR_HV_FT_RESP)
		mv_terminate_silently(MV_SNP_TERM_SET_GENERAL, MV_SNP_TERM_GENERAL);
	return resp >> 12;
}

/* ---- CPUID: #VC 0x72 ---- */

/* The SNP CPUID page (SEV-SNP Firmware ABI Table 14; Linux struct snp_cpuid_table), launched
 * by the VMM as page type CPUID so the firmware checked it against the CPU. */
struct snp_cpuid_fn {
	u32 eax_in, ecx_in;
	u64 xcr0_in, xss_in;
	u32 eax, ebx, ecx, edx;
	u64 reserved;
} __attribute__((packed));
#define SNP_CPUID_COUNT_MAX 64
struct snp_cpuid_table {
	u32 count, reserved1;
	u64 reserved2;
	struct snp_cpuid_fn fn[SNP_CPUID_COUNT_MAX];
} __attribute__((packed));

/* Linux cpuid_function_is_indexed(): leaves whose ECX selects a sub-leaf. */
static bool cpuid_is_indexed(u32 fn)
{
	switch (fn) {
	case 0x4: case 0x7: case 0xb: case 0xd: case 0xf: case 0x10: case 0x12: case 0x14:
	case 0x17: case 0x18: case 0x1d: case 0x1e: case 0x1f: case 0x24: case 0x8000001d:
		return true;
	default:
		return false;
	}
}

/* Linux snp_cpuid() without post-processing: the entry for (fn, subfn), or zeros for a leaf
 * the table does not list. Linux setup_cpuid_table refuses, before any lookup, a table that is
 * empty (a ZERO page where the CPUID page should be reads as one; the firmware accepts COUNT 0
 * and measures a CPUID page by its type only, so only the guest can notice) or over 64 entries:
 * an SNP guest never asks the hypervisor for CPUID instead. */
static void cpuid_from_table(u32 fn, u32 subfn, u32 out[4])
{
	const struct snp_cpuid_table *t = (const struct snp_cpuid_table *)(uintptr_t)MV_SNP_CPUID_PAGE_GPA;
	u32 count = t->count;
	if (count == 0 || count > SNP_CPUID_COUNT_MAX)
		mv_terminate_silently(MV_SNP_TERM_SET_LINUX, MV_SNP_TERM_CPUID);
	out[0] = out[1] = out[2] = out[3] = 0;
	for (u32 i = 0; i < count; i++) {
		const struct snp_cpuid_fn *e = &t->fn[i];
		if (e->eax_in != fn || (cpuid_is_indexed(fn) && e->ecx_in != subfn))
			continue;
		out[0] = e->eax;
		out[1] = e->ebx;
		out[2] = e->ecx;
		out[3] = e->edx;
		break;
	}
}

/* Linux do_vc_no_ghcb(): only a real CPUID (0F A2: a #VC 0x72 injected elsewhere is the WeSee
 * attack), answered from the CPUID page; the table must not hide SEV (0x80000000 EAX >=
 * 0x8000001F, 0x8000001F EAX bit 1): terminate with GHCB_SEV_ES_GEN_REQ (set 0, code 0). */
void mv_snp_vc_cpuid(struct mv_exception_frame *f)
{
	/* Only SEV-ES/SNP raise #VC: terminate through the GHCB even before detection finished. */
	mv_platform.kind = MV_PLATFORM_SNP;
	const u8 *insn = (const u8 *)(uintptr_t)f->rip;
	if (insn[0] != 0x0f || insn[1] != 0xa2)
		mv_terminate_silently(MV_SNP_TERM_SET_GENERAL, MV_SNP_TERM_GENERAL);
	u32 fn = (u32)f->rax, subfn = (u32)f->rcx, r[4];
	cpuid_from_table(fn, subfn, r);
	if ((fn == 0x80000000 && r[0] < 0x8000001f) || (fn == 0x8000001f && !(r[0] & (1u << 1))))
		mv_terminate_silently(MV_SNP_TERM_SET_GENERAL, MV_SNP_TERM_GENERAL);
	f->rax = r[0];
	f->rbx = r[1];
	f->rcx = r[2];
	f->rdx = r[3];
	f->rip += 2;
}

/* ---------------- both ---------------- */

void mv_arch_accept(u64 start, u64 end)
{
	if (start >= end)
		return;
	if (!IS_ALIGNED(start, MV_PAGE_SIZE) || !IS_ALIGNED(end, MV_PAGE_SIZE))
		mv_fatal("accept_unaligned_range", start);
	if (mv_platform.kind == MV_PLATFORM_TDX) {
		tdx_accept_range(start, end);
	} else { /* SNP: mv_platform_detect/adopt stop on anything else */
		/* PVALIDATE takes a virtual address: the range must be mapped (private). */
		mv_map_private(mv_boot_params(), start, end);
		/* Private conversion order: PSC to private first, then PVALIDATE. With 2M PSC
		 * entries the RMP holds 2M entries, so PVALIDATE 2M succeeds without the 4K
		 * fallback. */
		mv_snp_psc(start, end - start, SNP_PSC_PRIVATE);
		mv_snp_pvalidate_range(start, end - start, true);
	}
	mv_atomic_add(&stats()->accepted_bytes[mv_platform.stage], end - start);
}

/* The firmware's stats live in a static until it has written the boot params. */
void mv_platform_use_stats(struct mv_accept_stats *s)
{
	*s = early_stats;
	mv_platform.stats = s;
}
