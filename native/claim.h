#pragma once
#include <napi.h>

namespace forkd {
// JS: renameFile(from, to) -> true | false (errno not kept: any failure is
// "not claimed"). A run child takes its run's claim with it (src/child/claim.ts).
Napi::Value RenameFile(const Napi::CallbackInfo& info);
}  // namespace forkd
