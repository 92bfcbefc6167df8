// A command that writes an output file under a temporary name while it runs synchronously (a
// boot, `fuzz merge`) cannot handle SIGINT, SIGTERM or SIGHUP in JavaScript: node runs a listener
// only when the event loop turns, after the work. Without one, node's own handler (or the
// default action) ends the process at once and the temporary file stays. While such files exist,
// this handler removes them first and then hands the signal to the action it replaced, which ends
// the process by that signal.
#pragma once

#include <napi.h>

namespace minivisor {

// removeOnStopSignal(paths: string[], signals: number[]): the temporary files to remove when one
// of `signals` arrives. The handler goes in for each of `signals` (keeping the action it replaces)
// and comes out, the replaced action back, for every other signal it holds; an empty `signals`
// restores them all. A signal whose action someone else changed since (node, for a JavaScript
// listener) is left as it is.
Napi::Value RemoveOnStopSignal(const Napi::CallbackInfo& info);

}  // namespace minivisor
