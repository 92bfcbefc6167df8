// The guest's own 4-level page-table walk, done by the TLB-fill hook (Unicorn's UC_TLB_VIRTUAL
// mode replaces QEMU's MMU, so the walk is ours; ../shared/reference/unicorn.md §2).
//
// Walk gives what a supervisor-mode access gets (CPL < 3, or an implicit supervisor access such as
// a descriptor-table read at any CPL: Intel SDM Vol. 3A §4.6.1): the U/S bits are collected but
// not checked, and R/W is ignored by writes while CR0.WP = 0. UserAccess turns that into what a
// user-mode access (CPL 3) gets (SDM Vol. 3A §4.6.1, AMD APM Vol. 2 §5.6): U/S = 1 at every level
// for any access, R/W = 1 at every level for a write whatever CR0.WP holds, and the error code's
// U/S bit (bit 2, §4.7) on every #PF, not-present and reserved-bit ones included. Which accesses
// are user-mode ones is the TLB-fill hook's to decide (machine.cc Machine::UserModeFill).
// Not modelled: SMEP and SMAP (the emulator's CR4 keeps SMEP but never SMAP: QEMU's
// cpu_x86_update_cr4 clears SMAP without the CPUID feature, and neither platform offers either),
// protection keys. Accessed/Dirty bits are not written back. LA57 is not modelled.
#pragma once
#include <cstdint>
#include <cstring>

namespace minivisor {

enum class Access : uint8_t { kRead = 0, kWrite = 1, kFetch = 2 };

// How a translated physical address says "private" or "shared".
// TDX: the shared bit (GPAW-1) of the GPA, set = shared. SNP: the C-bit of the PTE, set = private.
struct MarkerConfig {
  int bit = -1;                          // -1: no marker, everything is private
  bool set_means_private = false;
  bool private_when_paging_off = false;  // SNP: with CR0.PG=0 every access is private (APM 2 §15.34.5)
  bool fetch_always_private = false;     // SNP: instruction fetches are always private (APM 2 §15.34.5)
  int max_phys_bits = 52;                // bits [51:max_phys_bits] of an entry are reserved (#PF RSVD)
};

struct CpuPaging {
  uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0;
  bool paging() const { return cr0 & (1ull << 31); }
  bool write_protect() const { return cr0 & (1ull << 16); }
  bool nx_enabled() const { return efer & (1ull << 11); }
};

// #PF error-code bits (Intel SDM Vol. 3 §4.7).
constexpr uint32_t kPfPresent = 1u << 0;
constexpr uint32_t kPfWrite = 1u << 1;
constexpr uint32_t kPfUser = 1u << 2;
constexpr uint32_t kPfReserved = 1u << 3;
constexpr uint32_t kPfFetch = 1u << 4;

// IA-32e linear addresses with 4-level paging are canonical when bits 63:47 are all equal
// (Intel SDM Vol. 3A §3.3.7.1); the walk itself uses bits 47:0 only.
inline bool IsCanonical48(uint64_t va) { return static_cast<uint64_t>(static_cast<int64_t>(va << 16) >> 16) == va; }

struct Translation {
  // kNonCanonical: only from the TLB-fill path (Machine::TranslateForFill), never packed for JS.
  enum Status : uint8_t { kOk, kPageFault, kTableBlocked, kNonCanonical } status = kOk;
  uint64_t gpa = 0;          // physical address with the marker stripped
  bool is_private = true;
  bool writable = true;      // what the page tables allow (not the page gate)
  bool executable = true;
  bool user = true;          // U/S = 1 at every level (paging off: true)
  bool read_write = true;    // R/W = 1 at every level (paging off: true)
  uint8_t level = 0;         // leaf level: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB, 0 = paging off
  uint32_t pf_error = 0;     // kPageFault
  uint64_t blocked_gpa = 0;  // kTableBlocked: the table page the walk could not read
};

// The walk, split in two: what depends only on the registers and the marker (masks, the root
// table) is computed once when a PageWalker is made, and Walk does the rest for one address. The
// TLB-fill hook keeps its walker between fills (Machine::TranslateForFill); the walk's own set-up
// and its loop over levels were most of its cost per fill (issue 11).
//
// `Reader` has `bool ReadEntry(uint64_t gpa, uint64_t* value, const uint8_t** where)`: reads one
// 8-byte paging-structure entry at a guest-physical address and says where it is in host memory,
// and returns false when the table page is outside RAM or the page gate refuses a private read of
// it. A template, so the walk is inlined with its reader.
//
// A WalkMemo lets the next walk in the same 2 MiB start below the entries this one read above its
// leaf's table (or down to a large leaf): the TLB-fill hook's fills come mostly in runs through the
// same tables. They are compared with what is in memory now, so a guest that rewrites them is
// walked afresh; everything else they depend on (the walker, the page gate of their tables, RAM)
// is the memo owner's to keep still, or to Clear() the memo.
//
// It also keeps the last 4 KiB table a walk read a PTE from, by its guest-physical address: the
// reader's answer for a table page (inside RAM, readable through the gate, where it is in host
// memory) holds as long as the memo does, so the next PTE read from that table skips the reader.
// Comparing the held entries in one expression (unused slots compare a zero with itself) and
// skipping the reader took ~45 of the ~300 host instructions of a TLB fill (issue 10).
struct WalkMemo {
  static constexpr uint64_t kZero = 0;  // what unused slots of `where` point to
  uint64_t region = ~0ull;  // va >> 21 of the walk that filled it; ~0: empty
  int count = 0;            // entries held, from level 4 down
  bool leaf = false;        // the last of them is the leaf (a 1 GiB or 2 MiB page)
  const uint8_t* where[3] = {Unused(), Unused(), Unused()};
  uint64_t value[3] = {};
  uint64_t all = ~0ull, any = 0;  // AND and OR of the values (the walk's R/W and XD so far)
  uint64_t leaf_table_gpa = ~0ull;       // the last table a PTE was read from; ~0: none
  const uint8_t* leaf_table = nullptr;   // where it is in host memory
  static const uint8_t* Unused() { return reinterpret_cast<const uint8_t*>(&kZero); }
  // Starts holding the entries of a walk in another region (the leaf table stays).
  void Restart(uint64_t new_region) {
    region = new_region;
    count = 0;
    leaf = false;
    for (int i = 0; i < 3; i++) {
      where[i] = Unused();
      value[i] = 0;
    }
  }
  void Clear() {
    Restart(~0ull);
    leaf_table_gpa = ~0ull;
    leaf_table = nullptr;
  }
  // The held entries are what memory holds now.
  bool Holds(uint64_t in_region) const {
    uint64_t now[3];
    for (int i = 0; i < 3; i++) std::memcpy(&now[i], where[i], 8);
    return region == in_region && count > 0 && ((now[0] ^ value[0]) | (now[1] ^ value[1]) | (now[2] ^ value[2])) == 0;
  }
};

class PageWalker {
 public:
  PageWalker() = default;
  PageWalker(const CpuPaging& cpu, const MarkerConfig& marker) : marker_(marker) {
    paging_ = cpu.paging();
    write_protect_ = cpu.write_protect();
    nx_ = cpu.nx_enabled();
    marker_bit_ = marker.bit >= 0 ? 1ull << marker.bit : 0;
    addr_mask_ = Bits(51, 12) & ~marker_bit_;
    reserved_ = marker.max_phys_bits < 52 ? Bits(51, marker.max_phys_bits) & ~marker_bit_ : 0;
    if (!nx_) reserved_ |= kExecuteDisable;
    root_ = cpu.cr3 & addr_mask_;
  }

