/*
 * Where the APs of a TD wait: every vCPU starts at the reset vector (TDH.VP.INIT, RSI = vCPU
 * index), and entry.S sends all but vCPU 0 here, in flat 32-bit protected mode (reset-vector.S
 * loaded the segments). Like TDVF's AP loop, each polls the ACPI
 * multiprocessor wakeup mailbox (boot_abi.h MV_MP_MAILBOX_*) until the OS writes WAKEUP with
 * its APIC ID (= vCPU index), then acknowledges by clearing the command and jumps to the
 * wakeup vector. The loop spins with PAUSE, which is also what lets the scheduler run others.
 * It needs no stack and touches only the pre-accepted mailbox page.
 */
#include <minivisor/boot_abi.h>

#define MAILBOX(off) (MV_MP_MAILBOX_GPA + (off))

	.intel_syntax noprefix
	.code32
	.section .text, "ax"
	.globl mv_ap_park
mv_ap_park:
wait_for_wakeup:
	pause
	cmp word ptr [MAILBOX(MV_MP_MAILBOX_OFF_COMMAND)], MV_MP_WAKEUP_COMMAND_WAKEUP
	jne wait_for_wakeup
	cmp dword ptr [MAILBOX(MV_MP_MAILBOX_OFF_APIC_ID)], esi
	jne wait_for_wakeup
	mov eax, dword ptr [MAILBOX(MV_MP_MAILBOX_OFF_VECTOR)]
	mov word ptr [MAILBOX(MV_MP_MAILBOX_OFF_COMMAND)], MV_MP_WAKEUP_COMMAND_NOOP
	jmp eax                     /* ESI still holds the vCPU index */

	.section .note.GNU-stack, "", @progbits
