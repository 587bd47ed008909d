// interpreter/parallel/runtime.h -- the parallel module's runtime: registered
// endpoints, the workers that run protocol callbacks, and the per-thread
// interpreter attachment that lets them run in parallel.
//
// Threading model. Each worker creates its PyThreadState once, on its own thread
// (workers start one at a time: 3.13's thread-state creation must not race), and
// keeps it for its lifetime. It attaches lazily, at the first Python callback of a
// completion batch, and detaches after the batch, before it waits in the kernel
// again: an attached thread blocked in the kernel would stall the free-threaded
// GC's stop-the-world pauses (and, on a GIL build, every other thread).
#pragma once

#include "interpreter/parallel/py_util.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/loop.h"
#include "core/metrics.h"

namespace pp::py {

/// What the runtime knows about a registered protocol class, computed once at
/// `register()` on the main thread and read-only afterwards.
struct ProtocolInfo {
  Ref cls;
  std::string name;  // the class's __qualname__, for logs
  bool http11 = false;
  bool has_connection_made = false;
  bool made_takes_data = false;  // the seed's connection_made(self, transport, data)
  bool has_data_received = false;
  bool has_send_complete = false;
  bool has_connection_lost = false;
  bool has_exception_handler = false;
  Ref initial_bytes;  // initial_bytes_to_send: bytes-like, str or a callable; null if absent
  Ref gateway;  // parallel.wsgi/asgi: called with each request's Exchange (gateway.h)
};

/// parallel.Server / parallel.Client objects.
struct EndpointObject {
  PyObject_HEAD
  std::string* host;
  std::atomic<int> port;  // the bound port once running (0 asked: the kernel's pick)
  int backlog;
  bool is_client;
  ProtocolInfo* protocol;  // null until register()
};

/// parallel.Response
struct ResponseObject {
  PyObject_HEAD
  PyObject* body;
  PyObject* headers;  // a dict or None
  PyObject* content_type;  // a str or None
  int status;
};

/// parallel.FileResponse (made by parallel.file()).
struct FileResponseObject {
  PyObject_HEAD
  std::string* path;
  std::string* content_type;
};

/// Interned names and objects created once at module initialisation.
struct Names {
  PyObject* connection_made;
  PyObject* data_received;
  PyObject* send_complete;
  PyObject* connection_lost;
  PyObject* exception_handler;
  PyObject* initial_bytes_to_send;
  PyObject* http11;
  PyObject* qualname;
  PyObject* empty_bytes;
  PyObject* json_dumps;  // json.dumps with compact separators
  PyObject* parallel_error;
  PyObject* transport_closed_error;
  PyTypeObject* server_type;
  PyTypeObject* client_type;
  PyTypeObject* transport_type;
  PyTypeObject* response_type;
  PyTypeObject* file_response_type;
  PyTypeObject* timer_type;
};
/// The module's names (valid after `init_runtime_api`).
Names& names();

/// Adds the runtime's functions and types to the module. Called from the module's
/// exec slot. Returns -1 with an exception set on failure.
int init_runtime_api(PyObject* module);
/// The runtime's part of the module's method table (null-terminated).
extern PyMethodDef runtime_methods[];
/// The module's state (names, types, the registry: api.cpp) and its GC and teardown slots.
extern const Py_ssize_t module_state_size;
int module_traverse(PyObject* module, visitproc visit, void* arg);
int module_clear(PyObject* module);
void module_free(void* module);

// ---- per-thread interpreter attachment -----------------------------------------

/// Attaches the calling runtime thread to the interpreter if it is not (a no-op
/// on threads the runtime does not own). Call before touching Python objects.
void ensure_attached();
/// Detaches the calling runtime thread if attached.
void detach();

// ---- the running runtime, for the protocol and object code ---------------------

/// Counters one worker keeps (single writer: its thread; readers: stats() and /metrics):
/// the engine's per-worker metrics (core/metrics.h), which the protocol layer (session,
/// gateway) fills in for connections, requests and bytes, and the engine for responses by
/// status, latency and CPU.
using Counters = pp::WorkerMetrics;

/// The calling thread's worker counters (a dummy set off runtime threads).
Counters& thread_counters();

struct TimerState;

/// Hashes std::string keys and finds them by string_view (no string built per lookup).
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

/// What a runtime thread (a worker, or the main thread with workers=0) keeps for the
/// Python side that holds Python references. It belongs to that thread's WorkerState,
/// which empties it on that thread, attached, before the thread state goes (and, with
/// workers=0, before run() returns): a thread_local would release its references after
/// the thread state -- or, on the main thread, the interpreter -- is gone.
struct WorkerLocal {
  /// http11 route names as Python strings (session.cpp): no allocation per request.
  std::unordered_map<std::string, Ref, StringHash, std::equal_to<>> route_names;
  /// Timers with an operation in flight on this thread's loop (objects.cpp).
  std::unordered_set<TimerState*> timers;
  /// Set at stop: timers are no longer armed here.
  bool stopping = false;
};
/// The calling runtime thread's WorkerLocal (null off runtime threads).
WorkerLocal* worker_local();

/// Runs `fn` on some runtime thread's loop (round-robin over workers; the main
/// thread's loop with workers=0), attached. Any thread. False, and `fn` is dropped on the
/// caller's thread, unless the runtime is running and has not been asked to stop: an
/// accepted function always runs, before run() returns.
bool post_to_runtime(std::function<void()> fn);
/// Like post_to_runtime, to the runtime thread whose loop is `loop`. False also when no
/// runtime thread of this run has that loop (its runtime is gone).
bool post_to_loop(pp::Loop* loop, std::function<void()> fn);
/// Sets ParallelError saying why a post was refused ("the runtime is not running" or
/// "the runtime is stopping") and returns null.
PyObject* raise_refused();
/// Runs `fn` on the main thread inside `run()` (the thread that called it), from any
/// other thread. False when not running; an accepted function runs before run() returns.
bool post_to_main(std::function<void()> fn);
/// True on the thread inside `run()`.
bool on_run_thread();
/// How many times run() has begun: tells one run's per-thread state from the next one's
/// (a new loop may reuse a freed one's address).
std::uint64_t run_generation();
/// The calling runtime thread's loop (null off runtime threads).
pp::Loop* current_loop();
/// True inside `run()`.
bool runtime_running();

/// parallel.run / parallel.stop implementations. run()'s `args` and `kwargs` (either may
/// be null) are the option table's keywords (core/options.h, option_keywords.h), over the
/// process's options for this run.
PyObject* run_runtime(PyObject* args, PyObject* kwargs);
void request_stop();

/// parallel.stats() implementation.
PyObject* collect_stats();

}  // namespace pp::py

