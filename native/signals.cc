// Sending signals. ESRCH is not an error worth an exception here: the target
// may have exited (and been reaped) a moment ago, which the caller learns from
// its exit status; it is reported as `false`, like child_process's kill().
#include "signals.h"

#include <errno.h>
#include <signal.h>

#include "errors.h"

namespace forkd {

Napi::Value Kill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid, signo;
  if (!ArgInt(info, 0, &pid) || !ArgInt(info, 1, &signo)) return env.Undefined();
  if (pid <= 0) return ThrowType(env, "pid must be a positive integer (use killpg for groups)");
  if (kill(pid, signo) == 0) return Napi::Boolean::New(env, true);
  if (errno == ESRCH) return Napi::Boolean::New(env, false);
  return ThrowErrno(env, errno, "kill", errno == EPERM ? "the target belongs to another user" : nullptr);
}

Napi::Value KillPg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pgid, signo;
  if (!ArgInt(info, 0, &pgid) || !ArgInt(info, 1, &signo)) return env.Undefined();
  if (pgid <= 1) return ThrowType(env, "pgid must be an integer > 1");
  if (killpg(pgid, signo) == 0) return Napi::Boolean::New(env, true);
  if (errno == ESRCH) return Napi::Boolean::New(env, false);
  return ThrowErrno(env, errno, "killpg", errno == EPERM ? "the group has processes of another user" : nullptr);
}

}  // namespace forkd
