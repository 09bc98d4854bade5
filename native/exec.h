#pragma once
#include <napi.h>

namespace forkd {
// JS: execve(file, argv[], env[], keepFds[]) -> never returns on success.
Napi::Value Execve(const Napi::CallbackInfo& info);
}  // namespace forkd
