/*
 * Firmware entry: from the reset vector to 64-bit mode, as OVMF's ResetVector does
 * (OvmfPkg/ResetVector: Ia32/Flat32ToFlat64.asm, Ia32/IntelTdx.asm).
 *
 * The reset vector in the firmware volume (reset-vector.S) jumps here in 32-bit protected mode,
 * paging off, with flat data segments and EBP = MV_PLATFORM_TDX (entered in protected mode,
 * TDH.VP.INIT) or MV_PLATFORM_SNP (entered in real mode from the VMSA). A TD has EFER.LME
 * already set (intel/tdx-module td_vmcs_init.c: EFER 0x901).
 *
 * The code loads its own GDT, builds an identity map of the first 4 MiB (C-bit set on SNP),
 * enables long mode and calls firmware_main, which builds the real page tables. The VMM's RSP
 * is never used.
 */
#include <minivisor/boot_abi.h>

#define ENTRY_CS32 0x08
#define ENTRY_DS   0x10
#define ENTRY_CS64 0x18
#define MSR_EFER   0xc0000080
#define MSR_GHCB   0xc0010130
#define EFER_LME   0x100

	.intel_syntax noprefix
	.section .text.entry, "ax"
	.globl _start
	.code32
_start:
	cmp ebp, MV_PLATFORM_TDX    /* TDX: RSI = vCPU index (TDH.VP.INIT); the APs wait in ap-park.S */
	jne 1f
	test esi, esi
	jnz mv_ap_park
1:
	lgdt [entry_gdtr]
	.byte 0xea                  /* jmp far ENTRY_CS32:flat32: this image's own GDT */
	.long flat32
	.word ENTRY_CS32

flat32:
	mov eax, ENTRY_DS
	mov ds, eax
	mov es, eax
	mov ss, eax
	mov fs, eax
	mov gs, eax
	mov esp, MV_FW_STACK_TOP
	xor edi, edi                /* high dword of every private entry: the SNP C-bit */
	cmp ebp, MV_PLATFORM_SNP
	jne 1f
	call snp_c_bit_high
1:
	/* Identity map of [0, 4 MiB): firmware, temporary RAM and initial image. */
	mov dword ptr [entry_pml4], offset entry_pdpt + 3
	mov dword ptr [entry_pml4 + 4], edi
	mov dword ptr [entry_pdpt], offset entry_pd + 3
	mov dword ptr [entry_pdpt + 4], edi
	mov dword ptr [entry_pd], 0x83
	mov dword ptr [entry_pd + 4], edi
	mov dword ptr [entry_pd + 8], 0x200083
	mov dword ptr [entry_pd + 12], edi
	mov eax, cr4
	or eax, 0x20                /* PAE */
	mov cr4, eax
	mov eax, offset entry_pml4
	mov cr3, eax
	cmp ebp, MV_PLATFORM_SNP
	jne 2f
	/* SNP: set EFER.LME (KVM leaves EFER unintercepted for SEV-ES guests: no #VC). A TD has
	 * it already. */
	mov ecx, MSR_EFER
	rdmsr
	or eax, EFER_LME
	wrmsr
2:
	mov eax, cr0
	or eax, 0x80000000          /* PG: long mode becomes active */
	mov cr0, eax
	.byte 0xea                  /* jmp far ENTRY_CS64:long64 */
	.long long64
	.word ENTRY_CS64

/*
 * SNP: the C-bit position is CPUID 0x8000001F EBX[5:0]. Before any #VC handler exists the
 * firmware asks the hypervisor through the GHCB MSR protocol (GHCB spec §2.3.1, CPUID request
 * 0x004 / response 0x005; Linux __sev_cpuid_hv_msr), then checks the answer: a C-bit outside
 * [32, 51] or a malformed response terminates the guest (GHCB MSR 0x100, general reason), as
 * Linux's early SEV code does. Returns EDI = 1 << (C-bit - 32).
 */
snp_c_bit_high:
	mov ecx, MSR_GHCB
	mov eax, (1 << 30) | 0x004  /* register EBX */
	mov edx, 0x8000001f
	wrmsr
	.byte 0xf3, 0x0f, 0x01, 0xd9  /* VMGEXIT */
	rdmsr
	and eax, 0xc0000fff
	cmp eax, (1 << 30) | 0x005
	jne snp_terminate
	and edx, 0x3f
	cmp edx, 32
	jb snp_terminate
	cmp edx, 51
	ja snp_terminate
	lea ecx, [edx - 32]
	mov edi, 1
	shl edi, cl
	ret
snp_terminate:
	mov ecx, MSR_GHCB
	mov eax, (MV_SNP_TERM_GENERAL << 16) | (MV_SNP_TERM_SET_GENERAL << 12) | 0x100
	xor edx, edx
	wrmsr
	.byte 0xf3, 0x0f, 0x01, 0xd9
	jmp snp_terminate

	.balign 8
entry_gdt:
	.quad 0
	.quad 0x00cf9b000000ffff    /* 0x08: 32-bit code, flat */
	.quad 0x00cf93000000ffff    /* 0x10: data, flat */
	.quad 0x00af9b000000ffff    /* 0x18: 64-bit code */
entry_gdtr:
	.word entry_gdtr - entry_gdt - 1
	.long entry_gdt

	.code64
long64:
	cli
	cld
	mov rsp, MV_FW_STACK_TOP
	xor ebp, ebp
	call firmware_main
	jmp mv_halt_forever	/* HLT would be a #VE in a TD: halt the platform's way */

	.section .bss.entry_tables, "aw", @nobits
	.balign 4096
entry_pml4:	.skip 4096
entry_pdpt:	.skip 4096
entry_pd:	.skip 4096

	.section .note.GNU-stack, "", @progbits
