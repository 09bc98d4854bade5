#pragma once
#include <napi.h>

namespace forkd {
// JS: armTermWatchdog(respondMs): in a forked child whose SIGTERM libuv
// already handles (a JS listener exists), wraps libuv's handler: the first
// SIGTERM also arms a timer, and the child dies of SIGTERM when it fires
// unless termHandled() moved it. Needs no thread: the timer is a POSIX timer
// that delivers SIGTERM itself.
Napi::Value ArmTermWatchdog(const Napi::CallbackInfo& info);
// JS: termHandled(graceMs): the JS listener ran and the job listens: the
// child dies of SIGTERM graceMs after the first SIGTERM (at once if that has
// passed); graceMs < 0: never (the job decides).
Napi::Value TermHandled(const Napi::CallbackInfo& info);
}  // namespace forkd
