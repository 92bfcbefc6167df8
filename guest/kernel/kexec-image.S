/* The second kernel's flat image, linked into the first kernel of the handover-kexec variant
 * (like the file kexec-tools reads). KEXEC_IMAGE is set by guest/Makefile. */
	.section .rodata.kexec_image, "a"
	.balign 16
	.globl mv_kexec_image_start, mv_kexec_image_end
mv_kexec_image_start:
	.incbin KEXEC_IMAGE
mv_kexec_image_end:

	.section .note.GNU-stack, "", @progbits
