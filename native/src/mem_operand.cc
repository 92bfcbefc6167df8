#include "mem_operand.h"

namespace minivisor {

namespace {

constexpr uint64_t kPage = 4096;
constexpr int kRsp = 4, kRbp = 5, kRsi = 6, kRdi = 7, kRbx = 3, kRax = 0;
constexpr uint8_t R = kMemRead, W = kMemWrite, RW = kMemRead | kMemWrite;

enum Segment : int { kNoSegment = -1, kEs, kCs, kSs, kDs, kFs, kGs };

// x87 escape D8..DF with a memory operand, by ModRM.reg: access kind and size (0: unknown).
// FNSTENV is 28 bytes (14 with 66h) and FNSAVE 108 (94), each written in ascending order;
// FLDENV and FRSTOR skip parts of their image (size 1 here: see OneByte). FBLD and FBSTP touch
// their bytes out of order in the emulator, so they stay unknown.
struct X87Mem { uint8_t kind; uint8_t size; };
constexpr X87Mem kX87[8][8] = {
    /* D8 */ {{R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}},
    /* D9 */ {{R, 4}, {0, 0}, {W, 4}, {W, 4}, {R, 1}, {R, 2}, {W, 28}, {W, 2}},
    /* DA */ {{R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}, {R, 4}},
    /* DB */ {{R, 4}, {W, 4}, {W, 4}, {W, 4}, {0, 0}, {R, 10}, {0, 0}, {W, 10}},
    /* DC */ {{R, 8}, {R, 8}, {R, 8}, {R, 8}, {R, 8}, {R, 8}, {R, 8}, {R, 8}},
    /* DD */ {{R, 8}, {W, 8}, {W, 8}, {W, 8}, {R, 1}, {0, 0}, {W, 108}, {W, 2}},
    /* DE */ {{R, 2}, {R, 2}, {R, 2}, {R, 2}, {R, 2}, {R, 2}, {R, 2}, {R, 2}},
    /* DF */ {{R, 2}, {W, 2}, {W, 2}, {W, 2}, {0, 0}, {R, 8}, {0, 0}, {W, 8}},
};

class Decoder {
 public:
  Decoder(const uint8_t* bytes, size_t avail, const DecoderRegs& regs)
      : b_(bytes), avail_(avail > 15 ? 15 : avail), r_(regs) {}

  bool Decode(InsnMemAccesses* out) {
    *out = InsnMemAccesses();
    if (!Prefixes()) return false;
    uint8_t op = 0;
    if (!Byte(&op)) return false;
    bool ok;
    if (op != 0x0F) {
      ok = OneByte(op);
    } else {
      if (!Byte(&op)) return false;
      if (op == 0x38) ok = Byte(&op) && Map0F38(op);
      else if (op == 0x3A) ok = Byte(&op) && Map0F3A(op);
      else ok = Map0F(op);
    }
    if (!ok || overflow_ || !Skip(imm_)) return false;
    out->length = static_cast<uint8_t>(pos_);
    for (int i = 0; i < count_; i++) {
      const Spec& s = specs_[i];
      MemAccess& a = out->accesses[i];
      a.address = s.modrm ? ModRmAddress(s.adjust) + s.offset : s.address;
      a.size = s.size;
      a.kind = s.kind;
      a.stack = s.modrm ? ModRmUsesStackSegment() : s.stack;
    }
    out->count = static_cast<uint8_t>(count_);
    out->known = true;
    return true;
  }

 private:
  struct Spec {
    bool modrm;       // the ModRM memory operand (address resolved once the length is known)
    uint64_t address; // otherwise: the linear address
    int64_t adjust;   // ModRM: added to the effective address (POP Ev with RSP base, BT offsets)
    uint64_t offset;  // ModRM: added to the linear address (parts of a multi-part operand)
    uint32_t size;
    uint8_t kind;
    bool stack;       // not ModRM: the access references SS (MemAccess::stack)
  };

  // ---- bytes ----
  bool Byte(uint8_t* v) {
    if (pos_ >= avail_) return false;
    *v = b_[pos_++];
    return true;
  }
  bool Skip(size_t n) {
    if (n > avail_ - pos_) return false;
    pos_ += n;
    return true;
  }
  bool Little(size_t n, uint64_t* v) {  // n <= 8, little-endian, zero-extended
    if (n > avail_ - pos_) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x |= uint64_t(b_[pos_ + i]) << (8 * i);
    pos_ += n;
    *v = x;
    return true;
  }

