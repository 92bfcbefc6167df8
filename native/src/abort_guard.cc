#include "abort_guard.h"

#include <signal.h>

#include <mutex>

namespace minivisor {
namespace {

thread_local sigjmp_buf* active_env = nullptr;
struct sigaction previous_action;
std::once_flag installed;

void OnAbort(int sig) {
  if (active_env != nullptr) {
    sigjmp_buf* env = active_env;
    active_env = nullptr;
    siglongjmp(*env, 1);
  }
  // Not inside the emulator: behave as before the guard existed.
  sigaction(SIGABRT, &previous_action, nullptr);
  raise(sig);
}

void Install() {
  struct sigaction action {};
  action.sa_handler = OnAbort;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_NODEFER;
  sigaction(SIGABRT, &action, &previous_action);
}

}  // namespace

AbortGuard::AbortGuard(sigjmp_buf* env) {
  std::call_once(installed, Install);
  active_env = env;
}

AbortGuard::~AbortGuard() { active_env = nullptr; }

}  // namespace minivisor
