// One emulated x86-64 vCPU with its guest RAM and page gate: the "hardware" under the VMM.
//
// KVM-style: Run() executes the guest until something needs the VMM (a trapped instruction, a
// refused memory access, an exception, the instruction budget) and describes it in the run
// area. No JavaScript ever runs inside a Unicorn hook: hooks only record the exit and stop.
#pragma once
#include <unicorn/unicorn.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "budget.h"
#include "code_bits.h"
#include "content_watch.h"
#include "guest_ram.h"
#include "page_walk.h"
#include "run_watchdog.h"
#include "trapped_insn.h"

namespace minivisor {

// Numbering shared with src/cpu/exits.ts.
enum class ExitKind : uint64_t {
  kNone = 0,
  kHlt = 1,
  kTdcall = 2,
  kPvalidate = 3,
  kVmgexit = 4,
  kInvalidOpcode = 5,
  kCpuid = 6,
  kRdmsr = 7,
  kWrmsr = 8,
  kIoIn = 9,
  kIoOut = 10,
  kGateFault = 11,
  kException = 12,
  kBudget = 13,
  kFatal = 14,
  kRmpadjust = 15,
  kPause = 16,  // only with SetPauseExits(true): a spin-wait hint for the vCPU scheduler
  kExecWatch = 17,
  kRandom = 18,  // RDRAND/RDSEED: arg0 = destination | operand bits << 8 | RDSEED << 16
  kRdtsc = 19,   // RDTSC or (arg0 = 1) RDTSCP before it runs
  kSvm = 20,     // 0F 01 D8-DF before it runs: arg0 = ModRM & 7 (0 VMRUN .. 7 INVLPGA)
  kVmcall = 21,  // 0F 01 C1 before it runs
  kSystemCall = 22,  // SYSCALL/SYSENTER before it runs: arg0 = 1 for SYSENTER
  kCacheOrWait = 23,  // INVD/WBINVD/WBNOINVD/MONITOR/MWAIT before it runs: arg0 = CacheOrWaitOp
  kRdpmc = 24,   // RDPMC (0F 33) before it runs
  kXsetbv = 25,  // XSETBV (0F 01 D1) before it runs, only for an EDX:EAX with a bit outside SetXsetbvAllowed's mask
  kMovDr = 26,   // MOV to/from DR0-DR7 before it runs, only when SetDebugRegisterIntercepts names it: arg0 = DR | GPR << 8 | write << 16
};

// Slots of the run area shared with JavaScript (a BigUint64Array). Keep in sync with
// src/cpu/run-area.ts.
enum RunSlot : int {
  kSlotKind = 0,
  kSlotInsnLength = 1,
  kSlotArg0 = 2,
  kSlotArg1 = 3,
  kSlotArg2 = 4,
  kSlotArg3 = 5,
  kSlotInsnBytes = 6,
  kSlotInstructions = 7,   // instructions started since creation (counting mode)
  kSlotRegs = 8,           // RAX RCX RDX RBX RSP RBP RSI RDI R8..R15 RIP RFLAGS
  kRegCount = 18,
  kSlotDirtyRegs = 26,     // bit i set by JS: register i was changed and must be written back
  kSlotInstructionLimit = 27,  // counting mode: stop with kBudget when kSlotInstructions reaches it
  kSlotCharged = 28,       // host work charged beyond instructions (budget.h)
  kSlotBudgetLimit = 29,   // counting mode: stop with kBudget when instructions + charged reach it
  kSlotHostResult = 30,    // a host call's 64-bit result beside its return value (translate: the GPA)
  kSlotForeignReads = 31,  // foreign-content reads recorded and not yet taken (content_watch.h)
  kRunAreaSlots = 32,
};

// Run-area register indexes (after kSlotRegs) used by the host.
constexpr int kRegRsp = 4, kRegRip = 16, kRegRflags = 17;

enum class Space : uint8_t { kPrivate = 0, kShared = 1 };
// kCiphertext (shared space only): reads are allowed and see the page's ciphertext, held in a
// shadow the platform model fills (SEV-SNP: a C=0 read of a guest-encrypted page).
enum class GateAccess : uint8_t { kNone = 0, kRead = 1, kReadWrite = 2, kCiphertext = 3 };
// Which CPLs may fetch instructions from a page, apart from its read permission (an SEV-SNP VMPL's
// Execute-Supervisor and Execute-User permissions: AMD APM Vol. 2 §15.36.7). A mask: bit 0 CPL 0-2,
// bit 1 CPL 3. TDX pages are fetchable exactly when readable (kAny with any opening access).
enum GateFetch : uint8_t { kFetchNone = 0, kFetchSupervisor = 1, kFetchUser = 2, kFetchAny = 3 };
// Bitmaps of the page gate per space (Machine::gate_).
constexpr int kGateBitmaps = 5;
// Guest-physical base of the ciphertext shadow in Unicorn's physical address space: above the
// largest guest RAM (64 TiB) and below the 52-bit physical limit.
constexpr uint64_t kShadowBase = 1ull << 47;
// The guest stub's page (guest_stub.cc): above guest RAM and the ciphertext shadow (each at
// most 64 TiB), so no guest translation ever reaches it.
constexpr uint64_t kStubGpa = 1ull << 48;

// Gate-fault flags (arg3).
constexpr uint64_t kGatePrivate = 1;
constexpr uint64_t kGatePageWalk = 2;
constexpr uint64_t kGateOutsideRam = 4;
// arg1 (GVA) is the exact linear address of the refused access, and arg0 (GPA) is exact too
// unless kGatePageWalk (then it stays the table page). Without it both are the page.
constexpr uint64_t kGateExactAddress = 8;
// A shared read of a kCiphertext page whose shadow is not computed yet.
constexpr uint64_t kGateCiphertext = 16;

// Exception vectors (arg0) the machine raises itself besides #PF.
constexpr uint64_t kSsVector = 12;  // #SS
constexpr uint64_t kGpVector = 13;  // #GP

// Exception flags (arg2).
constexpr uint64_t kExcHasErrorCode = 1;
constexpr uint64_t kExcAfterInstruction = 2;  // INT n / INT3: RIP is past the instruction
constexpr uint64_t kExcExactAddress = 4;      // #PF: CR2 (arg3) is exact, not just the page

// Fatal reasons (arg0).
constexpr uint64_t kFatalNullJump = 1;
constexpr uint64_t kFatalUnicorn = 2;
constexpr uint64_t kFatalTimeout = 3;
constexpr uint64_t kFatalEmulatorAbort = 4;  // the emulator aborted; the machine is unusable

// Where the vCPU starts (SetEntryState). Numbering shared with src/cpu/machine.ts.
enum class EntryMode : uint8_t {
  kLong64 = 0,       // Unicorn's own reset state: 64-bit mode with paging off (no real CPU starts here)
  kProtected32 = 1,  // 32-bit protected mode, flat CS/SS (selector 0), paging off: a TD vCPU
  kReal16 = 2,       // real mode with a given CS selector and base: the reset state in an SNP VMSA
};

// The code segment the vCPU executes in, as far as the host can tell (see CodeSegment()).
struct CodeSegment {
  int bits = 64;       // 16, 32 or 64
  bool long_mode = true;   // IA-32e (EFER.LMA)
  bool protected_mode = true;  // CR0.PE
  uint16_t selector = 0;
  uint64_t base = 0;
};

struct MachineConfig {
  uint64_t memory_bytes = 0;
  bool count_instructions = true;
  // false: plain Unicorn memory with no TLB-fill hook, for benchmark baselines only.
  bool page_gate = true;
  // Fast mode only (no instruction counting, so no budget): a wall-clock guard against a guest
  // that never exits. 0 = none. Non-deterministic by nature, so it ends the run as fatal.
  uint64_t timeout_us = 0;
  // How the host backs guest RAM (MachineOptions.ramPaging): 4 KiB pages faulted in on first
  // touch; the same with the first write to a page populating its 64 KiB; or transparent huge
  // pages (MADV_HUGEPAGE) populated 2 MiB at a time while the host hands them over quickly, then
  // as fault-around (Machine::FaultAround).
  enum class RamPaging { kOnTouch, kFaultAround, kHugePages };
  RamPaging ram_paging = RamPaging::kHugePages;
  MarkerConfig marker;
};

class Snapshot;

class Machine {
 public:
  // Returns nullptr and sets *error (and *uc_error when Unicorn refused) on failure.
  static std::unique_ptr<Machine> Create(const MachineConfig& config, uint64_t* run_area,
                                         std::string* error, uc_err* uc_error);
  // Closes a machine. A healthy counting-mode machine is kept (one per thread) and handed to the
  // next Create with the same size and modes, reset to what a new one is but for the emulator's
  // translated code, which a fresh launch would otherwise translate again (machine_pool.cc).
  static void Release(std::unique_ptr<Machine> machine);
  ~Machine();
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  uint64_t memory_bytes() const { return ram_->size(); }
  HostMapping* ram() const { return ram_; }
  uint64_t* run_area() const { return area_; }
  const MarkerConfig& marker() const { return config_.marker; }
  void set_marker(const MarkerConfig& m);

