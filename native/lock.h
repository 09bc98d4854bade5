#pragma once
#include <napi.h>

namespace forkd {
// JS: lockExclusive(fd) -> true when this open file now holds flock(LOCK_EX),
// false when another open file holds a lock on it (EWOULDBLOCK).
Napi::Value LockExclusive(const Napi::CallbackInfo& info);
}  // namespace forkd
