// Guest-physical RAM and the per-4-KiB-page bitmaps that sit beside it.
//
// RAM is one anonymous MAP_NORESERVE mapping, so a 1 TiB guest costs host memory only for the
// pages it touches. The bitmaps are mapped the same way: a bit per guest page is 32 MiB for
// 1 TiB, and untouched bitmap pages cost nothing either.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace minivisor {

constexpr uint64_t kPageShift = 12;
constexpr uint64_t kPageSize = 1ull << kPageShift;

// An anonymous, lazily committed host mapping. Reference-counted so that ArrayBuffer windows
// handed to JavaScript keep it alive after the VM that made it is closed.
class HostMapping {
 public:
  static HostMapping* Create(uint64_t bytes);  // nullptr when mmap fails
  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  void Ref() { refs_.fetch_add(1); }
  void Unref();

 private:
  HostMapping(uint8_t* base, uint64_t size) : base_(base), size_(size) {}
  ~HostMapping();
  uint8_t* base_;
  uint64_t size_;
  std::atomic<int> refs_{1};
};

// One bit per guest page over a lazily committed mapping.
class PageBitmap {
 public:
  explicit PageBitmap(uint64_t pages);
  ~PageBitmap();
  PageBitmap(const PageBitmap&) = delete;
  PageBitmap& operator=(const PageBitmap&) = delete;
  bool ok() const { return words_ != nullptr; }
  uint64_t pages() const { return pages_; }
  bool Test(uint64_t page) const { return (words_[page >> 6] >> (page & 63)) & 1; }
  void Set(uint64_t page) { words_[page >> 6] |= 1ull << (page & 63); }
  // Sets or clears [first, first + count). Whole words are written with memset-like loops.
  void Assign(uint64_t first, uint64_t count, bool value);
  // Counts set bits in [first, first + count).
  uint64_t Count(uint64_t first, uint64_t count) const;
  void ClearAll();
  uint64_t* words() const { return words_; }
  uint64_t word_count() const { return (pages_ + 63) / 64; }
  uint64_t byte_size() const { return word_count() * 8; }

 private:
  uint64_t pages_;
  uint64_t* words_;
  uint64_t mapped_bytes_;
};

// A set of pages that costs work in proportion to its members, not to the guest: a bitmap for
// membership plus the list of members, so emptying or listing it never scans untouched memory.
class PageSet {
 public:
  explicit PageSet(uint64_t pages) : bits_(pages) {}
  bool ok() const { return bits_.ok(); }
  bool Contains(uint64_t page) const { return bits_.Test(page); }
  void Insert(uint64_t page) {
    if (bits_.Test(page)) return;
    bits_.Set(page);
    list_.push_back(page);
  }
  void InsertRange(uint64_t first, uint64_t count) {
    for (uint64_t p = first; p < first + count; p++) Insert(p);
  }
  // Removes one member; its stale list entry goes at the next Members().
  void Erase(uint64_t page) { bits_.Assign(page, 1, false); }
  // Members in [first, first + count); counts in whole bitmap words, so a 2 MiB range is 8 words.
  uint64_t CountIn(uint64_t first, uint64_t count) const { return bits_.Count(first, count); }
  // The members, sorted and each once.
  const std::vector<uint64_t>& Members();
  // Members inserted and not erased since the last Clear (exact while nothing is erased).
  size_t inserted() const { return list_.size(); }
  void Clear() {
    for (uint64_t p : list_) bits_.Assign(p, 1, false);
    list_.clear();
  }

 private:
  PageBitmap bits_;
  std::vector<uint64_t> list_;
};

// Appends the page indexes of `mapping` that are resident in host memory (mincore), i.e. every
// page that may hold something other than zeros.
void ResidentPages(const uint8_t* base, uint64_t bytes, std::vector<uint64_t>* out);

}  // namespace minivisor
