// SHA-256 and SHA-384 through the OpenSSL that Node itself carries (and exports to addons), for
// the trace hash and the platforms' launch measurements: `require('node:crypto')` loads ~35 of
// Node's JavaScript modules (its stream classes among them, since a Hash is a Transform stream),
// ~3-5 ms of CPU that a boot, which runs a guest through this addon anyway, need not pay (issue 11).
#pragma once
#include <napi.h>

namespace minivisor {

// The NativeDigest class: new NativeDigest('sha256' | 'sha384'), update(data: Uint8Array): this,
// copy(): NativeDigest (goes on from the same position), digest(): Buffer (once; the digest ends it).
Napi::Function DefineNativeDigest(Napi::Env env);

}  // namespace minivisor
