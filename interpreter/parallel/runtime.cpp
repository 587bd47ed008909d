// interpreter/parallel/runtime.cpp -- parallel.run(): workers, thread states, the
// main thread's duties while serving, and clean shutdown.
#include "interpreter/parallel/runtime.h"

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <shared_mutex>

#include "core/acceptor.h"
#include "core/handoff.h"
#include "core/inherit.h"
#include "core/listeners.h"
#include "core/connection.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/metrics_server.h"
#include "core/net.h"
#include "core/options.h"
#include "core/signals.h"
#include "core/worker_server.h"
#include "core/workers.h"
#include "interpreter/parallel/parallel_module.h"
#include "interpreter/parallel/runtime_options.h"
#include "interpreter/parallel/option_keywords.h"
#include "interpreter/parallel/share.h"
#include "numa/bind.h"
#include "numa/placement.h"

namespace pp::py {

namespace {

// ---- per-thread attachment ---------------------------------------------------------

struct ThreadContext {
  PyThreadState* tstate = nullptr;
  bool attached = false;
  Loop* loop = nullptr;
  Counters* counters = nullptr;
  WorkerLocal* local = nullptr;
};
thread_local ThreadContext* this_thread = nullptr;

}  // namespace

void ensure_attached() {
  ThreadContext* t = this_thread;
  if (t && !t->attached) {
    PyEval_RestoreThread(t->tstate);
    t->attached = true;
  }
}

void detach() {
  ThreadContext* t = this_thread;
  if (t && t->attached) {
    t->attached = false;
    PyEval_SaveThread();
  }
}

Counters& thread_counters() {
  static Counters unowned;  // callbacks never run off runtime threads; a safe sink anyway
  return this_thread && this_thread->counters ? *this_thread->counters : unowned;
}

Loop* current_loop() { return this_thread ? this_thread->loop : nullptr; }

WorkerLocal* worker_local() { return this_thread ? this_thread->local : nullptr; }

namespace {

// ---- a worker's serving state -------------------------------------------------------

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
             std::string& error) {
    loop = &l;
    context.loop = &l;
    context.counters = &counters;
    context.local = &local;
    // The engine counts responses by status and latency into the thread's metrics.
    set_thread_metrics(&counters);
    counters.attach_thread();
    unsigned client_no = 0;
    std::size_t server_no = 0;
    for (Ref& ref : endpoints()) {
      auto* e = reinterpret_cast<EndpointObject*>(ref.get());
      if (!e->protocol) continue;
      const ProtocolInfo* info = e->protocol;
      if (!e->is_client) {
        Loop* lp = loop;
        ConnectionSet* set = &server.connections();
        ListenerSet& ls = sets[server_no++];
        // Bound here when the set binds in workers; connections wait in the backlog
        // until start_serving.
        if (!server.take_listeners(
                *loop, ls, index, count, *e->host, e->backlog,
                [lp, set, info](Handle sock) { return make_connection(*lp, sock, *set, *info); },
                [this, info](Handle sock) { return spread_connection(*this, sock, info); },
                error))
          return false;
        if (ls.bind_in_workers) e->port.store(ls.port);  // port 0: the kernel's pick
      } else if (client_no++ % count == index) {
        clients.push_back(e);  // spread over the workers
      }
    }
    return true;
  }

  /// Accepts and connects, on this thread, once the gate is open (every runtime thread
  /// is set up). A stop that came first wins: a stopped acceptor does not arm, and
  /// begin_stop dropped the clients.
  void start_serving() {
    server.start_accepting();
    for (EndpointObject* e : std::exchange(clients, {}))
      start_client(e);  // a failure is the protocol's to hear
  }

  void start_client(EndpointObject* e) {
    auto c = std::make_unique<Connector>();
    c->client = e;
    c->worker = this;
    c->where = fmt::format("{}:{}", *e->host, e->port.load());
    std::string err;
    if (!resolve_endpoint(*e->host, static_cast<std::uint16_t>(e->port.load()), c->endpoint,
                          err) ||
        (c->sock = open_stream_socket(c->endpoint, err)) == invalid_handle) {
      pp::log("client {}: {}", c->where, err);
      return;
    }
    c->op.prep_connect(c->sock, &c->endpoint, &WorkerState::connected, c.get());
    loop->submit(c->op);
    connectors.push_back(std::move(c));
  }

