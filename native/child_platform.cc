// Runs in a forked child: gives its V8 platform worker threads again.
//
// A child has none of the parent's platform threads, but inherits Node's
// platform object with their task queue, which counts as outstanding every
// task a parent thread had taken (our park tasks, platform_park.cc) and every
// task posted in the child (a mark-compact posts V8 jobs even with
// --single-threaded). Nothing ever runs them. The main thread never notices:
// it leaves through _exit (exit.cc). A worker_threads Worker does: when its
// loop runs dry, its thread waits in NodePlatform::DrainTasks() until that
// queue is drained, forever (no 'exit' event, the child hangs).
//
// So the child's platform object gets a vtable of its own (a copy of Node's
// with the worker-thread entries replaced): worker-thread tasks go to a small pool of
// ours, whose threads start when the child registers its first Worker
// isolate, and DrainTasks() waits for that pool instead of Node's queue.
// Foreground tasks stay Node's. The slots are found from the declarations in
// Node's headers (pointers to virtual members hold their vtable offset in
// the Itanium C++ ABI), not from numbers written here.
//
// Before a child forks in turn, the pool's threads are stopped and joined
// (StopChildPlatformThreads): the grandchild then inherits no thread, lock or
// waiter of it, and starts threads of its own if it needs them.
#include "child_platform.h"

#include <node.h>
#include <signal.h>
#include <string.h>
#include <v8-platform.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace forkd {
namespace {

using Clock = std::chrono::steady_clock;

class Pool {
 public:
  explicit Pool(int size) : size_(size) {}

  int size() const { return size_; }

  void Post(std::unique_ptr<v8::Task> task) {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(task));
    outstanding_++;
    available_.notify_one();
  }

  void PostDelayed(std::unique_ptr<v8::Task> task, double delay_s) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto due = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(delay_s));
    delayed_.emplace(due, std::move(task));
    available_.notify_one();
  }

  // As Node's BlockingDrain: until no task is queued or running (delayed
  // tasks count once they are due).
  void BlockingDrain() {
    Start();
    std::unique_lock<std::mutex> lock(mutex_);
    drained_.wait(lock, [this] { return outstanding_ == 0; });
  }

  void Start() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!threads_.empty()) return;
    stopping_ = false;
    for (int i = 0; i < size_; i++) threads_.emplace_back([this] { Loop(); });
  }

  // Called on the main thread only, when no Worker isolate is registered.
  // What is still queued stays queued for threads started later.
  void Stop() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      threads.swap(threads_);
      available_.notify_all();
    }
    for (std::thread& t : threads) t.join();
  }

  int running() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int>(threads_.size());
  }

 private:
  void Loop() {
    // Signals are for the main thread's loop; the synchronous ones (a
    // fault in a task) cannot be blocked meaningfully and stay as they are.
    sigset_t mask;
    sigfillset(&mask);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) sigdelset(&mask, sig);
    pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      while (!delayed_.empty() && delayed_.begin()->first <= Clock::now()) {
        queue_.push_back(std::move(delayed_.begin()->second));
        delayed_.erase(delayed_.begin());
        outstanding_++;
      }
      if (stopping_) return;
      if (queue_.empty()) {
        if (delayed_.empty()) available_.wait(lock);
        else available_.wait_until(lock, delayed_.begin()->first);
        continue;
      }
      std::unique_ptr<v8::Task> task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      task->Run();
      task.reset();
      lock.lock();
      if (--outstanding_ == 0) drained_.notify_all();
    }
  }

  const int size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::condition_variable drained_;
  std::deque<std::unique_ptr<v8::Task>> queue_;
  std::multimap<Clock::time_point, std::unique_ptr<v8::Task>> delayed_;
  int outstanding_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// The pool, Node's own entries (called for what is not replaced) and the
// isolates the child registered (its Workers'). Touched only in the child.
Pool* g_pool = nullptr;
void** g_node_vtable = nullptr;
std::mutex g_isolates_mutex;
std::set<v8::Isolate*> g_child_isolates;

// Itanium C++ ABI 2.3: a pointer to a virtual member function holds one plus
// the byte offset of its slot in the vtable (odd, where a non-virtual one
// holds an address). kNoSlot if it is not virtual after all.
constexpr size_t kNoSlot = SIZE_MAX;
template <typename PMF>
size_t Slot(PMF pmf) {
  struct {
    uintptr_t ptr;
    ptrdiff_t adj;
  } rep;
  static_assert(sizeof(pmf) == sizeof(rep), "Itanium member function pointer");
  memcpy(&rep, &pmf, sizeof rep);
  if ((rep.ptr & 1) == 0 || rep.adj != 0) return kNoSlot;
  return (rep.ptr - 1) / sizeof(void*);
}

using Platform = node::MultiIsolatePlatform;
using RegisterWithLoop = void (Platform::*)(v8::Isolate*, uv_loop_s*);
using RegisterWithDelegate = void (Platform::*)(v8::Isolate*, node::IsolatePlatformDelegate*);

template <typename Fn>
Fn NodeEntry(size_t slot) {
  return reinterpret_cast<Fn>(g_node_vtable[slot]);
}

int NumberOfWorkerThreads(Platform*) { return g_pool->size(); }

void CallOnWorkerThread(Platform*, std::unique_ptr<v8::Task> task) { g_pool->Post(std::move(task)); }

