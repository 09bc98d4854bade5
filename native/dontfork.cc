// V8 allocates its heap pages with madvise(MADV_DONTFORK) (v8::base::OS::Allocate),
// so a plain fork() child has no heap and dies on its first JS instruction.
//
// A pass over /proc/self/maps before every fork would undo it, but it costs
// 0.5-7 ms as the heap grows and races with V8 mapping a fresh page between the
// pass and fork(). Instead we rewrite, once, the GOT slot through which the node
// executable calls madvise, so that MADV_DONTFORK is dropped on the way, and
// clear the flag from the mappings made before that (one /proc/self/smaps pass
// at load). node is linked with BIND_NOW, so its GOT is read-only after
// relocation (RELRO): the page is made writable for the one store and restored.
#include "dontfork.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace forkd {
namespace {

bool g_filter_installed = false;
int g_patched_slots = 0;

int FilteredMadvise(void* addr, size_t length, int advice) {
  if (advice == MADV_DONTFORK) return 0;
  // A raw syscall, not libc's madvise: our own PLT slot must never route back here.
  long r = syscall(SYS_madvise, addr, length, advice);
  return static_cast<int>(r);
}

struct PatchState {
  const char* self_path;
  int errors;
};

uintptr_t Relocated(const dl_phdr_info* info, ElfW(Addr) ptr) {
  // glibc relocates most d_ptr entries of a loaded object in place, but not for
  // every object; an address below the load base has not been relocated yet.
  return ptr < info->dlpi_addr ? info->dlpi_addr + ptr : ptr;
}

void PatchRelocations(const dl_phdr_info* info, const ElfW(Rela)* rela, size_t count,
                      const ElfW(Sym)* symtab, const char* strtab, uintptr_t relro_start,
                      uintptr_t relro_end, PatchState* state) {
  long page = sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < count; i++) {
    unsigned type = ELF64_R_TYPE(rela[i].r_info);
    if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
    const ElfW(Sym)* sym = &symtab[ELF64_R_SYM(rela[i].r_info)];
    if (strcmp(strtab + sym->st_name, "madvise") != 0) continue;
    uintptr_t slot = info->dlpi_addr + rela[i].r_offset;
    void* page_start = reinterpret_cast<void*>(slot & ~static_cast<uintptr_t>(page - 1));
    bool in_relro = slot >= relro_start && slot < relro_end;
    if (in_relro && mprotect(page_start, page, PROT_READ | PROT_WRITE) != 0) {
      state->errors++;
      continue;
    }
    *reinterpret_cast<void**>(slot) = reinterpret_cast<void*>(&FilteredMadvise);
    if (in_relro) mprotect(page_start, page, PROT_READ);
    g_patched_slots++;
  }
}

int PatchObject(dl_phdr_info* info, size_t, void* data) {
  auto* state = static_cast<PatchState*>(data);
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  // libc implements madvise and the dynamic loader never calls it for V8;
  // our own addon's slot must stay pointing at libc.
  if (strstr(name, "libc.so") != nullptr || strstr(name, "ld-linux") != nullptr) return 0;
  if (state->self_path != nullptr && strcmp(name, state->self_path) == 0) return 0;

  const ElfW(Dyn)* dynamic = nullptr;
  uintptr_t relro_start = 0, relro_end = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_DYNAMIC) dynamic = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      relro_start = info->dlpi_addr + ph.p_vaddr;
      relro_end = relro_start + ph.p_memsz;
    }
  }
  if (dynamic == nullptr) return 0;

  const ElfW(Rela)* jmprel = nullptr;
  const ElfW(Rela)* rela = nullptr;
  size_t jmprel_size = 0, rela_size = 0;
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  for (const ElfW(Dyn)* d = dynamic; d->d_tag != DT_NULL; d++) {
    switch (d->d_tag) {
      case DT_JMPREL: jmprel = reinterpret_cast<const ElfW(Rela)*>(Relocated(info, d->d_un.d_ptr)); break;
      case DT_PLTRELSZ: jmprel_size = d->d_un.d_val; break;
      case DT_RELA: rela = reinterpret_cast<const ElfW(Rela)*>(Relocated(info, d->d_un.d_ptr)); break;
      case DT_RELASZ: rela_size = d->d_un.d_val; break;
      case DT_SYMTAB: symtab = reinterpret_cast<const ElfW(Sym)*>(Relocated(info, d->d_un.d_ptr)); break;
      case DT_STRTAB: strtab = reinterpret_cast<const char*>(Relocated(info, d->d_un.d_ptr)); break;
      default: break;
    }
  }
  if (symtab == nullptr || strtab == nullptr) return 0;
  if (jmprel != nullptr)
    PatchRelocations(info, jmprel, jmprel_size / sizeof(ElfW(Rela)), symtab, strtab, relro_start, relro_end, state);
  if (rela != nullptr)
    PatchRelocations(info, rela, rela_size / sizeof(ElfW(Rela)), symtab, strtab, relro_start, relro_end, state);
  return 0;
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
    Dl_info self;
    PatchState state{nullptr, 0};
    if (dladdr(reinterpret_cast<void*>(&FilteredMadvise), &self) != 0) state.self_path = self.dli_fname;
    dl_iterate_phdr(&PatchObject, &state);
    g_filter_installed = g_patched_slots > 0 && state.errors == 0;
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