  static void connected(Operation& op, const Completion& done) {
    auto* c = static_cast<Connector*>(op.user);
    c->done = true;
    WorkerState& w = *c->worker;
    if (done.result < 0) {
      close_socket(c->sock);
      report_connect_failure(*c->client->protocol, c->where, done.result);
      return;
    }
    set_nodelay(c->sock);
    ConnectionSet& set = w.server.connections();
    set.add(make_connection(*w.loop, c->sock, set, *c->client->protocol));
  }

  /// Graceful stop: no new connections; open ones drain (HTTP: the request under way is
  /// answered with `Connection: close`; idle ones close) and close; timers are cancelled.
  void begin_stop() {
    clients.clear();      // not connected yet (a stop before start_serving): never will be
    server.begin_stop();
    stop_timers(local);
  }

  bool busy() const {
    if (server.busy()) return true;
    if (posts_pending.load(std::memory_order_acquire) > 0 || !local.timers.empty()) return true;
    for (auto& c : connectors)
      if (!c->done) return true;
    return false;
  }

  /// After the drain, attached, before teardown: what the engine still has in flight must
  /// end before its owners' memory goes (an io_uring send still reads its Outbound's
  /// buffers; a connect its Connector). Accepted posts run first, however late: their
  /// posters were told they would (a spread socket is in one, and would leak). Then the
  /// connections still open are aborted (their sends cancelled, connection_lost told) and
  /// the connects in flight cancelled, and the loop runs until they have completed, for
  /// up to `kAbortGrace`: only what still has not completed by then is dropped unheard.
  void finish(Loop& l) {
    static constexpr auto kAbortGrace = std::chrono::seconds(2);
    auto turn = [&] {
      detach();
      l.run_once(std::chrono::milliseconds(10));
      ensure_attached();
    };
    while (posts_pending.load(std::memory_order_acquire) > 0) turn();
    if (!busy()) return;
    ConnectionSet& connections = server.connections();
    connections.abort_all(-ECANCELED);
    for (auto& c : connectors) {
      if (c->done) continue;
      c->cancel_op.prep_cancel(
          &c->op, [](Operation&, const Completion&) {}, nullptr);
      loop->submit(c->cancel_op);
    }
    auto deadline = std::chrono::steady_clock::now() + kAbortGrace;
    while (busy() && std::chrono::steady_clock::now() < deadline) turn();
    if (connections.size() > 0)
      pp::log("{} connection{} still in flight after the stop; dropped", connections.size(),
              connections.size() == 1 ? "" : "s");
  }

  /// Last act on this thread, attached: everything holding Python references goes
  /// while the thread state (and the interpreter) still exist. What `finish` could not
  /// end is dropped here.
  void teardown() {
    server.clear_acceptors();
    connectors.clear();
    server.connections().drop_all();
    release_timers(local);
    local.route_names.clear();
  }
};

// ---- the process-wide runtime ------------------------------------------------------

/// Where the runtime stands for work handed to its loops from other threads.
enum class Gate {
  closed,    // not running: nothing is accepted (timers wait for run())
  open,      // serving: posts go to the loops
  stopping,  // stop() was asked and run() is draining: refused
};

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
  std::vector<std::unique_ptr<WorkerState>> workers;  // fixed while the gate is not closed
  // The last run's, kept for stats(). Replaced by run() under counters_mutex; stats()
  // copies the pointers under it and reads the counters (atomics) after it.
  std::mutex counters_mutex;
  std::vector<std::shared_ptr<Counters>> counters;
  std::vector<ListenerSet> listeners;  // per server, this run's; workers take their share
};

Runtime& rt() {
  static Runtime* r = new Runtime;  // never destroyed: threads may outlive static teardown
  return *r;
}

// Closes the listeners no worker took (a start-up that failed part-way) and forgets them.
void release_server_listeners() {
  Runtime& r = rt();
  for (ListenerSet& set : r.listeners) close_listeners(set);
  r.listeners.clear();
}