  // ---- prefixes and operand sizes ----
  bool Prefixes() {
    for (;;) {
      if (pos_ >= avail_) return false;
      uint8_t x = b_[pos_];
      switch (x) {
        case 0x66: opsize_ = true; break;
        case 0x67: addr32_ = true; break;
        case 0xF3: rep_ = true; break;
        case 0xF2: repne_ = true; break;
        case 0xF0: break;  // LOCK
        case 0x26: seg_ = kEs; break;
        case 0x2E: seg_ = kCs; break;
        case 0x36: seg_ = kSs; break;
        case 0x3E: seg_ = kDs; break;
        case 0x64: seg_ = kFs; break;
        case 0x65: seg_ = kGs; break;
        default:
          if ((x & 0xF0) != 0x40) return true;
          pos_++;
          rex_ = x;  // the last REX counts, and only if the opcode follows it directly
          continue;
      }
      pos_++;
      rex_ = 0;
    }
  }
  bool RexW() const { return rex_ & 8; }
  bool Op16() const { return opsize_ && !RexW(); }
  unsigned V() const { return RexW() ? 8 : opsize_ ? 2 : 4; }   // "v" operand size
  unsigned Z() const { return Op16() ? 2 : 4; }                  // "z" immediates
  unsigned D64() const { return Op16() ? 2 : 8; }                // stack operations
  unsigned Y() const { return RexW() ? 8 : 4; }                  // "y": 32 or 64
  // The mandatory-prefix column of an SSE opcode, in the emulator's precedence (QEMU gen_sse
  // tests 66 before F3 before F2): 0 none, 1 66, 2 F3, 3 F2.
  int Sse() const { return opsize_ ? 1 : rep_ ? 2 : repne_ ? 3 : 0; }
  static unsigned Pick(int column, unsigned none, unsigned p66, unsigned f3, unsigned f2) {
    return column == 0 ? none : column == 1 ? p66 : column == 2 ? f3 : f2;
  }

  // ---- ModRM ----
  bool ModRm() {
    uint8_t m;
    if (!Byte(&m)) return false;
    mod_ = m >> 6;
    reg_ = (m >> 3) & 7;
    uint8_t rm = m & 7;
    if (mod_ == 3) return true;
    mem_ = true;
    bool sib = false;
    base_ = rm | ((rex_ & 1) << 3);
    if (rm == 4) {
      uint8_t s;
      if (!Byte(&s)) return false;
      sib = true;
      scale_ = s >> 6;
      index_ = ((s >> 3) & 7) | ((rex_ & 2) << 2);
      if (index_ == 4) index_ = -1;
      base_ = (s & 7) | ((rex_ & 1) << 3);
    }
    uint64_t d = 0;
    if (mod_ == 0 && (base_ & 7) == 5) {
      if (!Little(4, &d)) return false;
      disp_ = int32_t(uint32_t(d));
      base_ = -1;
      rip_relative_ = !sib;
    } else if (mod_ == 1) {
      if (!Little(1, &d)) return false;
      disp_ = int8_t(uint8_t(d));
    } else if (mod_ == 2) {
      if (!Little(4, &d)) return false;
      disp_ = int32_t(uint32_t(d));
    }
    return true;
  }
  unsigned RegField() const { return reg_ | ((rex_ & 4) << 1); }  // ModRM.reg with REX.R

  uint64_t SegmentBase() const {
    // 64-bit mode: only FS and GS have a base.
    return seg_ == kFs ? r_.fs_base : seg_ == kGs ? r_.gs_base : 0;
  }
  // Effective address -> linear address: 67h truncates to 32 bits before the segment base.
  uint64_t Linear(uint64_t ea, bool overridable) const {
    if (addr32_) ea &= 0xffffffffu;
    return ea + (overridable ? SegmentBase() : 0);
  }
  // Base RSP or RBP selects SS; of the overrides only FS and GS apply in 64-bit mode.
  bool ModRmUsesStackSegment() const {
    return !rip_relative_ && (base_ == kRsp || base_ == kRbp) && seg_ != kFs && seg_ != kGs;
  }
  uint64_t ModRmAddress(int64_t adjust) const {
    uint64_t ea = uint64_t(disp_);
    if (rip_relative_) {
      ea += r_.rip + pos_;  // relative to the next instruction
    } else {
      if (base_ >= 0) ea += r_.gpr[base_];
      if (index_ >= 0) ea += r_.gpr[index_] << scale_;
    }
    return Linear(ea + uint64_t(adjust), true);
  }

