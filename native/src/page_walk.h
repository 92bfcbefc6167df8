// The guest's own 4-level page-table walk, done by the TLB-fill hook (Unicorn's UC_TLB_VIRTUAL
// mode replaces QEMU's MMU, so the walk is ours; ../shared/reference/unicorn.md §2).
//
// Supervisor-mode semantics only: the guests this models run at CPL 0, so U/S, SMEP/SMAP and
// protection keys are not checked. Accessed/Dirty bits are not written back. LA57 is not modelled.
#pragma once
#include <cstdint>

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
constexpr uint32_t kPfReserved = 1u << 3;
constexpr uint32_t kPfFetch = 1u << 4;

struct Translation {
  enum Status : uint8_t { kOk, kPageFault, kTableBlocked } status = kOk;
  uint64_t gpa = 0;          // physical address with the marker stripped
  bool is_private = true;
  bool writable = true;      // what the page tables allow (not the page gate)
  bool executable = true;
  uint8_t level = 0;         // leaf level: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB, 0 = paging off
  uint32_t pf_error = 0;     // kPageFault
  uint64_t blocked_gpa = 0;  // kTableBlocked: the table page the walk could not read
};

// Reads one 8-byte paging-structure entry at a guest-physical address. Returns false when the
// table page is outside RAM or the page gate refuses a private read of it.
class TableReader {
 public:
  virtual ~TableReader() = default;
  virtual bool ReadEntry(uint64_t gpa, uint64_t* value) = 0;
};

Translation Translate(const CpuPaging& cpu, const MarkerConfig& marker, uint64_t va, Access access,
                      TableReader& tables);

}  // namespace minivisor
