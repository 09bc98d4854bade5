// Keeps V8's heap inherited by fork() children (see dontfork.cc).
#pragma once
#include <napi.h>

namespace forkd {

// Installs the madvise filter once and clears MADV_DONTFORK from every mapping
// that already carries it. Returns false (with errno set) if neither worked.
bool EnsureHeapForkable(std::string* error);

// JS: dontforkMappings() -> number of mappings still marked "do not copy".
Napi::Value DontforkMappings(const Napi::CallbackInfo& info);
// JS: madviseFilterInstalled() -> boolean.
Napi::Value MadviseFilterInstalled(const Napi::CallbackInfo& info);

}  // namespace forkd
