#include "guest_ram.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

namespace minivisor {

// Large reservations (guest RAM, its ciphertext shadow, a huge guest's bitmaps) go to a part of
// the address space of their own, not top-down below the libraries, where mmap puts
// everything else: the emulator's translation buffer too, mapped after the guest's RAM. TCG calls
// a helper of this library (each instruction's counting hook, slow-path loads and stores) directly
// only from within +-2 GiB of it, else through a constant-pool entry whose insertion scans the
// block's pool: quadratic in the block's length. Even a small guest reserves 4 GiB (the firmware
// sits below 4 GiB), which put the buffer out of reach: a fuzz launch that ran into zeroed memory
// spent ~3 ms on each 512-instruction block of it (6 s for one execution, now 2 s; issue 10, perf:
// tcg_out_branch -> new_pool_insert -> memcmp). Only host addresses change; when that range has
// no room, the kernel chooses, as before.
constexpr uint64_t kFarMappingMinBytes = 64ull << 20;
// From 1 TiB to 96 TiB: node is not position-independent (its image and heap sit below 4 GiB) and
// the top-down area starts near 128 TiB, so a 64 TiB guest's RAM fits here too.
constexpr uint64_t kFarBase = 1ull << 40, kFarEnd = 96ull << 40, kFarAlign = 1ull << 30, kFarProbeStep = 1ull << 40;
static std::atomic<uint64_t> g_far_cursor{kFarBase};

static void* MapFar(uint64_t bytes, int prot, int flags) {
  const uint64_t span = (bytes + kFarAlign - 1) & ~(kFarAlign - 1);
  if (span > kFarEnd - kFarBase) return nullptr;
  // Past the end, back to the start: what was unmapped since is free again.
  auto wrapped = [span](uint64_t at) { return at + span > kFarEnd ? kFarBase : at; };
  uint64_t seen = g_far_cursor.load(std::memory_order_relaxed), at;
  do {
    at = wrapped(seen);
  } while (!g_far_cursor.compare_exchange_weak(seen, at + span, std::memory_order_relaxed));
  // Where mappings still in use are in the way, the next TiB boundaries, round the whole range.
  for (uint64_t tries = 0; tries <= (kFarEnd - kFarBase) / kFarProbeStep; tries++) {
    void* p = mmap(reinterpret_cast<void*>(at), bytes, prot, flags | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED) return p;  // (a kernel before 4.17 takes the flag as a hint, and may place it elsewhere)
    if (errno != EEXIST) return nullptr;
    at = wrapped((at & ~(kFarProbeStep - 1)) + kFarProbeStep);
  }
  return nullptr;
}

static void* MapLazily(uint64_t bytes) {
  const int prot = PROT_READ | PROT_WRITE, flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  void* p = bytes >= kFarMappingMinBytes ? MapFar(bytes, prot, flags) : nullptr;
  if (!p) p = mmap(nullptr, bytes, prot, flags, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

HostMapping* HostMapping::Create(uint64_t bytes, bool huge_pages) {
  if (bytes == 0) return nullptr;
  int shift = 0;
  while (shift < 63 && (1ull << shift) < bytes) shift++;
  for (;; shift--) {
    uint64_t piece = 1ull << shift;
    std::vector<uint8_t*> pieces;
    bool ok = true;
    for (uint64_t off = 0; off < bytes; off += piece) {
      void* p = MapLazily(std::min(piece, bytes - off));
      if (!p) { ok = false; break; }
      // Advice only: a kernel without THP (or with it off) refuses it and RAM stays in 4 KiB pages.
      if (huge_pages) madvise(p, std::min(piece, bytes - off), MADV_HUGEPAGE);
      pieces.push_back(static_cast<uint8_t*>(p));
    }
    if (ok) return new HostMapping(bytes, shift, std::move(pieces));
    for (size_t i = 0; i < pieces.size(); i++) munmap(pieces[i], std::min(piece, bytes - i * piece));
    if (shift <= kMinPieceShift) return nullptr;
  }
}

void HostMapping::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

HostMapping::~HostMapping() {
  uint64_t piece = 1ull << piece_shift_;
  for (size_t i = 0; i < pieces_.size(); i++) munmap(pieces_[i], std::min(piece, size_ - i * piece));
}

PageBitmap::PageBitmap(uint64_t pages) : pages_(pages), words_(nullptr), mapped_bytes_(0) {
  uint64_t bytes = ((pages + 63) / 64) * 8;
  mapped_bytes_ = (bytes + kPageSize - 1) & ~(kPageSize - 1);
  if (mapped_bytes_ == 0) mapped_bytes_ = kPageSize;
  words_ = static_cast<uint64_t*>(MapLazily(mapped_bytes_));
  touched_.assign((mapped_bytes_ / kPageSize + 63) / 64, 0);
}

PageBitmap::~PageBitmap() {
  if (words_) munmap(words_, mapped_bytes_);
}

void PageBitmap::ClearWords(uint64_t first, uint64_t count) {
  std::memset(&words_[first], 0, count * 8);
}

void PageBitmap::Assign(uint64_t first, uint64_t count, bool value) {
  if (count == 0) return;
  const uint64_t end = first + count;
  const uint64_t first_index = first >> kPagesPerBitmapPageShift, last_index = (end - 1) >> kPagesPerBitmapPageShift;
  if (value) {
    for (uint64_t i = first_index; i <= last_index; i++) Touch(i);
    uint64_t p = first;
    while (p < end && (p & 63)) words_[p >> 6] |= 1ull << (p & 63), p++;
    if (p + 64 <= end) {
      uint64_t nwords = (end - p) >> 6;
      std::memset(&words_[p >> 6], 0xff, nwords * 8);
      p += nwords << 6;
    }
    while (p < end) words_[p >> 6] |= 1ull << (p & 63), p++;
    return;
  }
  // Clearing: only touched pages of the mapping can hold set bits. Whole pages inside the range go
  // back to the kernel when there are many (a cleared 1 TiB range must not keep 32 MiB of zeros).
  const uint64_t per_page = 1ull << kPagesPerBitmapPageShift;
  if (first_index == last_index) {
    // Within one page of the bitmap (a restore's page-by-page clears): the bits, if it has any.
    if (!Touched(first_index)) return;
    uint64_t p = first;
    while (p < end && (p & 63)) Clear(p++);
    if (p + 64 <= end) {
      uint64_t nwords = (end - p) >> 6;
      ClearWords(p >> 6, nwords);
      p += nwords << 6;
    }
    while (p < end) Clear(p++);
    return;
  }
  uint64_t whole_touched = 0;
  for (uint64_t i = first_index; i <= last_index; i++) {
    if (!touched_[i >> 6]) { i |= 63; continue; }
    whole_touched += Touched(i) && i * per_page >= first && (i + 1) * per_page <= end;
  }
  const bool give_back = whole_touched > kMaxPagesClearedInPlace;
  for (uint64_t i = first_index; i <= last_index; i++) {
    if (!touched_[i >> 6]) { i |= 63; continue; }
    if (!Touched(i)) continue;
    const uint64_t lo = std::max(first, i * per_page), hi = std::min(end, (i + 1) * per_page);
    if (lo == i * per_page && hi == (i + 1) * per_page) {
      if (give_back) madvise(reinterpret_cast<uint8_t*>(words_) + i * kPageSize, kPageSize, MADV_DONTNEED);
      else ClearWords(lo >> 6, per_page >> 6);
      Untouch(i);
      continue;
    }
    uint64_t p = lo;
    while (p < hi && (p & 63)) words_[p >> 6] &= ~(1ull << (p & 63)), p++;
    if (p + 64 <= hi) {
      uint64_t nwords = (hi - p) >> 6;
      ClearWords(p >> 6, nwords);
      p += nwords << 6;
    }
    while (p < hi) words_[p >> 6] &= ~(1ull << (p & 63)), p++;
  }
}

uint64_t PageBitmap::Count(uint64_t first, uint64_t count) const {
  // A page of the mapping nothing set a bit in counts none, unread: reading it would map the
  // kernel's zero page, and the first write after that is a second fault. SetGate counts the
  // pages it changes before it assigns them, so an eager acceptance paid two faults for each fresh
  // page of every bitmap it counted, and most of those bitmaps are never set (issue 11).
  uint64_t end = first + count, n = 0, p = first;
  while (p < end) {
    const uint64_t index = p >> kPagesPerBitmapPageShift;
    const uint64_t stop = std::min(end, (index + 1) << kPagesPerBitmapPageShift);
    if (!Touched(index)) {
      p = stop;
      continue;
    }
    while (p < stop && (p & 63)) n += Test(p++);
    while (p + 64 <= stop) { n += __builtin_popcountll(words_[p >> 6]); p += 64; }
    while (p < stop) n += Test(p++);
  }
  return n;
}

void PageBitmap::ClearAll() {
  uint64_t touched = 0;
  for (uint64_t w : touched_) touched += __builtin_popcountll(w);
  if (touched > kMaxPagesClearedInPlace) {
    // Giving the pages back keeps a cleared 1 TiB bitmap free of resident memory.
    madvise(words_, mapped_bytes_, MADV_DONTNEED);
  } else {
    for (size_t w = 0; w < touched_.size(); w++) {
      for (uint64_t bits = touched_[w]; bits; bits &= bits - 1) {
        uint64_t index = w * 64 + __builtin_ctzll(bits);
        ClearWords(index * (kPageSize / 8), kPageSize / 8);
      }
    }
  }
  std::fill(touched_.begin(), touched_.end(), 0);
}

const std::vector<uint64_t>& PageSet::Members() {
  // Every set bit was inserted, so it is in the list: when the list's span is a few bitmap words
  // per member, the members are read back from the bitmap in order instead of sorting the list.
  // A fuzz execution's restore sorted its ~500 dirty pages (~1% of its instructions, issue 10).
  if (list_.size() > 1) {
    uint64_t lo = list_[0], hi = list_[0];
    for (uint64_t p : list_) {
      lo = p < lo ? p : lo;
      hi = p > hi ? p : hi;
    }
    const uint64_t first_word = lo >> 6, last_word = hi >> 6;
    if (last_word - first_word < 4 * list_.size()) {
      list_.clear();
      const uint64_t* words = bits_.words();
      for (uint64_t i = first_word; i <= last_word; i++) {
        for (uint64_t w = words[i]; w != 0; w &= w - 1) list_.push_back((i << 6) + static_cast<uint64_t>(__builtin_ctzll(w)));
      }
      return list_;
    }
  }
  std::sort(list_.begin(), list_.end());
  list_.erase(std::unique(list_.begin(), list_.end()), list_.end());
  list_.erase(std::remove_if(list_.begin(), list_.end(), [this](uint64_t p) { return !bits_.Test(p); }), list_.end());
  return list_;
}

void ResidentPages(const HostMapping& mapping, std::vector<uint64_t>* out) {
  mapping.ForEachRun(0, mapping.size(), [&](const uint8_t* host, uint64_t offset, uint64_t length) {
    size_t before = out->size();
    ResidentPages(host, length, out);
    for (size_t i = before; i < out->size(); i++) (*out)[i] += offset >> kPageShift;
  });
}

void ResidentPages(const uint8_t* base, uint64_t bytes, std::vector<uint64_t>* out) {
  constexpr uint64_t kChunk = 1ull << 30;
  std::vector<unsigned char> vec(kChunk / kPageSize);
  for (uint64_t off = 0; off < bytes; off += kChunk) {
    uint64_t len = bytes - off < kChunk ? bytes - off : kChunk;
    if (mincore(const_cast<uint8_t*>(base) + off, len, vec.data()) != 0) {
      // Cannot tell: treat the whole chunk as resident (correct, only slower).
      for (uint64_t i = 0; i < len / kPageSize; i++) out->push_back(off / kPageSize + i);
      continue;
    }
    for (uint64_t i = 0; i < len / kPageSize; i++) {
      if (vec[i] & 1) out->push_back(off / kPageSize + i);
    }
  }
}

}  // namespace minivisor
