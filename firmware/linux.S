/*
 * The hand-off to a Linux kernel's startup_64 (Documentation/arch/x86/boot.rst, "64-bit Boot
 * Protocol"): 64-bit mode with paging on (the firmware's identity map), a GDT whose __BOOT_CS
 * (0x10) and __BOOT_DS (0x18) are flat 4 GiB execute/read and read/write segments, CS = 0x10,
 * DS = ES = SS = 0x18, interrupts off, RSI = the zero page. The kernel sets its own stack.
 */
#define BOOT_CS 0x10
#define BOOT_DS 0x18

	.intel_syntax noprefix
	.text
	.code64

/* noreturn void mv_enter_linux(u64 startup_64, u64 boot_params) */
	.globl mv_enter_linux
mv_enter_linux:
	cli
	lgdt [rip + linux_gdtr]
	mov r8, rdi
	push BOOT_CS
	lea rax, [rip + 1f]
	push rax
	retfq
1:	mov eax, BOOT_DS
	mov ds, eax
	mov es, eax
	mov ss, eax
	xor eax, eax
	mov fs, eax
	mov gs, eax
	xor ebp, ebp
	xor edi, edi
	jmp r8

	.section .rodata
	.balign 16
linux_gdt:
	.quad 0                         /* null */
	.quad 0                         /* unused, as in Linux's boot GDT */
	.quad 0x00af9b000000ffff        /* 0x10 __BOOT_CS: 64-bit code, present, accessed */
	.quad 0x00cf93000000ffff        /* 0x18 __BOOT_DS: flat 4 GiB data, read/write */
linux_gdt_end:
linux_gdtr:
	.word linux_gdt_end - linux_gdt - 1
	.quad linux_gdt

	.section .note.GNU-stack, "", @progbits