// Opens every registered server's listeners for `threads` runtime threads, on the main
// thread: sockets systemd passed, else those of an older instance serving the address
// (core/handoff.h), else new SO_REUSEPORT sockets. Raises ParallelError on failure.
bool open_server_listeners(unsigned threads) {
  Runtime& r = rt();
  release_server_listeners();
  for (Ref& ref : endpoints()) {
    auto* e = reinterpret_cast<EndpointObject*>(ref.get());
    if (!e->protocol || e->is_client) continue;
    ListenerSet set;
    std::string error;
    if (!open_listeners(*e->host, static_cast<std::uint16_t>(e->port.load()), e->backlog,
                        threads, /*handoff=*/true, set, error, /*bind_now=*/false)) {
      release_server_listeners();
      PyErr_SetString(names().parallel_error, error.c_str());
      return false;
    }
    e->port.store(set.port);
    r.listeners.push_back(std::move(set));
  }
  for (const std::string& addr : unclaimed_inherited_listeners())
    pp::log("socket activation: inherited {} matches no server(); not served", addr);
  return true;
}

// /metrics for this run (--metrics-port, run(metrics_port=)): started once the workers
// serve, stopped before run() returns. Raises ParallelError when it cannot listen.
bool start_metrics(const std::optional<ListenAddress>& address, MetricsServer& server) {
  if (!address) return true;
  std::string error;
  const std::string& host = address->host;
  const std::uint16_t port = address->port;
  std::vector<const WorkerMetrics*> all;
  for (auto& c : rt().counters) all.push_back(c.get());
  bool ok;
  Py_BEGIN_ALLOW_THREADS
  ok = server.start(host, port, [all] { return render_prometheus(all, "runtime"); }, error);
  Py_END_ALLOW_THREADS
  if (!ok) {
    PyErr_SetString(names().parallel_error, error.c_str());
    return false;
  }
  pp::log("metrics on http://{}:{}/metrics", host, server.port());
  return true;
}

// Serving: says where each server's sockets came from, and offers them to a successor.
void offer_server_listeners() {
  Runtime& r = rt();
  std::size_t k = 0;
  for (Ref& ref : endpoints()) {
    auto* e = reinterpret_cast<EndpointObject*>(ref.get());
    if (!e->protocol || e->is_client || k >= r.listeners.size()) continue;
    const ListenerSet& set = r.listeners[k++];
    if (set.origin != "bound")
      pp::log("listening on {}:{} ({})", *e->host, set.port, set.origin);
    offer_listeners(*e->host, set.port, set.distinct);
  }
}

// Posts `fn` to `ws`'s loop, counted until it has run. The gate is held and open.
void post_locked(WorkerState& ws, std::function<void()> fn) {
  ws.posts_pending.fetch_add(1, std::memory_order_relaxed);
  ws.counters.queue_depth.fetch_add(1, std::memory_order_relaxed);
  ws.loop->post([&ws, fn = std::move(fn)]() mutable {
    ws.counters.queue_depth.fetch_sub(1, std::memory_order_relaxed);
    ensure_attached();
    fn();
    fn = nullptr;  // its captures may hold Python references: released here, attached
    ws.posts_pending.fetch_sub(1, std::memory_order_release);
  });
}

WorkerState& next_worker_locked() {
  Runtime& r = rt();
  return *r.workers[r.next_worker.fetch_add(1, std::memory_order_relaxed) % r.workers.size()];
}

void post_arm_locked(const std::shared_ptr<TimerState>& timer) {
  post_locked(next_worker_locked(), [timer] {
    if (Loop* loop = current_loop()) arm_timer(timer, *loop);
  });
}

bool spread_connection(WorkerState& from, Handle sock, const ProtocolInfo* info) {
  Runtime& r = rt();
  std::shared_lock lock(r.gate_mutex);
  if (r.gate != Gate::open) return false;  // workers still starting, or stopping
  WorkerState& to = *r.workers[from.spread_next++ % r.workers.size()];
  if (&to == &from) return false;
  post_locked(to, [&to, sock, info] {
    ConnectionSet& set = to.server.connections();
    set.add(make_connection(*to.loop, sock, set, *info));
  });
  return true;
}

// Opens the gate once every runtime thread is set up, tells each to start accepting and
// connecting (so no callback runs while a post to another thread would be refused), and
// hands them the timers made while it was closed. Attached (the pending list's references
// are dropped here).
void open_gate() {
  Runtime& r = rt();
  std::unique_lock lock(r.gate_mutex);
  r.gate = Gate::open;
  for (auto& ws : r.workers) post_locked(*ws, [w = ws.get()] { w->start_serving(); });
  for (auto& t : std::exchange(r.pending_timers, {})) post_arm_locked(t);
}

