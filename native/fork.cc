// The fork sequence. A Node process is not fork-safe by itself: this file is
// where the parent is made ready for fork() and where the child's event loop is
// repaired before any JavaScript runs in it again. The JS side (src/lib/fork.ts)
// then resets process-level state (pid, listeners, random streams, timers).
//
//   1. The heap is made forkable (dontfork.cc): V8 maps it MADV_DONTFORK.
//   2. Every V8 platform worker thread is parked in a task of ours
//      (platform_park.cc), so none is waiting on a condvar, holding a lock or
//      running GC/compiler work at the instant of fork.
//   3. All signals are blocked, so no handler runs between fork() and the
//      child's repair (libuv's handler writes to a pipe the child replaces).
//   4. fork().
//   5. Parent: restore the signal mask, release the parked threads. Done.
//   6. Child: PR_SET_PDEATHSIG and the parent check (no orphan may outlive a
//      parent that died before prctl); repair the loop (RepairLoop); call
//      uv_loop_fork(); bring the loop clock up to date; give the platform
//      worker threads of its own (child_platform.cc); restore the mask.
//      The child returns into JS, but never back into the caller's code: the
//      JS layer runs only the job and leaves through _exit (exit.cc).
#include "fork.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include <climits>
#include <set>
#include <string>

#include "child_platform.h"
#include "child_state.h"
#include "dontfork.h"
#include "errors.h"
#include "platform_park.h"

