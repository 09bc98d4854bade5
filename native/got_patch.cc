// V8 is linked into the node executable and reaches libc's memory functions
// through node's GOT. Rewriting a slot there changes what V8 calls without
// LD_PRELOAD and without touching libc: the other users of the function (libc
// itself, the dynamic loader, this addon) keep the original. node is linked
// with BIND_NOW, so its GOT is read-only after relocation (RELRO): the page is
// made writable for the one store and restored.
#include "got_patch.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

namespace forkd {
namespace {

struct PatchRequest {
  const char* symbol;
  void* replacement;
  const char* self_path;
  int patched;
  int errors;
};

uintptr_t Relocated(const dl_phdr_info* info, ElfW(Addr) ptr) {
  // glibc relocates most d_ptr entries of a loaded object in place, but not for
  // every object; an address below the load base has not been relocated yet.
  return ptr < info->dlpi_addr ? info->dlpi_addr + ptr : ptr;
}

void PatchRelocations(const dl_phdr_info* info, const ElfW(Rela)* rela, size_t count,
                      const ElfW(Sym)* symtab, const char* strtab, uintptr_t relro_start,
                      uintptr_t relro_end, PatchRequest* request) {
  long page = sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < count; i++) {
    unsigned type = ELF64_R_TYPE(rela[i].r_info);
    if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
    const ElfW(Sym)* sym = &symtab[ELF64_R_SYM(rela[i].r_info)];
    if (strcmp(strtab + sym->st_name, request->symbol) != 0) continue;
    uintptr_t slot = info->dlpi_addr + rela[i].r_offset;
    void* page_start = reinterpret_cast<void*>(slot & ~static_cast<uintptr_t>(page - 1));
    bool in_relro = slot >= relro_start && slot < relro_end;
    if (in_relro && mprotect(page_start, page, PROT_READ | PROT_WRITE) != 0) {
      request->errors++;
      continue;
    }
    *reinterpret_cast<void**>(slot) = request->replacement;
    if (in_relro) mprotect(page_start, page, PROT_READ);
    request->patched++;
  }
}

int PatchObject(dl_phdr_info* info, size_t, void* data) {
  auto* request = static_cast<PatchRequest*>(data);
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (strstr(name, "libc.so") != nullptr || strstr(name, "ld-linux") != nullptr) return 0;
  if (request->self_path != nullptr && strcmp(name, request->self_path) == 0) return 0;

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
    PatchRelocations(info, jmprel, jmprel_size / sizeof(ElfW(Rela)), symtab, strtab, relro_start, relro_end, request);
  if (rela != nullptr)
    PatchRelocations(info, rela, rela_size / sizeof(ElfW(Rela)), symtab, strtab, relro_start, relro_end, request);
  return 0;
}

}  // namespace

int PatchGotSlots(const char* symbol, void* replacement, int* errors) {
  PatchRequest request{symbol, replacement, nullptr, 0, 0};
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&PatchGotSlots), &self) != 0) request.self_path = self.dli_fname;
  dl_iterate_phdr(&PatchObject, &request);
  if (errors != nullptr) *errors = request.errors;
  return request.patched;
}

}  // namespace forkd
