// A host-side, guest-invisible watch on the content of private guest pages: the trusted hardware
// model names pages whose content the guest did not put there itself (src/platform/foreign-
// content.ts says which, per platform), and the first guest read of such content is recorded.
//
// The rule, per byte: a byte of a watched page is the guest's own once a guest store wrote it
// while the page was watched. A read (or instruction fetch) that touches a byte that is not the
// guest's own consumes foreign content: it is recorded once (GPA, RIP, instruction number) and the
// page is no longer watched. A page whose 4096 bytes are all its own is no longer watched either.
// Partial writes are conservative: a store makes only the bytes it wrote the guest's own, so a
// read of the other bytes of the page still counts.
//
// A page can instead be watched at page granularity (WatchUntilWrite): the guest's first store to
// it ends its watch, whatever bytes it wrote; only a read (or fetch) before any store consumes.
// That costs one TLB fill per page (the one its first access needs anyway), not a decoded
// instruction and a TLB flush per access, so the hardware model can watch every page it hands back
// to the guest with host-decided content (foreign-content.ts says which) without slowing its own
// sparse use of them; what it misses is a read of bytes the guest left unwritten after a store.
//
// The state is plain data (copyable), so a whole-VM snapshot holds it as it is.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

namespace minivisor {

struct ForeignRead {
  uint64_t gpa;           // the first foreign byte read, when the access was decoded; else its page
  uint64_t rip;           // the instruction that read it (~0: unknown, fast mode)
  uint64_t instructions;  // its instruction number (counting mode; 0 otherwise)
};

class ContentWatch {
 public:
  static constexpr uint32_t kPageBytes = 4096;
  // Reads recorded and not yet taken by the host; more are dropped (the first ones decide).
  static constexpr size_t kMaxPending = 64;

  bool empty() const { return ranges_.empty() && until_write_.empty(); }
  // Starts watching [first, first + count) (pages): nothing in it is the guest's own any more.
  void Watch(uint64_t first, uint64_t count);
  // Starts watching [first, first + count) at page granularity (above); pages already watched
  // byte by byte stay so.
  void WatchUntilWrite(uint64_t first, uint64_t count);
  // Ends both kinds of watch on [first, first + count).
  void Unwatch(uint64_t first, uint64_t count);
  // Watched at all (either kind). Asked at every private TLB fill while anything is watched: the
  // answer holds for a whole run of pages around the one asked for, which is kept for the next
  // question (a boot's fills walk through unwatched pages in order; two map lookups per fill were
  // 5% of the TLB-fill hook's cost, issue 11).
  bool Watched(uint64_t page) const {
    if (page - span_first_ < span_pages_) return span_watched_;
    return WatchedSpan(page);
  }
  // Watched byte by byte.
  bool WatchedBytes(uint64_t page) const { return InRanges(ranges_, page); }
  uint64_t CountWatched(uint64_t first, uint64_t count) const;

  // The first byte offset in [from, to) of `page` that is not the guest's own, or `to`.
  uint32_t FirstForeign(uint64_t page, uint32_t from, uint32_t to) const;
  // Bytes [from, to) of `page` are now the guest's own; a page all its own stops being watched.
  void MarkOwn(uint64_t page, uint32_t from, uint32_t to);
  // A read of foreign content: recorded, and the page is no longer watched.
  void Consumed(uint64_t page, const ForeignRead& read);

  const std::vector<ForeignRead>& pending() const { return pending_; }
  void ClearPending() { pending_.clear(); }

 private:
  using OwnBytes = std::array<uint64_t, kPageBytes / 64>;
  using Ranges = std::map<uint64_t, uint64_t>;  // disjoint, non-adjacent [first page, end page)
  static void Add(Ranges& ranges, uint64_t first, uint64_t count);
  static void Remove(Ranges& ranges, uint64_t first, uint64_t count);
  static bool InRanges(const Ranges& ranges, uint64_t page);
  // InRanges, and the pages [*first, *end) around `page` that have the same answer.
  static bool InRangesSpan(const Ranges& ranges, uint64_t page, uint64_t* first, uint64_t* end);
  // Watched(page), which it also keeps for its span of pages.
  bool WatchedSpan(uint64_t page) const;
  // Every change to ranges_ or until_write_ forgets the span.
  void ForgetSpan() { span_pages_ = 0; }
  static uint64_t CountIn(const Ranges& ranges, uint64_t first, uint64_t count);
  void ForgetOwn(uint64_t first, uint64_t count);
  Ranges ranges_;       // watched byte by byte
  Ranges until_write_;  // watched until the guest's first store (page granularity)
  std::unordered_map<uint64_t, OwnBytes> own_;  // watched pages the guest wrote part of
  std::vector<ForeignRead> pending_;
  // Pages [span_first_, span_first_ + span_pages_) are all Watched() or all not (span_watched_).
  mutable uint64_t span_first_ = 0;
  mutable uint64_t span_pages_ = 0;
  mutable bool span_watched_ = false;
};

}  // namespace minivisor