  // Runs until the next exit. Returns a Unicorn error only for host-side failures.
  uc_err Run();
  uc_err RefuseAbortedEmulator();

  // Registers outside the run area. `id` is the index in kSpecialRegs (machine.cc).
  bool ReadSpecial(int id, uint64_t* value);
  uc_err WriteSpecial(int id, uint64_t value);
  uc_err ReadMsr(uint32_t index, uint64_t* value);
  uc_err WriteMsr(uint32_t index, uint64_t value);
  void SyncRegsOut();        // Unicorn -> run area
  uc_err SyncRegsIn();       // dirty run-area registers -> Unicorn

  // Page gate. Ranges are in pages; callers check bounds.
  // False when it would open a page whose RAM chunk the emulator cannot map (kMaxMappedChunks): nothing changed.
  bool SetGate(Space space, uint64_t first_page, uint64_t pages, GateAccess access, GateFetch fetch);
  GateAccess GetGate(Space space, uint64_t page) const;
  GateFetch GetGateFetch(Space space, uint64_t page) const;
  uint64_t CountGate(Space space, uint64_t first_page, uint64_t pages, GateAccess at_least) const;

  // Host-side writes to guest RAM: mark pages dirty (for restore) and drop translated code
  // that was built from them.
  void NoteHostWrite(uint64_t gpa, uint64_t length);
  // Fills guest RAM from the host. Zeroing whole pages gives them back to the kernel instead of
  // writing them: they read as zeros again and cost no memory (TDX ACCEPT zeroes every page).
  void Fill(uint64_t gpa, uint64_t length, uint8_t byte);
  // Stores the ciphertext of one guest page in its shadow (kCiphertext gate); shared reads of
  // the page see it until the page is written through a private translation or its gate changes.
  bool WriteShadow(uint64_t page, const uint8_t* data);
  // Translates a guest-virtual address with the current paging mode, without gate checks.
  // `user`: as a user-mode access (page_walk.h UserAccess); the host's own accesses are supervisor.
  Translation TranslateForHost(uint64_t va, Access access, bool user = false);
  // With the paging registers read already (a delivery's accesses read them once).
  Translation TranslateForHost(const CpuPaging& paging, uint64_t va, Access access);