void CallDelayedOnWorkerThread(Platform*, std::unique_ptr<v8::Task> task, double delay_s) {
  g_pool->PostDelayed(std::move(task), delay_s);
}

void DrainTasks(Platform* self, v8::Isolate* isolate) {
  do {
    g_pool->BlockingDrain();
  } while (self->FlushForegroundTasks(isolate));
}

void Registered(v8::Isolate* isolate) {
  {
    std::lock_guard<std::mutex> lock(g_isolates_mutex);
    g_child_isolates.insert(isolate);
  }
  g_pool->Start();
}

void RegisterIsolateWithLoop(Platform* self, v8::Isolate* isolate, uv_loop_s* loop) {
  NodeEntry<void (*)(Platform*, v8::Isolate*, uv_loop_s*)>(Slot(static_cast<RegisterWithLoop>(&Platform::RegisterIsolate)))(self, isolate, loop);
  Registered(isolate);
}

void RegisterIsolateWithDelegate(Platform* self, v8::Isolate* isolate, node::IsolatePlatformDelegate* delegate) {
  NodeEntry<void (*)(Platform*, v8::Isolate*, node::IsolatePlatformDelegate*)>(Slot(static_cast<RegisterWithDelegate>(&Platform::RegisterIsolate)))(self, isolate, delegate);
  Registered(isolate);
}

void UnregisterIsolate(Platform* self, v8::Isolate* isolate) {
  NodeEntry<void (*)(Platform*, v8::Isolate*)>(Slot(&Platform::UnregisterIsolate))(self, isolate);
  std::lock_guard<std::mutex> lock(g_isolates_mutex);
  g_child_isolates.erase(isolate);
}

Platform* CurrentPlatform() {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return nullptr;
  node::Environment* env = node::GetCurrentEnvironment(isolate->GetCurrentContext());
  return env == nullptr ? nullptr : node::GetMultiIsolatePlatform(env);
}

}  // namespace

bool InstallChildPlatform(int pool_size) {
  // A grandchild inherits the child's vtable and pool (stopped before its
  // fork); it only needs fresh bookkeeping.
  if (g_pool != nullptr) {
    g_pool = new Pool(g_pool->size());  // the old one's lock may be a dead thread's: never touched again
    g_child_isolates.clear();
    return true;
  }
  Platform* platform = CurrentPlatform();
  if (platform == nullptr) return false;
  const size_t slots[] = {Slot(&Platform::NumberOfWorkerThreads), Slot(&Platform::CallOnWorkerThread),
                          Slot(&Platform::CallDelayedOnWorkerThread), Slot(&Platform::DrainTasks),
                          Slot(static_cast<RegisterWithLoop>(&Platform::RegisterIsolate)),
                          Slot(static_cast<RegisterWithDelegate>(&Platform::RegisterIsolate)),
                          Slot(&Platform::UnregisterIsolate), Slot(&Platform::AddIsolateFinishedCallback)};
  size_t last = 0;
  for (size_t s : slots) {
    if (s == kNoSlot) return false;  // not the ABI this file was written for: leave Node's platform alone
    if (s > last) last = s;
  }
  g_pool = new Pool(pool_size < 1 ? 1 : pool_size);
  void** node_vptr = *reinterpret_cast<void***>(platform);
  // The copy starts two words before the address point (offset-to-top and
  // the type info) and covers every slot MultiIsolatePlatform declares, plus
  // a margin in case NodePlatform declared virtuals of its own.
  const size_t words = 2 + last + 1 + 16;
  void** copy = new void*[words];
  memcpy(copy, node_vptr - 2, words * sizeof(void*));
  g_node_vtable = node_vptr;
  void** vptr = copy + 2;
  vptr[Slot(&Platform::NumberOfWorkerThreads)] = reinterpret_cast<void*>(&NumberOfWorkerThreads);
  vptr[Slot(&Platform::CallOnWorkerThread)] = reinterpret_cast<void*>(&CallOnWorkerThread);
  vptr[Slot(&Platform::CallDelayedOnWorkerThread)] = reinterpret_cast<void*>(&CallDelayedOnWorkerThread);
  vptr[Slot(&Platform::DrainTasks)] = reinterpret_cast<void*>(&DrainTasks);
  vptr[Slot(static_cast<RegisterWithLoop>(&Platform::RegisterIsolate))] = reinterpret_cast<void*>(&RegisterIsolateWithLoop);
  vptr[Slot(static_cast<RegisterWithDelegate>(&Platform::RegisterIsolate))] = reinterpret_cast<void*>(&RegisterIsolateWithDelegate);
  vptr[Slot(&Platform::UnregisterIsolate)] = reinterpret_cast<void*>(&UnregisterIsolate);
  // The child has one thread: nothing calls into the platform meanwhile.
  *reinterpret_cast<void***>(platform) = vptr;
  return true;
}

bool StopChildPlatformThreads() {
  if (g_pool == nullptr) return true;
  {
    std::lock_guard<std::mutex> lock(g_isolates_mutex);
    if (!g_child_isolates.empty()) return false;
  }
  g_pool->Stop();
  return true;
}

int ChildPlatformThreads() { return g_pool == nullptr ? 0 : g_pool->running(); }

Napi::Value StopChildPlatformThreadsJs(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), StopChildPlatformThreads());
}

Napi::Value ChildPlatformThreadsJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ChildPlatformThreads());
}

}  // namespace forkd
