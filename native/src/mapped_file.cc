#include "mapped_file.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace minivisor {
namespace {

struct Mapping {
  void* data;
  size_t size;
};

// The whole file mapped read-only and private, or {nullptr, 0}.
Mapping MapWhole(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {nullptr, 0};
  struct stat st;
  void* data = MAP_FAILED;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    data = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
  }
  close(fd);  // the mapping keeps the file
  if (data == MAP_FAILED) return {nullptr, 0};
  return {data, static_cast<size_t>(st.st_size)};
}

void Unmap(napi_env, void* data, void* hint) { munmap(data, reinterpret_cast<size_t>(hint)); }

// Node-API's external Latin-1 string (Node >= 20.4, experimental there): looked up when first
// needed rather than linked, so that the addon still loads on a Node without it.
using CreateExternalLatin1 = napi_status (*)(napi_env, char*, size_t, napi_finalize, void*, napi_value*, bool*);
CreateExternalLatin1 ExternalLatin1() {
  static const auto create =
      reinterpret_cast<CreateExternalLatin1>(dlsym(RTLD_DEFAULT, "node_api_create_external_string_latin1"));
  return create;
}

}  // namespace

Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    Napi::TypeError::New(env, "mapFile(path, 'latin1' | 'bytes')").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string as = info[1].As<Napi::String>().Utf8Value();
  if (as != "latin1" && as != "bytes") {
    Napi::TypeError::New(env, "mapFile: `as` is 'latin1' or 'bytes', not '" + as + "'").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  CreateExternalLatin1 latin1 = as == "latin1" ? ExternalLatin1() : nullptr;
  if (as == "latin1" && latin1 == nullptr) return env.Undefined();
  Mapping m = MapWhole(info[0].As<Napi::String>().Utf8Value());
  if (m.data == nullptr) return env.Undefined();
  void* size_hint = reinterpret_cast<void*>(m.size);
  napi_value result = nullptr;
  napi_status status;
  if (latin1 != nullptr) {
    bool copied = false;  // Node copies when it cannot keep external strings, and then finalizes at once
    status = latin1(env, static_cast<char*>(m.data), m.size, Unmap, size_hint, &result, &copied);
  } else {
    status = napi_create_external_buffer(env, m.size, m.data, Unmap, size_hint, &result);
  }
  if (status != napi_ok) {
    munmap(m.data, m.size);
    return env.Undefined();
  }
  return Napi::Value(env, result);
}

}  // namespace minivisor