  // `memo`: null, or one that only walks of this walker filled. Always inlined: the TLB-fill hook's
  // walk (Machine::TranslateForFill).
  template <typename Reader>
  inline __attribute__((always_inline)) Translation Walk(uint64_t va, Access access, Reader& tables, WalkMemo* memo = nullptr) const;

 private:
  static constexpr uint64_t kPresent = 1ull << 0;
  static constexpr uint64_t kWritable = 1ull << 1;
  static constexpr uint64_t kUser = 1ull << 2;
  static constexpr uint64_t kPageSizeBit = 1ull << 7;
  static constexpr uint64_t kExecuteDisable = 1ull << 63;
  static constexpr uint64_t Bits(int hi, int lo) { return ((hi >= 63 ? ~0ull : ((1ull << (hi + 1)) - 1))) & ~((1ull << lo) - 1); }

  // Applies the marker to a translated physical address: strips it and says which space it names.
  void ApplyMarker(uint64_t phys, Access access, Translation* t) const {
    if (marker_.bit < 0) {
      t->gpa = phys;
      t->is_private = true;
      return;
    }
    bool set = phys & marker_bit_;
    t->gpa = phys & ~marker_bit_;
    t->is_private = set == marker_.set_means_private;
    if (access == Access::kFetch && marker_.fetch_always_private) t->is_private = true;
  }

