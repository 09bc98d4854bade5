// Process control a daemon and its children need: identity, sessions and
// groups, the name `ps` shows, parent-death, subreaper and dumpable flags,
// stdio redirection and fd hygiene.
#include "process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <set>
#include <string>

#include "errors.h"

namespace forkd {

Napi::Value GetPid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), getpid()); }
Napi::Value GetPpid(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), getppid()); }

Napi::Value SetSid(const Napi::CallbackInfo& info) {
  pid_t sid = setsid();
  if (sid < 0) return ThrowErrno(info.Env(), errno, "setsid", errno == EPERM ? "this process already leads a process group" : nullptr);
  return Napi::Number::New(info.Env(), sid);
}

Napi::Value SetPgid(const Napi::CallbackInfo& info) {
  int pid, pgid;
  if (!ArgInt(info, 0, &pid) || !ArgInt(info, 1, &pgid)) return info.Env().Undefined();
  if (setpgid(pid, pgid) != 0) return ThrowErrno(info.Env(), errno, "setpgid");
  return info.Env().Undefined();
}

Napi::Value GetPgid(const Napi::CallbackInfo& info) {
  int pid = 0;
  if (info.Length() > 0 && !ArgInt(info, 0, &pid)) return info.Env().Undefined();
  pid_t pgid = getpgid(pid);
  if (pgid < 0) return ThrowErrno(info.Env(), errno, "getpgid");
  return Napi::Number::New(info.Env(), pgid);
}

Napi::Value SetProcessTitle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "argument 0 must be a string");
  std::string title = info[0].As<Napi::String>().Utf8Value();
  // uv_set_process_title rewrites the argv area node reserved at start-up
  // (what `ps` prints, truncated to that area's length); prctl sets the
  // 15-byte thread name that `top` and /proc/PID/comm show.
  int err = uv_set_process_title(title.c_str());
  if (err != 0) return ThrowErrno(env, -err, "uv_set_process_title");
  if (prctl(PR_SET_NAME, title.substr(0, 15).c_str()) != 0) return ThrowErrno(env, errno, "prctl");
  return env.Undefined();
}

Napi::Value SetDeathSignal(const Napi::CallbackInfo& info) {
  int signo;
  if (!ArgInt(info, 0, &signo)) return info.Env().Undefined();
  if (prctl(PR_SET_PDEATHSIG, signo) != 0) return ThrowErrno(info.Env(), errno, "prctl");
  return info.Env().Undefined();
}

Napi::Value SetChildSubreaper(const Napi::CallbackInfo& info) {
  bool on = info.Length() < 1 || info[0].ToBoolean().Value();
  if (prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0) != 0) return ThrowErrno(info.Env(), errno, "prctl");
  return info.Env().Undefined();
}

// setDumpable(false): other processes of this user (the zygote, every run)
// can no longer read this one's /proc/PID/environ, mem or fd/, nor ptrace
// it; root still can. The kernel resets the flag at every execve.
Napi::Value SetDumpable(const Napi::CallbackInfo& info) {
  bool on = info.Length() >= 1 && info[0].ToBoolean().Value();
  if (prctl(PR_SET_DUMPABLE, on ? 1 : 0) != 0) return ThrowErrno(info.Env(), errno, "prctl");
  return info.Env().Undefined();
}

// redirectFd(path, targetFd, append, mode): opens path and makes it targetFd.
Napi::Value RedirectFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "argument 0 must be a path");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int target, mode;
  if (!ArgInt(info, 1, &target) || !ArgInt(info, 3, &mode)) return env.Undefined();
  bool append = info[2].ToBoolean().Value();
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC);
  if (target == 0) flags = O_RDONLY | O_CLOEXEC;
  int fd;
  do {
    fd = open(path.c_str(), flags, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return ThrowErrno(env, errno, "open", path.c_str());
  if (fd != target) {
    int r;
    do {
      r = dup2(fd, target);
    } while (r < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (r < 0) return ThrowErrno(env, saved, "dup2");
  }
  return env.Undefined();
}

std::set<int> ListFds() {
  std::set<int> fds;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  int self = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = atoi(entry->d_name);
    if (fd != self) fds.insert(fd);
  }
  closedir(dir);
  return fds;
}

// closeFdsExcept(keep[]): closes every fd >= 3 not in keep. For a child that
// will exec, or must not hold the parent's files open.
Napi::Value CloseFdsExcept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::set<int> keep{0, 1, 2};
  if (info.Length() > 0 && info[0].IsArray()) {
    Napi::Array arr = info[0].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) keep.insert(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  int closed = 0;
  for (int fd : ListFds()) {
    if (keep.count(fd) != 0) continue;
    if (close(fd) == 0) closed++;
  }
  return Napi::Number::New(env, closed);
}

// pipe() -> [readFd, writeFd], both close-on-exec and blocking.
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ThrowErrno(info.Env(), errno, "pipe2", errno == EMFILE ? "too many open files (ulimit -n)" : nullptr);
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

// socketpair(AF_UNIX, SOCK_STREAM) -> [fd, fd], both close-on-exec and
// blocking. Unlike a pipe's, a socket's fd cannot be opened again through
// /proc/PID/fd/N (ENXIO): bytes waiting in it are readable only by a process
// that holds the fd itself.
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return ThrowErrno(info.Env(), errno, "socketpair");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  // Linux releases the fd even when close() reports EINTR: never retry.
  if (close(fd) != 0 && errno != EINTR) return ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

// dupFd(fd) -> a new close-on-exec fd for the same open file description:
// what keeps a listening socket open (its backlog queueing) after the server
// that owned it has closed its own fd.
Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (copy < 0) return ThrowErrno(info.Env(), errno, "fcntl", "F_DUPFD_CLOEXEC");
  return Napi::Number::New(info.Env(), copy);
}

namespace {
void ForgetPipeName(uv_handle_t* handle, void* arg) {
  if (handle->type != UV_NAMED_PIPE) return;
  uv_os_fd_t fd;
  if (uv_fileno(handle, &fd) != 0 || fd != *static_cast<int*>(arg)) return;
  // libuv unlinks a bound pipe's path when the handle closes; a server handed
  // over to another process image must leave the path in place.
  reinterpret_cast<uv_pipe_t*>(handle)->pipe_fname = nullptr;
}
}  // namespace

// keepPipePath(fd): closing the unix-socket server on fd will not unlink its path.
Napi::Value KeepPipePath(const Napi::CallbackInfo& info) {
  int fd;
  if (!ArgInt(info, 0, &fd)) return info.Env().Undefined();
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(info.Env(), &loop);
  uv_walk(loop, ForgetPipeName, &fd);
  return info.Env().Undefined();
}

Napi::Value OpenFds(const Napi::CallbackInfo& info) {
  std::set<int> fds = ListFds();
  Napi::Array out = Napi::Array::New(info.Env(), fds.size());
  uint32_t i = 0;
  for (int fd : fds) out.Set(i++, fd);
  return out;
}

}  // namespace forkd
