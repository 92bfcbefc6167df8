#include "trapped_insn.h"

namespace minivisor {

namespace {

struct Prefixes {
  size_t count = 0;
  bool opsize = false;  // 66
  uint8_t last_mandatory = 0;  // the last of 66/F2/F3, which selects TDCALL/PVALIDATE/VMGEXIT
  bool rep = false;
  bool lock = false;      // F0
  bool addrsize = false;  // 67
  int8_t segment = -1;    // the last segment-override prefix, in the SDM's encoding (0 ES .. 5 GS)
  uint8_t rex = 0;
};

bool IsLegacyPrefix(uint8_t b) {
  switch (b) {
    case 0x66: case 0x67: case 0xF2: case 0xF3: case 0xF0:
    case 0x2E: case 0x36: case 0x3E: case 0x26: case 0x64: case 0x65:
      return true;
    default:
      return false;
  }
}

Prefixes ScanPrefixes(const uint8_t* b, size_t avail, bool rex) {
  Prefixes p;
  while (p.count < avail && p.count < 14 && IsLegacyPrefix(b[p.count])) {
    uint8_t v = b[p.count];
    if (v == 0x66) p.opsize = true;
    if (v == 0x66 || v == 0xF2 || v == 0xF3) p.last_mandatory = v;
    if (v == 0xF3 || v == 0xF2) p.rep = true;
    if (v == 0xF0) p.lock = true;
    if (v == 0x67) p.addrsize = true;
    switch (v) {
      case 0x26: p.segment = 0; break;
      case 0x2E: p.segment = 1; break;
      case 0x36: p.segment = 2; break;
      case 0x3E: p.segment = 3; break;
      case 0x64: p.segment = 4; break;
      case 0x65: p.segment = 5; break;
      default: break;
    }
    p.count++;
  }
  // REX must come last; only RDRAND/RDSEED among the forms recognised here read it.
  if (rex && p.count < avail && (b[p.count] & 0xF0) == 0x40) p.rex = b[p.count++];
  return p;
}

}  // namespace

TrappedInsn DecodeTrapped(const uint8_t* b, size_t avail, int code_bits) {
  TrappedInsn t;
  if (avail > 15) avail = 15;
  Prefixes p = ScanPrefixes(b, avail, code_bits == 64);
  t.lock = p.lock;
  size_t i = p.count;
  if (i >= avail) return t;
  uint8_t op = b[i];
  uint8_t io_size = (p.opsize != (code_bits == 16)) ? 2 : 4;
  auto io = [&](TrappedKind kind, uint8_t size, bool imm, bool string) {
    if (imm && i + 1 >= avail) return;
    t.kind = kind;
    t.size = size;
    t.port_in_dx = !imm;
    t.port = imm ? b[i + 1] : 0;
    t.string = string;
    t.rep = string && p.rep;
    t.length = static_cast<uint8_t>(i + (imm ? 2 : 1));
    if (string) {
      // 67 selects the other address size: 64 -> 32, 32 -> 16, 16 -> 32.
      int bits = code_bits == 64 ? (p.addrsize ? 32 : 64) : code_bits == 32 ? (p.addrsize ? 16 : 32) : (p.addrsize ? 32 : 16);
      t.address_size = static_cast<uint8_t>(bits == 16 ? 0 : bits == 32 ? 1 : 2);
      // The override as encoded (in 64-bit mode CS/DS/ES/SS overrides name a zero-based
      // segment, but the instruction still names them); INS's destination is ES:rDI always.
      t.segment = static_cast<uint8_t>(kind == TrappedKind::kIoIn ? 0 : p.segment >= 0 ? p.segment : 3);
    }
  };
  switch (op) {
    case 0xE4: io(TrappedKind::kIoIn, 1, true, false); return t;
    case 0xE5: io(TrappedKind::kIoIn, io_size, true, false); return t;
    case 0xEC: io(TrappedKind::kIoIn, 1, false, false); return t;
    case 0xED: io(TrappedKind::kIoIn, io_size, false, false); return t;
    case 0xE6: io(TrappedKind::kIoOut, 1, true, false); return t;
    case 0xE7: io(TrappedKind::kIoOut, io_size, true, false); return t;
    case 0xEE: io(TrappedKind::kIoOut, 1, false, false); return t;
    case 0xEF: io(TrappedKind::kIoOut, io_size, false, false); return t;
    case 0x6C: io(TrappedKind::kIoIn, 1, false, true); return t;
    case 0x6D: io(TrappedKind::kIoIn, io_size, false, true); return t;
    case 0x6E: io(TrappedKind::kIoOut, 1, false, true); return t;
    case 0x6F: io(TrappedKind::kIoOut, io_size, false, true); return t;
    case 0x90:
      if (p.last_mandatory == 0xF3) { t.kind = TrappedKind::kPause; t.length = static_cast<uint8_t>(i + 1); }
      return t;
    case 0x0F: break;
    default: return t;
  }
  if (i + 1 >= avail) return t;
  uint8_t op2 = b[i + 1];
  if (op2 == 0xA2) { t.kind = TrappedKind::kCpuid; t.length = static_cast<uint8_t>(i + 2); return t; }
  if (op2 == 0x32) { t.kind = TrappedKind::kRdmsr; t.length = static_cast<uint8_t>(i + 2); return t; }
  if (op2 == 0x30) { t.kind = TrappedKind::kWrmsr; t.length = static_cast<uint8_t>(i + 2); return t; }
  if (op2 == 0x31) { t.kind = TrappedKind::kRdtsc; t.length = static_cast<uint8_t>(i + 2); return t; }
  if (op2 == 0x08 || op2 == 0x09) {
    t.kind = TrappedKind::kCacheOrWait;
    t.cache_or_wait = op2 == 0x08 ? CacheOrWaitOp::kInvd : p.last_mandatory == 0xF3 ? CacheOrWaitOp::kWbnoinvd : CacheOrWaitOp::kWbinvd;
    t.length = static_cast<uint8_t>(i + 2);
    return t;
  }
  if (op2 == 0x33) {
    t.kind = TrappedKind::kRdpmc;
    t.length = static_cast<uint8_t>(i + 2);
    return t;
  }
  if ((op2 == 0x21 || op2 == 0x23) && i + 2 < avail) {
    // MOV r, DRn / MOV DRn, r (SDM Vol. 2B "MOV—Move to/from Debug Registers"; APM Vol. 3 MOV DRn):
    // ModRM.mod is ignored (always a register operand), reg names the debug register, rm + REX.B
    // the GPR. REX.R (DR8-DR15) is #UD (SDM: "#UD If REX.R = 1"), which the emulator raises itself
    // (translate.c: reg >= 8 goto illegal_op): not trapped. The operand is 64 bits in 64-bit mode,
    // else 32; 66 is ignored.
    uint8_t modrm = b[i + 2];
    if (p.rex & 4) return t;
    t.kind = TrappedKind::kMovDr;
    t.debug_reg = (modrm >> 3) & 7;
    t.debug_write = op2 == 0x23;
    t.reg = static_cast<uint8_t>((modrm & 7) | ((p.rex & 1) << 3));
    t.length = static_cast<uint8_t>(i + 3);
    return t;
  }
  if (op2 == 0x05 || op2 == 0x34) {
    t.kind = op2 == 0x05 ? TrappedKind::kSyscall : TrappedKind::kSysenter;
    t.length = static_cast<uint8_t>(i + 2);
    return t;
  }
  if (op2 == 0xC7 && i + 2 < avail) {
    // RDRAND / RDSEED (SDM Vol. 2B): 0F C7 /6 or /7 with ModRM.mod = 11; the operand size is the
    // segment's default, flipped by 66, 64 with REX.W. With F3, /7 is RDPID: not ours.
    uint8_t modrm = b[i + 2];
    uint8_t reg = (modrm >> 3) & 7;
    if ((modrm >> 6) != 3 || (reg != 6 && reg != 7) || p.last_mandatory == 0xF3 || p.last_mandatory == 0xF2) return t;
    t.kind = TrappedKind::kRandom;
    t.seed = reg == 7;
    t.reg = static_cast<uint8_t>((modrm & 7) | ((p.rex & 1) << 3));
    uint8_t bits = code_bits == 16 ? (p.opsize ? 32 : 16) : (p.opsize ? 16 : 32);
    t.operand_bits = (p.rex & 8) ? 64 : bits;
    t.length = static_cast<uint8_t>(i + 3);
    return t;
  }
  if (op2 == 0x01 && i + 2 < avail) {
    uint8_t modrm = b[i + 2];
    TrappedKind k = TrappedKind::kNone;
    if (modrm == 0xCC && p.last_mandatory == 0x66) k = TrappedKind::kTdcall;
    if (modrm == 0xFF && p.last_mandatory == 0xF2) k = TrappedKind::kPvalidate;
    if (modrm == 0xD9 && p.last_mandatory == 0xF3) k = TrappedKind::kVmgexit;
    if (modrm == 0xFE && p.last_mandatory == 0xF3) k = TrappedKind::kRmpadjust;
    // The SVM instructions, trapped before they run: the emulator's CPU has no SVM and would raise
    // #UD, where an SNP guest's are intercepted (the platform decides what the guest sees). LOCK makes any of them #UD (APM Vol. 3 §1.2.5:
    // LOCK on an instruction that cannot take it), which the emulator raises itself.
    if (k == TrappedKind::kNone && (modrm & 0xF8) == 0xD8 && !p.lock) {
      k = TrappedKind::kSvm;
      t.svm_op = modrm & 7;
    }
    // VMCALL: "Operand size causes #UD; REP* cause #UD; LOCK causes #UD" (SDM Vol. 3C VMCALL, Use
    // of Prefixes): those forms are the emulator's own #UD (it has no VMX), not a VM exit.
    if (modrm == 0xC1 && !p.opsize && !p.rep && !p.lock) k = TrappedKind::kVmcall;
    // RDTSCP: Unicorn would read the host's TSC, as for RDTSC.
    if (modrm == 0xF9 && p.last_mandatory == 0) {
      k = TrappedKind::kRdtsc;
      t.rdtscp = true;
    }
    // MONITOR / MWAIT without a mandatory prefix (66/F2/F3 forms are other instructions or #UD).
    if ((modrm == 0xC8 || modrm == 0xC9) && p.last_mandatory == 0) {
      k = TrappedKind::kCacheOrWait;
      t.cache_or_wait = modrm == 0xC8 ? CacheOrWaitOp::kMonitor : CacheOrWaitOp::kMwait;
    }
    // XSETBV: NP 0F 01 D1 (SDM Vol. 2D XSETBV); 66/F2/F3 and LOCK forms are the emulator's own #UD
    // (translate.c), as on the CPU, where #UD comes before any VM exit (SDM Vol. 3C §26.1.1).
    if (modrm == 0xD1 && p.last_mandatory == 0 && !p.lock) k = TrappedKind::kXsetbv;
    if (k != TrappedKind::kNone) { t.kind = k; t.length = static_cast<uint8_t>(i + 3); }
  }
  return t;
}

bool MayBeIntercepted(const uint8_t* b, size_t avail) {
  size_t i = 0;
  // As many prefixes as an instruction can carry (its 15 bytes less an opcode byte), as
  // ScanPrefixes allows: redundant ones are legal (Intel SDM Vol. 2 §2.1.1), and a bound of four
  // let a CPUID behind five of them run unseen.
  while (i < avail && i < 14 && (IsLegacyPrefix(b[i]) || (b[i] & 0xF0) == 0x40)) i++;
  if (i >= avail) return false;
  uint8_t op = b[i];
  if ((op >= 0xE4 && op <= 0xE7) || (op >= 0xEC && op <= 0xEF) || (op >= 0x6C && op <= 0x6F)) return true;
  if (op == 0x90 && i > 0) return true;  // PAUSE is F3 90; a plain NOP has no prefix
  if (op == 0x0F && i + 1 < avail) {
    uint8_t op2 = b[i + 1];
    if (op2 == 0x01) return i + 2 < avail && ((b[i + 2] & 0xF8) == 0xD8 || b[i + 2] == 0xC1 || b[i + 2] == 0xC8 || b[i + 2] == 0xC9 || b[i + 2] == 0xF9 || b[i + 2] == 0xD1);
    return op2 == 0xA2 || op2 == 0x32 || op2 == 0x30 || op2 == 0x31 || op2 == 0xC7 || op2 == 0x05 || op2 == 0x34 || op2 == 0x08 || op2 == 0x09 || op2 == 0x33 ||
           (op2 & 0xFD) == 0x21;  // MOV r, DRn (0F 21) and MOV DRn, r (0F 23) in one comparison
  }
  return false;
}

}  // namespace minivisor
