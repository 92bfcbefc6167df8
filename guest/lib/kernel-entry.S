/* Kernel entry: the decompressor jumps here with RDI = boot params. The kernel moves to its
 * own stack (in its bss, inside the accepted output range). */
#include <minivisor/boot_abi.h>
	.intel_syntax noprefix
	.code64
	.section .text.entry, "ax"
	.globl _start
_start:
	cli
	cld
	lea rsp, [rip + kernel_stack_top]
	xor ebp, ebp
	call kernel_main
	jmp mv_halt_forever	/* HLT would be a #VE in a TD: halt the platform's way */

	.section .bss.stack, "aw", @nobits
	.balign 4096
kernel_stack_bottom:
	.skip MV_KERNEL_STACK_BYTES
kernel_stack_top:

	.section .note.GNU-stack, "", @progbits
