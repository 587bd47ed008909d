// interpreter/parallel/api.cpp -- the module's public functions and its set-up:
// run/stop/stats, work hand-off between threads, and type registration.
#include <condition_variable>
#include <initializer_list>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "core/inherit.h"
#include "core/log.h"
#include "interpreter/parallel/runtime.h"
#include "interpreter/parallel/parallel_module.h"

namespace pp::py {

extern PyType_Spec transport_spec, server_spec, client_spec, response_spec, file_response_spec,
    timer_spec;
PyObject* fn_server(PyObject*, PyObject*, PyObject*);
PyObject* fn_client(PyObject*, PyObject*, PyObject*);
PyObject* fn_register(PyObject*, PyObject*, PyObject*);
PyObject* fn_file(PyObject*, PyObject*, PyObject*);
PyObject* fn_timer(PyObject*, PyObject*);

namespace {
/// The module's Python-side state: the names, exceptions and types made at import, and
/// the registry of endpoints. It lives in the module object (PEP 3121 state), so the
/// interpreter releases it (module_clear/module_free) while it can still run Python; a
/// static would be destroyed after Py_RunMain finalized the interpreter, its DECREFs
/// running without a thread state. Zeroed by Python, filled by init_runtime_api.
struct ModuleState {
  Names names;
  std::vector<Ref>* registered;  // owned; null until the module's exec slot ran
};
// The live module's state (one interpreter: Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED).
ModuleState* state = nullptr;

ModuleState* state_of(PyObject* module) {
  return static_cast<ModuleState*>(PyModule_GetState(module));
}

template <class T>
PyObject*& slot(T*& p) {
  return reinterpret_cast<PyObject*&>(p);
}

// Every PyObject* the state holds, for traverse and clear.
template <class F>
void each_object(ModuleState& st, F&& f) {
  Names& n = st.names;
  for (PyObject** o : {&n.connection_made, &n.data_received, &n.send_complete, &n.connection_lost,
                       &n.exception_handler, &n.initial_bytes_to_send, &n.http11, &n.qualname,
                       &n.empty_bytes, &n.json_dumps, &n.parallel_error, &n.transport_closed_error,
                       &slot(n.server_type), &slot(n.client_type), &slot(n.transport_type),
                       &slot(n.response_type), &slot(n.file_response_type), &slot(n.timer_type)})
    f(*o);
}
}  // namespace

Names& names() {
  static Names none{};  // before import and after the module is gone: every name null
  return state ? state->names : none;
}

std::vector<Ref>& endpoints() {
  static std::vector<Ref> none;
  return state && state->registered ? *state->registered : none;
}

std::mutex& registry_mutex() {
  static std::mutex m;  // plain C++: nothing for the interpreter to release
  return m;
}

const Py_ssize_t module_state_size = sizeof(ModuleState);

int module_traverse(PyObject* module, visitproc visit, void* arg) {
  ModuleState* st = state_of(module);
  if (!st) return 0;
  int rc = 0;
  each_object(*st, [&](PyObject* o) {
    if (!rc && o) rc = visit(o, arg);
  });
  if (st->registered)
    for (const Ref& e : *st->registered)
      if (!rc && e) rc = visit(e.get(), arg);
  return rc;
}

int module_clear(PyObject* module) {
  ModuleState* st = state_of(module);
  if (!st) return 0;
  // Never while run() serves: it runs inside one of this module's functions, which holds
  // the module. The registry's endpoints own their ProtocolInfo (freed with them).
  if (st->registered) {
    std::vector<Ref> gone;
    {
      std::lock_guard lock(registry_mutex());
      gone.swap(*st->registered);
    }
  }
  each_object(*st, [](PyObject*& o) { Py_CLEAR(o); });
  return 0;
}

void module_free(void* module) {
  auto* m = static_cast<PyObject*>(module);
  module_clear(m);
  ModuleState* st = state_of(m);
  if (!st) return;
  delete st->registered;
  st->registered = nullptr;
  if (state == st) state = nullptr;
}

namespace {

// Its arguments are the option table's run() keywords (core/options.h), read in
// resolve_choice (runtime.cpp) by option_keywords.h.
PyObject* fn_run(PyObject*, PyObject* args, PyObject* kwargs) {
  return run_runtime(args, kwargs);
}

PyObject* fn_stop(PyObject*, PyObject*) {
  request_stop();
  Py_RETURN_NONE;
}

PyObject* fn_stats(PyObject*, PyObject*) { return collect_stats(); }

// Splits (func, *args) off a vectorcall-free METH_VARARGS tuple.
bool split_call(PyObject* args, const char* what, Ref& func, Ref& rest) {
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (n < 1 || !PyCallable_Check(PyTuple_GET_ITEM(args, 0))) {
    PyErr_Format(PyExc_TypeError, "%s(func, *args): func must be callable", what);
    return false;
  }
  func = Ref::borrow(PyTuple_GET_ITEM(args, 0));
  rest = Ref(PyTuple_GetSlice(args, 1, n));
  return static_cast<bool>(rest);
}

PyObject* fn_submit_work(PyObject*, PyObject* args, PyObject* kwargs) {
  Ref func, rest, callback, errback;
  if (!split_call(args, "submit_work", func, rest)) return nullptr;
  if (kwargs) {
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(kwargs, &pos, &k, &v)) {
      const char* name = PyUnicode_AsUTF8(k);
      if (!name) return nullptr;
      std::string_view n(name);
      if (n == "callback")
        callback = Ref::borrow(v == Py_None ? nullptr : v);
      else if (n == "errback")
        errback = Ref::borrow(v == Py_None ? nullptr : v);
      else {
        PyErr_Format(PyExc_TypeError, "submit_work() got an unexpected keyword argument '%s'",
                     name);
        return nullptr;
      }
    }
  }
  auto work = [func, rest, callback, errback]() mutable {
    ensure_attached();
    Ref result(PyObject_Call(func.get(), rest.get(), nullptr));
    if (result) {
      if (callback) {
        Ref r(PyObject_CallOneArg(callback.get(), result.get()));
        if (!r) log_exception("submit_work callback raised", fetch_exception());
      }
    } else {
      Ref exc = fetch_exception();
      if (errback) {
        Ref r(PyObject_CallOneArg(errback.get(), exc.get()));
        if (!r) log_exception("submit_work errback raised", fetch_exception());
      } else {
        log_exception("submit_work function raised", exc);
      }
    }
    // The captured references go with this closure, still attached.
    func = rest = callback = errback = Ref();
  };
  if (!post_to_runtime(std::move(work))) return raise_refused();
  Py_RETURN_NONE;
}

// True when call_from_main_thread* runs func at once, on the calling thread: the thread
// inside run() (with workers=0, the callbacks' own thread), or, when nothing serves, the
// interpreter's main thread. Every other thread -- a worker, a `threading` thread -- has
// the call queued for the thread inside run().
bool call_here() {
  if (is_parallel_thread()) return false;
  if (on_run_thread()) return true;
  if (runtime_running()) return false;
  Ref threading(PyImport_ImportModule("threading"));
  Ref main(threading ? PyObject_CallMethod(threading.get(), "main_thread", nullptr) : nullptr);
  Ref ident(main ? PyObject_GetAttrString(main.get(), "ident") : nullptr);
  if (!ident) {
    PyErr_Clear();
    return false;
  }
  return PyLong_AsUnsignedLong(ident.get()) == PyThread_get_thread_ident();
}

PyObject* refused_main() {
  PyErr_SetString(names().parallel_error, "the runtime is not running");
  return nullptr;
}

PyObject* fn_call_from_main_thread(PyObject*, PyObject* args) {
  Ref func, rest;
  if (!split_call(args, "call_from_main_thread", func, rest)) return nullptr;
  if (call_here()) {
    Ref r(PyObject_Call(func.get(), rest.get(), nullptr));
    if (!r) return nullptr;
    Py_RETURN_NONE;
  }
  bool queued = post_to_main([func, rest]() mutable {
    Ref r(PyObject_Call(func.get(), rest.get(), nullptr));
    if (!r) log_exception("call_from_main_thread function raised", fetch_exception());
    func = rest = Ref();
  });
  if (!queued) return refused_main();
  Py_RETURN_NONE;
}

PyObject* fn_call_from_main_thread_and_wait(PyObject*, PyObject* args) {
  Ref func, rest;
  if (!split_call(args, "call_from_main_thread_and_wait", func, rest)) return nullptr;
  if (call_here()) return PyObject_Call(func.get(), rest.get(), nullptr);
  struct Slot {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    Ref result, exc;
  };
  auto slot = std::make_shared<Slot>();
  bool queued = post_to_main([func, rest, slot]() mutable {
    Ref r(PyObject_Call(func.get(), rest.get(), nullptr));
    Ref e = r ? Ref() : fetch_exception();
    func = rest = Ref();
    std::lock_guard lock(slot->m);
    slot->result = std::move(r);
    slot->exc = std::move(e);
    slot->done = true;
    slot->cv.notify_all();
  });
  if (!queued) return refused_main();
  // Detached while waiting: the main thread needs to run Python (and, on a GIL build,
  // to hold the GIL) to answer us.
  Py_BEGIN_ALLOW_THREADS
  {
    // Unlocked before re-attaching: the main thread takes this mutex attached.
    std::unique_lock lock(slot->m);
    slot->cv.wait(lock, [&] { return slot->done; });
  }
  Py_END_ALLOW_THREADS
  if (slot->exc) {
    restore_exception(slot->exc);
    return nullptr;
  }
  return slot->result.release();
}

PyObject* fn_is_running(PyObject*, PyObject*) { return PyBool_FromLong(runtime_running()); }

PyObject* fn_run_generation(PyObject*, PyObject*) {
  return PyLong_FromUnsignedLongLong(run_generation());
}

}  // namespace

