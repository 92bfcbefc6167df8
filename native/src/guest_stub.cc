// Segment loads the host cannot write, done by the guest CPU itself.
//
// In UC_MODE_64 Unicorn's uc_reg_write(CS/SS/DS/ES) stores only the selector, never the hidden
// base/limit/attributes or the mode flags derived from them (qemu/target/i386/unicorn.c,
// reg_write, case UC_MODE_64), while the CPU does reload all of it on a far jump (QEMU
// helper_ljmp_protected / real-mode ljmp). UC_MODE_16/32 would load segments from the host but
// cannot read or write R8-R15 or a 64-bit RIP (reg_read: UC_ERR_ARG), so a guest that reaches
// long mode could not be run. So the vCPU is opened in UC_MODE_64, and whenever CS must change
// (exception delivery outside 64-bit mode, the entry states) the host writes a far jump into a
// host-owned page and lets the CPU execute it. The page sits at a physical address no guest RAM
// reaches, and the TLB-fill hook maps it at the chosen linear pages only while the stub runs;
// it ends with HLT, so the guest never executes anything of the host's.
#include <sys/mman.h>

#include <cstring>

#include "machine.h"
#include "xcr0.h"

namespace minivisor {

namespace {
constexpr uint64_t kHltOffset = 0x10;     // the HLT the far jump lands on, in the stub page
constexpr uint64_t kEferLma = 1ull << 10;

// The linear page just past a code segment's base, below 4 GiB: where a stub runs in that segment.
uint64_t StubPageAfter(uint64_t base) { return ((base + kPageSize) & ~(kPageSize - 1)) & 0xffffffffull; }

// An 8-byte code or data descriptor (Intel SDM Vol. 3 §3.4.5): 16-bit, byte-granular.
uint64_t Descriptor16(uint64_t base, uint32_t limit, uint8_t type) {
  return (limit & 0xffffull) | ((base & 0xffffffull) << 16) | (uint64_t(type) << 40) |
         (uint64_t((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xffull) << 56);
}
}  // namespace

std::string Machine::WriteStub(const uint8_t* bytes, size_t length, size_t offset) {
  // Through Unicorn's physical write path, which also drops code translated from the page.
  if (uc_mem_write(uc_, kStubGpa + offset, bytes, length) != UC_ERR_OK) return "cannot write the guest stub page";
  return "";
}

std::string Machine::RunStub(uint64_t eip, const uint64_t* va_pages, int count, uint64_t expect_rip, const char* what) {
  // The stub's exits, hooks and instruction counts must not show in the run area.
  uint64_t saved[kRunAreaSlots];
  std::memcpy(saved, area_, sizeof saved);
  area_[kSlotInstructionLimit] = ~0ull;
  for (int i = 0; i < count; i++) stub_va_pages_[i] = va_pages[i] & ~(kPageSize - 1);
  stub_va_count_ = count;
  stub_active_ = true;
  UpdateCodeFastStop();
  stub_stray_fetch_ = false;
  exit_pending_ = false;
  fault_kind_ = ExitKind::kNone;
  FlushTlb();
  fill_paging_valid_ = false;  // TranslateForFill: the stub's registers are the host's
  uc_err e = uc_emu_start(uc_, eip, 0, 0, 0);
  stub_active_ = false;
  if (exception_in_flight_) ForgetExceptionInFlight();
  FlushTlb();
  bool raised = exit_pending_ && area_[kSlotKind] == static_cast<uint64_t>(ExitKind::kException);
  uint64_t vector = area_[kSlotArg0];
  bool other_exit = exit_pending_ && !raised;
  // Back to the exit record and counters of before; the registers are the stub's result.
  std::memcpy(area_, saved, kSlotRegs * sizeof(uint64_t));
  std::memcpy(area_ + kSlotDirtyRegs, saved + kSlotDirtyRegs, (kRunAreaSlots - kSlotDirtyRegs) * sizeof(uint64_t));
  UpdateCodeFastStop();
  exit_pending_ = false;
  fault_kind_ = ExitKind::kNone;
  uint64_t rip = 0;
  uc_reg_read(uc_, UC_X86_REG_RIP, &rip);
  char msg[200];
  if (stub_stray_fetch_) {
    return "the code segment's hidden base is not the one its selector names (loaded from a "
           "descriptor that changed since, or an unreal-mode segment); delivering from it is not modelled";
  }
  if (raised) {
    snprintf(msg, sizeof msg, "%s raised vector %llu", what, (unsigned long long)vector);
    return msg;
  }
  if (other_exit || e != UC_ERR_OK || rip != expect_rip) {
    snprintf(msg, sizeof msg, "the segment-load stub stopped at 0x%llx (%s)", (unsigned long long)rip, uc_strerror(e));
    return msg;
  }
  return "";
}

std::string Machine::FarJump(int code_bits, uint64_t cur_base, uint16_t selector, uint64_t new_base,
                             uint64_t new_limit, uint64_t offset) {
  // The stub's far jump sits at linear page `from` of the current code segment; it lands on the
  // HLT at linear page `to` of the new one. Both pages show the stub page while it runs, so no
  // descriptor-table page may be one of them.
  uc_x86_mmr gdtr{};
  uc_reg_read(uc_, UC_X86_REG_GDTR, &gdtr);
  uint64_t table_page = (gdtr.base + (selector & ~7u)) & ~(kPageSize - 1);
  // A page in the first 8 KiB of a segment, past its base, and not the descriptor's page.
  auto pick = [&](uint64_t base) {
    uint64_t page = StubPageAfter(base);
    return page == table_page ? page + 2 * kPageSize : page;
  };
  uint64_t from = pick(cur_base);
  uint64_t to = new_base == cur_base ? from : pick(new_base);
  uint64_t landing = to + kHltOffset - new_base;
  if (landing > new_limit) return "the handler's code segment is too small for the segment-load stub";
  uint8_t code[16];
  size_t n = 0;
  if (code_bits == 16) code[n++] = 0x66;  // 32-bit offset form in 16-bit code
  code[n++] = 0xEA;                       // JMP ptr16:32 (SDM Vol. 2 JMP, far direct)
  for (int i = 0; i < 4; i++) code[n++] = uint8_t(landing >> (8 * i));
  code[n++] = uint8_t(selector);
  code[n++] = uint8_t(selector >> 8);
  std::string err = WriteStub(code, n, 0);
  if (err.empty()) { uint8_t hlt = 0xF4; err = WriteStub(&hlt, 1, kHltOffset); }
  if (!err.empty()) return err;
  uint64_t pages[2] = {from, to};
  err = RunStub((from - cur_base) & 0xffffffffull, pages, 2, landing + 1);
  if (!err.empty()) return err;
  uint64_t rip = offset;
  uc_reg_write(uc_, UC_X86_REG_RIP, &rip);
  return "";
}

// Unicorn raises CPL only through a call gate: exceptions and interrupts reach UC_HOOK_INTR
// instead of the guest's IDT (../shared/reference/unicorn.md §4), SYSCALL only calls its hooks
// (qemu/target/i386/seg_helper.c helper_syscall), and uc_reg_write refuses CS or SS of another
// privilege (uc_check_cpu_x86_load_seg). So the stub far-calls through a 64-bit call gate, which
// QEMU takes as the CPU does (helper_lcall_protected; Intel SDM Vol. 3 §5.8.6): to an inner
// privilege it loads CS from the descriptor with RPL = its DPL, which becomes CPL, SS = the NULL
// selector with RPL = the new CPL, and RSP from the TSS. Everything the call reads or pushes is
// in the stub page: a GDT holding the gate and a copy of the handler's code descriptor at its
// selector's index (so CS gets the hidden state the guest's descriptor gives), and a TSS whose
// stack is in the page too. The guest's GDTR and TR are put back after, and no guest memory is
// read or written.
std::string Machine::RaisePrivilege(const CodeSegment& cs, uint16_t selector, uint64_t descriptor, unsigned new_cpl) {
  constexpr uint64_t kPointer = 0x20, kTss = 0x100, kStackTop = 0xF00, kGdtSlot = 0x800;
  const uint16_t index = selector & ~7u;
  // The gate's 16 bytes sit just below the copied descriptor, or above it for the selectors
  // below 0x18 (08h, 10h), whose gate would otherwise take selector 0, the NULL selector a far
  // call refuses with #GP (SDM Vol. 2A CALL); either way the GDT limit stays within 16 bits.
  const uint16_t gate_index = index >= 0x18 ? uint16_t(index - 0x10) : uint16_t(index + 8);
  const uint16_t gdt_limit = uint16_t((index >= 0x18 ? index : gate_index + 8) + 7);
  const uint64_t page = StubPageAfter(cs.base);
  const uint64_t landing = page + kHltOffset;
  uint8_t buf[kPageSize] = {};
  size_t n = 0;
  // CS-relative memory operand (compatibility-mode DS may have a base): CALL FAR m16:32 (FF /3).
  const uint32_t operand = uint32_t(page + kPointer - cs.base);
  buf[n++] = 0x2E;
  buf[n++] = 0xFF;
  if (cs.bits == 64) { buf[n++] = 0x1C; buf[n++] = 0x25; } else { buf[n++] = 0x1D; }
  std::memcpy(buf + n, &operand, 4);
  buf[kHltOffset] = 0xF4;
  const uint16_t gate_selector = uint16_t(gate_index | (cs.selector & 3));
  std::memcpy(buf + kPointer + 4, &gate_selector, 2);
  // 64-bit call gate (SDM Vol. 3 §5.8.3.1, Figure 5-9): type 0xC, DPL 3, present, to `landing`.
  const uint64_t gate_low = (landing & 0xffff) | (uint64_t(index) << 16) | (0xECull << 40) | (((landing >> 16) & 0xffff) << 48);
  const uint64_t gate_high = landing >> 32;
  std::memcpy(buf + kGdtSlot + gate_index - index, &gate_low, 8);
  std::memcpy(buf + kGdtSlot + gate_index - index + 8, &gate_high, 8);
  std::memcpy(buf + kGdtSlot, &descriptor, 8);
  const uint64_t stack = page + kStackTop;
  std::memcpy(buf + kTss + 4 + 8 * new_cpl, &stack, 8);
  std::string err = WriteStub(buf, sizeof buf, 0);
  if (!err.empty()) return err;
  uc_x86_mmr gdtr{}, tr{};
  uc_reg_read(uc_, UC_X86_REG_GDTR, &gdtr);
  uc_reg_read(uc_, UC_X86_REG_TR, &tr);
  uc_x86_mmr stub_gdtr{}, stub_tr{};
  stub_gdtr.base = page + kGdtSlot - index;
  stub_gdtr.limit = gdt_limit;
  stub_tr.base = page + kTss;
  stub_tr.limit = 0x67;
  stub_tr.flags = 0x8B00;  // present, busy 64-bit TSS (QEMU aborts on a TSS that is not present)
  uc_reg_write(uc_, UC_X86_REG_GDTR, &stub_gdtr);
  uc_reg_write(uc_, UC_X86_REG_TR, &stub_tr);
  uint64_t pages[1] = {page};
  err = RunStub((page - cs.base) & 0xffffffffull, pages, 1, landing + 1);
  uc_reg_write(uc_, UC_X86_REG_GDTR, &gdtr);
  uc_reg_write(uc_, UC_X86_REG_TR, &tr);
  return err;
}

std::string Machine::EnterInnerPrivilege(uint16_t selector, uint64_t descriptor) {
  if (SyncRegsIn() != UC_ERR_OK) return "cannot write back registers";
  const CodeSegment cs = CurrentCodeSegment();
  const unsigned new_cpl = unsigned(descriptor >> 45) & 3;
  if (!cs.protected_mode || !cs.long_mode) return "a privilege change outside IA-32e mode is not modelled";
  if (new_cpl >= (cs.selector & 3u)) return "the target is not more privileged than CPL";
  // The stub's own stack pointer and a pending single-step trap stay out of the guest's state.
  uint64_t rsp = 0, rflags = 0;
  uc_reg_read(uc_, UC_X86_REG_RSP, &rsp);
  uc_reg_read(uc_, UC_X86_REG_RFLAGS, &rflags);
  const uint64_t quiet = rflags & ~((1ull << 8) | (1ull << 16));  // TF, RF
  uc_reg_write(uc_, UC_X86_REG_RFLAGS, &quiet);
  std::string err = RaisePrivilege(cs, selector, descriptor, new_cpl);
  uc_reg_write(uc_, UC_X86_REG_RSP, &rsp);
  uc_reg_write(uc_, UC_X86_REG_RFLAGS, &rflags);
  SyncRegsOut();
  return err;
}

std::string Machine::WriteXcr0(uint64_t value) {
  if (SyncRegsIn() != UC_ERR_OK) return "cannot write back registers";
  const CodeSegment cs = CurrentCodeSegment();
  if ((cs.selector & 3) != 0 && cs.protected_mode) return "XCR0 is written at CPL 0 only";
  if (!Xcr0CombinationLegal(value)) {
    char msg[96];
    snprintf(msg, sizeof msg, "XSETBV of 0x%llx raises #GP (a feature set without the one it needs)", (unsigned long long)value);
    return msg;
  }
  // XSETBV (NP 0F 01 D1, the same in every code size), then the HLT that ends the stub.
  const uint8_t code[] = {0x0F, 0x01, 0xD1, 0xF4};
  std::string err = WriteStub(code, sizeof code, 0);
  if (!err.empty()) return err;
  static const int kSaved[5] = {UC_X86_REG_RAX, UC_X86_REG_RCX, UC_X86_REG_RDX, UC_X86_REG_RIP, UC_X86_REG_CR4};
  uint64_t saved[5];
  for (int i = 0; i < 5; i++) uc_reg_read(uc_, kSaved[i], &saved[i]);
  const uint64_t eax = value & 0xffffffffull, edx = value >> 32, ecx = 0, cr4 = saved[4] | (1ull << 18);  // CR4.OSXSAVE
  uc_reg_write(uc_, UC_X86_REG_RAX, &eax);
  uc_reg_write(uc_, UC_X86_REG_RDX, &edx);
  uc_reg_write(uc_, UC_X86_REG_RCX, &ecx);
  if (cr4 != saved[4]) uc_reg_write(uc_, UC_X86_REG_CR4, &cr4);
  const uint64_t page = StubPageAfter(cs.base);
  const uint64_t eip = (page - cs.base) & 0xffffffffull;
  uint64_t pages[1] = {page};
  err = RunStub(eip, pages, 1, eip + sizeof code, "XSETBV");
  if (cr4 != saved[4]) uc_reg_write(uc_, UC_X86_REG_CR4, &saved[4]);
  for (int i = 0; i < 4; i++) uc_reg_write(uc_, kSaved[i], &saved[i]);
  SyncRegsOut();
  if (err.empty()) return "";
  char msg[48];
  snprintf(msg, sizeof msg, "XSETBV of 0x%llx: ", (unsigned long long)value);
  return msg + err;  // e.g. bit 0 clear or an unsupported feature: #GP
}

std::string Machine::SetEntryState(EntryMode mode, uint16_t cs_selector, uint64_t cs_base) {
  if (mode == EntryMode::kLong64) return entry_mode_ == EntryMode::kLong64 ? "" : "the vCPU already left its reset state";
  if (entry_mode_ != EntryMode::kLong64) return "the vCPU already left its reset state";
  // Leave long mode the architectural way: paging on, then off (QEMU cpu_x86_update_cr0 clears
  // EFER.LMA and the 64-bit code flag when CR0.PG goes from 1 to 0 with LMA set). No instruction
  // runs, so no page table is needed. CS keeps its flat reset cache with the 32-bit flag.
  uint64_t v = 0x20;  // CR4.PAE
  uc_reg_write(uc_, UC_X86_REG_CR4, &v);
  v = 0x80000011;     // PG | ET | PE
  uc_reg_write(uc_, UC_X86_REG_CR0, &v);
  v = 0x11;
  uc_reg_write(uc_, UC_X86_REG_CR0, &v);
  v = 0;
  uc_reg_write(uc_, UC_X86_REG_CR4, &v);
  WriteMsr(0xC0000080u, 0);
  uint64_t efer = 0;
  ReadMsr(0xC0000080u, &efer);
  if (efer & kEferLma) return "the emulator did not leave long mode";
  entry_mode_ = EntryMode::kProtected32;
  entry_cs_selector_ = 0;
  entry_cs_base_ = 0;
  if (mode == EntryMode::kReal16) {
    if (cs_base > 0xffffffffull) return "a real-mode CS base must be below 4 GiB";
    // A 16-bit CS (and SS) can only come from a descriptor: load them in protected mode from a
    // GDT in the stub page, then clear CR0.PE. The CPU keeps the hidden base (SDM Vol. 3
    // §9.1.4: the reset CS base 0xFFFF0000 is not selector << 4 either).
    // The descriptor's linear address must not wrap: QEMU adds the GDT base in 64 bits.
    uint64_t gdt_page = 0x10000, gdt_offset = 0x800;
    uint64_t descs[2] = {Descriptor16(cs_base, 0xffff, 0x9B), Descriptor16(0, 0xffff, 0x93)};
    uint16_t ss_selector = uint16_t((cs_selector & ~7u) + 8);
    if ((cs_selector & 7) || cs_selector == 0 || ss_selector == 0) return "the entry CS selector must be a non-null GDT selector";
    uc_x86_mmr gdtr{};
    gdtr.base = (gdt_page + gdt_offset - (cs_selector & ~7u)) & 0xffffffffull;
    gdtr.limit = 0xffff;
    uc_reg_write(uc_, UC_X86_REG_GDTR, &gdtr);
    std::string err = WriteStub(reinterpret_cast<const uint8_t*>(descs), sizeof descs, gdt_offset);
    if (!err.empty()) return err;
    // mov ss, ax; jmp cs_selector:landing (all in 32-bit code at linear gdt_page).
    uint64_t to = (cs_base + kPageSize - 1) & ~(kPageSize - 1);
    uint64_t landing = to + kHltOffset - cs_base;
    uint8_t code[] = {0x8E, 0xD0, 0xEA, uint8_t(landing), uint8_t(landing >> 8), uint8_t(landing >> 16),
                      uint8_t(landing >> 24), uint8_t(cs_selector), uint8_t(cs_selector >> 8)};
    uint8_t hlt = 0xF4;
    err = WriteStub(code, sizeof code, 0);
    if (err.empty()) err = WriteStub(&hlt, 1, kHltOffset);
    if (!err.empty()) return err;
    uint64_t rax = ss_selector, saved_rax = 0;
    uc_reg_read(uc_, UC_X86_REG_RAX, &saved_rax);
    uc_reg_write(uc_, UC_X86_REG_RAX, &rax);
    uint64_t pages[2] = {gdt_page, to};
    err = RunStub(gdt_page, pages, 2, landing + 1);
    uc_reg_write(uc_, UC_X86_REG_RAX, &saved_rax);
    if (!err.empty()) return "cannot enter real mode: " + err;
    v = 0x60000010;  // CR0 at reset: CD | NW | ET (SDM Vol. 3 Table 10-1)
    uc_reg_write(uc_, UC_X86_REG_CR0, &v);
    uc_x86_mmr reset_table{};
    reset_table.limit = 0xffff;
    uc_reg_write(uc_, UC_X86_REG_GDTR, &reset_table);
    uc_reg_write(uc_, UC_X86_REG_IDTR, &reset_table);
    uint64_t zero = 0;
    uc_reg_write(uc_, UC_X86_REG_SS, &zero);  // selector only; the hidden base is already 0
    entry_mode_ = EntryMode::kReal16;
    entry_cs_selector_ = cs_selector;
    entry_cs_base_ = cs_base;
  }
  FlushTlb();
  SyncRegsOut();
  return "";
}

}  // namespace minivisor
