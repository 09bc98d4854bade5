// How a forked child leaves. Node's own exit path (process.exit(), a loop
// that runs dry, a fatal exception) joins the V8 platform's worker threads and
// drains their queue; the child has neither, so that path segfaults or hangs.
// The child instead runs its exit listeners in JS, then comes here: what
// libuv still holds for stdout/stderr is written out, and the process ends
// with _exit() (or by re-raising the signal that killed it), never returning
// to Node's teardown.
#include "exit.h"

#include <node.h>
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

void FlushLoopStdio(uv_loop_t* loop) {
  long long deadline = NowMs() + kFlushTimeoutMs;
  uv_walk(loop, FlushHandle, &deadline);
}

void FlushStdio(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) return;
  FlushLoopStdio(loop);
}

// The drain watch does at a dry loop what Node does there itself: it emits
// 'beforeExit' and 'exit' as ProcessEmit does, process.emit() called through
// node::MakeCallback with the async context {0, 0}. So async_hooks see no
// resource of ours and AsyncLocalStorage no store (a Napi::AsyncContext made
// a 'forkd:drain' resource each time), the listeners' stack is Node's, and
// with no TryCatch of ours around the call, an exception a listener throws
// reaches Node's uncaught-exception path (the app's 'uncaughtException'
// listeners, or Node's report and exit 1). napi_make_callback caught it and
// left it pending: the child then waited forever with no output.
struct DrainWatch {
  uv_prepare_t handle;
  v8::Isolate* isolate;
  v8::Global<v8::Context> context;
  v8::Global<v8::Object> process;
};
DrainWatch* g_drain_watch = nullptr;

// This watch is the only active, referenced handle and nothing else is
// pending: Node would now leave uv_run() and start its own teardown.
bool LoopIsDry(uv_loop_t* loop) {
  return loop->active_handles <= 1 && loop->active_reqs.count == 0 && loop->closing_handles == nullptr;
}

// Node-API values are V8 handles underneath (node_api.cc converts them with
// the same memcpy); the watch needs V8's own MakeCallback, which Node-API
// offers only inside a TryCatch.
v8::Local<v8::Value> ToV8(Napi::Value value) {
  napi_value raw = value;
  v8::Local<v8::Value> local;
  static_assert(sizeof(raw) == sizeof(local), "napi_value is a V8 handle");
  memcpy(static_cast<void*>(&local), &raw, sizeof(raw));
  return local;
}

v8::Local<v8::String> Str(v8::Isolate* isolate, const char* text) {
  return v8::String::NewFromUtf8(isolate, text).ToLocalChecked();
}

// process.exitCode as Node reads it at exit: unset is 0.
int ExitCode(v8::Isolate* isolate, v8::Local<v8::Context> context, v8::Local<v8::Object> process) {
  v8::Local<v8::Value> code;
  if (!process->Get(context, Str(isolate, "exitCode")).ToLocal(&code) || !code->IsNumber()) return 0;
  return code.As<v8::Number>()->Int32Value(context).FromMaybe(0);
}

// process[method](...args) as Node calls into JS from its loop. Returns false
// when it threw (the exception has been through the uncaught path by then).
bool CallProcess(v8::Isolate* isolate, v8::Local<v8::Object> process, const char* method, int argc, v8::Local<v8::Value>* argv) {
  return !node::MakeCallback(isolate, process, method, argc, argv, {0, 0}).IsEmpty();
}

void OnPrepare(uv_prepare_t* handle) {
  uv_loop_t* loop = handle->loop;
  if (!LoopIsDry(loop)) return;
  DrainWatch* watch = reinterpret_cast<DrainWatch*>(handle);
  v8::Isolate* isolate = watch->isolate;
  v8::HandleScope scope(isolate);
  v8::Local<v8::Context> context = watch->context.Get(isolate);
  v8::Context::Scope context_scope(context);
  v8::Local<v8::Object> process = watch->process.Get(isolate);
  // As in Node: 'beforeExit' may schedule more work (an exception the app's
  // listener handled schedules an immediate); only a loop still dry after it
  // (and the ticks it queued) ends the process.
  v8::Local<v8::Value> before[] = {Str(isolate, "beforeExit"), v8::Integer::New(isolate, ExitCode(isolate, context, process))};
  CallProcess(isolate, process, "emit", 2, before);
  if (!LoopIsDry(loop)) return;
  // Then 'exit' with the code, and the process ends with the code the
  // listeners leave, also when one threw and an 'uncaughtException' listener
  // handled it (Node ends the process all the same). Not process.exit(): it
  // removes the ESM loader's listener that reports an unsettled top-level
  // await (exit 13).
  process->Set(context, Str(isolate, "_exiting"), v8::True(isolate)).Check();
  v8::Local<v8::Value> exit[] = {Str(isolate, "exit"), v8::Integer::New(isolate, ExitCode(isolate, context, process))};
  CallProcess(isolate, process, "emit", 2, exit);
  v8::Local<v8::Value> code[] = {v8::Integer::New(isolate, ExitCode(isolate, context, process))};
  CallProcess(isolate, process, "reallyExit", 1, code);
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
  if (info.Length() < 1 || !info[0].IsObject()) return ThrowType(env, "argument 0 must be the process object");
  if (!g_is_forked_child) return ThrowType(env, "armDrainWatch is only for a forked child");
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (g_drain_watch == nullptr) {
    g_drain_watch = new DrainWatch();
    g_drain_watch->isolate = isolate;
    uv_prepare_init(loop, &g_drain_watch->handle);
    uv_prepare_start(&g_drain_watch->handle, OnPrepare);
  }
  g_drain_watch->context.Reset(isolate, isolate->GetCurrentContext());
  g_drain_watch->process.Reset(isolate, ToV8(info[0]).As<v8::Object>());
  return env.Undefined();
}

Napi::Value InstallExitHandler(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_is_forked_child) return ThrowType(env, "installExitHandler is only for a forked child");
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  node::Environment* node_env = node::GetCurrentEnvironment(isolate->GetCurrentContext());
  if (node_env == nullptr || loop == nullptr) return ThrowType(env, "no Node environment is reachable from this thread");
  // Node ends a process through this handler when it has decided to: after
  // reporting an uncaught exception (exit 1), an exception in an
  // 'uncaughtException' listener (7), and from process.reallyExit(). The
  // default handler disposes of the V8 platform, joining threads the child
  // does not have (a hang or a segfault); this one ends the child at once.
  node::SetProcessExitHandler(node_env, [loop](node::Environment*, int code) {
    FlushLoopStdio(loop);
    _exit(code & 0xff);
  });
  return env.Undefined();
}

}  // namespace forkd
