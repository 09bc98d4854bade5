#pragma once
#include <napi.h>

namespace forkd {
Napi::Value Kill(const Napi::CallbackInfo& info);     // kill(pid, signo) -> true | false (ESRCH)
Napi::Value KillPg(const Napi::CallbackInfo& info);   // killpg(pgid, signo) -> true | false (ESRCH)
}  // namespace forkd
