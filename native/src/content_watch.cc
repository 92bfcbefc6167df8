#include "content_watch.h"

#include <algorithm>

namespace minivisor {

void ContentWatch::Watch(uint64_t first, uint64_t count) {
  if (count == 0) return;
  uint64_t end = first + count;
  ForgetOwn(first, count);
  // Merge with every range that overlaps or touches [first, end).
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin() && std::prev(it)->second >= first) --it;
  while (it != ranges_.end() && it->first <= end) {
    first = std::min(first, it->first);
    end = std::max(end, it->second);
    it = ranges_.erase(it);
  }
  ranges_[first] = end;
}

void ContentWatch::Unwatch(uint64_t first, uint64_t count) {
  if (count == 0 || ranges_.empty()) return;
  uint64_t end = first + count;
  ForgetOwn(first, count);
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin()) --it;
  while (it != ranges_.end() && it->first < end) {
    uint64_t r_first = it->first, r_end = it->second;
    if (r_end <= first) { ++it; continue; }
    it = ranges_.erase(it);
    if (r_first < first) ranges_[r_first] = first;
    if (r_end > end) ranges_[end] = r_end;
  }
}

bool ContentWatch::Watched(uint64_t page) const {
  auto it = ranges_.upper_bound(page);
  if (it == ranges_.begin()) return false;
  return std::prev(it)->second > page;
}

uint64_t ContentWatch::CountWatched(uint64_t first, uint64_t count) const {
  uint64_t end = first + count, n = 0;
  for (const auto& [r_first, r_end] : ranges_) {
    uint64_t lo = std::max(first, r_first), hi = std::min(end, r_end);
    if (hi > lo) n += hi - lo;
  }
  return n;
}

uint32_t ContentWatch::FirstForeign(uint64_t page, uint32_t from, uint32_t to) const {
  auto it = own_.find(page);
  if (it == own_.end()) return from;
  const OwnBytes& own = it->second;
  for (uint32_t b = from; b < to; b++) {
    if (!((own[b >> 6] >> (b & 63)) & 1)) return b;
  }
  return to;
}

void ContentWatch::MarkOwn(uint64_t page, uint32_t from, uint32_t to) {
  if (from >= to) return;
  OwnBytes& own = own_.try_emplace(page, OwnBytes{}).first->second;
  for (uint32_t b = from; b < to; b++) own[b >> 6] |= 1ull << (b & 63);
  for (uint64_t word : own) {
    if (word != ~0ull) return;
  }
  Unwatch(page, 1);  // every byte is the guest's own now
}

void ContentWatch::Consumed(uint64_t page, const ForeignRead& read) {
  if (pending_.size() < kMaxPending) pending_.push_back(read);
  Unwatch(page, 1);
}

void ContentWatch::ForgetOwn(uint64_t first, uint64_t count) {
  if (own_.empty()) return;
  if (count == 1) {
    own_.erase(first);
    return;
  }
  for (auto it = own_.begin(); it != own_.end();) {
    if (it->first >= first && it->first - first < count) it = own_.erase(it);
    else ++it;
  }
}

}  // namespace minivisor
