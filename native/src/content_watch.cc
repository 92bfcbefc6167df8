#include "content_watch.h"

#include <algorithm>

namespace minivisor {

void ContentWatch::Add(Ranges& ranges, uint64_t first, uint64_t count) {
  if (count == 0) return;
  uint64_t end = first + count;
  // Merge with every range that overlaps or touches [first, end).
  auto it = ranges.upper_bound(first);
  if (it != ranges.begin() && std::prev(it)->second >= first) --it;
  while (it != ranges.end() && it->first <= end) {
    first = std::min(first, it->first);
    end = std::max(end, it->second);
    it = ranges.erase(it);
  }
  ranges[first] = end;
}

void ContentWatch::Remove(Ranges& ranges, uint64_t first, uint64_t count) {
  if (count == 0 || ranges.empty()) return;
  uint64_t end = first + count;
  auto it = ranges.upper_bound(first);
  if (it != ranges.begin()) --it;
  while (it != ranges.end() && it->first < end) {
    uint64_t r_first = it->first, r_end = it->second;
    if (r_end <= first) { ++it; continue; }
    it = ranges.erase(it);
    if (r_first < first) ranges[r_first] = first;
    if (r_end > end) ranges[end] = r_end;
  }
}

bool ContentWatch::InRanges(const Ranges& ranges, uint64_t page) {
  if (ranges.empty()) return false;
  auto it = ranges.upper_bound(page);
  if (it == ranges.begin()) return false;
  return std::prev(it)->second > page;
}

bool ContentWatch::InRangesSpan(const Ranges& ranges, uint64_t page, uint64_t* first, uint64_t* end) {
  auto it = ranges.upper_bound(page);
  *first = 0;
  if (it != ranges.begin()) {
    auto prev = std::prev(it);
    if (prev->second > page) {
      *first = prev->first;
      *end = prev->second;
      return true;
    }
    *first = prev->second;
  }
  *end = it == ranges.end() ? ~0ull : it->first;
  return false;
}

bool ContentWatch::WatchedSpan(uint64_t page) const {
  uint64_t first, end, first2, end2;
  bool watched = InRangesSpan(ranges_, page, &first, &end);
  if (InRangesSpan(until_write_, page, &first2, &end2)) watched = true;
  first = std::max(first, first2);
  end = std::min(end, end2);
  span_first_ = first;
  span_pages_ = end - first;
  span_watched_ = watched;
  return watched;
}

uint64_t ContentWatch::CountIn(const Ranges& ranges, uint64_t first, uint64_t count) {
  uint64_t end = first + count, n = 0;
  for (const auto& [r_first, r_end] : ranges) {
    uint64_t lo = std::max(first, r_first), hi = std::min(end, r_end);
    if (hi > lo) n += hi - lo;
  }
  return n;
}

void ContentWatch::Watch(uint64_t first, uint64_t count) {
  if (count == 0) return;
  ForgetSpan();
  ForgetOwn(first, count);
  Remove(until_write_, first, count);
  Add(ranges_, first, count);
}

void ContentWatch::WatchUntilWrite(uint64_t first, uint64_t count) {
  ForgetSpan();
  // Byte-by-byte watches in the range stay: the finer watch of the same content.
  uint64_t end = first + count;
  for (uint64_t page = first; page < end;) {
    auto it = ranges_.upper_bound(page);
    if (it != ranges_.begin() && std::prev(it)->second > page) {
      page = std::prev(it)->second;  // skip the byte-watched range holding `page`
      continue;
    }
    uint64_t stop = it == ranges_.end() ? end : std::min(end, it->first);
    Add(until_write_, page, stop - page);
    page = stop;
  }
}

void ContentWatch::Unwatch(uint64_t first, uint64_t count) {
  if (count == 0 || empty()) return;
  ForgetSpan();
  ForgetOwn(first, count);
  Remove(ranges_, first, count);
  Remove(until_write_, first, count);
}

uint64_t ContentWatch::CountWatched(uint64_t first, uint64_t count) const {
  return CountIn(ranges_, first, count) + CountIn(until_write_, first, count);
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
