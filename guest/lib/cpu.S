/*
 * Low-level CPU glue: GDT/IDT loading, the exception entry stubs, and the three instructions
 * the compiler cannot emit (TDCALL, PVALIDATE, VMGEXIT), written as bytes like Linux
 * (arch/x86/coco/tdx/tdcall.S, asm/sev.h) and EDK2 (TdCall.nasm, Pvalidate.nasm) do.
 */
	.intel_syntax noprefix
	.code64
	.text

/* void mv_load_gdt_idt(const void *gdtr, const void *idtr): loads both descriptor tables,
 * reloads CS with a far return (selector 0x08) and the data segments with 0x10. */
	.globl mv_load_gdt_idt
mv_load_gdt_idt:
	lgdt [rdi]
	lidt [rsi]
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax
	xor eax, eax
	mov fs, ax
	mov gs, ax
	pop rax                 /* return address */
	push 0x08
	push rax
	lretq

/* Exception stubs: vectors 8, 10-14, 17, 21, 29, 30 push an error code; the others get 0 so
 * every frame looks the same (struct mv_exception_frame). */
.macro EXC_NOERR n
	.balign 16
	push 0
	push \n
	jmp mv_exception_common
.endm
.macro EXC_ERR n
	.balign 16
	push \n
	jmp mv_exception_common
.endm

	.balign 16
	.globl mv_exception_stubs_start
mv_exception_stubs_start:
	EXC_NOERR 0
	EXC_NOERR 1
	EXC_NOERR 2
	EXC_NOERR 3
	EXC_NOERR 4
	EXC_NOERR 5
	EXC_NOERR 6
	EXC_NOERR 7
	EXC_ERR 8
	EXC_NOERR 9
	EXC_ERR 10
	EXC_ERR 11
	EXC_ERR 12
	EXC_ERR 13
	EXC_ERR 14
	EXC_NOERR 15
	EXC_NOERR 16
	EXC_ERR 17
	EXC_NOERR 18
	EXC_NOERR 19
	EXC_NOERR 20
	EXC_ERR 21
	EXC_NOERR 22
	EXC_NOERR 23
	EXC_NOERR 24
	EXC_NOERR 25
	EXC_NOERR 26
	EXC_NOERR 27
	EXC_NOERR 28
	EXC_ERR 29
	EXC_ERR 30
	EXC_NOERR 31

mv_exception_common:
	push rax
	push rbx
	push rcx
	push rdx
	push rsi
	push rdi
	push rbp
	push r8
	push r9
	push r10
	push r11
	push r12
	push r13
	push r14
	push r15
	cld
	mov rdi, rsp
	mov rbx, rsp             /* the frame; rbx itself is restored from it below */
	and rsp, -16
	/* Returns only for an exception it handled (#VC 0x72, CPUID), with the results in the
	 * frame; everything else is fatal and never returns. */
	call mv_exception_dispatch
	mov rsp, rbx
	pop r15
	pop r14
	pop r13
	pop r12
	pop r11
	pop r10
	pop r9
	pop r8
	pop rbp
	pop rdi
	pop rsi
	pop rdx
	pop rcx
	pop rbx
	pop rax
	add rsp, 16              /* vector, error code */
	iretq

/* u64 mv_tdcall(struct mv_tdcall_regs *regs): loads every argument register from *regs, runs
 * TDCALL and stores every register back (the VMM may return values in any of them). */
	.globl mv_tdcall
mv_tdcall:
	push rbx
	push rbp
	push r12
	push r13
	push r14
	push r15
	push rdi
	mov rax, [rdi + 0]
	mov rcx, [rdi + 8]
	mov rdx, [rdi + 16]
	mov rbx, [rdi + 24]
	mov rsi, [rdi + 32]
	mov r8,  [rdi + 48]
	mov r9,  [rdi + 56]
	mov r10, [rdi + 64]
	mov r11, [rdi + 72]
	mov r12, [rdi + 80]
	mov r13, [rdi + 88]
	mov r14, [rdi + 96]
	mov r15, [rdi + 104]
	mov rdi, [rdi + 40]
	.byte 0x66, 0x0f, 0x01, 0xcc    /* TDCALL */
	push rdi
	mov rdi, [rsp + 8]
	mov [rdi + 0], rax
	mov [rdi + 8], rcx
	mov [rdi + 16], rdx
	mov [rdi + 24], rbx
	mov [rdi + 32], rsi
	pop rcx
	mov [rdi + 40], rcx
	mov [rdi + 48], r8
	mov [rdi + 56], r9
	mov [rdi + 64], r10
	mov [rdi + 72], r11
	mov [rdi + 80], r12
	mov [rdi + 88], r13
	mov [rdi + 96], r14
	mov [rdi + 104], r15
	pop rdi
	pop r15
	pop r14
	pop r13
	pop r12
	pop rbp
	pop rbx
	ret

/* int mv_pvalidate_insn(u64 va, u32 size_2m, u32 validate): EAX = return code, or 255
 * (Linux's PVALIDATE_FAIL_NOUPDATE) when CF=1, i.e. the validated bit did not change. */
	.globl mv_pvalidate_insn
mv_pvalidate_insn:
	mov rax, rdi
	mov ecx, esi
	/* edx = validate already */
	.byte 0xf2, 0x0f, 0x01, 0xff    /* PVALIDATE */
	jc 1f
	ret
1:	mov eax, 255
	ret

/* int mv_rmpadjust_insn(u64 va, u32 size_2m, u64 attrs): EAX = return code (Linux rmpadjust();
 * attrs = RDX: target VMPL [7:0], permission mask [15:8], VMSA [16]). */
	.globl mv_rmpadjust_insn
mv_rmpadjust_insn:
	mov rax, rdi
	mov ecx, esi
	/* rdx = attrs already */
	.byte 0xf3, 0x0f, 0x01, 0xfe    /* RMPADJUST */
	ret

/* noreturn void mv_jump(u64 entry, u64 arg, u64 stack): mv_enter without the console flush */
	.globl mv_jump
mv_jump:
	mov rsp, rdx
	mov rax, rdi
	mov rdi, rsi
	xor ebp, ebp
	push 0                  /* no return address: keeps the SysV alignment of a call */
	jmp rax

/* void mv_vmgexit(void): the GHCB MSR or GHCB page already holds the request. */
	.globl mv_vmgexit
mv_vmgexit:
	.byte 0xf3, 0x0f, 0x01, 0xd9    /* VMGEXIT (rep vmmcall) */
	ret

/* void mv_fill64(void *dst, u64 value, u64 qwords) */
	.globl mv_fill64
mv_fill64:
	mov rax, rsi
	mov rcx, rdx
	rep stosq
	ret

	.section .note.GNU-stack, "", @progbits
