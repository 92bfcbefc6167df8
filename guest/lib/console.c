/*
 * The console (COM1 data port 0x3f8 through the platform's I/O path) and the fatal paths.
 * Lines starting with "@mv " are the host protocol (src/boot/console-protocol.ts).
 */
#include <minivisor/guest.h>

#define IOIO_STR              (1u << 2)
#define IOIO_REP              (1u << 3)
#define IOIO_SZ8              (1u << 4)

/* Output not sent yet: it goes out with one exit when the buffer is full, when a stage begins,
 * and before the guest's own next exit to the VMM or its end (mv_console_flush), so the host
 * sees it in the order it was written relative to everything else the guest asks of the VMM. */
static char pending[MV_CONSOLE_BATCH_MAX];
static u32 pending_len;

/* GHCB IOIO NAE (SW_EXITCODE 0x7B): the MSR protocol has no I/O request. */
static void snp_out_byte(u16 port, u8 value)
{
	/* EXITINFO1 bit 0 = 0: OUT. */
	u8 *ghcb = mv_snp_ghcb_begin(SVM_EXIT_IOIO, ((u64)port << 16) | IOIO_SZ8, 0);
	*(volatile u64 *)(ghcb + GHCB_OFF_RAX) = value;
	mv_snp_ghcb_set_valid(ghcb, GHCB_OFF_RAX);
	mv_snp_ghcb_exit();
	/* A console error is not worth dying for; everything important also has a stat. */
}

/* TDG.VP.VMCALL<Instruction.IO> (GHCI: R11 = 30, R12 size, R13 direction 1 = out, R14 port,
 * R15 value; RCX exposes R10-R15). */
static void tdx_out_byte(u16 port, u8 value)
{
	struct mv_tdcall_regs r = {
		.rax = TDG_VP_VMCALL, .rcx = 0xfc00, .r10 = 0, .r11 = TDVMCALL_IO,
		.r12 = 1, .r13 = 1, .r14 = port, .r15 = value,
	};
	mv_tdcall(&r);
}

/* OUTS of the batch through the GHCB (boot_abi.h, console): the bytes in the shared buffer. The
 * GHCB is shared: only the VMM's status is read back, and only compared. */
static bool snp_out_batch(void)
{
	u8 *ghcb = mv_snp_ghcb_begin(SVM_EXIT_IOIO, ((u64)MV_CONSOLE_PORT << 16) | IOIO_SZ8 | IOIO_STR | IOIO_REP, pending_len);
	memcpy(ghcb + GHCB_OFF_SHARED_BUFFER, pending, pending_len);
	*(volatile u64 *)(ghcb + GHCB_OFF_SW_SCRATCH) = mv_snp_ghcb_gpa() + GHCB_OFF_SHARED_BUFFER;
	mv_snp_ghcb_set_valid(ghcb, GHCB_OFF_SW_SCRATCH);
	mv_snp_ghcb_exit();
	return *(volatile u64 *)(ghcb + GHCB_OFF_SW_EXIT_INFO1) == 0;
}

/* The vendor-specific console TDVMCALL (boot_abi.h, console) over the shared console page. The
 * page is shared: the guest only writes it (the bytes come from its private buffer) and never
 * reads it back. */
static bool tdx_out_batch(void)
{
	memcpy(mv_shared_ptr(mv_platform.console_gpa), pending, pending_len);
	struct mv_tdcall_regs r = {
		.rax = TDG_VP_VMCALL, .rcx = 0x3c00, .r10 = MV_CONSOLE_VMCALL, .r11 = MV_CONSOLE_VMCALL_WRITE,
		.r12 = mv_platform.console_gpa | mv_platform.shared_mask, .r13 = pending_len,
	};
	return mv_tdcall(&r) == TDX_SUCCESS && r.r10 == 0;
}

void mv_console_flush(void)
{
	if (pending_len == 0)
		return;
	bool sent = false;
	/* A refusal may be momentary: one more try costs one exit, bytes cost one per byte. */
	for (int tries = 0; tries < 2 && !sent; tries++) {
		if (mv_platform.kind == MV_PLATFORM_TDX && mv_platform.console_gpa)
			sent = tdx_out_batch();
		else if (mv_platform.kind == MV_PLATFORM_SNP)
			sent = snp_out_batch();
		else
			break;
	}
	/* No batched path (yet), or the VMM refused it twice: byte by byte, which every VMM takes. */
	for (u32 i = 0; !sent && i < pending_len; i++) {
		if (mv_platform.kind == MV_PLATFORM_TDX)
			tdx_out_byte(MV_CONSOLE_PORT, (u8)pending[i]);
		else
			snp_out_byte(MV_CONSOLE_PORT, (u8)pending[i]);
	}
	pending_len = 0;
}

