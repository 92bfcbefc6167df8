// Finds where old_exception lies in a uc_context, by what it does rather than by a layout taken
// from QEMU's headers (which the library does not install, and which a distribution's build may
// change). On a scratch engine with no paging, DIV ECX with ECX = 0 raises #DE (vector 0), which
// QEMU records as in flight: -1 before, 0 after. The probe saves a context before and after one
// such fault, takes every 32-bit word that went from -1 to 0, and accepts a word only if writing
// -1 into it makes the next DIV raise #DE again where, unwritten, it raises #DF, and the fault
// after that puts 0 there again. Exactly one word must pass; otherwise nothing is cleared.
#include "exception_in_flight.h"

#include <cstring>
#include <memory>
#include <vector>

namespace minivisor {

namespace {

constexpr uint64_t kCodeGpa = 0x1000;
constexpr uint8_t kDivideEcx[] = {0xF7, 0xF1};  // DIV ECX
constexpr uint32_t kNoVector = ~0u;

struct ScratchEngine {
  uc_engine* uc = nullptr;
  uint32_t vector = kNoVector;
  ~ScratchEngine() { if (uc) uc_close(uc); }
};

void OnScratchInterrupt(uc_engine* uc, uint32_t intno, void* self) {
  static_cast<ScratchEngine*>(self)->vector = intno;
  uc_emu_stop(uc);
}

// Runs DIV ECX (ECX = 0): the vector the emulator raised, or kNoVector.
uint32_t RaiseDivideError(ScratchEngine* e) {
  const uint64_t zero = 0, rip = kCodeGpa;
  e->vector = kNoVector;
  if (uc_reg_write(e->uc, UC_X86_REG_RCX, &zero) != UC_ERR_OK || uc_reg_write(e->uc, UC_X86_REG_RIP, &rip) != UC_ERR_OK) return kNoVector;
  if (uc_emu_start(e->uc, kCodeGpa, kCodeGpa + sizeof kDivideEcx, 0, 0) != UC_ERR_OK) return kNoVector;
  return e->vector;
}

struct ContextFree {
  void operator()(uc_context* c) const { uc_context_free(c); }
};
using ContextPtr = std::unique_ptr<uc_context, ContextFree>;

ContextPtr AllocContext(uc_engine* uc) {
  uc_context* c = nullptr;
  return ContextPtr(uc_context_alloc(uc, &c) == UC_ERR_OK ? c : nullptr);
}

int32_t WordAt(const uc_context* c, size_t offset) {
  int32_t v;
  std::memcpy(&v, reinterpret_cast<const uint8_t*>(c) + offset, sizeof v);
  return v;
}

ExceptionInFlightLayout Probe() {
  ExceptionInFlightLayout layout;
  ScratchEngine e;
  uc_hook hook;
  if (uc_open(UC_ARCH_X86, UC_MODE_64, &e.uc) != UC_ERR_OK) { e.uc = nullptr; return layout; }
  // A small translation buffer: the probe translates one instruction a few times.
  if (uc_ctl_set_tcg_buffer_size(e.uc, 4u << 20) != UC_ERR_OK ||
      uc_mem_map(e.uc, kCodeGpa, 0x1000, UC_PROT_ALL) != UC_ERR_OK ||
      uc_mem_write(e.uc, kCodeGpa, kDivideEcx, sizeof kDivideEcx) != UC_ERR_OK ||
      uc_hook_add(e.uc, &hook, UC_HOOK_INTR, (void*)OnScratchInterrupt, &e, 1, 0) != UC_ERR_OK) return layout;
  const size_t bytes = uc_context_size(e.uc);
  ContextPtr before = AllocContext(e.uc), after = AllocContext(e.uc), trial = AllocContext(e.uc);
  if (!before || !after || !trial) return layout;
  if (uc_context_save(e.uc, before.get()) != UC_ERR_OK) return layout;
  if (RaiseDivideError(&e) != 0) return layout;
  if (uc_context_save(e.uc, after.get()) != UC_ERR_OK) return layout;
  // The second fault with nothing cleared: #DF where the library escalates, #DE where it does not.
  const uint32_t second = RaiseDivideError(&e);
  if (second == 0) {
    layout.context_bytes = bytes;
    return layout;  // nothing to clear
  }
  if (second != 8) return layout;
  std::vector<size_t> passed;
  for (size_t offset = 0; offset + sizeof(int32_t) <= bytes; offset += sizeof(int32_t)) {
    if (WordAt(before.get(), offset) != -1 || WordAt(after.get(), offset) != 0) continue;
    std::memcpy(trial.get(), after.get(), bytes);
    layout.offset = static_cast<long>(offset);
    ClearExceptionInFlight(layout, trial.get());
    if (uc_context_restore(e.uc, trial.get()) != UC_ERR_OK) return ExceptionInFlightLayout{};
    if (RaiseDivideError(&e) != 0) continue;
    if (uc_context_save(e.uc, trial.get()) != UC_ERR_OK) return ExceptionInFlightLayout{};
    if (WordAt(trial.get(), offset) == 0) passed.push_back(offset);
  }
  layout = ExceptionInFlightLayout{};
  if (passed.size() != 1) return layout;
  layout.offset = static_cast<long>(passed[0]);
  layout.context_bytes = bytes;
  layout.escalates = true;
  return layout;
}

}  // namespace

const ExceptionInFlightLayout& ExceptionInFlight() {
  static const ExceptionInFlightLayout layout = Probe();
  return layout;
}

}  // namespace minivisor
