// A forked child's bound on SIGTERM. forkd's job runner listens to SIGTERM in
// JS (child/sigterm.ts) to abort ctx.signal; libuv's handler only writes to a
// pipe the event loop reads, so a job that never yields (a CPU-bound loop)
// would never see the signal and run on. Here libuv's handler is wrapped:
//
//   1. The first SIGTERM records when it came, arms a POSIX timer for the
//      response window, and is passed on to libuv as before.
//   2. If the JS listener runs in time and nothing listens, it dies of SIGTERM
//      itself (exit.cc). If something listens, it calls termHandled(), which
//      moves the timer to the end of the grace (or disarms it).
//   3. When the timer fires, the child dies of SIGTERM: the kernel's default
//      action, restored and re-raised from the handler.
//
// The timer delivers SIGTERM itself (SIGEV_SIGNAL, told apart by si_code
// SI_TIMER and our cookie): no other signal is taken from the application,
// and no thread is needed (a forked child must have none). timer_create is
// not async-signal-safe, so the timer is made at arming; timer_settime,
// clock_gettime, sigaction, sigprocmask and raise are.
#include "term_watchdog.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child_state.h"
#include "errors.h"

namespace forkd {
namespace {

constexpr int kCookie = 0x666b6474;  // "fkdt": a SIGTERM from our timer

struct sigaction g_chained;  // libuv's SIGTERM handler, called for every real SIGTERM
timer_t g_timer;
pid_t g_timer_owner = 0;  // the process that made g_timer: a forked copy of it is no timer
volatile sig_atomic_t g_signalled = 0;
struct timespec g_signalled_at;
long g_respond_ms = 0;

void SetTimer(long ms_from_signal) {
  struct itimerspec spec;
  memset(&spec, 0, sizeof spec);
  if (ms_from_signal >= 0) {
    // An absolute instant, counted from the first SIGTERM; one already past
    // fires at once (a zero it_value would disarm instead).
    spec.it_value = g_signalled_at;
    spec.it_value.tv_sec += ms_from_signal / 1000;
    spec.it_value.tv_nsec += (ms_from_signal % 1000) * 1000000L;
    if (spec.it_value.tv_nsec >= 1000000000L) {
      spec.it_value.tv_sec++;
      spec.it_value.tv_nsec -= 1000000000L;
    }
  }
  timer_settime(g_timer, TIMER_ABSTIME, &spec, nullptr);
}

[[noreturn]] void DieOfSigterm() {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGTERM, &dfl, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  raise(SIGTERM);
  _exit(128 + SIGTERM);  // not reached: SIGTERM's default action terminates
}

void OnSigterm(int signo, siginfo_t* info, void* context) {
  if (info != nullptr && info->si_code == SI_TIMER && info->si_value.sival_int == kCookie) DieOfSigterm();
  if (!g_signalled) {
    clock_gettime(CLOCK_MONOTONIC, &g_signalled_at);
    g_signalled = 1;
    SetTimer(g_respond_ms);
  }
  if (g_chained.sa_flags & SA_SIGINFO) {
    g_chained.sa_sigaction(signo, info, context);
  } else if (g_chained.sa_handler != SIG_DFL && g_chained.sa_handler != SIG_IGN) {
    g_chained.sa_handler(signo);
  }
}

}  // namespace

Napi::Value ArmTermWatchdog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int respond_ms;
  if (!ArgInt(info, 0, &respond_ms)) return env.Undefined();
  if (!g_is_forked_child) return ThrowType(env, "armTermWatchdog is only for a forked child");
  struct sigaction current;
  if (sigaction(SIGTERM, nullptr, &current) != 0) return ThrowErrno(env, errno, "sigaction");
  if (!(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN))
    return ThrowType(env, "armTermWatchdog needs a SIGTERM listener first (libuv's handler is what it wraps)");
  // Timers are not inherited across fork(): each process makes its own. (A
  // child of a child does not inherit this handler either: the reset at its
  // fork removed the JS listener, and libuv restored the default action.)
  if (g_timer_owner != getpid()) {
    struct sigevent ev;
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGTERM;
    ev.sigev_value.sival_int = kCookie;
    if (timer_create(CLOCK_MONOTONIC, &ev, &g_timer) != 0) return ThrowErrno(env, errno, "timer_create");
    g_timer_owner = getpid();
  }
  // Block SIGTERM while the two globals change, so the handler never sees
  // half of them.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  if (current.sa_sigaction != OnSigterm) g_chained = current;
  g_respond_ms = respond_ms;
  g_signalled = 0;
  struct sigaction ours;
  memset(&ours, 0, sizeof ours);
  ours.sa_sigaction = OnSigterm;
  ours.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&ours.sa_mask);  // as libuv's: nothing interrupts the handler
  int r = sigaction(SIGTERM, &ours, nullptr);
  int saved = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (r != 0) return ThrowErrno(env, saved, "sigaction");
  return env.Undefined();
}

Napi::Value TermHandled(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int grace_ms;
  if (!ArgInt(info, 0, &grace_ms)) return env.Undefined();
  if (g_timer_owner != getpid() || !g_signalled) return env.Undefined();
  SetTimer(grace_ms < 0 ? -1 : grace_ms);
  return env.Undefined();
}

}  // namespace forkd