void set_gate(Gate g) {
  Runtime& r = rt();
  std::unique_lock lock(r.gate_mutex);
  r.gate = g;
}

std::atomic<bool> sigterm_seen{false};
void on_sigterm(int) { sigterm_seen = true; }

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
  Py_BEGIN_ALLOW_THREADS
  {
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

// The options of one run(): the process's, with run()'s arguments over them.
struct Choice : ServerOptions {};

bool resolve_choice(PyObject* args, PyObject* kwargs, Choice& out) {
  const RuntimeOptions& o = runtime_options();
  static_cast<ServerOptions&>(out) = o;
  if (!apply_run_arguments(args, kwargs, out)) return false;
  // The build default 0 means one per CPU; a 0 someone asked for, the main thread.
  if (out.workers == 0 && !out.given(OptionId::workers)) out.workers = allowed_cpu_count();
  return true;
}

// What printing a callback's exception imports on first use (PyErr_DisplayException:
// traceback, then its lazy imports for source lines, carets, wide characters and "did you
// mean" suggestions). About 10 ms once per run(), on the main thread.
constexpr const char* kPreimportedModules[] = {"traceback", "linecache",   "tokenize",
                                               "ast",       "unicodedata", "_suggestions"};

// Shares main-thread data with the workers (share.h), then keeps what stays mortal out of
// the collector's walks: callbacks on every worker read it, and a freeze means the GC no
// longer touches it (nor stops the world over it).
void freeze_main_thread_data(bool share) {
  // Modules the workers would otherwise import on first use, imported here on the main
  // thread. A worker importing one holds that module's import lock while it runs the
  // module's code, and every worker that needs it meanwhile waits: the first callback to
  // raise on a loaded 2-core machine held all workers for 2 s importing "traceback" (which
  // PyErr_DisplayException imports), and a request in a worker's queue waited that long.
  for (const char* name : kPreimportedModules) {
    Ref module(PyImport_ImportModule(name));
    if (!module) PyErr_Clear();  // not fatal: a worker then imports it on first use
  }
  if (share) {
    auto t0 = std::chrono::steady_clock::now();
    // Timers made before run() let go of their function and arguments when cancelled or
    // when run() returns: those stay mortal. Copied out first: a thread blocked on the
    // mutex while attached would hold up the walk's stop-the-world.
    std::vector<Ref> timer_refs;
    {
      std::shared_lock lock(rt().gate_mutex);
      for (const auto& t : rt().pending_timers) timer_references(*t, timer_refs);
    }
    std::vector<PyObject*> keep;
    for (const Ref& ref : timer_refs) keep.push_back(ref.get());
    PyTypeObject* handles[] = {names().timer_type, names().transport_type};
    std::vector<PyObject*> roots;  // what workers call: the registered protocols, gateways
    for (Ref& ref : endpoints())
      if (ProtocolInfo* p = reinterpret_cast<EndpointObject*>(ref.get())->protocol)
        roots.insert(roots.end(), {p->cls.get(), p->initial_bytes.get(), p->gateway.get()});
    ShareResult shared = share_main_thread_data(roots, keep, handles);
    auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
    if (shared.walked)
      pp::log("main-thread data shared with the workers: {} objects made immortal, {} kept "
              "mortal (finalizers, runtime handles), {:.0f} ms",
              shared.immortalized, shared.kept_mortal, ms.count());
  }
  // Collected first: garbage (a cycle with __del__ among it) frozen would never be freed
  // nor finalized. After the walk, the collector skips and untracks what it made immortal.
  Ref gc(PyImport_ImportModule("gc"));
  Ref c(gc ? PyObject_CallMethod(gc.get(), "collect", nullptr) : nullptr);
  Ref r(gc ? PyObject_CallMethod(gc.get(), "freeze", nullptr) : nullptr);
  if (!c || !r) PyErr_Clear();
}

PyObject* run_on_main_thread(const Choice& choice) {
  Runtime& r = rt();
  auto opened = open_loop(choice.backend);
  if (!opened.loop) {
    PyErr_SetString(names().parallel_error, opened.error.c_str());
    return nullptr;
  }
  pp::log("{}; callbacks run on the main thread (workers=0)", opened.reason);
  {
    std::lock_guard lock(r.counters_mutex);
    r.counters.assign(1, std::make_shared<Counters>());
  }
  auto ws = std::make_unique<WorkerState>(*r.counters.back(), choice.limits);
  ws->context.tstate = PyThreadState_Get();
  ws->context.attached = true;
  this_thread = &ws->context;
  std::string error;
  if (!open_server_listeners(1)) {
    this_thread = nullptr;
    return nullptr;
  }
  bool ok = ws->setup(*opened.loop, 0, 1, r.listeners, error);
  r.workers.push_back(std::move(ws));
  WorkerState& w = *r.workers.back();
  {
    // Threads of the script's own queue calls for this thread too; the loop is woken for
    // them (post_to_main), since run() waits in it rather than on the main queue.
    std::lock_guard lock(r.mutex);
    r.main_open = true;
    r.main_loop = opened.loop.get();
  }
  if (ok) {
    open_gate();
    offer_server_listeners();
  }
  r.running = true;
  bool stop = !ok;
  MetricsServer metrics;
  if (!ok)
    PyErr_SetString(names().parallel_error, error.c_str());
  else if (!start_metrics(choice.metrics, metrics))
    stop = true;  // its error is re-raised below
  while (!stop) {
    detach();
    opened.loop->run_once(std::chrono::milliseconds(50));
    ensure_attached();
    drain_main_queue();
    check_signals(stop);  // an error a signal handler raised stays set: re-raised below
  }
  Ref pending = PyErr_Occurred() ? fetch_exception() : Ref();
  set_gate(Gate::stopping);
  withdraw_listeners();  // a successor started from now on binds anew
  w.begin_stop();
  auto deadline = std::chrono::steady_clock::now() + choice.limits.drain_timeout;
  while (w.busy() && std::chrono::steady_clock::now() < deadline) {
    detach();
    opened.loop->run_once(std::chrono::milliseconds(20));
    ensure_attached();
    drain_main_queue();  // a thread waiting in call_from_main_thread_and_wait
  }
  ensure_attached();
  {
    std::lock_guard lock(r.mutex);
    r.main_open = false;
    r.main_loop = nullptr;
  }
  drain_main_queue();  // what was accepted runs
  w.finish(*opened.loop);
  // Now, not in a thread_local or static destructor: the interpreter may be finalized
  // right after run() returns.
  w.teardown();
  w.counters.detach_thread();
  set_thread_metrics(nullptr);
  release_server_listeners();
  r.running = false;
  set_gate(Gate::closed);
  r.workers.clear();
  this_thread = nullptr;
  if (pending) {
    restore_exception(pending);
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* run_on_workers(const Choice& choice) {
  Runtime& r = rt();
  PyInterpreterState* interp = PyThreadState_Get()->interp;

  // Placement: the NUMA plan for this many workers (pinned per policy).
  std::vector<WorkerSlot> slots;
  {
    std::string error;
    auto placement = numa::place_workers(choice.numa_policy, choice.given(OptionId::numa_policy),
                                         choice.workers, error);
    if (!placement) {
      PyErr_Format(names().parallel_error, "numa policy '%s': %s", choice.numa_policy.c_str(),
                   error.c_str());
      return nullptr;
    }
    slots = std::move(placement->slots);
  }

  {
    std::lock_guard lock(r.counters_mutex);
    r.counters.clear();
    for (unsigned i = 0; i < choice.workers; ++i)
      r.counters.push_back(std::make_shared<Counters>());
  }
  for (unsigned i = 0; i < choice.workers; ++i)
    r.workers.push_back(std::make_unique<WorkerState>(*r.counters[i], choice.limits));
  WorkerPoolConfig config;
  config.count = choice.workers;
  config.backend = choice.backend;
  config.slots = slots;
  config.on_thread_start = [](unsigned, const WorkerSlot& slot, std::string&) {
    block_shutdown_signals();  // SIGINT/SIGTERM belong to the main thread
    numa::worker_start_hook(slot);
    return true;
  };
  config.after_batch = [](Worker&) { detach(); };
  config.drain_timeout = choice.limits.drain_timeout;
  config.on_thread_exit = [&r](Worker& w) {
    WorkerState& ws = *r.workers[w.index()];
    if (!ws.context.tstate) return;
    ensure_attached();
    ws.finish(w.loop());
    ws.teardown();
    ws.counters.detach_thread();
    set_thread_metrics(nullptr);
    PyThreadState_Clear(ws.context.tstate);
    PyThreadState_DeleteCurrent();
    ws.context.tstate = nullptr;
    ws.context.attached = false;
    this_thread = nullptr;
  };

  if (!open_server_listeners(choice.workers)) {
    r.workers.clear();
    return nullptr;
  }
  WorkerPool pool;
  std::string error;
  bool started;
  {
    // Open before the workers start, as it always was; no worker runs a callback before
    // the gate opens, and a failed start drains whatever was queued (below).
    std::lock_guard lock(r.mutex);
    r.main_open = true;
    r.workers_joined = false;  // set by the last run's join: wait_main would not wait
  }
  Py_BEGIN_ALLOW_THREADS  // workers attach during set-up; a GIL build would deadlock
  started = pool.start(
      std::move(config),
      [&r, interp, n = choice.workers](Worker& w, std::string& err) {
        WorkerState& ws = *r.workers[w.index()];
        // Created here, on the worker's own thread; the pool starts workers one at a
        // time, so thread-state creation never races.
        ws.context.tstate = PyThreadState_New(interp);
        this_thread = &ws.context;
        set_parallel_thread(true);
        if (!ws.setup(w.loop(), w.index(), n, r.listeners, err)) return false;
        WorkerState* wp = &ws;
        w.on_stop([wp] { wp->begin_stop(); });
        w.set_busy_check([wp] { return wp->busy(); });
        return true;
      },
      error);
  Py_END_ALLOW_THREADS
  if (!started) {
    {
      std::lock_guard lock(r.mutex);
      r.main_open = false;
    }
    drain_main_queue();  // what a worker queued before start-up failed still runs
    r.workers.clear();
    release_server_listeners();
    PyErr_SetString(names().parallel_error, error.c_str());
    return nullptr;
  }
  open_gate();
  offer_server_listeners();
  r.running = true;
  pp::log("{}", pool.backend_reason());
  pp::log("{} worker{} running (numa policy {})", pool.size(), pool.size() == 1 ? "" : "s",
          choice.numa_policy);

  MetricsServer metrics;
  bool stop = !start_metrics(choice.metrics, metrics);  // its error is re-raised below
  while (!stop) {
    wait_main(std::chrono::milliseconds(100), /*until_stop=*/true);
    drain_main_queue();
    check_signals(stop);
  }
  Ref pending = PyErr_Occurred() ? fetch_exception() : Ref();
  set_gate(Gate::stopping);
  withdraw_listeners();  // a successor started from now on binds anew
  pool.stop();
  // Workers may be waiting on call_from_main_thread_and_wait while they drain: keep
  // serving the main queue until every worker has exited.
  std::thread joiner([&r, &pool] {
    pool.join();
    {
      std::lock_guard lock(r.mutex);  // not lost between the waiter's check and its wait
      r.workers_joined = true;
    }
    r.wake_main.notify_all();
  });
  for (;;) {
    wait_main(std::chrono::milliseconds(100), /*until_stop=*/false);
    drain_main_queue();
    std::lock_guard lock(r.mutex);
    if (r.workers_joined) break;
  }
  Py_BEGIN_ALLOW_THREADS
  joiner.join();
  Py_END_ALLOW_THREADS
  {
    std::lock_guard lock(r.mutex);
    r.main_open = false;
  }
  // The last main-thread calls run while the gate still says "stopping": a timer one of
  // them makes is refused, as after any stop(). With the gate closed first, it went to the
  // timers waiting for a next run() and kept its function and arguments (the API fuzzer's
  // "leaks: sentinel timer").
  drain_main_queue();
  r.running = false;
  set_gate(Gate::closed);
  r.workers.clear();
  release_server_listeners();
  if (pending) {
    restore_exception(pending);
    return nullptr;
  }
  Py_RETURN_NONE;
}

}  // namespace

bool runtime_running() { return rt().running; }

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

bool post_to_runtime(std::function<void()> fn) {
  Runtime& r = rt();
  std::shared_lock lock(r.gate_mutex);
  if (r.gate != Gate::open) return false;
  post_locked(next_worker_locked(), std::move(fn));
  return true;
}

bool post_to_loop(Loop* loop, std::function<void()> fn) {
  Runtime& r = rt();
  std::shared_lock lock(r.gate_mutex);
  if (r.gate != Gate::open) return false;
  for (auto& ws : r.workers) {
    if (ws->loop == loop) {
      post_locked(*ws, std::move(fn));
      return true;
    }
  }
  return false;
}

PyObject* raise_refused() {
  Runtime& r = rt();
  Gate g;
  {
    std::shared_lock lock(r.gate_mutex);
    g = r.gate;
  }
  PyErr_SetString(names().parallel_error, g == Gate::stopping ? "the runtime is stopping"
                                                              : "the runtime is not running");
  return nullptr;
}

bool start_timer(const std::shared_ptr<TimerState>& timer) {
  Runtime& r = rt();
  std::unique_lock lock(r.gate_mutex);
  switch (r.gate) {
    case Gate::closed:
      r.pending_timers.push_back(timer);
      return true;
    case Gate::open:
      post_arm_locked(timer);
      return true;
    case Gate::stopping:
      break;
  }
  return false;
}

void forget_pending_timer(const TimerState* timer) {
  Runtime& r = rt();
  std::shared_ptr<TimerState> gone;  // dropped after the lock, by the attached caller
  std::unique_lock lock(r.gate_mutex);
  auto& v = r.pending_timers;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->get() == timer) {
      gone = std::move(*it);
      v.erase(it);
      break;
    }
  }
}

