#include "stop_signal_cleanup.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

namespace minivisor {
namespace {

// The paths as the handler reads them: one block, replaced whole. The block replaced is freed
// unless a handler has started, which may be reading it on another thread (a handler marks its
// start before it loads the pointer, and both are sequentially consistent: a handler that got
// the old block has marked its start before the exchange that replaced it).
struct PathList {
  std::vector<std::string> paths;
};

std::atomic<PathList*> removable{nullptr};
std::atomic<bool> handler_started{false};

// The thread (kernel id) that registered the paths: the one writing them. 0: none yet.
std::atomic<pid_t> writer{0};

// The action the handler replaced, per signal (SIGHUP, SIGINT and SIGTERM are below 32): written
// before the handler goes in, so the handler always finds the one it replaced.
constexpr int kMaxSignal = 32;
struct sigaction replaced[kMaxSignal];
std::mutex install_mutex;

pid_t CurrentThread() { return static_cast<pid_t>(syscall(SYS_gettid)); }

void OnStopSignal(int sig) {
  // A signal sent to the process goes to any thread not blocking it: often one of V8's or libuv's
  // (signal(7)), while the writer keeps running and may rename a file into place or open another
  // after this removed the list. It is handed to the writer, which then stops where it is. Should
  // the writer be gone (tgkill fails), it is handled here.
  pid_t to = writer.load();
  if (to != 0 && to != CurrentThread()) {
    int saved = errno;
    bool handed = syscall(SYS_tgkill, getpid(), to, sig) == 0;
    errno = saved;
    if (handed) return;
  }
  // unlink, sigaction and raise are async-signal-safe (POSIX.1-2017 XSH 2.4.3); tgkill is a bare
  // system call.
  handler_started.store(true);
  PathList* list = removable.load();
  if (list != nullptr) {
    for (const std::string& path : list->paths) unlink(path.c_str());
  }
  // The signal is blocked while this runs and delivered again on return, to the action replaced
  // (node's: it restores the terminal and ends the process by this signal).
  sigaction(sig, &replaced[sig], nullptr);
  raise(sig);
}

bool IsOurs(int sig) {
  struct sigaction current {};
  if (sigaction(sig, nullptr, &current) != 0) return false;
  return (current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == OnStopSignal;
}

void Install(int sig) {
  if (IsOurs(sig)) return;
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  struct sigaction previous {};
  if (sigaction(sig, nullptr, &previous) != 0) return;
  replaced[sig] = previous;
  sigaction(sig, &action, nullptr);
}

void Restore(int sig) {
  if (IsOurs(sig)) sigaction(sig, &replaced[sig], nullptr);
}

Napi::Value TypeError(Napi::Env env) {
  Napi::TypeError::New(env, "expected removeOnStopSignal(paths: string[], signals: number[])").ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace

Napi::Value RemoveOnStopSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsArray()) return TypeError(env);
  Napi::Array paths = info[0].As<Napi::Array>();
  Napi::Array signals = info[1].As<Napi::Array>();
  bool wanted[kMaxSignal] = {};
  for (uint32_t i = 0; i < signals.Length(); i++) {
    Napi::Value s = signals.Get(i);
    if (!s.IsNumber()) return TypeError(env);
    int sig = s.As<Napi::Number>().Int32Value();
    if (sig != SIGHUP && sig != SIGINT && sig != SIGTERM) return TypeError(env);
    wanted[sig] = true;
  }
  for (uint32_t i = 0; i < paths.Length(); i++) {
    if (!paths.Get(i).IsString()) return TypeError(env);
  }
  PathList* list = nullptr;
  if (paths.Length() > 0) {
    list = new PathList;
    for (uint32_t i = 0; i < paths.Length(); i++) list->paths.push_back(paths.Get(i).As<Napi::String>().Utf8Value());
  }
  // The writer and paths first, so a handler going in never sees an older list.
  if (list != nullptr) writer.store(CurrentThread());
  PathList* old = removable.exchange(list);
  if (!handler_started.load()) delete old;
  // Worker threads may call this too: one at a time, so no call saves the other's handler as the one it replaced.
  std::lock_guard<std::mutex> lock(install_mutex);
  for (int sig : {SIGHUP, SIGINT, SIGTERM}) {
    if (wanted[sig]) Install(sig);
    else Restore(sig);
  }
  return env.Undefined();
}

}  // namespace minivisor
