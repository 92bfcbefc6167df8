/* The compressed kernel (guest/tools/mkpayload.py output), linked into the guest image like
 * Linux's piggy.S links vmlinux.bin.gz into the bzImage. */
	.section .rodata.payload, "a"
	.balign 16
	.globl mv_payload_start, mv_payload_end
mv_payload_start:
#ifdef KERNEL_PAYLOAD	/* absent for decompressor.elf: the VMM appends the payload instead */
	.incbin KERNEL_PAYLOAD
#endif
mv_payload_end:

	.section .note.GNU-stack, "", @progbits
