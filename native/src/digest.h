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

// chainDigest(algorithm, initial: Uint8Array, records: Uint8Array, recordBytes): Buffer. A hash
// chain over equal-sized records, each of which starts with the digest so far: for every record,
// digest = H(digest || record[digestBytes..]). What a run of SNP_LAUNCH_UPDATEs does to the launch
// digest (PAGE_INFO opens with DIGEST_CUR), in one call instead of ~3 per page.
Napi::Value ChainDigest(const Napi::CallbackInfo& info);

}  // namespace minivisor
