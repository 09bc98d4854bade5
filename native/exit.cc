// How a forked child leaves. Node's own exit path (process.exit(), a loop
// that runs dry, a fatal exception) joins the V8 platform's worker threads and
// drains their queue; the child has neither, so that path segfaults or hangs.
// The child instead runs its exit listeners in JS, then comes here: what
// libuv still holds for stdout/stderr is written out, and the process ends
// with _exit() (or by re-raising the signal that killed it), never returning
// to Node's teardown.
#include "exit.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "child_state.h"
#include "errors.h"
#include "write_all.h"

namespace forkd {
namespace {

constexpr int kFlushTimeoutMs = 5000;

struct uv_queue_links {
  uv_queue_links* next;
  uv_queue_links* prev;
};

// Writes out, in order, the requests libuv has queued on a stdout/stderr
// stream because the pipe was full. Their callbacks never run: the process is
// about to end.
void FlushHandle(uv_handle_t* handle, void* arg) {
  if (handle->type != UV_NAMED_PIPE && handle->type != UV_TTY && handle->type != UV_TCP) return;
  uv_os_fd_t fd;
  if (uv_fileno(handle, &fd) != 0 || (fd != 1 && fd != 2)) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(handle);
  long long deadline = *static_cast<long long*>(arg);
  auto* head = reinterpret_cast<uv_queue_links*>(&stream->write_queue);
  for (auto* q = head->next; q != head; q = q->next) {
    // uv_write_t's queue link is its first private field; libuv advances
    // bufs[write_index] in place as it writes part of a buffer.
    uv_write_t* req = reinterpret_cast<uv_write_t*>(reinterpret_cast<char*>(q) - offsetof(uv_write_t, queue));
    for (unsigned i = req->write_index; i < req->nbufs; i++)
      WriteAll(fd, req->bufs[i].base, req->bufs[i].len, deadline);
    req->write_index = req->nbufs;  // a second flush must not repeat it
  }
}

void FlushStdio(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;
  long long deadline = NowMs() + kFlushTimeoutMs;
  uv_walk(loop, FlushHandle, &deadline);
}

uv_prepare_t* g_drain_watch = nullptr;
Napi::FunctionReference g_drain_callback;

// This watch is the only active, referenced handle and nothing else is
// pending: Node would now leave uv_run() and start its own teardown.
bool LoopIsDry(uv_loop_t* loop) {
  return loop->active_handles <= 1 && loop->active_reqs.count == 0 && loop->closing_handles == nullptr;
}

void OnPrepare(uv_prepare_t* handle) {
  uv_loop_t* loop = handle->loop;
  if (!LoopIsDry(loop)) return;
  Napi::Env env = g_drain_callback.Env();
  Napi::HandleScope scope(env);
  Napi::AsyncContext context(env, "forkd:drain");
  // As in Node: 'beforeExit' may schedule more work; only a loop still dry
  // after it (and the ticks it queued) ends the process.
  g_drain_callback.MakeCallback(env.Global(), {Napi::String::New(env, "beforeExit")}, context);
  if (!LoopIsDry(loop)) return;
  g_drain_callback.MakeCallback(env.Global(), {Napi::String::New(env, "exit")}, context);
}

}  // namespace

Napi::Value ExitNow(const Napi::CallbackInfo& info) {
  int code = 0;
  if (info.Length() > 0 && !ArgInt(info, 0, &code)) return info.Env().Undefined();
  FlushStdio(info.Env());
  _exit(code & 0xff);
}

Napi::Value FlushStdioJs(const Napi::CallbackInfo& info) {
  FlushStdio(info.Env());
  return info.Env().Undefined();
}

Napi::Value DieBySignal(const Napi::CallbackInfo& info) {
  int signo;
  if (!ArgInt(info, 0, &signo)) return info.Env().Undefined();
  FlushStdio(info.Env());
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(signo, &dfl, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  raise(signo);
  // Only reached for a signal whose default action is not to terminate.
  _exit(128 + signo);
}

Napi::Value WriteSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd, timeout_ms;
  if (!ArgInt(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsBuffer()) return ThrowType(env, "argument 1 must be a Buffer");
  if (!ArgInt(info, 2, &timeout_ms)) return env.Undefined();
  Napi::Buffer<char> buf = info[1].As<Napi::Buffer<char>>();
  size_t n = WriteAll(fd, buf.Data(), buf.Length(), NowMs() + timeout_ms);
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value ArmDrainWatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) return ThrowType(env, "argument 0 must be a function");
  if (!g_is_forked_child) return ThrowType(env, "armDrainWatch is only for a forked child");
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  g_drain_callback = Napi::Persistent(info[0].As<Napi::Function>());
  if (g_drain_watch == nullptr) {
    g_drain_watch = new uv_prepare_t;
    uv_prepare_init(loop, g_drain_watch);
    uv_prepare_start(g_drain_watch, OnPrepare);
  }
  return env.Undefined();
}

}  // namespace forkd
