// flock() for the supervisor's state-directory lock (src/supervisor/store/
// state-lock.ts). The lock belongs to the open file description: it stays
// held across the restart's execve (the fd is handed over), is released by
// the kernel when the last fd to it closes, a crash included, and is not
// taken by processes the supervisor spawns (the fd is close-on-exec).
#include "lock.h"

#include <errno.h>
#include <sys/file.h>

#include "errors.h"

namespace forkd {

Napi::Value LockExclusive(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int rc;
  do {
    rc = flock(fd, LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(info.Env(), false);
  return ThrowErrno(info.Env(), errno, "flock");
}

}  // namespace forkd
