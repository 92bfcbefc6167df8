/*
 * Our firmware volume: the last 4 KiB below 4 GiB (a firmware's may be up to 16 MiB, boot_abi.h),
 * measured into the launch like the rest of the firmware, with the reset vector in its last 16
 * bytes (OVMF/TDVF: OvmfPkg/ResetVector, Ia16/ResetVectorVtf0.asm, Ia16/Real16ToFlat32.asm,
 * Ia32/IntelTdx.asm).
 *
 *  - TDX: TDH.VP.INIT leaves the vCPU at RIP 0xFFFFFFF0 in 32-bit protected mode, paging off,
 *    flat CS/DS/SS with selector 0 (intel/tdx-module tdh_vp_init.c, td_vmcs_init.c).
 *  - SNP: the BSP's VMSA holds the reset state QEMU gives it: real mode, CS selector 0xF000 with
 *    the hidden base 0xFFFF0000, IP 0xFFF0 (linear 0xFFFFFFF0).
 *
 * The reset vector's bytes decode the same in 16- and 32-bit code up to the branch on CR0.PE (as
 * ResetVectorVtf0.asm's X64 variant does). The real-mode path enters flat 32-bit protected mode
 * itself; both paths then load flat data segments and jump to the firmware's 32-bit entry _start
 * in the initial image with EBP = the platform the entry mode implies.
 */
#include <minivisor/boot_abi.h>

#define FV_CS32 0x08
#define FV_DS   0x10
#define REAL_MODE_CS_BASE 0xffff0000

	.intel_syntax noprefix
	.section .firmware_volume, "ax"
	.code16
fv_real16:
	/* SNP. DS is 0: read the GDT pointer through CS (lgdt with a 32-bit base, 0x66). */
	.byte 0x2e, 0x66, 0x0f, 0x01, 0x16
	.word fv_gdtr - REAL_MODE_CS_BASE
	mov eax, cr0
	or eax, 1
	mov cr0, eax
	.byte 0x66, 0xea            /* jmp far FV_CS32:fv_snp32 (32-bit offset) */
	.long fv_snp32
	.word FV_CS32

	.code32
fv_snp32:
	mov ebp, MV_PLATFORM_SNP
	jmp fv_flat32

fv_tdx32:
	/* The TD's entry CS has selector 0: load a GDT and a real selector first. */
	lgdt [fv_gdtr]
	mov ebp, MV_PLATFORM_TDX
	.byte 0xea                  /* jmp far FV_CS32:fv_flat32 */
	.long fv_flat32
	.word FV_CS32

fv_flat32:
	mov eax, FV_DS
	mov ds, eax
	mov es, eax
	mov ss, eax
	mov eax, offset _start
	jmp eax

	.balign 8
fv_gdt:
	.quad 0
	.quad 0x00cf9b000000ffff    /* 0x08: 32-bit code, flat */
	.quad 0x00cf93000000ffff    /* 0x10: data, flat */
fv_gdtr:
	.word fv_gdtr - fv_gdt - 1
	.long fv_gdt

	/* The reset vector, at MV_RESET_VECTOR_GPA: the last 16 bytes of the volume. */
	.org MV_FIRMWARE_VOLUME_BYTES - 16, 0xcc
	.globl mv_reset_vector
mv_reset_vector:
	.byte 0x0f, 0x20, 0xc0      /* mov eax, cr0 (the same bytes in 16- and 32-bit code) */
	.byte 0xa8, 0x01            /* test al, 1: CR0.PE */
	.byte 0x74, 0x05            /* jz the 16-bit jmp below: real mode */
	.byte 0xe9                  /* 32-bit: jmp fv_tdx32 (rel32) */
	.long fv_tdx32 - (. + 4)
	.byte 0xe9                  /* 16-bit: jmp fv_real16 (rel16) */
	.word fv_real16 - (. + 2)
	.balign 16, 0xf4            /* the volume ends exactly at 4 GiB */

	.section .note.GNU-stack, "", @progbits