void request_stop() {
  Runtime& r = rt();
  {
    std::lock_guard lock(r.mutex);
    r.stop_requested = true;
  }
  r.wake_main.notify_all();
}

PyObject* run_runtime(PyObject* args, PyObject* kwargs) {
  Runtime& r = rt();
  if (is_parallel_thread()) {
    PyErr_SetString(names().parallel_error, "run() cannot be called from a parallel callback");
    return nullptr;
  }
  // From here to the end the registry is the run's: register() from another thread is
  // refused rather than growing it while the workers read it.
  if (!close_registry()) {
    PyErr_SetString(names().parallel_error, "run() is already running");
    return nullptr;
  }
  struct Reopen {
    ~Reopen() { open_registry(); }
  } reopen;
  Choice choice;
  if (!resolve_choice(args, kwargs, choice)) return nullptr;
  freeze_main_thread_data(choice.share_main_data);
  r.stop_requested = false;
  r.run_thread = PyThread_get_thread_ident();
  r.generation.fetch_add(1);
  sigterm_seen = false;
#if defined(_WIN32)
  // Windows has no sigaction; the C runtime's signal() takes SIGTERM (raised only by
  // raise() there: Ctrl-C reaches Python's own SIGINT handler as KeyboardInterrupt).
  auto old_term = std::signal(SIGTERM, on_sigterm);
  PyObject* result = choice.workers == 0 ? run_on_main_thread(choice) : run_on_workers(choice);
  std::signal(SIGTERM, old_term);
#else
  struct sigaction term {}, old_term {};
  term.sa_handler = on_sigterm;
  sigemptyset(&term.sa_mask);
  sigaction(SIGTERM, &term, &old_term);
  PyObject* result = choice.workers == 0 ? run_on_main_thread(choice) : run_on_workers(choice);
  sigaction(SIGTERM, &old_term, nullptr);
#endif
  r.run_thread = 0;
  return result;
}

