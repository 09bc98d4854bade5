#pragma once
#include <napi.h>

namespace forkd {
// JS: exitNow(code) -> never. Flushes what libuv still queues for stdout and
// stderr, then _exit(code).
Napi::Value ExitNow(const Napi::CallbackInfo& info);
// JS: flushStdio(): writes out what libuv queues for stdout/stderr (once).
Napi::Value FlushStdioJs(const Napi::CallbackInfo& info);
// JS: dieBySignal(signo) -> never. Flushes, then dies of the signal itself.
Napi::Value DieBySignal(const Napi::CallbackInfo& info);
// JS: writeSync(fd, buffer, timeoutMs) -> bytes written; waits out EAGAIN.
Napi::Value WriteSync(const Napi::CallbackInfo& info);
// JS: armDrainWatch(process): in a forked child, when the event loop is
// about to run dry (nothing but this watch keeps it alive), emits
// 'beforeExit', then 'exit', and calls process.reallyExit(), as Node does.
Napi::Value ArmDrainWatch(const Napi::CallbackInfo& info);
// JS: installExitHandler(): in a forked child, Node's own exits (after an
// uncaught exception, process.reallyExit) flush stdio and _exit(code).
Napi::Value InstallExitHandler(const Napi::CallbackInfo& info);
}  // namespace forkd
