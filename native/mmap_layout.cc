// fork() copies the page tables of every anonymous mapping, and the child's
// exit frees its copies. V8 asks mmap() for each 256 KiB heap page at a random
// address (a hint, for per-page ASLR), so a zygote's heap is spread over the
// whole 47-bit address space: each page needs page-table pages of its own (a
// PTE page maps 2 MiB), and a 50 MB heap carried 3.6 MB of page tables where C
// with the same memory needs 0.3 MB; fork() ran at 2x C's cost because of it
// (docs/PERFORMANCE.md, "V8 scatters its heap").
//
// The filter drops the hint of anonymous mmap() calls that are not MAP_FIXED
// (V8 accepts any address for them and aligns its pages itself), so the
// kernel packs them below the previous ones. The cost is per-page address
// randomisation of the heap; the region as a whole is still placed by ASLR.
// It goes through node's GOT (got_patch.cc), so only the executable's calls
// (V8, libuv, node) are filtered, and only those made after it is installed.
#include "mmap_layout.h"

#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "got_patch.h"

namespace forkd {
namespace {

bool g_installed = false;

void* FilteredMmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  if (addr != nullptr && (flags & MAP_ANONYMOUS) != 0 && (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) == 0) addr = nullptr;
  // A raw syscall (it sets errno and returns MAP_FAILED, -1, like libc's):
  // libc's mmap64 would be the slot we just rewrote if called through it.
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, length, prot, flags, fd, offset));
}

}  // namespace

Napi::Value CompactMmapLayout(const Napi::CallbackInfo& info) {
  if (!g_installed) {
    int errors64 = 0, errors = 0;
    // node imports mmap64 (glibc's LFS name; on x86-64 the same function).
    int patched = PatchGotSlots("mmap64", reinterpret_cast<void*>(&FilteredMmap), &errors64) +
                  PatchGotSlots("mmap", reinterpret_cast<void*>(&FilteredMmap), &errors);
    g_installed = patched > 0 && errors64 + errors == 0;
  }
  return Napi::Boolean::New(info.Env(), g_installed);
}

Napi::Value MmapLayoutCompact(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), g_installed);
}

}  // namespace forkd