  // Delivers an exception or interrupt through the guest's IDT (IA-32e and protected mode) or
  // IVT (real mode), as the CPU would in the mode it runs in. Returns "" or a reason. `cr2` (if
  // not null) is loaded first, as a #PF or #VC does.
  std::string Inject(uint8_t vector, bool has_error_code, uint64_t error_code, const uint64_t* cr2 = nullptr, bool resume = false);
  // Inject, for the gate-fault exit in the run area, then, while the guest's next run ends in the
  // very same exit again with no instruction started, the same delivery again (a fault storm: see
  // deliver.cc). Returns the last delivery's failure or ""; kSlotHostResult = the deliveries made
  // after the first << 1 | 1 when a run that ended otherwise is held (its exit) for the next Run().
  std::string InjectRepeating(uint8_t vector, bool has_error_code, uint64_t error_code, const uint64_t* cr2, bool resume = false);
  // Raises CPL, from the host, to the DPL of the code descriptor `descriptor`, loaded as CS =
  // `selector` with that hidden state, and SS = NULL: what SYSCALL and SYSENTER do from CPL > 0
  // in IA-32e mode (their caller then writes the SS selector, RIP, RSP and RFLAGS they set). No
  // other register changes. Returns "" or a reason.
  std::string EnterInnerPrivilege(uint16_t selector, uint64_t descriptor);
  // Sets XCR0 to `value`, as the reset state and VMRUN from a VMSA set it (Unicorn has no register
  // for it): the guest CPU runs an XSETBV in the stub page, CR4.OSXSAVE set for that instant. An
  // illegal value fails as XSETBV would (#GP); returns "" or the reason.
  std::string WriteXcr0(uint64_t value);
  // Puts the vCPU into an architectural entry state. `cs_selector`/`cs_base` are used by kReal16.
  // Control registers, EFER, RIP and GPRs are left for the caller (the platform) to set.
  std::string SetEntryState(EntryMode mode, uint16_t cs_selector, uint64_t cs_base);
  // The current code segment: mode from CR0/EFER, size and base from the descriptor its
  // selector names (Unicorn does not expose the hidden part of segment registers).
  CodeSegment CurrentCodeSegment();

  // Several vCPUs on this one emulator (src/cpu/vcpu-set.ts): the architectural state of the
  // vCPU that is running is saved into a flat blob and another's loaded, so every vCPU shares
  // RAM, the page gate and the translated code. A blob holds the CPU context and the entry
  // state's hidden CS; it is only valid in the machine that saved it.
  size_t CpuStateBytes() const;
  bool SaveCpuState(uint8_t* out);
  bool LoadCpuState(const uint8_t* in);
  // PAUSE (F3 90) ends a run with kPause before it executes (counting mode): how spin-waits
  // reach the scheduler, as PAUSE-loop exiting does on VMX. Off by default.
  void SetPauseExits(bool on) { pause_exits_ = on; }
  // XSETBV runs on the emulated CPU (its own #UD/#GP checks and XCR0 write) unless EDX:EAX sets a
  // bit outside `mask`: then it ends the run with kXsetbv before it executes. All ones (the
  // default): never. A TD's XSETBVs all exit to the TDX module, which refuses bits outside XFAM
  // and otherwise does the XSETBV itself (td_xsetbv.c): src/platform/tdx/td-module.ts.
  void SetXsetbvAllowed(uint64_t mask) { xsetbv_allowed_ = mask; }
  // MOV to or from a debug register runs on the emulated CPU unless `mask` names it, laid out as
  // the VMCB's first intercept word (APM Vol. 2 Appendix B, VMCB offset 000h: bits 15:0 reads of
  // DR0-15, bits 31:16 writes): then it ends the run with kMovDr before it executes. 0 (none) by
  // default; an SNP guest's VMM intercepts DR7 (src/platform/snp/snp-cpu.ts).
  void SetDebugRegisterIntercepts(uint32_t mask) { debug_register_intercepts_ = mask; }

  // Snapshots are owned by the machine and named by id, so a JavaScript handle that outlives
  // its machine can never reach freed memory. TakeSnapshot returns 0 on failure.
  uint64_t TakeSnapshot();
  // A run InjectRepeating held (deliver.cc): the guest already ran it, so until Run() hands it
  // over, a delivery, a snapshot or a register write would act on a state the caller has not seen.
  bool run_held() const { return run_held_; }
  bool RestoreSnapshot(uint64_t id);
  void ForgetSnapshot(uint64_t id);

  // Pages a restore of the base snapshot writes back: dirty or zeroed since.
  uint64_t dirty_pages();

  // Counters of memory-system work since creation (benchmarks and tests read them): TLB fills the
  // hook answered, full TLB flushes, pages copied or cleared by restores, retired code pages
  // (machine_pool.cc) whose translations were kept or dropped at their first fetch, and pages
  // whose code bits were taken from a life before (the same bytes) instead of computed, and RAM
  // pages snapshots copied (the others they share with their base snapshot, snapshot.h).
  struct MemoryCounters {
    uint64_t tlb_fills = 0;
    uint64_t tlb_flushes = 0;
    uint64_t restored_pages = 0;
    uint64_t kept_code_pages = 0;
    uint64_t dropped_code_pages = 0;
    uint64_t kept_code_bits = 0;
    uint64_t snapshot_copied_pages = 0;
  };
  const MemoryCounters& memory_counters() const { return counters_; }

