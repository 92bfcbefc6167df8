// x86 exception vectors (Intel SDM Vol. 3A §6.3.1 Table 6-1; AMD APM Vol. 2 §8.2 Table 8-1): one
// place for the numbers the hardware models and the VMMs inject, not a copy in each.

/** #UD, invalid opcode. */
export const UD_VECTOR = 6;
/** #DF, double fault. */
export const DF_VECTOR = 8;
/** #GP, general protection. */
export const GP_VECTOR = 13;
/** #VE, virtualization exception (Intel; the TDX module injects it). */
export const VE_VECTOR = 20;
/** #VC, VMM communication exception (AMD SEV-ES and SNP). */
export const VC_VECTOR = 29;
