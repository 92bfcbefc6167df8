// The trace hash's binary encoding of an event, native (trace_encoding.cc).
#pragma once
#include <napi.h>

namespace minivisor {

Napi::Function DefineEncodeTraceEvent(Napi::Env env);

}  // namespace minivisor
