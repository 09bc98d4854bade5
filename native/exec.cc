// execve() for a process that wants to become a new version of itself (the
// supervisor's graceful restart) and keep exactly the fds it names: the
// listening sockets and open connections it hands over. Every other fd is
// marked close-on-exec first, so nothing leaks across restarts. The kept fds
// arrive in the new image without close-on-exec (that is how they crossed):
// the new image marks them again with setCloexec() before it starts any
// process, or every zygote and run forked later would hold them.
#include "exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "errors.h"

namespace forkd {
namespace {

bool StringArray(Napi::Value value, std::vector<std::string>* out) {
  if (!value.IsArray()) return false;
  Napi::Array arr = value.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    if (!item.IsString()) return false;
    out->push_back(item.As<Napi::String>().Utf8Value());
  }
  return true;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

int SetCloexec(int fd, bool on) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return -1;
  int wanted = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  return wanted == flags ? 0 : fcntl(fd, F_SETFD, wanted);
}

}  // namespace

Napi::Value Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return ThrowType(env, "argument 0 must be the file to execute");
  std::string file = info[0].As<Napi::String>().Utf8Value();
  std::vector<std::string> argv, envv;
  if (!StringArray(info[1], &argv)) return ThrowType(env, "argument 1 must be an array of strings (argv)");
  if (!StringArray(info[2], &envv)) return ThrowType(env, "argument 2 must be an array of strings (environment)");
  std::set<int> keep{0, 1, 2};
  if (info.Length() > 3 && info[3].IsArray()) {
    Napi::Array arr = info[3].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) keep.insert(arr.Get(i).As<Napi::Number>().Int32Value());
  }
  // A failed execve leaves the process as it was: the kept fds get their
  // close-on-exec flag back, so a later spawn does not inherit them.
  std::vector<int> cleared;
  auto restore = [&cleared]() {
    for (int fd : cleared) SetCloexec(fd, true);
  };
  for (int fd : keep) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || SetCloexec(fd, false) != 0) {
      int saved = errno;
      restore();
      return ThrowErrno(env, saved, "fcntl", ("fd " + std::to_string(fd) + " to keep is not open").c_str());
    }
    if ((flags & FD_CLOEXEC) != 0 && fd > 2) cleared.push_back(fd);
  }
  std::vector<int> marked;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) {
    int saved = errno;
    restore();
    return ThrowErrno(env, saved, "opendir");
  }
  int self = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = atoi(entry->d_name);
    if (fd == self || keep.count(fd) != 0) continue;
    if (SetCloexec(fd, true) == 0) marked.push_back(fd);
  }
  closedir(dir);

  // Node blocks or handles signals on its own behalf; the new image must
  // start with the defaults, as a freshly started node would.
  sigset_t empty;
  sigemptyset(&empty);
  sigset_t old;
  pthread_sigmask(SIG_SETMASK, &empty, &old);
  std::vector<char*> c_argv = CStrings(argv);
  std::vector<char*> c_env = CStrings(envv);
  execve(file.c_str(), c_argv.data(), c_env.data());
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  restore();
  return ThrowErrno(env, saved, "execve", file.c_str());
}

// setCloexec(fds[]): marks each fd close-on-exec. For the fds a restart's
// execve handed over, once the new image has them (see above).
Napi::Value SetCloexecJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) return ThrowType(env, "argument 0 must be an array of fds");
  Napi::Array arr = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    if (!item.IsNumber()) return ThrowType(env, "argument 0 must be an array of fds");
    int fd = item.As<Napi::Number>().Int32Value();
    if (SetCloexec(fd, true) != 0) return ThrowErrno(env, errno, "fcntl", ("cannot mark fd " + std::to_string(fd) + " close-on-exec").c_str());
  }
  return env.Undefined();
}

// markAllCloexec(): every fd above stdio becomes close-on-exec, in one pass
// over /proc/self/fd. An fd that another thread closes between the listing
// and the mark (libuv's threadpool finishing an fs call) needs no mark, so
// its EBADF is not an error, as it would be for a list made beforehand.
Napi::Value MarkAllCloexecJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return ThrowErrno(env, errno, "opendir", "/proc/self/fd");
  int self = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int fd = atoi(entry->d_name);
    if (fd <= 2 || fd == self) continue;
    if (SetCloexec(fd, true) != 0 && errno != EBADF) {
      int saved = errno;
      closedir(dir);
      return ThrowErrno(env, saved, "fcntl", ("cannot mark fd " + std::to_string(fd) + " close-on-exec").c_str());
    }
  }
  closedir(dir);
  return env.Undefined();
}

}  // namespace forkd