namespace {
// Sets d[key] = value (a new reference, consumed). False with an exception set.
bool put(PyObject* d, const char* key, PyObject* value) {
  Ref v(value);
  return v && PyDict_SetItemString(d, key, v.get()) == 0;
}

// The metrics beyond the five classic counters, as stats() shows them (and /metrics):
// responses by status (int keys), the latency histogram, CPU seconds and queue depth.
// `sums` accumulates the totals.
struct Extra {
  std::array<std::uint64_t, 501> responses{};
  std::array<std::uint64_t, kLatencyBounds.size() + 1> latency{};
  std::uint64_t latency_ns = 0, queue_depth = 0, wire_sent = 0, wire_received = 0;
  double cpu = 0;
};

bool put_extra(PyObject* d, const Extra& e) {
  Ref responses(PyDict_New());
  if (!responses) return false;
  for (std::size_t s = 0; s < e.responses.size(); ++s) {
    if (!e.responses[s]) continue;
    Ref key(s + 1 == e.responses.size() ? PyUnicode_FromString("other")
                                        : PyLong_FromSize_t(s + 100));
    Ref n(PyLong_FromUnsignedLongLong(e.responses[s]));
    if (!key || !n || PyDict_SetItem(responses.get(), key.get(), n.get()) < 0) return false;
  }
  Ref bounds(PyList_New(0)), counts(PyList_New(0));
  if (!bounds || !counts) return false;
  for (std::size_t b = 0; b < e.latency.size(); ++b) {
    Ref bound(PyFloat_FromDouble(b < kLatencyBounds.size() ? kLatencyBounds[b] : Py_HUGE_VAL));
    Ref n(PyLong_FromUnsignedLongLong(e.latency[b]));
    if (!bound || !n || PyList_Append(bounds.get(), bound.get()) < 0 ||
        PyList_Append(counts.get(), n.get()) < 0)
      return false;
  }
  Ref latency(PyDict_New());
  return latency && PyDict_SetItemString(latency.get(), "bounds", bounds.get()) == 0 &&
         PyDict_SetItemString(latency.get(), "counts", counts.get()) == 0 &&
         put(latency.get(), "sum", PyFloat_FromDouble(static_cast<double>(e.latency_ns) / 1e9)) &&
         PyDict_SetItemString(d, "responses", responses.get()) == 0 &&
         PyDict_SetItemString(d, "latency", latency.get()) == 0 &&
         put(d, "cpu_seconds", PyFloat_FromDouble(e.cpu)) &&
         put(d, "queue_depth", PyLong_FromUnsignedLongLong(e.queue_depth)) &&
         put(d, "wire_bytes_sent", PyLong_FromUnsignedLongLong(e.wire_sent)) &&
         put(d, "wire_bytes_received", PyLong_FromUnsignedLongLong(e.wire_received));
}
}  // namespace