  // Fuzzing: AFL-style edge coverage. `map` (kEdgeMapBytes, owned by the caller, which keeps it
  // alive while enabled) counts hits of (previous block, block) edges; nullptr disables the hook.
  // Off by default, so boots pay nothing for it. `slots` (optional, kEdgeMapBytes + 1 entries,
  // owned likewise) lists the map's slots hit since the last reset, each once, in first-hit order:
  // slots[0] is how many, slots[1..] the slot indices. With it, a reset clears only those slots and
  // the caller can merge the hits without scanning the whole map (an execution hits a few hundred).
  static constexpr uint32_t kEdgeMapBytes = 1u << 16;
  bool SetEdgeMap(uint8_t* map, uint32_t* slots = nullptr);
  // Clears the counts and forgets the previous block (start of an execution).
  void ResetEdges();

  // A host-side execution watch on guest-physical ranges, seen by the TLB-fill hook (so it costs
  // nothing per instruction): the first instruction fetch from [arm_begin, arm_end) arms it,
  // then the first fetch from [stop_begin, stop_end) stops the run with kExecWatch (arg0 = the
  // linear address) before that instruction runs. One-shot; not part of snapshots. Used to stop
  // a Linux boot where the decompressor jumps to the kernel it decompressed (src/boot/linux/).
  // Ranges are page-aligned (the caller checks). Arming drops every TLB entry and with them the
  // emulator's jump cache, so code of the stop range translated before cannot run unseen. One
  // case stops early: a block of straight-line code that starts on the page before a stop page
  // and runs into it stops at the block's start, before any of it runs, because QEMU 5's
  // translator does not end a block at a page boundary and the fill of its second page (at
  // translation, or at tb_lookup_cmp for a block translated before) comes before it runs.
  void WatchExecution(uint64_t arm_begin, uint64_t arm_end, uint64_t stop_begin, uint64_t stop_end);

  // A host-side watch on the content of private guest pages (content_watch.h), seen by the
  // TLB-fill hook: `on` starts watching [first_page, first_page + pages) afresh (nothing in it is
  // the guest's own), off stops. The first guest read of a watched byte the guest did not write
  // itself is recorded (kSlotForeignReads counts those not yet taken). Part of snapshots. With no
  // page watched it costs one test per TLB fill and one per instruction (counting mode).
  // `until_write`: watch at page granularity instead, until the guest's first store to the page.
  void WatchContent(uint64_t first_page, uint64_t pages, bool on, bool until_write = false);
  uint64_t CountWatchedContent(uint64_t first_page, uint64_t pages) const { return content_watch_.CountWatched(first_page, pages); }
  // The recorded reads, oldest first; forgets them.
  std::vector<ForeignRead> TakeForeignReads();

 private:
  friend class GateTableReader;
  Machine(const MachineConfig& config, uint64_t* area);
  bool Init(std::string* error, uc_err* uc_error);
  // The run area as a new machine hands it over: zeros, no instruction or budget limit, and the
  // CPU's registers (Init and Reuse).
  void ResetRunArea();
  // Forgets every cached code page translation (code_cache_).
  void ClearCodeCache() {
    for (auto& e : code_cache_) e = {~0ull, nullptr, 0, nullptr, 0};
    ForgetCodeFastPage();
  }
  // OnCode's page (code_fast_va_) may no longer be what code_cache_ says: forget it.
  void ForgetCodeFastPage() { code_fast_pass_ = CodeBits::kNoPass; }
  // Recomputes code_fast_stop_ from the run area's limits and charges and the machine's mode.
  void UpdateCodeFastStop() {
    const uint64_t* a = area_;
    const uint64_t charged = a[kSlotCharged], budget = a[kSlotBudgetLimit];
    // !OverBudget(n, limit, charged, budget) is n < limit && n < budget - charged (charged < budget).
    const uint64_t stop = std::min(a[kSlotInstructionLimit], charged < budget ? budget - charged : 0);
    code_fast_stop_ = config_.count_instructions && !stub_active_ ? stop : 0;
  }

  // The machine pool (machine_pool.cc).
  static std::unique_ptr<Machine> TakePooled(const MachineConfig& config, uint64_t* run_area);
  bool Poolable() const;
  void FreeSnapshots();
  // Frees a snapshot no longer wanted, or keeps its buffers (cleared) for the next TakeSnapshot.
  void RecycleSnapshot(Snapshot* s);
  // At Release: lets go of the closed VM's run area and edge map, and frees its snapshots.
  void Retire();
  // At Reuse: drops everything else of the last life (RAM contents, gate, watches, code bits) and
  // keeps the translated code, each page of it retired with the bytes it was translated from.
  void ClearLife();
  // At Create: ClearLife, then the new owner's configuration and run area, and the CPU's state at creation.
  bool Reuse(const MachineConfig& config, uint64_t* area);
  // A fetch fill of a retired page: true if its translations still hold (its bytes are the ones
  // they were made from); false leaves it retired for InvalidateRetiredPage.
  bool RetiredCodeStillValid(uint64_t page);
  // After a fetch of a retired page that changed was refused: drops the page's translations (the
  // fetch's own TLB fill does it, at the linear page the guest fetched from) so the run can go on.
  // False if that fill did not happen (then no kept code is left at all).
  bool InvalidateRetiredPage();

  static bool OnTlbFill(uc_engine* uc, uint64_t vaddr, uc_mem_type type, uc_tlb_entry* entry, void* self);
  static bool OnInvalidInsn(uc_engine* uc, void* self);
  static void OnInterrupt(uc_engine* uc, uint32_t intno, void* self);
  // After a fault the hook took (the host delivers it, or the run stops): nothing is in flight
  // any more, so the next fault the emulator raises is not made #DF (exception_in_flight.h).
  void ForgetExceptionInFlight();
  // OnInterrupt, for a software interrupt from CPL > 0 in code segment `cs`: the #GP a gate of
  // lower DPL raises instead.
  void CheckSoftwareInterruptGate(uint32_t intno, const CodeSegment& cs);
  static void OnCode(uc_engine* uc, uint64_t address, uint32_t size, void* self);
  // OnCode past its common case (machine.cc); never inlined, so the common case needs no frame.
  __attribute__((noinline)) static void OnCodeFull(uc_engine* uc, uint64_t address, Machine* m);
  static void OnBlock(uc_engine* uc, uint64_t address, uint32_t size, void* self);