  // ---- accesses ----
  void Add(const Spec& s) {
    if (count_ >= kMaxMemAccesses) { overflow_ = true; return; }
    specs_[count_++] = s;
  }
  void Mem(uint8_t kind, uint32_t size, int64_t adjust = 0) {
    if (mem_) Add({true, 0, adjust, 0, size, kind, false});
  }
  // A later part of the ModRM operand, `offset` bytes on (the emulator's helpers add it to the
  // linear address, after any 32-bit truncation).
  void MemPart(uint8_t kind, uint32_t size, uint64_t offset) {
    if (mem_) Add({true, 0, 0, offset, size, kind, false});
  }
  void At(uint64_t linear, uint32_t size, uint8_t kind) { Add({false, linear, 0, 0, size, kind, false}); }
  void Stack(uint64_t linear, uint32_t size, uint8_t kind) { Add({false, linear, 0, 0, size, kind, true}); }
  // The stack is always addressed with 64-bit RSP and no segment base in 64-bit mode.
  void Push(uint32_t size) { Stack(r_.gpr[kRsp] - size, size, W); }
  void Pop(uint32_t size) { Stack(r_.gpr[kRsp], size, R); }
  void Source(uint32_t size) { At(Linear(r_.gpr[kRsi], true), size, R); }        // [seg:RSI]
  void Destination(uint32_t size, uint8_t kind) { At(Linear(r_.gpr[kRdi], false), size, kind); }  // [ES:RDI]
  // BT/BTS/BTR/BTC Ev,Gv: the register is a signed bit offset that can leave the operand.
  void BitString(uint8_t kind) {
    unsigned size = V();
    int shift = size == 2 ? 4 : size == 4 ? 5 : 6;
    uint64_t v = r_.gpr[RegField()];
    int64_t offset = size == 2 ? int64_t(int16_t(v)) : size == 4 ? int64_t(int32_t(v)) : int64_t(v);
    Mem(kind, size, (offset >> shift) * int64_t(size));
  }

  bool OneByte(uint8_t op);
  bool Map0F(uint8_t op);
  bool Map0F38(uint8_t op);
  bool Map0F3A(uint8_t op);