PyMethodDef runtime_methods[] = {
    {"server", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_server)),
     METH_VARARGS | METH_KEYWORDS,
     "server(host, port, backlog=4096)\n--\n\nA listening endpoint; listens once run() starts."},
    {"client", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_client)),
     METH_VARARGS | METH_KEYWORDS,
     "client(host, port)\n--\n\nAn outgoing connection; connects once run() starts."},
    {"register", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_register)),
     METH_VARARGS | METH_KEYWORDS,
     "register(transport, protocol)\n--\n\nServe (or connect) `transport` with one instance of "
     "the class `protocol` per connection."},
    {"run", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_run)),
     METH_VARARGS | METH_KEYWORDS,
     "run(workers=None, backend=None, numa_policy=None, metrics_port=None, "
     "share_main_data=None, **limits)\n--\n\n"
     "Serve until stop(), SIGINT or SIGTERM (which drain: requests under way finish). "
     "Every keyword is a `pyparallel --help` option of the same name, read the same way; "
     "None keeps the host's value. workers=0 runs every callback on this thread. "
     "parallel._option_table() lists them all."},
    {"stop", fn_stop, METH_NOARGS,
     "stop()\n--\n\nMake run() return once in-flight sends finish. Any thread."},
    {"stats", fn_stats, METH_NOARGS,
     "stats()\n--\n\nConnections, requests, bytes, responses by status, latency histogram, "
     "CPU and queue depth: in total and per worker (what /metrics shows)."},
    {"is_running", fn_is_running, METH_NOARGS, "is_running()\n--\n\nTrue inside run()."},
    {"_run_generation", fn_run_generation, METH_NOARGS,
     "_run_generation()\n--\n\nHow many times run() has begun (parallel._loop tells one run's "
     "event loop from the next one's by it)."},
    {"submit_work", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_submit_work)),
     METH_VARARGS | METH_KEYWORDS,
     "submit_work(func, *args, callback=None, errback=None)\n--\n\nRun func(*args) on a worker; "
     "pass its result to callback, or its exception to errback. Any thread. Raises ParallelError "
     "unless run() is serving (not yet, or stop() was asked); work it accepted always runs."},
    {"call_from_main_thread", fn_call_from_main_thread, METH_VARARGS,
     "call_from_main_thread(func, *args)\n--\n\nQueue func(*args) for the main thread (the "
     "thread inside run()); called there, or on the main thread when nothing runs, it runs at "
     "once. Any thread; ParallelError from other threads when run() is not running."},
    {"call_from_main_thread_and_wait", fn_call_from_main_thread_and_wait, METH_VARARGS,
     "call_from_main_thread_and_wait(func, *args)\n--\n\nRun func(*args) on the main thread and "
     "return its result (or raise its exception). Any thread, as call_from_main_thread."},
    {"timer", fn_timer, METH_VARARGS,
     "timer(duetime, period, func, *args)\n--\n\nCall func(*args) on a worker after duetime "
     "seconds, then every period seconds (0: once)."},
    {"file", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn_file)),
     METH_VARARGS | METH_KEYWORDS,
     "file(path, content_type=None)\n--\n\nReturn from an http11 handler to send a file, "
     "honouring Range."},
    {nullptr, nullptr, 0, nullptr},
};

