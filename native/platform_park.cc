// Node's platform worker threads wait on the task queue's condition variable.
// If fork() happens while they wait, the child inherits a condvar with
// "phantom waiters": glibc's pthread_cond_signal then blocks forever the first
// time the child posts a task (a scavenge or mark-compact posts V8 jobs even
// with --single-threaded). Measured: 4 of 300 children hung from a busy parent.
//
// Before each fork we post one blocking task per worker thread and wait until
// all of them are inside it: none is then waiting on the queue's condvar or
// holding its lock, and none is running V8 work that the child would inherit
// half done. The parent releases them after fork; in the child they do not
// exist, and the tasks we posted simply never finish (the child never drains
// the platform: it leaves through _exit).
#include "platform_park.h"

#include <node.h>
#include <v8.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace forkd {
namespace {

struct ParkState {
  std::mutex mutex;
  std::condition_variable cv;
  int parked = 0;
  bool released = true;
};

// Shared by the tasks, which may outlive one park/release cycle by a moment.
std::shared_ptr<ParkState> g_state = std::make_shared<ParkState>();

class ParkTask : public v8::Task {
 public:
  explicit ParkTask(std::shared_ptr<ParkState> state) : state_(std::move(state)) {}
  void Run() override {
    std::unique_lock<std::mutex> lock(state_->mutex);
    if (state_->released) return;  // posted for a park that already gave up
    state_->parked++;
    state_->cv.notify_all();
    state_->cv.wait(lock, [this] { return state_->released; });
    state_->parked--;
  }

 private:
  std::shared_ptr<ParkState> state_;
};

node::MultiIsolatePlatform* Platform() {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return nullptr;
  node::Environment* env = node::GetCurrentEnvironment(isolate->GetCurrentContext());
  if (env == nullptr) return nullptr;
  return node::GetMultiIsolatePlatform(env);
}

// Node counts its delayed-task scheduler thread among the worker threads
// (WorkerThreadsTaskRunner::threads_), but that thread runs its own uv loop
// and never takes tasks from the queue: only the others can be parked.
int WorkersToPark(node::MultiIsolatePlatform* platform) {
  int n = platform->NumberOfWorkerThreads() - 1;
  return n < 0 ? 0 : n;
}

}  // namespace

int PlatformWorkerCount() {
  node::MultiIsolatePlatform* platform = Platform();
  return platform == nullptr ? 0 : WorkersToPark(platform);
}

bool ParkPlatformWorkers(int timeout_ms, std::string* error) {
  node::MultiIsolatePlatform* platform = Platform();
  if (platform == nullptr) {
    *error = "no Node platform is reachable from this thread";
    return false;
  }
  int workers = WorkersToPark(platform);
  // A fresh state per cycle: a task left over from an earlier cycle that timed
  // out must not count as parked in this one.
  g_state = std::make_shared<ParkState>();
  {
    std::lock_guard<std::mutex> lock(g_state->mutex);
    g_state->released = false;
  }
  for (int i = 0; i < workers; i++) platform->CallOnWorkerThread(std::make_unique<ParkTask>(g_state));
  std::unique_lock<std::mutex> lock(g_state->mutex);
  bool all = g_state->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                  [workers] { return g_state->parked >= workers; });
  if (!all) {
    int parked = g_state->parked;
    g_state->released = true;
    g_state->cv.notify_all();
    *error = std::to_string(parked) + " of " + std::to_string(workers) +
             " V8 platform worker threads became idle within " + std::to_string(timeout_ms) +
             " ms (V8 background work is running; start node with --single-threaded)";
    return false;
  }
  return true;
}

void ReleasePlatformWorkers() {
  std::lock_guard<std::mutex> lock(g_state->mutex);
  g_state->released = true;
  g_state->cv.notify_all();
}

}  // namespace forkd
