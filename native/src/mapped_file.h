// The CLI's loader (src/cli/bundled-cli.ts) takes the ~650 KB bundle and its ~600 KB V8 code cache
// as read-only mappings of their files instead of reading them: a read copies them into fresh
// memory and V8 then copies the source once more into its heap, ~320 fresh 4 KiB pages, each a
// page fault for the kernel to clear and map (~12 us each on a host that shadows guest page tables),
// where a mapping shares the page cache's pages, mapped in by the dozen (issue 11).
#pragma once

#include <napi.h>

namespace minivisor {

// mapFile(path: string, as: 'latin1' | 'bytes'): the file, mapped read-only, as a string whose
// characters are its bytes (an external string V8 reads in place), or as a Buffer over the mapping;
// either unmaps the file when it is collected. Undefined when the file cannot be opened or mapped,
// is empty, or (latin1) this Node has no node_api_create_external_string_latin1: the caller reads
// it then. The file must not be changed in place while mapped (its writers replace it by rename).
Napi::Value MapFile(const Napi::CallbackInfo& info);

}  // namespace minivisor
