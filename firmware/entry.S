/*
 * Firmware entry. Deviation from real hardware: Unicorn starts the vCPU in 64-bit long mode
 * with paging off, so there is no 16/32-bit reset path here (a TD starts in 32-bit protected
 * mode at the reset vector, OVMF ResetVector/Ia32/IntelTdx.asm). The firmware does not trust
 * the VMM's RSP: it switches to its own stack in pre-accepted temporary RAM.
 */
#include <minivisor/boot_abi.h>
	.intel_syntax noprefix
	.code64
	.section .text.entry, "ax"
	.globl _start
_start:
	cli
	cld
	mov rsp, MV_FW_STACK_TOP
	xor ebp, ebp
	call firmware_main
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
