// interpreter/parallel/runtime_state.h -- what the runtime's own files share, and nothing
// else in the module sees: a runtime thread's context, a worker's serving state, and the
// process-wide runtime with its gate, main-thread queue and counters. runtime.h is the
// runtime's interface to the rest of the module. The files behind this header, one concept
// each:
//   thread_attach.cpp  a runtime thread's attachment to the interpreter
//   worker_state.cpp   what one runtime thread serves, and its drain and teardown
//   runtime_gate.cpp   posting work to the runtime threads, and timers made before run()
//   main_thread.cpp    the main thread's queue, its waits and the stop signals
//   runtime.cpp        run() itself: options, listeners, sharing, the two run loops
//   stats.cpp          parallel.stats()
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/listeners.h"
#include "core/loop.h"
#include "core/worker_server.h"
#include "interpreter/parallel/runtime.h"

namespace pp::py {

// ---- per-thread attachment (thread_attach.cpp) --------------------------------------

/// A runtime thread's thread state and what its callbacks reach through it.
struct ThreadContext {
  PyThreadState* tstate = nullptr;
  bool attached = false;
  Loop* loop = nullptr;
  Counters* counters = nullptr;
  WorkerLocal* local = nullptr;
};
/// Makes `t` the calling thread's context (null: the thread no longer serves). Set once the
/// context's thread state exists, cleared before it goes.
void set_thread_context(ThreadContext* t);

// ---- a worker's serving state (worker_state.cpp) ------------------------------------

/// One client connection being established.
struct Connector {
  Operation op;
  Operation cancel_op;  // past the drain deadline: ends a connect still in flight
  Endpoint endpoint;
  Handle sock = invalid_handle;
  EndpointObject* client = nullptr;
  struct WorkerState* worker = nullptr;
  std::string where;
  bool done = false;
};

struct WorkerState;
/// Hands a connection accepted from a socket every worker shares (systemd's) to the next
/// worker round-robin; false keeps it here (not serving yet, stopping, or our turn).
bool spread_connection(WorkerState& from, Handle sock, const ProtocolInfo* info);

/// What one runtime thread (a worker, or the main thread with workers=0) serves.
struct WorkerState {
  WorkerState(Counters& c, const ConnectionLimits& limits) : counters(c), server(limits) {}
  ThreadContext context;
  Counters& counters;
  Loop* loop = nullptr;
  WorkerServer server;  // its connections and acceptors (core/worker_server.h)
  std::vector<std::unique_ptr<Connector>> connectors;
  std::vector<EndpointObject*> clients;  // set up, connected by start_serving
  WorkerLocal local;
  /// Functions posted through the runtime's gate that have not run yet: the drain
  /// waits for them, since their posters were told they would run.
  std::atomic<unsigned> posts_pending{0};
  unsigned spread_next = 0;  // round-robin position (spread_connection)

  /// Takes this thread's share of every server's listeners (`sets`, one per server in
  /// registration order, opened by the main thread) and notes its clients. Nothing is
  /// accepted or connected until `start_serving`: a callback may hand work to any other
  /// runtime thread, and before every worker is set up those posts would be refused.
  bool setup(Loop& l, unsigned index, unsigned count, std::vector<ListenerSet>& sets,
             std::string& error);

  /// Accepts and connects, on this thread, once the gate is open (every runtime thread
  /// is set up). A stop that came first wins: a stopped acceptor does not arm, and
  /// begin_stop dropped the clients.
  void start_serving();

  /// Starts connecting client `e` from this thread (start_serving); a failure is logged and
  /// told to the protocol.
  void start_client(EndpointObject* e);

  /// A client's connect completed: its connection joins this worker's set, or the
  /// failure goes to the protocol.
  static void connected(Operation& op, const Completion& done);

  /// Graceful stop: no new connections; open ones drain (HTTP: the request under way is
  /// answered with `Connection: close`; idle ones close) and close; timers are cancelled.
  void begin_stop();

  /// Still draining: open connections, posts not yet run, armed timers or connects in
  /// flight.
  bool busy() const;

  /// After the drain, attached, before teardown: what the engine still has in flight must
  /// end before its owners' memory goes (an io_uring send still reads its Outbound's
  /// buffers; a connect its Connector). Accepted posts run first, however late: their
  /// posters were told they would (a spread socket is in one, and would leak). Then the
  /// connections still open are aborted (their sends cancelled, connection_lost told) and
  /// the connects in flight cancelled, and the loop runs until they have completed, for
  /// up to `kAbortGrace`: only what still has not completed by then is dropped unheard.
  void finish(Loop& l);

