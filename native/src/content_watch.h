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

  bool empty() const { return ranges_.empty(); }
  // Starts watching [first, first + count) (pages): nothing in it is the guest's own any more.
  void Watch(uint64_t first, uint64_t count);
  void Unwatch(uint64_t first, uint64_t count);
  bool Watched(uint64_t page) const;
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
  void ForgetOwn(uint64_t first, uint64_t count);
  std::map<uint64_t, uint64_t> ranges_;  // disjoint, non-adjacent [first page, end page)
  std::unordered_map<uint64_t, OwnBytes> own_;  // watched pages the guest wrote part of
  std::vector<ForeignRead> pending_;
};

}  // namespace minivisor
