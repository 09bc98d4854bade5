// V8 allocates its heap pages with madvise(MADV_DONTFORK) (v8::base::OS::Allocate),
// so a plain fork() child has no heap and dies on its first JS instruction.
//
// A pass over /proc/self/maps before every fork would undo it, but it costs
// 0.5-7 ms as the heap grows and races with V8 mapping a fresh page between the
// pass and fork(). Instead we rewrite, once, the GOT slot through which the node
// executable calls madvise (got_patch.cc), so that MADV_DONTFORK is dropped on
// the way, and clear the flag from the mappings made before that (one
// /proc/self/smaps pass at load).
#include "dontfork.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "got_patch.h"

namespace forkd {
namespace {

bool g_filter_installed = false;

int FilteredMadvise(void* addr, size_t length, int advice) {
  if (advice == MADV_DONTFORK) return 0;
  // A raw syscall, not libc's madvise: our own PLT slot must never route back here.
  long r = syscall(SYS_madvise, addr, length, advice);
  return static_cast<int>(r);
}

// Walks /proc/self/smaps; for each mapping whose VmFlags include "dc" (do not
// copy on fork) either counts it or clears the flag.
int ScanDontfork(bool clear) {
  FILE* f = fopen("/proc/self/smaps", "re");
  if (f == nullptr) return -1;
  char line[512];
  uintptr_t start = 0, end = 0;
  int count = 0;
  while (fgets(line, sizeof line, f) != nullptr) {
    unsigned long s, e;
    // Field lines ("AnonHugePages:") may start with a hex digit but never
    // parse as "start-end"; only mapping headers do.
    if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
      start = s;
      end = e;
      continue;
    }
    if (strncmp(line, "VmFlags:", 8) != 0) continue;
    if (strstr(line, " dc") == nullptr) continue;
    count++;
    if (clear) syscall(SYS_madvise, reinterpret_cast<void*>(start), end - start, MADV_DOFORK);
  }
  fclose(f);
  return count;
}

}  // namespace

bool EnsureHeapForkable(std::string* error) {
  static bool cleared_once = false;
  if (!g_filter_installed) {
    int errors = 0;
    int patched = PatchGotSlots("madvise", reinterpret_cast<void*>(&FilteredMadvise), &errors);
    g_filter_installed = patched > 0 && errors == 0;
  }
  // With the filter in place, only the mappings made before it carry the
  // flag: one pass clears them for good. Without it (a node whose GOT could
  // not be patched), the pass runs before every fork.
  if (cleared_once && g_filter_installed) return true;
  if (ScanDontfork(true) < 0) {
    *error = std::string("cannot read /proc/self/smaps: ") + strerror(errno);
    return false;
  }
  cleared_once = true;
  return true;
}

Napi::Value DontforkMappings(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ScanDontfork(false));
}

Napi::Value MadviseFilterInstalled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), g_filter_installed);
}

}  // namespace forkd