PyObject* collect_stats() {
  Runtime& r = rt();
  Ref total(PyDict_New());
  Ref per(PyList_New(0));
  if (!total || !per) return nullptr;
  std::uint64_t sums[5] = {};
  Extra all;
  static const char* keys[5] = {"connections", "active_connections", "requests", "bytes_sent",
                                "bytes_received"};
  auto get = [](const WorkerMetrics::Counter& c) { return c.load(std::memory_order_relaxed); };
  std::vector<std::shared_ptr<Counters>> counters;  // kept alive while read: run() may replace them
  {
    std::lock_guard lock(r.counters_mutex);
    counters = r.counters;
  }
  for (auto& c : counters) {
    std::uint64_t v[5] = {get(c->connections), get(c->active), get(c->requests),
                          get(c->bytes_sent), get(c->bytes_received)};
    Ref d(PyDict_New());
    if (!d) return nullptr;
    for (int i = 0; i < 5; ++i) {
      sums[i] += v[i];
      if (!put(d.get(), keys[i], PyLong_FromUnsignedLongLong(v[i]))) return nullptr;
    }
    Extra e;
    for (std::size_t s = 0; s < e.responses.size(); ++s)
      all.responses[s] += e.responses[s] = get(c->responses[s]);
    for (std::size_t b = 0; b < e.latency.size(); ++b)
      all.latency[b] += e.latency[b] = get(c->latency[b]);
    all.latency_ns += e.latency_ns = get(c->latency_ns);
    all.queue_depth += e.queue_depth = get(c->queue_depth);
    all.wire_sent += e.wire_sent = get(c->wire_sent);
    all.wire_received += e.wire_received = get(c->wire_received);
    all.cpu += e.cpu = c->cpu_seconds();
    if (!put_extra(d.get(), e) || PyList_Append(per.get(), d.get()) < 0) return nullptr;
  }
  for (int i = 0; i < 5; ++i)
    if (!put(total.get(), keys[i], PyLong_FromUnsignedLongLong(sums[i]))) return nullptr;
  if (!put_extra(total.get(), all)) return nullptr;
  if (PyDict_SetItemString(total.get(), "workers", per.get()) < 0) return nullptr;
  Ref running(PyBool_FromLong(r.running));
  if (PyDict_SetItemString(total.get(), "running", running.get()) < 0) return nullptr;
  return total.release();
}

}  // namespace pp::py
