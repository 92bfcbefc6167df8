// The content watch (content_watch.h) inside the machine: what the TLB-fill hook does with a
// private access to a watched page.
//
// Counting mode sees every instruction that touches a watched page: the fill is let into the TLB
// for that one instruction and the TLB is flushed before the next one starts (OnCode). The
// instruction is decoded (mem_operand.h) to find the exact bytes it reads and writes on the page:
// reads are checked against the bytes the guest wrote itself first, then its writes make bytes
// its own. What the decoder does not know is taken conservatively: a read consumes, a store makes
// nothing the guest's own and gets no read permission (a read in the same instruction comes back
// here). An instruction fetch from a watched page consumes it (the guest runs foreign code).
//
// Fast mode has no per-instruction hook, so no decoding and no flush: any read or fetch consumes,
// a store is let in write-only (later reads still come here) and makes nothing the guest's own.
#include <algorithm>

#include "machine.h"
#include "mem_operand.h"

namespace minivisor {

void Machine::WatchContent(uint64_t first_page, uint64_t pages, bool on, bool until_write) {
  if (first_page >= pages_) return;
  pages = std::min(pages, pages_ - first_page);
  if (on) {
    if (until_write) content_watch_.WatchUntilWrite(first_page, pages);
    else content_watch_.Watch(first_page, pages);
    // Entries filled before the watch would let reads through unseen.
    if (TlbMayHold(first_page, pages)) FlushTlb();
  } else {
    content_watch_.Unwatch(first_page, pages);
  }
}

std::vector<ForeignRead> Machine::TakeForeignReads() {
  std::vector<ForeignRead> reads = content_watch_.pending();
  content_watch_.ClearPending();
  area_[kSlotForeignReads] = 0;
  return reads;
}

void Machine::RequestWatchFlush() {
  if (content_watch_flush_) return;
  content_watch_flush_ = true;
  watch_saved_instruction_limit_ = area_[kSlotInstructionLimit];
  area_[kSlotInstructionLimit] = 0;
  UpdateCodeFastStop();
}

void Machine::FinishWatchFlush() {
  if (!content_watch_flush_) return;
  content_watch_flush_ = false;
  area_[kSlotInstructionLimit] = watch_saved_instruction_limit_;
  UpdateCodeFastStop();
  FlushTlb();
}

uint32_t Machine::WatchedFill(uint64_t vaddr, uint64_t page, Access access) {
  const bool counting = config_.count_instructions;
  const uint64_t va_page = vaddr & ~(kPageSize - 1);
  const uint64_t rip = counting ? last_insn_ : ~0ull;
  auto consumed = [&](uint64_t offset) -> uint32_t {
    content_watch_.Consumed(page, {(page << kPageShift) | offset, rip, counting ? area_[kSlotInstructions] : 0});
    area_[kSlotForeignReads] = content_watch_.pending().size();
    return UC_PROT_ALL;  // no longer watched
  };
  if (access == Access::kFetch) return consumed(0);
  // Watched at page granularity (content_watch.h): a store first ends the watch, whatever it
  // writes, and the fill needs nothing more (QEMU loads before it stores in a read-modify-write,
  // so an instruction that also reads the page arrived here as a read). A read is decoded below
  // only to name the byte it read: nothing on the page is the guest's own.
  if (!content_watch_.WatchedBytes(page) && access == Access::kWrite) {
    content_watch_.Unwatch(page, 1);
    return UC_PROT_ALL;
  }
  InsnMemAccesses insn;
  // last_insn_ is the instruction running now (the code hook ran at its start); the decoder knows
  // 64-bit code only. The GPRs are current: QEMU syncs them before a memory access's slow path.
  if (counting && rip != ~0ull && CurrentCodeSegment().bits == 64) {
    uint8_t bytes[15] = {0};
    size_t n = FetchInsnBytes(rip, bytes);
    static const int kGprs[16] = {UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX,
                                  UC_X86_REG_RSP, UC_X86_REG_RBP, UC_X86_REG_RSI, UC_X86_REG_RDI,
                                  UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
                                  UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15};
    DecoderRegs regs;
    for (int i = 0; i < 16; i++) uc_reg_read(uc_, kGprs[i], &regs.gpr[i]);
    regs.rip = rip;
    uc_reg_read(uc_, UC_X86_REG_FS_BASE, &regs.fs_base);
    uc_reg_read(uc_, UC_X86_REG_GS_BASE, &regs.gs_base);
    DecodeMemAccesses(bytes, n, regs, &insn);
  }
  if (!insn.known) {
    if (access == Access::kRead) return consumed(0);
    if (counting) RequestWatchFlush();
    return UC_PROT_WRITE;
  }
  // The bytes [from, to) of this page that an access touches (false: none).
  auto on_page = [&](const MemAccess& a, uint32_t* from, uint32_t* to) {
    uint64_t lo = std::max(a.address, va_page), hi = std::min(a.address + a.size, va_page + kPageSize);
    if (a.size == 0 || hi <= lo || a.address + a.size < a.address) return false;
    *from = static_cast<uint32_t>(lo - va_page);
    *to = static_cast<uint32_t>(hi - va_page);
    return true;
  };
  bool read_seen = false;
  for (int i = 0; i < insn.count; i++) {
    uint32_t from, to;
    if (!(insn.accesses[i].kind & kMemRead) || !on_page(insn.accesses[i], &from, &to)) continue;
    read_seen = true;
    uint32_t foreign = content_watch_.FirstForeign(page, from, to);
    if (foreign < to) return consumed(foreign);
  }
  // A read fill the decoded accesses do not explain: taken as a read of foreign bytes.
  if (access == Access::kRead && !read_seen) return consumed(0);
  for (int i = 0; i < insn.count; i++) {
    uint32_t from, to;
    if ((insn.accesses[i].kind & kMemWrite) && on_page(insn.accesses[i], &from, &to)) content_watch_.MarkOwn(page, from, to);
  }
  if (content_watch_.WatchedBytes(page)) RequestWatchFlush();
  return UC_PROT_ALL;
}

}  // namespace minivisor