  // Guest stub (guest_stub.cc): a host-owned page of code the guest CPU itself executes to load
  // CS from a descriptor, which Unicorn cannot do from the host in UC_MODE_64. The TLB-fill hook
  // maps it at stub_va_pages_ only while RunStub runs; the guest never sees it otherwise.
  // `what` names what the stub does, for the reason a fault in it gives.
  std::string RunStub(uint64_t eip, const uint64_t* va_pages, int count, uint64_t expect_rip,
                      const char* what = "loading the handler's code segment");
  std::string WriteStub(const uint8_t* bytes, size_t length, size_t offset);
  // Loads CS:EIP = selector:offset through a far jump executed by the guest CPU, from code of
  // `code_bits` (16 or 32) in a segment at `cur_base`; `new_base`/`new_limit` locate the target.
  std::string FarJump(int code_bits, uint64_t cur_base, uint16_t selector, uint64_t new_base,
                      uint64_t new_limit, uint64_t offset);
  // Raises CPL to `new_cpl` with CS = `selector` (whose 8-byte GDT descriptor is `descriptor`)
  // and SS = NULL, as an IA-32e delivery to an inner privilege level loads them, through a call
  // gate the guest CPU takes in the stub; the caller pushes the frame and sets RSP and RIP.
  std::string RaisePrivilege(const CodeSegment& cs, uint16_t selector, uint64_t descriptor, unsigned new_cpl);
  // Reads the 8-byte GDT descriptor `selector` names.
  std::string ReadDescriptor(uint16_t selector, uint64_t* desc);
  std::string AccessVirtual(uint64_t va, uint8_t* buf, size_t len, bool write);
  // The Deliver* functions take the code segment the vCPU was in when the event came.
  std::string DeliverReal(const CodeSegment& cs, uint8_t vector);
  std::string ReadIdtGate(uint8_t vector, unsigned size, uint8_t* gate);
  std::string DeliverProtected(const CodeSegment& cs, uint8_t vector, bool has_error_code, uint64_t error_code, bool resume);
  // From 64-bit code it changes no run-area register but RFLAGS, RSP and RIP (no far jump).
  std::string DeliverLong(const CodeSegment& cs, uint8_t vector, bool has_error_code, uint64_t error_code, bool resume);

  CpuPaging ReadPaging();
  // EFER as ReadPaging last read it, while efer_known_ (see ReadPaging).
  uint64_t efer_ = 0;
  bool efer_known_ = false;
  // The TLB-fill hook's walk: with the paging registers as the last fetch fill of this emulation
  // read them, while fill_paging_valid_ (see machine.cc). Inlined into the hook with the walk, so
  // the Translation stays in registers and two call frames go (~80 instructions of ~394 per fill).
  inline __attribute__((always_inline)) Translation TranslateForFill(uint64_t va, Access access);
  PageWalker fill_walker_;
  WalkMemo fill_memo_;
  bool fill_paging_valid_ = false;
  // The last walker was made in IA-32e mode with paging: linear addresses must be canonical.
  bool fill_long_mode_ = false;
  // Records that guest pages [first, first + count) may now hold data (and are dirty).
  void NoteWritten(uint64_t first, uint64_t count);
  bool Allowed(Space space, uint64_t page, Access access) const;
  // Whether an instruction fetch from the page is allowed at the current CPL (read only when the
  // page's two fetch bits differ, so pages fetchable at every CPL cost no register read). `cpl`:
  // the CPL when the caller already read it, else -1.
  bool FetchAllowed(Space space, uint64_t page, int cpl = -1);
  // Whether a TLB fill of `va` at CPL 3 is a user-mode access (the TLB-fill hook, machine.cc).
  bool UserModeFill(uint64_t va, Access access);
  // CPL as the access checks take it (src/platform/snp/snp-cpu.ts #currentCpl): CS.RPL in
  // protected mode, 0 in real mode.
  int CurrentCpl();
  // Maps the Unicorn RAM chunks that cover [first_page, first_page + pages).
  bool EnsureMapped(uint64_t first_page, uint64_t pages);
  // Maps chunk `chunk` of `host` (RAM or the ciphertext shadow) in Unicorn at `address_base` plus
  // its offset, counting it against kMaxMappedChunks; false past that or when Unicorn refuses.
  bool MapChunk(const HostMapping& host, uint64_t chunk, uint64_t address_base, uint32_t perms);
  // Copies up to 15 instruction bytes at guest-virtual `rip`; returns how many were readable.
  size_t FetchInsnBytes(uint64_t rip, uint8_t* out);
  const uint8_t* CachedCode(uint64_t va_page) const;
  struct CodeCacheEntry;
  // Counting mode: the code bits of the entry's page, built once the page has run kCodeBitsAfter
  // instructions without them (cold pages are not worth a scan and a TLB flush). nullptr: decode.
  const CodeBits* CodeBitsFor(CodeCacheEntry& e);
  // The page's bytes may change: forget its code bits. `guest_write`: a guest store did it, which
  // counts towards kMaxCodeBitsDrops (a page that mixes code and data stops getting bits).
  void DropCodeBits(uint64_t page, bool guest_write);
  void DropAllCodeBits();
  void ScanForInterceptedInsns(uint64_t va_page, const uint8_t* host_page);
  void SetExit(ExitKind kind);
  // Drops every TLB entry.
  void FlushTlb() {
    counters_.tlb_flushes++;
    uc_ctl_flush_tlb(uc_);
    tlb_pages_->Clear();
    tlb_pages_overflow_ = false;
    walked_tables_->Clear();
    // Its tables were read before the flush: walks after it read them again, into walked_tables_.
    fill_memo_.Clear();
  }
  // RestoreSnapshot of the base snapshot: whether every TLB entry may stay, because each grants
  // no more than a fill would now (see machine.cc). Called before anything is restored; `probes`
  // gets the gate bits of the pages whose gate the restore may change, to compare after it.
  struct GateProbe {
    uint64_t page;
    uint32_t bits;
  };
  bool TlbMayOutliveRestore(const Snapshot& s, std::vector<GateProbe>* probes);
  uint32_t GateBitsOf(uint64_t page) const;
  // Called for every page a TLB fill grants: records it in tlb_pages_, up to kMaxTlbPages.
  void NoteTlbPage(uint64_t page) {
    if (tlb_pages_overflow_) return;
    if (tlb_pages_->inserted() >= kMaxTlbPages) { tlb_pages_overflow_ = true; return; }
    tlb_pages_->Insert(page);
  }
  // Whether a TLB entry may map a guest page in [first, first + count): one was filled since the
  // last full flush. While an execution watch is pending every page counts, because it relies on
  // flushes for pages outside the range as well (WatchExecution).
  bool TlbMayHold(uint64_t first, uint64_t count);
  // An execution watch (WatchExecution) is armed or waiting to arm: it counts on every flush the
  // machine ever did, so none is skipped meanwhile.
  bool ExecWatchPending() const { return watch_state_ == WatchState::kWaitingToArm || watch_state_ == WatchState::kArmed; }
  // A private TLB fill of a page the content watch holds (content_watch_fill.cc): checks and
  // records the access, and returns the permissions the fill may grant at most.
  uint32_t WatchedFill(uint64_t vaddr, uint64_t page, Access access);
  // Counting mode: the TLB must be flushed before the next instruction starts. Borrows the code
  // hook's budget check (the instruction limit reads 0 until then), so the hook pays nothing for
  // it while no page is watched; FinishWatchFlush puts the limit back and flushes. Only ever set
  // inside Run's emulation, which finishes it before returning.
  void RequestWatchFlush();
  void FinishWatchFlush();
  // After a refused TLB fill stopped the emulator: narrows the page-granular fault address in
  // the run area to the exact one when it can (data: decodes the instruction at RIP, which is
  // precise; fetch: see ExactFetchFaultAddress).
  void RefineFaultAddress();
  bool RecordTrapped(const TrappedInsn& insn);
  // An invalid-opcode exit: #UD for the instruction of `length` bytes (at most 15) at RIP.
  void RecordInvalidOpcode(const uint8_t* bytes, size_t length);
  // Drops translated code built from guest pages [first, first+count) that were written by
  // the host. Targeted through the VA each page was fetched from; a full flush otherwise.
  void InvalidateCodePages(uint64_t first, uint64_t count);
  void InvalidateAllCode();

