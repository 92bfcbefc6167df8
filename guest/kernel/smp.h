/* Several CPUs in the kernel: bring-up through the wakeup mailbox, one piece of work on all. */
#ifndef MINIVISOR_KERNEL_SMP_H
#define MINIVISOR_KERNEL_SMP_H
#include <minivisor/guest.h>

/* CPUs of this guest: TDX NUM_VCPUS (TDG.VP.INFO R8[31:0]); SNP the VMM's CPU table (1 without one). */
u32 smp_cpu_count(void);
/* Runs `work` on every CPU at once (the APs are woken the first time, with stacks from
 * `alloc`) and returns when all of them have finished it. */
void smp_run_on_all(void (*work)(void), u64 (*alloc)(u64 bytes, u64 align));
/* Before the final report: SNP takes the APs' GHCB pages back as private memory. */
void smp_finish(void);
#endif
