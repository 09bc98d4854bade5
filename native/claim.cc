// rename(2) for a run child's claim on its run (src/child/claim.ts; the
// protocol is in src/protocol/run-files.ts). Here rather than through
// fs.renameSync: it is the first thing a run's child does on its way from
// the fork to the handler, and as a fresh child's first act fs.renameSync
// took 450 us (median; its JS compiled in the child, its path validation and
// error context, their feedback written on copy-on-write pages) against
// 71-75 us for this, most of it the first touches any first native call in
// a child pays; the rename itself is 8-10 us (ext4).
#include "claim.h"

#include <errno.h>
#include <stdio.h>

#include <string>

namespace forkd {

Napi::Value RenameFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) return Napi::Boolean::New(env, false);
  std::string from = info[0].As<Napi::String>().Utf8Value();
  std::string to = info[1].As<Napi::String>().Utf8Value();
  int r;
  do {
    r = rename(from.c_str(), to.c_str());
  } while (r != 0 && errno == EINTR);
  return Napi::Boolean::New(env, r == 0);
}

}  // namespace forkd
