#pragma once
#include <napi.h>

namespace forkd {
// JS: execve(file, argv[], env[], keepFds[]) -> never returns on success.
Napi::Value Execve(const Napi::CallbackInfo& info);
// JS: setCloexec(fds[]): each fd is closed by the next execve (and so by every spawn).
Napi::Value SetCloexecJs(const Napi::CallbackInfo& info);
// JS: markAllCloexec(): every open fd above 2 is closed by the next execve.
Napi::Value MarkAllCloexecJs(const Napi::CallbackInfo& info);
}  // namespace forkd
