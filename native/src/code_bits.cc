#include "code_bits.h"

#include "budget.h"
#include "trapped_insn.h"

namespace minivisor {

CodeBits::CodeBits(const uint8_t* page) {
  for (size_t i = 0; i < kCovered; i++) {
    if (MayBeIntercepted(page + i, 15)) may_intercept_[i >> 6] |= 1ull << (i & 63);
    if (RepeatsInPlace(page + i, 15)) repeats_[i >> 6] |= 1ull << (i & 63);
  }
}

}  // namespace minivisor