namespace forkd {

bool g_is_forked_child = false;

namespace {

// The placeholder every inherited I/O fd of this child now refers to (set in
// the child by RepairLoop): JS asks whether a socket's fd is one of them, to
// refuse writes to the parent's connections with an error that says so
// (src/child/inherited-sockets.ts).
bool g_have_placeholder = false;
dev_t g_placeholder_dev = 0;
ino_t g_placeholder_ino = 0;

struct uv_queue_links {
  uv_queue_links* next;
  uv_queue_links* prev;
};

void QueueInit(void* q) {
  auto* links = static_cast<uv_queue_links*>(q);
  links->next = links;
  links->prev = links;
}

struct RepairContext {
  int placeholder;
  const std::set<int>* keep;
};

// The requests the parent had queued on an inherited handle (a connect in
// progress, writes not yet flushed, a shutdown) are the parent's: their
// callbacks must not run in the child. libuv runs them with ECANCELED when the
// handle is closed, unregistering each from the loop's request count, which
// the child starts at zero (RepairLoop): a child that destroyed an inherited
// socket with writes queued, or one still connecting (ioredis's connect
// timeout did), died of libuv's assertion in uv__req_unregister.
void ForgetRequests(uv_handle_t* handle) {
  if (handle->type == UV_UDP) {
    auto* udp = reinterpret_cast<uv_udp_t*>(handle);
    QueueInit(&udp->write_queue);
    QueueInit(&udp->write_completed_queue);
    udp->send_queue_size = 0;
    udp->send_queue_count = 0;
    return;
  }
  if (handle->type != UV_TCP && handle->type != UV_NAMED_PIPE && handle->type != UV_TTY) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(handle);
  stream->connect_req = nullptr;
  stream->shutdown_req = nullptr;
  QueueInit(&stream->write_queue);
  QueueInit(&stream->write_completed_queue);
  stream->write_queue_size = 0;
}

// Inherited I/O handles would be re-armed by uv_loop_fork(): the child would
// accept() on the parent's servers, steal reads from its sockets and pipes and
// re-send its queued writes. Each such fd is replaced (dup3) by the read end of
// a pipe nobody writes to: it never becomes readable or writable, and closing
// it later touches nothing of the parent's. dup3 also drops the child's
// reference to the parent's socket, so the parent's close() takes effect at
// once. stdout and stderr stay: the child writes its output there.
void RepairHandle(uv_handle_t* handle, void* arg) {
  auto* ctx = static_cast<RepairContext*>(arg);
  if (uv_is_closing(handle)) return;
  switch (handle->type) {
    case UV_TCP:
    case UV_NAMED_PIPE:
    case UV_TTY:
    case UV_UDP:
    case UV_POLL: {
      uv_os_fd_t fd;
      if (uv_fileno(handle, &fd) != 0) return;
      if (fd == 1 || fd == 2 || ctx->keep->count(fd) != 0) return;
      dup3(ctx->placeholder, fd, O_CLOEXEC);
      // Closing an inherited unix-socket server in the child must not unlink
      // the parent's socket path (libuv unlinks pipe_fname on close).
      if (handle->type == UV_NAMED_PIPE) reinterpret_cast<uv_pipe_t*>(handle)->pipe_fname = nullptr;
      ForgetRequests(handle);
      uv_unref(handle);
      break;
    }
    case UV_PROCESS:
      // The parent's subprocesses are not the child's: cp.kill() in the child
      // must not reach them. No pid reaches INT_MAX (pid_max <= 2^22), so
      // kill() fails with ESRCH and libuv's waitpid() with ECHILD.
      reinterpret_cast<uv_process_t*>(handle)->pid = INT_MAX;
      uv_unref(handle);
      break;
    case UV_SIGNAL: {
      // libuv 1.46 spins closing a signal handle whose caught signal was not
      // dispatched yet (fixed upstream in 1.47); the child starts with none.
      auto* sig = reinterpret_cast<uv_signal_t*>(handle);
      sig->caught_signals = sig->dispatched_signals;
      break;
    }
    case UV_FS_EVENT:
      // Otherwise uv_loop_fork() re-adds the inotify watches and the parent's
      // fs.watch() callbacks run in the child.
      uv_fs_event_stop(reinterpret_cast<uv_fs_event_t*>(handle));
      uv_unref(handle);
      break;
    case UV_FS_POLL:
      uv_fs_poll_stop(reinterpret_cast<uv_fs_poll_t*>(handle));
      uv_unref(handle);
      break;
    default:
      // Timers, async, check, idle and prepare handles belong to Node's
      // environment and stay; JS timers are cleared by the JS layer.
      break;
  }
}

// The child's epoll instance is new (uv_loop_fork() makes it) and holds no
// fd, but each I/O watcher remembers, in `events`, what the parent's instance
// had registered for it: uv__io_poll() sends EPOLL_CTL_MOD for a watcher with
// events != 0 and EPOLL_CTL_ADD for one with none. uv_loop_fork() zeroes
// `events` only on the watchers it queues itself, those not already waiting in
// loop->watcher_queue; a watcher the parent had changed in the loop iteration
// of the fork (a socket whose shutdown completed, or whose write could not be
// flushed, just before a fork in the check phase) is already queued and keeps
// the parent's mask. The child's first poll then sends MOD for an fd its epoll
// instance never had, epoll_ctl fails with ENOENT and libuv calls abort(): the
// child died of SIGABRT before its job's first I/O (FORK_SAFETY.md, hazard 59).
void ForgetRegistrations(uv_loop_t* loop) {
  for (unsigned int i = 0; i < loop->nwatchers; i++) {
    auto* w = static_cast<uv__io_t*>(loop->watchers[i]);
    if (w != nullptr) w->events = 0;
  }
}

// Returns 0 or a negative errno.
int RepairLoop(uv_loop_t* loop, const std::set<int>& keep) {
  // uv_loop_fork() does not re-initialise wq_mutex; if a threadpool thread
  // held it at fork, the child's pool would block on it forever.
  uv_mutex_init(&loop->wq_mutex);
  // Threadpool work the parent completed but had not delivered would be
  // delivered in both processes (the parent's callbacks running in the child);
  // work still queued belongs to threads the child does not have.
  QueueInit(&loop->wq);
  QueueInit(&loop->pending_queue);
  // Handles the parent was closing: their close callbacks are the parent's.
  loop->closing_handles = nullptr;
  // Requests in flight in the parent never complete here; without this the
  // child's loop could never tell it has run dry.
  loop->active_reqs.count = 0;

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return -errno;
  // The write end stays open (and unused) so the read end never sees EOF.
  RepairContext ctx{pipefd[0], &keep};
  struct stat st;
  if (fstat(pipefd[0], &st) == 0) {
    g_have_placeholder = true;
    g_placeholder_dev = st.st_dev;
    g_placeholder_ino = st.st_ino;
  }
  // The inotify fd refers to the same inotify instance as the parent's: the
  // uv_fs_event_stop() calls below would inotify_rm_watch() the parent's own
  // watches (its fs.watch() went silent after the first fork). Point the
  // child's copy at the placeholder first; uv_loop_fork() then closes it and
  // the child opens an inotify instance of its own on its first fs.watch().
  if (loop->inotify_fd >= 0) dup3(ctx.placeholder, loop->inotify_fd, O_CLOEXEC);
  uv_walk(loop, RepairHandle, &ctx);
  ForgetRegistrations(loop);

  int err = uv_loop_fork(loop);
  if (err != 0) return err;
  uv_update_time(loop);  // a stale clock would fire every timer at once
  return 0;
}

[[noreturn]] void ChildFailed(const char* what, int err) {
  // Nothing in the child is trustworthy enough for an exception: report on
  // stderr and leave without running any of the parent's exit code.
  dprintf(2, "forkd: forked child %d could not start: %s: %s\n", getpid(), what, strerror(-err));
  _exit(70);
}

}  // namespace

Napi::Value Fork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int death_signal = 0;
  int park_timeout_ms = 2000;
  std::set<int> keep;
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object opts = info[0].As<Napi::Object>();
    Napi::Value ds = opts.Get("deathSignal");
    if (ds.IsNumber()) death_signal = ds.As<Napi::Number>().Int32Value();
    Napi::Value pt = opts.Get("parkTimeoutMs");
    if (pt.IsNumber()) park_timeout_ms = pt.As<Napi::Number>().Int32Value();
    Napi::Value kf = opts.Get("keepFds");
    if (kf.IsArray()) {
      Napi::Array arr = kf.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); i++) keep.insert(arr.Get(i).As<Napi::Number>().Int32Value());
    }
  }

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr)
    return ThrowErrno(env, EINVAL, "fork", "no libuv loop is attached to this thread (fork only from the main thread)");

  // Step 1.
  std::string error;
  if (!EnsureHeapForkable(&error)) return ThrowErrno(env, EIO, "fork", error.c_str());

  // Step 2. A forked child has no platform threads of Node's to park, and
  // stops its own (child_platform.cc).
  if (!g_is_forked_child && !ParkPlatformWorkers(park_timeout_ms, &error))
    return ThrowErrno(env, EBUSY, "fork", error.c_str());
  if (g_is_forked_child && !StopChildPlatformThreads())
    return ThrowErrno(env, EBUSY, "fork", "a worker_threads Worker of this child is still running; terminate it first");
  int platform_threads = g_is_forked_child ? 0 : PlatformWorkerCount();

  // Step 3.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t parent = getpid();

  // Step 4.
  pid_t pid = fork();

  if (pid != 0) {
    // Step 5.
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (!g_is_forked_child) ReleasePlatformWorkers();
    if (pid < 0) {
      const char* hint = saved == EAGAIN ? "the process or thread limit is reached (ulimit -u, pids cgroup)"
                                         : saved == ENOMEM ? "not enough memory to copy the page tables" : nullptr;
      return ThrowErrno(env, saved, "fork", hint);
    }
    return Napi::Number::New(env, pid);
  }

  // Step 6.
  g_is_forked_child = true;
  if (death_signal > 0) {
    prctl(PR_SET_PDEATHSIG, death_signal);
    if (getppid() != parent) _exit(128 + death_signal);
  }
  int err = RepairLoop(loop, keep);
  if (err != 0) ChildFailed("repairing the event loop", err);
  // Worker-thread tasks get threads again, as many as the parent parked.
  InstallChildPlatform(platform_threads);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return Napi::Number::New(env, 0);
}

Napi::Value ThreadCount(const Napi::CallbackInfo& info) {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return ThrowErrno(info.Env(), errno, "opendir", "cannot list /proc/self/task");
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') count++;
  }
  closedir(dir);
  return Napi::Number::New(info.Env(), count);
}

Napi::Value PlatformWorkers(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), g_is_forked_child ? 0 : PlatformWorkerCount());
}

Napi::Value IsForkedChild(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), g_is_forked_child);
}

Napi::Value IsNeutralisedFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct stat st;
  // A nested child made its own placeholder: the fds it inherited were
  // pointed at that one by its own repair.
  bool same = g_have_placeholder && fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == g_placeholder_dev && st.st_ino == g_placeholder_ino;
  return Napi::Boolean::New(env, same);
}

}  // namespace forkd
