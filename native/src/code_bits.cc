#include "code_bits.h"

#include "budget.h"
#include "trapped_insn.h"

namespace minivisor {

CodeBits::CodeBits(const uint8_t* page) {
  for (size_t i = 0; i < kCovered; i++) {
    if (MayBeIntercepted(page + i, 15)) may_intercept_[i >> 6] |= 1ull << (i & 63);
    if (RepeatsInPlace(page + i, 15)) repeats_[i >> 6] |= 1ull << (i & 63);
  }
  for (size_t w = 0; w < 64; w++) {
    pass_[0][w] = ~may_intercept_[w];
    pass_[1][w] = repeats_[w] & ~may_intercept_[w];
  }
  // Offsets from kCovered on are decoded each time.
  pass_[0][63] &= (1ull << (kCovered & 63)) - 1;
  pass_[1][63] &= (1ull << (kCovered & 63)) - 1;
}

const uint64_t CodeBits::kNoPass[2 * 64] = {};

}  // namespace minivisor
