// Unicorn (QEMU's TCG) calls abort() on a few guest instruction forms it cannot translate; 2.1.4
// does so for LOCK BT/BTS/BTR/BTC with a register destination ("tcg fatal error"), which the
// architecture defines as #UD. A hostile guest must not kill the host, so while the emulator runs,
// SIGABRT unwinds to the run call instead of ending the process. The emulator's state is then no
// longer trustworthy: the machine that owned it refuses to run again and never frees it.
#pragma once

#include <csetjmp>

namespace minivisor {

class AbortGuard {
 public:
  // Arms the guard for this thread. Call Armed() right after, through sigsetjmp on `env`.
  explicit AbortGuard(sigjmp_buf* env);
  ~AbortGuard();
  AbortGuard(const AbortGuard&) = delete;
  AbortGuard& operator=(const AbortGuard&) = delete;
};

}  // namespace minivisor
