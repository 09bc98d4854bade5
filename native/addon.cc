// Registration only: every function lives in the file of its concern, and all
// validation and policy live in TypeScript (src/lib/native.ts and callers).
#include <napi.h>

#include <string>

#include "child_platform.h"
#include "claim.h"
#include "dontfork.h"
#include "exec.h"
#include "exit.h"
#include "fork.h"
#include "heap_sweep.h"
#include "job_pipe.h"
#include "lock.h"
#include "mmap_layout.h"
#include "process.h"
#include "signals.h"
#include "term_watchdog.h"
#include "wait.h"

namespace forkd {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Install the madvise filter while the heap is still small: every page V8
  // maps from now on stays inherited by children.
  std::string error;
  if (!EnsureHeapForkable(&error)) {
    Napi::Error::New(env, "forkd: cannot make the V8 heap forkable: " + error).ThrowAsJavaScriptException();
    return exports;
  }
  exports.Set("fork", Napi::Function::New(env, Fork));
  exports.Set("threadCount", Napi::Function::New(env, ThreadCount));
  exports.Set("platformWorkers", Napi::Function::New(env, PlatformWorkers));
  exports.Set("isForkedChild", Napi::Function::New(env, IsForkedChild));
  exports.Set("isNeutralisedFd", Napi::Function::New(env, IsNeutralisedFd));
  exports.Set("stopChildPlatformThreads", Napi::Function::New(env, StopChildPlatformThreadsJs));
  exports.Set("childPlatformThreads", Napi::Function::New(env, ChildPlatformThreadsJs));
  exports.Set("dontforkMappings", Napi::Function::New(env, DontforkMappings));
  exports.Set("madviseFilterInstalled", Napi::Function::New(env, MadviseFilterInstalled));
  exports.Set("majorGcCount", Napi::Function::New(env, MajorGcCount));
  exports.Set("compactMmapLayout", Napi::Function::New(env, CompactMmapLayout));
  exports.Set("mmapLayoutCompact", Napi::Function::New(env, MmapLayoutCompact));
  exports.Set("exitNow", Napi::Function::New(env, ExitNow));
  exports.Set("dieBySignal", Napi::Function::New(env, DieBySignal));
  exports.Set("armTermWatchdog", Napi::Function::New(env, ArmTermWatchdog));
  exports.Set("termHandled", Napi::Function::New(env, TermHandled));
  exports.Set("writeSync", Napi::Function::New(env, WriteSync));
  exports.Set("armDrainWatch", Napi::Function::New(env, ArmDrainWatch));
  exports.Set("installExitHandler", Napi::Function::New(env, InstallExitHandler));
  exports.Set("watchExit", Napi::Function::New(env, WatchExit));
  exports.Set("refExit", Napi::Function::New(env, RefExit));
  exports.Set("cancelExitWatch", Napi::Function::New(env, CancelExitWatch));
  exports.Set("tryWait", Napi::Function::New(env, TryWait));
  exports.Set("kill", Napi::Function::New(env, Kill));
  exports.Set("killpg", Napi::Function::New(env, KillPg));
  exports.Set("getpid", Napi::Function::New(env, GetPid));
  exports.Set("getppid", Napi::Function::New(env, GetPpid));
  exports.Set("setsid", Napi::Function::New(env, SetSid));
  exports.Set("setpgid", Napi::Function::New(env, SetPgid));
  exports.Set("getpgid", Napi::Function::New(env, GetPgid));
  exports.Set("setProcessTitle", Napi::Function::New(env, SetProcessTitle));
  exports.Set("setDeathSignal", Napi::Function::New(env, SetDeathSignal));
  exports.Set("setChildSubreaper", Napi::Function::New(env, SetChildSubreaper));
  exports.Set("setDumpable", Napi::Function::New(env, SetDumpable));
  exports.Set("redirectFd", Napi::Function::New(env, RedirectFd));
  exports.Set("closeFdsExcept", Napi::Function::New(env, CloseFdsExcept));
  exports.Set("openFds", Napi::Function::New(env, OpenFds));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("dupFd", Napi::Function::New(env, DupFd));
  exports.Set("keepPipePath", Napi::Function::New(env, KeepPipePath));
  exports.Set("flushStdio", Napi::Function::New(env, FlushStdioJs));
  exports.Set("execve", Napi::Function::New(env, Execve));
  exports.Set("setCloexec", Napi::Function::New(env, SetCloexecJs));
  exports.Set("markAllCloexec", Napi::Function::New(env, MarkAllCloexecJs));
  exports.Set("lockExclusive", Napi::Function::New(env, LockExclusive));
  exports.Set("jobPipe", Napi::Function::New(env, JobPipe));
  exports.Set("renameFile", Napi::Function::New(env, RenameFile));
  exports.Set("readJobLine", Napi::Function::New(env, ReadJobLine));
  exports.Set("writeJobLine", Napi::Function::New(env, WriteJobLine));
  return exports;
}

}  // namespace forkd

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return forkd::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitAddon)