  MarkerConfig marker_;
  bool paging_ = false, write_protect_ = false, nx_ = false;
  uint64_t marker_bit_ = 0, addr_mask_ = 0, reserved_ = 0, root_ = 0;
};

template <typename Reader>
Translation PageWalker::Walk(uint64_t va, Access access, Reader& tables, WalkMemo* memo) const {
  Translation t;
  if (!paging_) {
    ApplyMarker(va, access, &t);
    if (marker_.private_when_paging_off) t.is_private = true;
    return t;
  }
  const uint32_t access_bits = (access == Access::kWrite ? kPfWrite : 0) | (access == Access::kFetch ? kPfFetch : 0);

  // Levels 4 (PML4E) to 1 (PTE); each may fail as the SDM orders it (Vol. 3 §4.5.4): the table is
  // unreadable, the entry is not present, or a reserved bit is set. PS is reserved in a PML4E; in
  // a PDPTE or PDE it makes the entry the leaf, whose frame's low bits then are reserved.
  uint64_t table = root_;
  uint64_t all = ~0ull;  // AND of the entries: R/W of every level
  uint64_t any = 0;      // OR of the entries: XD of any level
  uint64_t entry = 0;
  int level = 4;
  bool leaf = false;
  if (memo) {
    const uint64_t region = va >> 21;
    if (memo->Holds(region)) {
      // The held entries passed every check before, with the same walker and tables.
      all = memo->all;
      any = memo->any;
      entry = memo->value[memo->count - 1];
      level = 4 - memo->count + 1;
      leaf = memo->leaf;
      if (!leaf) {
        table = entry & addr_mask_;
        level--;
      }
    } else {
      memo->Restart(region);
    }
  }
  for (; !leaf; level--) {
    const int shift = 12 + 9 * (level - 1);
    const uint64_t entry_gpa = table + ((va >> shift) & 511) * 8;
    const uint8_t* where = nullptr;
    if (level == 1 && memo && table == memo->leaf_table_gpa) {
      where = memo->leaf_table + (entry_gpa & 0xfff);
      std::memcpy(&entry, where, 8);
    } else if (tables.ReadEntry(entry_gpa, &entry, &where)) {
      if (level == 1 && memo) {
        memo->leaf_table_gpa = table;
        memo->leaf_table = where - (entry_gpa & 0xfff);
      }
    } else {
      if (memo && level > 1) memo->Clear();
      t.status = Translation::kTableBlocked;
      t.blocked_gpa = entry_gpa & ~(uint64_t)0xfff;
      return t;
    }
    if (!(entry & kPresent)) {
      if (memo && level > 1) memo->Clear();
      t.status = Translation::kPageFault;
      t.pf_error = access_bits;
      return t;
    }
    uint64_t rsvd = reserved_;
    leaf = level == 1;
    if (level == 4) {
      rsvd |= kPageSizeBit;
    } else if (level != 1 && (entry & kPageSizeBit)) {
      leaf = true;
      rsvd |= level == 3 ? Bits(29, 13) : Bits(20, 13);
    }
    if (entry & rsvd) {
      if (memo && level > 1) memo->Clear();
      t.status = Translation::kPageFault;
      t.pf_error = kPfPresent | kPfReserved | access_bits;
      return t;
    }
    all &= entry;
    any |= entry;
    if (memo && level > 1) {
      memo->where[memo->count] = where;
      memo->value[memo->count] = entry;
      memo->count++;
      memo->leaf = leaf;
      memo->all = all;
      memo->any = any;
    }
    if (leaf) break;
    table = entry & addr_mask_;
  }
  const uint64_t page_mask = (1ull << (12 + 9 * (level - 1))) - 1;
  const uint64_t frame = entry & addr_mask_ & ~page_mask;
  // The marker bit may sit inside a large page's frame bits; keep it for ApplyMarker.
  const uint64_t phys = frame | (entry & marker_bit_) | (va & page_mask);
  // CR0.WP=0: supervisor writes ignore R/W.
  const bool writable = !write_protect_ || (all & kWritable);
  const bool executable = !(nx_ && (any & kExecuteDisable));
  t.writable = writable;
  t.executable = executable;
  t.user = all & kUser;
  t.read_write = all & kWritable;
  t.level = static_cast<uint8_t>(level);
  if ((access == Access::kWrite && !writable) || (access == Access::kFetch && !executable)) {
    t.status = Translation::kPageFault;
    t.pf_error = kPfPresent | access_bits;
    return t;
  }
  ApplyMarker(phys, access, &t);
  return t;
}

// What a user-mode access gets, from the supervisor-mode walk `t` of the same address and access
// (Intel SDM Vol. 3A §4.6.1 "Determination of Access Rights", §4.7; AMD APM Vol. 2 §5.6): a user
// access is allowed no more than a supervisor one (without SMEP/SMAP), so a supervisor fault stays
// one and only takes the U/S bit; a supervisor success is a protection fault (P = 1, U/S = 1) when
// U/S = 0 at some level, or for a write when R/W = 0 at some level (CR0.WP does not matter at
// CPL 3). With paging off there is no #PF at all.
inline Translation UserAccess(Translation t, Access access) {
  if (t.status == Translation::kPageFault) {
    t.pf_error |= kPfUser;
    return t;
  }
  if (t.status != Translation::kOk || t.level == 0) return t;
  t.writable = t.read_write;
  if (!t.user || (access == Access::kWrite && !t.writable)) {
    t.status = Translation::kPageFault;
    t.pf_error = kPfPresent | kPfUser | (access == Access::kWrite ? kPfWrite : 0) | (access == Access::kFetch ? kPfFetch : 0);
  }
  return t;
}

// True when UserAccess(t, access) may differ from `t`: what a fill then grants depends on the CPL.
inline bool UserAccessDiffers(const Translation& t) {
  return t.status == Translation::kPageFault || (t.status == Translation::kOk && t.level != 0 && (!t.user || (t.writable && !t.read_write)));
}

// One walk with the registers as they are given; `user`: a user-mode access (UserAccess).
template <typename Reader>
Translation Translate(const CpuPaging& cpu, const MarkerConfig& marker, uint64_t va, Access access, Reader& tables, bool user = false) {
  Translation t = PageWalker(cpu, marker).Walk(va, access, tables);
  return user ? UserAccess(t, access) : t;
}

}  // namespace minivisor
