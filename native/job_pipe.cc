// The job pipe of an idle prefork child. Such a child has nothing to do but
// wait for one job, so it waits in a blocking poll() instead of its event
// loop: woken by the parent's write, it returns the job to JS at once, without
// a turn of the loop, a stream and its events in between.
//
// One thing may not wait: a signal with a JS listener (the job runner's
// SIGTERM, a listener an atFork hook added). libuv's handler only writes the
// signal to the loop's signal pipe and restarts the interrupted call
// (SA_RESTART), so the wait polls that pipe too and returns to JS, which lets
// the loop dispatch the signal, then waits again. A signal that arrives before
// the poll leaves the pipe readable: none is missed. Signals without a
// listener act as they would anywhere (SIGKILL, SIGINT's default kill).
#include "job_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <vector>

#include "errors.h"
#include "write_all.h"

namespace forkd {
namespace {

constexpr size_t kLineStart = 4096;

// The line being read, kept across a return to JS for a signal. A partial
// line is never handed out: the parent writes a job whole or kills the child.
// A process waits on one job pipe at a time. Allocated and written before the
// wait (until then it is a copy-on-write page of the parent's heap), and never
// freed on the way out, so that the wake-up path neither faults nor calls
// malloc.
struct Pending {
  int fd = -1;
  std::vector<char> buf;
  size_t len = 0;
};
Pending g_pending;

int SignalPipe(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return -1;
  return loop->signal_pipefd[0];
}

}  // namespace

Napi::Value JobPipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return ThrowErrno(env, errno, "pipe2", errno == EMFILE ? "too many open files (ulimit -n)" : nullptr);
  int flags = fcntl(fds[1], F_GETFL);
  if (flags < 0 || fcntl(fds[1], F_SETFL, flags | O_NONBLOCK) != 0) {
    int saved = errno;
    close(fds[0]);
    close(fds[1]);
    return ThrowErrno(env, saved, "fcntl", "F_SETFL O_NONBLOCK");
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, fds[0]);
  out.Set(1u, fds[1]);
  return out;
}

Napi::Value ReadJobLine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!ArgInt(info, 0, &fd)) return env.Undefined();
  Pending& p = g_pending;
  if (p.fd != fd) {
    p.fd = fd;
    p.len = 0;
  }
  if (p.buf.size() < kLineStart) p.buf.resize(kLineStart);
  int signal_pipe = SignalPipe(env);
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {signal_pipe, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      p.fd = -1;
      return ThrowErrno(env, errno, "poll");
    }
    // The job first: a job and a signal together are a signal to the job.
    if (fds[0].revents != 0) {
      if (p.len == p.buf.size()) p.buf.resize(p.buf.size() * 2);
      ssize_t got = read(fd, p.buf.data() + p.len, p.buf.size() - p.len);
      if (got < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        p.fd = -1;
        return ThrowErrno(env, errno, "read");
      }
      if (got == 0) {
        p.fd = -1;
        return env.Null();
      }
      const char* start = p.buf.data() + p.len;
      p.len += static_cast<size_t>(got);
      const char* newline = static_cast<const char*>(memchr(start, '\n', static_cast<size_t>(got)));
      if (newline == nullptr) continue;
      p.fd = -1;
      return Napi::String::New(env, p.buf.data(), static_cast<size_t>(newline - p.buf.data()));
    }
    if (fds[1].revents != 0) return env.Undefined();
  }
}

Napi::Value WriteJobLine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd, timeout_ms;
  if (!ArgInt(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsString()) return ThrowType(env, "argument 1 must be a string");
  if (!ArgInt(info, 2, &timeout_ms)) return env.Undefined();
  // A job line is usually short: it is built on the stack, which the pool's
  // process has written recently, rather than in fresh heap memory that a
  // fork since made copy-on-write.
  size_t len = 0;
  napi_get_value_string_utf8(env, info[1], nullptr, 0, &len);
  char small[4096];
  std::string large;
  char* data = small;
  if (len + 2 > sizeof small) {
    large.resize(len + 2);
    data = &large[0];
  }
  napi_get_value_string_utf8(env, info[1], data, len + 1, &len);
  data[len] = '\n';
  const size_t total = len + 1;
  // A full pipe: the child reads the rest once it is scheduled. EPIPE: it is gone.
  size_t done = WriteAll(fd, data, total, NowMs() + timeout_ms);
  return Napi::Boolean::New(env, done == total);
}

}  // namespace forkd
