// Counts V8's major GCs as they happen (see heap_sweep.cc).
#pragma once
#include <napi.h>

namespace forkd {

// JS: majorGcCount() -> number of mark-compacts since the addon loaded.
Napi::Value MajorGcCount(const Napi::CallbackInfo& info);

}  // namespace forkd
