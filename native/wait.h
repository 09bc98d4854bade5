#pragma once
#include <napi.h>

namespace forkd {
// JS: watchExit(pid, callback(info)) -> watch id. Reaps `pid` when it exits,
// without blocking the loop and without waitpid(-1).
Napi::Value WatchExit(const Napi::CallbackInfo& info);
// JS: refExit(id, bool): whether the watch keeps the loop alive.
Napi::Value RefExit(const Napi::CallbackInfo& info);
// JS: cancelExitWatch(id)
Napi::Value CancelExitWatch(const Napi::CallbackInfo& info);
// JS: tryWait(pid) -> info | null (WNOHANG)
Napi::Value TryWait(const Napi::CallbackInfo& info);
}  // namespace forkd
