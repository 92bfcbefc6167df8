// Guest-physical RAM and the per-4-KiB-page bitmaps that sit beside it.
//
// RAM is one anonymous MAP_NORESERVE mapping, so a 1 TiB guest costs host memory only for the
// pages it touches. The bitmaps are mapped the same way: a bit per guest page is 32 MiB for
// 1 TiB, and untouched bitmap pages cost nothing either.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "populate.h"

namespace minivisor {

constexpr uint64_t kPageShift = 12;
constexpr uint64_t kPageSize = 1ull << kPageShift;

// An anonymous, lazily committed host mapping. Reference-counted so that ArrayBuffer windows
// handed to JavaScript keep it alive after the VM that made it is closed.
//
// Large guests are reserved in pieces: a 64 TiB guest is half of the 128 TiB user address space,
// and V8 scatters its own reservations over it, so one contiguous range is there only sometimes.
// Create tries one mapping, then pieces of half the size, and so on down to 1 GiB (Unicorn maps
// RAM in 1 GiB chunks, so no chunk ever straddles two pieces). Pieces are all the same power-of-two
// size, so finding an address is a shift and an index.
class HostMapping {
 public:
  static constexpr int kMinPieceShift = 30;
  // nullptr when the address space cannot hold it. `huge_pages`: ask for transparent huge pages
  // (MADV_HUGEPAGE), for guest RAM (MachineOptions.ramPaging 'huge-pages'): a page fault then maps
  // 2 MiB rather than 4 KiB. Each 2 MiB a guest touches costs that much host memory; a partial
  // MADV_DONTNEED (restore, zeroing) splits the huge page back.
  static HostMapping* Create(uint64_t bytes, bool huge_pages = false);
  uint64_t size() const { return size_; }
  // The host address of `offset`; contiguous up to the end of its piece (ContiguousFrom).
  uint8_t* At(uint64_t offset) const { return pieces_[offset >> piece_shift_] + (offset & piece_mask_); }
  uint64_t ContiguousFrom(uint64_t offset) const {
    uint64_t left = size_ - offset, in_piece = piece_mask_ - (offset & piece_mask_) + 1;
    return left < in_piece ? left : in_piece;
  }
  size_t piece_count() const { return pieces_.size(); }
  // Calls f(host, offset, length) for each contiguous run of [offset, offset + length).
  template <typename F>
  void ForEachRun(uint64_t offset, uint64_t length, F f) const {
    while (length) {
      uint64_t n = ContiguousFrom(offset);
      if (n > length) n = length;
      f(At(offset), offset, n);
      offset += n;
      length -= n;
    }
  }
  void Ref() { refs_.fetch_add(1); }
  void Unref();
  // Whether a window (a JavaScript ArrayBuffer) still refers to the mapping besides its machine.
  bool shared() const { return refs_.load() != 1; }

