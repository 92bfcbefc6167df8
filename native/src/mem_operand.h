// The memory accesses of one x86-64 instruction, from its bytes and the registers: enough to
// tell the exact linear address of a refused access when Unicorn's TLB-fill hook saw only the
// page (../shared/reference/unicorn.md §2).
//
// Bounded on purpose: legacy prefixes, REX, the 1-byte, 0F, 0F38 and 0F3A maps, ModRM/SIB/
// displacements, RIP-relative and 67h (32-bit) addressing, FS/GS bases, and the implicit
// operands of stack, string and XLAT instructions. Accesses are listed in the order the
// emulator (QEMU's i386 translator in Unicorn 2.1.1) performs them, because the first access of
// the refused kind that touches the refused page is the one that faulted. VEX/EVEX/XOP,
// XSAVE-family, far calls, masked stores and anything else unlisted decode as unknown, and the
// caller keeps the page-granular address.
#pragma once
#include <cstddef>
#include <cstdint>

#include "page_walk.h"

namespace minivisor {

// What the decoder reads besides the instruction bytes.
struct DecoderRegs {
  uint64_t gpr[16] = {};  // RAX RCX RDX RBX RSP RBP RSI RDI R8..R15 (encoding order)
  uint64_t rip = 0;       // address of the instruction
  uint64_t fs_base = 0;
  uint64_t gs_base = 0;
};

constexpr uint8_t kMemRead = 1;
constexpr uint8_t kMemWrite = 2;
constexpr int kMaxMemAccesses = 4;

struct MemAccess {
  uint64_t address = 0;  // linear address of the first byte (segment base included)
  uint32_t size = 0;     // bytes
  uint8_t kind = 0;      // kMemRead | kMemWrite (both: read-modify-write)
  // The access references the SS segment: the stack's own (PUSH, POP, CALL, RET, ENTER, LEAVE)
  // or a ModRM operand with base RSP or RBP and no FS/GS override (64-bit mode ignores the
  // CS, DS, ES and SS overrides: Intel SDM Vol. 3A §3.3.7.1). A non-canonical address then
  // raises #SS(0), not #GP(0).
  bool stack = false;
};

struct InsnMemAccesses {
  bool known = false;   // false: the instruction is outside what the decoder understands
  uint8_t length = 0;   // instruction length in bytes (when known)
  uint8_t count = 0;
  MemAccess accesses[kMaxMemAccesses];
};

// Decodes the instruction at bytes[0..avail) (avail <= 15 is honoured; nothing beyond is read).
// Returns out->known.
bool DecodeMemAccesses(const uint8_t* bytes, size_t avail, const DecoderRegs& regs, InsnMemAccesses* out);

// The exact linear address of a refused access of kind `access` to the 4 KiB page at
// `page_va`: the first byte in that page of the first listed access of that kind that touches
// it. Returns false when no listed access fits (the caller keeps the page address).
bool ExactDataFaultAddress(const InsnMemAccesses& insn, Access access, uint64_t page_va, uint64_t* exact);

// The access ExactDataFaultAddress picks (the first listed of that kind touching the page), or
// null when none fits.
const MemAccess* FaultingDataAccess(const InsnMemAccesses& insn, Access access, uint64_t page_va);

// Instruction fetch. A refused fetch stops the emulator either at a branch target (RIP is in
// the refused page: RIP is the address) or while it translates straight-line code from RIP on
// the page before, which it reads byte by byte: the first byte it reads in the refused page is
// the page start (whether an instruction straddles the boundary or starts on it). RIP is then
// the start of that translation block, which need not be the instruction at the boundary; none
// of the block has run. Returns false when the page is neither.
bool ExactFetchFaultAddress(uint64_t rip, uint64_t page_va, uint64_t* exact);

}  // namespace minivisor
