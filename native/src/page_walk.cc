#include "page_walk.h"

namespace minivisor {

namespace {

constexpr uint64_t kPresent = 1ull << 0;
constexpr uint64_t kWritable = 1ull << 1;
constexpr uint64_t kPageSizeBit = 1ull << 7;
constexpr uint64_t kExecuteDisable = 1ull << 63;

uint64_t Bits(int hi, int lo) { return ((hi >= 63 ? ~0ull : ((1ull << (hi + 1)) - 1))) & ~((1ull << lo) - 1); }

// Applies the marker to a translated physical address: strips it and says which space it names.
void ApplyMarker(const MarkerConfig& m, uint64_t phys, Access access, Translation* t) {
  if (m.bit < 0) {
    t->gpa = phys;
    t->is_private = true;
    return;
  }
  uint64_t bit = 1ull << m.bit;
  bool set = phys & bit;
  t->gpa = phys & ~bit;
  t->is_private = set == m.set_means_private;
  if (access == Access::kFetch && m.fetch_always_private) t->is_private = true;
}

}  // namespace

Translation Translate(const CpuPaging& cpu, const MarkerConfig& marker, uint64_t va, Access access,
                      TableReader& tables) {
  Translation t;
  if (!cpu.paging()) {
    ApplyMarker(marker, va, access, &t);
    if (marker.private_when_paging_off) t.is_private = true;
    return t;
  }

  uint64_t marker_bit = marker.bit >= 0 ? 1ull << marker.bit : 0;
  uint64_t addr_mask = Bits(51, 12) & ~marker_bit;
  uint64_t reserved = marker.max_phys_bits < 52 ? Bits(51, marker.max_phys_bits) & ~marker_bit : 0;
  if (!cpu.nx_enabled()) reserved |= kExecuteDisable;

  auto fault = [&](uint32_t bits) {
    t.status = Translation::kPageFault;
    t.pf_error = bits | (access == Access::kWrite ? kPfWrite : 0) | (access == Access::kFetch ? kPfFetch : 0);
    return t;
  };

  uint64_t table = cpu.cr3 & addr_mask;
  bool writable = true, executable = true;
  for (int level = 4; level >= 1; level--) {
    int shift = 12 + 9 * (level - 1);
    uint64_t entry_gpa = table + ((va >> shift) & 511) * 8;
    uint64_t entry;
    if (!tables.ReadEntry(entry_gpa, &entry)) {
      t.status = Translation::kTableBlocked;
      t.blocked_gpa = entry_gpa & ~(uint64_t)0xfff;
      return t;
    }
    if (!(entry & kPresent)) return fault(0);
    uint64_t rsvd = reserved;
    bool leaf = level == 1 || ((level == 2 || level == 3) && (entry & kPageSizeBit));
    if (level == 4) rsvd |= kPageSizeBit;  // PS is reserved in a PML4E
    if (leaf && level == 3) rsvd |= Bits(29, 13);
    if (leaf && level == 2) rsvd |= Bits(20, 13);
    if (entry & rsvd) return fault(kPfPresent | kPfReserved);
    writable = writable && (entry & kWritable);
    executable = executable && !(cpu.nx_enabled() && (entry & kExecuteDisable));
    if (leaf) {
      uint64_t page_mask = (1ull << shift) - 1;
      uint64_t frame = entry & addr_mask & ~page_mask;
      // The marker bit may sit inside a large page's frame bits; keep it for ApplyMarker.
      uint64_t phys = frame | (entry & marker_bit) | (va & page_mask);
      if (!cpu.write_protect()) writable = true;  // CR0.WP=0: supervisor writes ignore R/W
      t.writable = writable;
      t.executable = executable;
      t.level = static_cast<uint8_t>(level);
      if (access == Access::kWrite && !writable) return fault(kPfPresent);
      if (access == Access::kFetch && !executable) return fault(kPfPresent);
      ApplyMarker(marker, phys, access, &t);
      return t;
    }
    table = entry & addr_mask;
  }
  return t;  // unreachable: level 1 is always a leaf
}

}  // namespace minivisor
