// Unicorn's large aligned allocations come with their pages already there. Each uc_open's engine
// setup takes a 512 KiB translation-block hash table (QEMU qht_map_create, through qemu_memalign
// and posix_memalign) and writes all of it at once: page by page that was 128 first-touch faults,
// ~1.4 ms of a default boot's CPU on a host where a fault costs ~11 us (issue 11): populate.h.
//
// binding.gyp links the addon with --wrap=posix_memalign, so this sees the calls of the statically
// linked libunicorn.a (a shared libunicorn keeps its own).
#include <cstddef>

#include "populate.h"

namespace {
// Smaller allocations come from the heap's pages, mostly touched already.
constexpr size_t kPopulateBytes = 256u << 10;
}  // namespace

extern "C" int __real_posix_memalign(void** out, size_t alignment, size_t size);

extern "C" int __wrap_posix_memalign(void** out, size_t alignment, size_t size) {
  int error = __real_posix_memalign(out, alignment, size);
  if (error == 0 && size >= kPopulateBytes) minivisor::PopulateWholePages(*out, size);
  return error;
}
