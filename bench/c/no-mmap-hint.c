// An experiment, not part of forkd: an LD_PRELOAD library that drops the
// address hint of anonymous, non-fixed mmap() calls. V8 asks for each 256 KiB
// heap page at a random address (the hint), so a node process's heap is
// scattered over the whole address space: every page needs page tables of its
// own, and fork() has to allocate and copy all of them. Without the hint the
// kernel places the pages next to each other (and merges their mappings).
// Used by bench/experiments/mmap-hint.js; see docs/PERFORMANCE.md.
//   cc -O2 -shared -fPIC -o no-mmap-hint.so no-mmap-hint.c
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

void* mmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  if (addr != NULL && (flags & MAP_ANONYMOUS) && !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))) addr = NULL;
  return (void*)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
}

// node imports mmap64 (the same function under its LFS name).
void* mmap64(void* addr, size_t length, int prot, int flags, int fd, off_t offset) {
  return mmap(addr, length, prot, flags, fd, offset);
}
