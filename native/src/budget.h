// The instruction budget counts host work, not only retired instructions, so that no guest can
// keep the host busy for long on a small budget (issue 8): a #UD handler that IRETQs back to its
// UD2 retires two instructions per round trip through the VMM, and a guest that rewrites the
// translation block it is running makes the emulator retranslate that block before each
// instruction. Charges are fixed per event, so the budget stays a pure function of the guest.
#pragma once
#include <cstddef>
#include <cstdint>

namespace minivisor {

// One exit to the VMM and back (a Run call): a few microseconds in Node, the time of roughly a
// thousand emulated instructions in counting mode (README "Benchmarks": exit round trips).
constexpr uint64_t kExitCharge = 1024;
// One exception or interrupt the host delivers through the guest's tables (frame push, gate and
// descriptor reads): the same order of cost as an exit.
constexpr uint64_t kInjectCharge = 1024;
// An instruction whose code hook runs twice in a row at the same address, when that is not a REP
// string step or a branch to itself: QEMU aborted the block because the instruction's own store
// rewrote it (tb_invalidate_phys_page_fast → cpu_loop_exit_noexc) and retranslated it. A block
// holds at most TCG_MAX_INSNS = 512 instructions, so this bounds the translation work per unit.
constexpr uint64_t kRetranslateCharge = 512;

// True when running the instruction at `bytes` again at the same address is what the
// architecture does: a REP/REPNE string instruction between iterations, or a branch whose
// target is its own first byte (`jmp $`, `jcc $`, `loop $`).
bool RepeatsInPlace(const uint8_t* bytes, size_t avail);

// Stop when the instructions reach their own limit (exact stepping), or instructions plus
// charges reach the budget. Saturating, so a budget of ~0 never wraps.
inline bool OverBudget(uint64_t instructions, uint64_t instruction_limit, uint64_t charged, uint64_t budget) {
  return instructions >= instruction_limit || charged >= budget || instructions >= budget - charged;
}

}  // namespace minivisor
