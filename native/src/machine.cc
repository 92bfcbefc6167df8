#include "machine.h"
#include "xcr0.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>

#include "abort_guard.h"
#include "exception_in_flight.h"
#include "mem_operand.h"
#include "populate.h"  // MADV_POPULATE_WRITE on older headers
#include "snapshot.h"
#include "spin_loop.h"

namespace minivisor {

// The registers mirrored in the run area, in x86 encoding order.
static const int kRunAreaRegs[kRegCount] = {
    UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RBX, UC_X86_REG_RSP, UC_X86_REG_RBP,
    UC_X86_REG_RSI, UC_X86_REG_RDI, UC_X86_REG_R8,  UC_X86_REG_R9,  UC_X86_REG_R10, UC_X86_REG_R11,
    UC_X86_REG_R12, UC_X86_REG_R13, UC_X86_REG_R14, UC_X86_REG_R15, UC_X86_REG_RIP, UC_X86_REG_RFLAGS,
};
constexpr uint32_t kTranslationBufferBytes = 64u << 20;
constexpr uint64_t kChunkBytes = 1ull << 30;
// Unicorn's QEMU aborts the process when its memory map holds 4,096 sections
// (qemu/exec.c phys_section_add: assert sections_nb < TARGET_PAGE_SIZE), and each RAM or shadow
// chunk mapped is one: a 64 TiB guest that opened pages in that many GiB (an eager boot with a
// large budget) took node down. Past this many, a chunk is refused instead, with an error.
constexpr uint64_t kMaxMappedChunks = 3840;
// One 4 KiB page of a gate bitmap holds the bits of 32768 guest pages.
constexpr uint64_t kGatePagesPerBitmapPage = kPageSize * 8;
static uint64_t GateBitmapPage(uint64_t page) { return page / kGatePagesPerBitmapPage; }
// The gate bitmaps of a space (Machine::gate_).
enum GateBitmap : int { kReadableBitmap = 0, kWritableBitmap = 1, kCiphertextBitmap = 2, kFetchSupervisorBitmap = 3, kFetchUserBitmap = 4 };

// Special registers, numbered as in src/cpu/registers.ts.
enum SpecialKind { kPlain, kMsr, kMmrBase, kMmrLimit, kMmrSelector };
struct SpecialReg { SpecialKind kind; int uc_id; uint32_t msr; };
static const SpecialReg kSpecialRegs[] = {
    {kPlain, UC_X86_REG_CR0, 0},      {kPlain, UC_X86_REG_CR2, 0},     {kPlain, UC_X86_REG_CR3, 0},
    {kPlain, UC_X86_REG_CR4, 0},      {kPlain, UC_X86_REG_CR8, 0},     {kMsr, 0, 0xC0000080u /* EFER */},
    {kPlain, UC_X86_REG_CS, 0},       {kPlain, UC_X86_REG_SS, 0},      {kPlain, UC_X86_REG_DS, 0},
    {kPlain, UC_X86_REG_ES, 0},       {kPlain, UC_X86_REG_FS, 0},      {kPlain, UC_X86_REG_GS, 0},
    {kPlain, UC_X86_REG_FS_BASE, 0},  {kPlain, UC_X86_REG_GS_BASE, 0},
    {kMmrBase, UC_X86_REG_GDTR, 0},   {kMmrLimit, UC_X86_REG_GDTR, 0},
    {kMmrBase, UC_X86_REG_IDTR, 0},   {kMmrLimit, UC_X86_REG_IDTR, 0},
    {kMmrSelector, UC_X86_REG_TR, 0}, {kMmrBase, UC_X86_REG_TR, 0},    {kMmrLimit, UC_X86_REG_TR, 0},
};
constexpr int kSpecialCount = sizeof(kSpecialRegs) / sizeof(kSpecialRegs[0]);

// The reader of the page walk (page_walk.h).
class GateTableReader {
 public:
  explicit GateTableReader(const Machine* m) : m_(m) {}
  bool ReadEntry(uint64_t gpa, uint64_t* value, const uint8_t** where) {
    if (gpa + 8 > m_->ram_->size()) return false;
    // Page-table pages are read as private memory (the walk strips the marker from table
    // addresses). SNP: APM 2 §15.34.5 treats page-table walks as private when paging is on;
    // TDX guests keep paging structures in private memory (unverified detail, see README).
    if (!m_->Allowed(Space::kPrivate, gpa >> kPageShift, Access::kRead)) return false;
    *where = m_->ram_->At(gpa);
    std::memcpy(value, *where, 8);
    m_->walked_tables_->Insert(gpa >> kPageShift);
    return true;
  }

