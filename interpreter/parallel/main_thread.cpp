// interpreter/parallel/main_thread.cpp -- the main thread's duties while run() serves:
// the functions call_from_main_thread queued, waiting for them or for a stop, and the
// signals (SIGINT, SIGTERM) and stop() requests that end the run.
#include "interpreter/parallel/runtime_state.h"

#include <signal.h>

#include <csignal>

#include "core/access_log.h"
#include "core/log.h"

namespace pp::py {

namespace {
std::atomic<bool> sigterm_seen{false};
void on_sigterm(int) {
  sigterm_seen = true;
}
std::atomic<bool> sighup_seen{false};
[[maybe_unused]] void on_sighup(int) {
  sighup_seen = true;
}
}  // namespace

// Runs the functions call_from_main_thread queued. Main thread, attached.
void drain_main_queue() {
  Runtime& r = rt();
  for (;;) {
    std::function<void()> fn;
    {
      std::lock_guard lock(r.mutex);
      if (r.main_queue.empty()) return;
      fn = std::move(r.main_queue.front());
      r.main_queue.pop_front();
    }
    fn();
  }
}

// Waits (detached) up to `timeout` for queued main-thread work, or, while serving
// (`until_stop`), for a stop request. Not while stopping: the request stays set until run()
// returns, so a wait that woke on it would return at once and the join loop would spin.
void wait_main(std::chrono::milliseconds timeout, bool until_stop) {
  Runtime& r = rt();
  Py_BEGIN_ALLOW_THREADS {
    // Unlocked before re-attaching: a worker holding the GIL (or, free-threaded, taking
    // part in a stop-the-world pause) may be waiting for this mutex in post_to_main.
    std::unique_lock lock(r.mutex);
    r.wake_main.wait_for(lock, timeout, [&] {
      return !r.main_queue.empty() || (until_stop && r.stop_requested) || r.workers_joined;
    });
  }
  Py_END_ALLOW_THREADS
}

// SIGINT arrives as KeyboardInterrupt through PyErr_CheckSignals; SIGTERM through
// our handler. Any other error a Python signal handler raised stays set (and `stop`
// is set): run() re-raises it after the shutdown.
void check_signals(bool& stop) {
  if (sighup_seen.exchange(false)) {
    // logrotate moved the access log away: write to a new file at its path.
    std::string why;
    if (!reopen_access_log(why)) pp::log_error("{}", why);
  }
  if (sigterm_seen.exchange(false)) {
    pp::log("SIGTERM received: stopping");
    stop = true;
  }
  if (PyErr_CheckSignals() < 0) {
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
      PyErr_Clear();
      pp::log("SIGINT received: stopping");
      stop = true;
    } else {
      stop = true;
      return;
    }
  }
  if (rt().stop_requested) stop = true;
}

SigtermWatch::SigtermWatch() {
  sigterm_seen = false;
#if defined(_WIN32)
  // Windows has no sigaction; the C runtime's signal() takes SIGTERM (raised only by
  // raise() there: Ctrl-C reaches Python's own SIGINT handler as KeyboardInterrupt).
  old_ = std::signal(SIGTERM, on_sigterm);
#else
  struct sigaction term {};
  term.sa_handler = on_sigterm;
  sigemptyset(&term.sa_mask);
  sigaction(SIGTERM, &term, &old_);
  sighup_seen = false;
  struct sigaction hup {};
  hup.sa_handler = on_sighup;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, &old_hup_);
#endif
}

SigtermWatch::~SigtermWatch() {
#if defined(_WIN32)
  std::signal(SIGTERM, old_);
#else
  sigaction(SIGTERM, &old_, nullptr);
  sigaction(SIGHUP, &old_hup_, nullptr);
#endif
}

bool post_to_main(std::function<void()> fn) {
  Runtime& r = rt();
  {
    std::lock_guard lock(r.mutex);
    if (!r.main_open) return false;
    r.main_queue.push_back(std::move(fn));
    // workers=0: run() waits in its loop, not on wake_main. The loop lives while
    // main_loop is set (cleared under this mutex before it goes).
    if (r.main_loop) r.main_loop->post([] {});
  }
  r.wake_main.notify_all();
  return true;
}

std::uint64_t run_generation() {
  return rt().generation.load();
}

bool on_run_thread() {
  unsigned long t = rt().run_thread.load();
  return t != 0 && t == PyThread_get_thread_ident();
}

void request_stop() {
  Runtime& r = rt();
  {
    std::lock_guard lock(r.mutex);
    r.stop_requested = true;
  }
  r.wake_main.notify_all();
}

}  // namespace pp::py
