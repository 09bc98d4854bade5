#pragma once
#include <napi.h>

namespace forkd {
// JS: fork({ deathSignal?: number, keepFds?: number[], parkTimeoutMs?: number }) -> 0 | pid
Napi::Value Fork(const Napi::CallbackInfo& info);
// JS: threadCount() -> number of threads in this process
Napi::Value ThreadCount(const Napi::CallbackInfo& info);
Napi::Value PlatformWorkers(const Napi::CallbackInfo& info);
Napi::Value IsForkedChild(const Napi::CallbackInfo& info);
// JS: isNeutralisedFd(fd) -> true when fd is this child's placeholder for an inherited handle
Napi::Value IsNeutralisedFd(const Napi::CallbackInfo& info);
}  // namespace forkd
