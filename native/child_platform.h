// The forked child's V8 platform worker threads (see child_platform.cc).
#pragma once
#include <napi.h>

namespace forkd {

// In a just-forked child: routes the platform's worker-thread tasks to a pool
// of `pool_size` threads of ours, started with the first Worker isolate.
// Returns false if no platform is reachable.
bool InstallChildPlatform(int pool_size);
// Joins the pool's threads before the child forks; false while a Worker
// isolate of the child is still registered.
bool StopChildPlatformThreads();
// How many of the pool's threads run now.
int ChildPlatformThreads();

// JS: stopChildPlatformThreads() -> boolean (StopChildPlatformThreads).
Napi::Value StopChildPlatformThreadsJs(const Napi::CallbackInfo& info);
// JS: childPlatformThreads() -> number.
Napi::Value ChildPlatformThreadsJs(const Napi::CallbackInfo& info);

}  // namespace forkd
