// After a major GC, a --single-threaded V8 leaves the old generation's
// sweeping pending, and a child forked then sweeps the parent's heap itself,
// copying every page it frees something on (src/lib/heap-sweep.ts). The
// parent must know, at the moment it forks, whether a major GC happened since
// it last finished a sweep: Node reports GCs to JavaScript only later, from
// an immediate. A GC epilogue callback counts them as they end.
#include "heap_sweep.h"

#include <v8.h>

#include <cstdint>

namespace forkd {
namespace {

// Touched on the main thread only: V8 runs GC callbacks on the isolate's thread.
uint64_t g_major_gcs = 0;
bool g_registered = false;

void OnGcEpilogue(v8::Isolate*, v8::GCType, v8::GCCallbackFlags, void*) { g_major_gcs++; }

}  // namespace

Napi::Value MajorGcCount(const Napi::CallbackInfo& info) {
  if (!g_registered) {
    g_registered = true;
    v8::Isolate::GetCurrent()->AddGCEpilogueCallback(OnGcEpilogue, nullptr, v8::kGCTypeMarkSweepCompact);
  }
  return Napi::Number::New(info.Env(), static_cast<double>(g_major_gcs));
}

}  // namespace forkd
