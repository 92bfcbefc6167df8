// The XCR0 values XSETBV accepts by their bit combinations (Intel SDM Vol. 1 §13.3, Vol. 2D
// XSETBV #GP(0); the TDX module's check_guest_xcr0_value makes the same checks): x87 (bit 0)
// always set, AVX (2) only with SSE (1), AVX-512's opmask, ZMM_Hi256 and Hi16_ZMM (7:5) all or
// none and only with AVX, AMX's XTILECFG and XTILEDATA (18:17) both or neither. QEMU's
// helper_xsetbv checks bit 0 and the supported features only, so these are checked here.
#pragma once

#include <cstdint>

namespace minivisor {

inline bool Xcr0CombinationLegal(uint64_t xcr0) {
  const uint64_t avx512 = xcr0 & 0xE0, amx = xcr0 & (3ull << 17);
  if (!(xcr0 & 1)) return false;
  if ((xcr0 & 4) && !(xcr0 & 2)) return false;
  if (avx512 && (avx512 != 0xE0 || !(xcr0 & 4))) return false;
  return amx == 0 || amx == (3ull << 17);
}

}  // namespace minivisor
