// Keeps V8's heap pages next to each other (see mmap_layout.cc).
#pragma once
#include <napi.h>

namespace forkd {

// JS: compactMmapLayout() -> boolean: installs the mmap hint filter (once);
// true if node's mmap64 slot now goes through it.
Napi::Value CompactMmapLayout(const Napi::CallbackInfo& info);
// JS: mmapLayoutCompact() -> boolean: whether the filter is installed.
Napi::Value MmapLayoutCompact(const Napi::CallbackInfo& info);

}  // namespace forkd