  // The code hook's common case reads only these, together in one cache line (OnCode):
  alignas(64) uint64_t* area_;
  // The instruction count from which OnCode must take its full path: the first count that is over
  // budget (OverBudget), or 0 outside counting mode and while a guest stub runs. Kept by
  // UpdateCodeFastStop wherever the limits, the charges or those states change inside an emulation,
  // and before each emulation starts (the host changes them only between emulations).
  uint64_t code_fast_stop_ = 0;
  // The code page of the last instruction OnCodeFull saw on a page with code bits: its linear
  // page and CodeBits::pass_words(), exactly as its code_cache_ entry has them; kNoPass when no
  // such entry is known (every change to code_cache_ or to code bits resets it).
  uint64_t code_fast_va_ = 0;
  const uint64_t* code_fast_pass_ = CodeBits::kNoPass;
  // Address of the last instruction the code hook saw in this Run (~0: none yet).
  uint64_t last_insn_ = ~0ull;
  MachineConfig config_;
  // Fast mode's hang guard (run_watchdog.h), made at the first run that has a timeout.
  std::unique_ptr<RunWatchdog> watchdog_;
  MemoryCounters counters_;
  uc_engine* uc_ = nullptr;
  HostMapping* ram_ = nullptr;
  uint64_t pages_ = 0;
  // Page gate, for private and for shared accesses: readable / writable / reads-see-ciphertext /
  // fetchable at CPL 0-2 / fetchable at CPL 3 (indexes kReadableBitmap..kFetchUserBitmap, machine.cc).
  std::unique_ptr<PageBitmap> gate_[2][kGateBitmaps];
  // Ciphertext shadow: one lazily committed page per guest page, valid while its bit is set.
  HostMapping* shadow_ = nullptr;
  std::unique_ptr<PageBitmap> shadow_valid_;
  std::vector<bool> shadow_chunks_;
  // Guest RAM is given to Unicorn in 1 GiB chunks, the first time the gate opens a page in
  // one: mapping 1 TiB at once makes QEMU mark the whole range dirty (66 MiB resident).
  std::vector<bool> mapped_chunks_;
  uint64_t mapped_chunk_count_ = 0;  // RAM and shadow chunks mapped in Unicorn, each one QEMU memory section
  std::unique_ptr<PageSet> dirty_;          // written since the base snapshot
  // Pages Fill zeroed that were not dirty then: they held the base snapshot's content and read as
  // zeros since, unless they are dirty now (any write after the zeroing made them so). Restore
  // writes the snapshot's content back over the zeros.
  std::unique_ptr<PageSet> zeroed_;
  // Guest pages the TLB-fill hook let into the TLB since the last full flush (FlushTlb): every page
  // a TLB entry can map is in it (QEMU's own flushes, at CR3 writes and INVLPG, only make it a
  // superset). A permission taken from pages outside it needs no flush.
  std::unique_ptr<PageSet> tlb_pages_;
  // A run that touches more pages than this between two flushes (a large workload) stops listing
  // them, and any page then counts as mapped, until the next flush.
  static constexpr size_t kMaxTlbPages = 1u << 16;
  // The members reserved up front in written_ and tlb_pages_ (256 KiB of address space each).
  static constexpr uint64_t kListedPagesReserved = 1u << 15;
  bool tlb_pages_overflow_ = false;
  // Guest pages a page walk read a paging-structure entry from since the last full flush (a
  // superset of the tables every TLB entry was made from): a restore that changes one must flush.
  std::unique_ptr<PageSet> walked_tables_;
  // Pages a restore put back to the snapshot's content while a TLB entry it kept may still grant
  // write to them (TlbMayOutliveRestore): a guest store through that entry is not seen by the
  // TLB-fill hook, so they count as written since the snapshot for every restore and Fill until a
  // restore finds no TLB entry left that may map them.
  std::unique_ptr<PageSet> tlb_writable_;
  // Fault-around (RamPaging kFaultAround and kHugePages): a bit per unit of RAM (16 pages,
  // 64 KiB) that was populated when the TLB-fill hook first granted write to one of its pages.
  // Cleared where RAM goes back to the kernel; a stale bit only means a unit faults in page by page.
  static constexpr uint64_t kFaultAroundShift = 4;
  static constexpr uint64_t kHugeUnitPages = 512;
  // A 2 MiB page whose populating took more CPU than this (~0.2-0.4 ms when the host has it
  // backed, 2.5-25 ms when not) puts 4 KiB pages on trial (FaultAround).
  static constexpr int64_t kSlowHugePageNs = 2000000;
  // The trial: this many 4 KiB pages (8 units of 64 KiB), each unit timed with its first touches.
  static constexpr uint64_t kSmallTrialPages = 128;
  enum class PagingUnit : uint8_t {
    kHuge,        // 2 MiB units, each populating timed
    kSmallTrial,  // 4 KiB pages in 64 KiB units, timed, after a slow 2 MiB page
    kSmall,       // 4 KiB pages in 64 KiB units: the trial found them the cheaper
    kHugeKept,    // 2 MiB units, untimed: the trial found 4 KiB pages the costlier
  };
  PagingUnit paging_unit_ = PagingUnit::kSmall;
  int64_t slow_huge_page_ns_ = 0, small_trial_ns_ = 0;
  uint64_t small_trial_pages_ = 0;
  void SetHugePages(bool on);
  std::unique_ptr<PageBitmap> populated_;
  void FaultAround(uint64_t page);
  void ForgetPopulated(uint64_t first_page, uint64_t count);
  // Pages that may hold non-zero bytes: the guest was given write access to them, or the host
  // wrote them. Every other page reads as zeros, so snapshots and zero fills can skip it.
  std::unique_ptr<PageSet> written_;
  // Gate-bitmap pages (kGatePagesPerBitmapPage guest pages each), per space: ever opened (may
  // hold set bits), and changed since the base snapshot. Snapshot and restore follow these.
  std::unique_ptr<PageSet> gate_touched_[2];
  std::unique_ptr<PageSet> gate_changed_[2];
  std::vector<uint64_t> shadow_written_;    // pages given a ciphertext shadow since the last restore
  // A private write made a shadow stale while a shared TLB entry may still map it; every TLB
  // flush drops such entries, and SetGate flushes while this is set.
  bool stale_shadow_mapping_ = false;
  std::unique_ptr<PageBitmap> code_;        // instructions were fetched from it
  std::unordered_map<uint64_t, uint64_t> code_va_;  // code page -> VA page it was last fetched from
  enum class WatchState { kOff, kWaitingToArm, kArmed, kFired };
  WatchState watch_state_ = WatchState::kOff;
  uint64_t watch_arm_[2] = {0, 0};
  uint64_t watch_stop_[2] = {0, 0};
  bool tracking_dirty_ = false;
  bool exit_pending_ = false;
  // InjectRepeating ran the guest once more than it delivered for: the next Run() returns that
  // run's result (its exit is in the run area) without running. Cleared by a restore.
  bool run_held_ = false;
  uc_err held_run_result_ = UC_ERR_OK;
  uint64_t held_instructions_ = 0;  // kSlotInstructions after the held run
  ContentWatch content_watch_;
  // A watched page was let into the TLB for one instruction: flush before the next one starts,
  // so every instruction that touches a watched page is seen by WatchedFill.
  bool content_watch_flush_ = false;
  uint64_t watch_saved_instruction_limit_ = 0;
  // The emulator called abort() inside a run (see abort_guard.h): never run or free it again.
  bool emulator_aborted_ = false;
  // Counting mode: the pure spin loop (spin_loop.h) the run may be parked in. A PAUSE at `pause`
  // ran `rounds` times in a row, each exactly `round` instructions and no charge after the last;
  // the loop's code is [head, end) (its other PAUSEs leave the watch alone).
  struct SpinWatch {
    uint64_t pause = ~0ull;
    uint64_t head = 0;
    uint64_t end = 0;
    uint64_t instructions = 0;
    uint64_t charged = 0;
    uint32_t round = 0;
    uint32_t rounds = 0;
  };
  SpinWatch spin_;
  // Rounds emulated before any are skipped: AFL edge counts saturate at 255, so by then another
  // round changes no edge-map byte (and prev_block_ is where it was a round earlier).
  static constexpr uint32_t kSpinRoundsBeforeSkip = 256;
  // At the PAUSE at `address` (counted, not yet run): skips whole rounds of a pure spin loop.
  void SkipPureSpinRounds(uint64_t address);
  // Fast mode (no instruction counting): exact code hooks at intercepted instructions.
  std::unordered_set<uint64_t> scanned_va_pages_;
  std::unordered_set<uint64_t> hooked_addresses_;
  // The fault a refused TLB fill recorded; reported when the emulator stops on it.
  ExitKind fault_kind_ = ExitKind::kNone;
  uint64_t fault_[4] = {0, 0, 0, 0};
  Access fault_access_ = Access::kRead;  // the guest access that needed the fill
  uint64_t fault_va_ = 0;                // its page (the TLB-fill hook sees pages only)
  std::unordered_map<uint64_t, Snapshot*> snapshots_;
  uint64_t next_snapshot_id_ = 1;
  Snapshot* base_snapshot_ = nullptr;
  // A freed snapshot's buffers, emptied, for the next one: a fresh fuzz launch (a pooled machine)
  // snapshots thousands of pages at its stage, and new buffers for them page-faulted as they filled
  // (this host makes a first touch of memory expensive; issue 10).
  Snapshot* spare_snapshot_ = nullptr;
  // Guest stub state.
  uint8_t* stub_page_ = nullptr;
  bool stub_active_ = false;
  bool stub_stray_fetch_ = false;
  uint64_t stub_va_pages_[2] = {0, 0};
  int stub_va_count_ = 0;
  // The entry state's CS: its hidden base is not the selector's (real mode: not selector << 4),
  // and CS selector 0 in protected mode is the TD's flat 32-bit entry segment.
  EntryMode entry_mode_ = EntryMode::kLong64;
  uint16_t entry_cs_selector_ = 0;
  uint64_t entry_cs_base_ = 0;
  bool pause_exits_ = false;
  uint64_t xsetbv_allowed_ = ~0ull;
  uint32_t debug_register_intercepts_ = 0;
  uc_context* cpu_scratch_ = nullptr;  // SaveCpuState/LoadCpuState staging
  // Edge coverage (fuzzing only).
  uint8_t* edge_map_ = nullptr;
  uint32_t* edge_slots_ = nullptr;
  uint64_t prev_block_ = 0;
  uc_hook block_hook_ = 0;
  // The block hook was there when every block now translated was: adding a map needs no flush.
  bool block_hook_in_all_code_ = false;
  // The CPU as Init left it, for Reuse.
  uc_context* pristine_ = nullptr;
  // The interrupt hook took a fault QEMU records as in flight (exception_in_flight.h), which
  // ForgetExceptionInFlight clears once the emulation has returned; and its staging context.
  bool exception_in_flight_ = false;
  uc_context* in_flight_scratch_ = nullptr;
  // Guest pages that held translated code when the machine was last retired, with the bytes the
  // code was translated from (nullptr: a page of zeros). Their pages are not in code_, so their
  // first fetch fill in this life compares the bytes (RetiredCodeStillValid).
  std::unordered_map<uint64_t, std::unique_ptr<uint8_t[]>> retired_code_;
  // A fetch of a changed retired page was refused: its linear page and guest page.
  bool retired_fault_ = false;
  uint64_t retired_fault_va_ = 0;
  uint64_t retired_fault_page_ = 0;
  // The fetch that armed the execution watch was refused: Run() flushes the TLB and goes on (OnTlbFill).
  bool arm_restart_ = false;
  // While the host drops a page's translated code (InvalidateCodePages): the page's guest-physical
  // address, which InvalidateCodePages has translated. Unicorn finds the code through a fetch TLB
  // fill of the linear page, which is the host's, not a guest fetch (OnTlbFill). kNoHostLookup otherwise.
  static constexpr uint64_t kNoHostLookup = ~0ull;
  uint64_t host_code_lookup_gpa_ = kNoHostLookup;
  bool host_code_lookup_filled_ = false;  // such a fill was made: its TLB entry must go
  // Last: the cache is 40 KiB, and the fields above that the code hook reads share cache lines.
  // Fetch translations seen by the TLB-fill hook: a small direct-mapped cache VA page -> host,
  // with the guest page and its code bits (counting mode).
  static constexpr int kCodeCacheSize = 1024;
  struct CodeCacheEntry {
    uint64_t va_page;
    const uint8_t* host;
    uint64_t page;
    const CodeBits* bits;
    uint32_t decoded;  // instructions decoded the slow way since the entry was filled
  };
  CodeCacheEntry code_cache_[kCodeCacheSize];
  // Code bits (code_bits.h) per guest page. Invariant: a page with bits is never writable through
  // a TLB entry, so every guest store to it first reaches the TLB-fill hook, which drops them.
  static constexpr uint32_t kCodeBitsAfter = 64;
  static constexpr uint32_t kMaxCodeBitsDrops = 8;
  std::unordered_map<uint64_t, std::unique_ptr<CodeBits>> code_bits_;
  // A pooled machine's code bits from its lives before, with the bytes they were computed from:
  // CodeBitsFor takes a page's instead of computing them again when the page holds the same bytes
  // (bits are a function of the bytes alone). Building them was ~3% of a launch's CPU (issue 10).
  struct KeptCodeBits {
    std::unique_ptr<uint8_t[]> bytes;
    std::unique_ptr<CodeBits> bits;
  };
  static constexpr size_t kMaxKeptCodeBits = 512;
  std::unordered_map<uint64_t, KeptCodeBits> kept_code_bits_;
  std::unique_ptr<PageBitmap> has_code_bits_;
  std::unordered_map<uint64_t, uint32_t> code_bits_drops_;  // guest stores that dropped a page's bits
};

}  // namespace minivisor