namespace pp {
class Connection;
class ConnectionSet;
}  // namespace pp

namespace pp::py {
/// Creates the connection object for an accepted or connected socket of a
/// registered endpoint (session.cpp). Called on the worker's thread, detached.
pp::Connection* make_connection(pp::Loop& loop, Handle sock, pp::ConnectionSet& set,
                                const ProtocolInfo& info);
/// Reports a client whose connect failed: logs it and calls the protocol's
/// connection_lost(None, exc) when it has one. Attaches itself.
void report_connect_failure(const ProtocolInfo& info, const std::string& where,
                            std::int64_t error);
/// Starts a timer on the calling runtime thread's loop (objects.cpp). Attached.
void arm_timer(const std::shared_ptr<TimerState>& timer, pp::Loop& loop);
/// Hands a new timer to the runtime: armed on a worker now when running, or when run()
/// begins if it is not running. False while the runtime is stopping.
bool start_timer(const std::shared_ptr<TimerState>& timer);
/// Drops a timer cancelled before run() began from the timers waiting for it.
void forget_pending_timer(const TimerState* timer);
/// New references to a timer's function and arguments tuple (objects.cpp).
void timer_references(const TimerState& timer, std::vector<Ref>& out);
/// At stop, on the runtime thread: cancels the timers armed on its loop (objects.cpp).
void stop_timers(WorkerLocal& local);
/// At teardown, on the runtime thread, attached: lets go of timers whose operations are
/// still in flight (the loop is destroyed next, without completing them).
void release_timers(WorkerLocal& local);
/// Registered servers and clients (owned references), in registration order: the module
/// state's registry (api.cpp). Changed only under `registry_mutex` while no run() is under
/// way; read freely by run() and its workers.
std::vector<Ref>& endpoints();
/// Guards the registry's changes and whether run() is under way (objects.cpp).
std::mutex& registry_mutex();
/// run(), first: false when another run() is already under way. Until `open_registry`,
/// register() raises ParallelError.
bool close_registry();
void open_registry();

}  // namespace pp::py
