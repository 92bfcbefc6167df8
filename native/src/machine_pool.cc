// Closed machines kept for the next one of the same size and modes: the emulator's translated
// code outlives the VM.
//
// A fuzz campaign launches a fresh VM for every program that changes the launch (launch-executor.ts),
// and each new emulator translated the boot's ~670 blocks again: TCG translation was ~23% of a
// launch's CPU time and ~7.6% of a TDX campaign's (issue 10, perf). The guest code a launch runs is
// the same bytes at the same guest-physical addresses every time, so a machine that is closed is
// reset to what Create makes (CPU state, RAM, gate, watches, snapshots, counters) and kept, with its
// translation blocks. QEMU looks a block up by the guest-physical address of its code, and a block
// stays right only while that page holds the bytes it was translated from, so every page that held
// code is *retired* with a copy of its bytes: it is no longer marked as code (code_), so no TLB
// entry lets the guest execute it without a fetch fill, and its first fetch fill compares the
// bytes. The same bytes keep the blocks; other bytes drop them (a refused fill, then
// InvalidateRetiredPage) before any of them runs. Guest-visible behaviour is the same as a new
// machine's: a block is a pure function of its address, flags and bytes, so a kept one is the
// block the new machine would translate.
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "machine.h"

namespace minivisor {

namespace {
// Up to four machines per thread, the last one closed taken first. A campaign launches one VM at
// a time, but its launch cache (LAUNCH_CACHE_ENTRIES, also four) closes them unevenly: a launch
// whose guest ended before the stage is closed at once and its eviction later closes nothing,
// while the launch of a new part evicts and closes a kept one. Keeping one machine, a close that
// came while one was kept replaced it, and a later launch found none and built a new emulator
// that translated the whole boot again: 15 emulators in a 6,000-execution TDX campaign, 6 with
// four kept (one for the campaign's snapshot, then the cache's first launches), and 10,635 TCG
// block translations instead of 19,535. Each kept machine holds its translation buffer (up to 64 MiB, touched as
// code is translated) and the RAM its last life wrote (cleared in place): peak RSS of a
// 3,000-execution TDX campaign went from 245 to 278 MB.
constexpr size_t kPooledMachines = 4;
// One thread's kept machines. A worker thread's are closed when it ends. The main thread's
// thread-local objects are destroyed only by exit(), when the kernel is about to take the whole
// address space back: closing them there (uc_close freeing every block, memory region and page
// table of the emulator, one by one) was ~0.6 ms of CPU and ~30 page faults at the end of every
// CLI boot (issue 11, perf), so they are left to the kernel.
struct Pool {
  std::vector<std::unique_ptr<Machine>> machines;
  Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool() {
    if (static_cast<pid_t>(syscall(SYS_gettid)) != getpid()) return;
    for (auto& m : machines) (void)m.release();
  }
};
thread_local Pool g_pool;
// Guests above this are not kept (Poolable). Campaigns, what the pool is for, run small guests.
constexpr uint64_t kMaxPooledMemoryBytes = 1ull << 40;
// Past this many retired pages (their copies are 4 KiB each) the kept code is dropped instead.
constexpr size_t kMaxRetiredPages = 4096;
// Past this many written pages (64 MiB) Retire gives RAM back to the kernel instead of clearing it.
constexpr size_t kMaxPagesClearedInPlace = 16384;

// Poolable keeps only counting-mode, page-gated machines, so the wanted one must be the same kind
// and size, its RAM in the pages it asked for. timeout_us does not matter: a counting-mode run
// ignores it (Machine::Run).
bool Serves(const MachineConfig& pooled, const MachineConfig& wanted) {
  return pooled.memory_bytes == wanted.memory_bytes && pooled.ram_paging == wanted.ram_paging && wanted.count_instructions &&
         wanted.page_gate;
}

bool AllZero(const uint8_t* bytes) {
  uint64_t acc = 0;
  for (size_t i = 0; i < kPageSize; i += 8) {
    uint64_t q;
    std::memcpy(&q, bytes + i, 8);
    acc |= q;
  }
  return acc == 0;
}
}  // namespace

std::unique_ptr<Machine> Machine::TakePooled(const MachineConfig& config, uint64_t* run_area) {
  for (size_t i = g_pool.machines.size(); i-- > 0;) {
    if (!Serves(g_pool.machines[i]->config_, config)) continue;
    std::unique_ptr<Machine> m = std::move(g_pool.machines[i]);
    g_pool.machines.erase(g_pool.machines.begin() + static_cast<std::ptrdiff_t>(i));
    if (!m->Reuse(config, run_area)) return nullptr;  // destroyed; the caller makes a new one
    return m;
  }
  return nullptr;
}

void Machine::Release(std::unique_ptr<Machine> machine) {
  if (!machine || !machine->Poolable()) return;
  machine->Retire();
  if (g_pool.machines.size() == kPooledMachines) g_pool.machines.erase(g_pool.machines.begin());  // the one kept longest is closed
  g_pool.machines.push_back(std::move(machine));
}

bool Machine::Poolable() const {
  // Counting mode only: fast mode adds exact-address code hooks as it scans pages, which a
  // reset could not take back. A RAM window still held by JavaScript would see the next VM.
  // Nor a huge guest: its RAM may find no room in the range kept for large reservations
  // (guest_ram.cc; V8 scatters small mappings over it, and 64 TiB never fits) and then sits below
  // the libraries, where every emulator set up while it was kept had its translation buffer out of
  // reach of this library's helpers.
  return uc_ && pristine_ && !emulator_aborted_ && config_.count_instructions && config_.page_gate && !ram_->shared() &&
         !stub_active_ && config_.memory_bytes <= kMaxPooledMemoryBytes;
}

void Machine::Retire() {
  // Only what the closed VM's JavaScript objects own, and the snapshots' memory: the rest waits
  // for Reuse, so a process that never makes another machine (a CLI boot) pays nothing for it.
  FreeSnapshots();
  next_snapshot_id_ = 1;
  edge_map_ = nullptr;
  edge_slots_ = nullptr;
  area_ = nullptr;
}

void Machine::ClearLife() {
  // Code first, while RAM still holds the bytes it was translated from. A page is in code_va_ once
  // fetched; retired pages not fetched in this life keep the bytes of their own translations.
  if (retired_code_.size() + code_va_.size() > kMaxRetiredPages) {
    InvalidateAllCode();
  } else {
    for (const auto& [page, va] : code_va_) {
      if (retired_code_.count(page)) continue;
      std::unique_ptr<uint8_t[]> bytes;
      const uint8_t* host = ram_->At(page << kPageShift);
      if (written_->Contains(page) && !AllZero(host)) {
        bytes.reset(new uint8_t[kPageSize]);
        std::memcpy(bytes.get(), host, kPageSize);
      }
      retired_code_.emplace(page, std::move(bytes));
    }
  }
  code_->ClearAll();
  code_va_.clear();
  // Code bits, with the bytes they were computed from (a page with bits holds them still: a guest
  // store drops them first), for CodeBitsFor in the next life.
  if (kept_code_bits_.size() + code_bits_.size() > kMaxKeptCodeBits) kept_code_bits_.clear();
  for (auto& [page, bits] : code_bits_) {
    if (!bits) continue;
    KeptCodeBits kept{std::unique_ptr<uint8_t[]>(new uint8_t[kPageSize]), std::move(bits)};
    std::memcpy(kept.bytes.get(), ram_->At(page << kPageShift), kPageSize);
    kept_code_bits_[page] = std::move(kept);
  }
  DropAllCodeBits();  // clears has_code_bits_ too: a bit is set only with its page's code_bits_ entry
  code_bits_drops_.clear();
  ClearCodeCache();

  // RAM back to zeros. Only pages in written_ can hold anything else (snapshots rely on the same).
  // A few are cleared in place, so the next life does not fault them in again (in transparent huge
  // pages a fault clears 2 MiB); more go back to the kernel.
  const std::vector<uint64_t>& written = written_->Members();
  if (written.size() <= kMaxPagesClearedInPlace) {
    for (uint64_t page : written) std::memset(ram_->At(page << kPageShift), 0, kPageSize);
  } else {
    ram_->ForEachRun(0, ram_->size(), [](uint8_t* host, uint64_t, uint64_t len) { madvise(host, len, MADV_DONTNEED); });
    if (populated_) populated_->ClearAll();
  }
  written_->Clear();
  dirty_->Clear();
  zeroed_->Clear();
  tlb_writable_->Clear();
  tracking_dirty_ = false;
  for (auto& space : gate_) for (auto& bm : space) bm->ClearAll();
  for (int sp = 0; sp < 2; sp++) {
    gate_touched_[sp]->Clear();
    gate_changed_[sp]->Clear();
  }
  shadow_valid_->ClearAll();
  shadow_written_.clear();
  stale_shadow_mapping_ = false;

  watch_state_ = WatchState::kOff;
  watch_arm_[0] = watch_arm_[1] = watch_stop_[0] = watch_stop_[1] = 0;
  content_watch_ = ContentWatch();
  content_watch_flush_ = false;
  watch_saved_instruction_limit_ = 0;
  prev_block_ = 0;
  pause_exits_ = false;
  xsetbv_allowed_ = ~0ull;
  debug_register_intercepts_ = 0;
  entry_mode_ = EntryMode::kLong64;
  entry_cs_selector_ = 0;
  entry_cs_base_ = 0;
  exit_pending_ = false;
  run_held_ = false;  // a run InjectRepeating held is the old life's
  fault_kind_ = ExitKind::kNone;
  retired_fault_ = false;
  last_insn_ = ~0ull;
  spin_ = SpinWatch{};
}

bool Machine::Reuse(const MachineConfig& config, uint64_t* area) {
  ClearLife();
  config_ = config;
  area_ = area;
  if (uc_context_restore(uc_, pristine_) != UC_ERR_OK) return false;
  efer_known_ = false;
  FlushTlb();
  counters_ = MemoryCounters{};
  ResetRunArea();
  return true;
}

bool Machine::RetiredCodeStillValid(uint64_t page) {
  auto it = retired_code_.find(page);
  if (it == retired_code_.end()) return true;
  const uint8_t* now = ram_->At(page << kPageShift);
  const bool same = it->second ? std::memcmp(now, it->second.get(), kPageSize) == 0 : AllZero(now);
  if (!same) return false;
  retired_code_.erase(it);  // its code is this life's now (the fill marks the page as code)
  counters_.kept_code_pages++;
  return true;
}

bool Machine::InvalidateRetiredPage() {
  uint64_t page = retired_fault_page_;
  retired_code_.erase(page);
  counters_.dropped_code_pages++;
  // Unicorn drops code by guest-physical range, found through a fetch TLB fill of the linear page:
  // the fill the guest asked for, granted now that the page is no longer retired.
  uc_ctl_remove_cache(uc_, retired_fault_va_, retired_fault_va_ + kPageSize);
  // That fill marks the page as code; if it did not happen, no code of the page may stay.
  if (code_->Test(page)) return true;
  InvalidateAllCode();
  return false;
}

}  // namespace minivisor
