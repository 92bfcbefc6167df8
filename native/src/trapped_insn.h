// Recognises the instructions the emulated hardware intercepts, from their bytes.
#pragma once
#include <cstddef>
#include <cstdint>

namespace minivisor {

enum class TrappedKind : uint8_t {
  kNone = 0,
  kTdcall,     // 66 0F 01 CC
  kPvalidate,  // F2 0F 01 FF
  kVmgexit,    // F3 0F 01 D9 (rep vmmcall)
  kRmpadjust,  // F3 0F 01 FE
  kCpuid,      // 0F A2
  kRdmsr,      // 0F 32
  kWrmsr,      // 0F 30
  kIoIn,       // E4 E5 EC ED, and INS 6C 6D
  kIoOut,      // E6 E7 EE EF, and OUTS 6E 6F
  kPause,      // F3 90
  kRandom,     // 0F C7 /6 (RDRAND) or /7 (RDSEED), register form, no F2/F3 (F3 0F C7 /7 is RDPID)
  kRdtsc,      // 0F 31, and RDTSCP 0F 01 F9 (`rdtscp`)
  kSvm,        // 0F 01 D8-DF: VMRUN VMMCALL VMLOAD VMSAVE STGI CLGI SKINIT INVLPGA (F3 0F 01 D9 is kVmgexit)
  kVmcall,     // 0F 01 C1 (VMX), without 66/F2/F3/F0: those prefixes make it #UD (SDM Vol. 3C VMCALL)
  kSyscall,    // 0F 05: Unicorn's helper_syscall only calls hooks and steps over it
  kSysenter,   // 0F 34: likewise helper_sysenter
  kCacheOrWait,  // INVD 0F 08, WBINVD 0F 09, WBNOINVD F3 0F 09, MONITOR 0F 01 C8, MWAIT 0F 01 C9: run as NOPs by the emulator
  kRdpmc,      // 0F 33: Unicorn's helper_rdpmc raises #UD at any CPL (it has no counters)
  kXsetbv,     // 0F 01 D1 without 66/F2/F3/F0 (those forms are #UD, SDM Vol. 2D XSETBV "NP"; the emulator raises it)
  kMovDr,      // MOV r, DRn 0F 21 /r and MOV DRn, r 0F 23 /r, DR0-DR7 (REX.R names DR8-15: #UD, the emulator's own)
};

// kCacheOrWait: which one (the exit's arg0 low byte; src/cpu/exits.ts CACHE_OR_WAIT_INSTRUCTIONS).
enum class CacheOrWaitOp : uint8_t { kInvd = 0, kWbinvd = 1, kWbnoinvd = 2, kMonitor = 3, kMwait = 4 };

// The trapped instructions the emulator raises #UD for, which arrive through the
// invalid-instruction hook, not the code hook (unicorn.md §1).
inline bool ArrivesAsInvalidOpcode(TrappedKind k) {
  return k == TrappedKind::kTdcall || k == TrappedKind::kPvalidate || k == TrappedKind::kVmgexit ||
         k == TrappedKind::kRmpadjust;
}

struct TrappedInsn {
  TrappedKind kind = TrappedKind::kNone;
  uint8_t length = 0;
  // Port I/O only.
  uint16_t port = 0;       // the imm8 port; meaningless when port_in_dx
  bool port_in_dx = false;
  uint8_t size = 0;        // 1, 2 or 4 bytes
  bool string = false;     // INS/OUTS
  bool rep = false;
  // INS/OUTS only: what the VM-exit instruction-information field reports (Intel SDM Vol. 3C
  // "VM-Exit Instruction-Information Field as Used for INS and OUTS"): the address size
  // (0 = 16-bit, 1 = 32-bit, 2 = 64-bit) and the segment register of the memory operand
  // (0 ES, 1 CS, 2 SS, 3 DS, 4 FS, 5 GS: OUTS reads DS unless overridden; INS always writes ES).
  uint8_t address_size = 0;
  uint8_t segment = 0;
  // RDRAND/RDSEED and MOV DR.
  uint8_t reg = 0;           // the GPR (RDRAND/RDSEED: destination): ModRM.rm + REX.B, in x86 encoding order
  uint8_t operand_bits = 0;  // 16, 32 or 64
  bool seed = false;         // RDSEED
  // kSvm only: ModRM & 7, the instruction's place in 0F 01 D8-DF (0 VMRUN .. 7 INVLPGA).
  uint8_t svm_op = 0;
  // A LOCK prefix: none of these instructions can take one, so it makes each #UD (Machine::OnCode).
  bool lock = false;
  // kCacheOrWait only.
  CacheOrWaitOp cache_or_wait = CacheOrWaitOp::kInvd;
  // kRdtsc only: RDTSCP, which also loads ECX with IA32_TSC_AUX.
  bool rdtscp = false;
  // kMovDr only: the debug register (ModRM.reg, 0-7) and the direction (0F 23: a write to it).
  uint8_t debug_reg = 0;
  bool debug_write = false;
};

// Decodes at most `avail` (<= 15) bytes of code in a `code_bits` (16, 32 or 64) segment: REX
// exists only in 64-bit code (0x40-0x4F are INC/DEC elsewhere), and 66 selects the other
// operand size than the segment's default. Returns kind kNone for anything else.
TrappedInsn DecodeTrapped(const uint8_t* bytes, size_t avail, int code_bits);

// True when the opcode bytes at `bytes` may start one of the port-I/O, CPUID, MSR, RDRAND/RDSEED,
// RDTSC, SVM (0F 01 D8-DF), VMCALL, SYSCALL, SYSENTER, INVD, WBINVD, MONITOR, MWAIT, RDPMC, XSETBV or MOV DR
// instructions (after prefixes). Cheap pre-filter for the per-instruction code hook.
bool MayBeIntercepted(const uint8_t* bytes, size_t avail);

}  // namespace minivisor
