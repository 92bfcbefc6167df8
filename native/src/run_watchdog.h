// The fast-mode hang guard: one thread per machine that stops a run still going at its deadline.
// Unicorn's own uc_emu_start timeout starts a helper thread on every call, which polls every
// 2 us (usleep) and is joined when the call returns: a real-Linux SEV-SNP decompression makes
// ~22k runs, and those thread starts, wake-ups and joins were most of its time (strace: 43k
// clone3, 76k clock_nanosleep; 11 s against 3 s for the same boot on TDX, which exits less).
// This thread sleeps until the deadline of the run in progress; arming and disarming a run
// takes a mutex and, at most, one wake-up of a thread that had nothing to wait for.
#pragma once

#include <unicorn/unicorn.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace minivisor {

class RunWatchdog {
 public:
  explicit RunWatchdog(uc_engine* uc) : uc_(uc) {}
  ~RunWatchdog();  // stops and joins the thread; to be destroyed before the emulator is closed
  RunWatchdog(const RunWatchdog&) = delete;
  RunWatchdog& operator=(const RunWatchdog&) = delete;

  // Before a run: it is stopped if it is still going `timeout_us` from now.
  void Arm(uint64_t timeout_us);
  // After it: true when its deadline passed and it was stopped (or asked to stop).
  bool Disarm();

 private:
  using Clock = std::chrono::steady_clock;
  void Loop();

  uc_engine* const uc_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  bool armed_ = false;
  bool fired_ = false;
  bool quit_ = false;
  // The thread waits with no deadline (nothing armed since its last wake-up): an Arm wakes it.
  bool idle_ = false;
  Clock::time_point deadline_;
  // What the thread sleeps until when it is not idle: an Arm with an earlier deadline wakes it.
  Clock::time_point waiting_until_;
};

}  // namespace minivisor
