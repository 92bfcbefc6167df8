// Pure spin loops: `head: (PAUSE | NOP)* ; JMP head` with no other instruction. Such a loop reads
// and writes no register but RIP, no flag and no memory, so once a run is in it nothing but the
// run's own stop (instruction limit or budget) ends it: every round is the same instructions in
// the same order. The stubs park a vCPU this way when a second fatal error arrives while the first
// is being reported (mv_fatal_begin), and a hostile VMM reaches that often; emulated one round at
// a time each PAUSE leaves the emulator's CPU loop (QEMU helper_pause → cpu_loop_exit), so a
// 5M-instruction budget took ~0.8 s of CPU. The code hook skips whole rounds instead (machine.cc,
// Machine::SkipPureSpinRounds), which leaves every guest-visible result as it was: the run stops
// at the same instruction count, at the same RIP, with the same edge map.
#pragma once
#include <cstddef>
#include <cstdint>

namespace minivisor {

// `bytes` holds up to `avail` code bytes starting at linear address `start`, which is at or before
// `pause`, the address of a PAUSE about to run. Returns the number of instructions in one round
// of the pure spin loop through `pause` whose head is `start`, or 0 when these bytes are not one
// (the JMP must end within `avail` and jump back to `start` exactly).
uint32_t PureSpinRound(const uint8_t* bytes, size_t avail, uint64_t start, uint64_t pause);

// Where the loop through the PAUSE at `pause` starts, if it is a pure spin loop: the target of the
// JMP that ends it, found in the up to `avail` bytes at `pause`, and where that JMP ends. Returns
// false when those bytes are not (PAUSE | NOP)* then a short backward JMP.
bool PureSpinHead(const uint8_t* bytes, size_t avail, uint64_t pause, uint64_t* head, uint64_t* end);

}  // namespace minivisor