 private:
  HostMapping(uint64_t size, int piece_shift, std::vector<uint8_t*> pieces)
      : size_(size), piece_shift_(piece_shift), piece_mask_((1ull << piece_shift) - 1), pieces_(std::move(pieces)) {}
  ~HostMapping();
  uint64_t size_;
  int piece_shift_;
  uint64_t piece_mask_;
  std::vector<uint8_t*> pieces_;
  std::atomic<int> refs_{1};
};

// One bit per guest page over a lazily committed mapping.
//
// It also keeps which 4 KiB pages of its own mapping may hold set bits (touched): clearing then
// writes zeros to those pages only, and leaves them mapped. Handing cleared pages back to the
// kernel (MADV_DONTNEED) is kept for clears that would write many: on this paravirtualised host a
// madvise of a multi-threaded process costs a TLB shootdown across CPUs, and every page handed back
// costs a fault when it is read again; a fresh launch's VM, reset and set up again, did that for
// ~30 of its bitmaps (~15% of a launch's CPU time, issue 10).
class PageBitmap {
 public:
  explicit PageBitmap(uint64_t pages);
  ~PageBitmap();
  PageBitmap(const PageBitmap&) = delete;
  PageBitmap& operator=(const PageBitmap&) = delete;
  bool ok() const { return words_ != nullptr; }
  uint64_t pages() const { return pages_; }
  bool Test(uint64_t page) const { return (words_[page >> 6] >> (page & 63)) & 1; }
  void Set(uint64_t page) {
    words_[page >> 6] |= 1ull << (page & 63);
    Touch(page >> kPagesPerBitmapPageShift);
  }
  void Clear(uint64_t page) { words_[page >> 6] &= ~(1ull << (page & 63)); }
  // Sets or clears [first, first + count). Whole words are written with memset-like loops.
  void Assign(uint64_t first, uint64_t count, bool value);
  // Counts set bits in [first, first + count).
  uint64_t Count(uint64_t first, uint64_t count) const;
  void ClearAll();
  const uint64_t* words() const { return words_; }
  // The 4 KiB page `index` of the mapping, to be written directly (a snapshot restores them whole).
  uint8_t* WritablePage(uint64_t index) {
    Touch(index);
    return reinterpret_cast<uint8_t*>(words_) + index * kPageSize;
  }
  uint64_t word_count() const { return (pages_ + 63) / 64; }
  uint64_t byte_size() const { return word_count() * 8; }

 private:
  // Guest pages one 4 KiB page of the bitmap covers (32,768).
  static constexpr uint64_t kPagesPerBitmapPageShift = kPageShift + 3;
  // More touched pages than this (1 MiB of bitmap) in one clear go back to the kernel instead.
  static constexpr uint64_t kMaxPagesClearedInPlace = 256;
  void Touch(uint64_t index) { touched_[index >> 6] |= 1ull << (index & 63); }
  bool Touched(uint64_t index) const { return (touched_[index >> 6] >> (index & 63)) & 1; }
  void Untouch(uint64_t index) { touched_[index >> 6] &= ~(1ull << (index & 63)); }
  // Zeros the words [first, first + count) of one touched bitmap page, or all of it.
  void ClearWords(uint64_t first, uint64_t count);

  uint64_t pages_;
  uint64_t* words_;
  uint64_t mapped_bytes_;
  std::vector<uint64_t> touched_;  // a bit per 4 KiB page of the mapping: it may hold set bits
};

// A set of pages that costs work in proportion to its members, not to the guest: a bitmap for
// membership plus the list of members, so emptying or listing it never scans untouched memory.
class PageSet {
 public:
  explicit PageSet(uint64_t pages) : bits_(pages) {}
  // Room for `members` in the list up front, its pages populated in one call: growing it one
  // doubling at a time copied every member into fresh memory each time, and a fresh page
  // touched costs a fault (issue 11; a default boot lists ~18,300 pages, ~70 faults a list).
  void Reserve(uint64_t members) {
    list_.reserve(std::min(members, bits_.pages()));
    PopulateWholePages(list_.data(), list_.capacity() * sizeof(uint64_t));
  }
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
  void Erase(uint64_t page) { bits_.Clear(page); }
  // Members in [first, first + count); counts in whole bitmap words, so a 2 MiB range is 8 words.
  uint64_t CountIn(uint64_t first, uint64_t count) const { return bits_.Count(first, count); }
  // The members, sorted and each once.
  const std::vector<uint64_t>& Members();
  // Members inserted and not erased since the last Clear (exact while nothing is erased).
  size_t inserted() const { return list_.size(); }
  void Clear() {
    for (uint64_t p : list_) bits_.Clear(p);
    list_.clear();
  }

 private:
  PageBitmap bits_;
  std::vector<uint64_t> list_;
};

// Appends the page indexes of `mapping` that are resident in host memory (mincore), i.e. every
// page that may hold something other than zeros.
void ResidentPages(const uint8_t* base, uint64_t bytes, std::vector<uint64_t>* out);
void ResidentPages(const HostMapping& mapping, std::vector<uint64_t>* out);

}  // namespace minivisor