 private:
  const Machine* m_;
};

Machine::Machine(const MachineConfig& config, uint64_t* area) : area_(area), config_(config) {
  ClearCodeCache();
}

std::unique_ptr<Machine> Machine::Create(const MachineConfig& config, uint64_t* run_area,
                                         std::string* error, uc_err* uc_error) {
  if (std::unique_ptr<Machine> pooled = TakePooled(config, run_area)) {
    *uc_error = UC_ERR_OK;
    return pooled;
  }
  std::unique_ptr<Machine> m(new Machine(config, run_area));
  if (!m->Init(error, uc_error)) return nullptr;
  return m;
}

bool Machine::Init(std::string* error, uc_err* uc_error) {
  *uc_error = UC_ERR_OK;
  auto check = [&](uc_err e, const char* what) {
    if (e == UC_ERR_OK) return true;
    *uc_error = e;
    *error = std::string(what) + ": " + uc_strerror(e);
    return false;
  };
  // The emulator first, guest RAM after it: Unicorn maps its translation buffer when it sets up
  // (the TLB mode, or the first hook), top-down below the libraries, and there it stays within
  // 2 GiB of this library's helpers (guest_ram.cc, MapLazily) even when a guest too large for the
  // range kept for large reservations (a 64 TiB one) is then mapped there too.
  if (!check(uc_open(UC_ARCH_X86, UC_MODE_64, &uc_), "uc_open")) { uc_ = nullptr; return false; }
  // A full TB flush costs time in proportion to the translation buffer (3.7 s for the default
  // 1 GiB on the first flush, 11 ms for 64 MiB, measured on 2.1.1); tiny guests need little.
  if (!check(uc_ctl_set_tcg_buffer_size(uc_, kTranslationBufferBytes), "uc_ctl_set_tcg_buffer_size")) return false;
  if (config_.page_gate && !check(uc_ctl_tlb_mode(uc_, UC_TLB_VIRTUAL), "uc_ctl_tlb_mode(VIRTUAL)")) return false;
  uc_hook h;
  if (!check(uc_hook_add(uc_, &h, UC_HOOK_INSN_INVALID, (void*)OnInvalidInsn, this, 1, 0), "invalid-instruction hook")) return false;
  pages_ = config_.memory_bytes >> kPageShift;
  ram_ = HostMapping::Create(config_.memory_bytes, config_.ram_paging == MachineConfig::RamPaging::kHugePages);
  if (!ram_) { *error = "cannot reserve host address space for guest RAM"; return false; }
  paging_unit_ = config_.ram_paging == MachineConfig::RamPaging::kHugePages ? PagingUnit::kHuge : PagingUnit::kSmall;
  if (config_.ram_paging != MachineConfig::RamPaging::kOnTouch) {
    populated_.reset(new PageBitmap((pages_ >> kFaultAroundShift) + 1));
    if (!populated_->ok()) { *error = "cannot reserve page bitmaps"; return false; }
  }
  for (auto& space : gate_) for (auto& bm : space) bm.reset(new PageBitmap(pages_));
  dirty_.reset(new PageSet(pages_));
  zeroed_.reset(new PageSet(pages_));
  written_.reset(new PageSet(pages_));
  tlb_pages_.reset(new PageSet(pages_));
  // A default boot writes and maps ~18,300 pages; a list that doubled its way there touched ~2.5x
  // its final size in fresh memory (~90 of the boot's page faults). Reserved memory costs nothing
  // until the list grows into it.
  written_->Reserve(kListedPagesReserved);
  tlb_pages_->Reserve(kListedPagesReserved);
  walked_tables_.reset(new PageSet(pages_));
  tlb_writable_.reset(new PageSet(pages_));
  for (int sp = 0; sp < 2; sp++) {
    gate_touched_[sp].reset(new PageSet(GateBitmapPage(pages_) + 1));
    gate_changed_[sp].reset(new PageSet(GateBitmapPage(pages_) + 1));
    if (!gate_touched_[sp]->ok() || !gate_changed_[sp]->ok()) { *error = "cannot reserve page bitmaps"; return false; }
  }
  code_.reset(new PageBitmap(pages_));
  has_code_bits_.reset(new PageBitmap(pages_));
  shadow_valid_.reset(new PageBitmap(pages_));
  if (!shadow_valid_->ok()) { *error = "cannot reserve page bitmaps"; return false; }
  for (auto& space : gate_) for (auto& bm : space) if (!bm->ok()) { *error = "cannot reserve page-gate bitmaps"; return false; }
  if (!dirty_->ok() || !zeroed_->ok() || !written_->ok() || !tlb_pages_->ok() || !walked_tables_->ok() || !tlb_writable_->ok() || !code_->ok() || !has_code_bits_->ok()) { *error = "cannot reserve page bitmaps"; return false; }

  mapped_chunks_.assign((config_.memory_bytes + kChunkBytes - 1) / kChunkBytes, false);
  shadow_chunks_.assign(mapped_chunks_.size(), false);
  if (!config_.page_gate && mapped_chunks_.size() > kMaxMappedChunks) {
    *error = "guest RAM without a page gate is mapped whole, and more than " + std::to_string(kMaxMappedChunks) + " GiB of it is more than the emulator can map";
    return false;
  }
  if (!config_.page_gate && !EnsureMapped(0, pages_)) { *error = "uc_mem_map_ptr failed"; return false; }
  if (config_.page_gate &&
      !check(uc_hook_add(uc_, &h, UC_HOOK_TLB_FILL, (void*)OnTlbFill, this, 1, 0), "TLB-fill hook")) return false;
  if (!check(uc_hook_add(uc_, &h, UC_HOOK_INTR, (void*)OnInterrupt, this, 1, 0), "interrupt hook")) return false;
  if (config_.count_instructions &&
      !check(uc_hook_add(uc_, &h, UC_HOOK_CODE, (void*)OnCode, this, 1, 0), "code hook")) return false;
  stub_page_ = static_cast<uint8_t*>(mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (stub_page_ == MAP_FAILED) { stub_page_ = nullptr; *error = "cannot allocate the guest stub page"; return false; }
  if (!check(uc_mem_map_ptr(uc_, kStubGpa, kPageSize, UC_PROT_ALL, stub_page_), "uc_mem_map_ptr(stub page)")) return false;
  ResetRunArea();
  if (!check(uc_context_alloc(uc_, &pristine_), "uc_context_alloc")) { pristine_ = nullptr; return false; }
  if (!check(uc_context_save(uc_, pristine_), "uc_context_save")) return false;
  return true;
}

void Machine::ResetRunArea() {
  std::memset(area_, 0, kRunAreaSlots * sizeof(uint64_t));
  area_[kSlotInstructionLimit] = ~0ull;
  area_[kSlotBudgetLimit] = ~0ull;
  SyncRegsOut();
}

void Machine::FreeSnapshots() {
  for (auto& [id, s] : snapshots_) RecycleSnapshot(s);
  snapshots_.clear();
  base_snapshot_ = nullptr;
}

void Machine::RecycleSnapshot(Snapshot* s) {
  // The larger one is kept, unless it holds more than a fuzz launch's snapshot would need.
  if (s->Clear() <= Snapshot::kMaxSpareBytes && (!spare_snapshot_ || s->CapacityBytes() > spare_snapshot_->CapacityBytes())) std::swap(s, spare_snapshot_);
  if (!s) return;
  if (s->context) uc_context_free(s->context);
  delete s;
}

Machine::~Machine() {
  watchdog_.reset();  // its thread may stop a run of uc_ until it is joined
  FreeSnapshots();
  if (spare_snapshot_) {
    if (spare_snapshot_->context) uc_context_free(spare_snapshot_->context);
    delete spare_snapshot_;
  }
  // An emulator that aborted mid-translation is left as it is: freeing it could crash the host.
  if (cpu_scratch_) uc_context_free(cpu_scratch_);
  if (in_flight_scratch_) uc_context_free(in_flight_scratch_);
  if (pristine_) uc_context_free(pristine_);
  if (uc_ && !emulator_aborted_) uc_close(uc_);
  if (stub_page_) munmap(stub_page_, kPageSize);
  if (ram_) ram_->Unref();
  if (shadow_) shadow_->Unref();
}

void Machine::set_marker(const MarkerConfig& m) {
  config_.marker = m;
  FlushTlb();
}

// ---- registers ----

void Machine::SyncRegsOut() {
  void* ptrs[kRegCount];
  for (int i = 0; i < kRegCount; i++) ptrs[i] = &area_[kSlotRegs + i];
  uc_reg_read_batch(uc_, const_cast<int*>(kRunAreaRegs), ptrs, kRegCount);
  area_[kSlotDirtyRegs] = 0;
}

uc_err Machine::SyncRegsIn() {
  uint64_t mask = area_[kSlotDirtyRegs];
  if (!mask) return UC_ERR_OK;
  int ids[kRegCount];
  void* ptrs[kRegCount];
  int n = 0;
  for (int i = 0; i < kRegCount; i++) {
    if (mask & (1ull << i)) { ids[n] = kRunAreaRegs[i]; ptrs[n] = &area_[kSlotRegs + i]; n++; }
  }
  area_[kSlotDirtyRegs] = 0;
  return uc_reg_write_batch(uc_, ids, ptrs, n);
}

bool Machine::ReadSpecial(int id, uint64_t* value) {
  if (id < 0 || id >= kSpecialCount) return false;
  SyncRegsIn();
  const SpecialReg& r = kSpecialRegs[id];
  *value = 0;
  if (r.kind == kPlain) return uc_reg_read(uc_, r.uc_id, value) == UC_ERR_OK;
  if (r.kind == kMsr) return ReadMsr(r.msr, value) == UC_ERR_OK;
  uc_x86_mmr mmr{};
  if (uc_reg_read(uc_, r.uc_id, &mmr) != UC_ERR_OK) return false;
  *value = r.kind == kMmrBase ? mmr.base : r.kind == kMmrLimit ? mmr.limit : mmr.selector;
  return true;
}

uc_err Machine::WriteSpecial(int id, uint64_t value) {
  if (id < 0 || id >= kSpecialCount) return UC_ERR_ARG;
  uc_err e = SyncRegsIn();
  if (e != UC_ERR_OK) return e;
  const SpecialReg& r = kSpecialRegs[id];
  // The TLB-fill hook's walk reads only CR0, CR3, CR4 and EFER (an MSR): no other write can
  // change a translation (segment and descriptor-table bases apply before the TLB). The VMSA
  // loads and #PF deliveries of an SNP fuzz execution wrote ~15 registers, most to the value
  // they had (issue 10).
  const bool may_change_paging = r.kind == kMsr || r.uc_id == UC_X86_REG_CR0 || r.uc_id == UC_X86_REG_CR3 || r.uc_id == UC_X86_REG_CR4;
  const CpuPaging before = may_change_paging ? ReadPaging() : CpuPaging{};
  if (r.kind == kPlain) {
    e = uc_reg_write(uc_, r.uc_id, &value);
  } else if (r.kind == kMsr) {
    e = WriteMsr(r.msr, value);
  } else {
    uc_x86_mmr mmr{};
    e = uc_reg_read(uc_, r.uc_id, &mmr);
    if (e != UC_ERR_OK) return e;
    if (r.kind == kMmrBase) mmr.base = value;
    else if (r.kind == kMmrLimit) mmr.limit = static_cast<uint32_t>(value);
    else mmr.selector = static_cast<uint16_t>(value);
    e = uc_reg_write(uc_, r.uc_id, &mmr);
  }
  bool paging_changed = false;
  if (may_change_paging) {
    const CpuPaging after = ReadPaging();
    paging_changed = before.cr0 != after.cr0 || before.cr3 != after.cr3 || before.cr4 != after.cr4 || before.efer != after.efer;
  }
  if (paging_changed || ExecWatchPending()) FlushTlb();
  SyncRegsOut();
  return e;
}

uc_err Machine::ReadMsr(uint32_t index, uint64_t* value) {
  uc_x86_msr msr{index, 0};
  uc_err e = uc_reg_read(uc_, UC_X86_REG_MSR, &msr);
  *value = msr.value;
  return e;
}

uc_err Machine::WriteMsr(uint32_t index, uint64_t value) {
  efer_known_ = false;
  uc_x86_msr msr{index, value};
  return uc_reg_write(uc_, UC_X86_REG_MSR, &msr);
}

CpuPaging Machine::ReadPaging() {
  static const int kIds[3] = {UC_X86_REG_CR0, UC_X86_REG_CR3, UC_X86_REG_CR4};
  CpuPaging p;
  void* values[3] = {&p.cr0, &p.cr3, &p.cr4};
  uc_reg_read_batch(uc_, const_cast<int*>(kIds), values, 3);
  // EFER is read through the emulator's RDMSR helper, a large share of a TLB fill's register
  // reads. In counting mode the guest cannot change it itself (every WRMSR exits to the host,
  // which writes it through WriteMsr), so the value read last stays good until the host writes an
  // MSR or puts back a CPU context. Fast mode hooks WRMSR only where it scanned for it, so it
  // always reads.
  if (!efer_known_ || !config_.count_instructions) {
    ReadMsr(0xC0000080u, &efer_);
    efer_known_ = true;
  }
  p.efer = efer_;
  return p;
}

// ---- page gate ----

bool Machine::Allowed(Space space, uint64_t page, Access access) const {
  int s = static_cast<int>(space);
  if (page >= pages_) return false;
  if (!gate_[s][kReadableBitmap]->Test(page)) return false;
  return access != Access::kWrite || gate_[s][kWritableBitmap]->Test(page);
}

bool Machine::FetchAllowed(Space space, uint64_t page, int cpl) {
  int s = static_cast<int>(space);
  if (page >= pages_) return false;
  bool supervisor = gate_[s][kFetchSupervisorBitmap]->Test(page), user = gate_[s][kFetchUserBitmap]->Test(page);
  if (supervisor == user) return supervisor;
  // The TLB keeps CPL 3 fills apart from the others (QEMU's x86 MMU_USER_IDX), so a fill decided
  // at one CPL is never used at the other.
  return (cpl >= 0 ? cpl : CurrentCpl()) == 3 ? user : supervisor;
}

// A fill made at CPL 3 is either the CPU's own access at CPL 3, a user-mode access (Intel SDM Vol.
// 3A §4.6.1), which QEMU keeps in its MMU_USER_IDX TLB, or an implicit supervisor access made
// while CPL is still 3, which QEMU makes through cpu_ld*_kernel into a kernel TLB: a descriptor
// read for a segment load, far transfer or LAR/LSL/VERR/VERW (load_segment_ra, the GDT or LDT),
// the TSS's stack pointers or I/O bitmap (get_ss_esp_from_tss, check_io). Unicorn's TLB-fill hook
// is not told which TLB (qemu/softmmu/unicorn_vtlb.c unicorn_fill_tlb drops mmu_idx), so a data
// fill of a page the GDT, the LDT or the TSS overlaps is taken as supervisor; every other fill at
// CPL 3 as user. The IDT is not among them: the emulator never reads it (every vector reaches the
// host, whose delivery reads it as the supervisor access it is: deliver.cc), and an instruction
// fetch is never an implicit supervisor access. The host's own stubs (guest_stub.cc) are
// supervisor: the TLB-fill hook does not ask while one runs.
// What this leaves (README, "Limits worth knowing"): an explicit user-mode read or write of a
// supervisor page such a table overlaps is allowed (such a fill never grants execute). And the
// stack accesses QEMU makes for a far CALL, RETF or IRET at CPL 3, and the inner-stack pushes of a
// guest's own call gate (made before CPL changes), go through its kernel TLB (seg_helper.c
// PUSHQ_RA/POPQ_RA are cpu_st/ldq_kernel_ra): a fill for them at CPL 3 is a user-mode one, right
// for the former (the CPU makes them at CPL 3), but the call gate's pushes to a supervisor stack
// fault where the CPU's would not; and an entry a CPL 0 access left in the kernel TLB lets the
// former through a supervisor page where the CPU would fault.
bool Machine::UserModeFill(uint64_t va, Access access) {
  if (access == Access::kFetch) return true;
  const uint64_t page = va & ~(kPageSize - 1);
  static const int kIds[3] = {UC_X86_REG_GDTR, UC_X86_REG_LDTR, UC_X86_REG_TR};
  for (int i = 0; i < 3; i++) {
    uc_x86_mmr table{};
    if (uc_reg_read(uc_, kIds[i], &table) != UC_ERR_OK) continue;
    // A null LDTR or TR names no table (the GDTR has no selector).
    if (kIds[i] != UC_X86_REG_GDTR && (table.selector & ~3u) == 0) continue;
    const uint64_t last = table.base + table.limit;
    if (table.base <= page + (kPageSize - 1) && last >= page) return false;
  }
  return true;
}

int Machine::CurrentCpl() {
  uint64_t cr0 = 0, cs = 0;
  uc_reg_read(uc_, UC_X86_REG_CR0, &cr0);
  if (!(cr0 & 1)) return 0;
  uc_reg_read(uc_, UC_X86_REG_CS, &cs);
  return static_cast<int>(cs & 3);
}

bool Machine::EnsureMapped(uint64_t first_page, uint64_t pages) {
  if (pages == 0) return true;
  uint64_t first = (first_page << kPageShift) / kChunkBytes;
  uint64_t last = (((first_page + pages) << kPageShift) - 1) / kChunkBytes;
  for (uint64_t c = first; c <= last; c++) {
    if (!mapped_chunks_[c] && !MapChunk(*ram_, c, 0, UC_PROT_ALL)) return false;
    mapped_chunks_[c] = true;
  }
  return true;
}

bool Machine::MapChunk(const HostMapping& host, uint64_t chunk, uint64_t address_base, uint32_t perms) {
  if (mapped_chunk_count_ >= kMaxMappedChunks) return false;
  uint64_t base = chunk * kChunkBytes;
  uint64_t len = std::min(kChunkBytes, host.size() - base);
  if (uc_mem_map_ptr(uc_, address_base + base, len, perms, host.At(base)) != UC_ERR_OK) return false;
  mapped_chunk_count_++;
  return true;
}

bool Machine::SetGate(Space space, uint64_t first_page, uint64_t pages, GateAccess access, GateFetch fetch) {
  int s = static_cast<int>(space);
  const bool opens = access != GateAccess::kNone || fetch != kFetchNone;
  // Refusing is always safe; opening a page needs its chunk mapped in Unicorn. If mapping
  // fails the gate stays closed, and the caller is told.
  if (opens && !EnsureMapped(first_page, pages)) return false;
  if (pages == 0) return true;
  // A TLB entry can only hold permissions the gate gave, so a change that takes nothing away
  // (read, write or fetch only added, what a read sees unchanged, no ciphertext shadow in use) needs no
  // flush: a missing permission makes the next such access fill again. Flushing on every accept
  // and PVALIDATE was a large share of an exit's cost (issue 11). Large ranges are not examined.
  // Nor does any change to pages no TLB entry maps (TlbMayHold): a fuzz execution's conversions
  // revoke pages it has not touched since the restore's flush, and each flush cost the refill of
  // the whole working set (issue 10).
  bool flush = true;
  if (pages <= 512 && !stale_shadow_mapping_ && shadow_valid_->Count(first_page, pages) == 0) {
    // Write and ciphertext pages are readable too (the assignments below), so these counts cover
    // every page that loses a permission or changes between plaintext and ciphertext.
    uint64_t readable = gate_[s][kReadableBitmap]->Count(first_page, pages);
    uint64_t writable = gate_[s][kWritableBitmap]->Count(first_page, pages);
    uint64_t ciphertext = gate_[s][kCiphertextBitmap]->Count(first_page, pages);
    switch (access) {
      case GateAccess::kNone: flush = readable != 0; break;
      case GateAccess::kRead: flush = writable != 0 || ciphertext != 0; break;
      case GateAccess::kReadWrite: flush = ciphertext != 0; break;
      case GateAccess::kCiphertext: flush = writable != 0 || ciphertext != readable; break;
    }
    // A fetch permission taken away: an entry may grant execute (OnTlbFill).
    if (!flush && !(fetch & kFetchSupervisor)) flush = gate_[s][kFetchSupervisorBitmap]->Count(first_page, pages) != 0;
    if (!flush && !(fetch & kFetchUser)) flush = gate_[s][kFetchUserBitmap]->Count(first_page, pages) != 0;
  }
  // A stale ciphertext mapping is of another page: it is dropped at the next gate change as before.
  if (flush && !stale_shadow_mapping_ && !TlbMayHold(first_page, pages)) flush = false;
  uint64_t first_bm = GateBitmapPage(first_page), bm_count = GateBitmapPage(first_page + pages - 1) - first_bm + 1;
  if (opens) gate_touched_[s]->InsertRange(first_bm, bm_count);
  if (tracking_dirty_) gate_changed_[s]->InsertRange(first_bm, bm_count);
  gate_[s][kReadableBitmap]->Assign(first_page, pages, access != GateAccess::kNone);
  gate_[s][kWritableBitmap]->Assign(first_page, pages, access == GateAccess::kReadWrite);
  gate_[s][kCiphertextBitmap]->Assign(first_page, pages, access == GateAccess::kCiphertext);
  gate_[s][kFetchSupervisorBitmap]->Assign(first_page, pages, fetch & kFetchSupervisor);
  gate_[s][kFetchUserBitmap]->Assign(first_page, pages, fetch & kFetchUser);
  // The page's state changed: its ciphertext is recomputed on the next shared read.
  shadow_valid_->Assign(first_page, pages, false);
  if (flush) {
    FlushTlb();
    stale_shadow_mapping_ = false;
  }
  return true;
}

bool Machine::WriteShadow(uint64_t page, const uint8_t* data) {
  if (page >= pages_) return false;
  if (!shadow_) {
    shadow_ = HostMapping::Create(ram_->size());
    if (!shadow_) return false;
  }
  uint64_t chunk = (page << kPageShift) / kChunkBytes;
  if (!shadow_chunks_[chunk]) {
    if (!MapChunk(*shadow_, chunk, kShadowBase, UC_PROT_READ)) return false;
    shadow_chunks_[chunk] = true;
  }
  std::memcpy(shadow_->At(page << kPageShift), data, kPageSize);
  shadow_valid_->Set(page);
  shadow_written_.push_back(page);
  // No stale private write translation may bypass the invalidation of the shadow on a write.
  if (TlbMayHold(page, 1)) FlushTlb();
  return true;
}

bool Machine::TlbMayHold(uint64_t first, uint64_t count) {
  if (ExecWatchPending() || tlb_pages_overflow_) return true;
  // The bitmap for small ranges (a word per 64 pages), the member list for large ones.
  if (count / 64 <= tlb_pages_->inserted()) return tlb_pages_->CountIn(first, count) != 0;
  const std::vector<uint64_t>& members = tlb_pages_->Members();  // sorted
  auto it = std::lower_bound(members.begin(), members.end(), first);
  return it != members.end() && *it - first < count;
}

GateAccess Machine::GetGate(Space space, uint64_t page) const {
  int s = static_cast<int>(space);
  if (!gate_[s][kReadableBitmap]->Test(page)) return GateAccess::kNone;
  if (gate_[s][kCiphertextBitmap]->Test(page)) return GateAccess::kCiphertext;
  return gate_[s][kWritableBitmap]->Test(page) ? GateAccess::kReadWrite : GateAccess::kRead;
}

GateFetch Machine::GetGateFetch(Space space, uint64_t page) const {
  int s = static_cast<int>(space);
  return static_cast<GateFetch>((gate_[s][kFetchSupervisorBitmap]->Test(page) ? kFetchSupervisor : 0) |
                                (gate_[s][kFetchUserBitmap]->Test(page) ? kFetchUser : 0));
}

uint64_t Machine::CountGate(Space space, uint64_t first_page, uint64_t pages, GateAccess at_least) const {
  int s = static_cast<int>(space);
  if (at_least == GateAccess::kNone) return pages;
  if (at_least == GateAccess::kCiphertext) return gate_[s][kCiphertextBitmap]->Count(first_page, pages);
  return gate_[s][at_least == GateAccess::kReadWrite ? kWritableBitmap : kReadableBitmap]->Count(first_page, pages);
}

// ---- exits ----

void Machine::SetExit(ExitKind kind) {
  exit_pending_ = true;
  area_[kSlotKind] = static_cast<uint64_t>(kind);
  for (int i = kSlotInsnLength; i <= kSlotInsnBytes; i++) area_[i] = 0;
}

void Machine::RecordInvalidOpcode(const uint8_t* bytes, size_t length) {
  SetExit(ExitKind::kInvalidOpcode);
  uint64_t packed = 0;
  std::memcpy(&packed, bytes, std::min<size_t>(length, 8));
  area_[kSlotInsnBytes] = packed;
  area_[kSlotArg0] = length;
}

bool Machine::RecordTrapped(const TrappedInsn& insn) {
  uint64_t rax = 0, rcx = 0, rdx = 0;
  uc_reg_read(uc_, UC_X86_REG_RAX, &rax);
  uc_reg_read(uc_, UC_X86_REG_RCX, &rcx);
  uc_reg_read(uc_, UC_X86_REG_RDX, &rdx);
  switch (insn.kind) {
    case TrappedKind::kTdcall: SetExit(ExitKind::kTdcall); area_[kSlotArg0] = rax; break;
    case TrappedKind::kPvalidate: SetExit(ExitKind::kPvalidate); area_[kSlotArg0] = rax; break;
    case TrappedKind::kVmgexit: SetExit(ExitKind::kVmgexit); break;
    case TrappedKind::kRmpadjust: SetExit(ExitKind::kRmpadjust); area_[kSlotArg0] = rax; break;
    case TrappedKind::kCpuid:
      SetExit(ExitKind::kCpuid);
      area_[kSlotArg0] = rax & 0xffffffffu;
      area_[kSlotArg1] = rcx & 0xffffffffu;
      break;
    case TrappedKind::kRdmsr: SetExit(ExitKind::kRdmsr); area_[kSlotArg0] = rcx & 0xffffffffu; break;
    case TrappedKind::kWrmsr:
      SetExit(ExitKind::kWrmsr);
      area_[kSlotArg0] = rcx & 0xffffffffu;
      area_[kSlotArg1] = ((rdx & 0xffffffffu) << 32) | (rax & 0xffffffffu);
      break;
    case TrappedKind::kIoIn:
    case TrappedKind::kIoOut: {
      SetExit(insn.kind == TrappedKind::kIoIn ? ExitKind::kIoIn : ExitKind::kIoOut);
      area_[kSlotArg0] = insn.port_in_dx ? (rdx & 0xffff) : insn.port;
      area_[kSlotArg1] = insn.size;
      area_[kSlotArg2] = (insn.string ? 1 : 0) | (insn.rep ? 2 : 0) | (insn.port_in_dx ? 0 : 4) |
                         (uint64_t(insn.address_size) << 3) | (uint64_t(insn.segment) << 5);
      uint64_t mask = insn.size == 1 ? 0xff : insn.size == 2 ? 0xffff : 0xffffffffu;
      area_[kSlotArg3] = insn.kind == TrappedKind::kIoOut && !insn.string ? (rax & mask) : 0;
      break;
    }
    case TrappedKind::kPause: SetExit(ExitKind::kPause); break;
    // Unicorn would execute these from the host's random source and clock; the models give
    // values that follow the run's seed instead (src/cpu/hardware-random.ts, virtual-tsc.ts).
    case TrappedKind::kRandom:
      SetExit(ExitKind::kRandom);
      area_[kSlotArg0] = insn.reg | (static_cast<uint64_t>(insn.operand_bits) << 8) | (insn.seed ? 1ull << 16 : 0);
      break;
    case TrappedKind::kRdtsc: SetExit(ExitKind::kRdtsc); area_[kSlotArg0] = insn.rdtscp ? 1 : 0; break;
    // The emulator has neither SVM nor VMX and would raise #UD for these: the platforms decide
    // what the guest sees (README, "The guest's own SVM instructions").
    case TrappedKind::kSvm: SetExit(ExitKind::kSvm); area_[kSlotArg0] = insn.svm_op; break;
    case TrappedKind::kVmcall: SetExit(ExitKind::kVmcall); break;
    case TrappedKind::kSyscall:
    case TrappedKind::kSysenter:
      SetExit(ExitKind::kSystemCall);
      area_[kSlotArg0] = insn.kind == TrappedKind::kSysenter ? 1 : 0;
      break;
    case TrappedKind::kCacheOrWait:
      SetExit(ExitKind::kCacheOrWait);
      area_[kSlotArg0] = static_cast<uint64_t>(insn.cache_or_wait);
      break;
    case TrappedKind::kRdpmc: SetExit(ExitKind::kRdpmc); break;
    case TrappedKind::kXsetbv: SetExit(ExitKind::kXsetbv); break;
    case TrappedKind::kMovDr:
      SetExit(ExitKind::kMovDr);
      area_[kSlotArg0] = insn.debug_reg | (static_cast<uint64_t>(insn.reg) << 8) | (insn.debug_write ? 1ull << 16 : 0);
      break;
    case TrappedKind::kNone: return false;
  }
  area_[kSlotInsnLength] = insn.length;
  return true;
}

void Machine::RefineFaultAddress() {
  // The operand decoder knows 64-bit code only; elsewhere the page-granular address stays.
  if (CurrentCodeSegment().bits != 64) return;
  uint64_t rip = area_[kSlotRegs + kRegRip];
  uint64_t page = fault_va_ & ~(kPageSize - 1);
  uint64_t exact = 0;
  bool found;
  if (fault_access_ == Access::kFetch) {
    found = ExactFetchFaultAddress(rip, page, &exact);
  } else {
    uint8_t bytes[15] = {0};
    size_t n = FetchInsnBytes(rip, bytes);
    DecoderRegs regs;
    for (int i = 0; i < 16; i++) regs.gpr[i] = area_[kSlotRegs + i];
    regs.rip = rip;
    uc_reg_read(uc_, UC_X86_REG_FS_BASE, &regs.fs_base);
    uc_reg_read(uc_, UC_X86_REG_GS_BASE, &regs.gs_base);
    InsnMemAccesses insn;
    DecodeMemAccesses(bytes, n, regs, &insn);
    found = ExactDataFaultAddress(insn, fault_access_, page, &exact);
    // A non-canonical reference through SS raises #SS(0) instead of #GP(0) (SDM Vol. 3A §3.3.7.1).
    if (fault_kind_ == ExitKind::kException && area_[kSlotArg0] == kGpVector) {
      const MemAccess* access = FaultingDataAccess(insn, fault_access_, page);
      if (access && access->stack) area_[kSlotArg0] = kSsVector;
    }
  }
  if (!found) return;
  if (fault_kind_ == ExitKind::kGateFault) {
    area_[kSlotArg1] = exact;
    // Same 4 KiB page, so the GPA keeps its page and takes the offset (not for a page-walk
    // fault, whose GPA is the page-table page).
    if (!(area_[kSlotArg3] & kGatePageWalk)) area_[kSlotArg0] = (area_[kSlotArg0] & ~(kPageSize - 1)) | (exact & (kPageSize - 1));
    area_[kSlotArg3] |= kGateExactAddress;
  } else if (fault_kind_ == ExitKind::kException) {
    area_[kSlotArg3] = exact;  // #PF: CR2
    area_[kSlotArg2] |= kExcExactAddress;
  }
}

const uint8_t* Machine::CachedCode(uint64_t va_page) const {
  const CodeCacheEntry& e = code_cache_[(va_page >> kPageShift) % kCodeCacheSize];
  return e.va_page == va_page ? e.host : nullptr;
}

const CodeBits* Machine::CodeBitsFor(CodeCacheEntry& e) {
  if (has_code_bits_->Test(e.page)) return e.bits = code_bits_[e.page].get();  // built through another VA
  if (++e.decoded < kCodeBitsAfter) return nullptr;
  auto drops = code_bits_drops_.find(e.page);
  if (drops != code_bits_drops_.end() && drops->second >= kMaxCodeBitsDrops) return nullptr;
  auto& bits = code_bits_[e.page];
  auto kept = kept_code_bits_.find(e.page);
  if (kept != kept_code_bits_.end()) {
    if (std::memcmp(e.host, kept->second.bytes.get(), kPageSize) == 0) {
      bits = std::move(kept->second.bits);
      counters_.kept_code_bits++;
    }
    kept_code_bits_.erase(kept);
  }
  if (!bits) bits.reset(new CodeBits(e.host));
  has_code_bits_->Set(e.page);
  // Establishes the invariant: no TLB entry may still allow writes to the page. A flush inside
  // the code hook only makes later accesses fill again; the running block is not affected.
  FlushTlb();
  return e.bits = bits.get();
}

void Machine::DropCodeBits(uint64_t page, bool guest_write) {
  if (!has_code_bits_->Test(page)) return;
  has_code_bits_->Assign(page, 1, false);
  code_bits_.erase(page);
  ForgetCodeFastPage();
  for (auto& e : code_cache_) {
    if (e.page == page) { e.bits = nullptr; e.decoded = 0; }
  }
  if (guest_write) code_bits_drops_[page]++;
}

void Machine::DropAllCodeBits() {
  for (const auto& [page, bits] : code_bits_) has_code_bits_->Assign(page, 1, false);
  code_bits_.clear();
  ForgetCodeFastPage();
  for (auto& e : code_cache_) { e.bits = nullptr; e.decoded = 0; }
}

Translation Machine::TranslateForHost(uint64_t va, Access access, bool user) {
  Translation t = TranslateForHost(ReadPaging(), va, access);
  return user ? UserAccess(t, access) : t;
}

Translation Machine::TranslateForHost(const CpuPaging& paging, uint64_t va, Access access) {
  GateTableReader reader(this);
  return Translate(paging, config_.marker, va, access, reader);
}

// Reading CR0, CR3 and CR4 was a quarter of the hook's cost per fill (issue 11); a boot's fills are
// nearly all data fills (~180 of 63,000 fetch). So a data fill uses the registers the last fetch
// fill read, which is exact wherever the guest cannot change what the walk uses (CR0.PG and WP,
// CR3, EFER.NXE) without a fetch fill coming first:
// - The host changes registers (and the marker) only between emulations (uc_emu_start), and
//   each starts afresh.
// - In the emulator, what changes CR0.PG/WP or CR3 flushes the whole TLB when paging is or was on
//   (QEMU's cpu_x86_update_cr0/cr3, which MOV to CR, LMSW and VMRUN call) and ends the block, and
//   the next block is then found through get_page_addr_code: a fetch fill, before any data access
//   (machine.h WatchExecution relies on the same). CR3 written with paging off is not walked
//   until a CR0 write turns paging on, which flushes. VMRUN loads CR3 after CR0, so it flushes
//   too while paging is on. EFER is as ReadPaging keeps it.
// - But a task switch (JMP/CALL to a TSS, IRET with NT) loads CR3 and goes on to read descriptors:
//   data fills with no fetch fill between. It is #GP in IA-32e mode (EFER.LMA; QEMU's
//   helper_ljmp_protected, helper_lcall_protected, helper_iret_protected), so the registers are
//   kept with paging off or in IA-32e mode only. Nothing else loads CR3: exceptions never go
//   through a task gate here (Unicorn hands them to OnInterrupt instead of delivering them).
// Fast mode reads them every time, as it reads EFER (ReadPaging).
inline Translation Machine::TranslateForFill(uint64_t va, Access access) {
  if (!fill_paging_valid_) {  // every fetch fill clears it (OnTlbFill)
    const CpuPaging paging = ReadPaging();
    fill_walker_ = PageWalker(paging, config_.marker);
    fill_memo_.Clear();
    bool keep = config_.count_instructions;
    // Fast mode: ReadPaging read EFER just now.
    bool long_mode = paging.paging() && (paging.efer & (1ull << 10));
    if (keep && paging.paging()) {
      // LMA as it is now (ReadPaging's EFER may predate a CR0.PG write that changed it).
      uint64_t efer = 0;
      keep = ReadMsr(0xC0000080u, &efer) == UC_ERR_OK && (efer & (1ull << 10));
      long_mode = keep;
    }
    fill_paging_valid_ = keep;
    fill_long_mode_ = long_mode;
  }
  // IA-32e linear addresses are canonical: bits 63:47 all equal (4-level paging, Intel SDM Vol. 3A
  // §3.3.7.1); any other raises #GP(0) (#SS(0) for a reference through SS: RefineFaultAddress
  // decodes the instruction) before any walk. Without this the walk used bits 47:0 and aliased low memory.
  if (fill_long_mode_ && !IsCanonical48(va)) {
    Translation t;
    t.status = Translation::kNonCanonical;
    return t;
  }
  GateTableReader reader(this);
  // The memo's tables keep their gate and place while the walker is kept: the gate, like the
  // registers, changes only between emulations.
  return fill_walker_.Walk(va, access, reader, &fill_memo_);
}

size_t Machine::FetchInsnBytes(uint64_t rip, uint8_t* out) {
  size_t got = 0;
  while (got < 15) {
    uint64_t va = rip + got;
    Translation t = TranslateForHost(va, Access::kFetch);
    if (t.status != Translation::kOk || t.gpa >= ram_->size()) break;
    size_t in_page = kPageSize - (va & (kPageSize - 1));
    size_t n = std::min(in_page, 15 - got);
    std::memcpy(out + got, ram_->At(t.gpa), n);
    got += n;
  }
  return got;
}

void Machine::ScanForInterceptedInsns(uint64_t va_page, const uint8_t* host_page) {
  if (!scanned_va_pages_.insert(va_page).second) return;
  for (size_t i = 0; i < kPageSize; i++) {
    size_t avail = std::min<size_t>(15, kPageSize - i);
    if (!MayBeIntercepted(host_page + i, avail)) continue;
    // A superset: OnCode decodes again in the mode the instruction runs in.
    TrappedInsn t = DecodeTrapped(host_page + i, avail, 64);
    if (t.kind == TrappedKind::kNone || ArrivesAsInvalidOpcode(t.kind)) continue;
    uint64_t addr = va_page + i;
    if (!hooked_addresses_.insert(addr).second) continue;
    uc_hook h;
    // Only a real instruction start at `addr` ever calls the hook, so candidates inside other
    // instructions cost nothing at run time.
    uc_hook_add(uc_, &h, UC_HOOK_CODE, (void*)OnCode, this, addr, addr);
  }
}

bool Machine::OnTlbFill(uc_engine* uc, uint64_t vaddr, uc_mem_type type, uc_tlb_entry* entry, void* self) {
  Machine* m = static_cast<Machine*>(self);
  m->counters_.tlb_fills++;
  if (type == UC_MEM_FETCH) m->fill_paging_valid_ = false;  // TranslateForFill
  if (m->stub_active_) {
    // While a guest stub runs, its linear pages show the stub page; any other fetch means the
    // CPU is not where the host put it (guest_stub.cc).
    uint64_t page = vaddr & ~(kPageSize - 1);
    for (int i = 0; i < m->stub_va_count_; i++) {
      if (page != m->stub_va_pages_[i]) continue;
      entry->paddr = kStubGpa;
      entry->perms = UC_PROT_ALL;
      return true;
    }
    if (type == UC_MEM_FETCH) { m->stub_stray_fetch_ = true; return false; }
  }
  if (m->host_code_lookup_gpa_ != kNoHostLookup) {
    // The host's own lookup of a page InvalidateCodePages translated: no gate, no watch, nothing
    // the guest did. Refusing it would raise a fault outside any run (Unicorn's tlb_fill is not
    // probing there), and the entry goes with the TLB flush that follows.
    entry->paddr = m->host_code_lookup_gpa_;
    entry->perms = UC_PROT_EXEC;
    m->host_code_lookup_filled_ = true;
    return true;
  }
  Access access = type == UC_MEM_WRITE ? Access::kWrite : type == UC_MEM_FETCH ? Access::kFetch : Access::kRead;
  Translation t = m->TranslateForFill(vaddr, access);
  // A user-mode access (CPL 3) gets less than the supervisor walk gave only for a page some level
  // of which has U/S = 0, a write to one with R/W = 0 while CR0.WP = 0, or a #PF (its error code's
  // U/S bit): only then is the CPL read (paging is on, so CS.RPL is the CPL). A fill at CPL 3 goes
  // to QEMU's user TLB, one at CPL 0-2 to a kernel one, so a fill decided at one CPL is never used
  // at the other (but see UserModeFill). While a host stub runs, every access is supervisor.
  int cpl = -1;
  bool implicit_supervisor = false;
  if (!m->stub_active_ && UserAccessDiffers(t)) {
    uint64_t cs = 0;
    uc_reg_read(uc, UC_X86_REG_CS, &cs);
    cpl = static_cast<int>(cs & 3);
    if (cpl == 3) {
      if (m->UserModeFill(vaddr, access)) {
        t = UserAccess(t, access);
      } else {
        implicit_supervisor = true;
      }
    }
  }
  // A refusal is recorded as the pending fault; Run() reports it if the emulator stops with
  // UC_ERR_EXCEPTION (a probing access that is refused does not stop it).
  auto refuse = [&](ExitKind kind) {
    m->fault_kind_ = kind;
    m->fault_access_ = access;
    m->fault_va_ = vaddr;
    return false;
  };
  if (t.status == Translation::kPageFault) {
    m->fault_[0] = 14;
    m->fault_[1] = t.pf_error;
    m->fault_[2] = kExcHasErrorCode;
    m->fault_[3] = vaddr;
    return refuse(ExitKind::kException);
  }
  if (t.status == Translation::kNonCanonical) {
    m->fault_[0] = kGpVector;  // RefineFaultAddress makes it #SS for a stack reference
    m->fault_[1] = 0;
    m->fault_[2] = kExcHasErrorCode;
    m->fault_[3] = 0;
    return refuse(ExitKind::kException);
  }
  if (t.status == Translation::kTableBlocked) {
    m->fault_[0] = t.blocked_gpa;
    m->fault_[1] = vaddr;
    m->fault_[2] = static_cast<uint64_t>(Access::kRead);
    m->fault_[3] = kGatePrivate | kGatePageWalk | (t.blocked_gpa >= m->ram_->size() ? kGateOutsideRam : 0);
    return refuse(ExitKind::kGateFault);
  }
  uint64_t page = t.gpa >> kPageShift;
  Space space = t.is_private ? Space::kPrivate : Space::kShared;
  // The page's read and write gate, tested once for every check below (Allowed's answers).
  const bool in_ram = t.gpa < m->ram_->size();
  const bool gate_read = in_ram && page < m->pages_ && m->gate_[static_cast<int>(space)][kReadableBitmap]->Test(page);
  const bool gate_write = gate_read && m->gate_[static_cast<int>(space)][kWritableBitmap]->Test(page);
  if (!in_ram || !(access == Access::kFetch ? m->FetchAllowed(space, page, cpl) : access == Access::kWrite ? gate_write : gate_read)) {
    m->fault_[0] = t.gpa & ~(kPageSize - 1);
    m->fault_[1] = vaddr;
    m->fault_[2] = static_cast<uint64_t>(access);
    m->fault_[3] = (t.is_private ? kGatePrivate : 0) | (t.gpa >= m->ram_->size() ? kGateOutsideRam : 0);
    return refuse(ExitKind::kGateFault);
  }
  if (space == Space::kShared && m->gate_[1][kCiphertextBitmap]->Test(page)) {
    // A shared read of a page encrypted with the guest's key sees its ciphertext: the shadow
    // page, which the platform model computes when this fill is first refused.
    if (!m->shadow_valid_->Test(page)) {
      m->fault_[0] = t.gpa & ~(kPageSize - 1);
      m->fault_[1] = vaddr;
      m->fault_[2] = static_cast<uint64_t>(access);
      m->fault_[3] = kGateCiphertext;
      return refuse(ExitKind::kGateFault);
    }
    entry->paddr = kShadowBase + (page << kPageShift);
    entry->perms = UC_PROT_READ;
    m->NoteTlbPage(page);
    return true;
  }
  // A private write makes the ciphertext stale (shared translations of it are dropped at the
  // next TLB flush; WriteShadow flushes, so none outlives a recomputation).
  if (access == Access::kWrite && m->shadow_valid_->Test(page)) {
    m->shadow_valid_->Assign(page, 1, false);
    m->stale_shadow_mapping_ = true;  // a shared TLB entry may still map it: the next SetGate flushes
  }
  if (access == Access::kFetch && m->watch_state_ == WatchState::kWaitingToArm &&
      t.gpa >= m->watch_arm_[0] && t.gpa < m->watch_arm_[1]) {
    m->watch_state_ = WatchState::kArmed;
    // Pages of the stop range fetched before (their earlier contents ran) must come back here on
    // their next fetch: while armed, data fills grant them no execute permission (below). They
    // stay marked as code: their translations remain, and a host write or a restore must still
    // drop those when it changes their bytes (InvalidateCodePages, RestoreSnapshot).
    // And drop every TLB entry, which drops the jump cache too (QEMU's tlb_flush clears
    // cpu->tb_jmp_cache): a block of the stop range translated before this is found through the
    // jump cache by its linear PC with no TLB lookup at all (tb_lookup__cpu_state), and a TLB
    // entry that still grants execute lets a new one be translated with no fill. After the flush
    // every block is found through tb_htable_lookup, whose get_page_addr_code (on both pages of
    // a block that spans two) fills here; a direct jump (goto_tb) only chains blocks whose
    // start is on the page of the jump, and never into a block that spans two pages (tb_find).
    // Not inside this fill: a block that spans a stop page and this arm page would still go into
    // the jump cache after the flush (tb_find adds it once translated) and run again unseen.
    // The fill is refused instead, before anything of the block ran, and Run() flushes and goes
    // on from the same RIP (as for a changed retired page below): the fill is made again then.
    m->arm_restart_ = true;
    m->counters_.tlb_fills--;  // counted once, when the fill is made again
    return false;
  } else if (access == Access::kFetch && m->watch_state_ == WatchState::kArmed &&
             t.gpa >= m->watch_stop_[0] && t.gpa < m->watch_stop_[1] &&
             !(t.gpa >= m->watch_arm_[0] && t.gpa < m->watch_arm_[1])) {  // the stop range less the arm range
    m->watch_state_ = WatchState::kFired;
    m->fault_[0] = vaddr;
    m->fault_[1] = t.gpa;
    m->fault_[2] = 0;
    m->fault_[3] = 0;
    return refuse(ExitKind::kExecWatch);
  }
  // Translations kept from the machine's last life hold only while the page has their bytes
  // (machine_pool.cc). Checked after the execution watch, which is the last reason to refuse the
  // fill, so the fill Run() then makes for the same fetch cannot be refused; nothing below has
  // happened yet. (No fetch gets here while a guest stub runs: the stub branch above returned.)
  if (access == Access::kFetch && !m->retired_code_.empty() && !m->RetiredCodeStillValid(page)) {
    m->retired_fault_ = true;
    m->retired_fault_va_ = vaddr & ~(kPageSize - 1);
    m->retired_fault_page_ = page;
    m->counters_.tlb_fills--;  // counted once, when InvalidateRetiredPage makes the fill for it
    return false;
  }
  // Content the hardware model named foreign (content_watch.h): only private accesses consume it.
  uint32_t watch_perms = UC_PROT_ALL;
  if (!m->content_watch_.empty() && space == Space::kPrivate && !m->stub_active_ && m->content_watch_.Watched(page)) {
    watch_perms = m->WatchedFill(vaddr, page, access);
  }
  // A fetch fill may be of a page the gate lets the CPU fetch from but not read (an SNP VMPL with
  // execute and no read permission): its data accesses come back here and are refused.
  uint32_t perms = access != Access::kFetch || gate_read ? UC_PROT_READ : 0;
  // A guest store to a page with code bits: its bytes may change, so the bits go (code_bits.h).
  // Until then no fill may make the page writable.
  bool has_code_bits = m->has_code_bits_->Test(page);
  if (has_code_bits && access == Access::kWrite && t.writable && gate_write) {
    m->DropCodeBits(page, true);
    has_code_bits = false;
  }
  // Write permission only on a write fill while dirty pages are tracked, so the first write
  // to each page after a snapshot comes back here and is recorded.
  if (t.writable && !has_code_bits && gate_write &&
      (access == Access::kWrite || !m->tracking_dirty_ || m->dirty_->Contains(page))) {
    perms |= UC_PROT_WRITE;
    if (!m->written_->Contains(page)) {
      if (m->populated_) m->FaultAround(page);
      m->written_->Insert(page);
    }
  }
  // Execute permission only on a fetch fill, so every code page is seen here first; and while the
  // execution watch is armed, not on a data fill of its stop range, whose next fetch must stop.
  // Nor on a data fill of a page not fetchable at every CPL: its fetches are decided by a fetch
  // fill, at the CPL they run at (FetchAllowed). Nor on a data fill at CPL 3 taken as an implicit
  // supervisor access (UserModeFill): it may be a user-mode one, and a fetch at CPL 3 never is.
  if (t.executable && (access == Access::kFetch ||
                       (!implicit_supervisor && m->code_->Test(page) &&
                        !(m->watch_state_ == WatchState::kArmed && t.gpa >= m->watch_stop_[0] && t.gpa < m->watch_stop_[1]) &&
                        m->gate_[static_cast<int>(space)][kFetchSupervisorBitmap]->Test(page) &&
                        m->gate_[static_cast<int>(space)][kFetchUserBitmap]->Test(page)))) {
    perms |= UC_PROT_EXEC;
  }
  if (access == Access::kWrite && m->tracking_dirty_) m->dirty_->Insert(page);
  if (access == Access::kFetch) {
    m->code_->Set(page);
    m->code_va_[page] = vaddr;
    const uint8_t* host = m->ram_->At(t.gpa & ~(kPageSize - 1));
    m->code_cache_[(vaddr >> kPageShift) % kCodeCacheSize] = {vaddr, host, page, has_code_bits ? m->code_bits_[page].get() : nullptr, 0};
    m->ForgetCodeFastPage();
    if (!m->config_.count_instructions) m->ScanForInterceptedInsns(vaddr, host);
  }
  entry->paddr = t.gpa & ~(kPageSize - 1);
  entry->perms = static_cast<uc_prot>(perms & watch_perms);
  m->NoteTlbPage(page);
  (void)uc;
  return true;
}

bool Machine::OnInvalidInsn(uc_engine* uc, void* self) {
  Machine* m = static_cast<Machine*>(self);
  if (m->stub_active_) return false;  // RunStub reports it
  uint64_t rip = 0;
  uc_reg_read(uc, UC_X86_REG_RIP, &rip);
  CodeSegment cs = m->CurrentCodeSegment();
  uint8_t buf[15] = {0};
  uint64_t linear = cs.bits == 64 ? rip : (cs.base + rip) & 0xffffffffull;
  // The page the TLB-fill hook last saw fetched at this linear page (as OnCode reads it): no
  // page walk per exit. Otherwise, or across a page end, walk the tables.
  uint64_t offset = linear & (kPageSize - 1);
  const uint8_t* page = m->CachedCode(linear - offset);
  const uint8_t* bytes = buf;
  size_t n;
  if (page && offset + 15 <= kPageSize) {
    bytes = page + offset;
    n = 15;
  } else {
    n = m->FetchInsnBytes(linear, buf);
  }
  TrappedInsn t = DecodeTrapped(bytes, n, cs.bits);
  if (ArrivesAsInvalidOpcode(t.kind) && !t.lock) {
    m->RecordTrapped(t);
    // The code segment these instructions ran in: the models check the mode and CPL of every
    // one, and asking for it again from JavaScript cost a native call per exit (issue 11).
    m->area_[kSlotArg2] = static_cast<uint64_t>(cs.bits);
    m->area_[kSlotArg3] = cs.selector;
  } else {
    m->RecordInvalidOpcode(bytes, n);
  }
  // Not handled: the emulator stops with UC_ERR_INSN_INVALID and RIP at the instruction, in
  // every 2.1.x release (unicorn.md §1 lists how the "handled" return value differs).
  return false;
}

void Machine::OnInterrupt(uc_engine* uc, uint32_t intno, void* self) {
  Machine* m = static_cast<Machine*>(self);
  m->SetExit(ExitKind::kException);
  m->area_[kSlotArg0] = intno;
  // Unicorn does not expose the error code of exceptions it raises itself (unicorn.md §4): see below.
  // INT n, INT3, INTO and traps leave RIP after the instruction; faults leave it at the
  // instruction. In counting mode the code hook saw that instruction start (last_insn_, a linear
  // address), so RIP tells which: INT 14 is then a software interrupt, not a fault. Without it
  // (fast mode) the vector decides, and INT n below 32 but for INT3/INTO reads as a fault.
  bool after = intno == 3 || intno == 4 || intno >= 32;
  const bool insn_known = m->config_.count_instructions && m->last_insn_ != ~0ull;
  CodeSegment cs;
  if (insn_known) {
    uint64_t rip = 0;
    uc_reg_read(uc, UC_X86_REG_RIP, &rip);
    cs = m->CurrentCodeSegment();
    after = (cs.bits == 64 ? rip : (cs.base + rip) & 0xffffffffull) != m->last_insn_;
  }
  // A fault whose vector pushes an error code (Intel SDM Vol. 3A §6.13, Table 6-1) gets 0: QEMU
  // raises every #GP it can outside qemu/target/i386/seg_helper.c with raise_exception_ra, which
  // sets error code 0 (control registers, XSETBV, privileged or misaligned operands); a fault on
  // a selector names it there, which is not exposed and reads as 0 too. Before, the frame had no
  // error code, so a handler that drops one IRETQ'd to the wrong place.
  const bool pushes_error = !after && (intno == 8 || (intno >= 10 && intno <= 13) || intno == 17 || intno == 21);
  m->area_[kSlotArg1] = 0;
  m->area_[kSlotArg2] = (after ? kExcAfterInstruction : 0) | (pushes_error ? kExcHasErrorCode : 0);
  if (after && intno != 1 && insn_known) m->CheckSoftwareInterruptGate(intno, cs);
  if (RecordedInFlight(intno)) m->exception_in_flight_ = true;
  uc_emu_stop(uc);
}

// Once the emulation has returned, not in the hook: the first time, the layout is probed on a
// scratch engine (milliseconds, once per process), which must not run inside another's
// emulation nor under the run's watchdog. A boot that raises no such fault never probes.
void Machine::ForgetExceptionInFlight() {
  exception_in_flight_ = false;
  const ExceptionInFlightLayout& layout = ExceptionInFlight();
  if (layout.offset < 0 || layout.context_bytes != uc_context_size(uc_)) return;
  if (!in_flight_scratch_ && uc_context_alloc(uc_, &in_flight_scratch_) != UC_ERR_OK) { in_flight_scratch_ = nullptr; return; }
  if (uc_context_save(uc_, in_flight_scratch_) != UC_ERR_OK) return;
  ClearExceptionInFlight(layout, in_flight_scratch_);
  uc_context_restore(uc_, in_flight_scratch_);
}

// INT n, INT3 and INTO through a gate whose DPL is below CPL raise #GP with error code
// vector * 8 + 2 (IDT) at the instruction instead (Intel SDM Vol. 3 §6.12.1.1 "Protection of
// Exception- and Interrupt-Handler Procedures", §6.13; AMD APM Vol. 2 §8.9.3): how a kernel keeps
// user code from calling its handlers. Unicorn hands every vector to the hook without looking at
// the gate, so the exit becomes that fault, RIP back at the instruction (last_insn_, counting
// mode only). Vector 1 is left out: INT1 (ICEBP) has no DPL check, and a single-step trap is not
// a software interrupt; INT 01h (CD 01), which has one, is not told apart from them. A gate the
// IDT cannot give is the delivery's to refuse.
void Machine::CheckSoftwareInterruptGate(uint32_t intno, const CodeSegment& cs) {
  const unsigned cpl = cs.selector & 3;
  if (!cs.protected_mode || cpl == 0) return;
  uint8_t gate[16];
  if (!ReadIdtGate(uint8_t(intno), cs.long_mode ? 16 : 8, gate).empty()) return;
  if ((unsigned(gate[5] >> 5) & 3) >= cpl) return;
  const uint64_t rip = cs.bits == 64 ? last_insn_ : (last_insn_ - cs.base) & 0xffffffffull;
  uc_reg_write(uc_, UC_X86_REG_RIP, &rip);
  area_[kSlotArg0] = 13;
  area_[kSlotArg1] = uint64_t(intno) << 3 | 2;
  area_[kSlotArg2] = kExcHasErrorCode;
}

// AFL's edge coverage (lcamtuf, "technical_details.txt"): map[cur ^ prev]++, prev = cur >> 1, with
// cur a hash of the block address. Counts saturate at 255 instead of wrapping to 0.
void Machine::OnBlock(uc_engine*, uint64_t address, uint32_t, void* self) {
  Machine* m = static_cast<Machine*>(self);
  // No map: the hook stays after coverage ends, and a pooled machine keeps it (SetEdgeMap).
  if (m->stub_active_ || !m->edge_map_) return;  // the host's segment-load stub is not guest coverage
  uint64_t cur = ((address ^ (address >> 15)) * 0x9e3779b97f4a7c15ull) >> 48;
  uint32_t index = static_cast<uint32_t>((cur ^ m->prev_block_) & (kEdgeMapBytes - 1));
  uint8_t* slot = &m->edge_map_[index];
  if (*slot == 0 && m->edge_slots_) m->edge_slots_[++m->edge_slots_[0]] = index;
  if (*slot != 0xff) ++*slot;
  m->prev_block_ = cur >> 1;
}

bool Machine::SetEdgeMap(uint8_t* map, uint32_t* slots) {
  edge_map_ = map;
  edge_slots_ = map ? slots : nullptr;
  prev_block_ = 0;
  // The hook stays once added (OnBlock does nothing without a map): a machine taken from the pool
  // had it in its last life, so the code it kept calls it and no flush is needed.
  if (!map || block_hook_in_all_code_) return true;
  if (!block_hook_ && uc_hook_add(uc_, &block_hook_, UC_HOOK_BLOCK, (void*)OnBlock, this, 1, 0) != UC_ERR_OK) {
    edge_map_ = nullptr;
    edge_slots_ = nullptr;
    block_hook_ = 0;
    return false;
  }
  // Blocks translated before the hook existed would not call it.
  uc_ctl_flush_tb(uc_);
  retired_code_.clear();
  block_hook_in_all_code_ = true;
  return true;
}

void Machine::ResetEdges() {
  if (edge_map_ && edge_slots_) {
    // Only the slots hit: a few hundred stores instead of 64 KiB.
    for (uint32_t i = 1, n = edge_slots_[0]; i <= n; i++) edge_map_[edge_slots_[i]] = 0;
    edge_slots_[0] = 0;
  } else if (edge_map_) {
    std::memset(edge_map_, 0, kEdgeMapBytes);
  }
  prev_block_ = 0;
}

// Counting mode calls this before every guest instruction, so its common case is kept to a few
// loads and compares with no stack frame (it was ~69 host instructions per guest instruction, a
// quarter of a fuzz execution's time in the emulator, then ~45; issue 10): an instruction below
// code_fast_stop_ (so within budget, in counting mode, no stub running) on the page OnCodeFull last
// found code bits for, which its page's bits say cannot be intercepted, is counted and let through,
// whether it is a new one or a REP string step run again at the same address (a fifth of a
// kernel-stage fuzz execution's instructions are such steps, issue 10). Everything else (and every
// state change that case does not make) is OnCodeFull's, which starts from scratch, so both give
// the same result.
void Machine::OnCode(uc_engine* uc, uint64_t address, uint32_t size, void* self) {
  Machine* m = static_cast<Machine*>(self);
  uint64_t* a = m->area_;
  const uint64_t n = a[kSlotInstructions];
  const uint64_t offset = address - m->code_fast_va_;
  if (n < m->code_fast_stop_ && offset < CodeBits::kCovered) {
    // Run again, OnCodeFull charges nothing for an architectural repeat and counts it.
    const uint64_t* pass = m->code_fast_pass_;
    if (address == m->last_insn_) pass += 64;
    if ((pass[offset >> 6] >> (offset & 63)) & 1) {
      m->last_insn_ = address;
      a[kSlotInstructions] = n + 1;
      return;
    }
  }
  OnCodeFull(uc, address, m);
}

void Machine::OnCodeFull(uc_engine* uc, uint64_t address, Machine* m) {
  if (m->stub_active_) return;  // the host's own stub: not guest instructions
  uint64_t* a = m->area_;
  uint64_t offset = address & (kPageSize - 1);
  CodeCacheEntry& entry = m->code_cache_[(address >> kPageShift) % kCodeCacheSize];
  uint8_t buf[15];
  const uint8_t* bytes = nullptr;
  size_t avail = 0;
  auto fetch = [&] {
    if (entry.va_page == address - offset && offset + 15 <= kPageSize) {
      bytes = entry.host + offset;
      avail = 15;
    } else {
      avail = m->FetchInsnBytes(address, buf);
      bytes = buf;
    }
  };
  if (m->config_.count_instructions) {
    // The page's precomputed answers when it has them (code_bits.h): the same as decoding.
    auto code_bits = [&]() -> const CodeBits* {
      if (entry.va_page != address - offset || !CodeBits::Covers(offset)) return nullptr;
      return entry.bits ? entry.bits : m->CodeBitsFor(entry);
    };
    uint64_t n = a[kSlotInstructions];
    if (address == m->last_insn_) {
      const CodeBits* bits = code_bits();
      bool repeats;
      if (bits) {
        repeats = bits->Repeats(offset);
      } else {
        fetch();
        repeats = RepeatsInPlace(bytes, avail);
      }
      if (!repeats) {
        a[kSlotCharged] += kRetranslateCharge;
        m->UpdateCodeFastStop();
      }
    }
    m->last_insn_ = address;
    if (OverBudget(n, a[kSlotInstructionLimit], a[kSlotCharged], a[kSlotBudgetLimit])) {
      // The content watch borrows this check (zero cost while nothing is watched): not a budget stop.
      m->FinishWatchFlush();
      if (OverBudget(n, a[kSlotInstructionLimit], a[kSlotCharged], a[kSlotBudgetLimit])) {
        m->SetExit(ExitKind::kBudget);
        a[kSlotArg0] = n;
        uc_emu_stop(uc);
        return;
      }
    }
    a[kSlotInstructions] = n + 1;
    // Not by its length: redundant prefixes pad any intercepted form up to 15 bytes (a CPUID
    // as 66 66 66 66 0F A2 ran natively when instructions over 5 bytes were let through).
    const CodeBits* bits = code_bits();
    if (bits) {
      // OnCode's page from now on: the entry's, which has bits.
      m->code_fast_va_ = address - offset;
      m->code_fast_pass_ = bits->pass_words();
      if (!bits->MayIntercept(offset)) return;
    }
  }
  if (!bytes) fetch();
  if (!MayBeIntercepted(bytes, avail)) return;
  // Rare path: the operand size and REX depend on the code segment (`address` is linear).
  TrappedInsn t = DecodeTrapped(bytes, avail, m->CurrentCodeSegment().bits);
  if (t.kind == TrappedKind::kNone || ArrivesAsInvalidOpcode(t.kind)) return;
  // LOCK on an instruction that cannot take it is #UD (SDM Vol. 2A §2.1.1; APM Vol. 3 §1.2.5), a
  // fault of the decode, before any intercept. The emulator runs CPUID, RDTSC, RDMSR, port I/O and
  // the like with it, so the run stops here with the #UD the CPU raises.
  if (t.lock) {
    m->RecordInvalidOpcode(bytes, avail);
    uc_emu_stop(uc);
    return;
  }
  if (t.kind == TrappedKind::kPause && !m->pause_exits_) {
    if (m->config_.count_instructions) m->SkipPureSpinRounds(address);
    return;
  }
  if (t.kind == TrappedKind::kXsetbv) {
    // Runs on the emulated CPU unless it has a bit outside xsetbv_allowed_ or a combination the
    // CPU refuses and QEMU does not (xcr0.h): then the platform gives the #GP.
    uint64_t rax = 0, rdx = 0;
    uc_reg_read(uc, UC_X86_REG_RAX, &rax);
    uc_reg_read(uc, UC_X86_REG_RDX, &rdx);
    const uint64_t value = (rdx & 0xffffffffull) << 32 | (rax & 0xffffffffull);
    if ((value & ~m->xsetbv_allowed_) == 0 && (!(value & 1) || Xcr0CombinationLegal(value))) return;
  }
  // A MOV DR the platform does not intercept runs on the emulated CPU, with its own checks.
  if (t.kind == TrappedKind::kMovDr && !((m->debug_register_intercepts_ >> (t.debug_reg + (t.debug_write ? 16 : 0))) & 1)) return;
  m->RecordTrapped(t);
  uc_emu_stop(uc);  // a code hook's stop takes effect before the instruction executes
}

void Machine::SkipPureSpinRounds(uint64_t address) {
  uint64_t* a = area_;
  uint64_t n = a[kSlotInstructions];
  uint64_t charged = a[kSlotCharged];
  SpinWatch& s = spin_;
  if (s.round != 0 && address != s.pause && address >= s.head && address < s.end) return;  // another PAUSE of the loop
  if (address != s.pause || s.round == 0 || n - s.instructions != s.round || charged != s.charged) {
    // A PAUSE not seen a round ago: is it in a pure spin loop, and how long is a round?
    s = SpinWatch{address, 0, 0, n, charged, 0, 0};
    uint8_t bytes[15];
    size_t avail = FetchInsnBytes(address, bytes);
    if (!PureSpinHead(bytes, avail, address, &s.head, &s.end)) return;
    avail = s.head == address ? avail : FetchInsnBytes(s.head, bytes);
    s.round = PureSpinRound(bytes, avail, s.head, address);
    return;
  }
  s.instructions = n;
  if (++s.rounds < kSpinRoundsBeforeSkip || charged >= a[kSlotBudgetLimit]) return;
  // The run stops before the first instruction counted at `stop` or more (OverBudget). Nothing in
  // the loop charges, so `stop` stays put; keep at least one round to emulate, so the stop itself,
  // at whatever instruction of the round it falls, happens the ordinary way.
  uint64_t stop = std::min(a[kSlotInstructionLimit], a[kSlotBudgetLimit] - charged);
  if (stop <= n || stop - n <= 2ull * s.round) return;
  uint64_t skipped = ((stop - n) / s.round - 1) * s.round;
  a[kSlotInstructions] = n + skipped;
  s.instructions = n + skipped;
}

uc_err Machine::RefuseAbortedEmulator() {
  SetExit(ExitKind::kFatal);
  area_[kSlotArg0] = kFatalEmulatorAbort;
  return UC_ERR_OK;
}

uc_err Machine::Run() {
  if (run_held_) {  // the run InjectRepeating stopped at (deliver.cc): its exit is in the run area
    run_held_ = false;
    area_[kSlotInstructions] = held_instructions_;
    return held_run_result_;
  }
  if (emulator_aborted_) return RefuseAbortedEmulator();
  uc_err e = SyncRegsIn();
  if (e != UC_ERR_OK) return e;
  exit_pending_ = false;
  fault_kind_ = ExitKind::kNone;
  area_[kSlotKind] = 0;
  uint64_t rip = area_[kSlotRegs + kRegRip];
  last_insn_ = ~0ull;
  spin_ = SpinWatch{};
  if (config_.count_instructions) area_[kSlotCharged] += kExitCharge;
  if (config_.count_instructions && OverBudget(area_[kSlotInstructions], area_[kSlotInstructionLimit], area_[kSlotCharged], area_[kSlotBudgetLimit])) {
    SetExit(ExitKind::kBudget);
    area_[kSlotArg0] = area_[kSlotInstructions];
    return UC_ERR_OK;
  }
  // Only where nothing else can stop a guest (fast mode): a run that never exits. The watchdog
  // rather than uc_emu_start's own timeout, which starts a thread on every call (run_watchdog.h).
  const uint64_t timeout = config_.count_instructions ? 0 : config_.timeout_us;
  if (timeout) {
    if (!watchdog_) watchdog_.reset(new RunWatchdog(uc_));
    watchdog_->Arm(timeout);
  }
  {
    sigjmp_buf abort_env;
    AbortGuard guard(&abort_env);
    // savemask 0: saving the signal mask is a system call on every run, ~9% of an exit's cost
    // (issue 11). The SIGABRT handler runs with SA_NODEFER, so jumping out of it leaves the mask
    // as abort() left it: SIGABRT unblocked, which it is in a running emulator anyway.
    if (sigsetjmp(abort_env, 0) != 0) {
      emulator_aborted_ = true;
    } else {
      retired_fault_ = false;
      arm_restart_ = false;
      // until = 0: the emulator treats reaching address 0 as an exit, and skips the per-start TB
      // invalidation it does for any other `until` (unicorn.md §5).
      fill_paging_valid_ = false;  // TranslateForFill: the host may have written registers
      UpdateCodeFastStop();  // so may the limits and charges
      e = uc_emu_start(uc_, rip, 0, 0, 0);
      // A refused fetch of a changed retired page (RetiredCodeStillValid): drop its code and go
      // on from where the CPU stopped, as if the fetch had filled at once. Or the fetch that armed
      // the execution watch: drop every TLB entry and go on. Nothing of the guest ran past the
      // stop, and this is the same run (no exit charge, the same last instruction).
      while ((retired_fault_ || arm_restart_) && e == UC_ERR_EXCEPTION && !exit_pending_) {
        fault_kind_ = ExitKind::kNone;
        FinishWatchFlush();
        if (arm_restart_) {
          arm_restart_ = false;
          FlushTlb();
        } else {
          retired_fault_ = false;
          // A refused fill there (not expected) is the run's fault, as the guest's own fill's.
          if (!InvalidateRetiredPage() && fault_kind_ != ExitKind::kNone) break;
        }
        uc_reg_read(uc_, UC_X86_REG_RIP, &rip);
        fill_paging_valid_ = false;
        UpdateCodeFastStop();
        e = uc_emu_start(uc_, rip, 0, 0, 0);
      }
    }
  }
  const bool timed_out = timeout && watchdog_->Disarm();
  FinishWatchFlush();  // the run ended before the instruction after a watched access started
  if (emulator_aborted_) return RefuseAbortedEmulator();
  if (exception_in_flight_) ForgetExceptionInFlight();
  SyncRegsOut();
  if (exit_pending_) return UC_ERR_OK;
  if (area_[kSlotRegs + kRegRip] == 0) {
    // Address 0 is the run's `until`; the emulator stops there with nothing to report.
    SetExit(ExitKind::kFatal);
    area_[kSlotArg0] = kFatalNullJump;
    return UC_ERR_OK;
  }
  if (e == UC_ERR_EXCEPTION && fault_kind_ != ExitKind::kNone) {
    SetExit(fault_kind_);
    for (int i = 0; i < 4; i++) area_[kSlotArg0 + i] = fault_[i];
    RefineFaultAddress();
    return UC_ERR_OK;
  }
  if (e == UC_ERR_OK) {
    if (timed_out) {
      SetExit(ExitKind::kFatal);
      area_[kSlotArg0] = kFatalTimeout;
      return UC_ERR_OK;
    }
    SetExit(ExitKind::kHlt);
    return UC_ERR_OK;
  }
  SetExit(ExitKind::kFatal);
  area_[kSlotArg0] = kFatalUnicorn;
  area_[kSlotArg1] = e;
  return UC_ERR_OK;
}

void Machine::WatchExecution(uint64_t arm_begin, uint64_t arm_end, uint64_t stop_begin, uint64_t stop_end) {
  watch_arm_[0] = arm_begin;
  watch_arm_[1] = arm_end;
  watch_stop_[0] = stop_begin;
  watch_stop_[1] = stop_end;
  watch_state_ = WatchState::kWaitingToArm;
  // Fetches are seen at TLB fills: start from an empty TLB.
  FlushTlb();
}

// ---- host access ----

void Machine::InvalidateAllCode() {
  uc_ctl_flush_tb(uc_);
  retired_code_.clear();
  // Code pages are re-learnt from fetch fills, so the TLB must forget its execute permissions.
  FlushTlb();
  code_->ClearAll();
  code_va_.clear();
  DropAllCodeBits();
  scanned_va_pages_.clear();
}

void Machine::InvalidateCodePages(uint64_t first, uint64_t count) {
  if (!code_->Count(first, count)) return;
  bool rescan = false;
  for (uint64_t page = first; page < first + count; page++) {
    if (!code_->Test(page)) continue;
    auto va = code_va_.find(page);
    if (va == code_va_.end()) { InvalidateAllCode(); return; }
    Translation t = TranslateForHost(va->second, Access::kFetch);
    if (t.status != Translation::kOk || (t.gpa >> kPageShift) != page) { InvalidateAllCode(); return; }
    // The page stays marked as code: its TLB entry may still allow execution.
    host_code_lookup_gpa_ = page << kPageShift;
    uc_ctl_remove_cache(uc_, va->second, va->second + kPageSize);
    host_code_lookup_gpa_ = kNoHostLookup;
    DropCodeBits(page, false);
    rescan = true;
  }
  // Fast mode finds the intercepted instructions of a page when a fetch fills it: a TLB entry
  // that still grants execute would run the new bytes unscanned (a CPUID written by the host ran
  // natively), so the next fetch must come back through the fill, and find its linear page not
  // yet scanned. code_va_ keeps one linear address per page, and the page may be mapped at
  // others too: every linear page is scanned anew (hooked_addresses_ keeps hooks from doubling).
  // And an entry the lookups above filled went past the page gate and the content watch: the
  // guest must not use it.
  bool stale_exec = rescan && !scanned_va_pages_.empty() && TlbMayHold(first, count);
  if (rescan) scanned_va_pages_.clear();
  if (stale_exec || host_code_lookup_filled_) FlushTlb();
  host_code_lookup_filled_ = false;
}

// A boot writes its workload page after page (64 MiB: 16,000 pages, each its own page fault), so
// the first write the TLB-fill hook grants to a page populates the unit around it with one
// MADV_POPULATE_WRITE. In huge pages the unit is the 2 MiB page, while the host hands them over
// quickly: on a host that gives free memory back to its hypervisor (free page reporting, as this
// one's balloon device does) a 2 MiB page it has taken back costs 2.5-25 ms of CPU to populate
// instead of ~0.2-0.4. 4 KiB pages (MADV_NOHUGEPAGE, populated 64 KiB at a time) come mostly from
// memory freed a moment ago and still backed, but each then costs its first touch as well: under
// a hypervisor that shadows the page tables (PVM), ~8 us of the thread's time per page, invisible
// to a timer around the madvise, ~4.5 ms per 2 MiB. Which is cheaper depends on the host, so
// after one slow 2 MiB page, 4 KiB pages go on trial: a few units, each timed with a write to
// every page (an atomic OR of zero: no byte changes), and they stay only when they cost less than
// half the slow 2 MiB page (about half of the 2 MiB pages in a slow spell are slow); else RAM
// goes back to huge pages for good. Only the host's work changes: populated pages read as zeros,
// as they would have unpopulated.
void Machine::FaultAround(uint64_t page) {
  static std::atomic<bool> unsupported{false};  // a kernel before 5.14: EINVAL, and never again
  if (populated_->Test(page >> kFaultAroundShift) || unsupported.load(std::memory_order_relaxed)) return;
  const bool huge = paging_unit_ == PagingUnit::kHuge || paging_unit_ == PagingUnit::kHugeKept;
  const bool timed = paging_unit_ == PagingUnit::kHuge || paging_unit_ == PagingUnit::kSmallTrial;
  const uint64_t unit_pages = huge ? kHugeUnitPages : 1ull << kFaultAroundShift;
  const uint64_t first = page & ~(unit_pages - 1), count = std::min(unit_pages, pages_ - first);
  populated_->Assign(first >> kFaultAroundShift, (count + (1ull << kFaultAroundShift) - 1) >> kFaultAroundShift, true);
  timespec before{}, after{};
  if (timed) clock_gettime(CLOCK_THREAD_CPUTIME_ID, &before);
  // One unit never straddles two pieces of the mapping (pieces are at least 1 GiB).
  if (madvise(ram_->At(first << kPageShift), count << kPageShift, MADV_POPULATE_WRITE) != 0) {
    if (errno == EINVAL) unsupported.store(true, std::memory_order_relaxed);
    return;
  }
  if (!timed) return;
  if (paging_unit_ == PagingUnit::kSmallTrial) {
    for (uint64_t p = first; p < first + count; p++) __atomic_fetch_or(ram_->At(p << kPageShift), uint8_t{0}, __ATOMIC_RELAXED);
  }
  // This thread's CPU time, not the wall clock: a run preempted by other work must not count.
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &after);
  const int64_t ns = (after.tv_sec - before.tv_sec) * 1000000000ll + (after.tv_nsec - before.tv_nsec);
  if (paging_unit_ == PagingUnit::kHuge) {
    if (ns <= kSlowHugePageNs) return;
    slow_huge_page_ns_ = ns;
    small_trial_ns_ = 0;
    small_trial_pages_ = 0;
    paging_unit_ = PagingUnit::kSmallTrial;
    SetHugePages(false);
    return;
  }
  small_trial_ns_ += ns;
  small_trial_pages_ += count;
  if (small_trial_pages_ < kSmallTrialPages) return;
  const int64_t small_per_huge_page = small_trial_ns_ * static_cast<int64_t>(kHugeUnitPages) / static_cast<int64_t>(small_trial_pages_);
  if (2 * small_per_huge_page < slow_huge_page_ns_) {
    paging_unit_ = PagingUnit::kSmall;
  } else {
    paging_unit_ = PagingUnit::kHugeKept;
    SetHugePages(true);
  }
}

void Machine::SetHugePages(bool on) {
  ram_->ForEachRun(0, ram_->size(), [on](uint8_t* host, uint64_t, uint64_t len) { madvise(host, len, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE); });
}

void Machine::ForgetPopulated(uint64_t first_page, uint64_t count) {
  if (!populated_ || count == 0) return;
  const uint64_t first = first_page >> kFaultAroundShift, last = (first_page + count - 1) >> kFaultAroundShift;
  populated_->Assign(first, last - first + 1, false);
}

void Machine::NoteWritten(uint64_t first, uint64_t count) {
  written_->InsertRange(first, count);
  if (tracking_dirty_) dirty_->InsertRange(first, count);
}

void Machine::NoteHostWrite(uint64_t gpa, uint64_t length) {
  if (length == 0) return;
  uint64_t first = gpa >> kPageShift;
  uint64_t last = (gpa + length - 1) >> kPageShift;
  NoteWritten(first, last - first + 1);
  InvalidateCodePages(first, last - first + 1);
}

void Machine::Fill(uint64_t gpa, uint64_t length, uint8_t byte) {
  const HostMapping& ram = *ram_;
  auto set = [&](uint64_t at, int value, uint64_t n) {
    ram.ForEachRun(at, n, [&](uint8_t* host, uint64_t, uint64_t len) { std::memset(host, value, len); });
  };
  auto discard = [&](uint64_t at, uint64_t n) {
    ram.ForEachRun(at, n, [](uint8_t* host, uint64_t, uint64_t len) { madvise(host, len, MADV_DONTNEED); });
    ForgetPopulated(at >> kPageShift, n >> kPageShift);
  };
  uint64_t first_page = (gpa + kPageSize - 1) & ~(kPageSize - 1);
  uint64_t end_page = (gpa + length) & ~(kPageSize - 1);
  if (byte != 0 || end_page <= first_page || !config_.page_gate) {
    if (byte == 0 && end_page > first_page) {
      set(gpa, 0, first_page - gpa);
      discard(first_page, end_page - first_page);
      set(end_page, 0, gpa + length - end_page);
    } else {
      set(gpa, byte, length);
    }
    NoteHostWrite(gpa, length);
    return;
  }
  if (first_page > gpa) {
    set(gpa, 0, first_page - gpa);
    NoteHostWrite(gpa, first_page - gpa);
  }
  if (gpa + length > end_page) {
    set(end_page, 0, gpa + length - end_page);
    NoteHostWrite(end_page, gpa + length - end_page);
  }
  // Whole pages: only those that may hold data need zeroing, the others read as zeros already.
  // Up to a 2 MiB unit's worth of them are cleared in place: handing them to the kernel instead
  // costs a page fault and a kernel page clear each when the guest (or a snapshot restore)
  // touches them again, which a fuzz execution converting a 2 MiB buffer did ~1,000 times (a few
  // ms). More are given back to the kernel, so they cost no memory (TDX ACCEPT zeroes every page).
  uint64_t first = first_page >> kPageShift, count = (end_page - first_page) >> kPageShift;
  uint64_t written = written_->CountIn(first, count);
  if (written == 0) return;
  constexpr uint64_t kZeroInPlacePages = 512;
  bool in_place = written <= kZeroInPlacePages;
  if (!in_place) discard(first_page, end_page - first_page);
  // A page that is not dirty holds exactly the base snapshot's content (restores rely on the same),
  // which for most pages of a fuzz execution is a few non-zero words: those are cleared instead of
  // the page, and the page is recorded as zeroed rather than dirty, so the next restore writes the
  // words back without clearing the page first. Clearing each page in full twice was most of
  // Fill's and of RestoreSnapshot's time (~230 pages per steady-state TDX execution, issue 10).
  const bool from_snapshot = in_place && tracking_dirty_ && base_snapshot_;
  size_t held_from = 0;
  for (uint64_t p = first; p < first + count; p++) {
    if (!written_->Contains(p)) continue;
    uint8_t* host = ram.At(p << kPageShift);
    if (from_snapshot && !dirty_->Contains(p) && !tlb_writable_->Contains(p)) {
      base_snapshot_->ZeroHeld(p, host, &held_from);
      zeroed_->Insert(p);
    } else {
      if (in_place) std::memset(host, 0, kPageSize);
      if (tracking_dirty_) dirty_->Insert(p);
      // A dirty page may still have a writable TLB entry, through which the guest writes it again
      // without a TLB fill, so without being noted as written: it stays written (a later Fill
      // zeroes it again, snapshots and the pool's reset cover it) rather than hide that data.
      if (TlbMayHold(p, 1)) continue;
    }
    written_->Erase(p);
  }
  InvalidateCodePages(first, count);
}

uint64_t Machine::dirty_pages() {
  uint64_t n = dirty_->inserted();
  for (uint64_t p : zeroed_->Members()) n += !dirty_->Contains(p);
  return n;
}

// ---- several vCPUs on one emulator ----

namespace {
struct CpuStateHeader {
  uint64_t entry_cs_base;
  uint16_t entry_cs_selector;
  uint8_t entry_mode;
  uint8_t pad[5];
};
}  // namespace

size_t Machine::CpuStateBytes() const { return sizeof(CpuStateHeader) + uc_context_size(uc_); }

bool Machine::SaveCpuState(uint8_t* out) {
  if (emulator_aborted_) return false;
  SyncRegsIn();
  if (!cpu_scratch_ && uc_context_alloc(uc_, &cpu_scratch_) != UC_ERR_OK) { cpu_scratch_ = nullptr; return false; }
  if (uc_context_save(uc_, cpu_scratch_) != UC_ERR_OK) return false;
  CpuStateHeader h{entry_cs_base_, entry_cs_selector_, static_cast<uint8_t>(entry_mode_), {}};
  std::memcpy(out, &h, sizeof h);
  // The context is a flat copy of the emulator's CPU state (uc_context_save copies the env),
  // so its bytes can be held elsewhere and put back into this same engine.
  std::memcpy(out + sizeof h, cpu_scratch_, uc_context_size(uc_));
  return true;
}

bool Machine::LoadCpuState(const uint8_t* in) {
  if (emulator_aborted_) return false;
  if (!cpu_scratch_ && uc_context_alloc(uc_, &cpu_scratch_) != UC_ERR_OK) { cpu_scratch_ = nullptr; return false; }
  CpuStateHeader h;
  std::memcpy(&h, in, sizeof h);
  std::memcpy(cpu_scratch_, in + sizeof h, uc_context_size(uc_));
  efer_known_ = false;
  if (uc_context_restore(uc_, cpu_scratch_) != UC_ERR_OK) return false;
  entry_cs_base_ = h.entry_cs_base;
  entry_cs_selector_ = h.entry_cs_selector;
  entry_mode_ = static_cast<EntryMode>(h.entry_mode);
  // Another CPU: its own CR3 and paging mode, so no translation of the last one may be used.
  FlushTlb();
  ClearCodeCache();
  last_insn_ = ~0ull;
  prev_block_ = 0;
  SyncRegsOut();
  return true;
}

// ---- snapshots ----

uint64_t Machine::TakeSnapshot() {
  SyncRegsIn();
  std::unique_ptr<Snapshot> s(spare_snapshot_ ? spare_snapshot_ : new Snapshot);
  spare_snapshot_ = nullptr;
  if (!s->context && uc_context_alloc(uc_, &s->context) != UC_ERR_OK) return 0;
  if (uc_context_save(uc_, s->context) != UC_ERR_OK) { uc_context_free(s->context); s->context = nullptr; return 0; }
  // Only pages that may hold data: the rest read as zeros (plain Unicorn memory, a benchmark
  // baseline, is written without the TLB-fill hook, so there the kernel says what is resident).
  std::vector<uint64_t> held;
  if (config_.page_gate) held = written_->Members(); else ResidentPages(*ram_, &held);
  const std::vector<uint64_t>* touched[2] = {&gate_touched_[0]->Members(), &gate_touched_[1]->Members()};
  // The base's copy of a page is still right when nothing wrote the page since the base was taken
  // or restored, which restores rely on too: not dirty, not zeroed by Fill, and no TLB entry kept
  // by a restore may have written it unseen. Likewise a gate-bitmap page no gate change touched.
  const Snapshot* base = config_.page_gate && tracking_dirty_ && base_snapshot_ && base_snapshot_->stores.size() < Snapshot::kMaxStores ? base_snapshot_ : nullptr;
  std::vector<const SnapshotPage*> unchanged;
  std::vector<const SnapshotGatePage*> unchanged_gate[2];
  std::vector<uint8_t> shareable;
  std::vector<uint32_t> placed;
  if (base) {
    std::vector<uint64_t> referenced(base->stores.size(), 0);
    unchanged.assign(held.size(), nullptr);
    size_t from = 0;
    for (size_t i = 0; i < held.size(); i++) {
      const uint64_t p = held[i];
      if (dirty_->Contains(p) || zeroed_->Contains(p) || tlb_writable_->Contains(p)) continue;
      if ((unchanged[i] = base->Find(p, &from))) referenced[unchanged[i]->store] += Snapshot::BytesOf(*unchanged[i]);
    }
    for (int sp = 0; sp < 2; sp++) {
      unchanged_gate[sp].assign(touched[sp]->size(), nullptr);
      from = 0;
      for (size_t i = 0; i < touched[sp]->size(); i++) {
        const uint64_t index = (*touched[sp])[i];
        if (gate_changed_[sp]->Contains(index)) continue;
        if ((unchanged_gate[sp][i] = base->FindGatePage(sp, index, &from))) referenced[unchanged_gate[sp][i]->store] += Snapshot::kGatePageBytes;
      }
    }
    // A store is shared while at least half of it is still of use; the pages of one mostly
    // superseded are copied, so copies nothing refers to any more are not kept alive.
    shareable.resize(referenced.size());
    for (size_t k = 0; k < referenced.size(); k++) shareable[k] = referenced[k] * 2 >= base->stores[k]->Bytes();
    placed.assign(referenced.size(), Snapshot::kNotShared);
  }
  size_t gate_copies = 0;
  for (int sp = 0; sp < 2; sp++) {
    for (size_t i = 0; i < touched[sp]->size(); i++) gate_copies += !(base && unchanged_gate[sp][i] && shareable[unchanged_gate[sp][i]->store]);
  }
  s->Reserve(held.size(), gate_copies);
  for (size_t i = 0; i < held.size(); i++) {
    const SnapshotPage* c = base ? unchanged[i] : nullptr;
    if (c && shareable[c->store]) {
      s->Share(held[i], *base, *c, &placed);
    } else {
      s->Add(held[i], ram_->At(held[i] * kPageSize));
      counters_.snapshot_copied_pages++;
    }
  }
  for (int sp = 0; sp < 2; sp++) {
    // Gate-bitmap pages never opened hold no set bits.
    for (size_t i = 0; i < touched[sp]->size(); i++) {
      const uint64_t index = (*touched[sp])[i];
      const SnapshotGatePage* c = base ? unchanged_gate[sp][i] : nullptr;
      if (c && shareable[c->store]) {
        s->ShareGatePage(sp, index, *base, *c, &placed);
        continue;
      }
      const uint8_t* bitmaps[kGateBitmaps];
      for (int bm = 0; bm < kGateBitmaps; bm++) bitmaps[bm] = reinterpret_cast<const uint8_t*>(gate_[sp][bm]->words()) + index * kPageSize;
      s->AddGatePage(sp, index, bitmaps);
    }
    gate_changed_[sp]->Clear();
  }
  s->instructions = area_[kSlotInstructions];
  s->charged = area_[kSlotCharged];
  s->instruction_limit = area_[kSlotInstructionLimit];
  s->budget_limit = area_[kSlotBudgetLimit];
  s->content_watch = content_watch_;
  tracking_dirty_ = true;
  dirty_->Clear();
  zeroed_->Clear();
  tlb_writable_->Clear();
  base_snapshot_ = s.get();
  FlushTlb();  // writes must come back through the TLB-fill hook to be tracked
  uint64_t id = next_snapshot_id_++;
  snapshots_[id] = s.release();
  return id;
}

uint32_t Machine::GateBitsOf(uint64_t page) const {
  uint32_t bits = 0;
  for (int sp = 0; sp < 2; sp++) {
    for (int bm = 0; bm < kGateBitmaps; bm++) bits |= uint32_t(gate_[sp][bm]->Test(page)) << (sp * kGateBitmaps + bm);
  }
  return bits;
}

// Every TLB entry was filled since the last full flush, so it maps a page of tlb_pages_ through
// tables of walked_tables_, with the paging registers as they are now (the emulator flushes itself
// when the guest changes them, and the host's writes that change them flush: WriteSpecial), and
// grants no more than the gate gives now (SetGate flushes when it takes a permission from a page
// the TLB may hold). A restore of the base snapshot keeps each entry right if it leaves those
// registers, tables and gate bits as they are, watches no page an entry maps, changes nothing else
// a fill decides by (ciphertext shadows, the execution watch, the stub), and if the pages an entry
// may write stay tracked (tlb_writable_).
// Refilling the working set after every restore was ~40% of a fuzz execution's TLB fills, each
// ~1,500 host instructions, most of them QEMU's cpu_restore_state (issue 10).
bool Machine::TlbMayOutliveRestore(const Snapshot& s, std::vector<GateProbe>* probes) {
  if (&s != base_snapshot_ || !config_.page_gate || !config_.count_instructions) return false;
  if (tlb_pages_overflow_ || ExecWatchPending() || stub_active_ || stale_shadow_mapping_ || !shadow_written_.empty()) return false;
  for (uint64_t table : walked_tables_->Members()) {
    if (dirty_->Contains(table) || zeroed_->Contains(table) || tlb_writable_->Contains(table)) return false;
  }
  // No entry maps a page watched when it was filled (content_watch_fill.cc: such an entry lasts one
  // instruction, and a run ends with it flushed), nor one watched since (WatchContent flushes); a
  // page the snapshot's watch watches must come back to WatchedFill.
  if (content_watch_flush_) return false;
  if (!s.content_watch.empty()) {
    for (uint64_t page : tlb_pages_->Members()) {
      if (s.content_watch.Watched(page)) return false;
    }
  }
  if (gate_changed_[0]->inserted() == 0 && gate_changed_[1]->inserted() == 0) return true;
  auto probe = [&](uint64_t page) {
    const uint64_t bm = GateBitmapPage(page);
    if (gate_changed_[0]->Contains(bm) || gate_changed_[1]->Contains(bm)) probes->push_back({page, GateBitsOf(page)});
  };
  for (uint64_t page : tlb_pages_->Members()) probe(page);
  for (uint64_t table : walked_tables_->Members()) probe(table);
  return true;
}

bool Machine::RestoreSnapshot(uint64_t id) {
  auto found = snapshots_.find(id);
  if (found == snapshots_.end()) return false;
  run_held_ = false;
  Snapshot* s = found->second;
  std::vector<GateProbe> gate_probes;
  bool keep_tlb = TlbMayOutliveRestore(*s, &gate_probes);
  CpuPaging paging_before;
  if (keep_tlb) {
    efer_known_ = false;
    paging_before = ReadPaging();
  }
  // Pages a kept TLB entry may have written unseen since the last restore are put back too.
  for (uint64_t p : tlb_writable_->Members()) dirty_->Insert(p);
  std::vector<uint64_t> code_pages;
  // Pages are restored in ascending order in each pass (PageSet::Members is sorted): the snapshot's
  // page list is searched from where the last page was found.
  size_t held_from = 0;
  // `zero`: the page reads as zeros (Fill cleared it and nothing wrote it since).
  auto restore_page = [&](uint64_t page, bool zero = false) {
    uint8_t* dst = ram_->At(page * kPageSize);
    counters_.restored_pages++;
    if (s->Put(page, dst, &held_from, zero)) {
      written_->Insert(page);
    } else if (!zero) {
      std::memset(dst, 0, kPageSize);
    }
    if (code_->Test(page)) code_pages.push_back(page);
  };
  // One 4 KiB page of each gate bitmap of a space: the snapshot's copy, or zeros if it had none.
  auto restore_gate_page = [&](int sp, uint64_t index) {
    const SnapshotGatePage* held = s->FindGatePage(sp, index);
    for (int bm = 0; bm < kGateBitmaps; bm++) {
      uint8_t* dst = gate_[sp][bm]->WritablePage(index);
      if (held) std::memcpy(dst, s->GateBitmapPage(*held, bm), kPageSize);
      else std::memset(dst, 0, kPageSize);
    }
  };
  if (s == base_snapshot_) {
    // Only pages written and gate state changed since this snapshot was taken or last restored
    // can differ: the work follows them, not the guest size.
    std::vector<uint64_t> dirty = dirty_->Members();
    for (uint64_t p : dirty) restore_page(p);
    held_from = 0;
    for (uint64_t p : zeroed_->Members()) {
      if (!dirty_->Contains(p)) restore_page(p, true);
    }
    for (int sp = 0; sp < 2; sp++) {
      for (uint64_t index : gate_changed_[sp]->Members()) restore_gate_page(sp, index);
    }
  } else {
    std::vector<uint64_t> current;
    if (config_.page_gate) current = written_->Members(); else ResidentPages(*ram_, &current);
    for (uint64_t p : current) restore_page(p);
    held_from = 0;
    for (uint64_t p : s->pages) restore_page(p);
    for (int sp = 0; sp < 2; sp++) {
      std::vector<uint64_t> touched = gate_touched_[sp]->Members();
      for (uint64_t index : touched) restore_gate_page(sp, index);
      for (uint64_t index : s->gate_pages[sp]) {
        restore_gate_page(sp, index);
        gate_touched_[sp]->Insert(index);
      }
    }
  }
  for (int sp = 0; sp < 2; sp++) gate_changed_[sp]->Clear();
  // Ciphertext shadows are recomputed from the restored RAM on the next shared read.
  for (uint64_t p : shadow_written_) shadow_valid_->Assign(p, 1, false);
  shadow_written_.clear();
  uc_context_restore(uc_, s->context);
  efer_known_ = false;
  // After the context, so the page tables the VA lookups use are the restored ones.
  for (uint64_t page : code_pages) InvalidateCodePages(page, 1);
  area_[kSlotInstructions] = s->instructions;
  area_[kSlotCharged] = s->charged;
  area_[kSlotInstructionLimit] = s->instruction_limit;
  area_[kSlotBudgetLimit] = s->budget_limit;
  content_watch_ = s->content_watch;
  area_[kSlotForeignReads] = content_watch_.pending().size();
  content_watch_flush_ = false;  // the flush below drops every entry
  if (keep_tlb) {
    const CpuPaging after = ReadPaging();
    keep_tlb = after.cr0 == paging_before.cr0 && after.cr3 == paging_before.cr3 && after.cr4 == paging_before.cr4 && after.efer == paging_before.efer;
    for (size_t i = 0; keep_tlb && i < gate_probes.size(); i++) keep_tlb = GateBitsOf(gate_probes[i].page) == gate_probes[i].bits;
  }
  if (!keep_tlb) FlushTlb();
  // Pages written since the snapshot that a TLB entry may still map, writable or not (a flush above,
  // or in InvalidateCodePages, leaves none).
  tlb_writable_->Clear();
  for (uint64_t p : dirty_->Members()) {
    if (tlb_pages_->Contains(p) || tlb_pages_overflow_) tlb_writable_->Insert(p);
  }
  tracking_dirty_ = true;
  dirty_->Clear();
  zeroed_->Clear();
  base_snapshot_ = s;
  SyncRegsOut();
  return true;
}

void Machine::ForgetSnapshot(uint64_t id) {
  auto it = snapshots_.find(id);
  if (it == snapshots_.end()) return;
  Snapshot* s = it->second;
  snapshots_.erase(it);
  if (base_snapshot_ == s) base_snapshot_ = nullptr;
  RecycleSnapshot(s);
}

}  // namespace minivisor
