// Parks Node's V8 platform worker threads around fork() (see platform_park.cc).
#pragma once
#include <string>

namespace forkd {

// Blocks every platform worker thread inside a task of ours. Returns false and
// fills `error` if they were not all parked within timeout_ms.
bool ParkPlatformWorkers(int timeout_ms, std::string* error);
// Lets the parked threads go (parent side, after fork).
void ReleasePlatformWorkers();
int PlatformWorkerCount();

}  // namespace forkd