/* No console yet: SNP before the GHCB exists, or no platform. */
static bool console_ready(void)
{
	return mv_platform.kind == MV_PLATFORM_TDX || (mv_platform.kind == MV_PLATFORM_SNP && mv_platform.ghcb_gpa);
}

void mv_putc(char c)
{
	if (!console_ready())
		return;
	if (pending_len == sizeof(pending))
		mv_console_flush();
	pending[pending_len++] = c;
}

noreturn void mv_enter(u64 entry, u64 arg, u64 stack)
{
	mv_console_flush();
	mv_jump(entry, arg, stack);
}

void mv_tdx_console_setup(struct mv_boot_params *bp)
{
	mv_console_flush(); /* what is buffered goes out the old way */
	mv_tdx_map_gpa(MV_CONSOLE_PAGE_GPA, MV_PAGE_SIZE, true);
	mv_map_shared(bp, MV_CONSOLE_PAGE_GPA, MV_CONSOLE_PAGE_GPA + MV_PAGE_SIZE);
	mv_platform.console_gpa = bp->console_gpa = MV_CONSOLE_PAGE_GPA;
}

/* mv_putc for each byte, with the same flushes (a full buffer goes out before the next byte),
 * copied in one loop: the kernel's final report is ~400 bytes, and a call per byte was 23% of an
 * SNP kernel-stage fuzz execution's guest instructions, 13% of a TDX one's (issue 10). */
void mv_puts(const char *s)
{
	if (!console_ready())
		return;
	for (;;) {
		u32 len = pending_len;
		while (*s && len < sizeof(pending))
			pending[len++] = *s++;
		pending_len = len;
		if (!*s)
			return;
		mv_console_flush();
	}
}

void mv_put_dec(u64 v)
{
	char buf[21];
	int i = 20;
	buf[i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	mv_puts(buf + i);
}

void mv_put_hex(u64 v)
{
	char buf[19];
	int i = 18;
	buf[i] = 0;
	do {
		buf[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	buf[--i] = 'x';
	buf[--i] = '0';
	mv_puts(buf + i);
}

void mv_report_stage(const char *name)
{
	mv_puts("@mv stage ");
	mv_puts(name);
	mv_putc('\n');
	/* Now: the host counts what the hardware accepts from here on for this stage, and accepts
	 * do not exit to the VMM. */
	mv_console_flush();
}

void mv_report_stat(const char *name, u64 value)
{
	mv_puts("@mv stat ");
	mv_puts(name);
	mv_putc(' ');
	mv_put_dec(value);
	mv_putc('\n');
}

void mv_report_done(void)
{
	mv_puts("@mv done\n");
}

noreturn void mv_terminate_silently(u32 snp_set, u32 snp_code)
{
	mv_console_flush();
	if (mv_platform.kind == MV_PLATFORM_SNP) {
		mv_wrmsr(MSR_GHCB, GHCB_MSR_TERM_REQ | ((u64)(snp_set & 0xf) << 12) | ((u64)(snp_code & 0xff) << 16));
		mv_vmgexit();
	}
	mv_halt_forever();
}

noreturn void mv_fatal_stop(const char *reason, u64 detail, u32 snp_set, u32 snp_code)
{
	(void)detail;
	mv_console_flush();
	if (mv_platform.kind == MV_PLATFORM_TDX) {
		/* TDG.VP.VMCALL<ReportFatalError>: R12 = 0 (Linux's panic code), a 64-byte message
		 * in R14, R15, RBX, RDI, RSI, R8, R9, RDX (Linux tdx_panic). */
		u64 msg[8] = { 0 };
		size_t n = strlen(reason);
		memcpy(msg, reason, n < sizeof(msg) ? n : sizeof(msg));
		struct mv_tdcall_regs r = {
			.rax = TDG_VP_VMCALL, .rcx = 0xffcc, .r10 = 0, .r11 = TDVMCALL_REPORT_FATAL,
			.r12 = 0, .r13 = 0, .r14 = msg[0], .r15 = msg[1], .rbx = msg[2], .rdi = msg[3],
			.rsi = msg[4], .r8 = msg[5], .r9 = msg[6], .rdx = msg[7],
		};
		mv_tdcall(&r);
		mv_halt_forever(); /* Linux loops forever if the VMM returns */
	}
	mv_terminate_silently(snp_set, snp_code);
}

static volatile u32 fatal_reported;

void mv_fatal_begin(void)
{
	if (__atomic_exchange_n(&fatal_reported, 1, __ATOMIC_ACQUIRE))
		for (;;)
			mv_cpu_relax();
}

noreturn void mv_fatal_code(const char *reason, u64 detail, u32 snp_set, u32 snp_code)
{
	mv_fatal_begin();
	mv_puts("@mv fatal ");
	mv_puts(reason);
	mv_puts(" ");
	mv_put_hex(detail);
	mv_putc('\n');
	mv_fatal_stop(reason, detail, snp_set, snp_code);
}