  /// Last act on this thread, attached: everything holding Python references goes
  /// while the thread state (and the interpreter) still exist. What `finish` could not
  /// end is dropped here.
  void teardown();
};

// ---- the process-wide runtime -------------------------------------------------------

/// Where the runtime stands for work handed to its loops from other threads.
enum class Gate {
  closed,    // not running: nothing is accepted (timers wait for run())
  open,      // serving: posts go to the loops
  stopping,  // stop() was asked and run() is draining: refused
};

/// The process-wide runtime: one per process (rt()), reused by each run().
struct Runtime {
  std::mutex mutex;
  std::condition_variable wake_main;
  std::deque<std::function<void()>> main_queue;  // guarded by mutex
  bool main_open = false;                        // guarded by mutex: post_to_main accepts
  bool workers_joined = false;                   // guarded by mutex: the stop's join is done
  Loop* main_loop = nullptr;  // guarded by mutex: with workers=0, the loop run() waits in
  std::atomic<unsigned long> run_thread{0};  // the thread inside run() (0: none)
  std::atomic<std::uint64_t> generation{0};  // run() calls so far (run_generation)
  std::atomic<bool> running{false};
  std::atomic<bool> stop_requested{false};
  // Posting from any thread. A post holds `gate_mutex` shared while it reads `workers`
  // and posts to a loop; opening and closing the gate hold it exclusively. So a loop is
  // posted to only while it and its WorkerState live, and nothing is accepted that the
  // drain will not run: the gate closes before the drain starts.
  std::shared_mutex gate_mutex;
  Gate gate = Gate::closed;  // guarded by gate_mutex
  std::atomic<unsigned> next_worker{0};
  std::vector<std::shared_ptr<TimerState>> pending_timers;  // guarded by gate_mutex
  std::vector<std::unique_ptr<WorkerState>> workers;        // fixed while the gate is not closed
  // The last run's, kept for stats(). Replaced by run() under counters_mutex; stats()
  // copies the pointers under it and reads the counters (atomics) after it.
  std::mutex counters_mutex;
  std::vector<std::shared_ptr<Counters>> counters;
  std::vector<ListenerSet> listeners;  // per server, this run's; workers take their share
};

/// The one runtime of the process.
Runtime& rt();

// ---- the gate and posting (runtime_gate.cpp) ----------------------------------------

/// Posts `fn` to `ws`'s loop, counted until it has run. The gate is held and open.
void post_locked(WorkerState& ws, std::function<void()> fn);
/// The next worker round-robin (post_to_runtime, timers). The gate is held and open.
WorkerState& next_worker_locked();
/// Posts the arming of `timer` to the next worker. The gate is held and open.
void post_arm_locked(const std::shared_ptr<TimerState>& timer);
/// Opens the gate once every runtime thread is set up, tells each to start accepting and
/// connecting (so no callback runs while a post to another thread would be refused), and
/// hands them the timers made while it was closed. Attached (the pending list's references
/// are dropped here).
void open_gate();
/// Sets the gate (closed or stopping) for the posts that follow.
void set_gate(Gate g);

// ---- the main thread (main_thread.cpp) ----------------------------------------------

/// Runs the functions call_from_main_thread queued. Main thread, attached.
void drain_main_queue();
/// Waits (detached) up to `timeout` for queued main-thread work, or, while serving
/// (`until_stop`), for a stop request. Not while stopping: the request stays set until
/// run() returns, so a wait that woke on it would return at once and the join loop would
/// spin.
void wait_main(std::chrono::milliseconds timeout, bool until_stop);
/// Sets `stop` on SIGINT (KeyboardInterrupt through PyErr_CheckSignals), SIGTERM (through
/// SigtermWatch's handler) or stop(). Any other error a Python signal handler raised stays
/// set (and `stop` is set): run() re-raises it after the shutdown.
void check_signals(bool& stop);

/// While it lives, SIGTERM asks run() to stop (check_signals reports it) and SIGHUP to
/// reopen the access log; the handlers in place before are restored at its end. One per
/// run().
class SigtermWatch {
 public:
  SigtermWatch();
  ~SigtermWatch();
  SigtermWatch(const SigtermWatch&) = delete;
  SigtermWatch& operator=(const SigtermWatch&) = delete;

 private:
#if defined(_WIN32)
  void (*old_)(int) = nullptr;
#else
  struct sigaction old_ {};
  struct sigaction old_hup_ {};  // SIGHUP reopens the access log while run() serves
#endif
};

}  // namespace pp::py
