#pragma once
#include <napi.h>

namespace forkd {
Napi::Value GetPid(const Napi::CallbackInfo& info);
Napi::Value GetPpid(const Napi::CallbackInfo& info);
Napi::Value SetSid(const Napi::CallbackInfo& info);
Napi::Value SetPgid(const Napi::CallbackInfo& info);
Napi::Value GetPgid(const Napi::CallbackInfo& info);
Napi::Value SetProcessTitle(const Napi::CallbackInfo& info);
Napi::Value SetDeathSignal(const Napi::CallbackInfo& info);
Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info);
Napi::Value SetDumpable(const Napi::CallbackInfo& info);
Napi::Value RedirectFd(const Napi::CallbackInfo& info);
Napi::Value CloseFdsExcept(const Napi::CallbackInfo& info);
Napi::Value OpenFds(const Napi::CallbackInfo& info);
Napi::Value Pipe(const Napi::CallbackInfo& info);
Napi::Value SocketPair(const Napi::CallbackInfo& info);
Napi::Value CloseFd(const Napi::CallbackInfo& info);
Napi::Value DupFd(const Napi::CallbackInfo& info);
Napi::Value KeepPipePath(const Napi::CallbackInfo& info);
}  // namespace forkd
