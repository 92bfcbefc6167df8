#include "run_watchdog.h"

namespace minivisor {

RunWatchdog::~RunWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void RunWatchdog::Arm(uint64_t timeout_us) {
  std::unique_lock<std::mutex> lock(mu_);
  armed_ = true;
  fired_ = false;
  deadline_ = Clock::now() + std::chrono::microseconds(timeout_us);
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { Loop(); });
    return;
  }
  // In a run of many short runs the thread sleeps until an earlier run's deadline, no later than
  // this one's (the timeout is the machine's), wakes there and sleeps again until this one's.
  const bool wake = idle_ || deadline_ < waiting_until_;
  lock.unlock();
  if (wake) cv_.notify_one();
}

bool RunWatchdog::Disarm() {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = false;
  return fired_;
}

void RunWatchdog::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!quit_) {
    if (!armed_) {
      idle_ = true;
      cv_.wait(lock);
      idle_ = false;
      continue;
    }
    const Clock::time_point now = Clock::now();
    if (now < deadline_) {
      waiting_until_ = deadline_;
      cv_.wait_until(lock, waiting_until_);
      continue;
    }
    // Past the deadline and still armed: the run is still going. uc_emu_stop from another
    // thread is what Unicorn's own timeout does. A stop that lands before the emulator has
    // started the run does nothing, so it is repeated until the run is disarmed.
    fired_ = true;
    uc_emu_stop(uc_);
    waiting_until_ = now + std::chrono::milliseconds(1);
    cv_.wait_until(lock, waiting_until_);
  }
}

}  // namespace minivisor
