#include "spin_loop.h"

namespace minivisor {

namespace {

// Length of the PAUSE (F3 90) or NOP (90) at `bytes`, or 0 for anything else. Both leave every
// register but RIP, every flag and memory as they are (Intel SDM Vol. 2B "NOP", "PAUSE").
size_t SpinFillerLength(const uint8_t* bytes, size_t avail) {
  if (avail >= 1 && bytes[0] == 0x90) return 1;
  if (avail >= 2 && bytes[0] == 0xf3 && bytes[1] == 0x90) return 2;
  return 0;
}

}  // namespace

bool PureSpinHead(const uint8_t* bytes, size_t avail, uint64_t pause, uint64_t* head, uint64_t* end) {
  size_t i = 0;
  while (size_t n = SpinFillerLength(bytes + i, avail - i)) i += n;
  // JMP rel8 (EB cb): the displacement counts from the next instruction.
  if (i + 2 > avail || bytes[i] != 0xeb) return false;
  int64_t disp = static_cast<int8_t>(bytes[i + 1]);
  int64_t back = static_cast<int64_t>(i + 2) + disp;  // target - pause
  if (back > 0) return false;
  *head = pause + static_cast<uint64_t>(back);
  *end = pause + i + 2;
  return true;
}

uint32_t PureSpinRound(const uint8_t* bytes, size_t avail, uint64_t start, uint64_t pause) {
  if (pause < start || pause - start >= avail) return 0;
  size_t i = 0;
  uint32_t instructions = 0;
  bool through_pause = false;
  while (size_t n = SpinFillerLength(bytes + i, avail - i)) {
    if (start + i == pause) through_pause = bytes[i] == 0xf3;
    i += n;
    instructions++;
  }
  if (!through_pause || i + 2 > avail || bytes[i] != 0xeb) return 0;
  if (static_cast<int64_t>(i + 2) + static_cast<int8_t>(bytes[i + 1]) != 0) return 0;  // back to `start`
  return instructions + 1;
}

}  // namespace minivisor
