#include "budget.h"

#include <cstring>

namespace minivisor {

bool RepeatsInPlace(const uint8_t* bytes, size_t avail) {
  size_t i = 0;
  bool rep = false;
  // Legacy prefixes, then REX (Intel SDM Vol. 2 §2.1.1, §2.2.1).
  while (i < avail) {
    uint8_t b = bytes[i];
    if (b == 0xf2 || b == 0xf3) rep = true;
    else if (!(b == 0x66 || b == 0x67 || b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65 || b == 0xf0)) break;
    i++;
  }
  if (i < avail && (bytes[i] & 0xf0) == 0x40) i++;
  if (i >= avail) return false;
  uint8_t op = bytes[i];
  // INS/OUTS 6C-6F, MOVS/CMPS A4-A7, STOS/LODS/SCAS AA-AF.
  if (rep && ((op >= 0x6c && op <= 0x6f) || (op >= 0xa4 && op <= 0xa7) || (op >= 0xaa && op <= 0xaf))) return true;
  // Relative branches: the displacement is measured from the next instruction, so a branch to
  // itself has displacement -(its whole length, prefixes included).
  if (op == 0xeb || (op >= 0x70 && op <= 0x7f) || (op >= 0xe0 && op <= 0xe3)) {
    return i + 1 < avail && static_cast<int8_t>(bytes[i + 1]) == -static_cast<int>(i + 2);
  }
  size_t at = op == 0x0f ? i + 2 : i + 1;
  bool rel32 = op == 0xe9 || (op == 0x0f && i + 1 < avail && (bytes[i + 1] & 0xf0) == 0x80);
  if (!rel32 || at + 4 > avail) return false;
  int32_t disp;
  std::memcpy(&disp, bytes + at, 4);
  return disp == -static_cast<int32_t>(at + 4);
}

}  // namespace minivisor