  const uint8_t* b_;
  size_t avail_;
  const DecoderRegs& r_;
  size_t pos_ = 0;
  bool opsize_ = false, addr32_ = false, rep_ = false, repne_ = false;
  int seg_ = kNoSegment;
  uint8_t rex_ = 0;
  uint8_t mod_ = 3, reg_ = 0;
  bool mem_ = false, rip_relative_ = false;
  int base_ = -1, index_ = -1;
  unsigned scale_ = 0;
  int64_t disp_ = 0;
  size_t imm_ = 0;
  Spec specs_[kMaxMemAccesses];
  int count_ = 0;
  bool overflow_ = false;
};

bool Decoder::OneByte(uint8_t op) {
  if (op < 0x40) {
    // ADD OR ADC SBB AND SUB XOR CMP in columns 0-5; the rest are prefixes or invalid.
    bool cmp = (op >> 3) == 7;
    switch (op & 7) {
      case 0: if (!ModRm()) return false; Mem(cmp ? R : RW, 1); return true;
      case 1: if (!ModRm()) return false; Mem(cmp ? R : RW, V()); return true;
      case 2: if (!ModRm()) return false; Mem(R, 1); return true;
      case 3: if (!ModRm()) return false; Mem(R, V()); return true;
      case 4: imm_ = 1; return true;
      case 5: imm_ = Z(); return true;
      default: return false;
    }
  }
  if (op >= 0x50 && op <= 0x57) { Push(D64()); return true; }
  if (op >= 0x58 && op <= 0x5F) { Pop(D64()); return true; }
  if (op >= 0x70 && op <= 0x7F) { imm_ = 1; return true; }
  if (op >= 0x90 && op <= 0x99) return true;
  if (op >= 0xB0 && op <= 0xB7) { imm_ = 1; return true; }
  if (op >= 0xB8 && op <= 0xBF) { imm_ = RexW() ? 8 : Op16() ? 2 : 4; return true; }
  if (op >= 0xD8 && op <= 0xDF) {
    if (!ModRm()) return false;
    if (!mem_) return true;
    X87Mem x = kX87[op - 0xD8][reg_];
    if (x.size == 0) return false;
    unsigned size = x.size;
    if (Op16() && size == 28) size = 14;   // 16-bit FNSTENV
    if (Op16() && size == 108) size = 94;  // 16-bit FNSAVE
    if (size == 1) {
      // FLDENV, FRSTOR: control, status and tag words, then (FRSTOR) the eight registers.
      if (Op16()) {
        Mem(R, 6);
      } else {
        Mem(R, 2);
        MemPart(R, 2, 4);
        MemPart(R, 2, 8);
      }
      if (op == 0xDD) MemPart(R, 80, Op16() ? 14 : 28);
      return true;
    }
    Mem(x.kind, size);
    return true;
  }
  switch (op) {
    case 0x63: if (!ModRm()) return false; Mem(R, 4); return true;  // MOVSXD reads a dword
    case 0x68: imm_ = Z(); Push(D64()); return true;
    case 0x69: if (!ModRm()) return false; imm_ = Z(); Mem(R, V()); return true;
    case 0x6A: imm_ = 1; Push(D64()); return true;
    case 0x6B: if (!ModRm()) return false; imm_ = 1; Mem(R, V()); return true;
    case 0x6C: Destination(1, W); return true;                 // INSB
    case 0x6D: Destination(Op16() ? 2 : 4, W); return true;    // INSW/INSD
    case 0x6E: Source(1); return true;                         // OUTSB
    case 0x6F: Source(Op16() ? 2 : 4); return true;            // OUTSW/OUTSD
    case 0x80: if (!ModRm()) return false; imm_ = 1; Mem(reg_ == 7 ? R : RW, 1); return true;
    case 0x81: if (!ModRm()) return false; imm_ = Z(); Mem(reg_ == 7 ? R : RW, V()); return true;
    case 0x83: if (!ModRm()) return false; imm_ = 1; Mem(reg_ == 7 ? R : RW, V()); return true;
    case 0x84: if (!ModRm()) return false; Mem(R, 1); return true;
    case 0x85: if (!ModRm()) return false; Mem(R, V()); return true;
    case 0x86: if (!ModRm()) return false; Mem(RW, 1); return true;
    case 0x87: if (!ModRm()) return false; Mem(RW, V()); return true;
    case 0x88: if (!ModRm()) return false; Mem(W, 1); return true;
    case 0x89: if (!ModRm()) return false; Mem(W, V()); return true;
    case 0x8A: if (!ModRm()) return false; Mem(R, 1); return true;
    case 0x8B: if (!ModRm()) return false; Mem(R, V()); return true;
    case 0x8C: if (!ModRm()) return false; Mem(W, 2); return true;  // MOV Ew,Sreg
    case 0x8D: return ModRm();                                      // LEA: no access
    case 0x8E: if (!ModRm()) return false; Mem(R, 2); return true;  // MOV Sreg,Ew
    case 0x8F: {
      // POP Ev: the stack is read first; an RSP base is taken after the increment.
      if (!ModRm()) return false;
      unsigned size = D64();
      Pop(size);
      Mem(W, size, base_ == kRsp ? int64_t(size) : 0);
      return true;
    }
    case 0x9B: case 0x9E: case 0x9F: return true;
    case 0x9C: Push(D64()); return true;  // PUSHF
    case 0x9D: Pop(D64()); return true;   // POPF
    case 0xA0: case 0xA1: case 0xA2: case 0xA3: {
      uint64_t offset;
      if (!Little(addr32_ ? 4 : 8, &offset)) return false;
      unsigned size = op & 1 ? V() : 1;
      At(Linear(offset, true), size, op & 2 ? W : R);
      return true;
    }
    case 0xA4: case 0xA5: {  // MOVS: read [seg:RSI], write [ES:RDI]
      unsigned size = op & 1 ? V() : 1;
      Source(size);
      Destination(size, W);
      return true;
    }
    case 0xA6: case 0xA7: {  // CMPS: the emulator reads [ES:RDI] first
      unsigned size = op & 1 ? V() : 1;
      Destination(size, R);
      Source(size);
      return true;
    }
    case 0xA8: imm_ = 1; return true;
    case 0xA9: imm_ = Z(); return true;
    case 0xAA: Destination(1, W); return true;         // STOS
    case 0xAB: Destination(V(), W); return true;
    case 0xAC: Source(1); return true;                 // LODS
    case 0xAD: Source(V()); return true;
    case 0xAE: Destination(1, R); return true;         // SCAS
    case 0xAF: Destination(V(), R); return true;
    case 0xC0: if (!ModRm()) return false; imm_ = 1; Mem(RW, 1); return true;
    case 0xC1: if (!ModRm()) return false; imm_ = 1; Mem(RW, V()); return true;
    case 0xC2: imm_ = 2; Pop(D64()); return true;      // RET Iw
    case 0xC3: Pop(D64()); return true;                // RET
    case 0xC6: if (!ModRm()) return false; imm_ = 1; Mem(W, 1); return true;
    case 0xC7: if (!ModRm()) return false; imm_ = Z(); Mem(W, V()); return true;
    case 0xC8: {
      // ENTER Iw,Ib: push RBP, copy level-1 frame pointers from [RBP], push the new frame.
      uint64_t frame, level;
      if (!Little(2, &frame) || !Little(1, &level)) return false;
      level &= 31;
      unsigned size = D64();
      uint64_t temp = r_.gpr[kRsp] - size;
      Push(size);
      if (level > 0) {
        for (uint64_t i = 1; i < level; i++) {
          Stack(r_.gpr[kRbp] - size * i, size, R);
          Stack(temp - size * i, size, W);
        }
        Stack(temp - size * level, size, W);
      }
      return true;
    }
    case 0xC9: Stack(r_.gpr[kRbp], D64(), R); return true;  // LEAVE
    // Far RET and IRET with 32/16-bit operands mask RSP with the SS limit in the emulator
    // (helper_ret_protected): only the REX.W forms are modelled.
    case 0xCA: if (!RexW()) return false; imm_ = 2; Pop(16); return true;  // far RET: RIP and CS
    case 0xCB: if (!RexW()) return false; Pop(16); return true;
    case 0xCC: case 0xF1: return true;                   // INT3, INT1 (delivery is the VMM's)
    case 0xCD: imm_ = 1; return true;
    case 0xCF: if (!RexW()) return false; Pop(40); return true;  // IRETQ: RIP CS RFLAGS RSP SS
    case 0xD0: case 0xD2: if (!ModRm()) return false; Mem(RW, 1); return true;
    case 0xD1: case 0xD3: if (!ModRm()) return false; Mem(RW, V()); return true;
    case 0xD7: {  // XLAT: [seg:RBX + AL]
      uint64_t ea = r_.gpr[kRbx] + (r_.gpr[kRax] & 0xff);
      At(Linear(ea, true), 1, R);
      return true;
    }
    case 0xE0: case 0xE1: case 0xE2: case 0xE3:
    case 0xE4: case 0xE5: case 0xE6: case 0xE7: case 0xEB:
      imm_ = 1;
      return true;
    case 0xE8: imm_ = Z(); Push(D64()); return true;  // CALL rel
    case 0xE9: imm_ = Z(); return true;
    case 0xEC: case 0xED: case 0xEE: case 0xEF:
    case 0xF4: case 0xF5: case 0xF8: case 0xF9: case 0xFA: case 0xFB: case 0xFC: case 0xFD:
      return true;
    case 0xF6: case 0xF7: {
      if (!ModRm()) return false;
      unsigned size = op == 0xF6 ? 1 : V();
      if (reg_ <= 1) { imm_ = op == 0xF6 ? 1 : Z(); Mem(R, size); }  // TEST
      else if (reg_ <= 3) Mem(RW, size);                              // NOT, NEG
      else Mem(R, size);                                              // MUL IMUL DIV IDIV
      return true;
    }
    case 0xFE:
      if (!ModRm() || reg_ > 1) return false;
      Mem(RW, 1);
      return true;
    case 0xFF:
      if (!ModRm()) return false;
      switch (reg_) {
        case 0: case 1: Mem(RW, V()); return true;                 // INC, DEC
        case 2: Mem(R, 8); Push(D64()); return true;               // CALL Ev: target, then push
        case 4: Mem(R, 8); return true;                            // JMP Ev
        case 5: Mem(R, (RexW() ? 8 : Op16() ? 2 : 4) + 2); return true;  // JMP far m16:xx
        case 6: Mem(R, D64()); Push(D64()); return true;           // PUSH Ev
        default: return false;                                     // CALL far: not modelled
      }
    default:
      return false;  // VEX/EVEX (C4 C5 62), invalid in 64-bit mode, or not modelled
  }
}

bool Decoder::Map0F(uint8_t op) {
  int sse = Sse();
  if (op >= 0x40 && op <= 0x4F) { if (!ModRm()) return false; Mem(R, V()); return true; }  // CMOVcc
  if (op >= 0x80 && op <= 0x8F) { imm_ = Z(); return true; }                               // Jcc
  if (op >= 0x90 && op <= 0x9F) { if (!ModRm()) return false; Mem(W, 1); return true; }    // SETcc
  if (op >= 0xC8 && op <= 0xCF) return true;                                               // BSWAP
  switch (op) {
    case 0x00:
      if (!ModRm()) return false;
      if (reg_ <= 1) Mem(W, 2);        // SLDT, STR
      else if (reg_ <= 5) Mem(R, 2);   // LLDT, LTR, VERR, VERW
      else return false;
      return true;
    case 0x01:
      if (!ModRm()) return false;
      if (!mem_) return true;  // register forms (VMMCALL, TDCALL, PVALIDATE, SWAPGS...) access nothing here
      switch (reg_) {
        case 0: case 1: Mem(W, 10); return true;  // SGDT, SIDT
        case 2: case 3: Mem(R, 10); return true;  // LGDT, LIDT
        case 4: Mem(W, 2); return true;           // SMSW
        case 6: Mem(R, 2); return true;           // LMSW
        case 7: return true;                      // INVLPG
        default: return false;
      }
    case 0x02: case 0x03: if (!ModRm()) return false; Mem(R, 2); return true;  // LAR, LSL
    case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0B:
    case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x37:
    case 0x77: case 0xA2:
      return true;
    case 0x0D: case 0x18: case 0x19: case 0x1C: case 0x1D: case 0x1E: case 0x1F:
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x50: case 0xD7:
      return ModRm();  // hints, NOPs, prefetches, control/debug registers, register-only forms
    case 0x10: if (!ModRm()) return false; Mem(R, Pick(sse, 16, 16, 4, 8)); return true;
    case 0x11: if (!ModRm()) return false; Mem(W, Pick(sse, 16, 16, 4, 8)); return true;
    case 0x12: case 0x16: if (!ModRm()) return false; Mem(R, sse == 2 ? 16 : 8); return true;
    case 0x13: case 0x17: if (!ModRm()) return false; Mem(W, 8); return true;
    case 0x14: case 0x15: case 0x28: if (!ModRm()) return false; Mem(R, 16); return true;
    case 0x29: case 0x2B: if (!ModRm()) return false; Mem(W, 16); return true;
    case 0x2A: if (!ModRm()) return false; Mem(R, sse >= 2 ? Y() : 8); return true;
    case 0x2C: case 0x2D: if (!ModRm()) return false; Mem(R, Pick(sse, 8, 16, 4, 8)); return true;
    case 0x2E: case 0x2F: if (!ModRm()) return false; Mem(R, sse == 1 ? 8 : 4); return true;
    case 0x51: case 0x52: case 0x53: case 0x58: case 0x59: case 0x5C: case 0x5D: case 0x5E: case 0x5F:
      if (!ModRm()) return false;
      Mem(R, Pick(sse, 16, 16, 4, 8));
      return true;
    case 0x54: case 0x55: case 0x56: case 0x57: case 0x5B:
      if (!ModRm()) return false;
      Mem(R, 16);
      return true;
    case 0x5A: if (!ModRm()) return false; Mem(R, Pick(sse, 8, 16, 4, 8)); return true;
    case 0x60: case 0x61: case 0x62: case 0x63: case 0x64: case 0x65: case 0x66: case 0x67:
    case 0x68: case 0x69: case 0x6A: case 0x6B: case 0x74: case 0x75: case 0x76:
      if (!ModRm() || sse > 1) return false;
      Mem(R, sse == 1 ? 16 : op <= 0x62 ? 4 : 8);
      return true;
    case 0x6C: case 0x6D: case 0x7C: case 0x7D:
      if (!ModRm()) return false;
      Mem(R, 16);
      return true;
    case 0x6E: if (!ModRm()) return false; Mem(R, Y()); return true;  // MOVD/MOVQ
    case 0x6F: if (!ModRm() || sse == 3) return false; Mem(R, sse == 0 ? 8 : 16); return true;
    case 0x70: if (!ModRm()) return false; imm_ = 1; Mem(R, sse == 0 ? 8 : 16); return true;
    case 0x71: case 0x72: case 0x73: if (!ModRm()) return false; imm_ = 1; return true;
    case 0x7E:
      if (!ModRm()) return false;
      if (sse == 2) Mem(R, 8); else Mem(W, Y());
      return true;
    case 0x7F: if (!ModRm() || sse == 3) return false; Mem(W, sse == 0 ? 8 : 16); return true;
    case 0xA0: case 0xA8: Push(D64()); return true;  // PUSH FS/GS
    case 0xA1: case 0xA9: Pop(D64()); return true;   // POP FS/GS
    case 0xA3: if (!ModRm()) return false; BitString(R); return true;   // BT
    case 0xAB: case 0xB3: case 0xBB: if (!ModRm()) return false; BitString(RW); return true;  // BTS BTR BTC
    case 0xA4: case 0xAC: if (!ModRm()) return false; imm_ = 1; Mem(RW, V()); return true;   // SHLD/SHRD Ib
    case 0xA5: case 0xAD: if (!ModRm()) return false; Mem(RW, V()); return true;             // SHLD/SHRD CL
    case 0xAE:
      if (!ModRm()) return false;
      if (!mem_) return true;  // fences, RD/WRFSBASE
      switch (reg_) {
        case 0: Mem(W, 512); return true;  // FXSAVE
        case 1:  // FXRSTOR reads FCW/FSW/FTW, the x87 registers, MXCSR, then the XMM registers
          Mem(R, 6);
          MemPart(R, 128, 0x20);
          MemPart(R, 4, 0x18);
          MemPart(R, 256, 0xA0);
          return true;
        case 2: Mem(R, 4); return true;    // LDMXCSR
        case 3: Mem(W, 4); return true;    // STMXCSR
        case 7: return true;               // CLFLUSH(OPT), CLWB: no access in the emulator
        default: return false;             // XSAVE family
      }
    case 0xAF: case 0xBC: case 0xBD: if (!ModRm()) return false; Mem(R, V()); return true;
    case 0xB0: case 0xC0: if (!ModRm()) return false; Mem(RW, 1); return true;   // CMPXCHG, XADD
    case 0xB1: case 0xC1: if (!ModRm()) return false; Mem(RW, V()); return true;
    case 0xB2: case 0xB4: case 0xB5:  // LSS LFS LGS: offset (16 or 32 bits in the emulator), selector
      if (!ModRm()) return false;
      Mem(R, (Op16() ? 2 : 4) + 2);
      return true;
    case 0xB6: case 0xBE: if (!ModRm()) return false; Mem(R, 1); return true;  // MOVZX/MOVSX Eb
    case 0xB7: case 0xBF: if (!ModRm()) return false; Mem(R, 2); return true;  // MOVZX/MOVSX Ew
    case 0xB8: if (!rep_ || !ModRm()) return false; Mem(R, V()); return true;  // POPCNT
    case 0xBA:
      if (!ModRm()) return false;
      imm_ = 1;
      if (reg_ == 4) Mem(R, V());
      else if (reg_ >= 5) Mem(RW, V());
      else return false;
      return true;
    case 0xC2: if (!ModRm()) return false; imm_ = 1; Mem(R, Pick(sse, 16, 16, 4, 8)); return true;
    case 0xC3: if (!ModRm()) return false; Mem(W, Y()); return true;               // MOVNTI
    case 0xC4: if (!ModRm()) return false; imm_ = 1; Mem(R, 2); return true;       // PINSRW
    case 0xC5: if (!ModRm()) return false; imm_ = 1; return true;                  // PEXTRW reg
    case 0xC6: if (!ModRm()) return false; imm_ = 1; Mem(R, 16); return true;      // SHUFPS/PD
    case 0xC7:
      if (!ModRm()) return false;
      if (!mem_) return true;  // RDRAND, RDSEED, RDPID
      if (reg_ != 1) return false;
      Mem(RW, RexW() ? 16 : 8);  // CMPXCHG8B/16B
      return true;
    case 0xD0: if (!ModRm() || (sse != 1 && sse != 3)) return false; Mem(R, 16); return true;
    case 0xD6:
      if (!ModRm()) return false;
      if (sse == 1) Mem(W, 8);
      else if (mem_) return false;
      return true;
    case 0xE6: if (!ModRm() || sse == 0) return false; Mem(R, sse == 2 ? 8 : 16); return true;
    case 0xE7: if (!ModRm() || sse > 1) return false; Mem(W, sse == 1 ? 16 : 8); return true;
    case 0xF0: if (!ModRm() || sse != 3) return false; Mem(R, 16); return true;  // LDDQU
    case 0xF7: case 0xFF:
      return false;  // MASKMOVQ/MASKMOVDQU (byte-masked stores), UD0
    default:
      if ((op >= 0xD1 && op <= 0xFE)) {  // MMX/SSE2 integer arithmetic
        if (!ModRm() || sse > 1) return false;
        Mem(R, sse == 1 ? 16 : 8);
        return true;
      }
      return false;
  }
}

bool Decoder::Map0F38(uint8_t op) {
  if (!ModRm()) return false;
  int sse = Sse();
  if (op == 0xF0 || op == 0xF1) {
    if (repne_) { Mem(R, op == 0xF0 ? 1 : V()); return true; }  // CRC32
    if (sse == 2) return false;
    Mem(op == 0xF0 ? R : W, V());                               // MOVBE
    return true;
  }
  if (op == 0xF6 && (sse == 1 || sse == 2)) { Mem(R, Y()); return true; }  // ADCX, ADOX
  if (op >= 0xF0) return false;
  if (sse == 1) {
    unsigned size = 16;
    switch (op) {
      case 0x20: case 0x23: case 0x25: case 0x30: case 0x33: case 0x35: size = 8; break;
      case 0x21: case 0x24: case 0x31: case 0x34: size = 4; break;
      case 0x22: case 0x32: size = 2; break;
      default: break;
    }
    Mem(R, size);
    return true;
  }
  if (sse == 0 && (op <= 0x0B || (op >= 0x1C && op <= 0x1E))) { Mem(R, 8); return true; }  // SSSE3 on MMX
  if (sse == 0 && op >= 0xC8 && op <= 0xCD) { Mem(R, 16); return true; }                    // SHA
  return false;
}

bool Decoder::Map0F3A(uint8_t op) {
  if (!ModRm()) return false;
  imm_ = 1;
  int sse = Sse();
  if (sse == 1) {
    switch (op) {
      case 0x14: Mem(W, 1); return true;    // PEXTRB
      case 0x15: Mem(W, 2); return true;    // PEXTRW
      case 0x16: Mem(W, Y()); return true;  // PEXTRD/Q
      case 0x17: Mem(W, 4); return true;    // EXTRACTPS
      case 0x20: Mem(R, 1); return true;    // PINSRB
      case 0x21: Mem(R, 4); return true;    // INSERTPS
      case 0x22: Mem(R, Y()); return true;  // PINSRD/Q
      case 0x0A: Mem(R, 4); return true;    // ROUNDSS
      case 0x0B: Mem(R, 8); return true;    // ROUNDSD
      default: Mem(R, 16); return true;
    }
  }
  if (sse == 0 && op == 0x0F) { Mem(R, 8); return true; }   // PALIGNR mm
  if (sse == 0 && op == 0xCC) { Mem(R, 16); return true; }  // SHA1RNDS4
  return false;
}

}  // namespace

bool DecodeMemAccesses(const uint8_t* bytes, size_t avail, const DecoderRegs& regs, InsnMemAccesses* out) {
  Decoder d(bytes, avail, regs);
  if (!d.Decode(out)) *out = InsnMemAccesses();
  return out->known;
}

const MemAccess* FaultingDataAccess(const InsnMemAccesses& insn, Access access, uint64_t page_va) {
  if (!insn.known || access == Access::kFetch) return nullptr;
  uint8_t want = access == Access::kWrite ? kMemWrite : kMemRead;
  for (int i = 0; i < insn.count; i++) {
    const MemAccess& a = insn.accesses[i];
    if (!(a.kind & want) || a.size == 0) continue;
    // Starts in the page, or starts before it and runs into it.
    if (a.address - page_va < kPage || page_va - a.address < a.size) return &a;
  }
  return nullptr;
}

bool ExactDataFaultAddress(const InsnMemAccesses& insn, Access access, uint64_t page_va, uint64_t* exact) {
  const MemAccess* a = FaultingDataAccess(insn, access, page_va);
  if (!a) return false;
  *exact = a->address - page_va < kPage ? a->address : page_va;
  return true;
}

bool ExactFetchFaultAddress(uint64_t rip, uint64_t page_va, uint64_t* exact) {
  if (rip - page_va < kPage) {
    *exact = rip;
    return true;
  }
  if ((rip & ~(kPage - 1)) + kPage == page_va) {  // translation ran on into the next page
    *exact = page_va;
    return true;
  }
  return false;
}

}  // namespace minivisor
