// Reaping. Never waitpid(-1): it would steal the exit statuses of processes
// started by child_process. Each child is watched through a pidfd polled by
// libuv; when it becomes readable the child has exited and wait4(pid, WNOHANG)
// reaps exactly that child, with its resource usage.
#include "wait.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <unordered_map>

#include "errors.h"

namespace forkd {
namespace {

struct ExitWatch {
  uv_poll_t poll;
  int pidfd;
  pid_t pid;
  int id;
  Napi::FunctionReference callback;
};

std::unordered_map<int, ExitWatch*> g_watches;
int g_next_id = 1;

Napi::Object ExitInfo(Napi::Env env, pid_t pid, int status, const rusage& ru, bool reaped) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", pid);
  out.Set("reaped", reaped);
  if (reaped && WIFEXITED(status)) {
    out.Set("code", WEXITSTATUS(status));
    out.Set("signal", env.Null());
    out.Set("coreDumped", false);
  } else if (reaped && WIFSIGNALED(status)) {
    out.Set("code", env.Null());
    out.Set("signal", WTERMSIG(status));
    out.Set("coreDumped", WCOREDUMP(status) != 0);
  } else {
    out.Set("code", env.Null());
    out.Set("signal", env.Null());
    out.Set("coreDumped", false);
  }
  Napi::Object usage = Napi::Object::New(env);
  usage.Set("userMs", ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3);
  usage.Set("systemMs", ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3);
  usage.Set("maxRssKb", static_cast<double>(ru.ru_maxrss));
  out.Set("rusage", usage);
  return out;
}

// Returns the pid reaped, 0 if still running, -1 with errno.
pid_t Wait4NoHang(pid_t pid, int* status, rusage* ru) {
  pid_t r;
  do {
    r = wait4(pid, status, WNOHANG | __WALL, ru);
  } while (r < 0 && errno == EINTR);
  return r;
}

void OnClosed(uv_handle_t* handle) {
  auto* watch = static_cast<ExitWatch*>(handle->data);
  close(watch->pidfd);
  delete watch;
}

void Finish(ExitWatch* watch) {
  g_watches.erase(watch->id);
  uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll), OnClosed);
}

void OnReadable(uv_poll_t* handle, int status, int events) {
  auto* watch = static_cast<ExitWatch*>(handle->data);
  int wstatus = 0;
  rusage ru{};
  pid_t r = Wait4NoHang(watch->pid, &wstatus, &ru);
  if (r == 0) return;  // readable but not yet waitable: try again on the next wakeup
  // ECHILD: the process exited but is not ours to reap (a pid we adopted
  // through the subreaper flag after it had already been reaped, or somebody
  // called waitpid(-1) and took it). Report it, marked as not reaped.
  bool reaped = r == watch->pid;
  Napi::Env env = watch->callback.Env();
  Napi::HandleScope scope(env);
  Napi::Object info = ExitInfo(env, watch->pid, wstatus, ru, reaped);
  Napi::FunctionReference callback = std::move(watch->callback);
  Finish(watch);
  Napi::AsyncContext context(env, "forkd:exit");
  callback.MakeCallback(env.Global(), {info}, context);
}

}  // namespace

Napi::Value WatchExit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid;
  if (!ArgInt(info, 0, &pid)) return env.Undefined();
  if (pid <= 0) return ThrowType(env, "pid must be a positive integer");
  if (info.Length() < 2 || !info[1].IsFunction()) return ThrowType(env, "argument 1 must be a function");
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return ThrowErrno(env, errno, "pidfd_open", errno == ESRCH ? "no such process (already reaped?)" : nullptr);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  auto* watch = new ExitWatch;
  watch->pidfd = pidfd;
  watch->pid = pid;
  watch->id = g_next_id++;
  watch->callback = Napi::Persistent(info[1].As<Napi::Function>());
  watch->poll.data = watch;
  int err = uv_poll_init(loop, &watch->poll, pidfd);
  if (err == 0) err = uv_poll_start(&watch->poll, UV_READABLE, OnReadable);
  if (err != 0) {
    close(pidfd);
    delete watch;
    return ThrowErrno(env, -err, "uv_poll_start");
  }
  g_watches[watch->id] = watch;
  return Napi::Number::New(env, watch->id);
}

Napi::Value RefExit(const Napi::CallbackInfo& info) {
  int id;
  if (!ArgInt(info, 0, &id)) return info.Env().Undefined();
  auto it = g_watches.find(id);
  if (it == g_watches.end()) return info.Env().Undefined();
  auto* handle = reinterpret_cast<uv_handle_t*>(&it->second->poll);
  if (info.Length() > 1 && info[1].ToBoolean().Value()) uv_ref(handle); else uv_unref(handle);
  return info.Env().Undefined();
}

Napi::Value CancelExitWatch(const Napi::CallbackInfo& info) {
  int id;
  if (!ArgInt(info, 0, &id)) return info.Env().Undefined();
  auto it = g_watches.find(id);
  if (it != g_watches.end()) {
    it->second->callback.Reset();
    Finish(it->second);
  }
  return info.Env().Undefined();
}

Napi::Value TryWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid;
  if (!ArgInt(info, 0, &pid)) return env.Undefined();
  if (pid <= 0) return ThrowType(env, "pid must be a positive integer (waitpid(-1) would reap other code's children)");
  int wstatus = 0;
  rusage ru{};
  pid_t r = Wait4NoHang(pid, &wstatus, &ru);
  if (r == 0) return env.Null();
  if (r < 0) return ThrowErrno(env, errno, "wait4", errno == ECHILD ? "not a child of this process, or already reaped" : nullptr);
  return ExitInfo(env, pid, wstatus, ru, true);
}

}  // namespace forkd
