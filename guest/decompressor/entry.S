/* Decompressor entry: the firmware jumps here with RDI = boot params and RSP in temporary
 * RAM (MV_DECOMPRESSOR_STACK_TOP), paging on, interrupts off. */
	.intel_syntax noprefix
	.code64
	.section .text.entry, "ax"
	.globl _start
_start:
	cli
	cld
	call decompressor_main
	jmp mv_halt_forever	/* HLT would be a #VE in a TD: halt the platform's way */

	.section .note.GNU-stack, "", @progbits
