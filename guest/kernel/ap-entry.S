/* The wakeup vector the kernel gives the firmware for each AP (smp.c). The firmware jumps here
 * in 32-bit protected mode, paging off, flat segments, ESI = vCPU index (ap-park.S); on SNP
 * the AP starts here in that state from the VMSA the kernel wrote (smp.c build_ap_vmsa). Like
 * Linux's trampoline it turns on the kernel's paging, loads the kernel's GDT and enters 64-bit
 * code, on the stack the BSP set aside for this vCPU; everything it needs is in the mailbox's
 * OS area (smp.c struct wakeup_args), since this code has no stack and no data of its own. */
#include <minivisor/boot_abi.h>
#define ARGS(off) (MV_MP_MAILBOX_GPA + MV_MP_MAILBOX_OFF_OS + (off))
#define ARGS_CR3    0x00
#define ARGS_CR4    0x08
#define ARGS_GDTR   0x10
#define ARGS_ENTRY  0x18
#define ARGS_STACKS 0x20
#define KERNEL_DS   0x10

	.intel_syntax noprefix
	.section .text, "ax"
	.code32
	.globl mv_ap_wakeup32
mv_ap_wakeup32:
	mov eax, dword ptr [ARGS(ARGS_CR4)]
	mov cr4, eax
	mov eax, dword ptr [ARGS(ARGS_CR3)]
	mov cr3, eax
	mov eax, cr0                /* EFER.LME is set: TDH.VP.INIT set it (TDX), the VMSA holds it (SNP) */
	or eax, 0x80000000
	mov cr0, eax
	lgdt [ARGS(ARGS_GDTR)]
	jmp fword ptr [ARGS(ARGS_ENTRY)]

	.code64
	.globl mv_ap_entry64
mv_ap_entry64:
	mov eax, KERNEL_DS
	mov ds, eax
	mov es, eax
	mov ss, eax
	mov esi, esi
	mov rsp, qword ptr [ARGS(ARGS_STACKS) + rsi * 8]
	mov edi, esi
	xor ebp, ebp
	call kernel_ap_main
1:	pause
	jmp 1b

	.section .note.GNU-stack, "", @progbits
