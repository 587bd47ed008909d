// interpreter/parallel/runtime.cpp -- parallel.run() itself: this run's options, the
// servers' listeners, sharing main-thread data, and the two ways to serve (callbacks on the
// main thread with workers=0, or on a pool of workers) from start to clean shutdown. The
// pieces it drives live beside it (runtime_state.h lists them).
#include "interpreter/parallel/runtime_state.h"

#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "core/access_log.h"
#include "core/handoff.h"
#include "core/inherit.h"
#include "core/listeners.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/metrics_server.h"
#include "core/options.h"
#include "core/signals.h"
#include "core/workers.h"
#include "interpreter/parallel/option_keywords.h"
#include "interpreter/parallel/parallel_module.h"
#include "interpreter/parallel/runtime_options.h"
#include "interpreter/parallel/share.h"
#include "numa/bind.h"
#include "numa/placement.h"

namespace pp::py {

Runtime& rt() {
  static Runtime* r = new Runtime;  // never destroyed: threads may outlive static teardown
  return *r;
}

namespace {

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
    if (!open_listeners(*e->host, static_cast<std::uint16_t>(e->port.load()), e->backlog, threads,
                        /*handoff=*/true, set, error, /*bind_now=*/false)) {
      release_server_listeners();
      PyErr_SetString(names().parallel_error, error.c_str());
      return false;
    }
    e->port.store(set.port);
    r.listeners.push_back(std::move(set));
  }
  for (const std::string& addr : unclaimed_inherited_listeners())
    pp::log_warning("socket activation: inherited {} matches no server(); not served", addr);
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
  Py_BEGIN_ALLOW_THREADS ok = server.start(
      host, port, [all] { return render_prometheus(all, "runtime"); }, error);
  Py_END_ALLOW_THREADS if (!ok) {
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
    if (set.origin != "bound") pp::log("listening on {}:{} ({})", *e->host, set.port, set.origin);
    offer_listeners(*e->host, set.port, set.distinct);
  }
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
      pp::log(
          "main-thread data shared with the workers: {} objects made immortal, {} kept "
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
  set_thread_context(&ws->context);
  std::string error;
  if (!open_server_listeners(1)) {
    set_thread_context(nullptr);
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
  set_thread_context(nullptr);
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
    set_thread_context(nullptr);
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
            set_thread_context(&ws.context);
            set_parallel_thread(true);
            if (!ws.setup(w.loop(), w.index(), n, r.listeners, err)) return false;
            WorkerState* wp = &ws;
            w.on_stop([wp] { wp->begin_stop(); });
            w.set_busy_check([wp] { return wp->busy(); });
            return true;
          },
          error);
  Py_END_ALLOW_THREADS if (!started) {
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
  Py_BEGIN_ALLOW_THREADS joiner.join();
  Py_END_ALLOW_THREADS {
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

bool runtime_running() {
  return rt().running;
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
  // run(log_level=) holds for this run; the process's level comes back after it.
  struct RestoreLogLevel {
    LogLevel saved = process_log_level.load();
    ~RestoreLogLevel() { set_log_level(saved); }
  } restore_log_level;
  set_log_level(choice.log_level);
  // The access log is this run's: opened here, closed (after every worker wrote out its
  // lines) when run() returns.
  if (choice.access_log) {
    std::string error;
    if (!open_access_log(choice.access_log_file, error)) {
      PyErr_SetString(names().parallel_error, error.c_str());
      return nullptr;
    }
  }
  struct CloseAccessLog {
    ~CloseAccessLog() { close_access_log(); }
  } close_access_log_at_end;
  freeze_main_thread_data(choice.share_main_data);
  r.stop_requested = false;
  r.run_thread = PyThread_get_thread_ident();
  r.generation.fetch_add(1);
  PyObject* result;
  {
    SigtermWatch sigterm;
    result = choice.workers == 0 ? run_on_main_thread(choice) : run_on_workers(choice);
  }
  r.run_thread = 0;
  return result;
}
}  // namespace pp::py
