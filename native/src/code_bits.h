// Per-page answers for the counting-mode code hook (issue 11). Every instruction in counting mode
// calls Machine::OnCode, which used to decode the bytes at its address twice: may it be an
// intercepted instruction (MayBeIntercepted), and, when the same address runs twice in a row, is
// that an architectural repeat (RepeatsInPlace). Both are functions of the bytes alone, so they
// are computed once per code page, for every offset, when the page is first run, and looked up
// afterwards. The machine drops a page's bits whenever the page's bytes may change (host writes,
// snapshot restores, and guest writes: a page with bits is never writable through the TLB, so
// the first guest store to it comes back through the TLB-fill hook).
#pragma once
#include <cstddef>
#include <cstdint>

namespace minivisor {

class CodeBits {
 public:
  // Offsets whose 15 instruction bytes lie inside the page; later ones are decoded each time.
  static constexpr size_t kCovered = 4096 - 15 + 1;

  // Computes both answers for every covered offset of the 4 KiB page at `page`.
  explicit CodeBits(const uint8_t* page);

  static bool Covers(uint64_t offset) { return offset < kCovered; }
  // MayBeIntercepted(page + offset, 15).
  bool MayIntercept(uint64_t offset) const { return (may_intercept_[offset >> 6] >> (offset & 63)) & 1; }
  // RepeatsInPlace(page + offset, 15).
  bool Repeats(uint64_t offset) const { return (repeats_[offset >> 6] >> (offset & 63)) & 1; }

  // The code hook's common case in one lookup (Machine::OnCode): words [0, 64) have a bit set at
  // each covered offset that cannot be intercepted, words [64, 128) at each that also repeats in
  // place (an instruction run again at the same address). Offsets not covered have no bit.
  const uint64_t* pass_words() const { return pass_[0]; }
  // pass_words() of a page with no bits: every lookup fails.
  static const uint64_t kNoPass[2 * 64];

 private:
  uint64_t may_intercept_[64] = {};
  uint64_t repeats_[64] = {};
  uint64_t pass_[2][64] = {};
};

}  // namespace minivisor
