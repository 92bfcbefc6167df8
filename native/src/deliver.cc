// Exception and interrupt delivery in every mode a guest passes through, as the CPU does it
// (Intel SDM Vol. 3 §6.12 protected mode, §6.14 IA-32e mode, §20.1.4 real mode; AMD APM Vol. 2
// §8.7, §8.9). Unicorn never delivers through the guest's tables (every vector reaches
// UC_HOOK_INTR; ../shared/reference/unicorn.md §4), so the host pushes the frame itself and
// loads CS through a far jump the guest CPU executes (guest_stub.cc) whenever the handler's code
// segment is not the one already loaded.
//
// Not modelled: privilege changes outside IA-32e mode (a delivery from CPL 3 in protected mode
// stops with an error), task gates, LDT selectors, virtual-8086 mode, and 32-bit paging without
// long mode (the host page walk is the 4-level one). The gate DPL check of software interrupts
// is made where they stop the run (machine.cc CheckSoftwareInterruptGate), in counting mode.
#include <cstring>

#include "machine.h"

namespace minivisor {

namespace {
constexpr uint64_t kEferLma = 1ull << 10;
constexpr uint64_t kTF = 1 << 8, kIF = 1 << 9, kNT = 1 << 14, kRF = 1 << 16, kVM = 1 << 17, kAC = 1 << 18;

struct Desc {
  uint64_t raw;
  uint64_t base() const { return ((raw >> 16) & 0xffffff) | (((raw >> 56) & 0xff) << 24); }
  uint64_t limit() const {
    uint64_t l = (raw & 0xffff) | (((raw >> 48) & 0xf) << 16);
    return (raw & (1ull << 55)) ? (l << 12) | 0xfff : l;  // G
  }
  bool present() const { return raw & (1ull << 47); }
  bool code() const { return (raw & (3ull << 43)) == (3ull << 43); }  // S=1, executable
  bool long_mode() const { return raw & (1ull << 53); }
  bool big() const { return raw & (1ull << 54); }  // D/B
};
}  // namespace

std::string Machine::AccessVirtual(uint64_t va, uint8_t* buf, size_t len, bool write) {
  // A delivery's reads and pushes (IDT, GDT, TSS, stack) are linear accesses: in IA-32e mode one
  // at a non-canonical address faults (#GP or #SS, Intel SDM Vol. 3A §3.3.7.1), and a fault while
  // delivering ends in #DF or shutdown. The walk uses bits 47:0 only, so without this check the
  // frame went to the low address it aliases.
  const CpuPaging paging = ReadPaging();
  const bool long_mode = paging.paging() && (paging.efer & kEferLma);
  size_t done = 0;
  while (done < len) {
    uint64_t cur = va + done;
    if (long_mode && !IsCanonical48(cur)) {
      char msg[120];
      snprintf(msg, sizeof msg, "guest virtual address 0x%llx is not canonical", (unsigned long long)cur);
      return msg;
    }
    Access access = write ? Access::kWrite : Access::kRead;
    Translation t = TranslateForHost(paging, cur, access);
    if (t.status != Translation::kOk || t.gpa >= memory_bytes() ||
        !Allowed(t.is_private ? Space::kPrivate : Space::kShared, t.gpa >> kPageShift, access)) {
      char msg[160];
      snprintf(msg, sizeof msg, "guest virtual address 0x%llx is not %s", (unsigned long long)cur,
               write ? "writable" : "readable");
      return msg;
    }
    size_t n = std::min<size_t>(len - done, kPageSize - (cur & (kPageSize - 1)));
    uint8_t* host = ram()->At(t.gpa);
    if (write) {
      std::memcpy(host, buf + done, n);
      NoteHostWrite(t.gpa, n);
    } else {
      std::memcpy(buf + done, host, n);
    }
    done += n;
  }
  return "";
}

std::string Machine::ReadDescriptor(uint16_t selector, uint64_t* desc) {
  uc_x86_mmr gdtr{};
  uc_reg_read(uc_, UC_X86_REG_GDTR, &gdtr);
  char msg[120];
  if (selector & 4) { snprintf(msg, sizeof msg, "selector 0x%x names the LDT (not modelled)", selector); return msg; }
  if ((selector & ~7u) == 0 || uint64_t(selector & ~7u) + 7 > gdtr.limit) {
    snprintf(msg, sizeof msg, "selector 0x%x is outside the GDT", selector);
    return msg;
  }
  std::string err = AccessVirtual(gdtr.base + (selector & ~7u), reinterpret_cast<uint8_t*>(desc), 8, false);
  return err.empty() ? "" : "cannot read the GDT: " + err;
}

CodeSegment Machine::CurrentCodeSegment() {
  CodeSegment cs;
  uint64_t cr0 = 0, efer = 0, selector = 0;
  uc_reg_read(uc_, UC_X86_REG_CR0, &cr0);
  ReadMsr(0xC0000080u, &efer);
  uc_reg_read(uc_, UC_X86_REG_CS, &selector);
  cs.selector = uint16_t(selector);
  cs.protected_mode = cr0 & 1;
  cs.long_mode = efer & kEferLma;
  bool entry_cs = entry_mode_ != EntryMode::kLong64 && cs.selector == entry_cs_selector_;
  if (!cs.protected_mode) {
    cs.bits = 16;
    cs.base = entry_cs ? entry_cs_base_ : uint64_t(cs.selector) << 4;
    return cs;
  }
  // Selector 0 is a loaded CS only in an entry state: Unicorn's 64-bit reset state, or the
  // TD's flat 32-bit one.
  if (cs.selector == 0) {
    cs.bits = cs.long_mode ? 64 : 32;
    return cs;
  }
  Desc d{0};
  if (!ReadDescriptor(cs.selector, &d.raw).empty()) {
    cs.bits = cs.long_mode ? 64 : 32;
    return cs;
  }
  cs.bits = cs.long_mode && d.long_mode() ? 64 : d.big() ? 32 : 16;
  cs.base = cs.bits == 64 ? 0 : d.base();
  return cs;
}

// `resume`: the RFLAGS image pushed has RF = 1, as the CPU pushes it for every fault-class
// exception but an instruction breakpoint (Intel SDM Vol. 3 §17.3.1.1 "Instruction-Breakpoint
// Exception Condition"), and as the TDX module makes it for every exception it injects by setting
// the guest's RFLAGS.RF before the VM entry (tdx-module td_other_exits.c tdx_inject_ve;
// helpers.h inject_gp, inject_ud; helpers.c inject_pf). Handlers run with RF clear either way.
std::string Machine::Inject(uint8_t vector, bool has_error_code, uint64_t error_code, const uint64_t* cr2, bool resume) {
  if (config_.count_instructions) area_[kSlotCharged] += kInjectCharge;
  if (SyncRegsIn() != UC_ERR_OK) return "cannot write back registers";
  // CR2 is loaded when the fault is raised, before the delivery that may fail and escalate
  // (Intel SDM Vol. 3 §6.15 "Interrupt 14": the address that caused the #PF; AMD APM Vol. 2
  // §15.36.10: #VC PAGE_NOT_VALIDATED also reports the faulting GVA in CR2). A plain store in
  // Unicorn >= 2.1.4 (reg_write UC_X86_REG_CR2 touches neither CR3 nor the TLB): writing it
  // through WriteSpecial and putting CR3 back, as before, flushed the emulator's TLB and TB jump
  // cache on every #VC, and the guest refilled both (issue 10).
  if (cr2 != nullptr && uc_reg_write(uc_, UC_X86_REG_CR2, cr2) != UC_ERR_OK) return "cannot write CR2";
  // As WriteSpecial's: while an execution watch waits or is armed, a special-register write drops
  // the TLB, so stop-range pages that ran before it armed come back through the fill hook.
  if (cr2 != nullptr && ExecWatchPending()) FlushTlb();
  // The code segment is read once (a GDT read through the page tables) and handed down.
  const CodeSegment cs = CurrentCodeSegment();
  std::string err = !cs.protected_mode ? DeliverReal(cs, vector)
                    : !cs.long_mode    ? DeliverProtected(cs, vector, has_error_code, error_code, resume)
                                       : DeliverLong(cs, vector, has_error_code, error_code, resume);
  // A delivery from 64-bit code needs no far jump through the guest stub (DeliverLong), so only
  // RFLAGS, RSP and RIP of the run area changed: read back those three, not all of them.
  // From CPL > 0 a delivery may also change CS and SS (RaisePrivilege): then all of them.
  const bool flow_only = cs.protected_mode && cs.long_mode && cs.bits == 64 && (cs.selector & 3) == 0;
  if (err.empty() && flow_only) {
    static const int kIds[3] = {UC_X86_REG_RFLAGS, UC_X86_REG_RSP, UC_X86_REG_RIP};
    void* ptrs[3] = {&area_[kSlotRegs + kRegRflags], &area_[kSlotRegs + kRegRsp], &area_[kSlotRegs + kRegRip]};
    uc_reg_read_batch(uc_, const_cast<int*>(kIds), ptrs, 3);
  } else {
    SyncRegsOut();
  }
  return err;
}

// Real mode (SDM Vol. 3 §20.1.4): the IVT at IDTR.base holds CS:IP; FLAGS, CS and IP are pushed
// as words, IF, TF and AC are cleared. No error code is pushed in real mode.
std::string Machine::DeliverReal(const CodeSegment& cs, uint8_t vector) {
  uc_x86_mmr idtr{};
  uc_reg_read(uc_, UC_X86_REG_IDTR, &idtr);
  char msg[160];
  if (uint64_t(vector) * 4 + 3 > idtr.limit) {
    snprintf(msg, sizeof msg, "vector %u is beyond the IVT limit 0x%x", vector, idtr.limit);
    return msg;
  }
  uint16_t entry[2];
  std::string err = AccessVirtual(idtr.base + uint64_t(vector) * 4, reinterpret_cast<uint8_t*>(entry), 4, false);
  if (!err.empty()) return "cannot read the IVT: " + err;
  uint64_t ss = 0;
  uc_reg_read(uc_, UC_X86_REG_SS, &ss);
  uint64_t rsp = area_[kSlotRegs + kRegRsp], rflags = area_[kSlotRegs + kRegRflags];
  uint16_t words[3] = {uint16_t(rflags), cs.selector, uint16_t(area_[kSlotRegs + kRegRip])};
  uint16_t sp = uint16_t(rsp);
  for (uint16_t w : words) {  // SP wraps within the 64 KiB stack segment
    sp = uint16_t(sp - 2);
    err = AccessVirtual((ss << 4) + sp, reinterpret_cast<uint8_t*>(&w), 2, true);
    if (!err.empty()) return "cannot push the interrupt frame: " + err;
  }
  rflags &= ~(kIF | kTF | kAC);
  uc_reg_write(uc_, UC_X86_REG_RFLAGS, &rflags);
  uint16_t new_cs = entry[1], ip = entry[0];
  if (new_cs != cs.selector || cs.base != uint64_t(new_cs) << 4) {
    err = FarJump(16, cs.base, new_cs, uint64_t(new_cs) << 4, 0xffff, ip);
    if (!err.empty()) return err;
  }
  uint64_t new_rsp = (rsp & ~0xffffull) | sp, new_rip = ip;
  uc_reg_write(uc_, UC_X86_REG_RSP, &new_rsp);
  uc_reg_write(uc_, UC_X86_REG_RIP, &new_rip);
  return "";
}

// Reads the gate of `vector` from the IDT (`size` bytes: 8 in protected mode, 16 in IA-32e
// mode) and checks the limit and the present bit; the caller checks the gate type.
std::string Machine::ReadIdtGate(uint8_t vector, unsigned size, uint8_t* gate) {
  uc_x86_mmr idtr{};
  uc_reg_read(uc_, UC_X86_REG_IDTR, &idtr);
  char msg[200];
  if (uint64_t(vector) * size + size - 1 > idtr.limit) {
    snprintf(msg, sizeof msg, "vector %u is beyond the IDT limit 0x%x", vector, idtr.limit);
    return msg;
  }
  std::string err = AccessVirtual(idtr.base + uint64_t(vector) * size, gate, size, false);
  if (!err.empty()) return "cannot read the IDT: " + err;
  if (!(gate[5] & 0x80)) { snprintf(msg, sizeof msg, "IDT entry %u is not present", vector); return msg; }
  return "";
}

// Protected mode (SDM Vol. 3 §6.11-6.12): 8-byte interrupt/trap gates; 32-bit gates push
// EFLAGS, CS, EIP and the error code as dwords, 16-bit gates as words, on the current stack
// (same privilege level). TF, NT, RF and VM are cleared, and IF too for interrupt gates.
std::string Machine::DeliverProtected(const CodeSegment& cs, uint8_t vector, bool has_error_code, uint64_t error_code, bool resume) {
  char msg[200];
  uint8_t gate[8];
  std::string err = ReadIdtGate(vector, sizeof gate, gate);
  if (!err.empty()) return err;
  unsigned type = gate[5] & 0x1F;
  if (type != 0x0E && type != 0x0F && type != 0x06 && type != 0x07) {
    snprintf(msg, sizeof msg, "IDT entry %u has type 0x%x, not an interrupt or trap gate (task gates are not modelled)", vector, type);
    return msg;
  }
  uint64_t handler = uint64_t(gate[0]) | uint64_t(gate[1]) << 8 | uint64_t(gate[6]) << 16 | uint64_t(gate[7]) << 24;
  uint16_t selector = uint16_t(gate[2] | gate[3] << 8);
  int width = (type & 8) ? 4 : 2;
  if (width == 2) handler &= 0xffff;
  Desc target{0};
  err = ReadDescriptor(selector, &target.raw);
  if (!err.empty()) { snprintf(msg, sizeof msg, "IDT entry %u: ", vector); return msg + err; }
  if (!target.present() || !target.code()) {
    snprintf(msg, sizeof msg, "GDT entry 0x%x is not a present code segment", selector);
    return msg;
  }
  if (handler > target.limit()) {
    snprintf(msg, sizeof msg, "handler offset 0x%llx is beyond the limit of code segment 0x%x", (unsigned long long)handler, selector);
    return msg;
  }
  // SDM Vol. 3 §6.12.1.1: the handler's code segment may not be less privileged than CPL (#GP);
  // a more privileged one means a stack switch through the TSS, not modelled here.
  const unsigned cpl = cs.selector & 3, target_dpl = unsigned(target.raw >> 45) & 3;
  if (target_dpl > cpl || (!(target.raw & (1ull << 42)) && target_dpl < cpl)) {
    snprintf(msg, sizeof msg, target_dpl > cpl ? "IDT entry %u: code segment 0x%x has DPL %u, above CPL %u (the CPU raises #GP)"
                                               : "IDT entry %u: code segment 0x%x has DPL %u, below CPL %u: a protected-mode privilege change is not modelled",
             vector, selector, target_dpl, cpl);
    return msg;
  }
  // The stack segment: selector 0 is the TD's flat 32-bit entry SS; otherwise its descriptor.
  uint64_t ss = 0;
  uc_reg_read(uc_, UC_X86_REG_SS, &ss);
  uint64_t ss_base = 0;
  bool ss_big = true;
  if ((ss & ~3ull) != 0) {
    Desc d{0};
    err = ReadDescriptor(uint16_t(ss), &d.raw);
    if (!err.empty()) return "the stack segment: " + err;
    ss_base = d.base();
    ss_big = d.big();
  }
  uint64_t rsp = area_[kSlotRegs + kRegRsp], rflags = area_[kSlotRegs + kRegRflags];
  uint32_t values[4];
  int n = 0;
  values[n++] = uint32_t(rflags | (resume ? kRF : 0));
  values[n++] = cs.selector;
  values[n++] = uint32_t(area_[kSlotRegs + kRegRip]);
  if (has_error_code) values[n++] = uint32_t(error_code);
  uint32_t sp = ss_big ? uint32_t(rsp) : uint16_t(rsp);
  for (int i = 0; i < n; i++) {
    sp = ss_big ? sp - width : uint16_t(sp - width);
    err = AccessVirtual((ss_base + sp) & 0xffffffffull, reinterpret_cast<uint8_t*>(&values[i]), width, true);
    if (!err.empty()) return "cannot push the exception frame: " + err;
  }
  rflags &= ~(kTF | kNT | kRF | kVM | ((type & 1) ? 0 : kIF));
  uc_reg_write(uc_, UC_X86_REG_RFLAGS, &rflags);
  // Always through the CPU, even for the same selector: it reloads the descriptor as it is now.
  err = FarJump(cs.bits == 16 ? 16 : 32, cs.base, selector, target.base(), target.limit(), handler);
  if (!err.empty()) return err;
  uint64_t new_rsp = ss_big ? sp : (rsp & ~0xffffull) | sp;
  uc_reg_write(uc_, UC_X86_REG_RSP, &new_rsp);
  uc_reg_write(uc_, UC_X86_REG_RIP, &handler);
  return "";
}

// IA-32e mode (SDM Vol. 3 §6.14): 16-byte gates to 64-bit code; SS, RSP, RFLAGS, CS, RIP and
// the error code are pushed as quadwords on a 16-byte aligned stack (the IST one if named),
// from 64-bit and compatibility mode alike.
std::string Machine::DeliverLong(const CodeSegment& cs, uint8_t vector, bool has_error_code, uint64_t error_code, bool resume) {
  char msg[200];
  uint8_t gate[16];
  std::string err = ReadIdtGate(vector, sizeof gate, gate);
  if (!err.empty()) return err;
  uint64_t handler = uint64_t(gate[0]) | uint64_t(gate[1]) << 8 | uint64_t(gate[6]) << 16 | uint64_t(gate[7]) << 24;
  uint32_t high;
  std::memcpy(&high, gate + 8, 4);
  handler |= uint64_t(high) << 32;
  uint16_t selector = uint16_t(gate[2] | gate[3] << 8);
  unsigned ist = gate[4] & 7;
  unsigned type = gate[5] & 0xF;
  if (type != 0xE && type != 0xF) {
    snprintf(msg, sizeof msg, "IDT entry %u has type 0x%x, not a 64-bit interrupt or trap gate", vector, type);
    return msg;
  }
  // The handler's code segment must be a present 64-bit code descriptor, or IRETQ will #GP.
  Desc target{0};
  err = ReadDescriptor(selector, &target.raw);
  if (!err.empty()) { snprintf(msg, sizeof msg, "IDT entry %u: ", vector); return msg + err; }
  if (!target.present() || !target.code() || !target.long_mode()) {
    snprintf(msg, sizeof msg, "GDT entry 0x%x is not a present 64-bit code segment", selector);
    return msg;
  }
  // The privilege level the handler runs at (SDM Vol. 3 §6.12.1.1, §6.14.4): never a code
  // segment less privileged than CPL; a non-conforming one's DPL, while a conforming one runs at CPL.
  const unsigned cpl = cs.selector & 3;
  const unsigned target_dpl = unsigned(target.raw >> 45) & 3;
  const bool conforming = target.raw & (1ull << 42);
  if (target_dpl > cpl) {
    snprintf(msg, sizeof msg, "IDT entry %u: code segment 0x%x has DPL %u, above CPL %u (the CPU raises #GP)", vector, selector, target_dpl, cpl);
    return msg;
  }
  const bool inner = !conforming && target_dpl < cpl;
  // The stack (SDM Vol. 3 §6.14.4, §6.14.5): the IST one if the gate names it, else RSPn of the
  // TSS for the new CPL n on a privilege change, else the current one.
  uint64_t rsp = area_[kSlotRegs + kRegRsp];
  if (ist || inner) {
    uc_x86_mmr tr{};
    uc_reg_read(uc_, UC_X86_REG_TR, &tr);
    const uint64_t offset = ist ? 0x24 + (ist - 1) * 8 : 4 + 8 * target_dpl;
    if (offset + 7 > tr.limit) {
      snprintf(msg, sizeof msg, "the TSS has no %s (TR limit 0x%x: the CPU raises #TS)", ist ? "IST pointer" : "stack for the new CPL", tr.limit);
      return msg;
    }
    err = AccessVirtual(tr.base + offset, reinterpret_cast<uint8_t*>(&rsp), 8, false);
    if (!err.empty()) return std::string(ist ? "cannot read the IST pointer from the TSS: " : "cannot read the new stack pointer from the TSS: ") + err;
  }
  uint64_t ss = 0;
  uc_reg_read(uc_, UC_X86_REG_SS, &ss);
  uint64_t rflags = area_[kSlotRegs + kRegRflags];
  uint64_t frame[6];
  int n = 0;
  if (has_error_code) frame[n++] = error_code;
  frame[n++] = area_[kSlotRegs + kRegRip];
  frame[n++] = cs.selector;
  frame[n++] = rflags | (resume ? kRF : 0);
  frame[n++] = area_[kSlotRegs + kRegRsp];
  frame[n++] = ss;
  uint64_t new_rsp = (rsp & ~0xFull) - uint64_t(n) * 8;
  err = AccessVirtual(new_rsp, reinterpret_cast<uint8_t*>(frame), n * 8, true);
  if (!err.empty()) return "cannot push the exception frame: " + err;
  rflags &= ~(kTF | kNT | kRF | (type == 0xE ? kIF : 0));
  uc_reg_write(uc_, UC_X86_REG_RFLAGS, &rflags);
  if (inner) {
    // CS with RPL = the new CPL, SS = NULL with the same RPL (SDM Vol. 3 §6.14.4), from 64-bit
    // and compatibility mode alike.
    err = RaisePrivilege(cs, selector, target.raw, target_dpl);
    if (!err.empty()) return err;
  } else if (cs.bits != 64) {
    // From compatibility mode: the CPU must reload CS to enter 64-bit mode. The stub's far jump
    // runs in 32-bit code, so it lands below 4 GiB; RIP then moves to the 64-bit handler.
    err = FarJump(cs.bits, cs.base, selector, 0, 0xffffffffull, handler);
    if (!err.empty()) return err;
  } else if ((selector & ~3u) != (cs.selector & ~3u)) {
    // Both 64-bit code segments (base 0, no limit): only the selector differs, which Unicorn
    // can write in UC_MODE_64. Its RPL is CPL, which does not change here (SDM Vol. 3 §6.12.1.1:
    // a conforming handler runs at the current CPL).
    uint64_t sel = (selector & ~3u) | cpl;
    uc_reg_write(uc_, UC_X86_REG_CS, &sel);
  }
  uc_reg_write(uc_, UC_X86_REG_RSP, &new_rsp);
  uc_reg_write(uc_, UC_X86_REG_RIP, &handler);
  return "";
}

// Fault storms (issue 10). A delivery whose handler faults again before it starts (SNP: the #VC
// handler on a page the guest may not fetch from; TDX: a #VE/#DF handler on a page it cannot
// reach) is answered by the platform model with the same delivery again, ~1,400 times, until the
// pushed frames walk the stack into the GDT or the page tables and a delivery fails. The model's
// answer to a gate-fault exit is a function of the exit (kind, GPA, GVA, access, space, page-walk
// and other flags, RIP) and of the model's own state (RMP, nested tables, gate), which only
// JavaScript changes, and no JavaScript runs between the runs of this loop. So when a run ends in
// exactly the exit being answered - the same run-area words, at the RIP the delivery entered,
// with the instruction count unchanged (counting mode: nothing started in between, so the guest's
// registers other than the frame's RSP/RFLAGS are what they were) and no foreign-content read to
// report - the answer is that delivery again. It is made here, through the same Inject (the frame
// pushed through the guest's tables as before, the same charges) and Run (the same exit charge,
// budget check and watches), without a round trip through JavaScript per delivery; the caller
// records one event per delivery, from kSlotHostResult (the repeats << 1 | whether a run is
// held). Anything else stops the loop: a delivery failure (returned), a delivery that entered
// elsewhere (returned: the next run is the caller's), or a run that ended otherwise (a different
// exit, a budget or watch stop, a fatal exit, a Unicorn error), which is held for the next Run(),
// so that the caller sees it as its own next run (with the run area's instruction count as before
// it until then). Outside counting mode, or when the exit being answered is not a gate fault,
// this is Inject.
std::string Machine::InjectRepeating(uint8_t vector, bool has_error_code, uint64_t error_code, const uint64_t* cr2, bool resume) {
  uint64_t* a = area_;
  a[kSlotHostResult] = 0;
  run_held_ = false;
  // Dirty registers would mean the caller changed the vCPU after the exit: then the exit's RIP
  // in the run area is not the fault's, and the storm is not recognised (plain Inject).
  const bool storm_possible = config_.count_instructions && !emulator_aborted_ &&
                              a[kSlotKind] == static_cast<uint64_t>(ExitKind::kGateFault) &&
                              a[kSlotForeignReads] == 0 && a[kSlotDirtyRegs] == 0;
  const uint64_t fault[6] = {a[kSlotKind], a[kSlotArg0], a[kSlotArg1], a[kSlotArg2], a[kSlotArg3], a[kSlotRegs + kRegRip]};
  const uint64_t instructions = a[kSlotInstructions];
  std::string err = Inject(vector, has_error_code, error_code, cr2, resume);
  // Only a handler whose entry is the faulting RIP can fault there again with nothing started.
  if (!storm_possible || !err.empty() || a[kSlotRegs + kRegRip] != fault[5]) return err;
  // A bound on one call (the loop is also bounded by the budget's per-run and per-delivery
  // charges): the caller then handles the held exit and calls again, with the same result.
  constexpr uint64_t kMaxRepeatsPerCall = 1u << 20;
  for (uint64_t repeats = 0;;) {
    const uc_err e = Run();
    const bool same = e == UC_ERR_OK && repeats < kMaxRepeatsPerCall && a[kSlotInstructions] == instructions &&
                      a[kSlotForeignReads] == 0 && a[kSlotKind] == fault[0] && a[kSlotArg0] == fault[1] &&
                      a[kSlotArg1] == fault[2] && a[kSlotArg2] == fault[3] && a[kSlotArg3] == fault[4] &&
                      a[kSlotRegs + kRegRip] == fault[5];
    if (!same) {
      // Until the caller takes that run, it records the storm's events, which read the
      // instruction count as it was at each delivery: put that back until the held Run().
      run_held_ = true;
      held_run_result_ = e;
      held_instructions_ = a[kSlotInstructions];
      a[kSlotInstructions] = instructions;
      a[kSlotHostResult] = repeats << 1 | 1;
      return "";
    }
    a[kSlotHostResult] = ++repeats << 1;
    err = Inject(vector, has_error_code, error_code, cr2, resume);
    if (!err.empty() || a[kSlotRegs + kRegRip] != fault[5]) return err;
  }
}

}  // namespace minivisor