namespace {
PyObject* intern(const char* s) { return PyUnicode_InternFromString(s); }

bool add_type(PyObject* module, PyType_Spec* spec, PyTypeObject*& out) {
  out = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(spec));
  if (!out) return false;
  const char* dot = std::strrchr(spec->name, '.');
  return PyModule_AddObjectRef(module, dot ? dot + 1 : spec->name,
                               reinterpret_cast<PyObject*>(out)) == 0;
}
}  // namespace

namespace {
// Socket activation: the sockets systemd passed are taken when the module is first
// imported, before the script can start a child, and the LISTEN_* variables are removed
// from os.environ too (the C environment is cleared by take_systemd_listeners; os.environ
// is Python's copy, which subprocess passes on).
void take_inherited_sockets() {
  std::string note;
  if (take_systemd_listeners(note) > 0 || !note.empty()) pp::log("{}", note);
  Ref os(PyImport_ImportModule("os"));
  // Not named `environ`: Windows' C runtime defines that as a macro.
  Ref os_environ(os ? PyObject_GetAttrString(os.get(), "environ") : nullptr);
  for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) {
    Ref r(os_environ ? PyObject_CallMethod(os_environ.get(), "pop", "sO", name, Py_None)
                     : nullptr);
    (void)r;
  }
  PyErr_Clear();  // nothing here may fail the import
}
}  // namespace

int init_runtime_api(PyObject* module) {
  ModuleState* st = state_of(module);
  if (!st) return -1;
  // Once per process: the sockets systemd passed are the process's, whichever import
  // (a failed first one included) comes first.
  static bool sockets_taken = false;
  if (!std::exchange(sockets_taken, true)) take_inherited_sockets();
  // Every import fills its own state from scratch: one that failed part-way leaves its
  // half-built state to its module's module_free, not to the next import.
  st->registered = new (std::nothrow) std::vector<Ref>;
  if (!st->registered) {
    PyErr_NoMemory();
    return -1;
  }
  Names& n = st->names;
  n.connection_made = intern("connection_made");
  n.data_received = intern("data_received");
  n.send_complete = intern("send_complete");
  n.connection_lost = intern("connection_lost");
  n.exception_handler = intern("exception_handler");
  n.initial_bytes_to_send = intern("initial_bytes_to_send");
  n.http11 = intern("http11");
  n.qualname = intern("__qualname__");
  n.empty_bytes = PyBytes_FromStringAndSize("", 0);
  if (!n.connection_made || !n.empty_bytes) return -1;
  // JSON as TechEmpower expects it: compact separators, UTF-8 kept as is.
  Ref json(PyImport_ImportModule("json"));
  Ref functools(PyImport_ImportModule("functools"));
  if (!json || !functools) return -1;
  Ref dumps(PyObject_GetAttrString(json.get(), "dumps"));
  Ref partial(PyObject_GetAttrString(functools.get(), "partial"));
  Ref kwargs(Py_BuildValue("{s:(ss),s:O}", "separators", ",", ":", "ensure_ascii", Py_False));
  Ref pargs(dumps ? PyTuple_Pack(1, dumps.get()) : nullptr);
  if (!partial || !kwargs || !pargs) return -1;
  n.json_dumps = PyObject_Call(partial.get(), pargs.get(), kwargs.get());
  if (!n.json_dumps) return -1;
  n.parallel_error = PyErr_NewExceptionWithDoc(
      "parallel.ParallelError", "Base of every exception the parallel module raises.", nullptr,
      nullptr);
  if (!n.parallel_error) return -1;
  n.transport_closed_error = PyErr_NewExceptionWithDoc("parallel.TransportClosedError",
                                                       "The connection behind a transport is gone.",
                                                       n.parallel_error, nullptr);
  if (!n.transport_closed_error) return -1;
  if (PyModule_AddObjectRef(module, "ParallelError", n.parallel_error) < 0 ||
      PyModule_AddObjectRef(module, "TransportClosedError", n.transport_closed_error) < 0)
    return -1;
  if (!add_type(module, &transport_spec, n.transport_type) ||
      !add_type(module, &server_spec, n.server_type) ||
      !add_type(module, &client_spec, n.client_type) ||
      !add_type(module, &response_spec, n.response_type) ||
      !add_type(module, &file_response_spec, n.file_response_type) ||
      !add_type(module, &timer_spec, n.timer_type))
    return -1;
  if (PyModule_AddStringConstant(module, "__version__", "0.1.0") < 0) return -1;
  state = st;  // complete: the runtime's code reads it through names() and endpoints()
  return 0;
}

}  // namespace pp::py
